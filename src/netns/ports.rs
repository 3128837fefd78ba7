//! Published ports: parsing `-p`/`--expose`, choosing free host ports for `-P`, checking that a
//! host port is free before the container starts, and the record `burrow port` reads.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::NetError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    fn parse(s: &str, spec: &str) -> Result<Proto, NetError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(NetError::BadPort {
                spec: spec.to_string(),
                reason: format!("unsupported protocol {s:?} (use tcp or udp)"),
            }),
        }
    }
}

/// One forwarded port. `host_port` 0 means "pick a free one" until [`resolve`] runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

fn bad(spec: &str, reason: impl Into<String>) -> NetError {
    NetError::BadPort {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

/// `N` or `N-M`, inclusive.
fn parse_range(s: &str, spec: &str) -> Result<(u16, u16), NetError> {
    let num = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(spec, format!("invalid port {p:?} (1-65535)")))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(bad(spec, format!("invalid range {s:?}")));
            }
            Ok((a, b))
        }
        None => {
            let n = num(s)?;
            Ok((n, n))
        }
    }
}

/// Parse one `-p [ip:][hostPort:]containerPort[/proto]` (ports may be ranges `a-b`; an IPv6
/// address is written in brackets).
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>, NetError> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, Proto::parse(p, spec)?),
        None => (spec, Proto::Tcp),
    };
    // Split off a bracketed IPv6 address first.
    let (ip_text, rest) = if let Some(after) = rest.strip_prefix('[') {
        let (ip, tail) = after
            .split_once(']')
            .ok_or_else(|| bad(spec, "unterminated '[' in the address"))?;
        let tail = tail
            .strip_prefix(':')
            .ok_or_else(|| bad(spec, "expected ':' after the address"))?;
        (Some(ip.to_string()), tail.to_string())
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest.to_string()),
            3 => (
                Some(parts[0].to_string()),
                format!("{}:{}", parts[1], parts[2]),
            ),
            _ => return Err(bad(spec, "too many ':' (IPv6 addresses go in brackets)")),
        }
    };
    let host_ip: IpAddr = match ip_text.as_deref() {
        None | Some("") => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(ip) => ip
            .parse()
            .map_err(|_| bad(spec, format!("invalid IP address {ip:?}")))?,
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h, c),
        None => ("", rest.as_str()),
    };
    let (c0, c1) = parse_range(container, spec)?;
    let count = c1 - c0;
    let mut out = Vec::new();
    if host.is_empty() {
        for p in c0..=c1 {
            out.push(PortMapping {
                host_ip,
                host_port: 0,
                container_port: p,
                proto,
            });
        }
        return Ok(out);
    }
    let (h0, h1) = parse_range(host, spec)?;
    if h1 - h0 != count {
        if count == 0 {
            // docker: a host range with one container port picks one free port of the range.
            let free = (h0..=h1)
                .find(|p| check_free(host_ip, *p, proto).is_ok())
                .ok_or_else(|| bad(spec, format!("no free host port in {host}")))?;
            return Ok(vec![PortMapping {
                host_ip,
                host_port: free,
                container_port: c0,
                proto,
            }]);
        }
        return Err(bad(
            spec,
            "the host and container port ranges have different sizes",
        ));
    }
    for i in 0..=count {
        out.push(PortMapping {
            host_ip,
            host_port: h0 + i,
            container_port: c0 + i,
            proto,
        });
    }
    Ok(out)
}

/// Parse an `--expose` value or an image `ExposedPorts` key: `80`, `80/udp`, `8000-8010/tcp`.
pub fn parse_expose(spec: &str) -> Result<Vec<(u16, Proto)>, NetError> {
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, Proto::parse(p, spec)?),
        None => (spec, Proto::Tcp),
    };
    let (a, b) = parse_range(ports, spec)?;
    Ok((a..=b).map(|p| (p, proto)).collect())
}

/// Whether `ip:port/proto` can be bound on the host now.
pub fn check_free(ip: IpAddr, port: u16, proto: Proto) -> Result<(), NetError> {
    let addr = SocketAddr::new(ip, port);
    let result = match proto {
        Proto::Tcp => TcpListener::bind(addr).map(drop),
        Proto::Udp => UdpSocket::bind(addr).map(drop),
    };
    result.map_err(|source| bind_error(ip, port, proto, source))
}

/// The error for a host port that cannot be bound: in use, or below the unprivileged start.
pub fn bind_error(ip: IpAddr, port: u16, proto: Proto, source: std::io::Error) -> NetError {
    match source.kind() {
        std::io::ErrorKind::PermissionDenied => NetError::PortDenied {
            port,
            ip,
            source,
            start: std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "1024".into()),
        },
        _ => NetError::PortInUse {
            port,
            proto: proto.as_str(),
            ip,
            source,
        },
    }
}

/// A free host port on `ip` for `proto`, chosen by the kernel.
fn free_port(ip: IpAddr, proto: Proto) -> Result<u16, NetError> {
    let addr = SocketAddr::new(ip, 0);
    let port = match proto {
        Proto::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Proto::Udp => UdpSocket::bind(addr).and_then(|s| s.local_addr()),
    }
    .map_err(|source| NetError::NoFreePort { ip, source })?
    .port();
    Ok(port)
}

/// Give every mapping without a host port a free one, and check the others are free.
pub fn resolve(mappings: &[PortMapping]) -> Result<Vec<PortMapping>, NetError> {
    let mut out = Vec::with_capacity(mappings.len());
    for m in mappings {
        let mut m = m.clone();
        if m.host_port == 0 {
            m.host_port = free_port(m.host_ip, m.proto)?;
        } else {
            check_free(m.host_ip, m.host_port, m.proto)?;
        }
        out.push(m);
    }
    Ok(out)
}

/// What `attach` records in the container's directory (`network.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// none, host, slirp4netns, pasta, or a user-defined network's name.
    pub mode: String,
    /// The container's address in its own namespace, if it has one.
    #[serde(default)]
    pub address: Option<IpAddr>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// The container's places on user-defined networks.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A container's interface on a user-defined network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    pub network: String,
    pub network_id: String,
    pub ip: std::net::Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: String,
    /// The interface in the container.
    pub ifname: String,
}

impl Endpoint {
    pub fn of(def: &super::networks::NetworkDef, member: &super::bridge::Member) -> Endpoint {
        Endpoint {
            network: def.name.clone(),
            network_id: def.id.clone(),
            ip: member.ip,
            prefix_len: super::bridge::Subnet::parse(&def.subnet).map_or(24, |s| s.prefix),
            gateway: def.gateway.clone(),
            ifname: member.ifname.clone(),
        }
    }
}

pub const RECORD_FILE: &str = "network.json";

impl NetworkRecord {
    pub fn save(&self, container_dir: &Path) -> Result<(), NetError> {
        let path = container_dir.join(RECORD_FILE);
        let tmp = container_dir.join(".network.json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("serializable");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|source| NetError::Write { path, source })
    }

    /// The record of a container, or an empty one (a container without networking).
    pub fn load(container_dir: &Path) -> NetworkRecord {
        std::fs::read(container_dir.join(RECORD_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

/// `80/tcp -> 0.0.0.0:8080`, as `docker port` prints it.
pub fn describe(m: &PortMapping) -> String {
    let host = match m.host_ip {
        IpAddr::V6(ip) => format!("[{ip}]:{}", m.host_port),
        IpAddr::V4(ip) => format!("{ip}:{}", m.host_port),
    };
    format!("{}/{} -> {host}", m.container_port, m.proto.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortMapping {
        let v = parse_publish(spec).unwrap();
        assert_eq!(v.len(), 1, "{spec}");
        v[0].clone()
    }

    #[test]
    fn publish_forms() {
        let m = one("8080:80");
        assert_eq!(
            (m.host_port, m.container_port, m.proto),
            (8080, 80, Proto::Tcp)
        );
        assert_eq!(m.host_ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let m = one("127.0.0.1:8080:80/udp");
        assert_eq!(m.host_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((m.host_port, m.proto), (8080, Proto::Udp));
        let m = one("80");
        assert_eq!((m.host_port, m.container_port), (0, 80));
        let m = one("127.0.0.1::80");
        assert_eq!((m.host_port, m.container_port), (0, 80));
        let m = one("[::1]:8080:80/tcp");
        assert_eq!(m.host_ip, "::1".parse::<IpAddr>().unwrap());
        let v = parse_publish("9000-9002:80-82").unwrap();
        assert_eq!(
            v.iter()
                .map(|m| (m.host_port, m.container_port))
                .collect::<Vec<_>>(),
            vec![(9000, 80), (9001, 81), (9002, 82)]
        );
    }

    #[test]
    fn publish_errors() {
        for bad in [
            "",
            "x:80",
            "8080:0",
            "1-3:1-2",
            "8080:80/sctp",
            "1:2:3:4",
            "[::1:80",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expose_forms() {
        assert_eq!(parse_expose("80").unwrap(), vec![(80, Proto::Tcp)]);
        assert_eq!(parse_expose("53/udp").unwrap(), vec![(53, Proto::Udp)]);
        assert_eq!(parse_expose("7-8/tcp").unwrap().len(), 2);
    }

    #[test]
    fn in_use_is_detected() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let err = check_free("127.0.0.1".parse().unwrap(), port, Proto::Tcp).unwrap_err();
        assert!(err.to_string().contains("already in use"), "{err}");
    }
}
