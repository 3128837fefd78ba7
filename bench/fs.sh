#!/usr/bin/env bash
# Filesystem benchmark of the storage drivers, in the same run:
#   * the kernel overlay            (burrow --storage-driver overlay)
#   * burrow's FUSE overlay         (burrow --storage-driver fuse-overlay)
#   * fuse-overlayfs (Debian's)     mounted by hand inside `burrow unshare`, chrooted into
# on the same one-layer image, as an unprivileged user. Each run does, inside the root
# filesystem (10 ms clock):
#   read    dd of a SIZE_MB file of the image's layer to /dev/null (bs=1M)
#   write   dd of SIZE_MB from /dev/zero to a new file (bs=1M)
#   untar   tar -x of a tarball of SRC_DIR (default /usr/share/man: ~24k small files)
#   ls-lR   ls -lR of the untarred tree (readdir + lstat of everything)
#   rm      rm -rf of the untarred tree
# and prints the median of RUNS runs per driver, the ratios, and every run's figures (the
# spread says how far apart two medians must be to mean anything on this machine).
#
# usage: bash bench/fs.sh            env: SIZE_MB=1024 RUNS=3 SRC_DIR=/usr/share/man
#        STEPS="read write tree"    (a subset: `tree` is untar + ls-lR + rm; e.g. STEPS=read
#                                    RUNS=21 measures reads alone, many times, in minutes)
#        BURROW_BIN=path/to/burrow  (skip the release build and use this binary)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=.ci/lib.sh
. .ci/lib.sh

SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
SRC_DIR=${SRC_DIR:-/usr/share/man}
STEPS=${STEPS:-read write tree}
for step in $STEPS; do
    case $step in
    read | write | tree) ;;
    *)
        echo "STEPS: unknown step '$step' (read, write, tree)" >&2
        exit 2
        ;;
    esac
done
IMG=bench/fs:1

ensure_pkgs uidmap busybox-static fuse-overlayfs
open_devices
if is_root; then
    ensure_test_user
fi

if [ -n "${BURROW_BIN:-}" ]; then
    src_bin=$BURROW_BIN
else
    log "cargo build --release"
    cargo build --release
    src_bin=target/release/burrow
fi

work=$(user_workdir bench-fs)
bin=$work/burrow
install -m 0755 "$src_bin" "$bin"
root=$work/storage
B=("$bin" --root "$root")

# The workload, run by the container's (or chroot's) busybox sh. Prints name=milliseconds;
# a failing step fails the run (and the bench) rather than timing an error, but for rm -rf,
# which fuse-overlayfs sometimes fails with ENOTEMPTY on the large directories.
# shellcheck disable=SC2016
workload='
set -e
now() { awk "{ printf \"%d\", \$1 * 1000 }" /proc/uptime; }
out=
for step in STEPS; do
    case $step in
    read)
        t0=$(now)
        dd if=/data/big of=/dev/null bs=1M 2>/dev/null
        t1=$(now)
        out="$out read=$((t1-t0))"
        ;;
    write)
        t0=$(now)
        dd if=/dev/zero of=/data/out bs=1M count=SIZE_MB 2>/dev/null
        t1=$(now)
        rm -f /data/out
        out="$out write=$((t1-t0))"
        ;;
    tree)
        mkdir /data/x
        t0=$(now)
        tar -xf /data/src.tar -C /data/x
        t1=$(now)
        ls -lR /data/x >/dev/null
        t2=$(now)
        rm -rf /data/x || echo "rm -rf failed: its time is that of a partial removal" >&2
        t3=$(now)
        out="$out untar=$((t1-t0)) lslR=$((t2-t1)) rm=$((t3-t2))"
        ;;
    esac
done
echo $out
'
workload=${workload//SIZE_MB/$SIZE_MB}
workload=${workload//STEPS/$STEPS}

log "building the image: busybox, a ${SIZE_MB} MiB file, a tarball of $SRC_DIR"
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
make_busybox_rootfs "$rootfs"
mkdir -p "$rootfs/data"
dd if=/dev/urandom of="$rootfs/data/big" bs=1M count="$SIZE_MB" status=none
tar -C "$(dirname "$SRC_DIR")" -cf "$rootfs/data/src.tar" "$(basename "$SRC_DIR")"
printf '%s\n' "$workload" >"$rootfs/bench.sh"
files=$(tar -tf "$rootfs/data/src.tar" | wc -l)
rootfs_tar "$rootfs" "$work/rootfs.tar"
rm -rf "$rootfs"
as_user "${B[@]}" system reset -f >/dev/null 2>&1 || true
as_user "${B[@]}" import "$work/rootfs.tar" "$IMG" >/dev/null
rm -f "$work/rootfs.tar"
layer=$(find "$root/overlay" -mindepth 2 -maxdepth 2 -name diff -type d | head -n 1)
[ -n "$layer" ] || { log "cannot find the image's layer under $root/overlay"; exit 1; }

run_burrow() { # DRIVER
    as_user "${B[@]}" --storage-driver "$1" run --rm --network none "$IMG" sh /bench.sh
}

run_fuse_overlayfs() {
    # shellcheck disable=SC2016
    as_user "${B[@]}" unshare unshare -m sh -c '
        set -e
        d=$(mktemp -d -p "$1")
        mkdir "$d/upper" "$d/work" "$d/merged"
        fuse-overlayfs -o "lowerdir=$2,upperdir=$d/upper,workdir=$d/work" "$d/merged"
        mount --rbind /proc "$d/merged/proc"
        # The image has an empty /dev: without this, /dev/zero is missing (the write test
        # fails at once) and /dev/null is created as a file (the read test also writes).
        mount --rbind /dev "$d/merged/dev"
        rc=0
        chroot "$d/merged" /bin/sh /bench.sh || rc=$?
        umount -l "$d/merged"
        rm -rf "$d"
        exit "$rc"
    ' sh "$work" "$layer"
}

declare -A results
drivers=(overlay fuse-overlay fuse-overlayfs)
# Runs take turns between the drivers, so that a burst of load on the machine spreads over
# all of them instead of slowing down every run of one.
for i in $(seq "$RUNS"); do
    log "run $i of $RUNS"
    for d in "${drivers[@]}"; do
        if [ "$d" = fuse-overlayfs ]; then
            line=$(run_fuse_overlayfs | tail -n 1)
        else
            line=$(run_burrow "$d" | tail -n 1)
        fi
        log "  $(printf '%-15s' "$d") $line"
        results[$d]+="$line"$'\n'
    done
done

# values DRIVER FIELD: every run's milliseconds, sorted
values() {
    printf '%s' "${results[$1]}" | tr ' ' '\n' | sed -n "s/^$2=//p" | sort -n
}

# median DRIVER FIELD: empty when the field was not measured
median() {
    values "$1" "$2" | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

fields=()
for step in $STEPS; do
    case $step in
    tree) fields+=(untar lslR rm) ;;
    *) fields+=("$step") ;;
    esac
done

echo
echo "burrow storage drivers: ${SIZE_MB} MiB sequential read/write (bs=1M), untar/ls -lR/rm -rf of $files entries ($SRC_DIR); median of $RUNS runs"
printf '%-16s %10s %10s %9s %9s %9s\n' driver "read MB/s" "write MB/s" "untar s" "ls-lR s" "rm s"
for d in "${drivers[@]}"; do
    r=$(median "$d" read) w=$(median "$d" write) u=$(median "$d" untar) l=$(median "$d" lslR) m=$(median "$d" rm)
    awk -v d="$d" -v s="$SIZE_MB" -v r="$r" -v w="$w" -v u="$u" -v l="$l" -v m="$m" '
        function rate(ms) { return ms == "" ? "-" : sprintf("%.0f", s * 1000 / (ms ? ms : 1)) }
        function secs(ms) { return ms == "" ? "-" : sprintf("%.2f", ms / 1000) }
        BEGIN { printf "%-16s %10s %10s %9s %9s %9s\n", d, rate(r), rate(w), secs(u), secs(l), secs(m) }'
done
echo
echo "speed of fuse-overlay relative to the others (>1: fuse-overlay is faster)"
for other in fuse-overlayfs overlay; do
    line="vs $other:"
    for f in "${fields[@]}"; do
        a=$(median fuse-overlay "$f") b=$(median "$other" "$f")
        line+=$(awk -v f="$f" -v a="$a" -v b="$b" 'BEGIN {
            if (a > 0 && b > 0) printf "  %s %.2fx", f, b / a; else printf "  %s n/a (under the 10 ms clock)", f }')
    done
    echo "$line"
done
echo
echo "every run, ms (sorted):"
for f in "${fields[@]}"; do
    for d in "${drivers[@]}"; do
        printf '  %-6s %-15s %s\n' "$f" "$d" "$(values "$d" "$f" | tr '\n' ' ')"
    done
done
