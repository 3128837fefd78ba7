//! pasta (from the passt package): a user-mode stack that copies the host's addresses and
//! routes into the container and forwards ports itself.
//!
//! Started as burrow's child in the foreground (`-f`), root in burrow's user namespace, with
//! `--netns /proc/self/fd/N` (the container's network namespace, opened by burrow; a path
//! implies `--netns-only`: pasta is already in the right user namespace), `--config-net`, and its ports given on the command line. Readiness: pasta writes
//! its pid file after the interface is configured and its ports are bound; burrow passes a pipe
//! as that file. It ends when the attachment is dropped (SIGTERM) or its owner dies
//! (PR_SET_PDEATHSIG).

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use super::NetError;
use super::helper::{self, Helper};
use super::ports::{PortMapping, Proto};

pub const PACKAGE: &str = "passt";
const PIDFILE_FD: i32 = 3;
/// The container's network namespace, opened by burrow and passed down: pasta drops its
/// capabilities early, after which it may not open /proc/PID/ns/net of a process holding more.
const NETNS_FD: i32 = 4;
/// The address the container's resolv.conf names when the host's resolver is on loopback;
/// pasta forwards DNS queries sent to it to the host's first resolver.
pub const DNS_FORWARD: &str = "169.254.1.1";

/// `--network pasta[:arg,arg,...]`: extra pasta arguments, as podman passes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PastaOptions {
    pub args: Vec<String>,
}

impl PastaOptions {
    pub fn parse(opts: &str) -> Result<PastaOptions, NetError> {
        let args: Vec<String> = opts
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        for a in &args {
            if matches!(
                a.as_str(),
                "-f" | "--foreground" | "-P" | "--pid" | "--netns"
            ) || a.starts_with("--netns=")
            {
                return Err(NetError::BadOption {
                    mode: "pasta",
                    option: a.clone(),
                    reason: "burrow sets this option itself".into(),
                });
            }
        }
        Ok(PastaOptions { args })
    }

    /// Whether pasta maps the gateway address to the host's loopback (its default).
    pub fn maps_gateway(&self) -> bool {
        !self.args.iter().any(|a| a == "--no-map-gw")
    }
}

fn port_spec(m: &PortMapping) -> String {
    let addr = if m.host_ip.is_unspecified() {
        String::new()
    } else {
        format!("{}/", m.host_ip)
    };
    format!("{addr}{}:{}", m.host_port, m.container_port)
}

/// A running pasta.
#[derive(Debug)]
pub struct Pasta {
    helper: Helper,
}

impl Pasta {
    pub fn start(
        pid: i32,
        container_dir: &Path,
        opts: &PastaOptions,
        ports: &[PortMapping],
        dns_forward: bool,
    ) -> Result<Pasta, NetError> {
        let program = helper::find_program("pasta").ok_or(NetError::NotInstalled {
            program: "pasta",
            package: PACKAGE,
            alternatives: "--network slirp4netns, none or host",
        })?;
        let (ready_r, ready_w) = helper::pipe()?;
        let netns: std::os::fd::OwnedFd = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|source| NetError::Sys {
                what: "cannot open the container's network namespace",
                source,
            })?
            .into();
        let mut cmd = Command::new(program);
        cmd.current_dir(container_dir)
            .args(["-f", "-q", "--config-net", "--runas", "0:0"])
            .arg("--netns")
            .arg(format!("/proc/self/fd/{NETNS_FD}"))
            .arg("-P")
            .arg(format!("/proc/self/fd/{PIDFILE_FD}"));
        for (flag, proto) in [("-t", Proto::Tcp), ("-u", Proto::Udp)] {
            let specs: Vec<String> = ports
                .iter()
                .filter(|m| m.proto == proto)
                .map(port_spec)
                .collect();
            if !opts.args.iter().any(|a| a == flag) {
                cmd.arg(flag).arg(if specs.is_empty() {
                    "none".to_string()
                } else {
                    specs.join(",")
                });
            } else {
                for s in specs {
                    cmd.arg(flag).arg(s);
                }
            }
        }
        for flag in ["-T", "-U"] {
            if !opts.args.iter().any(|a| a == flag) {
                cmd.args([flag, "none"]);
            }
        }
        if dns_forward {
            cmd.args(["--dns-forward", DNS_FORWARD]);
        }
        cmd.args(&opts.args);
        let mut helper = helper::spawn(
            "pasta",
            cmd,
            vec![(ready_w, PIDFILE_FD), (netns, NETNS_FD)],
            &container_dir.join("pasta.log"),
            None,
        )?;
        helper.wait_ready(&ready_r).map_err(|e| match e {
            NetError::HelperFailed { name, reason, log }
                if log.contains("ddress already in use") =>
            {
                NetError::HelperFailed {
                    name,
                    reason: format!("{reason}: a published port is already in use"),
                    log,
                }
            }
            e => e,
        })?;
        Ok(Pasta { helper })
    }

    pub fn pid(&self) -> u32 {
        self.helper.pid()
    }
}

/// The host's address pasta copies into the container (the source address of the default
/// route), found with a UDP connect, which sends nothing.
pub fn host_address() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("203.0.113.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// The IPv4 default gateway, from /proc/net/route.
pub fn default_gateway() -> Option<IpAddr> {
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 2 && f[1] == "00000000" {
            let g = u32::from_str_radix(f[2], 16).ok()?;
            Some(IpAddr::V4(std::net::Ipv4Addr::from(u32::from_be(g))))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_specs() {
        let o = PastaOptions::parse("--no-map-gw,-t,9000").unwrap();
        assert!(!o.maps_gateway());
        assert!(PastaOptions::parse("-f").is_err());
        let m = PortMapping {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 8080,
            container_port: 80,
            proto: Proto::Tcp,
        };
        assert_eq!(port_spec(&m), "127.0.0.1/8080:80");
    }
}
