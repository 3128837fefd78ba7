#!/usr/bin/env bash
# Lifecycle benchmark (issue 4): `ps -a` time with 10/100/500 containers, `run -d` + `rm -f`
# throughput, and the resident memory of the per-container monitor against podman's conmon for
# the same container — podman in the same run where installed (rootless, runc, cgroupfs).
#
# usage: bash bench/lifecycle.sh [COUNTS] [CYCLES]    (default "10 100 500", 20)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
# shellcheck source=.ci/lib.sh
. .ci/lib.sh

COUNTS=${1:-"10 100 500"}
CYCLES=${2:-20}
IMG=bench/busybox:1

ensure_pkgs uidmap busybox-static
if is_root; then
    ensure_test_user
    ensure_pkgs runc
fi
log "cargo build --release"
cargo build --release
work=$(user_workdir bench-lifecycle)
bin=$work/burrow
install -m 0755 target/release/burrow "$bin"
root=$work/storage
rm -rf "$root"
cd "$work"
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
make_busybox_rootfs "$rootfs"
rootfs_tar "$rootfs" "$work/rootfs.tar"
python3 "$repo/bench/mkarchive.py" "$work/rootfs.tar" "$work/image.tar" "$IMG"
chmod 0644 "$work/image.tar"
as_user "$bin" --root "$root" load -q -i "$work/image.tar"

pod=(podman --cgroup-manager cgroupfs --events-backend file --runtime runc)
have_podman=false
if command -v podman >/dev/null 2>&1 && as_user "${pod[@]}" load -q -i "$work/image.tar" >/dev/null 2>&1 \
    && as_user "${pod[@]}" run --rm --network none "localhost/$IMG" true >/dev/null 2>&1; then
    have_podman=true
else
    log "skipping podman: not installed or rootless podman does not work for $(as_user id -un)"
fi

# ms CMD... : wall time of one run, in milliseconds.
ms() {
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}

# median of the arguments
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo
echo "ps -a with N containers (median of 5, ms)"
made=0
for n in $COUNTS; do
    while [ "$made" -lt "$n" ]; do
        as_user "$bin" --root "$root" create --network none "$IMG" true >/dev/null
        $have_podman && as_user "${pod[@]}" create --network none "localhost/$IMG" true >/dev/null
        made=$((made + 1))
    done
    b=(); p=()
    for _ in 1 2 3 4 5; do
        b+=("$(ms as_user "$bin" --root "$root" ps -a)")
        $have_podman && p+=("$(ms as_user "${pod[@]}" ps -a)")
    done
    line=$(printf '  %4d containers: burrow %5s ms' "$n" "$(median "${b[@]}")")
    if $have_podman; then
        line+=$(printf '   podman %5s ms   ratio %s' "$(median "${p[@]}")" \
            "$(python3 -c "print(f'{$(median "${p[@]}")/max($(median "${b[@]}"),1):.1f}x')")")
    fi
    echo "$line"
done
as_user "$bin" --root "$root" rm -a -f >/dev/null
$have_podman && as_user "${pod[@]}" rm -a -f >/dev/null

echo
echo "run -d + rm -f, $CYCLES cycles"
t0=$(date +%s%N)
for _ in $(seq "$CYCLES"); do
    id=$(as_user "$bin" --root "$root" run -d --network none "$IMG" sleep 100)
    as_user "$bin" --root "$root" rm -f "$id" >/dev/null
done
bt=$((($(date +%s%N) - t0) / 1000000))
printf '  burrow: %d ms total, %.1f cycles/s\n' "$bt" "$(python3 -c "print($CYCLES*1000/$bt)")"
if $have_podman; then
    t0=$(date +%s%N)
    for _ in $(seq "$CYCLES"); do
        id=$(as_user "${pod[@]}" run -d --network none "localhost/$IMG" sleep 100)
        as_user "${pod[@]}" rm -f -t 0 "$id" >/dev/null
    done
    pt=$((($(date +%s%N) - t0) / 1000000))
    printf '  podman: %d ms total, %.1f cycles/s   ratio %.1fx\n' "$pt" "$(python3 -c "print($CYCLES*1000/$pt)")" \
        "$(python3 -c "print($pt/$bt)")"
fi

echo
echo "resident memory of the process watching one detached container (VmRSS, kB)"
id=$(as_user "$bin" --root "$root" run -d --network none "$IMG" sleep 1000)
mon=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['monitor_pid'])" "$root/containers/$id/config.json")
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
anon() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }
printf '  burrow monitor: VmRSS %s kB (anonymous %s kB)\n' "$(rss "$mon")" "$(anon "$mon")"
as_user "$bin" --root "$root" rm -f "$id" >/dev/null
if $have_podman; then
    pid=$(as_user "${pod[@]}" run -d --network none "localhost/$IMG" sleep 1000)
    cpid=$(pgrep -n -f "conmon.*${pid:0:12}" || pgrep -n conmon || true)
    if [ -n "$cpid" ]; then
        printf '  podman conmon:  VmRSS %s kB (anonymous %s kB)\n' "$(rss "$cpid")" "$(anon "$cpid")"
    fi
    as_user "${pod[@]}" rm -f -t 0 "$pid" >/dev/null
fi
