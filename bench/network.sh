#!/usr/bin/env bash
# Network benchmark: throughput of a large transfer host -> container through a published port
# and container -> host (to a server on the host's loopback, through host.containers.internal),
# and the latency of a connection + HTTP request through a published port, with burrow's
# slirp4netns and pasta backends and a member of a burrow user-defined network, and rootless
# podman on the same backends and on a podman (netavark) network when it works here
# (podman --runtime runc|crun --cgroup-manager cgroupfs).
#
# Then container -> container on one user-defined network (burrow network create / podman network
# create): a client member connects to a server member by name and receives MIB MiB (the server
# writes them with dd straight into the socket, the client counts them with dd straight from it),
# timed by the client itself from before it connects to the end of the data, with busybox
# adjtimex's microsecond clock (or /proc/uptime's 10 ms one if adjtimex is refused). When run as
# root, also the latency of a connection + HTTP request from one member to another: the host's
# python, entered into the client member's network namespace with nsenter (only the network
# namespace: no container process is involved), to the server member's address. The ratios
# burrow/podman follow (throughput: above 1 is burrow faster; latency: below 1 is).
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
: >"$work/recv.err"

log "building the busybox image"
rootfs=$(mktemp -d)
# Engines whose benchnet network and containers the EXIT trap removes.
nets=()
cleanup() {
    local e
    rm -rf "$rootfs"
    if [ -n "${bg:-}" ]; then kill "$bg" 2>/dev/null || true; fi
    for e in "${nets[@]}"; do net_down "$e"; done
}
trap cleanup EXIT
make_busybox_rootfs "$rootfs"
# The container side of the transfers, in the image. Data is counted, and between containers also
# written, by dd in 1 MiB blocks straight from/to the socket (nc -e): busybox wc -c reads byte by
# byte and costs more CPU than the network path being measured. Container -> host still pipes
# through nc (small copies, so it is bounded by that at a few hundred MiB/s): a sender that
# writes 1 MiB blocks straight into the socket stalls for seconds with pasta 2023-03, and the
# container must outlive the transfer, which nc waiting for the host's close ensures.
mkdir -p "$rootfs/bench"
cat >"$rootfs/bench/gen.sh" <<'GEN'
#!/bin/sh
# gen.sh MIB: MIB MiB of zeros on stdout.
exec dd if=/dev/zero bs=1048576 count="$1" 2>/dev/null
GEN
cat >"$rootfs/bench/count.sh" <<'COUNT'
#!/bin/sh
# count.sh: the number of bytes on stdin, when it is a whole number of MiB (else says so).
dd of=/dev/null bs=1048576 iflag=fullblock 2>&1 | awk '/records in/ { split($1, r, "+");
    if (r[2] == 0) print r[1] * 1048576; else print r[1] " MiB and a partial block" }'
COUNT
cat >"$rootfs/bench/c2c-server.sh" <<'SERVER'
#!/bin/sh
# c2c-server.sh MIB: every connection to :5001 gets MIB MiB; httpd on :80.
trap "exit 0" TERM
mkdir -p /www
echo hi >/www/index.html
httpd -f -p 80 -h /www &
nc -ll -p 5001 -e /bench/gen.sh "$1" &
wait
SERVER
cat >"$rootfs/bench/c2c-client.sh" <<'CLIENT'
#!/bin/sh
# c2c-client.sh SERVER MIB ROUNDS: ROUNDS transfers of MIB MiB from SERVER:5001, each printed as
# "seconds MiB/s"; first a line "clock NAME".
server=$1 mib=$2 rounds=$3
bytes=$((mib * 1048576))
printf '#!/bin/sh\n/bench/count.sh >/tmp/got\n' >/tmp/count.sh
chmod +x /tmp/count.sh
clock() {
    adjtimex 2>/dev/null | awk '/tv_sec/ { s = $2 } /tv_usec/ { u = $2 }
        END { if (s == "" || u == "") exit 1; printf "%d.%06d\n", s, u }'
}
if clock >/dev/null; then
    echo "clock adjtimex"
else
    clock() { cut -d ' ' -f 1 /proc/uptime; }
    echo "clock uptime"
fi
n=0 tries=0
while [ "$n" -lt "$rounds" ]; do
    rm -f /tmp/got
    t0=$(clock)
    nc "$server" 5001 -e /tmp/count.sh 2>/dev/null
    t1=$(clock)
    got=$(cat /tmp/got 2>/dev/null) || got=""
    if [ "$got" = "$bytes" ]; then
        awk -v a="$t0" -v b="$t1" -v m="$mib" \
            'BEGIN { if (b <= a) b = a + 0.01; printf "%.3f %.1f\n", b - a, m / (b - a) }'
        n=$((n + 1))
    elif [ -n "$got" ] && [ "$got" != 0 ]; then
        echo "received $got, not $bytes bytes, from $server:5001" >&2
        exit 1
    else
        # The server is not listening yet.
        tries=$((tries + 1))
        if [ "$tries" -ge 300 ]; then
            echo "no answer from $server:5001" >&2
            exit 1
        fi
        sleep 0.1
    fi
done
CLIENT
chmod 0755 "$rootfs"/bench/*.sh
rootfs_tar "$rootfs" "$work/rootfs.tar"
python3 "$repo/bench/mkarchive.py" "$work/rootfs.tar" "$work/image.tar" "$IMG"
chmod 0644 "$work/image.tar"
as_user "$bin" --root "$root" load -i "$work/image.tar" >/dev/null
as_user "$bin" --root "$root" run --rm --network none "$IMG" true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The container side of each measurement.
SINK='trap "exit 0" TERM; nc -ll -p 5001 -e /bench/count.sh & wait'
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

# engine_ctl ENGINE : the command prefix for the engine's other commands.
engine_ctl() {
    case $1 in
        burrow) echo "$bin --root $root" ;;
        podman-*) echo "podman --runtime ${1#podman-} --cgroup-manager cgroupfs --events-backend file" ;;
    esac
}

# measure ENGINE NETWORK LOOPBACK_NETWORK [BIND] : prints "h2c_MiBps c2h_MiBps latency_ms"; the
# host's server for container -> host listens on BIND (default 127.0.0.1).
measure() {
    local engine=$1 net=$2 lonet=$3 bind=${4:-127.0.0.1} run port out h2c c2h lat image
    run=$(engine_cmd "$engine" "$net")
    image=$IMG
    [ "$engine" = burrow ] || image=localhost/$IMG
    # host -> container
    out=""
    for _ in $(seq "$ROUNDS"); do
        port=$(free_port)
        # Not through a shell function: $! must be the engine itself (it forwards SIGTERM).
        # shellcheck disable=SC2046,SC2086
        $(user_prefix) $run -p "$port:5001" "$image" sh -c "$SINK" >/dev/null 2>"$work/run.err" &
        bg=$!
        if ! out+="$($nb send "$port" "$MIB")"$'\n'; then
            kill -TERM "$bg" 2>/dev/null || true
            wait "$bg" 2>/dev/null || true
            bg=""
            log "$engine --network $net: $(grep -v 'connect to syslog' "$work/run.err" | tail -n 3 | tr '\n' ' ' | cut -c 1-400)"
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
        # shellcheck disable=SC2046,SC2086
        out+="$($nb recv --bind "$bind" "$port" "$MIB" $(user_prefix) $run "$image" sh -c \
            "head -c $((MIB * 1048576)) /dev/zero | nc host.containers.internal $port" \
            2>>"$work/recv.err")"$'\n' || true
    done
    c2h=$(printf '%s' "$out" | grep . | best || true)
    if [ -z "$c2h" ]; then
        c2h="-"
        log "$engine --network $lonet: container -> host failed: $(tail -n 2 "$work/recv.err" | tr '\n' ' ' | cut -c 1-400)"
    fi
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

# The user-defined network both engines use, and its members.
NET=benchnet
SRV=benchnet-srv
CLI=benchnet-cli

# net_down ENGINE : remove the members and the network, if there (errors ignored; one rm per
# container: podman removes none of the names given when one does not exist).
net_down() {
    local c
    for c in "$SRV" "$CLI"; do
        # shellcheck disable=SC2046
        as_user $(engine_ctl "$1") rm -f "$c" >/dev/null 2>&1 || true
    done
    # shellcheck disable=SC2046
    as_user $(engine_ctl "$1") network rm "$NET" >/dev/null 2>&1 || true
}

# net_up ENGINE : create the network (after removing what an interrupted run left).
net_up() {
    net_down "$1"
    nets+=("$1")
    # shellcheck disable=SC2046
    as_user $(engine_ctl "$1") network create "$NET" >/dev/null 2>"$work/netcreate.err" || {
        log "cannot create network $NET: $(tail -n 3 "$work/netcreate.err" | tr '\n' ' ')"
        return 1
    }
}

# c2c ENGINE : container -> container on $NET; prints "MiBps latency_ms" (latency "-" when it could
# not be measured); fails, saying why, when the throughput could not be measured.
# ($ctl, $run and $nb are command prefixes, split into words on purpose.)
# shellcheck disable=SC2086
c2c() {
    local engine=$1 ctl run image out mib lat="-" pid ip cli_ip addrs
    ctl=$(engine_ctl "$engine")
    run=$(engine_cmd "$engine" "$NET")
    image=$IMG
    [ "$engine" = burrow ] || image=localhost/$IMG
    if ! as_user $ctl run -d --network "$NET" --name "$SRV" "$image" /bench/c2c-server.sh "$MIB" \
        >/dev/null 2>"$work/c2c.err"; then
        log "$engine: cannot start $SRV: $(tail -n 3 "$work/c2c.err" | tr '\n' ' ')"
        return 1
    fi
    if ! out=$(as_user $run "$image" /bench/c2c-client.sh "$SRV" "$MIB" "$ROUNDS" 2>"$work/c2c.err"); then
        log "$engine: container -> container failed: $(tail -n 3 "$work/c2c.err" | tr '\n' ' ')"
        as_user $ctl rm -f "$SRV" >/dev/null 2>&1 || true
        return 1
    fi
    log "$engine: container -> container timed with $(printf '%s\n' "$out" | awk '$1 == "clock" { print $2 }')"
    mib=$(printf '%s\n' "$out" | awk '$1 != "clock"' | best)
    if ! is_root || ! command -v nsenter >/dev/null 2>&1; then
        log "$engine: not measuring member -> member latency: that needs root and nsenter"
    elif ! as_user $ctl run -d --network "$NET" --name "$CLI" "$image" \
        sh -c 'trap "exit 0" TERM; sleep 3600 & wait' >/dev/null 2>"$work/c2c.err"; then
        log "$engine: not measuring member -> member latency: cannot start $CLI: $(tail -n 3 "$work/c2c.err" | tr '\n' ' ')"
    else
        pid=$(as_user $ctl inspect -f '{{.State.Pid}}' "$CLI" 2>/dev/null) || pid=0
        ip=$(as_user $ctl inspect -f "{{.NetworkSettings.Networks.$NET.IPAddress}}" "$SRV" 2>/dev/null) || ip=""
        cli_ip=$(as_user $ctl inspect -f "{{.NetworkSettings.Networks.$NET.IPAddress}}" "$CLI" 2>/dev/null) || cli_ip=""
        # The namespace entered must be the client member's: the one with its address.
        addrs=$(nsenter --net="/proc/${pid:-0}/ns/net" ip -o -4 addr show 2>/dev/null) || addrs=""
        if [ -n "$ip" ] && [ -n "$cli_ip" ] && grep -q "inet $cli_ip/" <<<"$addrs"; then
            lat=$(nsenter --net="/proc/$pid/ns/net" $nb latency "$ip:80" 200) || lat="-"
        else
            log "$engine: not measuring member -> member latency: no network namespace with $CLI's address ($cli_ip, pid $pid) or no address for $SRV ($ip)"
        fi
    fi
    as_user $ctl rm -f "$SRV" >/dev/null 2>&1 || true
    as_user $ctl rm -f "$CLI" >/dev/null 2>&1 || true
    echo "$mib $lat"
}

results=()
row() { results+=("$(printf '  %-40s %10s %10s %10s' "$@")"); }
c2c_results=()
c2c_row() { c2c_results+=("$(printf '  %-40s %10s %10s' "$@")"); }
# ratio A B : A/B to two decimals, or "-".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
c2c_burrow=""
c2c_podman=""

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

# A member of a user-defined network: host.containers.internal is the host's own address there
# (no allow_host_loopback), so the host's server listens on 0.0.0.0.
if net_up burrow; then
    log "burrow, network $NET: $MIB MiB each way, best of $ROUNDS"
    if r=$(measure burrow "$NET" "$NET" 0.0.0.0); then
        # shellcheck disable=SC2086
        row "burrow network ($NET)" $r
    else
        log "burrow network $NET failed"
    fi
    log "burrow, container -> container on $NET: $MIB MiB, best of $ROUNDS"
    if c2c_burrow=$(c2c burrow); then
        # shellcheck disable=SC2086
        c2c_row "burrow network" $c2c_burrow
    else
        c2c_burrow=""
    fi
    net_down burrow
fi

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
                # podman 4.3 resolves host.containers.internal to the host's own address even
                # with allow_host_loopback=true, hence a server on 0.0.0.0 (slirp4netns connects
                # to it through the host's loopback all the same).
                if r=$(measure "podman-$prt" "$net" "$lonet" 0.0.0.0); then
                    # shellcheck disable=SC2086
                    row "$label" $r
                else
                    log "skipping $label: it failed"
                fi
            done
            # A podman network: rootless, netavark bridges the members in podman's rootless
            # network namespace, whose way out is one slirp4netns; published ports go through
            # rootlessport; names resolve through aardvark-dns. host.containers.internal is the
            # host's own address there.
            label="podman ($prt) network (netavark)"
            if net_up "podman-$prt"; then
                log "$label: $MIB MiB each way, best of $ROUNDS"
                if r=$(measure "podman-$prt" "$NET" "$NET" 0.0.0.0); then
                    # shellcheck disable=SC2086
                    row "$label" $r
                else
                    log "skipping $label: it failed"
                fi
                log "$label, container -> container: $MIB MiB, best of $ROUNDS"
                if c2c_podman=$(c2c "podman-$prt"); then
                    # shellcheck disable=SC2086
                    c2c_row "$label" $c2c_podman
                else
                    c2c_podman=""
                    log "skipping $label container -> container: it failed"
                fi
                net_down "podman-$prt"
            else
                log "skipping $label: podman network create failed"
            fi
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
printf '  %-40s %10s %10s %10s\n' "" "host->ctr" "ctr->host" "conn+GET"
printf '  %-40s %10s %10s %10s\n' "" "MiB/s" "MiB/s" "ms"
printf '%s\n' "${results[@]}"
echo
echo "container -> container on one network ($MIB MiB, best of $ROUNDS) and member -> member latency (median of 200)"
printf '  %-40s %10s %10s\n' "" "ctr->ctr" "conn+GET"
printf '  %-40s %10s %10s\n' "" "MiB/s" "ms"
if [ ${#c2c_results[@]} -gt 0 ]; then
    printf '%s\n' "${c2c_results[@]}"
fi
if [ -n "$c2c_burrow" ] && [ -n "$c2c_podman" ]; then
    read -r bt bl <<<"$c2c_burrow"
    read -r pt pl <<<"$c2c_podman"
    printf '  %-40s %10s %10s\n' "burrow/podman (MiB/s: >1 better; ms: <1)" "$(ratio "$bt" "$pt")" "$(ratio "$bl" "$pl")"
fi
