//! Registries: push, pull, login/logout, auth, TLS — against Debian's `docker-registry`
//! (distribution 2.8) served on 127.0.0.1 by each test, plus small HTTP servers of our own
//! (a token issuer, a registry that dies mid-blob).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::json;

use crate::fixtures;
use crate::harness::{self, TestCtx, Who};
use crate::images::{self, Entry};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

// ---------------------------------------------------------------------------------------------
// The registry server

pub(crate) fn have_registry() -> Result<(), String> {
    if Path::new(REGISTRY_BIN).exists() {
        return Ok(());
    }
    if harness::is_root() {
        let _ = Command::new("sh")
            .arg("-c")
            .arg("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null 2>&1")
            .status();
    }
    if Path::new(REGISTRY_BIN).exists() {
        Ok(())
    } else {
        Err("no docker-registry (apt-get install docker-registry)".into())
    }
}

pub(crate) fn have_openssl() -> Result<(), String> {
    match Command::new("openssl").arg("version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("no openssl CLI".into()),
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on 127.0.0.1:{port}");
}

#[derive(Default)]
pub(crate) struct RegistryConfig {
    pub(crate) htpasswd: Option<PathBuf>,
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
    /// (realm, service, issuer, rootcertbundle)
    pub(crate) token: Option<(String, String, String, PathBuf)>,
}

/// A `docker-registry` on 127.0.0.1, killed on drop.
pub(crate) struct Registry {
    child: Child,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    pub(crate) fn start(cfg: RegistryConfig) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("burrow-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((cert, key)) = &cfg.tls {
            yaml += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        if let Some(h) = &cfg.htpasswd {
            yaml += &format!(
                "auth:\n  htpasswd:\n    realm: burrow-test\n    path: {}\n",
                h.display()
            );
        }
        if let Some((realm, service, issuer, bundle)) = &cfg.token {
            yaml += &format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                bundle.display()
            );
        }
        let conf = dir.path().join("config.yml");
        std::fs::write(&conf, yaml).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let r = Registry { child, port, dir };
        wait_for_port(port, "docker-registry");
        r
    }

    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Path of a blob's data in the registry's storage.
    pub(crate) fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Talking to the registry directly (plain HTTP, no auth), to build what burrow pulls

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

pub(crate) fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", images::sha256_hex(data))
}

/// Upload a blob; returns its descriptor fields.
pub(crate) fn upload_blob(base: &str, repo: &str, data: &[u8]) -> (String, usize) {
    let a = agent();
    let digest = digest_of(data);
    let resp = a
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send_empty()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202, "start upload");
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{base}{loc}")
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let resp = a
        .put(format!("{loc}{sep}digest={}", digest.replace(':', "%3A")))
        .header("Content-Type", "application/octet-stream")
        .send(data)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "finish upload");
    (digest, data.len())
}

pub(crate) fn put_manifest(base: &str, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    let resp = agent()
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .send(body)
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "put manifest {repo}:{reference}"
    );
}

pub(crate) struct Built {
    pub(crate) manifest: Vec<u8>,
    pub(crate) manifest_digest: String,
    pub(crate) config_digest: String,
    pub(crate) layer_digests: Vec<String>,
}

/// Build and upload a small OCI image for `arch` with `n` gzip layers.
pub(crate) fn upload_image(base: &str, repo: &str, arch: &str, n: usize, salt: &str) -> Built {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..n {
        let tar = images::tar(&[
            Entry::dir("etc", 0o755),
            Entry::file(
                &format!("etc/layer-{i}"),
                0o644,
                format!("{salt} {arch} layer {i}\n").repeat(100 * (i + 1)),
            ),
        ]);
        diff_ids.push(digest_of(&tar));
        let gz = images::gzip(&tar);
        let (d, s) = upload_blob(base, repo, &gz);
        layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}));
    }
    let config = serde_json::to_vec(&json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let (config_digest, config_size) = upload_blob(base, repo, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": layers,
    }))
    .unwrap();
    let manifest_digest = digest_of(&manifest);
    put_manifest(
        base,
        repo,
        &manifest_digest,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
    Built {
        layer_digests: layers
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect(),
        manifest,
        manifest_digest,
        config_digest,
    }
}

// ---------------------------------------------------------------------------------------------
// Looking into a store

pub(crate) fn store_blobs(t: &TestCtx) -> BTreeSet<String> {
    harness::list_dir(&t.root.join("blobs/sha256"))
        .into_iter()
        .map(|h| format!("sha256:{h}"))
        .collect()
}

pub(crate) fn has_blob(t: &TestCtx, digest: &str) -> bool {
    store_blobs(t).contains(digest)
}

/// Files left in the store's temporary directory.
pub(crate) fn store_tmp(t: &TestCtx) -> Vec<String> {
    harness::list_dir(&t.root.join("tmp"))
}

pub(crate) fn ctx2(name: &str) -> TestCtx {
    TestCtx::new(name, Who::Default).expect("second test context")
}

/// `N: digest: sha256:... size: N` → the digest.
pub(crate) fn pushed_digest(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.split(" digest: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line in push output:\n{stdout}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Tiny HTTP servers for the token issuer and the failing registry

pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
    })
}

pub(crate) fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// An HTTP server on 127.0.0.1 running `handler` per connection; stopped on drop.
pub(crate) struct MiniServer {
    pub(crate) port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl MiniServer {
    pub(crate) fn start(
        handler: impl Fn(Request, &mut TcpStream) + Send + Sync + 'static,
    ) -> MiniServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handler = Arc::new(handler);
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let h = handler.clone();
                thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                    if let Some(req) = read_request(&mut s) {
                        h(req, &mut s);
                    }
                });
            }
        });
        MiniServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for MiniServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn query_params(target: &str) -> Vec<(String, String)> {
    let q = target.split_once('?').map_or("", |(_, q)| q);
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), percent_decode(v))
        })
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Certificates and passwords

pub(crate) fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1/localhost, in `dir`: ca.crt, server.crt,
/// server.key.
pub(crate) fn make_tls(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=burrow test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

pub(crate) fn htpasswd(path: &Path, user: &str, password: &str) {
    let hash = bcrypt::hash(password, 5).unwrap();
    std::fs::write(path, format!("{user}:{hash}\n")).unwrap();
}

/// Load the busybox base image into `t` and name it `name`.
pub(crate) fn load_named(t: &TestCtx, name: &str) {
    let base = fixtures::load_base(t);
    t.burrow(["tag", base, name]).output().assert_ok();
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn push_pull_round_trip() {
    let t = ctx!();
    if let Err(why) = have_registry() {
        return harness::skip(function_name!(), &why);
    }
    let reg = Registry::start(RegistryConfig::default());
    let name = format!("{}/round/trip:1", reg.host());
    load_named(&t, &name);

    let out = t.burrow(["push", &name]).output();
    out.assert_ok();
    let digest = pushed_digest(&out.stdout);
    assert!(out.stdout.contains("Pushed"), "{}", out.stdout);
    // Again: every blob is already there.
    let out = t.burrow(["push", &name]).output();
    out.assert_ok();
    assert!(!out.stdout.contains(": Pushed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("Layer already exists"),
        "{}",
        out.stdout
    );
    assert_eq!(pushed_digest(&out.stdout), digest);

    // Pull into a fresh store.
    let t2 = ctx2("push_pull_round_trip-2");
    let out = t2.burrow(["pull", &name]).output();
    out.assert_ok();
    assert!(
        out.stdout.contains(&format!("Digest: {digest}")),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.lines().last(), Some(name.as_str()));
    let source_blobs = store_blobs(&t);
    for b in store_blobs(&t2) {
        assert!(
            source_blobs.contains(&b),
            "{b} pulled but not in the source store"
        );
    }
    assert!(has_blob(&t2, &digest));
    // pull unpacks the layers as they arrive: a run needs no unpacking afterwards.
    let unpacked: Vec<String> = harness::list_dir(&t2.root.join("overlay"))
        .into_iter()
        .filter(|n| n.len() == 64 && t2.root.join("overlay").join(n).join("diff").is_dir())
        .collect();
    assert!(
        !unpacked.is_empty(),
        "pull left no unpacked layer in {}",
        t2.root.display()
    );
    let images = t2.burrow(["images"]).output();
    images.assert_ok();
    assert!(
        images
            .stdout
            .contains(&format!("{}/round/trip", reg.host())),
        "{}",
        images.stdout
    );
    // A second pull fetches nothing.
    let out = t2.burrow(["pull", &name]).output();
    out.assert_ok();
    assert!(out.stdout.contains("Image is up to date"), "{}", out.stdout);
    assert!(!out.stdout.contains("Download complete"), "{}", out.stdout);

    // By digest, quietly, into a third store.
    let t3 = ctx2("push_pull_round_trip-3");
    let by_digest = format!("{}/round/trip@{digest}", reg.host());
    let out = t3.burrow(["pull", "-q", &by_digest]).output();
    out.assert_ok();
    assert_eq!(out.stdout.trim(), by_digest);
    assert!(has_blob(&t3, &digest));
    assert_eq!(store_blobs(&t3), store_blobs(&t2));

    // A wrong digest is "manifest unknown".
    let bad = format!("{}/round/trip@sha256:{}", reg.host(), "0".repeat(64));
    let out = t3.burrow(["pull", &bad]).output();
    out.assert_code(125);
    assert!(out.stderr.contains("manifest unknown"), "{}", out.stderr);
}

/// RepoDigests are what a registry knows the image by, as docker has them: none for an image
/// that only was loaded (or tagged), `REPO@DIGEST` once pushed, and after a pull by tag.
#[test]
fn repo_digests_come_from_the_registry() {
    let t = ctx!();
    if let Err(why) = have_registry() {
        return harness::skip(function_name!(), &why);
    }
    let reg = Registry::start(RegistryConfig::default());
    let repo = format!("{}/digests/app", reg.host());
    let name = format!("{repo}:1");
    load_named(&t, &name);
    let repo_digests = |t: &TestCtx, image: &str| {
        let out = t
            .burrow(["image", "inspect", "-f", "{{json .RepoDigests}}", image])
            .output();
        out.assert_ok();
        out.stdout.trim().to_string()
    };
    let digest_column = |t: &TestCtx| {
        let out = t
            .burrow([
                "images",
                "--digests",
                "--format",
                "{{.Repository}} {{.Digest}}",
            ])
            .output();
        out.assert_ok();
        out.stdout
    };
    assert_eq!(repo_digests(&t, &name), "[]");
    assert!(
        digest_column(&t).contains(&format!("{repo} <none>")),
        "{}",
        digest_column(&t)
    );

    let digest = pushed_digest(&t.burrow(["push", &name]).output().stdout);
    let want = format!("[\"{repo}@{digest}\"]");
    assert_eq!(repo_digests(&t, &name), want);
    assert!(
        digest_column(&t).contains(&format!("{repo} {digest}")),
        "{}",
        digest_column(&t)
    );

    let t2 = ctx2("repo_digests_come_from_the_registry-2");
    t2.burrow(["pull", "-q", &name]).output().assert_ok();
    assert_eq!(repo_digests(&t2, &name), want);
    // The image is found by it, and a new tag brings no digest of its own.
    assert_eq!(repo_digests(&t2, &format!("{repo}@{digest}")), want);
    t2.burrow(["tag", &name, "local/copy:1"])
        .output()
        .assert_ok();
    assert_eq!(repo_digests(&t2, "local/copy:1"), want);
    // Removing the image untags its digest too, as docker says.
    t2.burrow(["rmi", "local/copy:1"]).output().assert_ok();
    let out = t2.burrow(["rmi", &name]).output();
    out.assert_ok();
    assert!(
        out.stdout.contains(&format!("Untagged: {repo}@{digest}")),
        "{}",
        out.stdout
    );
}

#[test]
fn pull_all_tags() {
    let t = ctx!();
    if let Err(why) = have_registry() {
        return harness::skip(function_name!(), &why);
    }
    let reg = Registry::start(RegistryConfig::default());
    let repo = format!("{}/every/tag", reg.host());
    for tag in ["1.0", "2.0", "latest"] {
        let name = format!("{repo}:{tag}");
        load_named(&t, &name);
        t.burrow(["push", &name]).output().assert_ok();
    }
    let t2 = ctx2("pull_all_tags-2");
    let out = t2.burrow(["pull", "-a", &repo]).output();
    out.assert_ok();
    let images = t2
        .burrow(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output();
    images.assert_ok();
    let mut got: Vec<&str> = images.stdout.lines().collect();
    got.sort();
    assert_eq!(
        got,
        [
            format!("{repo}:1.0"),
            format!("{repo}:2.0"),
            format!("{repo}:latest")
        ],
        "{out:?}"
    );
    let tagged = t2
        .burrow(["pull", "--all-tags", &format!("{repo}:1.0")])
        .output();
    tagged.assert_code(125);
    assert!(tagged.stderr.contains("without a tag"), "{tagged:?}");
    let missing = t2
        .burrow(["pull", "-a", &format!("{}/no/such", reg.host())])
        .output();
    missing.assert_code(125);
}

#[test]
fn push_chunked_and_cross_repository_mount() {
    let t = ctx!();
    if let Err(why) = have_registry() {
        return harness::skip(function_name!(), &why);
    }
    let reg = Registry::start(RegistryConfig::default());
    let base = fixtures::load_base(&t);
    // Chunked upload of every blob (the image has no name on this registry: no mount).
    let first = format!("{}/chunked/app:1", reg.host());
    let out = t
        .burrow(["push", base, &first])
        .env("BURROW_PUSH_CHUNK_SIZE", "65536")
        .output();
    out.assert_ok();
    assert!(out.stdout.contains("Pushed"), "{}", out.stdout);
    // The base layer is larger than a chunk: it went up in several PATCH requests.
    let patches = reg
        .log()
        .lines()
        .filter(|l| l.contains("\"PATCH /v2/chunked/app/blobs/uploads/"))
        .count();
    assert!(patches >= 2, "{patches} PATCH requests:\n{}", reg.log());
    // Another repository of the same registry: blobs are mounted, not uploaded.
    t.burrow(["tag", base, &first]).output().assert_ok();
    let second = format!("{}/other/app:2", reg.host());
    t.burrow(["tag", base, &second]).output().assert_ok();
    let out = t.burrow(["push", &second]).output();
    out.assert_ok();
    assert!(
        out.stdout.contains("Mounted from chunked/app"),
        "{}",
        out.stdout
    );
    // Both pull back to the same blobs.
    let t2 = ctx2("push_chunked_and_cross_repository_mount-2");
    t2.burrow(["pull", "-q", &first]).output().assert_ok();
    t2.burrow(["pull", "-q", &second]).output().assert_ok();
    let mine = store_blobs(&t);
    for b in store_blobs(&t2) {
        assert!(mine.contains(&b), "{b} pulled but not in the source store");
    }
}

#[test]
fn tag_and_untag() {
    let t = ctx!();
    let base = fixtures::load_base(&t);
    t.burrow(["tag", base, "example.com/a/b:2", "other:3"])
        .output()
        .assert_ok();
    let images = t.burrow(["images"]).output();
    images.assert_ok();
    assert!(
        images.stdout.contains("example.com/a/b"),
        "{}",
        images.stdout
    );
    assert!(images.stdout.contains("other"), "{}", images.stdout);
    t.burrow(["untag", base, "other:3"]).output().assert_ok();
    let images = t.burrow(["images"]).output();
    assert!(
        !images.stdout.lines().any(|l| l.starts_with("other ")),
        "{}",
        images.stdout
    );
    let out = t.burrow(["tag", base, "Bad:Name"]).output();
    out.assert_code(125);
    assert!(
        out.stderr.contains("invalid reference format"),
        "{}",
        out.stderr
    );
    // untag with no names removes them all.
    t.burrow(["untag", "example.com/a/b:2"])
        .output()
        .assert_ok();
    let images = t.burrow(["images"]).output();
    assert!(
        !images.stdout.contains("example.com/a/b"),
        "{}",
        images.stdout
    );
}

#[test]
fn pull_multi_arch_index_selects_platform() {
    let t = ctx!();
    if let Err(why) = have_registry() {
        return harness::skip(function_name!(), &why);
    }
    let reg = Registry::start(RegistryConfig::default());
    let base = format!("http://{}", reg.host());
    let amd = upload_image(&base, "multi/app", "amd64", 2, "m");
    let arm = upload_image(&base, "multi/app", "arm64", 2, "m");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd.manifest_digest, "size": amd.manifest.len(), "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm.manifest_digest, "size": arm.manifest.len(), "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    }))
    .unwrap();
    put_manifest(
        &base,
        "multi/app",
        "1",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    let name = format!("{}/multi/app:1", reg.host());

    let out = t
        .burrow(["pull", "--platform", "linux/arm64", &name])
        .output();
    out.assert_ok();
    assert!(
        out.stdout
            .contains(&format!("Digest: {}", digest_of(&index))),
        "{}",
        out.stdout
    );
    assert!(has_blob(&t, &arm.config_digest));
    assert!(has_blob(&t, &arm.manifest_digest));
    for l in &arm.layer_digests {
        assert!(has_blob(&t, l));
    }
    assert!(!has_blob(&t, &amd.config_digest));
    assert!(!amd.layer_digests.iter().any(|l| has_blob(&t, l)));
    // Its RepoDigest is the index's digest, the one the registry knows the name by.
    let digests = t
        .burrow(["image", "inspect", "-f", "{{json .RepoDigests}}", &name])
        .output();
    digests.assert_stdout(&format!(
        "[\"{}/multi/app@{}\"]\n",
        reg.host(),
        digest_of(&index)
    ));

    // No --platform: the host's.
    let host_arch = match std::env::consts::ARCH {
        "x86_64" => Some(&amd),
        "aarch64" => Some(&arm),
        _ => None,
    };
    if let Some(want) = host_arch {
        let t2 = ctx2("pull_multi_arch_index_selects_platform-2");
        t2.burrow(["pull", "-q", &name]).output().assert_ok();
        assert!(has_blob(&t2, &want.config_digest));
    }

    let out = t
        .burrow(["pull", "--platform", "linux/s390x", &name])
        .output();
    out.assert_code(125);
    assert!(out.stderr.contains("linux/s390x"), "{}", out.stderr);
    assert!(out.stderr.contains("linux/arm64"), "{}", out.stderr);
}

#[test]
fn pull_corrupted_blob_is_rejected() {
    let t = ctx!();
    if let Err(why) = have_registry() {
        return harness::skip(function_name!(), &why);
    }
    let reg = Registry::start(RegistryConfig::default());
    let base = format!("http://{}", reg.host());
    let img = upload_image(&base, "bad/blob", "amd64", 2, "corrupt");
    put_manifest(
        &base,
        "bad/blob",
        "1",
        "application/vnd.oci.image.manifest.v1+json",
        &img.manifest,
    );
    // Same size, different bytes.
    let victim = &img.layer_digests[1];
    let path = reg.blob_data(victim);
    let mut data = std::fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&path, &data).unwrap();

    let name = format!("{}/bad/blob:1", reg.host());
    let out = t.burrow(["pull", &name]).output();
    out.assert_code(125);
    assert!(out.stderr.contains("digest mismatch"), "{}", out.stderr);
    assert!(out.stderr.contains(victim.as_str()), "{}", out.stderr);
    assert!(!has_blob(&t, victim), "the corrupt blob was kept");
    assert!(
        !has_blob(&t, &img.manifest_digest),
        "the manifest was stored"
    );
    assert!(
        store_tmp(&t).is_empty(),
        "temporary files left: {:?}",
        store_tmp(&t)
    );
    let images = t.burrow(["images", "-q"]).output();
    assert!(images.stdout.trim().is_empty(), "{}", images.stdout);
}

#[test]
fn pull_from_registry_that_goes_away_mid_blob() {
    let t = ctx!();
    // A registry that serves the manifest and config, then dies halfway through the layer.
    let layer = images::gzip(&images::tar(&[Entry::file(
        "big",
        0o644,
        (0..400_000u32)
            .flat_map(|i| i.to_le_bytes())
            .collect::<Vec<u8>>(),
    )]));
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:".to_string() + &"1".repeat(64)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest_of(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let (layer_digest, config_digest) = (digest_of(&layer), digest_of(&config));
    let (l2, c2, m2) = (layer.clone(), config.clone(), manifest.clone());
    let server = MiniServer::start(move |req, s| {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        if path == "/v2/" {
            respond(s, "200 OK", &[], b"{}");
        } else if path.ends_with("/manifests/1") {
            respond(
                s,
                "200 OK",
                &[(
                    "Content-Type",
                    "application/vnd.oci.image.manifest.v1+json".into(),
                )],
                &m2,
            );
        } else if path.ends_with(&format!("/blobs/{}", digest_of(&c2))) {
            respond(s, "200 OK", &[], &c2);
        } else if path.ends_with(&format!("/blobs/{}", digest_of(&l2))) {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", l2.len());
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&l2[..l2.len() / 2]);
            let _ = s.flush();
            // ... and the registry is gone.
            let _ = s.shutdown(std::net::Shutdown::Both);
        } else {
            respond(
                s,
                "404 Not Found",
                &[],
                b"{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":\"no\"}]}",
            );
        }
    });
    let name = format!("127.0.0.1:{}/dying/app:1", server.port);
    let out = t.burrow(["pull", &name]).output();
    out.assert_code(125);
    assert!(
        out.stderr.contains(&layer_digest[7..19]) || out.stderr.contains("connection"),
        "{}",
        out.stderr
    );
    assert!(!has_blob(&t, &layer_digest), "a partial layer was kept");
    assert!(
        store_tmp(&t).is_empty(),
        "temporary files left: {:?}",
        store_tmp(&t)
    );
    // The config, verified, may stay: it is content-addressed and complete.
    let _ = config_digest;
    drop(server);
}

#[test]
fn tls_and_htpasswd_login_push_pull_logout() {
    let t = ctx!();
    if let Err(why) = have_registry().and_then(|_| have_openssl()) {
        return harness::skip(function_name!(), &why);
    }
    let tls = t.path("tls");
    make_tls(&tls);
    // The CA only, readable by the burrow user, in a cert dir.
    let certs = t.path("certs");
    std::fs::create_dir_all(&certs).unwrap();
    t.write("certs/ca.crt", std::fs::read(tls.join("ca.crt")).unwrap());
    let htp = t.path("htpasswd");
    htpasswd(&htp, "alice", "s3cret-pw");
    let reg = Registry::start(RegistryConfig {
        htpasswd: Some(htp),
        tls: Some((tls.join("server.crt"), tls.join("server.key"))),
        ..Default::default()
    });
    let auth_dir = t.user_dir("auth");
    let authfile = auth_dir.join("auth.json");
    let authfile_s = authfile.to_str().unwrap().to_string();
    let certs_s = certs.to_str().unwrap().to_string();
    let name = format!("{}/secure/app:1", reg.host());
    load_named(&t, &name);

    // Without the CA: a certificate error that says what to do.
    let out = t
        .burrow(["push", &name])
        .env("REGISTRY_AUTH_FILE", &authfile_s)
        .output();
    out.assert_code(125);
    assert!(out.stderr.contains("certs.d"), "{}", out.stderr);

    // With the CA but not logged in.
    let out = t
        .burrow(["push", "--cert-dir", &certs_s, &name])
        .env("REGISTRY_AUTH_FILE", &authfile_s)
        .output();
    out.assert_code(125);
    assert!(
        out.stderr.contains(&format!("burrow login {}", reg.host())),
        "{}",
        out.stderr
    );

    // A wrong password is refused and nothing is stored.
    let out = t
        .burrow([
            "login",
            "--cert-dir",
            &certs_s,
            "-u",
            "alice",
            "--password-stdin",
            &reg.host(),
        ])
        .env("REGISTRY_AUTH_FILE", &authfile_s)
        .stdin("wrong\n")
        .output();
    out.assert_code(125);
    assert!(!authfile.exists());

    let out = t
        .burrow([
            "login",
            "--cert-dir",
            &certs_s,
            "-u",
            "alice",
            "--password-stdin",
            &reg.host(),
        ])
        .env("REGISTRY_AUTH_FILE", &authfile_s)
        .stdin("s3cret-pw\n")
        .output();
    out.assert_ok();
    assert!(out.stdout.contains("Login Succeeded"), "{}", out.stdout);
    assert!(!out.stdout.contains("s3cret") && !out.stderr.contains("s3cret"));
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&authfile).unwrap()).unwrap();
    let entry = &saved["auths"][reg.host()]["auth"];
    assert_eq!(entry.as_str(), Some(B64.encode("alice:s3cret-pw").as_str()));

    let out = t
        .burrow(["push", "--cert-dir", &certs_s, &name])
        .env("REGISTRY_AUTH_FILE", &authfile_s)
        .output();
    out.assert_ok();
    assert!(!out.stdout.contains("s3cret") && !out.stderr.contains("s3cret"));

    // Pull into a fresh store with --authfile.
    let t2 = ctx2("tls_and_htpasswd_login_push_pull_logout-2");
    let out = t2
        .burrow([
            "pull",
            "--cert-dir",
            &certs_s,
            "--authfile",
            &authfile_s,
            &name,
        ])
        .output();
    out.assert_ok();

    // --tls-verify=false works without the CA.
    let t3 = ctx2("tls_and_htpasswd_login_push_pull_logout-3");
    t3.burrow([
        "pull",
        "-q",
        "--tls-verify=false",
        "--authfile",
        &authfile_s,
        &name,
    ])
    .output()
    .assert_ok();

    // Logout, then pulling needs a login again.
    let out = t
        .burrow(["logout", &reg.host()])
        .env("REGISTRY_AUTH_FILE", &authfile_s)
        .output();
    out.assert_ok();
    let t4 = ctx2("tls_and_htpasswd_login_push_pull_logout-4");
    let out = t4
        .burrow([
            "pull",
            "--cert-dir",
            &certs_s,
            "--authfile",
            &authfile_s,
            &name,
        ])
        .output();
    out.assert_code(125);
    assert!(out.stderr.contains("unauthorized"), "{}", out.stderr);
    let out = t
        .burrow(["logout", &reg.host()])
        .env("REGISTRY_AUTH_FILE", &authfile_s)
        .output();
    out.assert_code(125);
}

#[test]
fn credentials_from_docker_config() {
    let t = ctx!();
    if let Err(why) = have_registry() {
        return harness::skip(function_name!(), &why);
    }
    let htp = t.path("htpasswd");
    htpasswd(&htp, "bob", "hunter2");
    let reg = Registry::start(RegistryConfig {
        htpasswd: Some(htp),
        ..Default::default()
    });
    let docker_dir = t.user_dir("docker");
    t.write(
        "docker/config.json",
        serde_json::to_vec(&json!({
            "auths": {
                format!("http://{}/v1/", reg.host()): {"auth": B64.encode("bob:hunter2")},
            },
            "credHelpers": {"unrelated.example": "no-such-helper"},
        }))
        .unwrap(),
    );
    let empty_auth = t.user_dir("auth").join("auth.json");
    let name = format!("{}/from/docker:1", reg.host());
    load_named(&t, &name);
    let out = t
        .burrow(["push", &name])
        .env("DOCKER_CONFIG", docker_dir.to_str().unwrap())
        .env("REGISTRY_AUTH_FILE", empty_auth.to_str().unwrap())
        .output();
    out.assert_ok();
    let t2 = ctx2("credentials_from_docker_config-2");
    let out = t2
        .burrow(["pull", "-q", &name])
        .env("DOCKER_CONFIG", docker_dir.to_str().unwrap())
        .env("REGISTRY_AUTH_FILE", empty_auth.to_str().unwrap())
        .output();
    out.assert_ok();
    // Without it: unauthorized, with the way out.
    let t3 = ctx2("credentials_from_docker_config-3");
    let out = t3
        .burrow(["pull", "-q", &name])
        .env("DOCKER_CONFIG", t3.dir.to_str().unwrap())
        .env("REGISTRY_AUTH_FILE", empty_auth.to_str().unwrap())
        .output();
    out.assert_code(125);
    assert!(
        out.stderr.contains(&format!("burrow login {}", reg.host())),
        "{}",
        out.stderr
    );
}

/// A token issuer: checks basic credentials, grants the scopes asked for to `user`, nothing
/// to anonymous callers; signs RS256 JWTs with a key whose certificate the registry trusts.
pub(crate) struct TokenIssuer {
    pub(crate) server: MiniServer,
    requests: Arc<Mutex<Vec<String>>>,
    tokens: Arc<Mutex<Vec<String>>>,
}

fn sign_rs256(key: &Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

impl TokenIssuer {
    fn start(dir: &Path, service: &str, issuer: &str, user: &str, password: &str) -> TokenIssuer {
        Self::start_with_anonymous(dir, service, issuer, user, password, None)
    }

    /// Like `start`, and anonymous callers get `pull` on `anonymous_repo`.
    pub(crate) fn start_with_anonymous(
        dir: &Path,
        service: &str,
        issuer: &str,
        user: &str,
        password: &str,
        anonymous_repo: Option<&str>,
    ) -> TokenIssuer {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "token.key",
                "-out",
                "token.crt",
                "-days",
                "2",
                "-subj",
                "/CN=burrow token issuer",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-in",
                "token.crt",
                "-outform",
                "DER",
                "-out",
                "token.der",
            ],
        );
        let der = std::fs::read(dir.join("token.der")).unwrap();
        let key = dir.join("token.key");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let reqs = requests.clone();
        let tokens = Arc::new(Mutex::new(Vec::new()));
        let issued = tokens.clone();
        let anonymous_repo = anonymous_repo.map(str::to_string);
        let (service, issuer) = (service.to_string(), issuer.to_string());
        let want_auth = format!("Basic {}", B64.encode(format!("{user}:{password}")));
        let user = user.to_string();
        let server = MiniServer::start(move |req, s| {
            reqs.lock().unwrap().push(format!(
                "{} {}{}",
                req.method,
                req.target,
                if req.header("authorization").is_some() {
                    " [authorization]"
                } else {
                    ""
                }
            ));
            let authed = req.header("authorization") == Some(want_auth.as_str());
            if req.header("authorization").is_some() && !authed {
                respond(
                    s,
                    "401 Unauthorized",
                    &[],
                    b"{\"details\":\"bad credentials\"}",
                );
                return;
            }
            let mut access = Vec::new();
            for (k, v) in query_params(&req.target) {
                if k != "scope" {
                    continue;
                }
                for scope in v.split(' ') {
                    let parts: Vec<&str> = scope.split(':').collect();
                    if parts.len() != 3 {
                        continue;
                    }
                    if authed {
                        access.push(json!({"type": parts[0], "name": parts[1], "actions": parts[2].split(',').collect::<Vec<_>>()}));
                    } else if anonymous_repo.as_deref() == Some(parts[1]) {
                        access
                            .push(json!({"type": parts[0], "name": parts[1], "actions": ["pull"]}));
                    }
                }
            }
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [B64.encode(&der)]});
            let claims = json!({
                "iss": issuer, "sub": if authed { user.as_str() } else { "" }, "aud": service,
                "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", rand_id()),
                "access": access,
            });
            let input = format!(
                "{}.{}",
                B64URL.encode(serde_json::to_vec(&header).unwrap()),
                B64URL.encode(serde_json::to_vec(&claims).unwrap())
            );
            let sig = sign_rs256(&key, input.as_bytes());
            let token = format!("{input}.{}", B64URL.encode(sig));
            issued.lock().unwrap().push(token.clone());
            let body = serde_json::to_vec(
                &json!({"token": token, "access_token": token, "expires_in": 300}),
            )
            .unwrap();
            respond(
                s,
                "200 OK",
                &[("Content-Type", "application/json".into())],
                &body,
            );
        });
        TokenIssuer {
            server,
            requests,
            tokens,
        }
    }

    /// `METHOD TARGET`, with ` [authorization]` when the request carried credentials.
    pub(crate) fn token_requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Every token handed out.
    pub(crate) fn tokens(&self) -> Vec<String> {
        self.tokens.lock().unwrap().clone()
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

#[test]
fn bearer_token_flow() {
    let t = ctx!();
    if let Err(why) = have_registry().and_then(|_| have_openssl()) {
        return harness::skip(function_name!(), &why);
    }
    let issuer = TokenIssuer::start(
        &t.path("token"),
        "burrow-registry",
        "burrow-issuer",
        "carol",
        "tok-pw",
    );
    let realm = format!("http://127.0.0.1:{}/token", issuer.server.port);
    let reg = Registry::start(RegistryConfig {
        token: Some((
            realm.clone(),
            "burrow-registry".into(),
            "burrow-issuer".into(),
            t.path("token/token.crt"),
        )),
        ..Default::default()
    });
    let authfile = t.user_dir("auth").join("auth.json");
    let authfile_s = authfile.to_str().unwrap().to_string();
    let name = format!("{}/tok/app:1", reg.host());
    load_named(&t, &name);

    // Anonymous: the issuer grants nothing, the registry refuses.
    let out = t
        .burrow(["push", "--authfile", &authfile_s, &name])
        .output();
    out.assert_code(125);
    assert!(
        out.stderr.contains(&format!("burrow login {}", reg.host())),
        "{}",
        out.stderr
    );

    let out = t
        .burrow([
            "login",
            "--authfile",
            &authfile_s,
            "-u",
            "carol",
            "--password-stdin",
            &reg.host(),
        ])
        .stdin("tok-pw")
        .output();
    out.assert_ok();
    let out = t
        .burrow([
            "login",
            "--authfile",
            &t.path("other.json").to_string_lossy(),
            "-u",
            "carol",
            "--password-stdin",
            &reg.host(),
        ])
        .stdin("nope")
        .output();
    out.assert_code(125);

    t.burrow(["push", "--authfile", &authfile_s, &name])
        .output()
        .assert_ok();
    let before = issuer.token_requests().len();
    let t2 = ctx2("bearer_token_flow-2");
    t2.burrow(["pull", "--authfile", &authfile_s, &name])
        .output()
        .assert_ok();
    let reqs = issuer.token_requests();
    let pull_reqs = &reqs[before..];
    // One token for the whole pull (manifest, config and layers), scoped to the repository.
    assert_eq!(pull_reqs.len(), 1, "token requests: {pull_reqs:?}");
    assert!(
        pull_reqs[0].contains("scope=repository%3Atok%2Fapp%3Apull"),
        "{pull_reqs:?}"
    );
    assert!(
        pull_reqs[0].contains("service=burrow-registry"),
        "{pull_reqs:?}"
    );
    assert!(has_blob(
        &t2,
        &pushed_digest(
            &t.burrow(["push", "--authfile", &authfile_s, &name])
                .output()
                .stdout
        )
    ));
}
