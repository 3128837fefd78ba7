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
