#!/usr/bin/env bash
# Network benchmark: throughput of a large transfer host -> container through a published port
# and container -> host (to a server on the host's loopback, through host.containers.internal),
# and the latency of a connection + HTTP request through a published port, with burrow's
# slirp4netns and pasta backends, and rootless podman on the same backends when it works here
# (podman --runtime runc|crun --cgroup-manager cgroupfs).
#
# usage: bash bench/network.sh [MIB] [ROUNDS]   (default 512 MiB, best of 3 rounds)
#        BURROW_BIN=target/debug/burrow bash bench/network.sh   (skip the release build)
#
# All traffic is on this machine's loopback.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
# shellcheck source=.ci/lib.sh
. .ci/lib.sh

MIB=${1:-512}
ROUNDS=${2:-3}
IMG=bench/busybox:1
nb="python3 $repo/bench/netbench.py"

ensure_pkgs uidmap busybox-static slirp4netns passt
if is_root; then
    ensure_test_user
    open_devices
fi

if [ -z "${BURROW_BIN:-}" ]; then
    log "cargo build --release"
    cargo build --release
    BURROW_BIN=target/release/burrow
fi
work=$(user_workdir bench-network)
bin=$work/burrow
install -m 0755 "$BURROW_BIN" "$bin"
root=$work/storage
cd "$work"

log "building the busybox image"
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"; [ -n "${bg:-}" ] && kill "$bg" 2>/dev/null || true' EXIT
make_busybox_rootfs "$rootfs"
rootfs_tar "$rootfs" "$work/rootfs.tar"
python3 "$repo/bench/mkarchive.py" "$work/rootfs.tar" "$work/image.tar" "$IMG"
chmod 0644 "$work/image.tar"
as_user "$bin" --root "$root" load -i "$work/image.tar" >/dev/null
as_user "$bin" --root "$root" run --rm --network none "$IMG" true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The container side of each measurement.
SINK='trap "exit 0" TERM; printf "#!/bin/sh\nwc -c\n" >/count.sh; chmod +x /count.sh; nc -ll -p 5001 -e /count.sh & wait'
HTTPD='trap "exit 0" TERM; mkdir -p /www; echo hi >/www/index.html; httpd -f -p 80 -h /www & wait'

# best OUTPUTS... : the highest MiB/s of "seconds MiB/s" lines
best() { sort -k2 -n -r | head -n 1 | awk '{print $2}'; }

# engine_cmd ENGINE NETWORK : the command prefix that runs a container.
engine_cmd() {
    case $1 in
        burrow) echo "$bin --root $root run --rm --network $2" ;;
        podman-*) echo "podman --runtime ${1#podman-} --cgroup-manager cgroupfs --events-backend file run --rm --network $2" ;;
    esac
}

# measure ENGINE NETWORK LOOPBACK_NETWORK : prints "h2c_MiBps c2h_MiBps latency_ms"
measure() {
    local engine=$1 net=$2 lonet=$3 run port out h2c c2h lat image
    run=$(engine_cmd "$engine" "$net")
    image=$IMG
    [ "$engine" = burrow ] || image=localhost/$IMG
    # host -> container
    out=""
    for _ in $(seq "$ROUNDS"); do
        port=$(free_port)
        # Not through a shell function: $! must be the engine itself (it forwards SIGTERM).
        # shellcheck disable=SC2046,SC2086
        $(user_prefix) $run -p "$port:5001" "$image" sh -c "$SINK" >/dev/null 2>&1 &
        bg=$!
        if ! out+="$($nb send "$port" "$MIB")"$'\n'; then
            kill -TERM "$bg" 2>/dev/null || true
            wait "$bg" 2>/dev/null || true
            return 1
        fi
        kill -TERM "$bg" 2>/dev/null || true
        wait "$bg" 2>/dev/null || true
        bg=""
    done
    h2c=$(printf '%s' "$out" | best)
    # container -> host
    out=""
    run=$(engine_cmd "$engine" "$lonet")
    for _ in $(seq "$ROUNDS"); do
        port=$(free_port)
        # shellcheck disable=SC2086
        out+="$($nb recv "$port" "$MIB" $(user_prefix) $run "$image" sh -c \
            "head -c $((MIB * 1048576)) /dev/zero | nc host.containers.internal $port" \
            2>>"$work/recv.err")"$'\n' || true
    done
    c2h=$(printf '%s' "$out" | grep . | best || true)
    [ -n "$c2h" ] || c2h="-"
    # connection latency
    run=$(engine_cmd "$engine" "$net")
    port=$(free_port)
    # shellcheck disable=SC2046,SC2086
    $(user_prefix) $run -p "$port:80" "$image" sh -c "$HTTPD" >/dev/null 2>&1 &
    bg=$!
    lat=$($nb latency "$port" 200) || lat="-"
    kill -TERM "$bg" 2>/dev/null || true
    wait "$bg" 2>/dev/null || true
    bg=""
    echo "$h2c $c2h $lat"
}

# The as_user prefix as words, for commands python starts.
user_prefix() {
    if is_root; then
        echo setpriv --reuid="$BURROW_USER_UID" --regid="$BURROW_USER_GID" --init-groups -- \
            env -i HOME="$BURROW_USER_HOME" USER="$BURROW_TEST_USER" \
            PATH="$BURROW_USER_PATH" XDG_RUNTIME_DIR="$BURROW_USER_RUNDIR"
    fi
}

results=()
row() { results+=("$(printf '  %-34s %10s %10s %10s' "$@")"); }

for backend in slirp4netns pasta; do
    case $backend in
        slirp4netns) lonet=slirp4netns:allow_host_loopback=true ;;
        pasta) lonet=pasta ;;
    esac
    log "burrow, $backend: $MIB MiB each way, best of $ROUNDS"
    if r=$(measure burrow "$backend" "$lonet"); then
        # shellcheck disable=SC2086
        row "burrow $backend" $r
    else
        log "burrow $backend failed"
    fi
done

if command -v podman >/dev/null 2>&1; then
    ensure_pkgs runc
    pod=(podman --cgroup-manager cgroupfs --events-backend file)
    if as_user "${pod[@]}" load -i "$work/image.tar" >/dev/null 2>&1; then
        prt=""
        for rt in runc crun; do
            if command -v "$rt" >/dev/null 2>&1 &&
                as_user "${pod[@]}" --runtime "$rt" run --rm --network none "localhost/$IMG" true >/dev/null 2>"$work/podman.err"; then
                prt=$rt
                break
            fi
        done
        if [ -n "$prt" ]; then
            for variant in \
                "slirp4netns:port_handler=slirp4netns|slirp4netns:allow_host_loopback=true,port_handler=slirp4netns|podman ($prt) slirp4netns" \
                "slirp4netns|slirp4netns:allow_host_loopback=true|podman ($prt) slirp4netns+rootlessport" \
                "pasta|pasta|podman ($prt) pasta"; do
                IFS='|' read -r net lonet label <<<"$variant"
                log "$label: $MIB MiB each way, best of $ROUNDS"
                if r=$(measure "podman-$prt" "$net" "$lonet"); then
                    # shellcheck disable=SC2086
                    row "$label" $r
                else
                    log "skipping $label: it failed"
                fi
            done
        else
            log "skipping podman: it cannot run a container here: $(tail -n 3 "$work/podman.err" | tr '\n' ' ')"
        fi
    else
        log "skipping podman: podman load failed"
    fi
else
    log "skipping podman: not installed"
fi

echo
echo "network throughput ($MIB MiB, best of $ROUNDS) and connection latency (median of 200)"
printf '  %-34s %10s %10s %10s\n' "" "host->ctr" "ctr->host" "conn+GET"
printf '  %-34s %10s %10s %10s\n' "" "MiB/s" "MiB/s" "ms"
printf '%s\n' "${results[@]}"
