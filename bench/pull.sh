#!/usr/bin/env bash
# Pull benchmark: cold pull of a ~200 MB (compressed) multi-layer image from a local
# docker-registry on 127.0.0.1, burrow against `podman pull`, in the same run.
# The image: a debootstrap (minbase) Debian rootfs layer plus two layers of incompressible
# data, pushed once to a registry kept in the work dir. Every run starts from an empty store.
#
# Measured:
#   burrow pull          blobs fetched in parallel, each streamed at once into the store
#                        (digest-verified) and through the decompressor and tar unpacker
#                        (in burrow's user namespace), so layers unpack while they download
#   podman pull          rootless, as the same user: fetch + decompress + unpack into its
#                        overlay storage
#
# usage: bash bench/pull.sh [N]      (default N=5)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
# shellcheck source=.ci/lib.sh
. .ci/lib.sh

N=${1:-5}
PORT=${BENCH_REGISTRY_PORT:-5789}
IMG=127.0.0.1:$PORT/bench/debian:1

ensure_pkgs docker-registry debootstrap uidmap bc
if is_root; then
    ensure_test_user
fi

log "cargo build --release"
cargo build --release

work=$(user_workdir bench-pull)
bin=$work/burrow
install -m 0755 target/release/burrow "$bin"
data=/var/tmp/burrow-bench-pull
mkdir -p "$data"

if [ ! -s "$data/rootfs.tar" ]; then
    log "debootstrap (minbase) into $data/rootfs"
    rm -rf "$data/rootfs"
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    debootstrap --variant=minbase "$suite" "$data/rootfs" >"$data/debootstrap.log" 2>&1
    tar --numeric-owner -C "$data/rootfs" -cf "$data/rootfs.tar.tmp" .
    mv "$data/rootfs.tar.tmp" "$data/rootfs.tar"
    rm -rf "$data/rootfs"
fi
for i in 1 2; do
    if [ ! -s "$data/extra$i.tar" ]; then
        d=$(mktemp -d)
        mkdir -p "$d/opt/extra$i"
        head -c 60M /dev/urandom >"$d/opt/extra$i/blob"
        tar --numeric-owner -C "$d" -cf "$data/extra$i.tar" .
        rm -rf "$d"
    fi
done

log "starting docker-registry on 127.0.0.1:$PORT"
cat >"$data/registry.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $data/registry
http:
  addr: 127.0.0.1:$PORT
YAML
docker-registry serve "$data/registry.yml" >"$data/registry.log" 2>&1 &
reg_pid=$!
cleanup() {
    kill "$reg_pid" 2>/dev/null || true
    wait "$reg_pid" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then break; fi
    sleep 0.1
done

log "pushing the image"
read -r digest size < <(python3 "$repo/bench/mkregistryimage.py" "http://127.0.0.1:$PORT" \
    bench/debian 1 "$data/rootfs.tar" "$data/extra1.tar" "$data/extra2.tar")
log "image $digest: $((size / 1000000)) MB compressed in 3 layers"

root=$work/storage
pod=$data/podman
burrow_times=()
podman_times=()
now() { date +%s.%N; }
for i in $(seq "$N"); do
    as_user "$bin" --root "$root" unshare rm -rf "$root" 2>/dev/null || rm -rf "$root"
    sync
    t0=$(now)
    as_user "$bin" --root "$root" pull -q "$IMG" >/dev/null
    t1=$(now)
    burrow_times+=("$(echo "$t1 - $t0" | bc)")

    if command -v podman >/dev/null; then
        # Rootless, as the same user as burrow: the comparison is rootless against rootless.
        as_user podman --root "$pod/root" --runroot "$pod/run" unshare rm -rf "$pod/root" 2>/dev/null || true
        rm -rf "$pod"
        install -d -o "$(as_user id -u)" -g "$(as_user id -g)" "$pod"
        sync
        t0=$(now)
        as_user podman --root "$pod/root" --runroot "$pod/run" pull -q --tls-verify=false "$IMG" >/dev/null
        t1=$(now)
        podman_times+=("$(echo "$t1 - $t0" | bc)")
        as_user podman --root "$pod/root" --runroot "$pod/run" rmi -a -f >/dev/null 2>&1 || true
    fi
    log "run $i: burrow ${burrow_times[-1]}s${podman_times:+ podman ${podman_times[-1]}s}"
done
as_user podman --root "$pod/root" --runroot "$pod/run" unshare rm -rf "$pod/root" 2>/dev/null || true
rm -rf "$pod"

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
bm=$(median "${burrow_times[@]}")
echo "burrow pull (cold, $N runs): median ${bm}s"
if [ ${#podman_times[@]} -gt 0 ]; then
    pm=$(median "${podman_times[@]}")
    echo "podman pull (cold, $N runs): median ${pm}s"
    echo "ratio podman/burrow: $(echo "scale=2; $pm / $bm" | bc)x"
fi
