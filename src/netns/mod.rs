//! Container networking: the network mode, the files that describe the network to the
//! container (/etc/hosts, /etc/resolv.conf, /etc/hostname), and attaching user-mode networking.

use std::path::{Path, PathBuf};

use crate::runtime::Network;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network mode {0:?} is not supported yet: use --network none or --network host")]
    UnsupportedMode(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    None,
    Host,
}

impl NetworkMode {
    pub fn parse(mode: &str) -> Result<NetworkMode, NetError> {
        match mode {
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            other => Err(NetError::UnsupportedMode(other.to_string())),
        }
    }
}

/// Everything the network of one container needs, decided before it starts.
#[derive(Debug, Clone)]
pub struct NetworkPlan {
    pub mode: NetworkMode,
}

/// Helpers (slirp4netns, pasta) attached to a running container; dropping it tears them down.
#[derive(Debug, Default)]
pub struct NetworkAttachment {}

impl NetworkPlan {
    pub fn runtime_network(&self) -> Network {
        match self.mode {
            NetworkMode::Host => Network::Host,
            NetworkMode::None => Network::Private,
        }
    }

    /// Write `hostname`, `hosts` and `resolv.conf` into `userdata` and return (host path,
    /// container path) pairs to bind-mount.
    pub fn write_etc_files(
        &self,
        userdata: &Path,
        hostname: &str,
        name: &str,
    ) -> Result<Vec<(PathBuf, PathBuf)>, NetError> {
        let hosts = match self.mode {
            NetworkMode::Host => std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            NetworkMode::None => format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname} {name}\n"
            ),
        };
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let files = [
            ("hostname", format!("{hostname}\n"), "/etc/hostname"),
            ("hosts", hosts, "/etc/hosts"),
            ("resolv.conf", resolv, "/etc/resolv.conf"),
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
    /// namespace exists; its command has not started).
    pub fn attach(&self, _pid: nix::unistd::Pid, _container_dir: &Path) -> Result<NetworkAttachment, NetError> {
        Ok(NetworkAttachment::default())
    }
}
