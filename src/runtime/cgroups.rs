//! Resource limits through cgroup v2: find a cgroup tree the user may manage (what systemd's
//! `Delegate=yes` gives), make a container's cgroup in it and write the limits there. Without
//! such a tree (cgroups v1 or hybrid, or no delegation) limits cannot be enforced rootless.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("this system has no delegated cgroup v2 (cgroups v1 or hybrid)")]
    NotUnified,
    #[error(
        "the cgroup of this process ({0}) is in a cgroup v2 tree not delegated to this user \
         (no parent cgroup belongs to the user)"
    )]
    NotDelegated(String),
    #[error("the delegated cgroup {dir} does not offer the {missing} controller(s)")]
    MissingControllers { dir: PathBuf, missing: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io {
        action,
        path,
        source,
    }
}

/// Limits in cgroup v2 terms; `None` is the kernel's default (no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// `memory.max`, bytes.
    pub memory_max: Option<i64>,
    /// `memory.swap.max`, bytes of swap alone (docker's `--memory-swap` counts memory too).
    pub swap_max: Option<i64>,
    /// `memory.low`, bytes.
    pub memory_low: Option<i64>,
    /// `cpu.max`: quota and period, microseconds.
    pub cpu_max: Option<(i64, i64)>,
    /// `cpu.weight`, 1 to 10000.
    pub cpu_weight: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// `pids.max`.
    pub pids_max: Option<i64>,
    /// `io.weight`, 1 to 10000.
    pub io_weight: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The controllers the limits need, in the order the kernel lists them.
    pub fn controllers(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.cpuset_cpus.is_some() || self.cpuset_mems.is_some() {
            out.push("cpuset");
        }
        if self.cpu_max.is_some() || self.cpu_weight.is_some() {
            out.push("cpu");
        }
        if self.io_weight.is_some() {
            out.push("io");
        }
        if self.memory_max.is_some() || self.swap_max.is_some() || self.memory_low.is_some() {
            out.push("memory");
        }
        if self.pids_max.is_some() {
            out.push("pids");
        }
        out
    }

    /// The files to write in the container's cgroup, and what.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut add = |file: &'static str, value: Option<String>| {
            if let Some(v) = value {
                out.push((file, v));
            }
        };
        add("cpuset.cpus", self.cpuset_cpus.clone());
        add("cpuset.mems", self.cpuset_mems.clone());
        add(
            "cpu.max",
            self.cpu_max.map(|(quota, period)| match quota {
                q if q > 0 => format!("{q} {period}"),
                _ => format!("max {period}"),
            }),
        );
        add("cpu.weight", self.cpu_weight.map(|w| w.to_string()));
        add("io.weight", self.io_weight.map(|w| format!("default {w}")));
        add("memory.max", self.memory_max.map(|b| b.to_string()));
        add("memory.swap.max", self.swap_max.map(|b| b.to_string()));
        add("memory.low", self.memory_low.map(|b| b.to_string()));
        add("pids.max", self.pids_max.map(|n| n.to_string()));
        out
    }
}

/// cgroup v1's CPU shares (2 to 262144, default 1024) as a cgroup v2 weight (1 to 10000,
/// default 100), mapped linearly as crun and runc do.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// A block IO weight (10 to 1000) as a cgroup v2 `io.weight` (1 to 10000), linearly.
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    let weight = u64::from(weight.clamp(10, 1000));
    1 + ((weight - 10) * 9999) / 990
}

/// The process's cgroup from the text of `/proc/self/cgroup`: on a unified (cgroup v2 only)
/// system that is a single line, `0::/path`. Hybrid systems list v1 hierarchies too.
pub fn unified_path(proc_self_cgroup: &str) -> Option<&str> {
    let mut lines = proc_self_cgroup.lines().filter(|l| !l.trim().is_empty());
    let path = lines.next()?.strip_prefix("0::")?;
    (lines.next().is_none() && path.starts_with('/')).then_some(path)
}

/// The name of the cgroup burrow makes for the limits of container `id`.
pub fn container_cgroup_name(id: &str) -> String {
    format!("burrow-{id}")
}

/// A cgroup v2 mount (`/sys/fs/cgroup`, or a fake tree in tests).
pub struct Hierarchy {
    root: PathBuf,
}

/// A cgroup the user may make containers' cgroups in, and the controllers it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    pub dir: PathBuf,
    pub controllers: Vec<String>,
}

impl Hierarchy {
    pub fn new(root: impl Into<PathBuf>) -> Hierarchy {
        Hierarchy { root: root.into() }
    }

    pub fn system() -> Hierarchy {
        Hierarchy::new("/sys/fs/cgroup")
    }

    /// The cgroup burrow made for container `id`, when the process whose
    /// `/proc/PID/cgroup` reads `proc_pid_cgroup` (the container's first process) is in it.
    /// A process `exec`'d into the container joins it, as with runc and crun, so that the
    /// container's limits hold for it too.
    pub fn container_cgroup(&self, proc_pid_cgroup: &str, id: &str) -> Option<PathBuf> {
        let path = unified_path(proc_pid_cgroup)?;
        let dir = self.root.join(path.trim_start_matches('/'));
        (dir.file_name()? == container_cgroup_name(id).as_str()).then_some(dir)
    }

    /// [`Hierarchy::delegated`] for this process and user.
    pub fn delegated_to_self(&self, needed: &[&str]) -> Result<Delegation, CgroupError> {
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        self.delegated(&text, nix::unistd::geteuid().as_raw(), needed)
    }

    /// Where the containers of a process in the cgroup `proc_self_cgroup` names, run by
    /// `uid`, get their cgroups: the nearest ancestor of the process's cgroup that `uid` owns
    /// and that offers the `needed` controllers. Not the process's own cgroup: a cgroup with
    /// processes cannot hand controllers to children. Not the hierarchy's root either: that
    /// is never delegated. Moving a process between two cgroups needs write access to their
    /// common ancestor, which is the cgroup found.
    pub fn delegated(
        &self,
        proc_self_cgroup: &str,
        uid: u32,
        needed: &[&str],
    ) -> Result<Delegation, CgroupError> {
        if !self.root.join("cgroup.controllers").exists() {
            return Err(CgroupError::NotUnified);
        }
        let own = unified_path(proc_self_cgroup).ok_or(CgroupError::NotUnified)?;
        let mut dir = self.root.join(own.trim_start_matches('/'));
        let mut nearest_owned: Option<(PathBuf, Vec<&str>)> = None;
        while let Some(parent) = dir.parent()
            && parent != self.root
            && parent.starts_with(&self.root)
        {
            dir = parent.to_path_buf();
            if std::fs::metadata(&dir).map(|m| m.uid()).ok() != Some(uid) {
                break;
            }
            let controllers = read_list(&dir.join("cgroup.controllers"));
            let missing: Vec<&str> = needed
                .iter()
                .copied()
                .filter(|n| !controllers.iter().any(|c| c == n))
                .collect();
            if missing.is_empty() {
                return Ok(Delegation { dir, controllers });
            }
            nearest_owned.get_or_insert((dir.clone(), missing));
        }
        Err(match nearest_owned {
            Some((dir, missing)) => CgroupError::MissingControllers {
                dir,
                missing: missing.join(", "),
            },
            None => CgroupError::NotDelegated(own.to_string()),
        })
    }
}

fn read_list(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Write a cgroup file, which must exist (a missing one is a controller or feature the
/// kernel lacks).
fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(io("write", path))
}

impl Delegation {
    /// Make the cgroup `name` with `limits`, handing it the controllers they need. A cgroup
    /// left behind by a burrow that was killed is reused.
    pub fn create(&self, name: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        let subtree = self.dir.join("cgroup.subtree_control");
        let enabled = read_list(&subtree);
        let enable: Vec<String> = limits
            .controllers()
            .into_iter()
            .filter(|c| !enabled.iter().any(|e| e == c))
            .map(|c| format!("+{c}"))
            .collect();
        if !enable.is_empty() {
            write(&subtree, &enable.join(" "))?;
        }
        let dir = self.dir.join(name);
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(io("create the cgroup", &dir)(e));
            }
            _ => {}
        }
        // Removed again if a limit cannot be written.
        let cgroup = Cgroup { dir };
        for (file, value) in limits.files() {
            let path = cgroup.dir.join(file);
            // Without swap accounting there is no swap to limit.
            if file == "memory.swap.max" && !path.exists() {
                log::debug!("no {}: swap is not limited", path.display());
                continue;
            }
            write(&path, &value)?;
        }
        Ok(cgroup)
    }
}

/// Move process `pid` (as this process sees it) into the cgroup `dir`; its children follow.
pub fn add_process(dir: &Path, pid: i32) -> Result<(), CgroupError> {
    ProcsFile::open(dir)?.add(pid)
}

/// The `cgroup.procs` file of a cgroup, opened to move processes in later. The kernel checks
/// the rights of whoever opened it, so it still works once this process has joined a
/// container's namespaces (where the cgroup may not even be visible).
#[derive(Debug)]
pub struct ProcsFile {
    file: std::fs::File,
    path: PathBuf,
}

impl ProcsFile {
    pub fn open(dir: &Path) -> Result<ProcsFile, CgroupError> {
        let path = dir.join("cgroup.procs");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io("open", &path))?;
        Ok(ProcsFile { file, path })
    }

    /// Move process `pid` (as this process sees it) in; its children follow.
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        use std::io::Write;
        (&self.file)
            .write_all(pid.to_string().as_bytes())
            .map_err(io("move a process into", &self.path))
    }
}

/// A container's cgroup, removed when dropped: drop it once the container's processes are
/// gone.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The kernel counts exited processes until they are reaped; that takes a moment.
        for _ in 0..100 {
            match std::fs::remove_dir(&self.dir) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    log::warn!("cannot remove cgroup {}: {e}", self.dir.display());
                    return;
                }
                _ => return,
            }
        }
        log::warn!(
            "cannot remove cgroup {}: processes are still in it",
            self.dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_path_only_on_cgroup_v2_alone() {
        assert_eq!(
            unified_path("0::/user.slice/user-1000.slice/session-2.scope\n"),
            Some("/user.slice/user-1000.slice/session-2.scope")
        );
        assert_eq!(unified_path("0::/\n"), Some("/"));
        let hybrid = "12:pids:/\n1:name=systemd:/user.slice\n0::/user.slice\n";
        assert_eq!(unified_path(hybrid), None);
        assert_eq!(unified_path("1:name=systemd:/\n"), None);
        assert_eq!(unified_path(""), None);
    }

    #[test]
    fn a_container_cgroup_is_the_one_burrow_made_for_it() {
        let h = Hierarchy::new("/sys/fs/cgroup");
        let id = "0123abcd";
        assert_eq!(
            h.container_cgroup("0::/user.slice/u/burrow-0123abcd\n", id),
            Some(PathBuf::from("/sys/fs/cgroup/user.slice/u/burrow-0123abcd"))
        );
        // No limits: the first process stayed in burrow's own cgroup.
        assert_eq!(
            h.container_cgroup("0::/user.slice/u/session.scope\n", id),
            None
        );
        assert_eq!(
            h.container_cgroup("0::/user.slice/u/burrow-ffff\n", id),
            None
        );
        // cgroups v1 / hybrid: no limits were applied.
        let hybrid = "12:pids:/user.slice\n0::/user.slice/u/burrow-0123abcd\n";
        assert_eq!(h.container_cgroup(hybrid, id), None);
    }

    #[test]
    fn procs_file_opened_before_writes_the_pid_later() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), "").unwrap();
        let procs = ProcsFile::open(dir.path()).unwrap();
        procs.add(4242).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cgroup.procs")).unwrap(),
            "4242"
        );
        let missing = ProcsFile::open(&dir.path().join("nosuch")).unwrap_err();
        assert!(
            missing.to_string().contains("nosuch/cgroup.procs"),
            "{missing}"
        );
    }

    #[test]
    fn shares_map_to_weights_as_crun() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }

    #[test]
    fn files_and_controllers_of_limits() {
        let limits = Limits {
            memory_max: Some(64 << 20),
            swap_max: Some(0),
            cpu_max: Some((50_000, 100_000)),
            pids_max: Some(50),
            ..Limits::default()
        };
        assert_eq!(limits.controllers(), ["cpu", "memory", "pids"]);
        let files = limits.files();
        assert!(files.contains(&("memory.max", "67108864".into())));
        assert!(files.contains(&("memory.swap.max", "0".into())));
        assert!(files.contains(&("cpu.max", "50000 100000".into())));
        assert!(files.contains(&("pids.max", "50".into())));
        let unlimited_quota = Limits {
            cpu_max: Some((-1, 20_000)),
            io_weight: Some(7),
            ..Limits::default()
        };
        assert_eq!(
            unlimited_quota.files(),
            [
                ("cpu.max", "max 20000".to_string()),
                ("io.weight", "default 7".to_string())
            ]
        );
        assert!(Limits::default().is_empty());
        assert!(Limits::default().controllers().is_empty());
    }

    /// A fake cgroup v2 tree: root/a/b/proc, with `controllers` offered at a and b.
    fn tree(controllers: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let leaf = root.path().join("a/b/proc");
        std::fs::create_dir_all(&leaf).unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids io").unwrap();
        for dir in ["a", "a/b"] {
            std::fs::write(
                root.path().join(dir).join("cgroup.controllers"),
                controllers,
            )
            .unwrap();
            std::fs::write(root.path().join(dir).join("cgroup.subtree_control"), "").unwrap();
        }
        root
    }

    fn owner(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().uid()
    }

    #[test]
    fn delegation_is_the_owned_parent_with_the_controllers() {
        let root = tree("memory pids");
        let h = Hierarchy::new(root.path());
        let uid = owner(root.path());
        let found = h.delegated("0::/a/b/proc\n", uid, &["memory"]).unwrap();
        assert_eq!(found.dir, root.path().join("a/b"));
        assert_eq!(found.controllers, ["memory", "pids"]);

        // Another user owns nothing here.
        match h.delegated("0::/a/b/proc\n", uid + 1, &["memory"]) {
            Err(CgroupError::NotDelegated(p)) => assert_eq!(p, "/a/b/proc"),
            other => panic!("{other:?}"),
        }
        match h.delegated("0::/a/b/proc\n", uid, &["memory", "cpu"]) {
            Err(CgroupError::MissingControllers { dir, missing }) => {
                assert_eq!(dir, root.path().join("a/b"));
                assert_eq!(missing, "cpu");
            }
            other => panic!("{other:?}"),
        }
        // Hybrid: /proc/self/cgroup lists v1 hierarchies too.
        assert!(matches!(
            h.delegated("4:pids:/\n0::/a/b/proc\n", uid, &[]),
            Err(CgroupError::NotUnified)
        ));
    }

    #[test]
    fn delegation_walks_up_to_an_owned_ancestor_with_the_controllers() {
        let root = tree("memory pids");
        std::fs::write(root.path().join("a/b/cgroup.controllers"), "pids").unwrap();
        let h = Hierarchy::new(root.path());
        let uid = owner(root.path());
        let found = h.delegated("0::/a/b/proc\n", uid, &["memory"]).unwrap();
        assert_eq!(found.dir, root.path().join("a"));
    }

    #[test]
    fn no_cgroup_v2_without_its_root_controllers_file() {
        let root = tree("memory");
        std::fs::remove_file(root.path().join("cgroup.controllers")).unwrap();
        let h = Hierarchy::new(root.path());
        let uid = owner(root.path());
        assert!(matches!(
            h.delegated("0::/a/b/proc\n", uid, &[]),
            Err(CgroupError::NotUnified)
        ));
        // The process in the root cgroup has no parent to use.
        let root = tree("memory");
        let h = Hierarchy::new(root.path());
        assert!(matches!(
            h.delegated("0::/\n", uid, &[]),
            Err(CgroupError::NotDelegated(_))
        ));
    }

    #[test]
    fn create_enables_controllers_writes_limits_and_drop_removes() {
        let root = tree("memory pids");
        let h = Hierarchy::new(root.path());
        let found = h
            .delegated("0::/a/b/proc\n", owner(root.path()), &["memory", "pids"])
            .unwrap();
        std::fs::write(found.dir.join("cgroup.subtree_control"), "pids").unwrap();
        // The kernel makes a cgroup's files; here they are made first, and the directory is
        // reused as one a killed burrow left behind.
        let dir = root.path().join("a/b/burrow-x");
        std::fs::create_dir(&dir).unwrap();
        for f in ["memory.max", "pids.max", "cgroup.procs"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let limits = Limits {
            memory_max: Some(64 << 20),
            swap_max: Some(0),
            pids_max: Some(50),
            ..Limits::default()
        };
        let cgroup = found.create("burrow-x", &limits).unwrap();
        // No swap accounting: no memory.swap.max, and nothing made in its place.
        assert!(!dir.join("memory.swap.max").exists());
        assert_eq!(cgroup.dir(), dir);
        // A fake file takes the last write; the kernel's adds to what is enabled.
        assert_eq!(
            std::fs::read_to_string(found.dir.join("cgroup.subtree_control")).unwrap(),
            "+memory"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap(),
            "67108864"
        );
        assert_eq!(std::fs::read_to_string(dir.join("pids.max")).unwrap(), "50");
        // A limit whose file the kernel lacks is an error.
        let io = Limits {
            io_weight: Some(100),
            ..Limits::default()
        };
        std::fs::write(found.dir.join("cgroup.subtree_control"), "io").unwrap();
        let err = found.create("burrow-x", &io).unwrap_err().to_string();
        assert!(err.contains("io.weight"), "{err}");
        add_process(&dir, 42).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("cgroup.procs")).unwrap(),
            "42"
        );
        // A real cgroup directory has only kernel files, which rmdir ignores.
        for f in ["memory.max", "pids.max", "cgroup.procs"] {
            std::fs::remove_file(dir.join(f)).unwrap();
        }
        drop(cgroup);
        assert!(!dir.exists());
    }
}
