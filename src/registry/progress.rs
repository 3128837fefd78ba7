//! Transfer progress: a live per-layer display on a terminal (bytes, total, speed), one line
//! per layer otherwise, nothing with `-q`. Drawn from whichever transfer thread updates it,
//! at most every 100 ms; no thread of its own.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::units::human_size;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Quiet,
    Lines,
    Terminal,
}

struct Row {
    id: String,
    status: String,
    done: u64,
    total: u64,
    started: Instant,
    finished: bool,
}

struct State {
    rows: Vec<Row>,
    last_draw: Option<Instant>,
    drawn: usize,
}

pub struct Progress {
    mode: Mode,
    stderr: bool,
    state: Mutex<State>,
}

/// The short id docker shows for a digest (12 hex digits).
pub fn short_id(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stdout().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Lines
        };
        Progress::with_mode(mode)
    }

    /// Progress on stderr (for `run --pull`, whose stdout is the container's).
    pub fn new_stderr(quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Lines
        };
        let mut p = Progress::with_mode(mode);
        p.stderr = true;
        p
    }

    pub fn with_mode(mode: Mode) -> Progress {
        Progress {
            mode,
            stderr: false,
            state: Mutex::new(State {
                rows: Vec::new(),
                last_draw: None,
                drawn: 0,
            }),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn out(&self) -> Box<dyn Write + '_> {
        if self.stderr {
            Box::new(std::io::stderr().lock())
        } else {
            // A reader that has gone only silences the progress: the pull or push goes on, as
            // docker's daemon carries on without its CLI.
            Box::new(crate::output::Stdout)
        }
    }

    /// A line of its own (not in quiet mode).
    pub fn message(&self, text: &str) {
        if self.mode == Mode::Quiet {
            return;
        }
        let mut st = self.state.lock().unwrap();
        let mut out = self.out();
        if self.mode == Mode::Terminal && st.drawn > 0 {
            // Keep the message above the live rows.
            let _ = write!(out, "\x1b[{}A\r\x1b[J", st.drawn);
            st.drawn = 0;
            let _ = writeln!(out, "{text}");
            Self::draw(&mut st, &mut out);
        } else {
            let _ = writeln!(out, "{text}");
        }
        let _ = out.flush();
    }

    /// Add a row for a blob; returns its index.
    pub fn add(&self, digest: &str, total: u64, status: &str) -> usize {
        let mut st = self.state.lock().unwrap();
        st.rows.push(Row {
            id: short_id(digest),
            status: status.to_string(),
            done: 0,
            total,
            started: Instant::now(),
            finished: false,
        });
        let idx = st.rows.len() - 1;
        if self.mode == Mode::Terminal {
            self.redraw(&mut st, true);
        }
        idx
    }

    pub fn set_status(&self, idx: usize, status: &str) {
        let mut st = self.state.lock().unwrap();
        if let Some(r) = st.rows.get_mut(idx) {
            r.status = status.to_string();
            r.started = Instant::now();
        }
        if self.mode == Mode::Terminal {
            self.redraw(&mut st, false);
        }
    }

    /// Bytes transferred so far for a row.
    pub fn update(&self, idx: usize, done: u64) {
        if self.mode != Mode::Terminal {
            return;
        }
        let mut st = self.state.lock().unwrap();
        if let Some(r) = st.rows.get_mut(idx) {
            r.done = done;
        }
        self.redraw(&mut st, false);
    }

    /// A row is done: its final status (one line in line mode).
    pub fn finish(&self, idx: usize, status: &str) {
        let mut st = self.state.lock().unwrap();
        let Some(r) = st.rows.get_mut(idx) else {
            return;
        };
        r.status = status.to_string();
        r.finished = true;
        r.done = r.total;
        match self.mode {
            Mode::Quiet => {}
            Mode::Lines => {
                let line = format!("{}: {}", r.id, r.status);
                let mut out = self.out();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            Mode::Terminal => self.redraw(&mut st, true),
        }
    }

    /// Final draw; later output goes below the rows.
    pub fn close(&self) {
        if self.mode == Mode::Terminal {
            let mut st = self.state.lock().unwrap();
            self.redraw(&mut st, true);
            st.rows.clear();
            st.drawn = 0;
        }
    }

    fn redraw(&self, st: &mut State, force: bool) {
        let now = Instant::now();
        if !force
            && st
                .last_draw
                .is_some_and(|t| now.duration_since(t) < Duration::from_millis(100))
        {
            return;
        }
        st.last_draw = Some(now);
        let mut out = self.out();
        if st.drawn > 0 {
            let _ = write!(out, "\x1b[{}A", st.drawn);
        }
        Self::draw(st, &mut out);
        let _ = out.flush();
    }

    fn draw(st: &mut State, out: &mut dyn Write) {
        for r in &st.rows {
            let mut line = format!("{}: {}", r.id, r.status);
            if !r.finished && r.total > 0 && r.done > 0 {
                let width = 30usize;
                let filled =
                    ((r.done.min(r.total) as f64 / r.total as f64) * width as f64) as usize;
                let bar: String = (0..width)
                    .map(|i| match i.cmp(&filled) {
                        std::cmp::Ordering::Less => '=',
                        std::cmp::Ordering::Equal => '>',
                        std::cmp::Ordering::Greater => ' ',
                    })
                    .collect();
                let secs = r.started.elapsed().as_secs_f64().max(0.001);
                let speed = (r.done as f64 / secs) as u64;
                line.push_str(&format!(
                    " [{bar}] {}/{} {}/s",
                    human_size(r.done),
                    human_size(r.total),
                    human_size(speed)
                ));
            }
            let _ = writeln!(out, "\r\x1b[2K{line}");
        }
        st.drawn = st.rows.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
