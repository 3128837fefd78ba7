# Shared helpers for .ci/test.sh, .ci/demo.sh and bench/run.sh (sourced, not run).
#
# burrow is rootless: when these scripts run as root they create the
# unprivileged user `burrowtest` (with subordinate ids) and run burrow as that
# user, the same way the integration tests do.

BURROW_TEST_USER=${BURROW_TEST_USER:-burrowtest}
BURROW_SUBID_START_MIN=300000
BURROW_SUBID_COUNT=65536
BURROW_USER_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

is_root() { [ "$(id -u)" -eq 0 ]; }

log() { printf '==> %s\n' "$*" >&2; }

# missing_pkgs PKG... : print the Debian packages that are not installed.
missing_pkgs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
            || printf '%s\n' "$p"
    done
}

# ensure_pkgs PKG... : install missing packages when root, else report them.
ensure_pkgs() {
    local missing
    if ! command -v dpkg-query >/dev/null 2>&1; then
        log "not a Debian system: make sure these are installed: $*"
        return 0
    fi
    missing=$(missing_pkgs "$@" | tr '\n' ' ')
    [ -z "${missing// /}" ] && return 0
    if is_root; then
        log "installing: $missing"
        local status=0 hold=
        # Packages are installed for their programs: the tests start the daemons they need
        # privately. policy-rc.d (Debian's switch for this) keeps a service from starting on
        # install, e.g. docker's, which would add iptables rules and a bridge.
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 0755 /usr/sbin/policy-rc.d
            hold=1
        fi
        # shellcheck disable=SC2086
        apt_install $missing || status=$?
        [ -z "$hold" ] || rm -f /usr/sbin/policy-rc.d
        return "$status"
    else
        log "not root: not installing missing packages: $missing"
    fi
}

# apt_install PKG... : apt-get install, updating the package lists if that fails.
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || {
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "$@"
    }
}

# open_devices: /dev/net/tun and /dev/fuse are 0600 on these machines.
open_devices() {
    if is_root; then
        local d
        for d in /dev/net/tun /dev/fuse; do
            [ -e "$d" ] && chmod 666 "$d"
        done
    fi
    return 0
}

# first_free_subid FILE : a start >= 300000 that overlaps no range in FILE.
first_free_subid() {
    awk -F: -v start="$BURROW_SUBID_START_MIN" -v count="$BURROW_SUBID_COUNT" '
        NF == 3 { s[n] = $2; c[n] = $3; n++ }
        END {
            moved = 1
            while (moved) {
                moved = 0
                for (i = 0; i < n; i++)
                    if (s[i] < start + count && start < s[i] + c[i]) { start = s[i] + c[i]; moved = 1 }
            }
            print start
        }' "$1"
}

# ensure_test_user : create burrowtest with subordinate ids (root only).
ensure_test_user() {
    local u=$BURROW_TEST_USER f
    if ! id -u "$u" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$u" 2>/dev/null \
            || useradd --create-home --shell /bin/sh "$u"
    fi
    for f in /etc/subuid /etc/subgid; do
        touch "$f"
        if ! grep -q "^$u:" "$f"; then
            echo "$u:$(first_free_subid "$f"):$BURROW_SUBID_COUNT" >>"$f"
        fi
    done
    BURROW_USER_UID=$(id -u "$u")
    BURROW_USER_GID=$(id -g "$u")
    BURROW_USER_HOME=$(getent passwd "$u" | cut -d: -f6)
    BURROW_USER_RUNDIR=/var/tmp/burrow-tests/run/$BURROW_USER_UID
    install -d -m 0755 /var/tmp/burrow-tests /var/tmp/burrow-tests/run
    install -d -m 0700 -o "$BURROW_USER_UID" -g "$BURROW_USER_GID" "$BURROW_USER_RUNDIR"
}

# as_user CMD... : run CMD as the unprivileged user (burrowtest when root).
as_user() {
    if is_root; then
        setpriv --reuid="$BURROW_USER_UID" --regid="$BURROW_USER_GID" --init-groups -- \
            env -i HOME="$BURROW_USER_HOME" USER="$BURROW_TEST_USER" LOGNAME="$BURROW_TEST_USER" \
            PATH="$BURROW_USER_PATH" XDG_RUNTIME_DIR="$BURROW_USER_RUNDIR" "$@"
    else
        "$@"
    fi
}

# user_workdir NAME : a directory the unprivileged user owns; prints it.
user_workdir() {
    local d
    if is_root; then
        d=/var/tmp/burrow-tests/$1
        install -d -m 0755 -o "$BURROW_USER_UID" -g "$BURROW_USER_GID" "$d"
    else
        d=${TMPDIR:-/tmp}/burrow-$1-$(id -u)
        mkdir -p "$d"
    fi
    printf '%s\n' "$d"
}

# find_busybox : path of a static busybox.
find_busybox() {
    local p
    for p in /bin/busybox /usr/bin/busybox; do
        [ -x "$p" ] && { printf '%s\n' "$p"; return 0; }
    done
    return 1
}

# make_busybox_rootfs DIR : busybox, a symlink per applet, /etc/passwd, /etc/group.
make_busybox_rootfs() {
    local dir=$1 bb a
    bb=$(find_busybox) || { log "busybox not found: apt-get install busybox-static"; return 1; }
    rm -rf "$dir"
    mkdir -p "$dir"/{bin,etc,tmp,root,home/app,proc,sys,dev,var,usr/bin}
    chmod 1777 "$dir/tmp"
    chmod 0700 "$dir/root"
    cp "$bb" "$dir/bin/busybox"
    chmod 0755 "$dir/bin/busybox"
    for a in $("$bb" --list); do
        [ "$a" = busybox ] || ln -sf busybox "$dir/bin/$a"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' >"$dir/etc/passwd"
    printf 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n' >"$dir/etc/group"
}

# rootfs_tar DIR FILE : a rootfs tarball with files owned by root (the app home by 1000).
rootfs_tar() {
    tar -C "$1" --numeric-owner --owner=0 --group=0 --exclude=./home/app -cf "$2" .
    tar -C "$1" --numeric-owner --owner=1000 --group=1000 -rf "$2" ./home/app
    chmod 0644 "$2"
}
