//! A small, synchronous client for the OCI distribution API over `ureq` + rustls.
//!
//! - Endpoint discovery: `GET /v2/` over HTTPS; plain HTTP only for localhost/127.0.0.0/8/::1,
//!   registries.conf `insecure = true`, or `--tls-verify=false`.
//! - TLS: the system roots plus `--cert-dir` or the per-registry directories
//!   (`/etc/containers/certs.d/HOST/`, `~/.config/containers/certs.d/HOST/`,
//!   `/etc/docker/certs.d/HOST/`): `*.crt` are CAs, `*.cert` + `*.key` a client certificate.
//! - Auth: the `WWW-Authenticate` challenge of `/v2/` decides: Basic sends the credentials,
//!   Bearer fetches a token (anonymous without credentials) per scope, reused across requests
//!   and threads, refreshed on a later 401 challenge.
//! - Redirects are followed by hand: credentials go only to the registry's own host.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ureq::http::{self, Response};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
use ureq::{Agent, Body, SendBody};

use super::auth::{self, Credentials};
use super::{RegistryError, Result};
use crate::reference::DEFAULT_REGISTRY;

pub const USER_AGENT: &str = concat!("burrow/", env!("CARGO_PKG_VERSION"));

/// Options shared by every command that talks to a registry.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// `--tls-verify`: `Some(false)` disables verification and allows plain HTTP.
    pub tls_verify: Option<bool>,
    /// `--cert-dir`: replaces the per-registry certificate directories.
    pub cert_dir: Option<PathBuf>,
    /// `--authfile`.
    pub authfile: Option<PathBuf>,
    /// `--creds USER:PASS`, or the credentials `login` is checking.
    pub creds: Option<Credentials>,
    /// Do not look credentials up in the auth files (login checks exactly the given ones).
    pub no_stored_creds: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug)]
struct AuthState {
    challenge: Challenge,
    /// Bearer tokens by scope set.
    tokens: HashMap<String, String>,
}

/// A request body that can be sent again (after a 401 or a redirect).
pub enum ReqBody<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
        /// Called with the number of bytes sent so far, for progress.
        progress: Option<&'a (dyn Fn(u64) + Sync)>,
    },
}

/// A connection to one registry, shared by the threads of one pull or push.
pub struct RegistryClient {
    /// The registry as references name it (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// `scheme://host[:port]` of the API endpoint.
    base: String,
    /// `host[:port]` of the API endpoint (credentials go nowhere else).
    authority: String,
    agent: Agent,
    creds: Option<Credentials>,
    auth: Mutex<AuthState>,
}

fn is_local(host: &str) -> bool {
    let h = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    if h == "localhost" || h.ends_with(".localhost") {
        return true;
    }
    match h.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// The API endpoint host for a registry name (docker.io lives at registry-1.docker.io).
pub fn endpoint_host(registry: &str) -> &str {
    if registry == DEFAULT_REGISTRY {
        "registry-1.docker.io"
    } else {
        registry
    }
}

fn system_roots() -> &'static Vec<Certificate<'static>> {
    static ROOTS: OnceLock<Vec<Certificate<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let res = rustls_native_certs::load_native_certs();
        for e in &res.errors {
            log::debug!("loading system CA certificates: {e}");
        }
        res.certs
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect()
    })
}

fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
}

/// Certificate directories for a registry host, in the order containers/image reads them.
fn cert_dirs(host: &str, cert_dir: Option<&Path>) -> Vec<PathBuf> {
    if let Some(d) = cert_dir {
        return vec![d.to_path_buf()];
    }
    let mut dirs = Vec::new();
    if let Some(c) = config_home() {
        dirs.push(c.join("containers/certs.d").join(host));
    }
    dirs.push(Path::new("/etc/containers/certs.d").join(host));
    dirs.push(Path::new("/etc/docker/certs.d").join(host));
    dirs
}

struct TlsMaterial {
    cas: Vec<Certificate<'static>>,
    client: Option<ClientCert>,
}

fn load_tls_material(hosts: &[&str], cert_dir: Option<&Path>) -> Result<TlsMaterial> {
    let mut cas = Vec::new();
    let mut client = None;
    let mut seen = Vec::new();
    for host in hosts {
        for dir in cert_dirs(host, cert_dir) {
            if seen.contains(&dir) {
                continue;
            }
            seen.push(dir.clone());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for f in &files {
                let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
                let pem_err = |e: ureq::Error| RegistryError::Config {
                    path: f.clone(),
                    message: format!("not a PEM file: {e}"),
                };
                match ext {
                    "crt" => {
                        let bytes = std::fs::read(f).map_err(|e| RegistryError::io(f, e))?;
                        for item in ureq::tls::parse_pem(&bytes) {
                            if let PemItem::Certificate(c) = item.map_err(pem_err)? {
                                cas.push(c.to_owned());
                            }
                        }
                        log::debug!("CA certificates from {}", f.display());
                    }
                    "cert" if client.is_none() => {
                        let key_path = f.with_extension("key");
                        let bytes = std::fs::read(f).map_err(|e| RegistryError::io(f, e))?;
                        let key_bytes =
                            std::fs::read(&key_path).map_err(|e| RegistryError::Config {
                                path: key_path.clone(),
                                message: format!("client certificate without its key: {e}"),
                            })?;
                        let mut chain = Vec::new();
                        for item in ureq::tls::parse_pem(&bytes) {
                            if let PemItem::Certificate(c) = item.map_err(pem_err)? {
                                chain.push(c.to_owned());
                            }
                        }
                        let key = PrivateKey::from_pem(&key_bytes).map_err(|e| {
                            RegistryError::Config {
                                path: key_path.clone(),
                                message: format!("not a PEM private key: {e}"),
                            }
                        })?;
                        client = Some(ClientCert::new_with_certs(&chain, key));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(TlsMaterial { cas, client })
}

fn build_agent(verify: bool, tls: &TlsMaterial) -> Agent {
    let mut roots: Vec<Certificate<'static>> = system_roots().clone();
    roots.extend(tls.cas.iter().cloned());
    let tls_config = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&roots))
        .client_cert(tls.client.clone())
        .disable_verification(!verify)
        .build();
    Agent::config_builder()
        .tls_config(tls_config)
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(USER_AGENT)
        .accept_encoding("identity")
        .max_idle_connections_per_host(16)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .build()
        .new_agent()
}

/// An agent with the system roots and no per-registry material (Docker Hub search).
pub(crate) fn simple_agent(verify: bool) -> Agent {
    build_agent(
        verify,
        &TlsMaterial {
            cas: Vec::new(),
            client: None,
        },
    )
}

fn is_tls_error(e: &ureq::Error) -> bool {
    if matches!(
        e,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_)
    ) {
        return true;
    }
    // rustls errors met while reading arrive wrapped in io errors.
    let text = e.to_string().to_ascii_lowercase();
    text.contains("certificate") || text.contains("tls")
}

/// Authority (`host[:port]`) of an absolute URL.
fn authority_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Resolve a `Location` against the URL it came from.
pub fn resolve_location(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if let Some(l) = location.strip_prefix("//") {
        return format!("{scheme}://{l}");
    }
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    // Relative to the base's directory.
    let path = &rest[authority_end..];
    let path = path.split('?').next().unwrap_or("");
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    format!("{scheme}://{authority}{dir}{location}")
}

/// A URL for messages: no query (upload state, signatures).
fn display_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Parse `Bearer realm="...",service="...",scope="..."` → (scheme, params).
pub fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    (scheme.to_ascii_lowercase(), params)
}

fn challenge_of(resp: &Response<Body>) -> Option<(Challenge, Option<String>)> {
    let header = resp.headers().get("www-authenticate")?.to_str().ok()?;
    let (scheme, params) = parse_challenge(header);
    match scheme.as_str() {
        "basic" => Some((Challenge::Basic, None)),
        "bearer" => {
            let realm = params.get("realm")?.clone();
            Some((
                Challenge::Bearer {
                    realm,
                    service: params.get("service").cloned(),
                },
                params.get("scope").cloned(),
            ))
        }
        _ => None,
    }
}

/// Minimal percent-encoding for query values.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Registry error body `{"errors":[{"code":..,"message":..}]}` → (first code, text).
fn error_body(resp: &mut Response<Body>) -> (Option<String>, String) {
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_vec()
        .unwrap_or_default();
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        let text = String::from_utf8_lossy(&body).trim().to_string();
        let text: String = text.chars().take(200).collect();
        return (None, text);
    };
    let errors = v.get("errors").and_then(|e| e.as_array());
    let first = errors.and_then(|e| e.first());
    let code = first
        .and_then(|e| e.get("code"))
        .and_then(|c| c.as_str())
        .map(str::to_string);
    let msg = errors
        .map(|es| {
            es.iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let m = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{}: {}", code.to_ascii_lowercase().replace('_', " "), m)
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    (code, msg)
}

impl RegistryClient {
    /// Connect to `registry`: pick HTTPS or (where allowed) HTTP, and learn its auth scheme.
    /// `repository` (the one this client is for, if any) picks credentials stored for a
    /// namespace (`host/ns`) over those for the whole registry.
    pub fn connect(
        registry: &str,
        repository: Option<&str>,
        insecure: bool,
        opts: &ClientOptions,
    ) -> Result<RegistryClient> {
        let host = endpoint_host(registry);
        let local = is_local(host);
        let verify = opts.tls_verify != Some(false) && !insecure;
        let allow_http = opts.tls_verify == Some(false) || insecure || local;
        let tls = load_tls_material(&[registry, host], opts.cert_dir.as_deref())?;
        let agent = build_agent(verify, &tls);
        let creds = match &opts.creds {
            Some(c) => Some(c.clone()),
            None if opts.no_stored_creds => None,
            None => auth::lookup(registry, repository, opts.authfile.as_deref())?,
        };
        let mut client = RegistryClient {
            registry: registry.to_string(),
            base: format!("https://{host}"),
            authority: host.to_string(),
            agent,
            creds,
            auth: Mutex::new(AuthState {
                challenge: Challenge::None,
                tokens: HashMap::new(),
            }),
        };
        let https_url = format!("https://{host}/v2/");
        let ping = client.agent.get(&https_url).call();
        let resp = match ping {
            Ok(r) => r,
            Err(e) if allow_http => {
                let http_url = format!("http://{host}/v2/");
                match client.agent.get(&http_url).call() {
                    Ok(r) if matches!(r.status().as_u16(), 200 | 401) => {
                        log::debug!("{registry}: using plain HTTP");
                        client.base = format!("http://{host}");
                        r
                    }
                    _ => return Err(client.connect_error(&e)),
                }
            }
            Err(e) => return Err(client.connect_error(&e)),
        };
        if resp.status().as_u16() == 401
            && let Some((c, _)) = challenge_of(&resp)
        {
            client.auth.get_mut().unwrap().challenge = c;
        }
        log::debug!(
            "{registry}: endpoint {}, auth {:?}",
            client.base,
            client.auth.get_mut().unwrap().challenge
        );
        Ok(client)
    }

    fn connect_error(&self, e: &ureq::Error) -> RegistryError {
        let hint = if is_tls_error(e) {
            format!(
                " (for a registry with a private CA, put the CA in /etc/containers/certs.d/{r}/ca.crt or ~/.config/containers/certs.d/{r}/ca.crt, or pass --cert-dir; --tls-verify=false turns verification off)",
                r = self.registry
            )
        } else {
            String::new()
        };
        RegistryError::Connect {
            registry: self.registry.clone(),
            message: e.to_string(),
            hint,
        }
    }

    pub fn has_credentials(&self) -> bool {
        self.creds.is_some()
    }

    /// The `/v2/...` URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v2/{}", self.base, path.trim_start_matches('/'))
    }

    fn transfer_error(&self, e: ureq::Error) -> RegistryError {
        match e {
            ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Timeout(_) => RegistryError::Transfer {
                registry: self.registry.clone(),
                message: format!("connection lost or refused: {e}"),
            },
            e => RegistryError::Transfer {
                registry: self.registry.clone(),
                message: e.to_string(),
            },
        }
    }

    /// Fetch (or reuse) a bearer token for `scopes`.
    fn bearer_token(
        &self,
        state: &mut AuthState,
        scopes: &[String],
        force: bool,
    ) -> Result<String> {
        let key = scopes.join(" ");
        if !force && let Some(t) = state.tokens.get(&key) {
            return Ok(t.clone());
        }
        let Challenge::Bearer { realm, service } = &state.challenge else {
            return Err(RegistryError::Other("no bearer challenge".into()));
        };
        let token = self.fetch_token(realm, service.as_deref(), scopes)?;
        state.tokens.insert(key, token.clone());
        Ok(token)
    }

    fn fetch_token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String> {
        let mut query = Vec::new();
        if let Some(s) = service {
            query.push(format!("service={}", urlencode(s)));
        }
        let resp = match &self.creds {
            Some(Credentials::IdentityToken { token, .. }) => {
                let mut form = vec![
                    "grant_type=refresh_token".to_string(),
                    format!("refresh_token={}", urlencode(token)),
                    "client_id=burrow".to_string(),
                ];
                form.extend(query);
                if !scopes.is_empty() {
                    form.push(format!("scope={}", urlencode(&scopes.join(" "))));
                }
                self.agent
                    .post(realm)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .send(form.join("&").as_bytes())
            }
            creds => {
                for s in scopes {
                    query.push(format!("scope={}", urlencode(s)));
                }
                let sep = if realm.contains('?') { '&' } else { '?' };
                let url = if query.is_empty() {
                    realm.to_string()
                } else {
                    format!("{realm}{sep}{}", query.join("&"))
                };
                let mut req = self.agent.get(&url);
                if let Some(Credentials::Basic { username, password }) = creds {
                    req = req.header("Authorization", auth::basic_header(username, password));
                }
                req.call()
            }
        };
        let mut resp = resp.map_err(|e| RegistryError::Connect {
            registry: format!("{} (token service {})", self.registry, display_url(realm)),
            message: e.to_string(),
            hint: String::new(),
        })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            let (_, msg) = error_body(&mut resp);
            if self.creds.is_some() {
                return Err(RegistryError::BadCredentials {
                    registry: self.registry.clone(),
                    detail: if msg.is_empty() {
                        String::new()
                    } else {
                        format!(": {msg}")
                    },
                });
            }
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                repository: scopes
                    .first()
                    .and_then(|s| s.split(':').nth(1))
                    .unwrap_or("")
                    .to_string(),
            });
        }
        if status != 200 {
            let (_, msg) = error_body(&mut resp);
            return Err(RegistryError::Http {
                method: "GET".into(),
                url: display_url(realm).to_string(),
                status,
                message: if msg.is_empty() {
                    String::new()
                } else {
                    format!(": {msg}")
                },
            });
        }
        let v: serde_json::Value = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| {
                RegistryError::Other(format!("token service {}: {e}", display_url(realm)))
            })?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                RegistryError::Other(format!(
                    "token service {} answered without a token",
                    display_url(realm)
                ))
            })
    }

    /// The `Authorization` header for a request needing `scopes`, if any.
    fn authorization(&self, scopes: &[String], force: bool) -> Result<Option<String>> {
        let mut state = self.auth.lock().unwrap();
        match state.challenge.clone() {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(match &self.creds {
                Some(Credentials::Basic { username, password }) => {
                    Some(auth::basic_header(username, password))
                }
                _ => None,
            }),
            Challenge::Bearer { .. } => Ok(Some(format!(
                "Bearer {}",
                self.bearer_token(&mut state, scopes, force)?
            ))),
        }
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        authz: Option<&str>,
        body: &ReqBody<'_>,
    ) -> Result<Response<Body>> {
        let mut b = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        if let Some(a) = authz {
            b = b.header("Authorization", a);
        }
        let build_err =
            |e: http::Error| RegistryError::Other(format!("{method} {}: {e}", display_url(url)));
        let res = match body {
            ReqBody::Empty => {
                if matches!(method, "PUT" | "POST" | "PATCH") {
                    b = b.header("Content-Length", "0");
                }
                self.agent.run(b.body(()).map_err(build_err)?)
            }
            ReqBody::Bytes(bytes) => {
                b = b.header("Content-Length", bytes.len().to_string());
                self.agent.run(b.body(*bytes).map_err(build_err)?)
            }
            ReqBody::File {
                path,
                offset,
                len,
                progress,
            } => {
                let mut f = std::fs::File::open(path).map_err(|e| RegistryError::io(*path, e))?;
                f.seek(SeekFrom::Start(*offset))
                    .map_err(|e| RegistryError::io(*path, e))?;
                let mut reader = ProgressReader {
                    inner: f.take(*len),
                    done: 0,
                    progress: *progress,
                };
                b = b.header("Content-Length", len.to_string());
                self.agent.run(
                    b.body(SendBody::from_reader(&mut reader))
                        .map_err(build_err)?,
                )
            }
        };
        res.map_err(|e| self.transfer_error(e))
    }

    /// Send a request to the registry with auth for `scopes`, answering a 401 challenge once
    /// and following redirects (credentials only to the registry's own host).
    /// Returns the final response, whatever its status.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        scopes: &[String],
        headers: &[(&str, String)],
        body: ReqBody<'_>,
    ) -> Result<Response<Body>> {
        let mut url = url.to_string();
        let mut authz = self.authorization(scopes, false)?;
        let mut retried = false;
        let mut redirects = 0;
        loop {
            let same_host = authority_of(&url) == Some(self.authority.as_str());
            let a = if same_host { authz.as_deref() } else { None };
            let resp = self.send_once(method, &url, headers, a, &body)?;
            let status = resp.status().as_u16();
            if status == 401 && same_host && !retried {
                retried = true;
                if let Some((challenge, scope)) = challenge_of(&resp) {
                    let mut want: Vec<String> = scopes.to_vec();
                    if let Some(s) = scope {
                        for s in s.split(' ') {
                            if !want.iter().any(|w| w == s) {
                                want.push(s.to_string());
                            }
                        }
                    }
                    {
                        let mut state = self.auth.lock().unwrap();
                        if state.challenge != challenge {
                            state.challenge = challenge;
                            state.tokens.clear();
                        }
                    }
                    let fresh = self.authorization(&want, true)?;
                    if fresh.is_some() {
                        authz = fresh;
                        continue;
                    }
                }
                return Ok(resp);
            }
            if (300..400).contains(&status)
                && status != 304
                && matches!(method, "GET" | "HEAD")
                && let Some(loc) = resp.headers().get("location").and_then(|l| l.to_str().ok())
            {
                redirects += 1;
                if redirects > 10 {
                    return Err(RegistryError::Transfer {
                        registry: self.registry.clone(),
                        message: format!("too many redirects for {}", display_url(&url)),
                    });
                }
                let next = resolve_location(&url, loc);
                if next.starts_with("http://")
                    && url.starts_with("https://")
                    && !is_local(authority_of(&next).unwrap_or(""))
                {
                    log::debug!("redirect from HTTPS to HTTP: {}", display_url(&next));
                }
                url = next;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Turn an unexpected response into an error a user can act on.
    pub fn status_error(
        &self,
        method: &str,
        url: &str,
        repository: &str,
        reference: &str,
        mut resp: Response<Body>,
    ) -> RegistryError {
        let status = resp.status().as_u16();
        let (code, msg) = error_body(&mut resp);
        let detail = if msg.is_empty() {
            String::new()
        } else {
            format!(": {msg}")
        };
        match (status, code.as_deref()) {
            (401, _) if self.creds.is_some() => RegistryError::Denied {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                detail: format!(" (the credentials were not accepted{detail})"),
            },
            (401, _) => RegistryError::Unauthorized {
                registry: self.registry.clone(),
                repository: repository.to_string(),
            },
            (403, _) | (_, Some("DENIED")) => RegistryError::Denied {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                detail,
            },
            (404, Some("MANIFEST_UNKNOWN")) => RegistryError::ManifestUnknown {
                reference: reference.to_string(),
            },
            (404, Some("NAME_UNKNOWN")) => RegistryError::NameUnknown {
                reference: reference.to_string(),
            },
            (404, None) if method == "GET" && url.contains("/manifests/") => {
                RegistryError::ManifestUnknown {
                    reference: reference.to_string(),
                }
            }
            _ => RegistryError::Http {
                method: method.to_string(),
                url: display_url(url).to_string(),
                status,
                message: detail,
            },
        }
    }

    /// Check that the credentials work (for `login`): any request needing auth must pass.
    pub fn check_login(&self) -> Result<()> {
        let challenge = self.auth.lock().unwrap().challenge.clone();
        match challenge {
            Challenge::None => Ok(()),
            Challenge::Bearer { .. } => {
                // A token for no particular scope proves the credentials.
                let mut state = self.auth.lock().unwrap();
                self.bearer_token(&mut state, &[], true).map(|_| ())
            }
            Challenge::Basic => {
                let url = self.url("");
                let resp = self.send("GET", &url, &[], &[], ReqBody::Empty)?;
                match resp.status().as_u16() {
                    200..=299 => Ok(()),
                    401 | 403 => Err(RegistryError::BadCredentials {
                        registry: self.registry.clone(),
                        detail: String::new(),
                    }),
                    _ => Err(self.status_error("GET", &url, "", "", resp)),
                }
            }
        }
    }

    /// Whether the registry requires no auth at all.
    pub fn is_open(&self) -> bool {
        self.auth.lock().unwrap().challenge == Challenge::None
    }
}

struct ProgressReader<'a, R> {
    inner: R,
    done: u64,
    progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if let Some(p) = self.progress {
            p(self.done);
        }
        Ok(n)
    }
}

/// Shareable handle.
pub type SharedClient = Arc<RegistryClient>;

/// `repository:NAME:ACTIONS`.
pub fn scope(repository: &str, actions: &str) -> String {
    format!("repository:{repository}:{actions}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:samalba/my-app:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="basic-realm""#);
        assert_eq!(s, "basic");
        assert_eq!(p["realm"], "basic-realm");
    }

    #[test]
    fn locations_resolve() {
        assert_eq!(
            resolve_location(
                "https://h:5000/v2/x/blobs/uploads/",
                "/v2/x/blobs/uploads/u?s=1"
            ),
            "https://h:5000/v2/x/blobs/uploads/u?s=1"
        );
        assert_eq!(
            resolve_location("https://h/v2/x", "https://s3.example/b?sig=1"),
            "https://s3.example/b?sig=1"
        );
        assert_eq!(authority_of("https://h:5000/v2/"), Some("h:5000"));
        assert_eq!(authority_of("http://h"), Some("h"));
    }

    #[test]
    fn local_hosts() {
        assert!(is_local("localhost:5000"));
        assert!(is_local("127.0.0.1:5000"));
        assert!(is_local("127.1.2.3"));
        assert!(is_local("[::1]:5000"));
        assert!(!is_local("example.com:5000"));
        assert!(!is_local("10.0.0.1"));
    }
}
