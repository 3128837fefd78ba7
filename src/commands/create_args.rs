//! The flags of `create` and `run` that describe a container. They are kept in the container's
//! record, so `start` can rebuild the container exactly as it was created.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::network_args::NetworkArgs;
use crate::registry::cli_args::RegistryArgs;
use crate::registry::pull::{PullOptions, PullPolicy};

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
}
