//! slirp4netns: the default user-mode network stack.
//!
//! Started as burrow's child, root in burrow's user namespace (which owns the container's
//! network namespace), with `--configure` (tap0 up as 10.0.2.100/24, default route via
//! 10.0.2.2, DNS forwarder 10.0.2.3), `--ready-fd` (burrow waits for it, bounded) and
//! `--exit-fd` (the read end of a pipe whose write end only the owner holds: when the owner
//! drops the attachment or dies, even by SIGKILL, slirp4netns exits; PR_SET_PDEATHSIG as well).
//! Published UDP ports go through its API socket (`add_hostfwd`), and TCP ones too with
//! `port_handler=slirp4netns` (else burrow's own proxy, [`super::port_proxy`], forwards them).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;

use super::NetError;
use super::helper::{self, Helper};
use super::ports::PortMapping;

pub const PACKAGE: &str = "slirp4netns";
/// The API socket, relative to the container directory (a full path could exceed the 108
/// bytes of sun_path).
const API_SOCKET: &str = "slirp.sock";
const READY_FD: i32 = 3;
const EXIT_FD: i32 = 4;

/// `--network slirp4netns[:opt=value,...]`, as podman spells the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlirpOptions {
    pub allow_host_loopback: bool,
    pub mtu: u32,
    pub cidr: Option<String>,
    pub enable_ipv6: bool,
    pub outbound_addr: Option<String>,
    pub outbound_addr6: Option<String>,
    pub port_handler: PortHandler,
}

/// Who forwards published TCP ports (`port_handler=`; UDP always goes through slirp4netns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortHandler {
    /// burrow's own proxy ([`super::port_proxy`]), podman's `rootlesskit`/`rootlessport`.
    #[default]
    Proxy,
    /// slirp4netns's `add_hostfwd`: every byte through libslirp's TCP stack, but the container
    /// sees the client's real address.
    Slirp4netns,
}

impl Default for SlirpOptions {
    fn default() -> Self {
        SlirpOptions {
            allow_host_loopback: false,
            mtu: 65520,
            cidr: None,
            enable_ipv6: false,
            outbound_addr: None,
            outbound_addr6: None,
            port_handler: PortHandler::default(),
        }
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, NetError> {
    match v {
        "true" | "1" | "yes" | "" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(NetError::BadOption {
            mode: "slirp4netns",
            option: format!("{key}={v}"),
            reason: "expected true or false".into(),
        }),
    }
}

impl SlirpOptions {
    pub fn parse(opts: &str) -> Result<SlirpOptions, NetError> {
        let mut o = SlirpOptions::default();
        for opt in opts.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
            let bad = |reason: &str| NetError::BadOption {
                mode: "slirp4netns",
                option: opt.to_string(),
                reason: reason.to_string(),
            };
            match k {
                "allow_host_loopback" => o.allow_host_loopback = parse_bool(k, v)?,
                "enable_ipv6" => o.enable_ipv6 = parse_bool(k, v)?,
                "mtu" => {
                    o.mtu = v
                        .parse()
                        .ok()
                        .filter(|m| (68..=65521).contains(m))
                        .ok_or_else(|| bad("the MTU must be 68 to 65521"))?
                }
                "cidr" => {
                    let (net, bits) = v.split_once('/').ok_or_else(|| bad("expected a.b.c.d/n"))?;
                    net.parse::<Ipv4Addr>()
                        .map_err(|_| bad("expected a.b.c.d/n"))?;
                    bits.parse::<u8>()
                        .ok()
                        .filter(|b| *b <= 30)
                        .ok_or_else(|| bad("expected a.b.c.d/n"))?;
                    o.cidr = Some(v.to_string())
                }
                "outbound_addr" => o.outbound_addr = Some(v.to_string()),
                "outbound_addr6" => o.outbound_addr6 = Some(v.to_string()),
                "port_handler" => {
                    o.port_handler = match v {
                        "slirp4netns" => PortHandler::Slirp4netns,
                        // podman's name, and that of its port handler's program.
                        "rootlesskit" | "rootlessport" => PortHandler::Proxy,
                        _ => return Err(bad("expected rootlesskit or slirp4netns")),
                    }
                }
                _ => {
                    return Err(bad(
                        "unknown option (allow_host_loopback, cidr, enable_ipv6, mtu, \
                         outbound_addr, outbound_addr6, port_handler)",
                    ));
                }
            }
        }
        Ok(o)
    }

    fn network(&self) -> (u32, u8) {
        let cidr = self.cidr.as_deref().unwrap_or("10.0.2.0/24");
        let (net, bits) = cidr.split_once('/').unwrap_or(("10.0.2.0", "24"));
        let net: Ipv4Addr = net.parse().unwrap_or(Ipv4Addr::new(10, 0, 2, 0));
        let bits: u8 = bits.parse().unwrap_or(24);
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        (u32::from(net) & mask, bits)
    }

    fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network().0 + n)
    }

    /// The container's address (10.0.2.100 by default).
    pub fn guest_address(&self) -> IpAddr {
        IpAddr::V4(self.nth(100))
    }

    /// The gateway, which is the host's loopback when allow_host_loopback is set (10.0.2.2).
    pub fn gateway(&self) -> IpAddr {
        IpAddr::V4(self.nth(2))
    }

    /// The DNS forwarder (10.0.2.3).
    pub fn dns(&self) -> IpAddr {
        IpAddr::V4(self.nth(3))
    }
}

/// A running slirp4netns.
#[derive(Debug)]
pub struct Slirp {
    helper: Helper,
}

impl Slirp {
    pub fn start(pid: i32, container_dir: &Path, opts: &SlirpOptions) -> Result<Slirp, NetError> {
        Slirp::start_with(pid, container_dir, opts, true)
    }

    /// For a user-defined network: tap0 is left unconfigured so that it can join the
    /// network's bridge, where slirp serves the whole subnet (gateway .2, DNS .3).
    pub fn start_bridged(pid: i32, run_dir: &Path, opts: &SlirpOptions) -> Result<Slirp, NetError> {
        Slirp::start_with(pid, run_dir, opts, false)
    }

    fn start_with(
        pid: i32,
        container_dir: &Path,
        opts: &SlirpOptions,
        configure: bool,
    ) -> Result<Slirp, NetError> {
        let program = helper::find_program("slirp4netns").ok_or(NetError::NotInstalled {
            program: "slirp4netns",
            package: PACKAGE,
            alternatives: "--network pasta, none or host",
        })?;
        let _ = std::fs::remove_file(container_dir.join(API_SOCKET));
        let (ready_r, ready_w) = helper::pipe()?;
        let (exit_r, exit_w) = helper::pipe()?;
        let mut cmd = Command::new(program);
        cmd.current_dir(container_dir);
        if configure {
            cmd.arg("--configure");
        }
        cmd.arg(format!("--mtu={}", opts.mtu))
            .arg("--enable-sandbox")
            .arg("--enable-seccomp")
            .arg(format!("--api-socket={API_SOCKET}"))
            .arg(format!("--ready-fd={READY_FD}"))
            .arg(format!("--exit-fd={EXIT_FD}"));
        if !opts.allow_host_loopback {
            cmd.arg("--disable-host-loopback");
        }
        if let Some(c) = &opts.cidr {
            cmd.arg(format!("--cidr={c}"));
        }
        if opts.enable_ipv6 {
            cmd.arg("--enable-ipv6");
        }
        if let Some(a) = &opts.outbound_addr {
            cmd.arg(format!("--outbound-addr={a}"));
        }
        if let Some(a) = &opts.outbound_addr6 {
            cmd.arg(format!("--outbound-addr6={a}"));
        }
        cmd.arg(pid.to_string()).arg("tap0");
        let mut helper = helper::spawn(
            "slirp4netns",
            cmd,
            vec![(ready_w, READY_FD), (exit_r, EXIT_FD)],
            &container_dir.join("slirp4netns.log"),
            Some(exit_w),
        )?;
        helper.wait_ready(&ready_r)?;
        Ok(Slirp { helper })
    }

    pub fn pid(&self) -> u32 {
        self.helper.pid()
    }

    /// Forward `m` from the host to the container through the API socket.
    pub fn add_hostfwd(&self, container_dir: &Path, m: &PortMapping) -> Result<(), NetError> {
        add_hostfwd(container_dir, m, None)
            .map(drop)
            .map_err(|e| match e {
                NetError::HelperFailed { name, reason, .. } if reason.starts_with("API") => {
                    NetError::HelperFailed {
                        name,
                        reason,
                        log: self.helper.log_text(),
                    }
                }
                e => e,
            })
    }
}

/// Forward `m` from the host to `guest_addr` (default: slirp's own guest address) through the
/// API socket in `api_dir`; returns the forward's id.
pub fn add_hostfwd(
    api_dir: &Path,
    m: &PortMapping,
    guest_addr: Option<Ipv4Addr>,
) -> Result<u64, NetError> {
    let host_addr = match m.host_ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) if ip.is_unspecified() => "0.0.0.0".to_string(),
        IpAddr::V6(_) => {
            return Err(NetError::Unsupported(format!(
                "publishing on an IPv6 address ({}) with slirp4netns: use --network pasta",
                m.host_ip
            )));
        }
    };
    let mut arguments = serde_json::json!({
        "proto": m.proto.as_str(),
        "host_addr": host_addr,
        "host_port": m.host_port,
        "guest_port": m.container_port,
    });
    if let Some(a) = guest_addr {
        arguments["guest_addr"] = a.to_string().into();
    }
    let request = serde_json::json!({"execute": "add_hostfwd", "arguments": arguments});
    let reply = api_call(api_dir, &request.to_string()).map_err(|e| NetError::HelperFailed {
        name: "slirp4netns",
        reason: format!("API socket: {e}"),
        log: String::new(),
    })?;
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
    if let Some(err) = v.get("error") {
        let desc = err
            .get("desc")
            .and_then(|d| d.as_str())
            .unwrap_or("unknown error")
            .to_string();
        if desc.contains("in use") || desc.contains("bind") {
            return Err(NetError::PortInUse {
                port: m.host_port,
                proto: m.proto.as_str(),
                ip: m.host_ip,
                source: std::io::Error::other(desc),
            });
        }
        return Err(NetError::HelperFailed {
            name: "slirp4netns",
            reason: format!("cannot forward {}: {desc}", super::ports::describe(m)),
            log: String::new(),
        });
    }
    Ok(v["return"]["id"].as_u64().unwrap_or_default())
}

/// Stop forwarding `id` (from [`add_hostfwd`]); a forward that is already gone is fine.
pub fn remove_hostfwd(api_dir: &Path, id: u64) -> Result<(), NetError> {
    let request = serde_json::json!({"execute": "remove_hostfwd", "arguments": {"id": id}});
    api_call(api_dir, &request.to_string())
        .map(drop)
        .map_err(|e| NetError::HelperFailed {
            name: "slirp4netns",
            reason: format!("API socket: {e}"),
            log: String::new(),
        })
}

/// One request on the API socket (slirp4netns answers one request per connection). The socket
/// is reached through /proc/self/fd so its path stays short.
fn api_call(container_dir: &Path, request: &str) -> std::io::Result<String> {
    let dir = std::fs::File::open(container_dir)?;
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}/{API_SOCKET}", dir.as_raw_fd());
    let mut s = UnixStream::connect(&path)?;
    s.set_read_timeout(Some(helper::READY_TIMEOUT))?;
    s.write_all(request.as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_as_podman_spells_them() {
        let o = SlirpOptions::parse("allow_host_loopback=true,mtu=1500,port_handler=slirp4netns")
            .unwrap();
        assert!(o.allow_host_loopback);
        assert_eq!(o.mtu, 1500);
        assert!(SlirpOptions::parse("mtu=9999999").is_err());
        assert!(SlirpOptions::parse("frobnicate=1").is_err());
        assert_eq!(o.port_handler, PortHandler::Slirp4netns);
        assert_eq!(
            SlirpOptions::parse("port_handler=rootlesskit")
                .unwrap()
                .port_handler,
            PortHandler::Proxy
        );
        assert_eq!(SlirpOptions::default().port_handler, PortHandler::Proxy);
        assert!(SlirpOptions::parse("port_handler=socat").is_err());
        let o = SlirpOptions::parse("cidr=10.5.0.0/16").unwrap();
        assert_eq!(o.guest_address().to_string(), "10.5.0.100");
        assert_eq!(o.gateway().to_string(), "10.5.0.2");
        assert_eq!(o.dns().to_string(), "10.5.0.3");
        let d = SlirpOptions::default();
        assert_eq!(d.guest_address().to_string(), "10.0.2.100");
    }
}
