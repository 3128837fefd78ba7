//! The flags of `create` and `run` that describe a container. They are kept in the container's
//! record, so `start` can rebuild the container exactly as it was created.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::network_args::NetworkArgs;
use crate::registry::cli_args::RegistryArgs;
use crate::registry::pull::{PullOptions, PullPolicy};
use crate::runtime::cgroups::{Limits, blkio_to_io_weight, shares_to_weight};

#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    #[serde(skip)]
    help: Option<bool>,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Keep STDIN open and pass it to the container
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to copy it from burrow's environment)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file of KEY=VALUE lines
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container (an absolute path; created if missing)
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Username or UID, with an optional group (user[:group])
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Additional groups to join
    #[arg(long, value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Overwrite the image's default ENTRYPOINT
    #[arg(long, value_name = "COMMAND")]
    pub entrypoint: Option<String>,
    /// Container host name (default: the short container id)
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Set metadata on the container (KEY=VALUE)
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Restart policy: no, on-failure[:max-retries], always, unless-stopped
    #[arg(long, default_value = "no", value_name = "POLICY")]
    pub restart: String,
    /// Signal to stop the container (default: the image's StopSignal, else SIGTERM)
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds to wait for the container to stop before killing it
    #[arg(long, value_name = "SECONDS")]
    pub stop_timeout: Option<u32>,
    /// Pull the image: always, missing, never or newer
    #[arg(long, value_enum, default_value = "missing")]
    #[serde(skip)]
    pub pull: PullPolicy,
    /// Suppress the pull output
    #[arg(short, long)]
    #[serde(skip)]
    pub quiet: bool,
    /// Platform to pull from a multi-platform image (OS/ARCH[/VARIANT], e.g. linux/arm64)
    #[arg(long, value_name = "PLATFORM", env = "DOCKER_DEFAULT_PLATFORM")]
    #[serde(skip)]
    pub platform: Option<String>,
    /// How to reach the registry when the image is pulled
    #[command(flatten)]
    #[serde(skip)]
    pub registry: RegistryArgs,
    /// Bind mount or volume: [SOURCE:]TARGET[:ro|rw|z|Z|U|nocopy]
    #[arg(short, long = "volume", value_name = "SPEC")]
    pub volume: Vec<String>,
    /// Mount: type=bind|volume|tmpfs,source=...,target=...[,readonly]
    #[arg(long, value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Mount a tmpfs: TARGET[:OPTIONS]
    #[arg(long, value_name = "TARGET")]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Mount the volumes of another container: CONTAINER[:ro|rw]
    #[arg(long, value_name = "CONTAINER")]
    pub volumes_from: Vec<String>,
    /// Logging driver: json-file (docker's, the default), k8s-file (podman's CRI format) or
    /// none (no log; `logs` refuses)
    #[arg(long, value_name = "DRIVER")]
    #[serde(default)]
    pub log_driver: Option<String>,
    /// Log driver option: path=FILE, max-size=SIZE (e.g. 10m), max-file=N (with max-size)
    #[arg(long, value_name = "KEY=VALUE")]
    #[serde(default)]
    pub log_opt: Vec<String>,
    #[command(flatten)]
    pub net: NetworkArgs,
    #[command(flatten)]
    #[serde(default)]
    pub resources: ResourceArgs,
    /// Image to run
    pub image: String,
    /// Command and arguments (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

impl CreateArgs {
    /// What a pull for this container uses (`--platform`, `--tls-verify`, `--authfile`,
    /// `--cert-dir`).
    pub fn pull_options(&self) -> PullOptions {
        PullOptions {
            client: self.registry.client_options(),
            platform: self.platform.clone(),
            ..PullOptions::default()
        }
    }
}

/// docker's resource limits. They are enforced through a cgroup v2 tree delegated to the
/// user; elsewhere (cgroups v1 or hybrid) `create` and `run` warn that they are ignored.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
pub struct ResourceArgs {
    /// Memory limit (e.g. 512m, 1g; at least 6m); limits are enforced only with a delegated
    /// cgroup v2, see README "Resource limits"
    #[arg(short = 'm', long, value_name = "BYTES", value_parser = parse_bytes)]
    pub memory: Option<i64>,
    /// Memory plus swap limit, at least --memory; -1 for unlimited swap (default: twice
    /// --memory)
    #[arg(long, value_name = "BYTES", value_parser = parse_swap, allow_negative_numbers = true)]
    pub memory_swap: Option<i64>,
    /// Memory soft limit (at least 6m)
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub memory_reservation: Option<i64>,
    /// Number of CPUs (e.g. 0.5 or 2)
    #[arg(long, value_name = "NUMBER", value_parser = parse_cpus, allow_negative_numbers = true)]
    pub cpus: Option<i64>,
    /// CPU shares (relative weight, default 1024)
    #[arg(
        short = 'c',
        long,
        value_name = "SHARES",
        allow_negative_numbers = true
    )]
    pub cpu_shares: Option<i64>,
    /// CPU time, in microseconds, the container may use per --cpu-period (-1: no limit)
    #[arg(long, value_name = "MICROSECONDS", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// The period of --cpu-quota, in microseconds (1000 to 1000000, default 100000)
    #[arg(long, value_name = "MICROSECONDS")]
    pub cpu_period: Option<i64>,
    /// CPUs the container may run on (0-3, 0,1)
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (0-3, 0,1)
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Most processes the container may have (-1: unlimited)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (relative, 10 to 1000; 0: the default)
    #[arg(long, value_name = "WEIGHT")]
    pub blkio_weight: Option<u16>,
}

/// docker's smallest memory limit and reservation.
const MIN_MEMORY: i64 = 6 << 20;

impl ResourceArgs {
    /// The flags given, for the warning that they are ignored.
    pub fn given(&self) -> Vec<&'static str> {
        [
            ("--memory", self.memory.is_some()),
            ("--memory-swap", self.memory_swap.is_some()),
            ("--memory-reservation", self.memory_reservation.is_some()),
            ("--cpus", self.cpus.is_some()),
            ("--cpu-shares", self.cpu_shares.is_some()),
            ("--cpu-quota", self.cpu_quota.is_some()),
            ("--cpu-period", self.cpu_period.is_some()),
            ("--cpuset-cpus", self.cpuset_cpus.is_some()),
            ("--cpuset-mems", self.cpuset_mems.is_some()),
            ("--pids-limit", self.pids_limit.is_some()),
            ("--blkio-weight", self.blkio_weight.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    /// docker's `HostConfig.MemorySwap`: with --memory and no --memory-swap, twice the
    /// memory.
    pub fn memory_swap_total(&self) -> i64 {
        match (self.memory.filter(|&m| m > 0), self.memory_swap) {
            (_, Some(swap)) if swap != 0 => swap,
            (Some(memory), _) => memory * 2,
            _ => 0,
        }
    }

    /// Refuse what docker's daemon refuses, with its words. `ncpu`: the CPUs there are.
    pub fn validate(&self, ncpu: usize) -> anyhow::Result<()> {
        let memory = self.memory.unwrap_or(0);
        let swap = self.memory_swap.unwrap_or(0);
        let reservation = self.memory_reservation.unwrap_or(0);
        let nano_cpus = self.cpus.unwrap_or(0);
        let quota = self.cpu_quota.unwrap_or(0);
        let period = self.cpu_period.unwrap_or(0);
        if memory != 0 && memory < MIN_MEMORY {
            anyhow::bail!("Minimum memory limit allowed is 6MB");
        }
        if memory == 0 && swap > 0 {
            anyhow::bail!(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
            );
        }
        if memory > 0 && swap > 0 && swap < memory {
            anyhow::bail!("Minimum memoryswap limit should be larger than memory limit, see usage");
        }
        if reservation != 0 && reservation < MIN_MEMORY {
            anyhow::bail!("Minimum memory reservation allowed is 6MB");
        }
        if memory > 0 && reservation > 0 && memory < reservation {
            anyhow::bail!(
                "Minimum memory limit can not be less than memory reservation limit, see usage"
            );
        }
        if nano_cpus < 0 || nano_cpus > ncpu as i64 * NANO {
            anyhow::bail!(
                "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            );
        }
        if nano_cpus > 0 && quota > 0 {
            anyhow::bail!("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
        }
        if nano_cpus > 0 && period > 0 {
            anyhow::bail!("Conflicting options: Nano CPUs and CPU Period cannot both be set");
        }
        if period != 0 && !(1000..=1_000_000).contains(&period) {
            anyhow::bail!(
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
            );
        }
        if quota > 0 && quota < 1000 {
            anyhow::bail!("CPU cfs quota can not be less than 1ms (i.e. 1000)");
        }
        if let Some(w) = self.blkio_weight
            && w > 0
            && !(10..=1000).contains(&w)
        {
            anyhow::bail!("Range of blkio weight is from 10 to 1000");
        }
        for (list, what) in [(&self.cpuset_cpus, "cpus"), (&self.cpuset_mems, "mems")] {
            if let Some(list) = list
                && !is_cpu_list(list)
            {
                anyhow::bail!("Invalid value {list} for cpuset {what}");
            }
        }
        Ok(())
    }

    /// The limits in cgroup v2 terms (call after [`ResourceArgs::validate`]). Zero, and -1
    /// where docker takes it, mean no limit, which a new cgroup has.
    pub fn limits(&self) -> Limits {
        let positive = |v: Option<i64>| v.filter(|&v| v > 0);
        let memory = positive(self.memory);
        let period = positive(self.cpu_period).unwrap_or(100_000);
        let cpu_max = match (positive(self.cpus), self.cpu_quota, self.cpu_period) {
            (Some(nano), _, _) => Some((nano * period / NANO, period)),
            (None, Some(quota), _) if quota > 0 => Some((quota, period)),
            (None, _, Some(p)) if p > 0 => Some((-1, period)),
            _ => None,
        };
        Limits {
            memory_max: memory,
            // cgroup v2 limits swap alone; docker's figure counts the memory too.
            swap_max: memory.and_then(|m| match self.memory_swap {
                Some(-1) => None,
                Some(total) if total > 0 => Some(total - m),
                _ => Some(m),
            }),
            memory_low: positive(self.memory_reservation),
            cpu_max,
            cpu_weight: positive(self.cpu_shares).map(|s| shares_to_weight(s as u64)),
            cpuset_cpus: self.cpuset_cpus.clone().filter(|s| !s.is_empty()),
            cpuset_mems: self.cpuset_mems.clone().filter(|s| !s.is_empty()),
            pids_max: positive(self.pids_limit),
            io_weight: self.blkio_weight.filter(|&w| w > 0).map(blkio_to_io_weight),
        }
    }
}

const NANO: i64 = 1_000_000_000;

/// docker's sizes (`RAMInBytes`): a decimal number, then an optional binary unit `k`, `m`,
/// `g`, `t` or `p`, with an optional `i` and `b` (`64m`, `1.5GiB`, `512b`, `4096`).
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid size: '{s}'");
    let lower = s.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit);
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if bytes >= i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// `--memory-swap`: a size, or -1 for unlimited swap.
pub fn parse_swap(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    parse_bytes(s)
}

/// `--cpus`: a decimal number of CPUs, as nano-CPUs.
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {s} as a rational number");
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return Err(bad());
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 9 {
        return Err("value is too precise".into());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let fraction: i64 = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
    let nano = whole
        .checked_mul(NANO)
        .and_then(|n| n.checked_add(fraction))
        .ok_or_else(bad)?;
    Ok(if negative { -nano } else { nano })
}

/// A cpuset list: numbers and ranges, comma-separated (`0-3,5`).
fn is_cpu_list(list: &str) -> bool {
    let number = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    list.split(',').all(|part| match part.split_once('-') {
        Some((a, b)) => number(a) && number(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok(),
        None => number(part),
    })
}

/// `--restart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    No,
    OnFailure { max_retries: u32 },
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    pub fn parse(s: &str) -> anyhow::Result<RestartPolicy> {
        Ok(match s.split_once(':') {
            None | Some((_, "")) if s.trim_end_matches(':') == "no" || s.is_empty() => {
                RestartPolicy::No
            }
            None if s == "always" => RestartPolicy::Always,
            None if s == "unless-stopped" => RestartPolicy::UnlessStopped,
            None if s == "on-failure" => RestartPolicy::OnFailure { max_retries: 0 },
            Some(("on-failure", n)) => RestartPolicy::OnFailure {
                max_retries: n.parse().map_err(|_| {
                    anyhow::anyhow!("invalid restart policy {s:?}: max-retries must be a number")
                })?,
            },
            _ => anyhow::bail!(
                "invalid restart policy {s:?}: use no, on-failure[:max-retries], always or unless-stopped"
            ),
        })
    }

    /// Whether a container that exited with `code` (not stopped by the user) starts again
    /// after `restarts` restarts.
    pub fn should_restart(&self, code: i32, restarts: u32) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { max_retries } => {
                code != 0 && (*max_retries == 0 || restarts < *max_retries)
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert_eq!(RestartPolicy::parse("no").unwrap(), RestartPolicy::No);
        assert_eq!(
            RestartPolicy::parse("always").unwrap(),
            RestartPolicy::Always
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:3").unwrap(),
            RestartPolicy::OnFailure { max_retries: 3 }
        );
        assert!(RestartPolicy::parse("sometimes").is_err());
        let p = RestartPolicy::OnFailure { max_retries: 3 };
        assert!(p.should_restart(1, 2));
        assert!(!p.should_restart(1, 3));
        assert!(!p.should_restart(0, 0));
        assert!(RestartPolicy::Always.should_restart(0, 100));
        assert!(!RestartPolicy::No.should_restart(1, 0));
    }

    #[test]
    fn sizes_as_docker() {
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("64M"), Ok(64 << 20));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("2k"), Ok(2048));
        assert_eq!(parse_bytes("2kb"), Ok(2048));
        assert_eq!(parse_bytes("512b"), Ok(512));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("10 m"), Ok(10 << 20));
        for bad in ["", "m", "-1", "1x", "1.m", "12mbb", "1 2m"] {
            assert_eq!(parse_bytes(bad), Err(format!("invalid size: '{bad}'")));
        }
        assert_eq!(parse_swap("-1"), Ok(-1));
        assert_eq!(parse_swap("128m"), Ok(128 << 20));
    }

    #[test]
    fn cpus_as_nano_cpus() {
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus(".25"), Ok(250_000_000));
        assert_eq!(parse_cpus("1.000000001"), Ok(1_000_000_001));
        assert_eq!(parse_cpus("-1"), Ok(-1_000_000_000));
        assert_eq!(
            parse_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
        for bad in ["", ".", "x", "1.2.3", "1e3", "--1"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
    }

    fn resources(f: impl FnOnce(&mut ResourceArgs)) -> ResourceArgs {
        let mut r = ResourceArgs::default();
        f(&mut r);
        r
    }

    fn refusal(r: &ResourceArgs) -> String {
        r.validate(4).unwrap_err().to_string()
    }

    #[test]
    fn validation_as_docker_daemon() {
        assert_eq!(
            refusal(&resources(|r| r.memory = Some(1024))),
            "Minimum memory limit allowed is 6MB"
        );
        assert_eq!(
            refusal(&resources(|r| {
                r.memory = Some(64 << 20);
                r.memory_swap = Some(32 << 20);
            })),
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        );
        assert!(refusal(&resources(|r| r.memory_swap = Some(64 << 20))).contains("Memory limit"));
        assert_eq!(
            refusal(&resources(|r| r.cpus = Some(-NANO))),
            "Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available"
        );
        assert!(refusal(&resources(|r| r.cpus = Some(5 * NANO))).contains("Range of CPUs"));
        assert!(
            refusal(&resources(|r| {
                r.cpus = Some(NANO);
                r.cpu_quota = Some(50_000);
            }))
            .contains("Conflicting options")
        );
        assert!(refusal(&resources(|r| r.cpu_period = Some(10))).contains("cfs period"));
        assert!(refusal(&resources(|r| r.cpu_quota = Some(10))).contains("cfs quota"));
        assert!(refusal(&resources(|r| r.blkio_weight = Some(5))).contains("blkio weight"));
        assert_eq!(
            refusal(&resources(|r| r.cpuset_cpus = Some("3-1".into()))),
            "Invalid value 3-1 for cpuset cpus"
        );
        assert!(refusal(&resources(|r| r.memory_reservation = Some(1))).contains("reservation"));
        for ok in [
            resources(|_| {}),
            resources(|r| {
                r.memory = Some(64 << 20);
                r.memory_swap = Some(-1);
                r.cpus = Some(NANO / 2);
                r.pids_limit = Some(-1);
                r.cpuset_cpus = Some("0-1,3".into());
                r.blkio_weight = Some(0);
            }),
            resources(|r| {
                r.cpu_quota = Some(-1);
                r.cpu_period = Some(50_000);
            }),
        ] {
            ok.validate(4).unwrap();
        }
    }

    #[test]
    fn limits_in_cgroup_v2_terms() {
        let r = resources(|r| {
            r.memory = Some(64 << 20);
            r.cpus = Some(NANO / 2);
            r.pids_limit = Some(50);
            r.cpu_shares = Some(1024);
        });
        let limits = r.limits();
        assert_eq!(limits.memory_max, Some(64 << 20));
        // docker's default --memory-swap is twice --memory: as much swap as memory.
        assert_eq!(limits.swap_max, Some(64 << 20));
        assert_eq!(r.memory_swap_total(), 128 << 20);
        assert_eq!(limits.cpu_max, Some((50_000, 100_000)));
        assert_eq!(limits.pids_max, Some(50));
        assert_eq!(limits.cpu_weight, Some(39));
        let r = resources(|r| {
            r.memory = Some(64 << 20);
            r.memory_swap = Some(96 << 20);
            r.cpu_quota = Some(20_000);
            r.cpu_period = Some(50_000);
        });
        assert_eq!(r.limits().swap_max, Some(32 << 20));
        assert_eq!(r.limits().cpu_max, Some((20_000, 50_000)));
        let unlimited = resources(|r| {
            r.memory_swap = Some(-1);
            r.pids_limit = Some(-1);
            r.cpu_quota = Some(-1);
            r.blkio_weight = Some(0);
        });
        assert!(unlimited.limits().is_empty());
        assert_eq!(
            resources(|r| {
                r.memory = Some(64 << 20);
                r.memory_swap = Some(-1);
            })
            .limits()
            .swap_max,
            None
        );
    }
}
