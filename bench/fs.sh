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
# and prints the median of RUNS runs per driver, and the ratios.
#
# usage: bash bench/fs.sh            env: SIZE_MB=1024 RUNS=3 SRC_DIR=/usr/share/man
#        BURROW_BIN=path/to/burrow  (skip the release build and use this binary)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=.ci/lib.sh
. .ci/lib.sh

SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
SRC_DIR=${SRC_DIR:-/usr/share/man}
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
t0=$(now)
dd if=/data/big of=/dev/null bs=1M 2>/dev/null
t1=$(now)
dd if=/dev/zero of=/data/out bs=1M count=SIZE_MB 2>/dev/null
t2=$(now)
rm -f /data/out
mkdir /data/x
t3=$(now)
tar -xf /data/src.tar -C /data/x
t4=$(now)
ls -lR /data/x >/dev/null
t5=$(now)
rm -rf /data/x || echo "rm -rf failed: its time is that of a partial removal" >&2
t6=$(now)
echo "read=$((t1-t0)) write=$((t2-t1)) untar=$((t4-t3)) lslR=$((t5-t4)) rm=$((t6-t5))"
'
workload=${workload//SIZE_MB/$SIZE_MB}

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

# median DRIVER FIELD
median() {
    printf '%s' "${results[$1]}" | tr ' ' '\n' | sed -n "s/^$2=//p" | sort -n \
        | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'
}

echo
echo "burrow storage drivers: ${SIZE_MB} MiB sequential read/write (bs=1M), untar/ls -lR/rm -rf of $files entries ($SRC_DIR); median of $RUNS runs"
printf '%-16s %10s %10s %9s %9s %9s\n' driver "read MB/s" "write MB/s" "untar s" "ls-lR s" "rm s"
for d in "${drivers[@]}"; do
    r=$(median "$d" read) w=$(median "$d" write) u=$(median "$d" untar) l=$(median "$d" lslR) m=$(median "$d" rm)
    awk -v d="$d" -v s="$SIZE_MB" -v r="$r" -v w="$w" -v u="$u" -v l="$l" -v m="$m" 'BEGIN {
        printf "%-16s %10.0f %10.0f %9.2f %9.2f %9.2f\n", d, s * 1000 / (r ? r : 1), s * 1000 / (w ? w : 1), u / 1000, l / 1000, m / 1000 }'
done
echo
echo "speed of fuse-overlay relative to the others (>1: fuse-overlay is faster)"
for other in fuse-overlayfs overlay; do
    line="vs $other:"
    for f in read write untar lslR rm; do
        a=$(median fuse-overlay "$f") b=$(median "$other" "$f")
        line+=$(awk -v f="$f" -v a="$a" -v b="$b" 'BEGIN { printf "  %s %.2fx", f, (a ? b / a : 0) }')
    done
    echo "$line"
done
