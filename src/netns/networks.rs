//! User-defined networks: their records under `ROOT/networks/<name>.json`.
//!
//! Only the bookkeeping exists so far: a container run with `--network NAME` gets its own
//! slirp4netns stack (it reaches the outside and is reachable through published ports) and is
//! recorded as a member, but containers on one network do not yet share a network namespace,
//! so they cannot reach each other by name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::NetError;

/// Names that are network modes, not user-defined networks.
pub const BUILTIN: &[(&str, &str)] = &[
    ("none", "null"),
    ("host", "host"),
    ("slirp4netns", "slirp4netns"),
    ("pasta", "pasta"),
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkDef {
    pub name: String,
    pub id: String,
    pub driver: String,
    pub subnet: String,
    pub gateway: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub labels: Vec<String>,
    pub created: String,
}

pub struct NetworkStore {
    dir: PathBuf,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> NetError + '_ {
    move |source| NetError::Write {
        path: path.to_path_buf(),
        source,
    }
}

impl NetworkStore {
    pub fn open(storage_root: &Path) -> NetworkStore {
        NetworkStore {
            dir: storage_root.join("networks"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    pub fn list(&self) -> Vec<NetworkDef> {
        let mut out: Vec<NetworkDef> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// A network by name or id prefix.
    pub fn find(&self, key: &str) -> Result<NetworkDef, NetError> {
        let all = self.list();
        if let Some(n) = all.iter().find(|n| n.name == key) {
            return Ok(n.clone());
        }
        let matches: Vec<&NetworkDef> = all.iter().filter(|n| n.id.starts_with(key)).collect();
        match matches.as_slice() {
            [one] if !key.is_empty() => Ok((*one).clone()),
            _ => Err(NetError::NoSuchNetwork(key.to_string())),
        }
    }

    /// The next free 10.89.N.0/24, as podman numbers its networks.
    fn free_subnet(&self) -> String {
        let used: Vec<String> = self.list().into_iter().map(|n| n.subnet).collect();
        (1..=255)
            .map(|n| format!("10.89.{n}.0/24"))
            .find(|s| !used.contains(s))
            .unwrap_or_else(|| "10.89.0.0/24".into())
    }

    pub fn create(
        &self,
        name: &str,
        subnet: Option<&str>,
        gateway: Option<&str>,
        internal: bool,
        labels: &[String],
    ) -> Result<NetworkDef, NetError> {
        if !valid_name(name) {
            return Err(NetError::BadNetworkName(name.to_string()));
        }
        if BUILTIN.iter().any(|(n, _)| *n == name)
            || ["bridge", "default", "private"].contains(&name)
        {
            return Err(NetError::NetworkExists(name.to_string()));
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let subnet = subnet.map_or_else(|| self.free_subnet(), str::to_string);
        let (net, _) = subnet.split_once('/').ok_or_else(|| NetError::BadOption {
            mode: "network create",
            option: format!("--subnet {subnet}"),
            reason: "expected a.b.c.d/n".into(),
        })?;
        let net: std::net::Ipv4Addr = net.parse().map_err(|_| NetError::BadOption {
            mode: "network create",
            option: format!("--subnet {subnet}"),
            reason: "expected a.b.c.d/n".into(),
        })?;
        let gateway = gateway.map_or_else(
            || std::net::Ipv4Addr::from(u32::from(net) + 1).to_string(),
            str::to_string,
        );
        let def = NetworkDef {
            name: name.to_string(),
            id: crate::containers::new_id(),
            driver: "bridge".into(),
            subnet,
            gateway,
            internal,
            labels: labels.to_vec(),
            created: crate::containers::now_rfc3339(),
        };
        let path = self.path(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path);
        match file {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(NetError::NetworkExists(name.to_string()));
            }
            Err(e) => return Err(io(&path)(e)),
            Ok(f) => {
                serde_json::to_writer_pretty(f, &def).map_err(|e| io(&path)(e.into()))?;
            }
        }
        Ok(def)
    }

    /// Remove the record, and the network's runtime directory unless its infra process still
    /// runs (a removed network's members keep what they have until they exit).
    pub fn remove(&self, def: &NetworkDef) -> Result<(), NetError> {
        let path = self.path(&def.name);
        std::fs::remove_file(&path).map_err(io(&path))?;
        let run = super::bridge::RunDir::new(self.dir.parent().unwrap_or(&self.dir), &def.name);
        if run.live_infra().is_none() {
            let _ = std::fs::remove_dir_all(&run.dir);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_find_remove() {
        let dir = tempfile::tempdir().unwrap();
        let s = NetworkStore::open(dir.path());
        let a = s.create("appnet", None, None, false, &[]).unwrap();
        assert_eq!(a.subnet, "10.89.1.0/24");
        assert_eq!(a.gateway, "10.89.1.1");
        let b = s.create("other", None, None, false, &[]).unwrap();
        assert_eq!(b.subnet, "10.89.2.0/24");
        assert!(matches!(
            s.create("appnet", None, None, false, &[]),
            Err(NetError::NetworkExists(_))
        ));
        assert!(s.create("host", None, None, false, &[]).is_err());
        assert!(s.create("private", None, None, false, &[]).is_err());
        assert!(s.create("-bad", None, None, false, &[]).is_err());
        assert_eq!(s.find("appnet").unwrap(), a);
        assert_eq!(s.find(&b.id[..10]).unwrap(), b);
        assert_eq!(s.list().len(), 2);
        s.remove(&a).unwrap();
        assert!(s.find("appnet").is_err());
    }
}
