#!/usr/bin/env bash
# Format check, lints and every test. As root it first installs the Debian
# packages burrow and its tests use; the tests themselves run burrow as the
# unprivileged user `burrowtest` (see tests/integration/harness.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=.ci/lib.sh
. .ci/lib.sh

ensure_pkgs uidmap slirp4netns passt fuse3 busybox-static docker-registry
open_devices

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
log "cargo fmt --check"
cargo fmt --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
log "cargo test --all-targets"
cargo test --all-targets
