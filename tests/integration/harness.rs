//! Test harness: per-test storage roots, running burrow as an unprivileged
//! user, timeouts, and small helpers for assertions.
//!
//! Rootless is the product, so burrow always runs as a normal user:
//! * when the test process is root, the harness creates (once, under a file
//!   lock) the users `burrowtest` (with subordinate ids) and `burrownosub`
//!   (without), copies the burrow binary to a world-readable place and runs it
//!   through `setpriv --reuid --regid --init-groups` with a clean environment;
//! * when the test process is a normal user, burrow runs directly as that user.

use std::collections::hash_map::DefaultHasher;
use std::ffi::OsString;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Base directory for everything the harness creates when running as root.
pub const BASE: &str = "/var/tmp/burrow-tests";
/// The user with subordinate ids that runs burrow when the tests run as root.
pub const TEST_USER: &str = "burrowtest";
/// The user without subordinate ids (single-id map test).
pub const NOSUB_USER: &str = "burrownosub";
/// Where the harness puts `burrowtest`'s subordinate ids if it has none.
const SUBID_MIN_START: u64 = 300_000;
const SUBID_COUNT: u64 = 65_536;

/// Upper bound for a single burrow invocation. It only bounds failures:
/// nothing waits for it to elapse in the passing case.
pub const TIMEOUT: Duration = Duration::from_secs(180);

/// Expands to the name of the enclosing function.
#[macro_export]
macro_rules! function_name {
    () => {{
        fn f() {}
        fn type_name_of<T>(_: T) -> &'static str {
            std::any::type_name::<T>()
        }
        let name = type_name_of(f);
        let name = name.strip_suffix("::f").unwrap_or(name);
        name.rsplit("::").next().unwrap_or(name)
    }};
}

/// `let t = ctx!();` gives the test its own directory and storage root, or
/// returns from the test after printing `skipped: REASON`.
#[macro_export]
macro_rules! ctx {
    () => {
        $crate::ctx!($crate::harness::Who::Default)
    };
    ($who:expr) => {
        match $crate::harness::TestCtx::new($crate::function_name!(), $who) {
            Ok(t) => t,
            Err(reason) => {
                $crate::harness::skip($crate::function_name!(), &reason);
                return;
            }
        }
    };
}

/// Print a skip notice: into the test's captured output, and straight to
/// stderr (bypassing libtest's capture) so it shows in every run.
pub fn skip(test: &str, reason: &str) {
    println!("skipped: {test}: {reason}");
    let _ = writeln!(std::io::stderr().lock(), "skipped: {test}: {reason}");
}

/// Which user runs burrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// `burrowtest` as root, the current user otherwise.
    Default,
    /// A user without subordinate ids (only available when the tests run as root).
    NoSubIds,
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// A subordinate id range (`/etc/subuid`, `/etc/subgid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubRange {
    pub start: u64,
    pub count: u64,
}

struct Global {
    as_root: bool,
    /// The burrow binary the test user runs.
    bin: PathBuf,
    busybox: Option<PathBuf>,
    default_user: User,
    nosub_user: Option<User>,
}

static GLOBAL: OnceLock<Result<Global, String>> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn global() -> Result<&'static Global, String> {
    GLOBAL
        .get_or_init(|| {
            if is_root() {
                root_setup()
            } else {
                user_setup()
            }
        })
        .as_ref()
        .map_err(|e| e.clone())
}

/// Path of the host's busybox (a static one), if any.
pub fn find_busybox() -> Option<PathBuf> {
    for p in ["/bin/busybox", "/usr/bin/busybox", "/sbin/busybox"] {
        let p = Path::new(p);
        if p.is_file() {
            return Some(p.to_path_buf());
        }
    }
    None
}

fn sh(cmd: &str) -> Result<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("sh -c {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Look a user up in /etc/passwd (by name).
pub fn lookup_user(name: &str) -> Option<User> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 6 && f[0] == name {
            Some(User {
                name: name.to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: PathBuf::from(f[5]),
            })
        } else {
            None
        }
    })
}

fn lookup_uid(uid: u32) -> Option<User> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 6 && f[2].parse::<u32>().ok()? == uid {
            lookup_user(f[0])
        } else {
            None
        }
    })
}

/// The first subordinate range of `user` in `file` (/etc/subuid or /etc/subgid).
pub fn subrange(file: &str, user: &User, id: u32) -> Option<SubRange> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        if f.len() == 3 && (f[0] == user.name || f[0] == id.to_string()) {
            let start = f[1].parse().ok()?;
            let count = f[2].parse().ok()?;
            (count > 0).then_some(SubRange { start, count })
        } else {
            None
        }
    })
}

fn user_setup() -> Result<Global, String> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let user = lookup_uid(uid).unwrap_or_else(|| User {
        name: std::env::var("USER").unwrap_or_default(),
        uid,
        gid,
        home: std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default(),
    });
    Ok(Global {
        as_root: false,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_burrow")),
        busybox: find_busybox(),
        default_user: user,
        nosub_user: None,
    })
}

struct FileLock(fs::File);

impl FileLock {
    fn acquire(path: &Path) -> Result<FileLock, String> {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("open {}: {e}", path.display()))?;
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: valid fd owned by `f`.
            let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("flock {}: {err}", path.display()));
            }
        }
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: valid fd owned by self.0.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn mkdir_mode(path: &Path, mode: u32) -> Result<(), String> {
    fs::create_dir_all(path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

pub fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", path.display()))
}

/// Ranges in a subid file, to pick a start that collides with none.
fn subid_ranges(file: &str) -> Vec<(u64, u64)> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            (f.len() == 3).then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))?
        })
        .collect()
}

fn ensure_subids(file: &str, user: &User) -> Result<(), String> {
    if subrange(file, user, user.uid).is_some() {
        return Ok(());
    }
    let ranges = subid_ranges(file);
    let mut start = SUBID_MIN_START;
    // Move past every range that overlaps [start, start+count).
    loop {
        let clash = ranges
            .iter()
            .find(|(s, c)| *s < start + SUBID_COUNT && start < s + c);
        match clash {
            Some((s, c)) => start = s + c,
            None => break,
        }
    }
    let mut text = fs::read_to_string(file).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{}:{start}:{SUBID_COUNT}\n", user.name));
    fs::write(file, text).map_err(|e| format!("write {file}: {e}"))
}

fn remove_subids(file: &str, name: &str) -> Result<(), String> {
    let text = fs::read_to_string(file).unwrap_or_default();
    let prefix = format!("{name}:");
    if !text.lines().any(|l| l.starts_with(&prefix)) {
        return Ok(());
    }
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(file, kept).map_err(|e| format!("write {file}: {e}"))
}

fn ensure_user(name: &str, with_subids: bool) -> Result<User, String> {
    if lookup_user(name).is_none() {
        // -K SUB_*_COUNT=0: useradd must not allocate subordinate ids itself;
        // the harness decides who has some.
        sh(&format!(
            "useradd --create-home --shell /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 {name} \
             || useradd --create-home --shell /bin/sh {name}"
        ))?;
    }
    let user = lookup_user(name).ok_or_else(|| format!("user {name} missing after useradd"))?;
    for file in ["/etc/subuid", "/etc/subgid"] {
        if with_subids {
            ensure_subids(file, &user)?;
        } else {
            remove_subids(file, name)?;
        }
    }
    Ok(user)
}

fn runtime_dir(user: &User) -> PathBuf {
    Path::new(BASE).join("run").join(user.uid.to_string())
}

fn root_setup() -> Result<Global, String> {
    let base = Path::new(BASE);
    mkdir_mode(base, 0o755)?;
    let _lock = FileLock::acquire(&base.join("setup.lock"))?;

    let mut busybox = find_busybox();
    if busybox.is_none() {
        let _ = sh(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static \
             || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static)",
        );
        busybox = find_busybox();
    }
    let user = ensure_user(TEST_USER, true)?;
    let nosub = ensure_user(NOSUB_USER, false)?;

    for dev in ["/dev/net/tun", "/dev/fuse"] {
        if Path::new(dev).exists() {
            let _ = fs::set_permissions(dev, fs::Permissions::from_mode(0o666));
        }
    }

    // Copy the binary where the test users can read it (the checkout may sit
    // in a directory they cannot enter, e.g. /root/...). The directory name
    // identifies the build so concurrent runs of different builds don't clash.
    let src = PathBuf::from(env!("CARGO_BIN_EXE_burrow"));
    let meta = fs::metadata(&src).map_err(|e| format!("{}: {e}", src.display()))?;
    let mut h = DefaultHasher::new();
    src.hash(&mut h);
    meta.len().hash(&mut h);
    meta.mtime().hash(&mut h);
    meta.mtime_nsec().hash(&mut h);
    let bindir = base.join("bin").join(format!("{:016x}", h.finish()));
    mkdir_mode(&base.join("bin"), 0o755)?;
    // Copies from older builds (a debug binary is big): drop those unused
    // for a day; a test process still running one keeps its open inode.
    for old in list_dir(&base.join("bin")) {
        let p = base.join("bin").join(&old);
        let stale = fs::metadata(&p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(24 * 3600));
        if p != bindir && stale {
            let _ = fs::remove_dir_all(&p);
        }
    }
    mkdir_mode(&bindir, 0o755)?;
    // Mark it used (its mtime is what the clean-up above looks at).
    let _ = fs::remove_file(bindir.join(".used"));
    let _ = fs::File::create(bindir.join(".used"));
    let bin = bindir.join("burrow");
    if fs::metadata(&bin).map(|m| m.len()).ok() != Some(meta.len()) {
        let tmp = bindir.join(format!(".burrow.{}", std::process::id()));
        fs::copy(&src, &tmp).map_err(|e| format!("copy burrow: {e}"))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        fs::rename(&tmp, &bin).map_err(|e| format!("rename burrow: {e}"))?;
    }

    mkdir_mode(&base.join("run"), 0o755)?;
    mkdir_mode(&base.join("tests"), 0o755)?;
    for u in [&user, &nosub] {
        let rd = runtime_dir(u);
        mkdir_mode(&rd, 0o700)?;
        chown(&rd, u.uid, u.gid)?;
    }

    Ok(Global {
        as_root: true,
        bin,
        busybox,
        default_user: user,
        nosub_user: Some(nosub),
    })
}

/// One test's world: a directory, a storage root inside it, and the user
/// that runs burrow.
pub struct TestCtx {
    pub name: String,
    /// The test's directory (owned by the user that runs burrow).
    pub dir: PathBuf,
    /// The storage root passed with `--root` (created by burrow).
    pub root: PathBuf,
    pub user: User,
    pub as_root: bool,
    pub busybox: PathBuf,
    bin: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl TestCtx {
    pub fn new(name: &str, who: Who) -> Result<TestCtx, String> {
        let g = global()?;
        let busybox = g
            .busybox
            .clone()
            .ok_or("no busybox on the host (install busybox-static)")?;
        let user = match who {
            Who::Default => g.default_user.clone(),
            Who::NoSubIds => g
                .nosub_user
                .clone()
                .ok_or("needs root to create a user without subordinate ids")?,
        };
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let (dir, tmp) = if g.as_root {
            let dir = Path::new(BASE)
                .join("tests")
                .join(format!("{name}-{}-{n}", std::process::id()));
            if dir.exists() {
                let _ = fs::remove_dir_all(&dir);
            }
            mkdir_mode(&dir, 0o755)?;
            chown(&dir, user.uid, user.gid)?;
            (dir, None)
        } else {
            let tmp = tempfile::Builder::new()
                .prefix(&format!("burrow-{name}-"))
                .tempdir()
                .map_err(|e| format!("tempdir: {e}"))?;
            (tmp.path().to_path_buf(), Some(tmp))
        };
        Ok(TestCtx {
            name: name.to_string(),
            root: dir.join("root"),
            dir,
            user,
            as_root: g.as_root,
            busybox,
            bin: g.bin.clone(),
            _tmp: tmp,
        })
    }

    /// Subordinate uid range of the user running burrow.
    pub fn subuid(&self) -> Option<SubRange> {
        subrange("/etc/subuid", &self.user, self.user.uid)
    }

    pub fn subgid(&self) -> Option<SubRange> {
        subrange("/etc/subgid", &self.user, self.user.uid)
    }

    /// A path inside the test directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Write a file into the test directory (readable by the burrow user).
    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        p
    }

    /// Make a directory in the test dir owned by the burrow user.
    pub fn user_dir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).unwrap();
        if self.as_root {
            chown(&p, self.user.uid, self.user.gid).unwrap();
        }
        p
    }

    /// `burrow --root ROOT ARGS...`, run as the test user.
    pub fn burrow<I, S>(&self, args: I) -> BurrowCmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        BurrowCmd {
            ctx_bin: self.bin.clone(),
            as_root: self.as_root,
            user: self.user.clone(),
            cwd: self.dir.clone(),
            args: [OsString::from("--root"), self.root.clone().into_os_string()]
                .into_iter()
                .chain(args.into_iter().map(Into::into))
                .collect(),
            envs: Vec::new(),
            stdin: None,
            timeout: TIMEOUT,
            inherited_fds: Vec::new(),
        }
    }

    /// Load a docker/OCI archive written to the test dir; asserts success.
    pub fn load(&self, archive: &Path) -> Output {
        let out = self
            .burrow(["load".into(), "-i".into(), archive.as_os_str().to_owned()])
            .output();
        out.assert_code(0);
        out
    }

    /// Container ids: the 64-hex directories in ROOT/containers (other
    /// entries there, e.g. a name index, are not containers).
    pub fn containers(&self) -> Vec<String> {
        let dir = self.root.join("containers");
        list_dir(&dir)
            .into_iter()
            .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .filter(|n| dir.join(n).is_dir())
            .collect()
    }
}

pub fn list_dir(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(p) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

impl Drop for TestCtx {
    fn drop(&mut self) {
        if std::env::var_os("BURROW_TEST_KEEP").is_some() {
            eprintln!("kept test dir {}", self.dir.display());
            return;
        }
        if !self.as_root && self.root.exists() {
            // Files owned by subordinate ids: remove them from inside the userns.
            let _ = self
                .burrow(
                    ["unshare", "rm", "-rf"]
                        .map(OsString::from)
                        .into_iter()
                        .chain([self.root.clone().into_os_string()]),
                )
                .timeout(Duration::from_secs(60))
                .try_output();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The result of one burrow invocation.
#[derive(Debug)]
pub struct Output {
    pub cmdline: String,
    /// Exit code; 128+N when killed by signal N.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "command: {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.cmdline, self.code, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "unexpected exit code (want {code})\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        self.assert_code(0)
    }

    #[track_caller]
    pub fn assert_stdout(&self, want: &str) -> &Self {
        assert_eq!(self.stdout, want, "unexpected stdout\n{}", self.describe());
        self
    }

    #[track_caller]
    pub fn assert_stdout_contains(&self, want: &str) -> &Self {
        assert!(
            self.stdout.contains(want),
            "stdout lacks {want:?}\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_nonempty(&self) -> &Self {
        assert!(
            !self.stderr.trim().is_empty(),
            "expected an error message on stderr\n{}",
            self.describe()
        );
        self
    }

    /// Panic with the full description and a message.
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n{}", self.describe())
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

pub fn status_code(st: ExitStatus) -> i32 {
    match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => -1,
    }
}

/// A burrow invocation being prepared.
pub struct BurrowCmd {
    ctx_bin: PathBuf,
    as_root: bool,
    user: User,
    cwd: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    inherited_fds: Vec<i32>,
}

impl BurrowCmd {
    /// Also give burrow descriptor `fd` (a copy of its stdin, inheritable), as a careless
    /// caller would: burrow must not pass it on to the container.
    pub fn inherit_fd(mut self, fd: i32) -> Self {
        self.inherited_fds.push(fd);
        self
    }

    /// Set a variable in burrow's own environment (the caller's env).
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.to_string(), v.to_string()));
        self
    }

    /// Feed these bytes on stdin (then close it). Without it stdin is /dev/null.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    pub fn cmdline(&self) -> String {
        let mut s = format!("[as {}] burrow", self.user.name);
        for a in &self.args {
            s.push(' ');
            s.push_str(&shell_quote(&a.to_string_lossy()));
        }
        s
    }

    /// The `std::process::Command` (setpriv wrapper when root, clean env).
    pub fn command(&self) -> Command {
        let mut c = if self.as_root {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", self.user.uid))
                .arg(format!("--regid={}", self.user.gid))
                .arg("--init-groups")
                .arg("--")
                .arg(&self.ctx_bin);
            c
        } else {
            Command::new(&self.ctx_bin)
        };
        c.args(&self.args);
        c.current_dir(&self.cwd);
        c.env_clear();
        c.env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
        if self.as_root {
            c.env("HOME", &self.user.home)
                .env("USER", &self.user.name)
                .env("LOGNAME", &self.user.name)
                .env("XDG_RUNTIME_DIR", runtime_dir(&self.user));
        } else {
            for k in ["HOME", "USER", "LOGNAME", "XDG_RUNTIME_DIR", "TMPDIR"] {
                if let Some(v) = std::env::var_os(k) {
                    c.env(k, v);
                }
            }
        }
        c.env("RUST_BACKTRACE", "1");
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c
    }

    /// Spawn with piped stdout/stderr (stdin piped if data was given, else
    /// null). The child is put in its own process group.
    pub fn spawn(&self) -> Running {
        let mut c = self.command();
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c.process_group(0);
        let fds = self.inherited_fds.clone();
        if !fds.is_empty() {
            // SAFETY: dup2 is async-signal-safe; it runs after stdio is set up.
            unsafe { c.pre_exec(move || dup_stdin_to(&fds)) };
        }
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.cmdline()));
        let stdout = Stream::collect(child.stdout.take().unwrap());
        let stderr = Stream::collect(child.stderr.take().unwrap());
        if let Some(data) = self.stdin.clone() {
            let mut w = child.stdin.take().unwrap();
            thread::spawn(move || {
                let _ = w.write_all(&data);
            });
        }
        Running {
            cmdline: self.cmdline(),
            child,
            stdout,
            stderr,
            timeout: self.timeout,
        }
    }

    /// Run to completion (bounded by the timeout, which panics).
    pub fn output(&self) -> Output {
        self.spawn().wait()
    }

    /// Like `output` but returns None on timeout instead of panicking.
    pub fn try_output(&self) -> Option<Output> {
        self.spawn().try_wait_timeout()
    }
}

/// dup2 stdin onto each of `fds` (a pre_exec step: dup2 leaves the copies inheritable).
pub fn dup_stdin_to(fds: &[i32]) -> std::io::Result<()> {
    for &fd in fds {
        // SAFETY: dup2 onto a descriptor number we chose.
        if unsafe { libc::dup2(0, fd) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// An output stream collected by a thread, observable while it grows.
#[derive(Clone)]
pub struct Stream {
    inner: Arc<(Mutex<StreamState>, Condvar)>,
}

/// Bytes read so far, and whether the stream ended.
type StreamState = (Vec<u8>, bool);

impl Stream {
    pub fn collect<R: Read + Send + 'static>(mut r: R) -> Stream {
        let s = Stream {
            inner: Arc::new((Mutex::new((Vec::new(), false)), Condvar::new())),
        };
        let s2 = s.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                let (m, cv) = &*s2.inner;
                let mut g = m.lock().unwrap();
                if n == 0 {
                    g.1 = true;
                    cv.notify_all();
                    return;
                }
                g.0.extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        s
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.inner.0.lock().unwrap().0).into_owned()
    }

    /// Wait until the collected text contains `needle`; false on timeout or
    /// end of stream without it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.inner;
        let mut g = m.lock().unwrap();
        loop {
            if String::from_utf8_lossy(&g.0).contains(needle) {
                return true;
            }
            let now = Instant::now();
            if g.1 || now >= deadline {
                return false;
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Wait for end of stream (bounded).
    pub fn wait_eof(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.inner;
        let mut g = m.lock().unwrap();
        while !g.1 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
        true
    }
}

/// A spawned burrow.
pub struct Running {
    pub cmdline: String,
    pub child: Child,
    pub stdout: Stream,
    pub stderr: Stream,
    pub timeout: Duration,
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Send a signal to burrow itself (not its process group).
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2).
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Wait until stdout contains `needle`, panicking with the output so far
    /// if it doesn't appear before the timeout or the end of the stream.
    #[track_caller]
    pub fn wait_stdout(&mut self, needle: &str) {
        if !self.stdout.wait_for(needle, self.timeout) {
            let out = self.kill_and_collect();
            out.fail(&format!("stdout never showed {needle:?}"));
        }
    }

    fn kill_and_collect(&mut self) -> Output {
        let pid = self.pid();
        // SAFETY: kill the process group we created.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
        let st = self.child.wait().ok();
        self.stdout.wait_eof(Duration::from_secs(5));
        self.stderr.wait_eof(Duration::from_secs(5));
        Output {
            cmdline: self.cmdline.clone(),
            code: st.map(status_code).unwrap_or(-1),
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        }
    }

    pub fn try_wait_timeout(mut self) -> Option<Output> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => {
                    // Streams end when every writer is gone; bound the wait in
                    // case a stray process inherited them.
                    self.stdout.wait_eof(Duration::from_secs(30));
                    self.stderr.wait_eof(Duration::from_secs(30));
                    return Some(Output {
                        cmdline: self.cmdline.clone(),
                        code: status_code(st),
                        stdout: self.stdout.text(),
                        stderr: self.stderr.text(),
                    });
                }
                Ok(None) => {}
                Err(e) => panic!("wait {}: {e}", self.cmdline),
            }
            if Instant::now() >= deadline {
                let out = self.kill_and_collect();
                eprintln!("TIMEOUT after {:?}\n{}", self.timeout, out.describe());
                return None;
            }
            // Polling interval of the exit status; only latency, not timing luck.
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[track_caller]
    pub fn wait(self) -> Output {
        let cmd = self.cmdline.clone();
        let t = self.timeout;
        match self.try_wait_timeout() {
            Some(o) => o,
            None => panic!("timed out after {t:?}: {cmd}"),
        }
    }
}

/// Recursively find paths under `dir` whose path ends with `suffix`.
pub fn find_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.to_string_lossy().ends_with(suffix) {
                found.push(p.clone());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    found
}
