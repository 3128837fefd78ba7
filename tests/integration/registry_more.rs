//! Registries, continued: secrets in logs, where credentials come from (namespaces, helpers,
//! the default auth file), `--pull` policies of run/create, search, redirects, anonymous
//! tokens, killed and concurrent pulls, registries.conf, per-registry CAs, and pushing images
//! that came from import, commit or a pull.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

use crate::harness::{self, TestCtx};
use crate::images::{self, Entry};
use crate::registry::{
    Built, MiniServer, Registry, RegistryConfig, Request, TokenIssuer, ctx2, digest_of, free_port,
    has_blob, have_openssl, have_registry, htpasswd, load_named, make_tls, pushed_digest, respond,
    store_blobs, store_tmp, upload_image,
};
use crate::tty::PtySession;

// ---------------------------------------------------------------------------------------------
// Helpers

/// The bytes of ureq-proto's hex dumps (`burrow: trace: 4745 5420 ... GET./v2/`) in a log,
/// joined: secrets split over several dump rows show up here whole.
fn hex_dump_bytes(log: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in log.lines() {
        let body = line.rsplit(": ").next().unwrap_or("");
        let groups: Vec<&str> = body.split_whitespace().take(8).collect();
        if groups.len() != 8
            || !groups
                .iter()
                .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        {
            continue;
        }
        for g in groups {
            for pair in [&g[..2], &g[2..]] {
                if let Ok(b) = u8::from_str_radix(pair, 16) {
                    out.push(b);
                }
            }
        }
    }
    out
}

/// Fail if any secret shows in `log`: as is, as hex, or inside a hex dump.
fn assert_no_secrets(log: &str, secrets: &[&str]) {
    let dumped = String::from_utf8_lossy(&hex_dump_bytes(log)).into_owned();
    for s in secrets {
        let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!log.contains(s), "{s:?} in the log:\n{log}");
        assert!(!log.contains(&hex), "{s:?} as hex in the log:\n{log}");
        assert!(
            !dumped.contains(s),
            "{s:?} in a hex dump in the log:\n{log}"
        );
    }
}

/// `inspect --type image --format {{.Id}}`.
fn image_id(t: &TestCtx, name: &str) -> String {
    let out = t
        .burrow(["inspect", "--type", "image", "--format", "{{.Id}}", name])
        .output();
    out.assert_ok();
    out.stdout.trim().to_string()
}

/// Unpacked layer directories of a store.
fn unpacked_layers(t: &TestCtx) -> Vec<String> {
    let dir = t.root.join("overlay");
    harness::list_dir(&dir)
        .into_iter()
        .filter(|n| n.len() == 64 && dir.join(n).join("diff").is_dir())
        .collect()
}

/// An image served by a test's own server: manifest, config and gzip layers by digest.
struct Served {
    manifest: Vec<u8>,
    blobs: HashMap<String, Vec<u8>>,
    layer_digests: Vec<String>,
}

fn served_image(salt: &str, layers: usize) -> Served {
    served_layers(
        (0..layers)
            .map(|i| {
                images::tar(&[Entry::file(
                    &format!("file-{i}"),
                    0o644,
                    format!("{salt} {i}\n").repeat(2000),
                )])
            })
            .collect(),
    )
}

/// An image of the given layer tars, gzipped.
fn served_layers(tars: Vec<Vec<u8>>) -> Served {
    let mut blobs = HashMap::new();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_digests = Vec::new();
    for tar in tars {
        diff_ids.push(digest_of(&tar));
        let gz = images::gzip(&tar);
        let d = digest_of(&gz);
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": gz.len()}));
        layer_digests.push(d.clone());
        blobs.insert(d, gz);
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(&config), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    blobs.insert(digest_of(&config), config);
    Served {
        manifest,
        blobs,
        layer_digests,
    }
}

/// A server for `image` as `/v2/NAME/manifests/1`; blobs go through `blob` (digest, bytes,
/// stream) when it returns true, else are sent whole.
fn serve(
    image: Arc<Served>,
    blob: impl Fn(&str, &[u8], &mut std::net::TcpStream) -> bool + Send + Sync + 'static,
) -> MiniServer {
    serve_gated(image, |_, _| false, blob)
}

/// [`serve`], but every request goes first to `gate` (request, stream), which answers it
/// itself when it returns true.
fn serve_gated(
    image: Arc<Served>,
    gate: impl Fn(&Request, &mut std::net::TcpStream) -> bool + Send + Sync + 'static,
    blob: impl Fn(&str, &[u8], &mut std::net::TcpStream) -> bool + Send + Sync + 'static,
) -> MiniServer {
    MiniServer::start(move |req, s| {
        if gate(&req, s) {
            return;
        }
        let path = req.target.split('?').next().unwrap_or("").to_string();
        if path == "/v2/" {
            respond(s, "200 OK", &[], b"{}");
        } else if path.ends_with("/manifests/1") {
            respond_manifest(s, &image.manifest);
        } else if let Some((digest, data)) = path
            .split_once("/blobs/")
            .and_then(|(_, d)| image.blobs.get_key_value(d))
        {
            if !blob(digest, data, s) {
                respond(s, "200 OK", &[], data);
            }
        } else {
            respond_unknown(s);
        }
    })
}

/// Names in the store's `overlay/` of layers being unpacked (or left by a killed pull).
fn layer_temps(t: &TestCtx) -> Vec<String> {
    harness::list_dir(&t.root.join("overlay"))
        .into_iter()
        .filter(|n| n.starts_with(".tmp-"))
        .collect()
}

fn respond_manifest(s: &mut std::net::TcpStream, manifest: &[u8]) {
    respond(
        s,
        "200 OK",
        &[(
            "Content-Type",
            "application/vnd.oci.image.manifest.v1+json".into(),
        )],
        manifest,
    );
}

fn respond_unknown(s: &mut std::net::TcpStream) {
    respond(
        s,
        "404 Not Found",
        &[],
        b"{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":\"no\"}]}",
    );
}

/// A docker-registry started with `cfg`, or `None` once `test` is reported skipped for the
/// lack of one.
fn registry(test: &str, cfg: RegistryConfig) -> Option<Registry> {
    match have_registry() {
        Ok(()) => Some(Registry::start(cfg)),
        Err(why) => {
            harness::skip(test, &why);
            None
        }
    }
}

/// The configuration of a registry that lets in only `user:password` (htpasswd).
fn htpasswd_config(t: &TestCtx, user: &str, password: &str) -> RegistryConfig {
    let htp = t.path("htpasswd");
    htpasswd(&htp, user, password);
    RegistryConfig {
        htpasswd: Some(htp),
        ..Default::default()
    }
}

/// A path for the test's own auth file, in a directory the burrow user may write.
fn authfile(t: &TestCtx) -> String {
    let path = t.user_dir("auth").join("auth.json");
    path.to_str().unwrap().to_string()
}

/// `login --authfile AUTHFILE -u USER --password-stdin SERVER` (the password on stdin).
fn login_args<'a>(authfile: &'a str, user: &'a str, server: &'a str) -> [&'a str; 7] {
    [
        "login",
        "--authfile",
        authfile,
        "-u",
        user,
        "--password-stdin",
        server,
    ]
}

/// `burrow --log-level trace ARGS`, which must succeed: its log (stderr).
fn traced(t: &TestCtx, args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = t.burrow(["--log-level", "trace"].iter().chain(args));
    if let Some(data) = stdin {
        cmd = cmd.stdin(data);
    }
    let out = cmd.output();
    out.assert_ok();
    out.stderr
}

/// A pull or push refused for want of credentials: burrow's error, pointing at its login.
#[track_caller]
fn assert_needs_login(out: &harness::Output) {
    out.assert_code(125);
    assert!(out.stderr.contains("burrow login"), "{}", out.stderr);
}

/// An image of `layers` layers (made different by `salt`) uploaded as `REPO:1`.
fn upload_tagged(base: &str, repo: &str, layers: usize, salt: &str) -> Built {
    let img = upload_image(base, repo, "amd64", layers, salt);
    crate::registry::put_manifest(
        base,
        repo,
        "1",
        "application/vnd.oci.image.manifest.v1+json",
        &img.manifest,
    );
    img
}

/// A docker-registry with htpasswd `user:password`, and an auth file holding the login.
fn registry_with_login(
    t: &TestCtx,
    test: &str,
    user: &str,
    password: &str,
) -> Option<(Registry, String)> {
    let reg = registry(test, htpasswd_config(t, user, password))?;
    let authfile = authfile(t);
    t.burrow(login_args(&authfile, user, &reg.host()))
        .stdin(password)
        .output()
        .assert_ok();
    Some((reg, authfile))
}

// ---------------------------------------------------------------------------------------------
// Secrets and credentials

#[test]
fn trace_logs_carry_no_secrets() {
    let t = ctx!();
    let password = "Zq9SECRETxy";
    let Some(reg) = registry(function_name!(), htpasswd_config(&t, "bob", password)) else {
        return;
    };
    let authfile = authfile(&t);
    let name = format!("{}/trace/app:1", reg.host());
    load_named(&t, &name);
    let mut log = traced(
        &t,
        &login_args(&authfile, "bob", &reg.host()),
        Some(password),
    );
    log += &traced(&t, &["push", "--authfile", &authfile, &name], None);
    let t2 = ctx2("trace_logs_carry_no_secrets-2");
    log += &traced(&t2, &["pull", "--authfile", &authfile, &name], None);
    // burrow's own debug messages are there: the level took effect.
    assert!(log.contains("burrow: debug:"), "{log}");
    let basic = B64.encode(format!("bob:{password}"));
    assert_no_secrets(&log, &[password, &basic]);
}

#[test]
fn namespace_credentials_are_used() {
    let t = ctx!();
    let Some(reg) = registry(function_name!(), htpasswd_config(&t, "dave", "ns-pw")) else {
        return;
    };
    let authfile = authfile(&t);
    let ns = format!("{}/team", reg.host());
    t.burrow(login_args(&authfile, "dave", &ns))
        .stdin("ns-pw")
        .output()
        .assert_ok();
    // The auth file holds only the namespace's key.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&authfile).unwrap()).unwrap();
    let keys: Vec<&String> = saved["auths"].as_object().unwrap().keys().collect();
    assert_eq!(keys, [&ns], "{saved}");

    let name = format!("{ns}/app:1");
    load_named(&t, &name);
    t.burrow(["push", "--authfile", &authfile, &name])
        .output()
        .assert_ok();
    let t2 = ctx2("namespace_credentials_are_used-2");
    t2.burrow(["pull", "-q", "--authfile", &authfile, &name])
        .output()
        .assert_ok();
    // Another namespace of the registry has no credentials.
    let other = format!("{}/other/app:1", reg.host());
    t.burrow(["tag", &name, &other]).output().assert_ok();
    assert_needs_login(&t.burrow(["push", "--authfile", &authfile, &other]).output());
}

#[test]
fn credential_helpers_are_run() {
    let t = ctx!();
    let Some(reg) = registry(function_name!(), htpasswd_config(&t, "gus", "helper-pw")) else {
        return;
    };
    let seen = t.user_dir("helper-seen");
    let seen_s = seen.to_str().unwrap();
    let script = t.write(
        "bin/docker-credential-fake",
        format!(
            "#!/bin/sh\necho \"$@\" > {seen_s}/argv\ncat > {seen_s}/stdin\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"gus\",\"Secret\":\"helper-pw\"}}' \"$(cat {seen_s}/stdin)\"\n"
        ),
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", t.path("bin").display());
    let empty_auth = &authfile(&t);
    t.write(
        "helpers/config.json",
        serde_json::to_vec(&json!({"credHelpers": {reg.host(): "fake"}})).unwrap(),
    );
    t.write(
        "store/config.json",
        serde_json::to_vec(&json!({"credsStore": "fake"})).unwrap(),
    );
    let name = format!("{}/helped/app:1", reg.host());
    load_named(&t, &name);

    let out = t
        .burrow(["push", &name])
        .env("PATH", &path)
        .env("DOCKER_CONFIG", t.path("helpers").to_str().unwrap())
        .env("REGISTRY_AUTH_FILE", empty_auth)
        .output();
    out.assert_ok();
    let read = |f: &str| std::fs::read_to_string(seen.join(f)).unwrap_or_default();
    // The server URL arrives on stdin; the only argument is the action.
    assert_eq!(read("argv").trim(), "get");
    assert_eq!(read("stdin"), reg.host());
    std::fs::remove_file(seen.join("stdin")).unwrap();

    let t2 = ctx2("credential_helpers_are_run-2");
    t2.burrow(["pull", "-q", &name])
        .env("PATH", &path)
        .env("DOCKER_CONFIG", t.path("store").to_str().unwrap())
        .env("REGISTRY_AUTH_FILE", empty_auth)
        .output()
        .assert_ok();
    assert_eq!(read("argv").trim(), "get");
    assert_eq!(read("stdin"), reg.host());

    // Without the helper on PATH there are no credentials.
    let t3 = ctx2("credential_helpers_are_run-3");
    assert_needs_login(
        &t3.burrow(["pull", "-q", &name])
            .env("DOCKER_CONFIG", t.path("store").to_str().unwrap())
            .env("REGISTRY_AUTH_FILE", empty_auth)
            .output(),
    );
}

#[test]
fn login_default_authfile_and_logout_all() {
    let t = ctx!();
    let Some(reg) = registry(function_name!(), htpasswd_config(&t, "hal", "def-pw")) else {
        return;
    };
    let runtime = t.user_dir("runtime");
    let runtime_s = runtime.to_str().unwrap();
    for server in [reg.host(), format!("{}/ns", reg.host())] {
        t.burrow(["login", "-u", "hal", "--password-stdin", &server])
            .env("XDG_RUNTIME_DIR", runtime_s)
            .stdin("def-pw")
            .output()
            .assert_ok();
    }
    let authfile = runtime.join("containers/auth.json");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&authfile).unwrap()).unwrap();
    assert_eq!(saved["auths"].as_object().unwrap().len(), 2, "{saved}");
    let name = format!("{}/def/app:1", reg.host());
    load_named(&t, &name);
    t.burrow(["push", "-q", &name])
        .env("XDG_RUNTIME_DIR", runtime_s)
        .output()
        .assert_ok();

    let out = t
        .burrow(["logout", "--all"])
        .env("XDG_RUNTIME_DIR", runtime_s)
        .output();
    out.assert_ok();
    assert!(out.stdout.contains("all registries"), "{}", out.stdout);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&authfile).unwrap()).unwrap();
    assert!(saved["auths"].as_object().unwrap().is_empty(), "{saved}");
    let t2 = ctx2("login_default_authfile_and_logout_all-2");
    assert_needs_login(
        &t2.burrow(["pull", "-q", &name])
            .env("XDG_RUNTIME_DIR", runtime_s)
            .output(),
    );
}

#[test]
fn anonymous_token_pull() {
    let t = ctx!();
    if let Err(why) = have_registry().and_then(|_| have_openssl()) {
        return harness::skip(function_name!(), &why);
    }
    let issuer = TokenIssuer::start_with_anonymous(
        &t.path("token"),
        "burrow-registry",
        "burrow-issuer",
        "ivy",
        "anon-pw",
        Some("open/app"),
    );
    let realm = format!("http://127.0.0.1:{}/token", issuer.server.port);
    let reg = Registry::start(RegistryConfig {
        token: Some((
            realm,
            "burrow-registry".into(),
            "burrow-issuer".into(),
            t.path("token/token.crt"),
        )),
        ..Default::default()
    });
    let authfile = authfile(&t);
    let name = format!("{}/open/app:1", reg.host());
    load_named(&t, &name);
    let mut log = traced(
        &t,
        &login_args(&authfile, "ivy", &reg.host()),
        Some("anon-pw"),
    );
    log += &traced(&t, &["push", "--authfile", &authfile, &name], None);

    let before = issuer.token_requests().len();
    let t2 = ctx2("anonymous_token_pull-2");
    let nobody = t2.path("no-auth.json");
    let nobody = nobody.to_str().unwrap();
    log += &traced(&t2, &["pull", "--authfile", nobody, &name], None);
    let reqs = issuer.token_requests()[before..].to_vec();
    assert!(
        reqs.iter()
            .any(|r| r.contains("open%2Fapp") && !r.contains("[authorization]")),
        "no anonymous token request: {reqs:?}"
    );
    assert!(
        reqs.iter().all(|r| !r.contains("[authorization]")),
        "{reqs:?}"
    );
    let tokens = issuer.tokens();
    assert!(!tokens.is_empty());
    let basic = B64.encode("ivy:anon-pw");
    let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    secrets.extend(["anon-pw", basic.as_str()]);
    assert_no_secrets(&log, &secrets);
}

// ---------------------------------------------------------------------------------------------
// run/create --pull

#[test]
fn run_and_create_pull_policies() {
    let t = ctx!();
    let Some((reg, authfile)) = registry_with_login(&t, function_name!(), "pat", "pol-pw") else {
        return;
    };
    let name = format!("{}/pol/app:1", reg.host());
    load_named(&t, &name);
    let id_a = image_id(&t, &name);
    t.burrow(["push", "-q", "--authfile", &authfile, &name])
        .output()
        .assert_ok();

    let t2 = ctx2("run_and_create_pull_policies-2");
    let create = |policy: &str, with_auth: bool| {
        let mut args = vec!["create".to_string(), format!("--pull={policy}")];
        if with_auth {
            args.extend(["--authfile".to_string(), authfile.clone()]);
        }
        args.extend([name.clone(), "true".to_string()]);
        t2.burrow(args).output()
    };
    let container_image = |out: &harness::Output| {
        let id = out.stdout.lines().last().unwrap_or("").trim().to_string();
        let o = t2
            .burrow(["inspect", "--format", "{{.Image}}", &id])
            .output();
        o.assert_ok();
        o.stdout.trim().to_string()
    };

    // never: absent is docker's "No such image", exit 125, and nothing is fetched.
    let out = create("never", true);
    out.assert_code(125);
    assert!(out.stderr.contains("No such image"), "{}", out.stderr);
    assert!(store_blobs(&t2).is_empty());

    // The registry settings of create reach the pull: without --authfile it is refused.
    assert_needs_login(&create("missing", false));

    // missing: pulls, and unpacks while pulling (as `burrow pull` does).
    let out = create("missing", true);
    out.assert_ok();
    assert!(out.stderr.contains("Pulling from"), "{}", out.stderr);
    assert_eq!(container_image(&out), id_a);
    assert!(!unpacked_layers(&t2).is_empty(), "nothing unpacked");

    // A different image under the same tag.
    let tar = t.write(
        "b.tar",
        images::tar(&[Entry::file("b-file", 0o644, "image b\n")]),
    );
    t.burrow(["import", tar.to_str().unwrap(), &name])
        .output()
        .assert_ok();
    let id_b = image_id(&t, &name);
    assert_ne!(id_a, id_b);
    t.burrow(["push", "-q", "--authfile", &authfile, &name])
        .output()
        .assert_ok();

    // missing keeps the local one; always fetches the new one.
    assert_eq!(container_image(&create("missing", true)), id_a);
    let out = create("always", true);
    out.assert_ok();
    assert_eq!(container_image(&out), id_b);

    // newer: the registry has A again.
    t.burrow(["tag", &id_a, &name]).output().assert_ok();
    t.burrow(["push", "-q", "--authfile", &authfile, &name])
        .output()
        .assert_ok();
    let out = create("newer", true);
    out.assert_ok();
    assert_eq!(container_image(&out), id_a);
    let out = create("newer", true);
    out.assert_ok();
    assert!(!out.stderr.contains("Pulling from"), "{}", out.stderr);

    // The registry is gone: missing needs it not, newer warns and keeps the local image,
    // always fails.
    drop(reg);
    let out = create("missing", true);
    out.assert_ok();
    assert_eq!(container_image(&out), id_a);
    let out = create("newer", true);
    out.assert_ok();
    assert!(
        out.stderr.contains("cannot check the registry"),
        "{}",
        out.stderr
    );
    assert_eq!(container_image(&out), id_a);
    create("always", true).assert_code(125);
}

// ---------------------------------------------------------------------------------------------
// search

/// A fake Docker Hub search endpoint; records the query strings it was asked.
fn hub_server(queries: Arc<Mutex<Vec<String>>>) -> MiniServer {
    MiniServer::start(move |req, s| {
        queries.lock().unwrap().push(req.target.clone());
        let n: usize = crate::registry::query_params(&req.target)
            .into_iter()
            .find(|(k, _)| k == "n")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(25);
        let all = [
            json!({"name": "alpine", "description": "A minimal Docker image", "star_count": 10000, "is_official": true, "is_automated": false}),
            json!({"name": "someone/alpine-tools", "description": "tools", "star_count": 5, "is_official": false, "is_automated": true}),
            json!({"name": "other/alpine-x", "description": "x", "star_count": 50, "is_official": false, "is_automated": false}),
        ];
        let results: Vec<_> = all.into_iter().take(n).collect();
        let body =
            serde_json::to_vec(&json!({"num_results": results.len(), "results": results})).unwrap();
        respond(
            s,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            &body,
        );
    })
}

#[test]
fn search_docker_hub() {
    let t = ctx!();
    let queries = Arc::new(Mutex::new(Vec::new()));
    let hub = hub_server(queries.clone());
    let url = format!("http://127.0.0.1:{}/v1/search", hub.port);
    let search = |args: &[&str]| {
        let mut all = vec!["search"];
        all.extend_from_slice(args);
        let out = t
            .burrow(all)
            .env("BURROW_DOCKERHUB_SEARCH_URL", &url)
            .output();
        out.assert_ok();
        out.stdout
    };

    let table = search(&["alpine"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{table}");
    assert!(lines[0].contains("STARS") && lines[0].contains("OFFICIAL"));
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[1].starts_with("alpine ") && lines[1].ends_with("[OK]"),
        "{table}"
    );
    assert!(queries.lock().unwrap()[0].contains("q=alpine"));
    assert!(queries.lock().unwrap()[0].contains("n=25"));

    let limited = search(&["--limit", "2", "--format", "{{.Name}}", "alpine"]);
    assert_eq!(limited, "alpine\nsomeone/alpine-tools\n");
    assert!(
        queries.lock().unwrap().last().unwrap().contains("n=2"),
        "{:?}",
        queries.lock().unwrap()
    );

    let formatted = search(&[
        "--format",
        "{{.Name}}\\t{{.StarCount}}\\t{{.IsOfficial}}\\t{{.IsAutomated}}",
        "alpine",
    ]);
    assert_eq!(
        formatted,
        "alpine\t10000\ttrue\tfalse\nsomeone/alpine-tools\t5\tfalse\ttrue\nother/alpine-x\t50\tfalse\tfalse\n"
    );
    let table_fmt = search(&["--format", "table {{.Name}}\\t{{.StarCount}}", "alpine"]);
    assert!(table_fmt.starts_with("NAME\tSTARS\n"), "{table_fmt}");

    let starred = search(&["--filter", "stars=10", "--format", "{{.Name}}", "alpine"]);
    assert_eq!(starred, "alpine\nother/alpine-x\n");
    let official = search(&[
        "--filter",
        "is-official=true",
        "--format",
        "{{.Name}}",
        "alpine",
    ]);
    assert_eq!(official, "alpine\n");
    let out = t
        .burrow(["search", "--filter", "colour=red", "alpine"])
        .env("BURROW_DOCKERHUB_SEARCH_URL", &url)
        .output();
    out.assert_code(125);
}

#[test]
fn search_falls_back_to_the_catalog() {
    let t = ctx!();
    let Some(reg) = registry(function_name!(), RegistryConfig::default()) else {
        return;
    };
    let base = format!("http://{}", reg.host());
    for repo in ["foo/app", "foo/tool", "bar/app"] {
        upload_tagged(&base, repo, 1, repo);
    }
    let out = t
        .burrow([
            "search",
            "--format",
            "{{.Name}}",
            &format!("{}/foo", reg.host()),
        ])
        .output();
    out.assert_ok();
    assert_eq!(
        out.stdout,
        format!("{h}/foo/app\n{h}/foo/tool\n", h = reg.host())
    );

    // A registry with neither search nor a catalog.
    let none = MiniServer::start(|req, s| {
        if req.target == "/v2/" {
            respond(s, "200 OK", &[], b"{}");
        } else {
            respond(s, "404 Not Found", &[], b"404 page not found");
        }
    });
    let out = t
        .burrow(["search", &format!("127.0.0.1:{}/foo", none.port)])
        .output();
    out.assert_code(125);
    assert!(
        out.stderr.contains("does not support search"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Redirects, concurrency, crashes

#[test]
fn redirected_blobs_get_no_credentials() {
    let t = ctx!();
    let image = Arc::new(served_image("redirect", 2));
    // Blob storage on another port: records the headers of every request.
    // The headers of each request, as (name, value) pairs.
    type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;
    let storage_seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let (img, seen) = (image.clone(), storage_seen.clone());
    let storage = MiniServer::start(move |req, s| {
        seen.lock().unwrap().push(req.headers.clone());
        let path = req.target.split('?').next().unwrap_or("");
        match path
            .strip_prefix("/storage/")
            .and_then(|d| img.blobs.get(d))
        {
            Some(data) => respond(s, "200 OK", &[], data),
            None => respond(s, "404 Not Found", &[], b""),
        }
    });
    let storage_port = storage.port;
    let want = format!("Basic {}", B64.encode("kim:redir-pw"));
    let registry_auth: Arc<Mutex<Vec<bool>>> = Arc::new(Mutex::new(Vec::new()));
    let authed = registry_auth.clone();
    let registry = serve_gated(
        image.clone(),
        move |req, s| {
            let ok = req.header("authorization") == Some(want.as_str());
            authed.lock().unwrap().push(ok);
            if !ok {
                respond(
                    s,
                    "401 Unauthorized",
                    &[("WWW-Authenticate", "Basic realm=\"test\"".into())],
                    b"",
                );
            }
            !ok
        },
        move |digest, _, s| {
            let to = format!("http://127.0.0.1:{storage_port}/storage/{digest}?sig=x");
            respond(s, "307 Temporary Redirect", &[("Location", to)], b"");
            true
        },
    );
    let host = format!("127.0.0.1:{}", registry.port);
    let authfile = t.write(
        "auth.json",
        serde_json::to_vec(&json!({"auths": {host.clone(): {"auth": B64.encode("kim:redir-pw")}}}))
            .unwrap(),
    );
    let name = format!("{host}/moved/app:1");
    let out = t
        .burrow(["pull", "--authfile", authfile.to_str().unwrap(), &name])
        .output();
    out.assert_ok();
    for d in &image.layer_digests {
        assert!(has_blob(&t, d), "{d} not pulled");
    }
    let seen = storage_seen.lock().unwrap();
    // The config and both layers came from the storage server, without credentials.
    assert!(seen.len() >= 3, "{seen:?}");
    for headers in seen.iter() {
        assert!(
            !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization")),
            "credentials sent to blob storage: {headers:?}"
        );
    }
    assert!(registry_auth.lock().unwrap().iter().any(|ok| *ok));
}

#[test]
fn concurrent_pulls_fetch_each_blob_once() {
    let t = ctx!();
    let image = Arc::new(served_image("concurrent", 3));
    let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::new(Mutex::new(HashMap::new()));
    let c = counts.clone();
    let server = serve(image.clone(), move |digest, _, _| {
        *c.lock().unwrap().entry(digest.to_string()).or_default() += 1;
        // Slow enough that both pulls are at their blobs at once.
        std::thread::sleep(Duration::from_millis(400));
        false
    });
    let name = format!("127.0.0.1:{}/same/app:1", server.port);
    let a = t.burrow(["pull", "-q", &name]).spawn();
    let b = t.burrow(["pull", "-q", &name]).spawn();
    a.wait().assert_ok();
    b.wait().assert_ok();
    let counts = counts.lock().unwrap();
    assert_eq!(counts.len(), image.blobs.len(), "{counts:?}");
    for (digest, n) in counts.iter() {
        assert_eq!(*n, 1, "{digest} fetched {n} times: {counts:?}");
    }
}

#[test]
fn killed_pull_leaves_nothing_trusted() {
    let t = ctx!();
    let Some(reg) = registry(function_name!(), RegistryConfig::default()) else {
        return;
    };
    let img = upload_tagged(&format!("http://{}", reg.host()), "killed/app", 2, "killed");
    let name = format!("{}/killed/app:1", reg.host());
    let out = t
        .burrow(["pull", &name])
        .env("BURROW_TEST_CRASH_AT", "pull-blob-written")
        .output();
    assert_eq!(out.code, 128 + 9, "{out:?}");
    // The downloaded bytes sit unverified in tmp/, never under their digest.
    assert!(!store_tmp(&t).is_empty(), "nothing was being written");
    assert!(!has_blob(&t, &img.config_digest));
    // The next invocation removes them; a pull then completes.
    t.burrow(["images"]).output().assert_ok();
    assert!(store_tmp(&t).is_empty(), "{:?}", store_tmp(&t));
    t.burrow(["pull", "-q", &name]).output().assert_ok();
    assert!(has_blob(&t, &img.manifest_digest));
    for l in &img.layer_digests {
        assert!(has_blob(&t, l));
    }
}

// ---------------------------------------------------------------------------------------------
// Layers unpacked as they download

/// Bytes gzip cannot shrink (xorshift), so that a layer is as big on the wire as on disk.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn pull_unpacks_a_layer_while_it_downloads() {
    let t = ctx!();
    let big = noise(6 << 20);
    let image = Arc::new(served_layers(vec![images::tar(&[
        Entry::file("first", 0o644, "at the start of the layer\n"),
        Entry::file("big", 0o644, big.clone()),
    ])]));
    let layer_digest = image.layer_digests[0].clone();
    // The server sends all of the layer but its last MiB, then holds on until the test has
    // seen the layer's first file (or gives up after a minute, so that a failure is reported
    // rather than hung).
    let release = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let held = release.clone();
    let server = serve(image.clone(), move |digest, data, s| {
        if digest != layer_digest {
            return false;
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            data.len()
        );
        let split = data.len() - (1 << 20);
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&data[..split]);
        let _ = s.flush();
        let (lock, cv) = &*held;
        let released = lock.lock().unwrap();
        let _ = cv
            .wait_timeout_while(released, Duration::from_secs(60), |r| !*r)
            .unwrap();
        let _ = s.write_all(&data[split..]);
        true
    });
    let name = format!("127.0.0.1:{}/stream/app:1", server.port);
    let pull = t.burrow(["pull", "-q", &name]).spawn();
    // Watching the store, not synchronising: the server waits for our signal.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while seen.is_none() && std::time::Instant::now() < deadline {
        seen = layer_temps(&t)
            .into_iter()
            .map(|n| t.root.join("overlay").join(n).join("diff/first"))
            .find(|p| p.is_file());
        std::thread::sleep(Duration::from_millis(20));
    }
    {
        let (lock, cv) = &*release;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
    pull.wait().assert_ok();
    let seen = seen.expect("the layer's first file never showed before its last bytes arrived");
    // Under a temp name: the layer is named only once its digest and diff id are checked.
    assert!(!seen.exists(), "{} is still there", seen.display());
    let layers = unpacked_layers(&t);
    assert_eq!(layers.len(), 1, "{layers:?}");
    let diff = t.root.join("overlay").join(&layers[0]).join("diff");
    assert_eq!(std::fs::read(diff.join("big")).unwrap(), big);
    assert!(layer_temps(&t).is_empty(), "{:?}", layer_temps(&t));
    assert!(has_blob(&t, &image.layer_digests[0]));
}

#[test]
fn pull_layer_with_wrong_digest_leaves_nothing() {
    let t = ctx!();
    let image = Arc::new(served_image("wrong digest", 2));
    let victim = image.layer_digests[1].clone();
    let v = victim.clone();
    // Another gzip header timestamp: the same size and the same tar inside (its diff id
    // matches, so it unpacks cleanly), but not the blob the manifest names.
    let server = serve(image.clone(), move |digest, data, s| {
        if digest != v {
            return false;
        }
        let mut other = data.to_vec();
        other[4] ^= 0x01;
        respond(s, "200 OK", &[], &other);
        true
    });
    let name = format!("127.0.0.1:{}/wrong/app:1", server.port);
    let out = t.burrow(["pull", &name]).output();
    out.assert_code(125);
    assert!(out.stderr.contains("digest mismatch"), "{}", out.stderr);
    assert!(out.stderr.contains(victim.as_str()), "{}", out.stderr);
    assert!(!has_blob(&t, &victim), "the wrong blob was kept");
    // The victim's layer is not unpacked, under any name (the other layer may be).
    let layers = unpacked_layers(&t);
    assert!(layers.len() <= 1, "{layers:?}");
    let overlay = t.root.join("overlay");
    for l in &layers {
        assert!(
            !overlay.join(l).join("diff/file-1").exists(),
            "the layer of the wrong blob was unpacked as {l}"
        );
    }
    assert!(layer_temps(&t).is_empty(), "{:?}", layer_temps(&t));
    assert!(store_tmp(&t).is_empty(), "{:?}", store_tmp(&t));
    let images = t.burrow(["images", "-q"]).output();
    assert!(images.stdout.trim().is_empty(), "{}", images.stdout);
}

#[test]
fn killed_streaming_pull_leaves_only_temp_names() {
    let t = ctx!();
    let image = Arc::new(served_image("killed while unpacking", 2));
    let server = serve(image.clone(), |_, _, _| false);
    let name = format!("127.0.0.1:{}/killed/stream:1", server.port);
    // Killed with a layer downloaded and unpacked, neither verified nor named.
    let out = t
        .burrow(["pull", &name])
        .env("BURROW_TEST_CRASH_AT", "pull-layer-unpacked")
        .output();
    assert_eq!(out.code, 128 + 9, "{out:?}");
    assert!(!layer_temps(&t).is_empty(), "no layer was being unpacked");
    assert!(unpacked_layers(&t).is_empty(), "{:?}", unpacked_layers(&t));
    for l in &image.layer_digests {
        assert!(!has_blob(&t, l), "{l} was stored unverified");
    }
    // The next command removes the blob's temp file, the next pull the layer's temp dir.
    t.burrow(["images"]).output().assert_ok();
    assert!(store_tmp(&t).is_empty(), "{:?}", store_tmp(&t));
    t.burrow(["pull", "-q", &name]).output().assert_ok();
    assert_eq!(unpacked_layers(&t).len(), 2, "{:?}", unpacked_layers(&t));
    assert!(layer_temps(&t).is_empty(), "{:?}", layer_temps(&t));
    drop(server);
}

#[test]
fn pull_refuses_a_config_without_a_diff_id_per_layer() {
    let t = ctx!();
    let mut image = served_image("two layers, one diff id", 2);
    // The config names the first layer's tar only.
    let first = images::tar(&[Entry::file(
        "file-0",
        0o644,
        "two layers, one diff id 0\n".repeat(2000),
    )]);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest_of(&first)]},
    }))
    .unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    manifest["config"]["digest"] = json!(digest_of(&config));
    manifest["config"]["size"] = json!(config.len());
    image.manifest = serde_json::to_vec(&manifest).unwrap();
    image.blobs.insert(digest_of(&config), config);
    let image = Arc::new(image);
    let fetched = Arc::new(Mutex::new(Vec::new()));
    let f = fetched.clone();
    let server = serve(image.clone(), move |digest, _, _| {
        f.lock().unwrap().push(digest.to_string());
        false
    });
    let name = format!("127.0.0.1:{}/short/config:1", server.port);
    let out = t.burrow(["pull", &name]).output();
    out.assert_code(125);
    assert!(
        out.stderr
            .contains("1 layer diff ids for the manifest's 2 layers"),
        "{}",
        out.stderr
    );
    let fetched = fetched.lock().unwrap();
    for l in &image.layer_digests {
        assert!(!fetched.contains(l), "{l} was fetched: {fetched:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// registries.conf and certificates

#[test]
fn registries_conf_short_names_aliases_and_mirrors() {
    let t = ctx!();
    let Some(live) = registry(function_name!(), RegistryConfig::default()) else {
        return;
    };
    let img = upload_tagged(&format!("http://{}", live.host()), "short/app", 1, "short");
    let (dead, dead2) = (free_port(), free_port());
    let conf = t.write(
        "registries.conf",
        format!(
            "unqualified-search-registries = [\"127.0.0.1:{dead}\", \"{live}\"]\n\
             [aliases]\n\"myalias\" = \"{live}/short/app\"\n\
             [[registry]]\nlocation = \"127.0.0.1:{dead2}\"\n\
             [[registry.mirror]]\nlocation = \"{live}\"\n",
            live = live.host()
        ),
    );
    let conf = conf.to_str().unwrap();
    let pull = |t: &TestCtx, name: &str| {
        let out = t
            .burrow(["pull", name])
            .env("CONTAINERS_REGISTRIES_CONF", conf)
            .output();
        out.assert_ok();
        out.stdout.lines().last().unwrap_or("").to_string()
    };
    // The dead search registry is skipped.
    assert_eq!(
        pull(&t, "short/app:1"),
        format!("{}/short/app:1", live.host())
    );
    let t2 = ctx2("registries_conf_short_names_aliases_and_mirrors-2");
    assert_eq!(
        pull(&t2, "myalias:1"),
        format!("{}/short/app:1", live.host())
    );
    // The dead registry's mirror serves it, under the name asked for.
    let t3 = ctx2("registries_conf_short_names_aliases_and_mirrors-3");
    let mirrored = format!("127.0.0.1:{dead2}/short/app:1");
    assert_eq!(pull(&t3, &mirrored), mirrored);
    assert!(has_blob(&t3, &img.manifest_digest));
    // Without the configuration, the dead registry is just dead.
    let t4 = ctx2("registries_conf_short_names_aliases_and_mirrors-4");
    t4.burrow(["pull", &mirrored]).output().assert_code(125);
}

#[test]
fn per_registry_ca_directory() {
    let t = ctx!();
    if let Err(why) = have_registry().and_then(|_| have_openssl()) {
        return harness::skip(function_name!(), &why);
    }
    let tls = t.path("tls");
    make_tls(&tls);
    let reg = Registry::start(RegistryConfig {
        tls: Some((tls.join("server.crt"), tls.join("server.key"))),
        ..Default::default()
    });
    let ca = std::fs::read(tls.join("ca.crt")).unwrap();
    t.write(
        &format!("config/containers/certs.d/{}/ca.crt", reg.host()),
        &ca,
    );
    let config_home = t.path("config");
    let config_home = config_home.to_str().unwrap();
    let name = format!("{}/ca/app:1", reg.host());
    load_named(&t, &name);
    t.burrow(["push", "-q", &name])
        .env("XDG_CONFIG_HOME", config_home)
        .output()
        .assert_ok();
    let t2 = ctx2("per_registry_ca_directory-2");
    t2.burrow(["pull", "-q", &name])
        .env("XDG_CONFIG_HOME", config_home)
        .output()
        .assert_ok();
    let t3 = ctx2("per_registry_ca_directory-3");
    let out = t3.burrow(["pull", "-q", &name]).output();
    out.assert_code(125);
    assert!(out.stderr.contains("certs.d"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// Pushing images of every origin

#[test]
fn push_imported_committed_and_pulled_images() {
    let t = ctx!();
    let Some(reg) = registry(function_name!(), RegistryConfig::default()) else {
        return;
    };
    let h = reg.host();

    // import -> push -> pull
    let tar = t.write(
        "rootfs.tar",
        images::tar(&[Entry::file("imported", 0o644, "from a tarball\n")]),
    );
    let imported = format!("{h}/imp/app:1");
    t.burrow(["import", tar.to_str().unwrap(), &imported])
        .output()
        .assert_ok();
    let out = t.burrow(["push", &imported]).output();
    out.assert_ok();
    let digest = pushed_digest(&out.stdout);
    let t2 = ctx2("push_imported_committed_and_pulled_images-2");
    let out = t2.burrow(["pull", &imported]).output();
    out.assert_ok();
    assert!(out.stdout.contains(&digest), "{}", out.stdout);

    // commit -> push -> pull -> run
    let base = crate::fixtures::load_base(&t);
    t.burrow([
        "run",
        "--name",
        "to-commit",
        base,
        "sh",
        "-c",
        "echo committed > /hello",
    ])
    .output()
    .assert_ok();
    let committed = format!("{h}/com/app:1");
    t.burrow(["commit", "to-commit", &committed])
        .output()
        .assert_ok();
    t.burrow(["push", "-q", &committed]).output().assert_ok();
    t2.burrow(["pull", "-q", &committed]).output().assert_ok();
    let out = t2
        .burrow(["run", "--rm", &committed, "cat", "/hello"])
        .output();
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "committed");

    // pulled -> tag -> push to another repository: the blobs are mounted.
    let copy = format!("{h}/copy/app:2");
    t2.burrow(["tag", &committed, &copy]).output().assert_ok();
    let out = t2.burrow(["push", &copy]).output();
    out.assert_ok();
    assert!(
        out.stdout.contains("Mounted from com/app"),
        "{}",
        out.stdout
    );
    let t3 = ctx2("push_imported_committed_and_pulled_images-3");
    t3.burrow(["pull", "-q", &copy]).output().assert_ok();
}

// ---------------------------------------------------------------------------------------------
// On a terminal

#[test]
fn login_prompts_on_a_terminal_without_echo() {
    let t = ctx!();
    let Some(reg) = registry(function_name!(), htpasswd_config(&t, "tia", "Tty9secret")) else {
        return;
    };
    let authfile = authfile(&t);
    let host = reg.host();
    let mut s = PtySession::spawn(&t, &["login", "--authfile", &authfile, &host], 24, 100);
    s.wait_for("Username: ");
    s.type_("tia\n");
    s.wait_for("Password: ");
    s.type_("Tty9secret\n");
    let (code, output) = s.finish();
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("Login Succeeded"), "{output}");
    // The username was echoed, the password not.
    assert!(output.contains("tia"), "{output}");
    assert!(!output.contains("Tty9secret"), "{output}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&authfile).unwrap()).unwrap();
    assert_eq!(
        saved["auths"][&host]["auth"].as_str(),
        Some(B64.encode("tia:Tty9secret").as_str())
    );
}

#[test]
fn pull_progress_on_a_terminal() {
    let t = ctx!();
    let image = Arc::new(served_image("progress", 1));
    // Layers trickle out, so the live display has something to show.
    let server = serve(image.clone(), |_, data, s| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            data.len()
        );
        let _ = s.write_all(head.as_bytes());
        for chunk in data.chunks(data.len().div_ceil(8)) {
            let _ = s.write_all(chunk);
            let _ = s.flush();
            std::thread::sleep(Duration::from_millis(150));
        }
        true
    });
    let name = format!("127.0.0.1:{}/slow/app:1", server.port);
    let s = PtySession::spawn(&t, &["pull", &name], 24, 120);
    let (code, output) = s.finish();
    assert_eq!(code, 0, "{output}");
    let layer = &image.layer_digests[0][7..19];
    // Live rows: redrawn in place, with a bar, bytes so far of the total, and a speed.
    assert!(output.contains("\x1b[2K"), "{output:?}");
    assert!(
        output.contains(&format!("{layer}: Downloading [")),
        "{output:?}"
    );
    assert!(output.contains("/s"), "{output:?}");
    assert!(
        output.contains(&format!("{layer}: Download complete")),
        "{output:?}"
    );
    assert!(
        output.contains("Status: Downloaded newer image"),
        "{output:?}"
    );
}
