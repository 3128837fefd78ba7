//! A minimal stderr logger for `--log-level`.
//!
//! Only burrow's own messages follow the level asked for. Libraries are capped at `info`:
//! at `debug`/`trace` the HTTP and TLS crates dump requests, headers and raw bytes, which
//! carry `Authorization` headers and tokens, and secrets must never reach a log.

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The most a library (any target outside burrow) may log.
const LIBRARY_MAX: Level = Level::Info;

struct StderrLogger;

/// Whether a record of `level` from `target` may be printed under `max`.
fn allowed(target: &str, level: Level, max: LevelFilter) -> bool {
    if level > max {
        return false;
    }
    is_own(target) || level <= LIBRARY_MAX
}

fn is_own(target: &str) -> bool {
    target == "burrow" || target.starts_with("burrow::")
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        allowed(metadata.target(), metadata.level(), log::max_level())
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let level = record.level().as_str().to_ascii_lowercase();
            // Never a panic: the monitor and the port proxy log too, and outlive the readers
            // of their stderr.
            errln!("burrow: {level}: {}", record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

pub fn init(level: LevelFilter) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_are_capped_burrow_is_not() {
        let trace = LevelFilter::Trace;
        assert!(allowed("burrow::registry::client", Level::Trace, trace));
        assert!(allowed("burrow", Level::Debug, trace));
        for lib in [
            "ureq",
            "ureq_proto::client",
            "rustls::conn",
            "hyper",
            "burrowed",
        ] {
            assert!(!allowed(lib, Level::Trace, trace), "{lib}");
            assert!(!allowed(lib, Level::Debug, trace), "{lib}");
            assert!(allowed(lib, Level::Warn, trace), "{lib}");
        }
        assert!(!allowed("burrow::x", Level::Debug, LevelFilter::Warn));
    }
}
