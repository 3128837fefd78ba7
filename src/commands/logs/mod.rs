//! `burrow logs`: a container's output, from its log file (json-file or k8s-file).

mod since;

use std::io::Write;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::GlobalArgs;
use crate::containers::logs::{LogEntry, LogError, LogReader};
use crate::exit::ExitError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Follow log output: until the container stops, or until whatever reads
    /// burrow's output stops reading (burrow then ends by SIGPIPE, as docker's CLI)
    #[arg(short, long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Number of lines to show from the end ("all" for every line)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since a time: a date or time (2006-01-02, 2006-01-02T15:04:05, RFC 3339;
    /// local time unless a zone is given), Unix seconds, or a duration before now (42m, 1h30m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a time, in the same forms as --since
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

/// Keep the entries of the last `n` lines. A line is the entries of one stream from one that
/// starts a line through the one that ends it (long lines are split into several entries);
/// lines are kept whole.
fn keep_last_lines(entries: &mut Vec<LogEntry>, n: usize) {
    // Per entry: where its line starts.
    let mut open_line: [Option<usize>; 2] = [None, None];
    let line_start: Vec<usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let stream = usize::from(e.stream == "stderr");
            let start = open_line[stream].unwrap_or(i);
            open_line[stream] = (!e.ends_line()).then_some(start);
            start
        })
        .collect();
    let mut starts = line_start
        .iter()
        .enumerate()
        .filter(|(i, start)| *i == **start)
        .map(|(i, _)| i)
        .rev();
    let cut = match n {
        0 => entries.len(),
        n => starts.nth(n - 1).unwrap_or(0),
    };
    let cut = line_start[cut..].iter().copied().min().unwrap_or(cut);
    entries.drain(..cut);
}

/// Prints entries to burrow's stdout and stderr.
struct Printer {
    timestamps: bool,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
    /// Per stream: the next entry starts a line (where `-t` puts a time).
    at_start: [bool; 2],
}

impl Printer {
    /// Fails only when burrow's stdout has no reader any more, which ends `logs -f` too; like
    /// docker's, a closed stderr does not.
    fn print(&mut self, entries: &[LogEntry]) -> std::io::Result<()> {
        let mut out = crate::output::Stdout;
        let mut err = std::io::stderr().lock();
        for e in entries {
            let t = OffsetDateTime::parse(&e.time, &Rfc3339).ok();
            if let (Some(since), Some(t)) = (self.since, t)
                && t < since
            {
                continue;
            }
            if let (Some(until), Some(t)) = (self.until, t)
                && t > until
            {
                continue;
            }
            let stream = usize::from(e.stream == "stderr");
            let time = if self.timestamps && self.at_start[stream] {
                format!("{} ", e.time)
            } else {
                String::new()
            };
            self.at_start[stream] = e.ends_line();
            if stream == 1 {
                let _ = write!(err, "{time}{}", e.log);
            } else {
                write!(out, "{time}{}", e.log)?;
            }
        }
        out.flush()
    }
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let record = containers.find(&args.container)?;
    let now = OffsetDateTime::now_utc();
    let local = since::local_offset();
    let since = args
        .since
        .as_deref()
        .map(|s| since::parse(s, now, local))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| since::parse(s, now, local))
        .transpose()?;
    let tail = match args.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse::<usize>()
                .map_err(|_| anyhow::anyhow!("invalid --tail {n:?}: use a number or \"all\""))?,
        ),
    };
    let mut reader = match LogReader::new(&record.log_config, &containers.dir_of(&record.id)) {
        Err(e @ LogError::NotReadable) => return Err(ExitError::new(1, e.to_string()).into()),
        other => other?,
    };
    let mut entries = reader.read_all()?;
    if let Some(n) = tail {
        keep_last_lines(&mut entries, n);
    }
    let mut printer = Printer {
        timestamps: args.timestamps,
        since,
        until,
        at_start: [true, true],
    };
    printer.print(&entries)?;
    if !args.follow {
        return Ok(0);
    }
    loop {
        // Read what came after the last look; stop once nothing watches the container and
        // everything it wrote has been printed, or once past --until.
        let watched = containers.is_locked(&record.id);
        let more = reader.read_new()?;
        printer.print(&more)?;
        if !watched || until.is_some_and(|u| OffsetDateTime::now_utc() > u) {
            return Ok(0);
        }
        if more.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stream: &str, log: &str) -> LogEntry {
        LogEntry {
            log: log.into(),
            stream: stream.into(),
            time: String::new(),
        }
    }

    #[test]
    fn tail_counts_lines_not_entries() {
        let all = vec![
            entry("stdout", "one\n"),
            entry("stdout", "long "),
            entry("stderr", "err\n"),
            entry("stdout", "line\n"),
            entry("stdout", "last"),
        ];
        let logs = |n| {
            let mut e = all.clone();
            keep_last_lines(&mut e, n);
            e.iter().map(|e| e.log.as_str()).collect::<String>()
        };
        assert_eq!(logs(0), "");
        assert_eq!(logs(1), "last");
        assert_eq!(logs(2), "long err\nline\nlast");
        assert_eq!(logs(3), "long err\nline\nlast");
        assert_eq!(logs(4), "one\nlong err\nline\nlast");
        assert_eq!(logs(10), "one\nlong err\nline\nlast");
    }
}
