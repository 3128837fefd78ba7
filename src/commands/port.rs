//! `burrow port`: list a container's published ports.

use crate::cli::GlobalArgs;
use crate::exit::ExitError;
use crate::netns::ports::{self, NetworkRecord, Proto};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container (name or id)
    pub container: String,
    /// Only this container port: PORT[/tcp|udp]
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let record = containers.find(&args.container)?;
    let net = if record.status.is_running() {
        NetworkRecord::load(&containers.dir_of(&record.id))
    } else {
        NetworkRecord::default()
    };
    let mut mappings = net.ports;
    mappings.sort_by_key(|m| (m.container_port, m.proto, m.host_port));
    match &args.port {
        None => {
            for m in &mappings {
                outln!("{}", ports::describe(m));
            }
        }
        Some(spec) => {
            let (port, proto) = match spec.split_once('/') {
                Some((p, "udp")) => (p, Proto::Udp),
                Some((p, "tcp")) => (p, Proto::Tcp),
                Some(_) => anyhow::bail!("invalid port {spec:?}: expected PORT[/tcp|udp]"),
                None => (spec.as_str(), Proto::Tcp),
            };
            let port: u16 = port
                .parse()
                .map_err(|_| anyhow::anyhow!("invalid port {spec:?}: expected PORT[/tcp|udp]"))?;
            let found: Vec<_> = mappings
                .iter()
                .filter(|m| m.container_port == port && m.proto == proto)
                .collect();
            if found.is_empty() {
                return Err(ExitError::new(
                    1,
                    format!(
                        "no public port '{port}/{}' published for {}",
                        proto.as_str(),
                        record.name
                    ),
                )
                .into());
            }
            for m in found {
                let d = ports::describe(m);
                outln!("{}", d.split(" -> ").nth(1).unwrap_or(&d));
            }
        }
    }
    Ok(0)
}
