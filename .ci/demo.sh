#!/usr/bin/env bash
# The main job, end to end on a fresh Debian machine: build burrow, make a
# busybox image from local files, and run a container as an unprivileged user.
#
# As root: installs uidmap and busybox-static, creates the user `burrowtest`
# with subordinate ids, and runs burrow as that user. As a normal user: runs
# burrow as you (add subordinate ids to /etc/subuid and /etc/subgid first for a
# full id map; see README.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=.ci/lib.sh
. .ci/lib.sh

ensure_pkgs uidmap busybox-static
if is_root; then
    ensure_test_user
fi

log "cargo build --release"
cargo build --release

work=$(user_workdir demo)
bin=$work/burrow
install -m 0755 target/release/burrow "$bin"   # readable by the user even if the checkout is not
root=$work/storage

log "building a busybox rootfs tarball in $work"
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
make_busybox_rootfs "$rootfs"
rootfs_tar "$rootfs" "$work/demo-rootfs.tar"

log "burrow import $work/demo-rootfs.tar demo:1"
(cd "$work" && as_user "$bin" --root "$root" import "$work/demo-rootfs.tar" demo:1)
as_user "$bin" --root "$root" images

log "burrow run --rm demo:1 sh -c 'id; hostname; cat /proc/self/uid_map'"
cd "$work"
as_user "$bin" --root "$root" run --rm demo:1 sh -c 'id; hostname; cat /proc/self/uid_map'
