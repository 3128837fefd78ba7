#!/usr/bin/env bash
# Format check, lints and every test. As root it first installs the Debian
# packages burrow and its tests use; the tests themselves run burrow as the
# unprivileged user `burrowtest` (see tests/integration/harness.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=.ci/lib.sh
. .ci/lib.sh

ensure_pkgs uidmap slirp4netns passt fuse3 busybox-static docker-registry podman docker.io
open_devices

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# Every step runs even if an earlier one failed (so one CI run reports all
# problems); the script fails if any did. cargo test runs last, so its summary
# closes the log.
failed=()
log "cargo fmt --check"
cargo fmt --check || failed+=("cargo fmt --check")
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings || failed+=("cargo clippy")
if [ ${#failed[@]} -gt 0 ]; then
    log "FAILED so far: ${failed[*]} (running the tests anyway)"
fi
log "cargo test --all-targets"
status=0
cargo test --all-targets --no-fail-fast || status=$?
if [ ${#failed[@]} -gt 0 ] && [ "$status" -eq 0 ]; then
    status=1
fi
exit "$status"
