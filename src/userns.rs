//! burrow's user namespace: who the user is, which subordinate ids they own, and entering a
//! namespace in which they are root.
//!
//! Container uid 0 is the user; container uids 1..=N are the user's subordinate ids, in the
//! order `/etc/subuid` lists them. The mapping is computed the same way on every invocation, so
//! files unpacked by one invocation keep their owners in the next.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, User, fork, getgid, getpid, getuid};

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("cannot read {path}: {source}")]
    ReadIdFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot create a user namespace: {0} (unprivileged user namespaces may be disabled: \
         check 'sysctl kernel.unprivileged_userns_clone' and 'user.max_user_namespaces')"
    )]
    Unshare(nix::Error),
    #[error("{tool} failed ({status}): {stderr} (check the lines for your user in {file})")]
    MapHelper {
        tool: &'static str,
        status: String,
        stderr: String,
        file: &'static str,
    },
    #[error("cannot run {tool}: {source} (install the 'uidmap' package)")]
    SpawnHelper {
        tool: &'static str,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    WriteMap {
        path: &'static str,
        source: std::io::Error,
    },
    #[error(
        "internal error: cannot enter a user namespace with {0} threads running (burrow must be \
         single-threaded when it forks)"
    )]
    Threaded(usize),
    #[error("{0}")]
    Sys(#[from] nix::Error),
}

/// A contiguous range of subordinate ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub start: u32,
    pub count: u32,
}

/// One line of `/proc/PID/uid_map`: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapEntry {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingKind {
    /// burrow runs as real root: every id maps to itself.
    Identity,
    /// The user and their subordinate ids, written by newuidmap/newgidmap.
    Subordinate,
    /// Only the user, as container root; every other id is unmapped.
    SingleId,
}

#[derive(Debug, Clone)]
pub struct IdMapping {
    pub kind: MappingKind,
    pub uid_map: Vec<MapEntry>,
    pub gid_map: Vec<MapEntry>,
    /// Why a single-id map is used, for the one warning the user sees.
    pub fallback_reason: Option<String>,
}

impl IdMapping {
    /// Whether `setgroups(2)` is allowed inside (it is denied with a single-id map).
    pub fn can_setgroups(&self) -> bool {
        self.kind != MappingKind::SingleId
    }

    /// The host uid that container uid `inside` maps to.
    pub fn host_uid(&self, inside: u32) -> Option<u32> {
        translate(&self.uid_map, inside)
    }

    pub fn host_gid(&self, inside: u32) -> Option<u32> {
        translate(&self.gid_map, inside)
    }
}

fn translate(map: &[MapEntry], inside: u32) -> Option<u32> {
    map.iter()
        .find(|e| inside >= e.inside && inside - e.inside < e.count)
        .map(|e| e.outside + (inside - e.inside))
}

/// Ranges for `user` (by name or numeric uid) in the text of `/etc/subuid` or `/etc/subgid`.
pub fn parse_subid_ranges(contents: &str, user: &str, id: u32) -> Vec<IdRange> {
    let id = id.to_string();
    contents
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let mut parts = line.split(':');
            let owner = parts.next()?;
            let start = parts.next()?.trim().parse().ok()?;
            let count: u32 = parts.next()?.trim().parse().ok()?;
            (count > 0 && (owner == user || owner == id)).then_some(IdRange { start, count })
        })
        .collect()
}

/// Container 0 → `id`, then 1.. → each range in turn.
pub fn subordinate_map(id: u32, ranges: &[IdRange]) -> Vec<MapEntry> {
    let mut map = vec![MapEntry {
        inside: 0,
        outside: id,
        count: 1,
    }];
    let mut next = 1u32;
    for r in ranges {
        map.push(MapEntry {
            inside: next,
            outside: r.start,
            count: r.count,
        });
        next = next.saturating_add(r.count);
    }
    map
}

fn read_ranges(path: &Path, user: &str, id: u32) -> Result<Vec<IdRange>, UsernsError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(parse_subid_ranges(&text, user, id)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(UsernsError::ReadIdFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn find_helper(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The mapping burrow uses for the current user.
pub fn current_mapping() -> Result<IdMapping, UsernsError> {
    let uid = getuid();
    let gid = getgid();
    if uid.is_root() {
        // Root needs no subordinate ids: /etc/subuid is not even read.
        return Ok(choose_mapping(&RunningUser::root(), &[], &[], true));
    }
    let name = User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    let subuids = read_ranges(Path::new("/etc/subuid"), &name, uid.as_raw())?;
    let subgids = read_ranges(Path::new("/etc/subgid"), &name, uid.as_raw())?;
    let helpers = find_helper("newuidmap").is_some() && find_helper("newgidmap").is_some();
    let who = RunningUser {
        uid: uid.as_raw(),
        gid: gid.as_raw(),
        name,
    };
    Ok(choose_mapping(&who, &subuids, &subgids, helpers))
}

/// The user burrow runs as.
#[derive(Debug, Clone)]
pub struct RunningUser {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
}

impl RunningUser {
    fn root() -> RunningUser {
        RunningUser {
            uid: 0,
            gid: 0,
            name: "root".into(),
        }
    }
}

/// Which mapping `who` gets: identity for root (every id is root's to map, as with rootful
/// podman), else the user and their subordinate ids when they have both kinds and the
/// newuidmap/newgidmap helpers exist, else a single-id map with the reason why.
pub fn choose_mapping(
    who: &RunningUser,
    subuids: &[IdRange],
    subgids: &[IdRange],
    helpers: bool,
) -> IdMapping {
    if who.uid == 0 {
        let all = vec![MapEntry {
            inside: 0,
            outside: 0,
            count: u32::MAX,
        }];
        return IdMapping {
            kind: MappingKind::Identity,
            uid_map: all.clone(),
            gid_map: all,
            fallback_reason: None,
        };
    }
    let name = &who.name;
    let single = |reason: String| IdMapping {
        kind: MappingKind::SingleId,
        uid_map: subordinate_map(who.uid, &[]),
        gid_map: subordinate_map(who.gid, &[]),
        fallback_reason: Some(reason),
    };
    if subuids.is_empty() {
        return single(format!(
            "no subordinate uids for user {name} in /etc/subuid: add a line like \
             '{name}:100000:65536' to /etc/subuid and /etc/subgid; running with a single-id map \
             (only root exists in containers)"
        ));
    }
    if subgids.is_empty() {
        return single(format!(
            "no subordinate gids for user {name} in /etc/subgid: add a line like \
             '{name}:100000:65536'; running with a single-id map (only root exists in containers)"
        ));
    }
    if !helpers {
        return single(
            "newuidmap/newgidmap not found: install the 'uidmap' package; running with a \
             single-id map (only root exists in containers)"
                .to_string(),
        );
    }
    IdMapping {
        kind: MappingKind::Subordinate,
        uid_map: subordinate_map(who.uid, subuids),
        gid_map: subordinate_map(who.gid, subgids),
        fallback_reason: None,
    }
}

pub(crate) fn thread_count() -> usize {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(1)
}

fn map_text(map: &[MapEntry]) -> String {
    map.iter()
        .map(|e| format!("{} {} {}\n", e.inside, e.outside, e.count))
        .collect()
}

fn write_proc_self(path: &'static str, text: &str) -> Result<(), UsernsError> {
    fs::write(path, text).map_err(|source| UsernsError::WriteMap { path, source })
}

/// Move this process into a new user namespace in which it is root, mapped as `mapping` says.
///
/// The process must be single-threaded. Prints the single-id-map warning, if any, once.
pub fn enter(mapping: &IdMapping) -> Result<(), UsernsError> {
    let threads = thread_count();
    if threads > 1 {
        return Err(UsernsError::Threaded(threads));
    }
    if let Some(reason) = &mapping.fallback_reason {
        log::warn!("{reason}");
        if log::max_level() < log::LevelFilter::Warn {
            errln!("burrow: warning: {reason}");
        }
    }
    match mapping.kind {
        MappingKind::SingleId => {
            // A process may map its own ids into its new namespace, nothing more.
            unshare(CloneFlags::CLONE_NEWUSER).map_err(UsernsError::Unshare)?;
            write_proc_self("/proc/self/setgroups", "deny")?;
            write_proc_self("/proc/self/uid_map", &map_text(&mapping.uid_map))?;
            write_proc_self("/proc/self/gid_map", &map_text(&mapping.gid_map))?;
        }
        MappingKind::Identity | MappingKind::Subordinate => enter_with_helpers(mapping)?,
    }
    Ok(())
}

/// Mapping other ids takes privilege in the parent namespace, so a child that stays outside
/// writes our maps (root directly, anyone else through the setuid newuidmap/newgidmap) once we
/// have unshared, and reports back through a pipe.
fn enter_with_helpers(mapping: &IdMapping) -> Result<(), UsernsError> {
    let (go_read, go_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let parent = getpid();
    // SAFETY: the process is single-threaded (checked by `enter`), so the child may run
    // arbitrary code, including spawning the helpers.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(go_write);
            drop(report_read);
            let code = map_from_child(parent, mapping, go_read, report_write);
            // SAFETY: _exit skips the atexit handlers and destructors of the parent's state.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(go_read);
            drop(report_write);
            let unshared = unshare(CloneFlags::CLONE_NEWUSER);
            let mut go = fs::File::from(go_write);
            // Tell the helper child to map us, or (on failure) to give up.
            let _ = go.write_all(if unshared.is_ok() { b"1" } else { b"0" });
            drop(go);
            let mut report = String::new();
            let _ = fs::File::from(report_read).read_to_string(&mut report);
            let status = waitpid(child, None)?;
            unshared.map_err(UsernsError::Unshare)?;
            if !report.is_empty() {
                let report: HelperReport = serde_json::from_str(&report).unwrap_or(HelperReport {
                    tool: "newuidmap".into(),
                    status: "unknown".into(),
                    stderr: report,
                });
                let (tool, file) = match report.tool.as_str() {
                    "newgidmap" => ("newgidmap", "/etc/subgid"),
                    "uid_map" => ("writing uid_map", "/proc/self/uid_map"),
                    "gid_map" => ("writing gid_map", "/proc/self/gid_map"),
                    _ => ("newuidmap", "/etc/subuid"),
                };
                return Err(UsernsError::MapHelper {
                    tool,
                    status: report.status,
                    stderr: report.stderr,
                    file,
                });
            }
            if !matches!(status, WaitStatus::Exited(_, 0)) {
                return Err(UsernsError::MapHelper {
                    tool: "newuidmap",
                    status: format!("{status:?}"),
                    stderr: String::new(),
                    file: "/etc/subuid",
                });
            }
            Ok(())
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct HelperReport {
    tool: String,
    status: String,
    stderr: String,
}

fn map_from_child(parent: Pid, mapping: &IdMapping, go: OwnedFd, report: OwnedFd) -> i32 {
    let mut buf = [0u8; 1];
    let mut go = fs::File::from(go);
    if go.read_exact(&mut buf).is_err() || buf[0] != b'1' {
        return 1;
    }
    let failure = if mapping.kind == MappingKind::Identity {
        write_maps_directly(parent, mapping)
    } else {
        run_map_helpers(parent, mapping)
    };
    match failure {
        None => 0,
        Some(failure) => {
            let text = serde_json::to_string(&failure).unwrap_or_default();
            let _ = fs::File::from(report).write_all(text.as_bytes());
            1
        }
    }
}

fn write_maps_directly(parent: Pid, mapping: &IdMapping) -> Option<HelperReport> {
    for (file, map) in [("uid_map", &mapping.uid_map), ("gid_map", &mapping.gid_map)] {
        if let Err(e) = fs::write(format!("/proc/{parent}/{file}"), map_text(map)) {
            return Some(HelperReport {
                tool: file.into(),
                status: "write failed".into(),
                stderr: e.to_string(),
            });
        }
    }
    None
}

/// newuidmap and newgidmap run side by side: each is a setuid exec costing milliseconds.
fn run_map_helpers(parent: Pid, mapping: &IdMapping) -> Option<HelperReport> {
    let mut running = Vec::new();
    for (tool, map) in [
        ("newuidmap", &mapping.uid_map),
        ("newgidmap", &mapping.gid_map),
    ] {
        let mut cmd = Command::new(find_helper(tool).unwrap_or_else(|| PathBuf::from(tool)));
        cmd.arg(parent.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for e in map {
            cmd.args([
                e.inside.to_string(),
                e.outside.to_string(),
                e.count.to_string(),
            ]);
        }
        running.push((tool, cmd.spawn()));
    }
    let mut failure = None;
    for (tool, child) in running {
        let result = match child.and_then(|c| c.wait_with_output()) {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(HelperReport {
                tool: tool.into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }),
            Err(e) => Some(HelperReport {
                tool: tool.into(),
                status: "not run".into(),
                stderr: e.to_string(),
            }),
        };
        failure = failure.or(result);
    }
    failure
}

/// Enter the user namespace for the current user (once per process).
pub fn enter_current() -> Result<IdMapping, UsernsError> {
    let mapping = current_mapping()?;
    enter(&mapping)?;
    Ok(mapping)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBUID: &str = "\
# comment
alice:100000:65536
1001:300000:1000
bob:200000:65536
alice:500000:10
broken line
carol:1:0
";

    #[test]
    fn ranges_by_name_and_uid() {
        assert_eq!(
            parse_subid_ranges(SUBUID, "alice", 1000),
            vec![
                IdRange {
                    start: 100000,
                    count: 65536
                },
                IdRange {
                    start: 500000,
                    count: 10
                }
            ]
        );
        assert_eq!(
            parse_subid_ranges(SUBUID, "dave", 1001),
            vec![IdRange {
                start: 300000,
                count: 1000
            }]
        );
        assert!(parse_subid_ranges(SUBUID, "carol", 1002).is_empty());
        assert!(parse_subid_ranges(SUBUID, "nobody", 9).is_empty());
    }

    #[test]
    fn map_puts_user_at_zero_then_ranges_in_order() {
        let ranges = parse_subid_ranges(SUBUID, "alice", 1000);
        let map = subordinate_map(1000, &ranges);
        assert_eq!(
            map,
            vec![
                MapEntry {
                    inside: 0,
                    outside: 1000,
                    count: 1
                },
                MapEntry {
                    inside: 1,
                    outside: 100000,
                    count: 65536
                },
                MapEntry {
                    inside: 65537,
                    outside: 500000,
                    count: 10
                },
            ]
        );
        let m = IdMapping {
            kind: MappingKind::Subordinate,
            uid_map: map.clone(),
            gid_map: map,
            fallback_reason: None,
        };
        assert_eq!(m.host_uid(0), Some(1000));
        assert_eq!(m.host_uid(1000), Some(100999));
        assert_eq!(m.host_uid(65537), Some(500000));
        assert_eq!(m.host_uid(65547), None);
    }

    #[test]
    fn map_text_is_what_the_kernel_reads() {
        let map = subordinate_map(
            1000,
            &[IdRange {
                start: 100000,
                count: 65536,
            }],
        );
        assert_eq!(map_text(&map), "0 1000 1\n1 100000 65536\n");
    }

    #[test]
    fn root_gets_identity_mapping_without_subordinate_ids() {
        let m = choose_mapping(&RunningUser::root(), &[], &[], false);
        assert_eq!(m.kind, MappingKind::Identity);
        assert_eq!(map_text(&m.uid_map), "0 0 4294967295\n");
        assert_eq!(map_text(&m.gid_map), "0 0 4294967295\n");
        assert!(m.fallback_reason.is_none());
        assert!(m.can_setgroups());
        assert_eq!(m.host_uid(1000), Some(1000));
    }

    #[test]
    fn user_mapping_needs_both_ranges_and_the_helpers() {
        let alice = RunningUser {
            uid: 1000,
            gid: 1000,
            name: "alice".into(),
        };
        let ranges = [IdRange {
            start: 100000,
            count: 65536,
        }];
        let m = choose_mapping(&alice, &ranges, &ranges, true);
        assert_eq!(m.kind, MappingKind::Subordinate);
        assert_eq!(map_text(&m.uid_map), "0 1000 1\n1 100000 65536\n");
        for (uids, gids, helpers, why) in [
            (&[][..], &ranges[..], true, "/etc/subuid"),
            (&ranges[..], &[][..], true, "/etc/subgid"),
            (&ranges[..], &ranges[..], false, "uidmap"),
        ] {
            let m = choose_mapping(&alice, uids, gids, helpers);
            assert_eq!(m.kind, MappingKind::SingleId);
            assert_eq!(map_text(&m.uid_map), "0 1000 1\n");
            assert!(!m.can_setgroups());
            let reason = m.fallback_reason.unwrap();
            assert!(reason.contains(why), "{reason}");
        }
    }
}
