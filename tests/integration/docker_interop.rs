//! Archive interoperability with a real docker: Debian 12's `docker.io` (dockerd 20.10), which
//! each test starts privately as root (its own data root, exec root, socket and managed
//! containerd; no iptables, no bridge, `vfs` storage) and stops when it ends. Burrow runs as
//! the unprivileged test user, as everywhere else; only docker runs as root.
//!
//! Images go both ways: what burrow builds and saves (`docker-archive` and `oci-archive`)
//! loads into docker with its names, config, layers and files; what docker builds and saves
//! loads into burrow and runs.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixtures::{self, BASE};
use crate::harness::{self, TestCtx};
use crate::images::{self, Config, Entry, Image};

const DOCKERD: &str = "/usr/sbin/dockerd";
/// Debian's client, not whatever else is first on PATH (a newer one may be installed).
const DOCKER: &str = "/usr/bin/docker";
/// Bounds start-up and shutdown failures only: a healthy daemon answers within a second.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(60);

/// A private dockerd, stopped (with its containerd) on drop.
struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    /// Start one, or say why it cannot run here (the test is then skipped).
    fn start() -> Result<Dockerd, String> {
        if !harness::is_root() {
            return Err("dockerd runs as root; the tests are not".into());
        }
        for bin in [DOCKERD, DOCKER] {
            if !Path::new(bin).exists() {
                return Err(format!("{bin} is missing (apt-get install docker.io)"));
            }
        }
        // Short: containerd's sockets live under it and socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("bdk-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("tempdir: {e}"))?;
        let d = dir.path();
        // Its own config file keeps /etc/docker/daemon.json out, and the key dockerd 20.10
        // creates on first start goes here instead of /etc/docker/key.json.
        let config = serde_json::json!({ "deprecated-key-path": d.join("key.json") });
        fs::write(d.join("daemon.json"), config.to_string()).map_err(|e| e.to_string())?;
        let log = fs::File::create(d.join("dockerd.log")).map_err(|e| e.to_string())?;
        let arg = |flag: &str, path: &str| format!("--{flag}={}", d.join(path).display());
        // In a mount namespace of its own: dockerd bind-mounts its data root, and a daemon
        // killed without its shutdown would otherwise leave that mount behind.
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", DOCKERD])
            .arg(arg("config-file", "daemon.json"))
            .arg(arg("data-root", "data"))
            .arg(arg("exec-root", "exec"))
            .arg(arg("pidfile", "dockerd.pid"))
            .arg(format!("--host=unix://{}", d.join("docker.sock").display()))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {DOCKERD}: {e}"))?;
        let mut daemon = Dockerd { child, dir };
        let deadline = Instant::now() + DAEMON_TIMEOUT;
        loop {
            if daemon.try_docker(&["version"]).status.success() {
                return Ok(daemon);
            }
            let exited = daemon.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let log =
                    fs::read_to_string(daemon.dir.path().join("dockerd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let how = match exited {
                    Some(st) => format!("exited ({st})"),
                    None => format!("did not answer within {DAEMON_TIMEOUT:?}"),
                };
                return Err(format!(
                    "dockerd {how}; last lines of its log:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(DOCKER);
        c.args(args)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir.path().join("docker.sock").display()),
            )
            // Keeps ~/.docker of whoever runs the tests out of it.
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            // 20.10's classic builder needs neither buildx nor the network.
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .stdin(Stdio::null());
        c
    }

    fn try_docker(&self, args: &[&str]) -> std::process::Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("{DOCKER}: {e}"))
    }

    /// `docker ARGS`, which must succeed; its stdout.
    #[track_caller]
    fn docker(&self, args: &[&str]) -> Vec<u8> {
        let out = self.try_docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    #[track_caller]
    fn docker_text(&self, args: &[&str]) -> String {
        String::from_utf8(self.docker(args)).unwrap()
    }

    /// `docker image inspect` of one image.
    #[track_caller]
    fn inspect(&self, image: &str) -> Value {
        let v: Value = serde_json::from_slice(&self.docker(&["image", "inspect", image])).unwrap();
        v[0].clone()
    }

    /// The files of `image` as docker sees them: `docker export` of a created (never
    /// started) container, path → (uid, content or symlink target).
    #[track_caller]
    fn files(&self, image: &str) -> BTreeMap<String, (u64, String)> {
        let id = self.docker_text(&["create", image]);
        let id = id.trim();
        let exported = self.docker(&["export", id]);
        self.docker(&["rm", id]);
        let mut files = BTreeMap::new();
        let mut archive = tar::Archive::new(&exported[..]);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let uid = entry.header().uid().unwrap();
            let content = match entry.link_name().unwrap() {
                Some(target) => target.to_string_lossy().into_owned(),
                None => {
                    let mut s = Vec::new();
                    entry.read_to_end(&mut s).unwrap();
                    String::from_utf8_lossy(&s).into_owned()
                }
            };
            files.insert(path.trim_end_matches('/').to_string(), (uid, content));
        }
        files
    }

    /// `REPOSITORY:TAG ID` of every image, sorted.
    fn images(&self) -> Vec<String> {
        let out = self.docker_text(&[
            "images",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        ]);
        let mut v: Vec<String> = out.lines().map(String::from).collect();
        v.sort();
        v
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + DAEMON_TIMEOUT;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A clean shutdown stops the containerd dockerd started; a killed dockerd leaves it
        // running (in a session of its own, reparented to init, which reaps it).
        let pidfile = self.dir.path().join("exec/containerd/containerd.pid");
        if let Some(pid) = fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
        {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "containerd" {
                // SAFETY: a pid just read from the daemon's own pid file, checked to be a
                // containerd still.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// The daemon for `test`, or `None` after printing why the test is skipped.
fn dockerd(test: &str) -> Option<Dockerd> {
    match Dockerd::start() {
        Ok(d) => Some(d),
        Err(why) => {
            harness::skip(test, &why);
            None
        }
    }
}

/// `burrow image inspect` of one image.
fn burrow_inspect(t: &TestCtx, image: &str) -> Value {
    let out = t.burrow(["image", "inspect", image]).output();
    out.assert_ok();
    serde_json::from_str::<Value>(&out.stdout).unwrap()[0].clone()
}

/// Let the test user read a file docker (root) wrote.
fn share(path: &Path) -> PathBuf {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    path.to_path_buf()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// Docker's view of an image matches burrow's: same id (config digest), same layers, and the
/// config burrow gave it.
#[track_caller]
fn assert_same_image(docker: &Value, burrow: &Value) {
    assert_eq!(docker["Id"], burrow["Id"], "image id");
    assert_eq!(docker["RootFS"]["Layers"], burrow["RootFS"]["Layers"]);
    for field in ["Cmd", "Entrypoint", "Env", "WorkingDir", "User", "Labels"] {
        assert_eq!(
            docker["Config"][field], burrow["Config"][field],
            "Config.{field}"
        );
    }
}

/// A three-layer image built by burrow itself (`run` + `commit`, twice): a file owned by a
/// non-root id, a deleted file (whiteout) and a replaced directory (opaque whiteout).
fn build_with_burrow(t: &TestCtx) {
    fixtures::load_base(t);
    let run = |name: &str, image: &str, script: &str| {
        t.burrow(["run", "--name", name, image, "sh", "-c", script])
            .output()
            .assert_ok();
    };
    run(
        "first",
        BASE,
        "mkdir /data && echo a > /data/a && echo b > /data/b && echo kept > /kept",
    );
    t.burrow(["commit", "first", "test/step:1"])
        .output()
        .assert_ok();
    run(
        "second",
        "test/step:1",
        "rm /bin/ls && rm -r /data && mkdir /data && echo c > /data/c \
         && echo made-by-burrow > /hello && chown 1000:1000 /hello && ln -s hello /greeting",
    );
    t.burrow([
        "commit",
        "-c",
        r#"CMD ["cat", "/hello"]"#,
        "-c",
        "ENV MODE=burrow",
        "-c",
        "WORKDIR /data",
        "-c",
        "LABEL org.example.made-by=burrow",
        "second",
        "test/made:1",
    ])
    .output()
    .assert_ok();
}

#[test]
fn burrow_archives_load_into_docker() {
    let t = ctx!();
    let Some(docker) = dockerd(&t.name) else {
        return;
    };
    build_with_burrow(&t);
    let made = burrow_inspect(&t, "test/made:1");
    assert_eq!(made["RootFS"]["Layers"].as_array().unwrap().len(), 3);

    // One image, the default format.
    let archive = t.path("made.tar");
    t.burrow(["save", "-o", archive.to_str().unwrap(), "test/made:1"])
        .output()
        .assert_ok();
    let loaded = docker.docker_text(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(loaded, "Loaded image: test/made:1\n");
    let theirs = docker.inspect("test/made:1");
    assert_eq!(strings(&theirs["RepoTags"]), ["test/made:1"]);
    assert_same_image(&theirs, &made);
    assert_eq!(strings(&theirs["Config"]["Cmd"]), ["cat", "/hello"]);
    assert!(
        strings(&theirs["Config"]["Env"]).contains(&"MODE=burrow"),
        "{theirs}"
    );
    assert_eq!(theirs["Config"]["WorkingDir"], "/data");
    assert_eq!(theirs["Config"]["Labels"]["org.example.made-by"], "burrow");
    let files = docker.files("test/made:1");
    assert_eq!(files["hello"], (1000, "made-by-burrow\n".into()));
    assert_eq!(files["greeting"], (0, "hello".into()));
    assert_eq!(files["kept"], (0, "kept\n".into()));
    assert_eq!(files["data/c"], (0, "c\n".into()));
    for gone in ["data/a", "data/b", "bin/ls"] {
        assert!(!files.contains_key(gone), "{gone} is back in docker");
    }
    assert!(files.contains_key("bin/busybox") && files.contains_key("bin/cat"));
    docker.docker(&["rmi", "test/made:1"]);
    assert_eq!(docker.images(), Vec::<String>::new());

    // Several images, one with two names, sharing layers, in one archive.
    t.burrow(["tag", "test/made:1", "other/made:v2"])
        .output()
        .assert_ok();
    let several = t.path("several.tar");
    t.burrow([
        "save",
        "-o",
        several.to_str().unwrap(),
        "test/made:1",
        "other/made:v2",
        "test/step:1",
        BASE,
    ])
    .output()
    .assert_ok();
    let loaded = docker.docker_text(&["load", "-i", several.to_str().unwrap()]);
    for name in ["test/made:1", "other/made:v2", "test/step:1", BASE] {
        assert!(
            loaded.contains(&format!("Loaded image: {name}\n")),
            "{loaded}"
        );
    }
    let id = |name: &str| burrow_inspect(&t, name)["Id"].as_str().unwrap().to_string();
    let mut want: Vec<String> = ["test/made:1", "other/made:v2", "test/step:1", BASE]
        .iter()
        .map(|name| format!("{name} {}", id(name)))
        .collect();
    want.sort();
    assert_eq!(docker.images(), want);
    assert_same_image(&docker.inspect(BASE), &burrow_inspect(&t, BASE));
    assert_eq!(docker.files("test/step:1")["data/a"], (0, "a\n".into()));
    docker.docker(&["rmi", "test/made:1", "other/made:v2", "test/step:1", BASE]);

    // An OCI archive, gzipped layers included: docker before 25 reads only manifest.json.
    let mut zipped = Image::new(
        "test/zipped:1",
        vec![
            fixtures::base_layer(&t),
            images::tar(&[Entry::file("zipped", 0o644, "gzip\n")]),
        ],
        Config::shell(),
    );
    zipped.gzip_layers = true;
    fixtures::load_image(&t, zipped);
    let oci = t.path("oci.tar");
    t.burrow([
        "save",
        "--format",
        "oci-archive",
        "-o",
        oci.to_str().unwrap(),
        "test/made:1",
        "test/zipped:1",
    ])
    .output()
    .assert_ok();
    let loaded = docker.docker_text(&["load", "-i", oci.to_str().unwrap()]);
    assert_eq!(
        loaded,
        "Loaded image: test/made:1\nLoaded image: test/zipped:1\n"
    );
    assert_same_image(&docker.inspect("test/made:1"), &made);
    assert_same_image(
        &docker.inspect("test/zipped:1"),
        &burrow_inspect(&t, "test/zipped:1"),
    );
    assert_eq!(
        docker.files("test/zipped:1")["zipped"],
        (0, "gzip\n".into())
    );

    // Back from docker: burrow's own image again (same id, under another manifest), which
    // stays one image with its names, as in docker, not a second one left nameless.
    t.burrow(["rmi", "other/made:v2"]).output().assert_ok();
    let back = t.path("back.tar");
    docker.docker(&["save", "-o", back.to_str().unwrap(), "test/made:1"]);
    t.load(&share(&back))
        .assert_stdout("Loaded image: test/made:1\n");
    let out = t
        .burrow([
            "images",
            "-a",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        ])
        .output();
    out.assert_ok();
    let made_id = made["Id"].as_str().unwrap();
    let rows: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| l.contains(made_id))
        .collect();
    assert_eq!(rows, [format!("test/made:1 {made_id}")], "{out:?}");
}

#[test]
fn docker_archives_load_into_burrow() {
    let t = ctx!();
    let Some(docker) = dockerd(&t.name) else {
        return;
    };
    // An image docker imports, and one it builds on it (no network, no container runs).
    let rootfs = t.write("rootfs.tar", fixtures::base_layer(&t));
    docker.docker(&[
        "import",
        "-c",
        r#"CMD ["sh"]"#,
        "-c",
        "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        rootfs.to_str().unwrap(),
        "dk/base:1",
    ]);
    t.write("context/msg", "from-docker\n");
    t.write(
        "context/Dockerfile",
        "FROM dk/base:1\n\
         COPY msg /srv/msg\n\
         COPY --chown=1000:1000 msg /srv/owned\n\
         ENV GREETING=hello-from-docker\n\
         WORKDIR /srv\n\
         LABEL org.example.made-by=docker\n\
         CMD [\"cat\", \"msg\"]\n",
    );
    docker.docker(&[
        "build",
        "-q",
        "-t",
        "dk/built:2",
        t.path("context").to_str().unwrap(),
    ]);
    docker.docker(&["tag", "dk/built:2", "dk/built:alias"]);
    let archive = t.path("docker.tar");
    docker.docker(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "dk/built:2",
        "dk/built:alias",
        "dk/base:1",
    ]);
    // docker writes a layer two images share once and links the other copy to it.
    let mut links = 0;
    let bytes = fs::read(&archive).unwrap();
    for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if path.ends_with("/layer.tar") && entry.header().entry_type().is_symlink() {
            links += 1;
        }
    }
    assert_eq!(links, 1, "docker's archive should link the shared layer");

    let out = t.load(&share(&archive));
    for name in ["dk/built:2", "dk/built:alias", "dk/base:1"] {
        out.assert_stdout_contains(&format!("Loaded image: {name}\n"));
    }
    let out = t
        .burrow(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output();
    out.assert_ok();
    let mut names = out.lines();
    names.sort();
    assert_eq!(names, ["dk/base:1", "dk/built:2", "dk/built:alias"]);
    for name in ["dk/built:2", "dk/base:1"] {
        assert_same_image(&docker.inspect(name), &burrow_inspect(&t, name));
    }
    // The config is honoured: Cmd in WorkingDir, Env; and the files, owners included.
    t.burrow(["run", "--rm", "dk/built:2"])
        .output()
        .assert_ok()
        .assert_stdout("from-docker\n");
    t.burrow([
        "run",
        "--rm",
        "dk/built:alias",
        "sh",
        "-c",
        "echo $GREETING; pwd; stat -c %u:%g /srv/owned; cat /srv/owned",
    ])
    .output()
    .assert_ok()
    .assert_stdout("hello-from-docker\n/srv\n1000:1000\nfrom-docker\n");
    t.burrow(["run", "--rm", "dk/base:1", "ls", "/srv"])
        .output()
        .assert_code(1);
}
