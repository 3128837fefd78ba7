//! `registries.conf` (containers' v2 format, with the old v1 tables understood too): short-name
//! search registries, aliases, and per-registry `location`, `insecure`, `blocked` and mirrors.
//!
//! Files read, as containers/image does: `$CONTAINERS_REGISTRIES_CONF` alone if set; otherwise
//! `$XDG_CONFIG_HOME/containers/registries.conf` if it exists, else
//! `/etc/containers/registries.conf`; then the drop-ins in `/etc/containers/registries.conf.d/`
//! and `$XDG_CONFIG_HOME/containers/registries.conf.d/` in name order. With no configuration,
//! short names resolve to docker.io as docker does; nothing ever prompts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{RegistryError, Result};
use crate::reference::{DEFAULT_REGISTRY, Reference};

#[derive(Debug, Clone, Default)]
pub struct RegistriesConf {
    pub unqualified_search_registries: Option<Vec<String>>,
    pub aliases: BTreeMap<String, String>,
    pub registries: Vec<RegistryEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryEntry {
    /// What references this entry applies to (`host`, `host/ns`, `*.host`).
    pub prefix: String,
    /// Where to go instead (defaults to the prefix).
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirrors: Vec<Mirror>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirror {
    pub location: String,
    pub insecure: bool,
    /// `all` (default), `digest-only` or `tag-only`.
    pub pull_from_mirror: Option<String>,
}

/// One place to fetch a repository from: the registry host, the repository path there, and
/// whether plain HTTP / unverified TLS is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub registry: String,
    pub repository: String,
    pub insecure: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct FileV2 {
    unqualified_search_registries: Option<Vec<String>>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
    #[serde(default)]
    registry: Vec<RegistryV2>,
    /// v1: `[registries.search] registries = [...]` etc.
    registries: Option<RegistriesV1>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RegistryV2 {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror: Vec<MirrorV2>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct MirrorV2 {
    location: String,
    #[serde(default)]
    insecure: bool,
    pull_from_mirror: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct RegistriesV1 {
    search: Option<ListV1>,
    insecure: Option<ListV1>,
    block: Option<ListV1>,
}

#[derive(Debug, Deserialize, Default)]
struct ListV1 {
    #[serde(default)]
    registries: Vec<String>,
}

fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
}

impl RegistriesConf {
    /// Load the configuration from the usual places (see the module documentation).
    pub fn load() -> Result<RegistriesConf> {
        let mut conf = RegistriesConf::default();
        if let Some(path) = std::env::var_os("CONTAINERS_REGISTRIES_CONF").filter(|v| !v.is_empty())
        {
            conf.merge_file(Path::new(&path))?;
            return Ok(conf);
        }
        let user_dir = config_home().map(|c| c.join("containers"));
        let user_file = user_dir.as_ref().map(|d| d.join("registries.conf"));
        match user_file.as_ref().filter(|f| f.exists()) {
            Some(f) => conf.merge_file(f)?,
            None => {
                let system = Path::new("/etc/containers/registries.conf");
                if system.exists() {
                    conf.merge_file(system)?;
                }
            }
        }
        let mut dropin_dirs = vec![PathBuf::from("/etc/containers/registries.conf.d")];
        if let Some(d) = &user_dir {
            dropin_dirs.push(d.join("registries.conf.d"));
        }
        for dir in dropin_dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect();
            files.sort();
            for f in files {
                conf.merge_file(&f)?;
            }
        }
        Ok(conf)
    }

    fn merge_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| RegistryError::io(path, e))?;
        self.merge_str(&text)
            .map_err(|message| RegistryError::Config {
                path: path.to_path_buf(),
                message,
            })
    }

    /// Merge one file's text: later files override search registries, add aliases, and
    /// replace registry entries with the same prefix.
    pub fn merge_str(&mut self, text: &str) -> std::result::Result<(), String> {
        let file: FileV2 = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(search) = file.unqualified_search_registries {
            self.unqualified_search_registries = Some(search);
        }
        self.aliases.extend(file.aliases);
        for r in file.registry {
            let prefix = match (r.prefix, &r.location) {
                (Some(p), _) if !p.is_empty() => p,
                (_, Some(l)) if !l.is_empty() => l.clone(),
                _ => return Err("a [[registry]] needs a prefix or a location".into()),
            };
            let location = r
                .location
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| prefix.clone());
            let entry = RegistryEntry {
                prefix,
                location,
                insecure: r.insecure,
                blocked: r.blocked,
                mirrors: r
                    .mirror
                    .into_iter()
                    .map(|m| Mirror {
                        location: m.location,
                        insecure: m.insecure,
                        pull_from_mirror: m.pull_from_mirror,
                    })
                    .collect(),
            };
            self.upsert(entry);
        }
        if let Some(v1) = file.registries {
            if let Some(search) = v1.search {
                self.unqualified_search_registries = Some(search.registries);
            }
            for (list, insecure) in [(v1.insecure, true), (v1.block, false)] {
                for host in list.map(|l| l.registries).unwrap_or_default() {
                    let mut entry = self.entry_exact(&host).cloned().unwrap_or(RegistryEntry {
                        prefix: host.clone(),
                        location: host.clone(),
                        ..Default::default()
                    });
                    if insecure {
                        entry.insecure = true;
                    } else {
                        entry.blocked = true;
                    }
                    self.upsert(entry);
                }
            }
        }
        Ok(())
    }

    fn entry_exact(&self, prefix: &str) -> Option<&RegistryEntry> {
        self.registries.iter().find(|e| e.prefix == prefix)
    }

    fn upsert(&mut self, entry: RegistryEntry) {
        match self
            .registries
            .iter_mut()
            .find(|e| e.prefix == entry.prefix)
        {
            Some(e) => *e = entry,
            None => self.registries.push(entry),
        }
    }

    /// The entry with the longest prefix matching `registry/repository`.
    pub fn entry_for(&self, registry: &str, repository: &str) -> Option<&RegistryEntry> {
        let full = format!("{registry}/{repository}");
        self.registries
            .iter()
            .filter(|e| prefix_matches(&e.prefix, registry, &full))
            .max_by_key(|e| e.prefix.len())
    }

    /// Whether the registry host is configured as insecure (plain HTTP / unverified TLS).
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.registries
            .iter()
            .filter(|e| prefix_matches(&e.prefix, registry, registry))
            .max_by_key(|e| e.prefix.len())
            .is_some_and(|e| e.insecure)
            || self.registries.iter().any(|e| {
                e.mirrors
                    .iter()
                    .any(|m| m.insecure && host_of(&m.location) == registry)
            })
    }

    /// Candidates for a name typed by the user: fully qualified names give one; short names go
    /// through `[aliases]`, then each of `unqualified-search-registries`, else docker.io.
    pub fn resolve(&self, input: &str) -> Result<Vec<Reference>> {
        if !is_short_name(input) {
            return Ok(vec![Reference::parse(input)?]);
        }
        // Validate the input's syntax once, whatever the candidates.
        Reference::parse(input)?;
        let (name, suffix) = split_suffix(input);
        let alias_key = name.strip_prefix("library/").unwrap_or(name);
        if let Some(target) = self
            .aliases
            .get(name)
            .or_else(|| self.aliases.get(alias_key))
        {
            return Ok(vec![Reference::parse(&format!("{target}{suffix}"))?]);
        }
        match &self.unqualified_search_registries {
            Some(list) if !list.is_empty() => list
                .iter()
                .map(|reg| Ok(Reference::parse(&format!("{reg}/{name}{suffix}"))?))
                .collect(),
            _ => Ok(vec![Reference::parse(input)?]),
        }
    }

    /// Where to pull `reference` from, in order: mirrors first, then the (rewritten) location.
    /// Blocked registries give an error.
    pub fn pull_sources(&self, reference: &Reference) -> Result<Vec<Source>> {
        let Some(entry) = self.entry_for(&reference.registry, &reference.repository) else {
            return Ok(vec![Source {
                registry: reference.registry.clone(),
                repository: reference.repository.clone(),
                insecure: false,
            }]);
        };
        if entry.blocked {
            return Err(RegistryError::Other(format!(
                "{}: registry {} is blocked in registries.conf",
                reference, entry.prefix
            )));
        }
        let rewrite = |location: &str| -> Source {
            let full = format!("{}/{}", reference.registry, reference.repository);
            let rest = if entry.prefix.starts_with("*.") {
                full.clone()
            } else {
                let rest = full.strip_prefix(entry.prefix.as_str()).unwrap_or(&full);
                format!("{location}{rest}")
            };
            let (registry, repository) = rest.split_once('/').unwrap_or((&rest, ""));
            Source {
                registry: registry.to_string(),
                repository: repository.to_string(),
                insecure: false,
            }
        };
        let mut out = Vec::new();
        for m in &entry.mirrors {
            let allowed = match m.pull_from_mirror.as_deref() {
                Some("digest-only") => reference.digest.is_some(),
                Some("tag-only") => reference.digest.is_none(),
                _ => true,
            };
            if allowed {
                let mut s = rewrite(&m.location);
                s.insecure = m.insecure;
                out.push(s);
            }
        }
        let mut primary = rewrite(&entry.location);
        primary.insecure = entry.insecure;
        out.push(primary);
        Ok(out)
    }
}

fn host_of(location: &str) -> &str {
    location.split('/').next().unwrap_or(location)
}

fn prefix_matches(prefix: &str, registry: &str, full: &str) -> bool {
    if let Some(domain) = prefix.strip_prefix("*.") {
        return registry.ends_with(&format!(".{domain}"));
    }
    full == prefix
        || full
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A short name has no registry part: its first component has no `.` or `:` and isn't
/// `localhost`, or it has a single component.
pub fn is_short_name(input: &str) -> bool {
    let name = input.split('@').next().unwrap_or(input);
    match name.split_once('/') {
        None => true,
        Some((first, _)) => !(first.contains('.') || first.contains(':') || first == "localhost"),
    }
}

/// `name:tag@digest` → (`name`, `:tag@digest`).
fn split_suffix(input: &str) -> (&str, &str) {
    let (name, _) = input.split_once('@').unwrap_or((input, ""));
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let end = match name[last_slash..].find(':') {
        Some(i) => last_slash + i,
        None => name.len(),
    };
    (&input[..end], &input[end..])
}

/// The default registry, for messages.
pub fn default_registry() -> &'static str {
    DEFAULT_REGISTRY
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> RegistriesConf {
        let mut c = RegistriesConf::default();
        c.merge_str(text).unwrap();
        c
    }

    #[test]
    fn short_names_default_to_docker_io() {
        let c = RegistriesConf::default();
        let r = c.resolve("alpine").unwrap();
        assert_eq!(r[0].to_string(), "docker.io/library/alpine:latest");
        let r = c.resolve("localhost:5000/x:1").unwrap();
        assert_eq!(r[0].to_string(), "localhost:5000/x:1");
    }

    #[test]
    fn search_registries_and_aliases() {
        let c = conf(
            r#"
unqualified-search-registries = ["quay.io", "docker.io"]
[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
"#,
        );
        let r: Vec<String> = c
            .resolve("busybox:1")
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            r,
            ["quay.io/busybox:1", "docker.io/library/busybox:1"].map(String::from)
        );
        let r = c.resolve("fedora:39").unwrap();
        assert_eq!(r[0].to_string(), "registry.fedoraproject.org/fedora:39");
    }

    #[test]
    fn registry_entries() {
        let c = conf(
            r#"
[[registry]]
prefix = "example.com/foo"
location = "internal:5000/bar"
insecure = true
[[registry.mirror]]
location = "mirror.local/m"
[[registry]]
location = "blocked.io"
blocked = true
[registries.insecure]
registries = ["old.example"]
"#,
        );
        let r = Reference::parse("example.com/foo/app:1").unwrap();
        let s = c.pull_sources(&r).unwrap();
        assert_eq!(s[0].registry, "mirror.local");
        assert_eq!(s[0].repository, "m/app");
        assert_eq!(s[1].registry, "internal:5000");
        assert_eq!(s[1].repository, "bar/app");
        assert!(s[1].insecure);
        let r = Reference::parse("example.com/foobar:1").unwrap();
        assert_eq!(c.pull_sources(&r).unwrap()[0].registry, "example.com");
        assert!(
            c.pull_sources(&Reference::parse("blocked.io/x").unwrap())
                .is_err()
        );
        assert!(c.is_insecure("old.example"));
        assert!(!c.is_insecure("example.com"));
    }

    #[test]
    fn suffix_split() {
        assert_eq!(split_suffix("a/b:1"), ("a/b", ":1"));
        assert_eq!(split_suffix("a"), ("a", ""));
        let d = format!("a@sha256:{}", "0".repeat(64));
        assert_eq!(split_suffix(&d).0, "a");
    }
}
