//! Credentials: containers' `auth.json` (written by `burrow login`), docker's
//! `~/.docker/config.json` (read), and `docker-credential-*` helpers (`credHelpers`,
//! `credsStore`). Secrets travel only through files and pipes: never argv, logs or errors.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};

use super::{RegistryError, Result};
use crate::reference::DEFAULT_REGISTRY;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`).
    IdentityToken {
        username: String,
        token: String,
    },
}

impl Credentials {
    pub fn username(&self) -> &str {
        match self {
            Credentials::Basic { username, .. } | Credentials::IdentityToken { username, .. } => {
                username
            }
        }
    }

    /// `USER:PASSWORD` as given to `--creds` (a missing password is an error).
    pub fn from_creds_arg(s: &str) -> Result<Credentials> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials::Basic {
                username: u.to_string(),
                password: p.to_string(),
            }),
            _ => Err(RegistryError::Other(
                "--creds must be USERNAME:PASSWORD".to_string(),
            )),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
            Credentials::IdentityToken { username, .. } => {
                write!(
                    f,
                    "IdentityToken {{ username: {username:?}, token: <redacted> }}"
                )
            }
        }
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Where `login` writes: `--authfile`, else `$REGISTRY_AUTH_FILE`, else
/// `$XDG_RUNTIME_DIR/containers/auth.json`, else `~/.config/containers/auth.json`.
pub fn auth_file_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("containers/auth.json");
    }
    home()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".config/containers/auth.json")
}

/// Docker's config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    home().map(|h| h.join(".docker/config.json"))
}

/// Every file credentials are read from, in order.
fn lookup_files(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    let mut files = vec![auth_file_path(None)];
    if let Some(h) = home() {
        files.push(h.join(".config/containers/auth.json"));
    }
    if let Some(d) = docker_config_path() {
        files.push(d);
    }
    files.dedup();
    files
}

/// Normalise an `auths` key: `https://index.docker.io/v1/` → `docker.io`,
/// `https://host/v2/` → `host`; `host/ns/repo` keys are kept with their path.
pub fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    let (host, path) = match k.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (k, None),
    };
    let host = host.to_ascii_lowercase();
    let host = match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DEFAULT_REGISTRY.to_string()
        }
        _ => host,
    };
    match path {
        Some(p) => format!("{host}/{p}"),
        None => host,
    }
}

/// The server URL docker's credential helpers know a registry by.
fn helper_server_url(registry: &str) -> String {
    if registry == DEFAULT_REGISTRY {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(|b| b.is_ascii_whitespace()) => Ok(None),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RegistryError::Config {
                path: path.to_path_buf(),
                message: format!("invalid JSON: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RegistryError::io(path, e)),
    }
}

fn decode_entry(path: &Path, entry: &Value) -> Result<Option<Credentials>> {
    let identity = entry
        .get("identitytoken")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let (user, pass) = match entry.get("auth").and_then(Value::as_str) {
        Some(a) if !a.is_empty() => {
            let bad = || RegistryError::Config {
                path: path.to_path_buf(),
                message: "an \"auth\" entry is not base64 of USER:PASSWORD".to_string(),
            };
            let raw = B64.decode(a.trim()).map_err(|_| bad())?;
            let text = String::from_utf8(raw).map_err(|_| bad())?;
            let (u, p) = text.split_once(':').ok_or_else(bad)?;
            (u.to_string(), p.to_string())
        }
        _ => (
            entry
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            entry
                .get("password")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
    };
    if let Some(token) = identity {
        return Ok(Some(Credentials::IdentityToken {
            username: user,
            token: token.to_string(),
        }));
    }
    if user.is_empty() && pass.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::Basic {
        username: user,
        password: pass,
    }))
}

/// Find the `auths` entry for `registry/repository`: the most specific `host/ns/repo` key
/// first, then `host`.
fn find_auth_entry<'a>(
    auths: &'a Map<String, Value>,
    registry: &str,
    repository: Option<&str>,
) -> Option<&'a Value> {
    let mut candidates = Vec::new();
    if let Some(repo) = repository {
        let mut path = format!("{registry}/{repo}");
        loop {
            candidates.push(path.clone());
            match path.rfind('/') {
                Some(i) if path[..i].contains('/') => path.truncate(i),
                _ => break,
            }
        }
    }
    candidates.push(registry.to_string());
    for want in candidates {
        if let Some(v) = auths.iter().find(|(k, _)| normalize_key(k) == want) {
            return Some(v.1);
        }
    }
    None
}

/// Credentials for `registry` (and optionally a repository on it), from the auth files,
/// docker's config and credential helpers, or `None`.
pub fn lookup(
    registry: &str,
    repository: Option<&str>,
    authfile: Option<&Path>,
) -> Result<Option<Credentials>> {
    for path in lookup_files(authfile) {
        let Some(doc) = read_json(&path)? else {
            continue;
        };
        if let Some(helper) = doc
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|h| h.iter().find(|(k, _)| normalize_key(k) == registry))
            .and_then(|(_, v)| v.as_str())
            && let Some(c) = helper_get(helper, registry)?
        {
            return Ok(Some(c));
        }
        if let Some(auths) = doc.get("auths").and_then(Value::as_object)
            && let Some(entry) = find_auth_entry(auths, registry, repository)
            && let Some(c) = decode_entry(&path, entry)?
        {
            log::debug!("credentials for {registry} from {}", path.display());
            return Ok(Some(c));
        }
        if let Some(helper) = doc.get("credsStore").and_then(Value::as_str)
            && !helper.is_empty()
            && let Some(c) = helper_get(helper, registry)?
        {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Ask `docker-credential-HELPER get` for a registry's credentials; the server URL goes on
/// stdin and the secret comes back on stdout, never through arguments.
fn helper_get(helper: &str, registry: &str) -> Result<Option<Credentials>> {
    if !helper
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(RegistryError::CredentialHelper {
            helper: helper.to_string(),
            message: "invalid helper name".to_string(),
        });
    }
    let program = format!("docker-credential-{helper}");
    let err = |message: String| RegistryError::CredentialHelper {
        helper: helper.to_string(),
        message,
    };
    let mut child = match Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::debug!("{program} not found; ignoring it");
            return Ok(None);
        }
        Err(e) => return Err(err(e.to_string())),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(helper_server_url(registry).as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if text.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(err(format!("failed ({})", out.status)));
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| err("answered something that is not JSON".to_string()))?;
    let username = v
        .get("Username")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let secret = v
        .get("Secret")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if secret.is_empty() {
        return Ok(None);
    }
    if username == "<token>" {
        return Ok(Some(Credentials::IdentityToken {
            username: String::new(),
            token: secret,
        }));
    }
    Ok(Some(Credentials::Basic {
        username,
        password: secret,
    }))
}

/// Write `value` to `path` atomically, mode 0600, creating the directory (0700).
fn write_json_private(path: &Path, value: &Value) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| RegistryError::io(dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        std::process::id()
    ));
    let text = serde_json::to_string_pretty(value).expect("JSON value serialises");
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(RegistryError::io(path, e));
    }
    Ok(())
}

/// Store credentials for `key` (a registry host, or `host/namespace`) in the auth file.
pub fn store(authfile: Option<&Path>, key: &str, creds: &Credentials) -> Result<PathBuf> {
    let path = auth_file_path(authfile);
    let mut doc = read_json(&path)?.unwrap_or_else(|| Value::Object(Map::new()));
    let Some(obj) = doc.as_object_mut() else {
        return Err(RegistryError::Config {
            path,
            message: "not a JSON object".to_string(),
        });
    };
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(auths) = auths.as_object_mut() else {
        return Err(RegistryError::Config {
            path,
            message: "\"auths\" is not a JSON object".to_string(),
        });
    };
    let key = normalize_key(key);
    auths.retain(|k, _| normalize_key(k) != key);
    let entry = match creds {
        Credentials::Basic { username, password } => {
            serde_json::json!({ "auth": B64.encode(format!("{username}:{password}")) })
        }
        Credentials::IdentityToken { username, token } => serde_json::json!({
            "auth": B64.encode(format!("{username}:")),
            "identitytoken": token,
        }),
    };
    auths.insert(key, entry);
    write_json_private(&path, &doc)?;
    Ok(path)
}

/// Remove the credentials for `key` (or every credential with `key == None`) from the auth
/// file. Returns whether anything was removed.
pub fn remove(authfile: Option<&Path>, key: Option<&str>) -> Result<bool> {
    let path = auth_file_path(authfile);
    let Some(mut doc) = read_json(&path)? else {
        return Ok(false);
    };
    let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    let before = auths.len();
    match key {
        Some(key) => {
            let key = normalize_key(key);
            auths.retain(|k, _| normalize_key(k) != key);
        }
        None => auths.clear(),
    }
    let removed = auths.len() != before;
    if removed {
        write_json_private(&path, &doc)?;
    }
    Ok(removed)
}

/// Whether docker's own config has credentials for `registry` (for logout's message).
pub fn in_docker_config(registry: &str) -> bool {
    docker_config_path()
        .and_then(|p| read_json(&p).ok().flatten())
        .and_then(|doc| {
            doc.get("auths")
                .and_then(Value::as_object)
                .map(|a| a.keys().any(|k| normalize_key(k) == registry))
        })
        .unwrap_or(false)
}

/// `Authorization: Basic ...` value.
pub(crate) fn basic_header(username: &str, password: &str) -> String {
    format!("Basic {}", B64.encode(format!("{username}:{password}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise() {
        assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_key("registry-1.docker.io"), "docker.io");
        assert_eq!(
            normalize_key("https://localhost:5000/v2/"),
            "localhost:5000"
        );
        assert_eq!(normalize_key("quay.io/org/repo"), "quay.io/org/repo");
    }

    #[test]
    fn entries_decode_and_match() {
        let doc: Value = serde_json::json!({
            "auths": {
                "quay.io": {"auth": B64.encode("a:b")},
                "quay.io/org": {"auth": B64.encode("c:d")},
                "https://index.docker.io/v1/": {"auth": B64.encode("me:secret:with:colons")},
            }
        });
        let auths = doc["auths"].as_object().unwrap();
        let p = Path::new("x");
        let e = find_auth_entry(auths, "quay.io", Some("org/app")).unwrap();
        assert_eq!(decode_entry(p, e).unwrap().unwrap().username(), "c");
        let e = find_auth_entry(auths, "quay.io", Some("other/app")).unwrap();
        assert_eq!(decode_entry(p, e).unwrap().unwrap().username(), "a");
        let e = find_auth_entry(auths, "docker.io", Some("library/x")).unwrap();
        assert_eq!(
            decode_entry(p, e).unwrap().unwrap(),
            Credentials::Basic {
                username: "me".into(),
                password: "secret:with:colons".into()
            }
        );
    }

    #[test]
    fn debug_redacts() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
