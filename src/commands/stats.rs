//! `burrow stats`: CPU, memory, network, block I/O and pids of running containers.
//!
//! Without a cgroup of its own a container's usage is the sum over the processes of its pid
//! namespace: CPU time and resident memory from /proc, network from its network namespace.
//! Reading another user's processes takes privilege over them, so a child joins each
//! container's user namespace and samples there.

use std::io::Read;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::GlobalArgs;
use crate::containers::{ContainerRecord, Status};

use super::format::human_size;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Print one sample and exit
    #[arg(long)]
    pub no_stream: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format the output using a Go template, "table ...", or "json"
    #[arg(long)]
    pub format: Option<String>,
    pub containers: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Sample {
    cpu_ticks: u64,
    rss_bytes: u64,
    pids: u64,
    net_rx: u64,
    net_tx: u64,
    blk_read: u64,
    blk_write: u64,
}

fn numbers_after(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// Sum over the processes that share `first`'s pid namespace (call with privilege over them).
fn sample(first: i32) -> Sample {
    let mut s = Sample::default();
    let Ok(target) = std::fs::read_link(format!("/proc/{first}/ns/pid")) else {
        return s;
    };
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .ok()
            .as_ref()
            != Some(&target)
        {
            continue;
        }
        s.pids += 1;
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // Fields 14 and 15 (utime, stime) are 12 and 13 after the command name.
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            s.cpu_ticks += ticks(11) + ticks(12);
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            s.rss_bytes += status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| numbers_after(l).first().copied().unwrap_or(0) * 1024)
                .unwrap_or(0);
        }
        if let Ok(io) = std::fs::read_to_string(format!("/proc/{pid}/io")) {
            for l in io.lines() {
                if let Some(v) = l.strip_prefix("read_bytes:") {
                    s.blk_read += v.trim().parse::<u64>().unwrap_or(0);
                } else if let Some(v) = l.strip_prefix("write_bytes:") {
                    s.blk_write += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    if let Ok(dev) = std::fs::read_to_string(format!("/proc/{first}/net/dev")) {
        for l in dev.lines().skip(2) {
            if let Some((name, rest)) = l.split_once(':')
                && name.trim() != "lo"
            {
                let n = numbers_after(rest);
                s.net_rx += n.first().copied().unwrap_or(0);
                s.net_tx += n.get(8).copied().unwrap_or(0);
            }
        }
    }
    s
}

/// Two samples `interval` apart, taken by a child inside the container's user namespace.
fn measure(record: &ContainerRecord, interval: Duration) -> anyhow::Result<(Sample, Sample)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: burrow is single-threaded; the child samples, writes and exits.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            let pid = record.pid;
            let _ = crate::runtime::join::enter_userns_of(nix::unistd::Pid::from_raw(pid));
            let a = sample(pid);
            std::thread::sleep(interval);
            let b = sample(pid);
            let text = serde_json::to_vec(&(a, b)).unwrap_or_default();
            let _ = nix::unistd::write(&w, &text);
            // SAFETY: leave the forked copy without running destructors.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let mut text = Vec::new();
            std::fs::File::from(r).read_to_end(&mut text)?;
            let _ = nix::sys::wait::waitpid(child, None);
            Ok(serde_json::from_slice(&text)?)
        }
    }
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| numbers_after(l).first().copied().unwrap_or(0) * 1024)
        })
        .unwrap_or(0)
}

fn row(
    record: &ContainerRecord,
    a: Sample,
    b: Sample,
    interval: Duration,
    no_trunc: bool,
) -> Value {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu =
        (b.cpu_ticks.saturating_sub(a.cpu_ticks)) as f64 / hz / interval.as_secs_f64() * 100.0;
    let total = mem_total();
    let mem_perc = if total > 0 {
        b.rss_bytes as f64 / total as f64 * 100.0
    } else {
        0.0
    };
    json!({
        "ID": if no_trunc { record.id.clone() } else { record.id[..12].to_string() },
        "Container": if no_trunc { record.id.clone() } else { record.id[..12].to_string() },
        "Name": record.name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", human_size(b.rss_bytes), human_size(total)),
        "MemPerc": format!("{mem_perc:.2}%"),
        "NetIO": format!("{} / {}", human_size(b.net_rx), human_size(b.net_tx)),
        "BlockIO": format!("{} / {}", human_size(b.blk_read), human_size(b.blk_write)),
        "PIDs": b.pids.to_string(),
    })
}

fn header(field: &str) -> Option<String> {
    Some(
        match field {
            "ID" | "Container" => "CONTAINER ID",
            "Name" => "NAME",
            "CPUPerc" => "CPU %",
            "MemUsage" => "MEM USAGE / LIMIT",
            "MemPerc" => "MEM %",
            "NetIO" => "NET I/O",
            "BlockIO" => "BLOCK I/O",
            "PIDs" => "PIDS",
            _ => return None,
        }
        .to_string(),
    )
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let interval = Duration::from_millis(500);
    let format = args.format.clone().unwrap_or_else(|| {
        "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}".into()
    });
    loop {
        let records: Vec<ContainerRecord> = if args.containers.is_empty() {
            containers
                .list()?
                .into_iter()
                .filter(|r| args.all || r.status == Status::Running)
                .collect()
        } else {
            args.containers
                .iter()
                .map(|k| containers.find(k))
                .collect::<Result<_, _>>()?
        };
        let mut rows = Vec::new();
        for r in &records {
            let (a, b) = if r.status == Status::Running {
                measure(r, interval)?
            } else {
                (Sample::default(), Sample::default())
            };
            rows.push(row(r, a, b, interval, args.no_trunc));
        }
        let text = super::format::render_rows(&format, &rows, &header)?;
        if args.no_stream {
            out!("{text}");
            return Ok(0);
        }
        // Redraw in place, as docker does on a terminal; a reader that has gone ends the stream.
        use std::io::Write;
        write!(crate::output::Stdout, "\x1b[2J\x1b[H{text}")?;
    }
}
