//! Deterministic crash points for tests: `BURROW_TEST_CRASH_AT=<name>` makes burrow SIGKILL
//! itself when it reaches the point of that name, the honest way to check that every step of
//! a multi-step store update leaves something the next invocation repairs.

pub fn point(name: &str) {
    if std::env::var_os("BURROW_TEST_CRASH_AT").is_some_and(|v| v == name) {
        log::debug!("crash point {name}: killing ourselves");
        // SAFETY: plain syscalls; SIGKILL ends us right here, as a kill from outside would.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Like `point`, but `BURROW_TEST_STOP_AT=<name>` makes burrow stop itself (SIGSTOP) there, so
/// that a test can look at what the world is like at that moment and then SIGCONT it.
pub fn stop_point(name: &str) {
    if std::env::var_os("BURROW_TEST_STOP_AT").is_some_and(|v| v == name) {
        log::debug!("stop point {name}: stopping ourselves");
        // SAFETY: plain syscalls.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGSTOP);
        }
    }
}
