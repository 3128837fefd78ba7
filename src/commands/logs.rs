//! `burrow logs`: a container's output, from its json-file log.

use std::io::Write;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::GlobalArgs;
use crate::containers::logs::{LogEntry, read_from};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Number of lines to show from the end ("all" for every line)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since a timestamp (RFC 3339) or a relative time (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (RFC 3339) or a relative time (e.g. 42m)
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

/// An RFC 3339 time, a Unix timestamp, or a duration before now (`10s`, `42m`, `2h`).
fn parse_time(s: &str) -> anyhow::Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok(OffsetDateTime::UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| {
        anyhow::anyhow!("invalid time {s:?}: use RFC 3339, a Unix time or a duration like 10m")
    })?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => anyhow::bail!("invalid time {s:?}: use RFC 3339, a Unix time or a duration like 10m"),
    };
    Ok(OffsetDateTime::now_utc() - Duration::from_secs(secs))
}

fn print(
    entries: &[LogEntry],
    timestamps: bool,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for e in entries {
        let t = OffsetDateTime::parse(&e.time, &Rfc3339).ok();
        if let (Some(since), Some(t)) = (since, t)
            && t < since
        {
            continue;
        }
        if let (Some(until), Some(t)) = (until, t)
            && t > until
        {
            continue;
        }
        let w: &mut dyn Write = if e.stream == "stderr" {
            &mut err
        } else {
            &mut out
        };
        if timestamps {
            let _ = write!(w, "{} ", e.time);
        }
        let _ = w.write_all(e.log.as_bytes());
    }
    let _ = out.flush();
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let record = containers.find(&args.container)?;
    let path = super::lifecycle::log_path(&containers.dir_of(&record.id));
    let since = args.since.as_deref().map(parse_time).transpose()?;
    let until = args.until.as_deref().map(parse_time).transpose()?;
    let (mut entries, mut offset) = read_from(&path, 0)?;
    if args.tail != "all" {
        let n: usize = args.tail.parse().map_err(|_| {
            anyhow::anyhow!("invalid --tail {:?}: use a number or \"all\"", args.tail)
        })?;
        entries.drain(..entries.len().saturating_sub(n));
    }
    print(&entries, args.timestamps, since, until);
    if !args.follow {
        return Ok(0);
    }
    loop {
        // Read what came after the last look; stop once nothing watches the container and
        // everything it wrote has been printed.
        let watched = containers.is_locked(&record.id);
        let (more, next) = read_from(&path, offset)?;
        offset = next;
        print(&more, args.timestamps, since, until);
        if !watched {
            return Ok(0);
        }
        if more.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
