#!/usr/bin/env bash
# Startup benchmark: N runs of `burrow run --rm --network none IMG true`
# (wall time per run: median and p90), as an unprivileged user; compared with
# rootless podman (runc, cgroupfs; crun if runc is missing) on the same image
# when podman is installed and works for that user.
#
# Then PASS/FAIL against issue 2's targets: a burrow median under 20 ms, and
# burrow at least 10x faster than podman (median) where podman ran; exits 1
# when a target is missed.
#
# usage: bash bench/run.sh [N]      (default N=50)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
# shellcheck source=.ci/lib.sh
. .ci/lib.sh

N=${1:-50}
IMG=bench/busybox:1
TARGET_MS=20
TARGET_RATIO=10

ensure_pkgs uidmap busybox-static
if is_root; then
    ensure_test_user
fi

log "cargo build --release"
cargo build --release

work=$(user_workdir bench)
bin=$work/burrow
install -m 0755 target/release/burrow "$bin"
root=$work/storage
cd "$work"

log "building the busybox image"
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
make_busybox_rootfs "$rootfs"
rootfs_tar "$rootfs" "$work/rootfs.tar"
python3 "$repo/bench/mkarchive.py" "$work/rootfs.tar" "$work/image.tar" "$IMG"
chmod 0644 "$work/image.tar"
stats=$repo/bench/stats.py

as_user "$bin" --root "$root" load -i "$work/image.tar"
# A first run unpacks the layer: not part of the measurement.
as_user "$bin" --root "$root" run --rm --network none "$IMG" true

# measure LABEL CMD... : prints "LABEL median p90" on stdout.
measure() {
    local label=$1
    shift
    if command -v hyperfine >/dev/null 2>&1; then
        local json
        json=$(mktemp)
        chmod 0644 "$json"
        hyperfine --style none --warmup 2 --runs "$N" -N --export-json "$json" \
            "$(printf '%q ' "$@")" >&2
        python3 "$stats" hyperfine "$json" "$label"
        rm -f "$json"
    else
        python3 "$stats" run "$N" "$label" -- "$@"
    fi
}

user_cmd() {
    if is_root; then
        printf '%s\0' setpriv --reuid="$BURROW_USER_UID" --regid="$BURROW_USER_GID" --init-groups -- \
            env -i HOME="$BURROW_USER_HOME" USER="$BURROW_TEST_USER" LOGNAME="$BURROW_TEST_USER" \
            PATH="$BURROW_USER_PATH" XDG_RUNTIME_DIR="$BURROW_USER_RUNDIR" "$@"
    else
        printf '%s\0' "$@"
    fi
}

mapfile -d '' bcmd < <(user_cmd "$bin" --root "$root" run --rm --network none "$IMG" true)
log "burrow: $N runs of: burrow run --rm --network none $IMG true"
read -r _ b_med b_p90 < <(measure burrow "${bcmd[@]}" | tail -n 1)

p_med=""
if command -v podman >/dev/null 2>&1; then
    log "podman: loading the same docker-archive into rootless podman"
    pod=(podman --cgroup-manager cgroupfs --events-backend file)
    if as_user "${pod[@]}" load -i "$work/image.tar" >/dev/null 2>&1; then
        for rt in runc crun; do
            if as_user "${pod[@]}" --runtime "$rt" run --rm --network none "localhost/$IMG" true >/dev/null 2>"$work/podman.err"; then
                mapfile -d '' pcmd < <(user_cmd "${pod[@]}" --runtime "$rt" run --rm --network none "localhost/$IMG" true)
                log "podman ($rt): $N runs of: podman --runtime $rt --cgroup-manager cgroupfs run --rm --network none $IMG true"
                read -r _ p_med p_p90 < <(measure "podman-$rt" "${pcmd[@]}" | tail -n 1)
                p_rt=$rt
                break
            else
                log "skipping podman --runtime $rt: it failed: $(tail -n 3 "$work/podman.err" | tr '\n' ' ')"
            fi
        done
    else
        log "skipping podman: podman load failed for user $(as_user id -un)"
    fi
else
    log "skipping podman: not installed"
fi

echo
echo "burrow run --rm --network none $IMG true   (N=$N, wall time per run)"
printf '  %-22s median %8.1f ms   p90 %8.1f ms\n' burrow "$b_med" "$b_p90"
if [ -n "$p_med" ]; then
    printf '  %-22s median %8.1f ms   p90 %8.1f ms\n' "podman ($p_rt)" "$p_med" "$p_p90"
    python3 -c "import sys; b, p = float(sys.argv[1]), float(sys.argv[2]); print(f'  ratio podman/burrow (median): {p / b:.2f}x')" "$b_med" "$p_med"
fi

# holds PYTHON_EXPR A B: whether the comparison of the two numbers holds.
holds() {
    python3 -c "import sys; a, b = map(float, sys.argv[2:]); sys.exit(0 if $1 else 1)" "$@"
}

echo
echo "targets (issue 2):"
missed=0
if holds "a < b" "$b_med" "$TARGET_MS"; then
    printf '  PASS  burrow median %.1f ms < %s ms\n' "$b_med" "$TARGET_MS"
else
    printf '  FAIL  burrow median %.1f ms, not < %s ms\n' "$b_med" "$TARGET_MS"
    missed=1
fi
if [ -n "$p_med" ]; then
    if holds "b / a >= $TARGET_RATIO" "$b_med" "$p_med"; then
        printf '  PASS  burrow >= %sx faster than podman (%s)\n' "$TARGET_RATIO" "$p_rt"
    else
        printf '  FAIL  burrow not >= %sx faster than podman (%s)\n' "$TARGET_RATIO" "$p_rt"
        missed=1
    fi
else
    printf '  SKIP  >= %sx faster than podman: podman did not run here\n' "$TARGET_RATIO"
fi
exit "$missed"
