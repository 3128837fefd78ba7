//! Container networking: the network mode, the files that describe the network to the
//! container (/etc/hosts, /etc/resolv.conf, /etc/hostname), and attaching user-mode networking
//! (slirp4netns or pasta) with published ports.
//!
//! The container's network namespace is created by the runtime and owned by burrow's user
//! namespace; `attach` runs in burrow (root in that user namespace) after the namespace exists
//! and before the container's command starts. Everything it starts is a child of the caller
//! that exits when the returned [`NetworkAttachment`] is dropped or the caller dies.

pub mod bridge;
pub mod etc_files;
mod helper;
pub mod netlink;
pub mod networks;
pub mod pasta;
pub mod port_proxy;
pub mod ports;
pub mod slirp4netns;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::runtime::Network;

pub use etc_files::DnsConfig;
pub use helper::pipe as helper_pipe;
pub use pasta::PastaOptions;
pub use ports::{Endpoint, NetworkRecord, PortMapping, Proto};
pub use slirp4netns::{PortHandler, SlirpOptions};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(
        "unknown network mode {0:?}: use none, host, slirp4netns[:options], pasta[:options], \
         container:NAME or the name of a network made with 'burrow network create'"
    )]
    BadMode(String),
    #[error("{0} is not supported yet")]
    Unsupported(String),
    #[error("{program} not found: install the '{package}' package, or use {alternatives}")]
    NotInstalled {
        program: &'static str,
        package: &'static str,
        alternatives: &'static str,
    },
    #[error("cannot start {name}: {source}")]
    Spawn {
        name: &'static str,
        source: std::io::Error,
    },
    #[error("{name} failed: {reason}{}", if log.is_empty() { String::new() } else { format!(": {log}") })]
    HelperFailed {
        name: &'static str,
        reason: String,
        log: String,
    },
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid port specification {spec:?}: {reason}")]
    BadPort { spec: String, reason: String },
    #[error(
        "port {port} is already in use on {ip} ({proto}): {source}: choose another host port \
         or stop what listens there"
    )]
    PortInUse {
        port: u16,
        proto: &'static str,
        ip: IpAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot publish port {port} on {ip}: {source}: rootless containers can publish host \
         ports from {start} up (sysctl net.ipv4.ip_unprivileged_port_start)"
    )]
    PortDenied {
        port: u16,
        ip: IpAddr,
        source: std::io::Error,
        start: String,
    },
    #[error("cannot find a free port on {ip}: {source}")]
    NoFreePort { ip: IpAddr, source: std::io::Error },
    #[error("invalid {mode} option {option:?}: {reason}")]
    BadOption {
        mode: &'static str,
        option: String,
        reason: String,
    },
    #[error("invalid --add-host {spec:?}: expected NAME:IP or NAME:host-gateway")]
    BadAddHost { spec: String },
    #[error("network {0} not found: create it with 'burrow network create {0}'")]
    NoSuchNetwork(String),
    #[error("network {0} already exists")]
    NetworkExists(String),
    #[error("invalid network name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadNetworkName(String),
    #[error(transparent)]
    Lock(#[from] crate::storage::StorageError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// A network namespace with only `lo`.
    None,
    /// The host's network namespace.
    Host,
    Slirp4netns(SlirpOptions),
    Pasta(PastaOptions),
    /// Share another container's network namespace.
    Container(String),
    /// A user-defined network (`burrow network create`), see [`bridge`].
    Network(String),
}

impl NetworkMode {
    /// The default: slirp4netns when installed, else pasta, else none.
    pub fn default_mode() -> NetworkMode {
        if helper::find_program("slirp4netns").is_some() {
            NetworkMode::Slirp4netns(SlirpOptions::default())
        } else if helper::find_program("pasta").is_some() {
            NetworkMode::Pasta(PastaOptions::default())
        } else {
            log::warn!(
                "neither slirp4netns nor pasta is installed: the container has no network \
                 (install the 'slirp4netns' or 'passt' package)"
            );
            NetworkMode::None
        }
    }

    /// Parse `--network`. A bare word that is not a mode is a user-defined network's name.
    pub fn parse(mode: &str) -> Result<NetworkMode, NetError> {
        let (kind, opts) = mode.split_once(':').unwrap_or((mode, ""));
        let mode = match kind {
            "none" if opts.is_empty() => NetworkMode::None,
            "host" if opts.is_empty() => NetworkMode::Host,
            "" | "default" | "bridge" | "private" if opts.is_empty() => NetworkMode::default_mode(),
            "slirp4netns" => NetworkMode::Slirp4netns(SlirpOptions::parse(opts)?),
            "pasta" => NetworkMode::Pasta(PastaOptions::parse(opts)?),
            "container" if !opts.is_empty() => NetworkMode::Container(opts.to_string()),
            name if opts.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) =>
            {
                NetworkMode::Network(name.to_string())
            }
            _ => return Err(NetError::BadMode(mode.to_string())),
        };
        Ok(mode)
    }

    pub fn name(&self) -> String {
        match self {
            NetworkMode::None => "none".into(),
            NetworkMode::Host => "host".into(),
            NetworkMode::Slirp4netns(_) => "slirp4netns".into(),
            NetworkMode::Pasta(_) => "pasta".into(),
            NetworkMode::Container(c) => format!("container:{c}"),
            NetworkMode::Network(n) => n.clone(),
        }
    }

    /// The slirp4netns options of the container's own stack.
    fn slirp(&self) -> Option<SlirpOptions> {
        match self {
            NetworkMode::Slirp4netns(o) => Some(o.clone()),
            _ => None,
        }
    }
}

/// An `--add-host` entry: an address, or the host as the container reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAddr {
    Ip(IpAddr),
    HostGateway,
}

pub fn parse_add_host(spec: &str) -> Result<(String, HostAddr), NetError> {
    // docker accepts NAME:IP and NAME=IP; an IPv6 address contains ':' itself.
    let (name, ip) = spec
        .split_once('=')
        .or_else(|| spec.split_once(':'))
        .ok_or_else(|| NetError::BadAddHost { spec: spec.into() })?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(NetError::BadAddHost { spec: spec.into() });
    }
    let addr = if ip == "host-gateway" {
        HostAddr::HostGateway
    } else {
        HostAddr::Ip(
            ip.parse()
                .map_err(|_| NetError::BadAddHost { spec: spec.into() })?,
        )
    };
    Ok((name.to_string(), addr))
}

/// Everything the network of one container needs, decided before it starts.
#[derive(Debug, Clone)]
pub struct NetworkPlan {
    pub mode: NetworkMode,
    /// `-p`, `-P`: host port 0 means a free port chosen when the container starts.
    pub ports: Vec<PortMapping>,
    pub dns: DnsConfig,
    pub add_hosts: Vec<(String, HostAddr)>,
    pub aliases: Vec<String>,
    /// The user-defined networks the container joins: the one of `--network NAME` first, then
    /// those added with `network connect` while it was not running.
    pub networks: Vec<networks::NetworkDef>,
    /// Where the networks' runtime directories are.
    pub storage_root: PathBuf,
}

/// The container a network is attached to.
pub struct Who<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub hostname: &'a str,
}

impl Default for NetworkPlan {
    fn default() -> Self {
        NetworkPlan {
            mode: NetworkMode::None,
            ports: Vec::new(),
            dns: DnsConfig::default(),
            add_hosts: Vec::new(),
            aliases: Vec::new(),
            networks: Vec::new(),
            storage_root: PathBuf::new(),
        }
    }
}

/// The user-mode stack attached to a running container.
#[derive(Debug)]
enum Backend {
    Slirp(slirp4netns::Slirp),
    Pasta(pasta::Pasta),
}

/// Helpers (slirp4netns, pasta, the port proxy) attached to a running container; dropping it
/// tears them down.
#[derive(Debug, Default)]
pub struct NetworkAttachment {
    /// Forwards the published TCP ports with slirp4netns (unless `port_handler=slirp4netns`)
    /// and on user-defined networks.
    proxy: Option<port_proxy::PortProxy>,
    backend: Option<Backend>,
    /// The ports as published (random host ports resolved).
    pub ports: Vec<PortMapping>,
    membership: Option<Membership>,
}

/// A container on user-defined networks; dropping it takes the container off all of them
/// (including those connected later, as its network record lists them).
#[derive(Debug)]
struct Membership {
    storage_root: PathBuf,
    id: String,
    container_dir: PathBuf,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let is_live = bridge::member_is_live(&self.storage_root);
        for endpoint in NetworkRecord::load(&self.container_dir).endpoints {
            let run = bridge::RunDir::new(&self.storage_root, &endpoint.network);
            if let Err(e) = bridge::leave(&run, &endpoint.network, &self.id, None, &is_live) {
                log::warn!("network {}: {e}", endpoint.network);
            }
        }
    }
}

impl NetworkAttachment {
    /// The helper's pid, if one runs.
    pub fn helper_pid(&self) -> Option<u32> {
        match &self.backend {
            Some(Backend::Slirp(s)) => Some(s.pid()),
            Some(Backend::Pasta(p)) => Some(p.pid()),
            None => None,
        }
    }
}

/// The TCP mappings and the others (UDP).
fn split_tcp(ports: &[PortMapping]) -> (Vec<PortMapping>, Vec<PortMapping>) {
    ports
        .iter()
        .cloned()
        .partition(|m| m.proto == ports::Proto::Tcp)
}

/// The port proxy for `tcp`, if there is any.
fn start_proxy(
    pid: nix::unistd::Pid,
    container_dir: &Path,
    tcp: &[PortMapping],
) -> Result<Option<port_proxy::PortProxy>, NetError> {
    if tcp.is_empty() {
        return Ok(None);
    }
    port_proxy::PortProxy::start(pid.as_raw(), container_dir, tcp).map(Some)
}

fn host_resolv_conf() -> String {
    std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
}

fn has_loopback_resolver(text: &str) -> bool {
    text.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("nameserver")
            && w.next()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .is_some_and(|ip| ip.is_loopback())
    })
}

impl NetworkPlan {
    pub fn runtime_network(&self) -> Network {
        match self.mode {
            NetworkMode::Host => Network::Host,
            _ => Network::Private,
        }
    }

    /// The container's address in its own namespace, as far as it is known before it starts.
    pub fn container_address(&self) -> Option<IpAddr> {
        match &self.mode {
            NetworkMode::Pasta(_) => pasta::host_address(),
            m => m.slirp().map(|o| o.guest_address()),
        }
    }

    /// The address at which the container reaches the host (`host.containers.internal`,
    /// `host-gateway`), as podman chooses it: with slirp4netns, the gateway 10.0.2.2 (the host's
    /// loopback) when `allow_host_loopback=true`, else the host's own address (reached through
    /// slirp's outbound path, so only servers listening on it, not on 127.0.0.1, answer); with
    /// pasta, the gateway address, which pasta maps to the host's loopback (unless
    /// `--no-map-gw`).
    pub fn host_address(&self) -> Option<IpAddr> {
        match &self.mode {
            NetworkMode::Pasta(o) if o.maps_gateway() => pasta::default_gateway(),
            NetworkMode::Pasta(_) => pasta::host_address(),
            NetworkMode::Host => Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            NetworkMode::None | NetworkMode::Container(_) => None,
            NetworkMode::Network(_) if self.networks.first().is_none_or(|n| n.internal) => None,
            m => match m.slirp() {
                Some(o) if o.allow_host_loopback => Some(o.gateway()),
                _ => pasta::host_address(),
            },
        }
    }

    /// The text of the container's /etc/hosts (on a user-defined network, the address is
    /// chosen when the container joins, and the file written again then).
    pub fn hosts_text(&self, hostname: &str, name: &str) -> String {
        self.hosts_text_at(self.container_address(), hostname, name)
    }

    fn hosts_text_at(&self, address: Option<IpAddr>, hostname: &str, name: &str) -> String {
        let host_ip = self.host_address();
        let extra: Vec<(String, IpAddr)> = self
            .add_hosts
            .iter()
            .filter_map(|(n, a)| match a {
                HostAddr::Ip(ip) => Some((n.clone(), *ip)),
                HostAddr::HostGateway => host_ip.map(|ip| (n.clone(), ip)),
            })
            .collect();
        if self.mode == NetworkMode::Host {
            let mut text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            for (n, ip) in &extra {
                text.push_str(&format!("{ip}\t{n}\n"));
            }
            return text;
        }
        etc_files::hosts(&etc_files::HostsInput {
            address,
            hostname,
            name,
            aliases: &self.aliases,
            host_internal: host_ip,
            extra: &extra,
        })
    }

    /// The text of the container's /etc/resolv.conf.
    pub fn resolv_text(&self) -> String {
        let host = host_resolv_conf();
        let replacement = match &self.mode {
            NetworkMode::Host => {
                if self.dns == DnsConfig::default() {
                    return host;
                }
                None
            }
            NetworkMode::Pasta(_) => Some(pasta::DNS_FORWARD.to_string()),
            NetworkMode::Network(_) => self
                .networks
                .first()
                .filter(|n| !n.internal)
                .and_then(|n| bridge::Subnet::parse(&n.subnet))
                .map(|s| s.slirp_dns().to_string()),
            m => m.slirp().map(|o| o.dns().to_string()),
        };
        etc_files::resolv_conf(&host, &self.dns, replacement.as_deref())
    }

    /// Write `hostname`, `hosts` and `resolv.conf` into `userdata` and return (host path,
    /// container path) pairs to bind-mount.
    pub fn write_etc_files(
        &self,
        userdata: &Path,
        hostname: &str,
        name: &str,
    ) -> Result<Vec<(PathBuf, PathBuf)>, NetError> {
        std::fs::create_dir_all(userdata).map_err(|source| NetError::Write {
            path: userdata.to_path_buf(),
            source,
        })?;
        let files = [
            ("hostname", format!("{hostname}\n"), "/etc/hostname"),
            ("hosts", self.hosts_text(hostname, name), "/etc/hosts"),
            ("resolv.conf", self.resolv_text(), "/etc/resolv.conf"),
        ];
        let mut out = Vec::new();
        for (file, content, target) in files {
            let path = userdata.join(file);
            std::fs::write(&path, content).map_err(|source| NetError::Write {
                path: path.clone(),
                source,
            })?;
            out.push((path, PathBuf::from(target)));
        }
        Ok(out)
    }

    /// Attach user-mode networking to the container whose first process is `pid` (its network
    /// namespace exists; its command has not started): check and choose host ports, start the
    /// helper, publish the ports, and record them in `container_dir/network.json`.
    pub fn attach(
        &self,
        pid: nix::unistd::Pid,
        container_dir: &Path,
        who: &Who,
    ) -> Result<NetworkAttachment, NetError> {
        let mut record = NetworkRecord {
            mode: self.mode.name(),
            address: self.container_address(),
            aliases: self.aliases.clone(),
            ..NetworkRecord::default()
        };
        let mut attachment = NetworkAttachment::default();
        match &self.mode {
            NetworkMode::None | NetworkMode::Host => {
                if !self.ports.is_empty() {
                    log::warn!(
                        "published ports are discarded with --network {}",
                        self.mode.name()
                    );
                }
            }
            // The other container's stack serves both; nothing to start.
            NetworkMode::Container(_) => {}
            NetworkMode::Pasta(opts) => {
                let ports = ports::resolve(&self.ports)?;
                let dns_forward =
                    self.dns.servers.is_empty() && has_loopback_resolver(&host_resolv_conf());
                let p =
                    pasta::Pasta::start(pid.as_raw(), container_dir, opts, &ports, dns_forward)?;
                attachment.backend = Some(Backend::Pasta(p));
                attachment.ports = ports;
            }
            NetworkMode::Network(_) => {
                let ports = ports::resolve(&self.ports)?;
                // TCP through the proxy (bound now: a port in use fails before the join);
                // UDP through the network's slirp4netns, which forwards to the member.
                if let Some(def) = self.networks.first().filter(|n| n.internal)
                    && !ports.is_empty()
                {
                    return Err(NetError::BadOption {
                        mode: "--publish",
                        option: ports::describe(&ports[0]),
                        reason: format!(
                            "network {} is --internal: it has no way in or out",
                            def.name
                        ),
                    });
                }
                let (tcp, udp) = split_tcp(&ports);
                attachment.proxy = start_proxy(pid, container_dir, &tcp)?;
                let hosts = container_dir.join("userdata").join("hosts");
                // Taken off every network it got on, also when a later one fails.
                attachment.membership = Some(Membership {
                    storage_root: self.storage_root.clone(),
                    id: who.id.to_string(),
                    container_dir: container_dir.to_path_buf(),
                });
                for (i, def) in self.networks.iter().enumerate() {
                    let endpoint = self.join_network(def, i, pid, who, &hosts, &udp)?;
                    if i == 0 {
                        record.address = Some(IpAddr::V4(endpoint.ip));
                        let text = self.hosts_text_at(
                            Some(IpAddr::V4(endpoint.ip)),
                            who.hostname,
                            who.name,
                        );
                        bridge::write_in_place(&hosts, &text).map_err(|source| {
                            NetError::Write {
                                path: hosts.clone(),
                                source,
                            }
                        })?;
                    }
                    record.endpoints.push(endpoint);
                    record.save(container_dir)?;
                }
                bridge::refresh_own_hosts(&self.storage_root, &record.endpoints, who.id);
                attachment.ports = ports;
            }
            mode => {
                let opts = mode.slirp().expect("slirp4netns mode");
                let ports = ports::resolve(&self.ports)?;
                let through_slirp = match opts.port_handler {
                    PortHandler::Proxy => {
                        let (tcp, udp) = split_tcp(&ports);
                        attachment.proxy = start_proxy(pid, container_dir, &tcp)?;
                        udp
                    }
                    PortHandler::Slirp4netns => ports.clone(),
                };
                let s = slirp4netns::Slirp::start(pid.as_raw(), container_dir, &opts)?;
                for m in &through_slirp {
                    s.add_hostfwd(container_dir, m)?;
                }
                attachment.backend = Some(Backend::Slirp(s));
                attachment.ports = ports;
            }
        }
        record.ports = attachment.ports.clone();
        record.save(container_dir)?;
        Ok(attachment)
    }

    /// Join the `index`th of the container's user-defined networks (`eth{index}`; published
    /// UDP ports, which the network's slirp4netns forwards, and the default route go through
    /// the first).
    fn join_network(
        &self,
        def: &networks::NetworkDef,
        index: usize,
        pid: nix::unistd::Pid,
        who: &Who,
        hosts: &Path,
        ports: &[PortMapping],
    ) -> Result<Endpoint, NetError> {
        let run = bridge::RunDir::new(&self.storage_root, &def.name);
        let infra = run.live_infra().ok_or_else(|| NetError::HelperFailed {
            name: "network",
            reason: format!("the infra process of network {} is gone", def.name),
            log: String::new(),
        })?;
        let ifname = format!("eth{index}");
        let member = bridge::join(
            &run,
            &bridge::JoinRequest {
                def,
                holder_pid: infra.holder_pid,
                pid: pid.as_raw(),
                id: who.id,
                name: who.name,
                hostname: who.hostname,
                aliases: &self.aliases,
                ifname: &ifname,
                hosts,
                ports: if index == 0 { ports } else { &[] },
                default_route: index == 0,
            },
            &bridge::member_is_live(&self.storage_root),
        )?;
        Ok(Endpoint::of(def, &member))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(NetworkMode::parse("none").unwrap(), NetworkMode::None);
        assert_eq!(NetworkMode::parse("host").unwrap(), NetworkMode::Host);
        assert!(matches!(
            NetworkMode::parse("slirp4netns:allow_host_loopback=true").unwrap(),
            NetworkMode::Slirp4netns(SlirpOptions {
                allow_host_loopback: true,
                ..
            })
        ));
        assert_eq!(
            NetworkMode::parse("container:web").unwrap(),
            NetworkMode::Container("web".into())
        );
        assert_eq!(
            NetworkMode::parse("appnet").unwrap(),
            NetworkMode::Network("appnet".into())
        );
        assert!(NetworkMode::parse("none:x").is_err());
        assert!(NetworkMode::parse("a b").is_err());
    }

    #[test]
    fn add_host_forms() {
        assert_eq!(
            parse_add_host("db:192.0.2.9").unwrap(),
            ("db".to_string(), HostAddr::Ip("192.0.2.9".parse().unwrap()))
        );
        assert_eq!(
            parse_add_host("v6:::1").unwrap().1,
            HostAddr::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            parse_add_host("gw=host-gateway").unwrap().1,
            HostAddr::HostGateway
        );
        assert!(parse_add_host("nocolon").is_err());
        assert!(parse_add_host("x:notanip").is_err());
    }

    #[test]
    fn slirp_hosts_and_resolv() {
        let plan = NetworkPlan {
            mode: NetworkMode::parse("slirp4netns:allow_host_loopback=true").unwrap(),
            add_hosts: vec![("gw".into(), HostAddr::HostGateway)],
            ..NetworkPlan::default()
        };
        let hosts = plan.hosts_text("abc", "web");
        assert!(hosts.contains("10.0.2.100\tabc web\n"), "{hosts}");
        assert!(hosts.contains("10.0.2.2\tgw\n"), "{hosts}");
        assert!(
            hosts.contains("10.0.2.2\thost.containers.internal"),
            "{hosts}"
        );
    }
}
