//! The networking flags of `run` and `create`.

use crate::netns::{
    self, DnsConfig, NetError, NetworkMode, NetworkPlan, networks::NetworkStore, ports,
};

#[derive(Debug, Clone, Default, clap::Args, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NetworkArgs {
    /// Network mode: slirp4netns[:OPTIONS] (the default when installed), pasta[:OPTIONS], none,
    /// host, or a network made with 'burrow network create'. slirp4netns options:
    /// allow_host_loopback=true, mtu=N, cidr=A.B.C.D/N, enable_ipv6=true, outbound_addr=IP,
    /// port_handler=slirp4netns; pasta options: pasta's own arguments, comma-separated
    #[arg(long, alias = "net", value_name = "MODE")]
    pub network: Option<String>,
    /// Publish a container's port to the host: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]
    /// (ports may be ranges, e.g. 8000-8010:80-90; no HOST_PORT means a free one)
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,
    /// Publish all exposed ports (the image's EXPOSE and --expose) to free host ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports (PORT[/PROTO]), published by -P
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// Set a DNS server in the container's /etc/resolv.conf
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// Set a DNS search domain ('.' for none)
    #[arg(long, value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// Set a resolv.conf option (e.g. ndots:2)
    #[arg(long = "dns-option", alias = "dns-opt", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// Add a line to /etc/hosts: NAME:IP (IP may be host-gateway, the host as the container
    /// reaches it)
    #[arg(long, value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// Add a network-scoped alias for the container (listed in its /etc/hosts)
    #[arg(long, value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// Networks added with `network connect` while the container was not running.
    #[arg(skip)]
    pub connected: Vec<String>,
}

impl NetworkArgs {
    /// The plan for a container of an image whose config exposes `image_exposed` (the keys of
    /// its `ExposedPorts`, e.g. "80/tcp"). `storage_root` is where user-defined networks live.
    pub fn plan(
        &self,
        storage_root: &std::path::Path,
        image_exposed: &[String],
    ) -> Result<NetworkPlan, NetError> {
        let mode = match &self.network {
            Some(m) => NetworkMode::parse(m)?,
            None => NetworkMode::default_mode(),
        };
        let mut networks = Vec::new();
        if let NetworkMode::Network(name) = &mode {
            let store = NetworkStore::open(storage_root);
            for name in std::iter::once(name).chain(&self.connected) {
                networks.push(store.find(name)?);
            }
        }
        let mut mappings = Vec::new();
        for spec in &self.publish {
            mappings.extend(ports::parse_publish(spec)?);
        }
        if self.publish_all {
            let mut exposed = Vec::new();
            for spec in image_exposed.iter().chain(&self.expose) {
                for e in ports::parse_expose(spec)? {
                    if !exposed.contains(&e) {
                        exposed.push(e);
                    }
                }
            }
            for (port, proto) in exposed {
                // An explicit -p for the same port wins.
                if mappings
                    .iter()
                    .any(|m| m.container_port == port && m.proto == proto)
                {
                    continue;
                }
                mappings.push(ports::PortMapping {
                    host_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    host_port: 0,
                    container_port: port,
                    proto,
                });
            }
        } else {
            for spec in &self.expose {
                ports::parse_expose(spec)?;
            }
        }
        let add_hosts = self
            .add_host
            .iter()
            .map(|s| netns::parse_add_host(s))
            .collect::<Result<_, _>>()?;
        for ip in &self.dns {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(NetError::BadOption {
                    mode: "--dns",
                    option: ip.clone(),
                    reason: "expected an IP address".into(),
                });
            }
        }
        Ok(NetworkPlan {
            mode,
            ports: mappings,
            dns: DnsConfig {
                servers: self.dns.clone(),
                search: self.dns_search.clone(),
                options: self.dns_option.clone(),
            },
            add_hosts,
            aliases: self.network_alias.clone(),
            networks,
            storage_root: storage_root.to_path_buf(),
        })
    }
}

/// The keys of an image's `ExposedPorts` ("80/tcp", ...), for [`NetworkArgs::plan`].
pub fn exposed_ports(config: &oci_spec::image::ImageConfiguration) -> Vec<String> {
    config
        .config()
        .as_ref()
        .and_then(|c| c.exposed_ports().clone())
        .unwrap_or_default()
}
