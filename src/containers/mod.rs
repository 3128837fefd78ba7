//! Container records: one directory per container under `ROOT/containers/<id>`, its metadata
//! written atomically, names reserved atomically, and a lock held while it runs.

pub mod logs;
mod names;

use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use crate::storage::lock::{FileLock, LockKind};

pub use names::generate_name;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Lock(#[from] crate::storage::StorageError),
    #[error(
        "the container name \"/{0}\" is already in use by container \"{1}\": remove (or rename) \
         that container to be able to reuse that name"
    )]
    NameInUse(String, String),
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("multiple IDs found with provided prefix: {0}: use a longer id")]
    Ambiguous(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt container metadata: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ContainerError + '_ {
    move |source| ContainerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    /// Between two runs of a restart policy: the command exited, its monitor waits out the
    /// back-off before running it again.
    Restarting,
    Exited,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
        }
    }

    /// Its processes exist: running or paused.
    pub fn is_running(&self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }

    /// A burrow process still owns it: running, paused, or restarting.
    pub fn is_active(&self) -> bool {
        self.is_running() || *self == Status::Restarting
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    pub image_id: String,
    pub command: Vec<String>,
    pub created: String,
    pub auto_remove: bool,
    pub status: Status,
    #[serde(default)]
    pub pid: i32,
    #[serde(default)]
    pub exit_code: i32,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// The process as merged at create time (image config + flags + the caller's environment).
    #[serde(default)]
    pub process: Option<crate::runtime::ProcessConfig>,
    #[serde(default)]
    pub hostname: String,
    /// The `create`/`run` flags, so `start` rebuilds the container as it was created.
    #[serde(default)]
    pub create_args: serde_json::Value,
    #[serde(default)]
    pub restart_count: u32,
    /// The user stopped or killed it: restart policies do not apply.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// pid of the monitor that watches a detached container.
    #[serde(default)]
    pub monitor_pid: i32,
    /// Volumes, bind mounts and tmpfs mounts, resolved at create time.
    #[serde(default)]
    pub mounts: Vec<crate::runtime::ExtraMount>,
    /// `--log-driver` and `--log-opt` (records from before them: json-file).
    #[serde(default)]
    pub log_config: logs::LogConfig,
}

pub struct ContainerStore {
    dir: PathBuf,
}

/// Held while a container runs (and by its monitor between the runs of a restart policy);
/// `ps` treats a "running", "paused" or "restarting" record whose lock is free as exited (its
/// burrow was killed).
pub struct RunLock {
    _file: fs::File,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn flock(file: &fs::File, op: libc::c_int) -> bool {
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), op) == 0 }
}

impl ContainerStore {
    pub fn open(storage_root: &Path) -> Result<ContainerStore, ContainerError> {
        let dir = storage_root.join("containers");
        fs::create_dir_all(dir.join("names")).map_err(io_err(&dir))?;
        Ok(ContainerStore { dir })
    }

    /// The storage root the store lives in.
    pub fn storage_root(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn name_link(&self, name: &str) -> PathBuf {
        self.dir.join("names").join(name)
    }

    /// Serialises changes to the name links. Without it, a create that finds a name whose
    /// holder has no config.json yet cannot tell a crashed create from one still in progress,
    /// and two concurrent creates would both take the name.
    fn lock_names(&self) -> Result<FileLock, ContainerError> {
        Ok(FileLock::acquire(
            &self.dir.join("names.lock"),
            LockKind::Exclusive,
        )?)
    }

    /// Reserve a name and make the container's directory. A name held by a container whose
    /// directory is gone (a crash between the two steps) is taken over.
    pub fn create(&self, record: &ContainerRecord) -> Result<PathBuf, ContainerError> {
        if !valid_name(&record.name) {
            return Err(ContainerError::BadName(record.name.clone()));
        }
        let link = self.name_link(&record.name);
        let names_lock = self.lock_names()?;
        loop {
            match std::os::unix::fs::symlink(&record.id, &link) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = fs::read_link(&link).map_err(io_err(&link))?;
                    let holder = holder.to_string_lossy().into_owned();
                    if self.dir_of(&holder).join("config.json").exists() {
                        return Err(ContainerError::NameInUse(record.name.clone(), holder));
                    }
                    let _ = fs::remove_file(&link);
                }
                Err(e) => return Err(io_err(&link)(e)),
            }
        }
        let dir = self.dir_of(&record.id);
        for sub in ["", "userdata"] {
            fs::create_dir_all(dir.join(sub)).map_err(io_err(&dir))?;
        }
        self.save(record)?;
        drop(names_lock);
        Ok(dir)
    }

    /// Write the record whole: a temporary file renamed over config.json, so a reader sees
    /// the old record or the new one, never a mix. Only [`ContainerStore::create`] writes a
    /// record without holding its metadata lock; every later change goes through
    /// [`ContainerStore::update`].
    fn save(&self, record: &ContainerRecord) -> Result<(), ContainerError> {
        let dir = self.dir_of(&record.id);
        // Unique per writer: two threads of one process must not share a temporary file.
        let tmp = dir.join(format!(
            ".config.json.{}.{:x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let path = dir.join("config.json");
        let bytes =
            serde_json::to_vec_pretty(record).map_err(|source| ContainerError::Corrupt {
                path: path.clone(),
                source,
            })?;
        let written = fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes))
            .and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(match e.kind() {
                // The container was removed meanwhile: never bring its record back.
                std::io::ErrorKind::NotFound if !dir.exists() => {
                    ContainerError::NotFound(record.id.clone())
                }
                _ => io_err(&path)(e),
            });
        }
        Ok(())
    }

    fn meta_lock_path(&self, id: &str) -> PathBuf {
        self.dir_of(id).join("config.lock")
    }

    /// Serialises the changes of one container's record (readers never take it).
    fn lock_meta(&self, id: &str) -> Result<FileLock, ContainerError> {
        FileLock::acquire(&self.meta_lock_path(id), LockKind::Exclusive).map_err(|e| {
            if self.dir_of(id).exists() {
                e.into()
            } else {
                ContainerError::NotFound(id.to_string())
            }
        })
    }

    /// Change a container's record: reload it, apply `change`, and save it, all under the
    /// container's metadata lock, so that changes made at the same time by different
    /// processes (a monitor recording the exit, `kill` marking it stopped by the user,
    /// `rename`) all land. Returns the record as saved.
    pub fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord, ContainerError> {
        let _lock = self.lock_meta(id)?;
        let mut record = self.load(id)?;
        change(&mut record);
        self.save(&record)?;
        Ok(record)
    }

    fn read(&self, id: &str) -> Result<ContainerRecord, ContainerError> {
        let path = self.dir_of(id).join("config.json");
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ContainerError::NotFound(id.to_string()),
            _ => io_err(&path)(e),
        })?;
        serde_json::from_slice(&bytes).map_err(|source| ContainerError::Corrupt { path, source })
    }

    /// A record says running, paused or restarting, but no burrow process holds its run
    /// lock: its burrow was killed. Record what happened: a running container died with its
    /// burrow (parent-death signal); a restarting one had already exited with its code.
    /// Returns whether the record changed.
    fn settle_dead_owner(&self, record: &mut ContainerRecord) -> bool {
        if !record.status.is_active() || self.is_locked(&record.id) {
            return false;
        }
        if record.status.is_running() {
            record.exit_code = record.exit_code.max(137);
        }
        let started = record.started_at.as_deref().unwrap_or("");
        if record.finished_at.as_deref().is_none_or(|f| f < started) {
            record.finished_at = Some(now_rfc3339());
        }
        record.status = Status::Exited;
        true
    }

    /// The record, as it stands: a record whose burrow was killed reads as exited.
    pub fn load(&self, id: &str) -> Result<ContainerRecord, ContainerError> {
        let mut record = self.read(id)?;
        if self.settle_dead_owner(&mut record) {
            // Saved, so the time of the end stays what this reader saw. Only if nobody holds
            // the metadata lock: a reader never waits (an update in progress settles it).
            if let Ok(Some(_lock)) =
                FileLock::try_acquire(&self.meta_lock_path(id), LockKind::Exclusive)
                && let Ok(mut fresh) = self.read(id)
                && self.settle_dead_owner(&mut fresh)
            {
                fresh.finished_at.clone_from(&record.finished_at);
                if let Err(e) = self.save(&fresh) {
                    log::debug!("{e}");
                }
            }
        }
        Ok(record)
    }

    /// The fifo on which a detached container's monitor takes stop requests.
    pub fn stop_fifo(&self, id: &str) -> PathBuf {
        self.dir_of(id).join("stop.fifo")
    }

    /// `stop`, `kill` and `rm -f`: mark the container stopped by the user, so no restart
    /// policy runs it again, and tell its monitor, if one lives. `seen_pid` is the pid of the
    /// run the caller will signal itself, 0 when it saw none (between two runs): the monitor
    /// kills a run the caller did not see. The message, not the record, is what the monitor
    /// acts on: the monitor's own saves may overwrite the record's flag, and a monitor waiting
    /// out a restart back-off wakes on it at once.
    pub fn request_stop(
        &self,
        record: &mut ContainerRecord,
        seen_pid: i32,
    ) -> Result<(), ContainerError> {
        self.update(&record.id, |r| r.stopped_by_user = true)?;
        record.stopped_by_user = true;
        let path = self.stop_fifo(&record.id);
        // Without a reader (no monitor) the open fails with ENXIO: nobody to tell.
        if let Ok(fd) = nix::fcntl::open(
            &path,
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            // One write of less than PIPE_BUF bytes: never mixed with another's. A full fifo
            // (EAGAIN) already holds requests.
            let _ = nix::unistd::write(&fd, format!("{seen_pid}\n").as_bytes());
        }
        Ok(())
    }

    /// Take the run lock for the container's lifetime.
    pub fn lock_running(&self, id: &str) -> Result<RunLock, ContainerError> {
        let path = self.dir_of(id).join("lock");
        let file = fs::File::create(&path).map_err(io_err(&path))?;
        flock(&file, libc::LOCK_EX);
        Ok(RunLock { _file: file })
    }

    /// Try to take the run lock; `None` when a burrow process already watches the container.
    pub fn try_lock_running(&self, id: &str) -> Result<Option<RunLock>, ContainerError> {
        let path = self.dir_of(id).join("lock");
        let file = fs::File::create(&path).map_err(io_err(&path))?;
        Ok(flock(&file, libc::LOCK_EX | libc::LOCK_NB).then_some(RunLock { _file: file }))
    }

    /// Block until no burrow process watches the container any more.
    pub fn wait_unlocked(&self, id: &str) {
        if let Ok(file) = fs::File::open(self.dir_of(id).join("lock")) {
            flock(&file, libc::LOCK_SH);
        }
    }

    /// Wait until no burrow process watches the container any more, but no longer than
    /// `limit`, and no longer once `stuck` says the watcher cannot make progress. True when
    /// the container is free.
    pub fn wait_unlocked_for(
        &self,
        id: &str,
        limit: std::time::Duration,
        mut stuck: impl FnMut() -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if !self.is_locked(id) {
                return true;
            }
            if Instant::now() >= deadline || stuck() {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Rename a container (the new name must be free).
    pub fn rename(
        &self,
        record: &mut ContainerRecord,
        new_name: &str,
    ) -> Result<(), ContainerError> {
        if !valid_name(new_name) {
            return Err(ContainerError::BadName(new_name.to_string()));
        }
        let link = self.name_link(new_name);
        let _names_lock = self.lock_names()?;
        std::os::unix::fs::symlink(&record.id, &link).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => ContainerError::NameInUse(
                new_name.to_string(),
                fs::read_link(&link)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            _ => io_err(&link)(e),
        })?;
        let mut old = String::new();
        let updated = self.update(&record.id, |r| {
            old = std::mem::replace(&mut r.name, new_name.to_string());
        });
        match updated {
            Ok(updated) => {
                *record = updated;
                if fs::read_link(self.name_link(&old))
                    .is_ok_and(|t| t.as_os_str() == record.id.as_str())
                {
                    let _ = fs::remove_file(self.name_link(&old));
                }
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&link);
                Err(e)
            }
        }
    }

    /// Whether a burrow process (foreground run or monitor) still watches the container.
    pub fn is_locked(&self, id: &str) -> bool {
        let Ok(file) = fs::File::open(self.dir_of(id).join("lock")) else {
            return false;
        };
        if flock(&file, libc::LOCK_SH | libc::LOCK_NB) {
            flock(&file, libc::LOCK_UN);
            false
        } else {
            true
        }
    }

    pub fn list(&self) -> Result<Vec<ContainerRecord>, ContainerError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() != 64 {
                continue;
            }
            match self.load(&name) {
                Ok(r) => out.push(r),
                Err(ContainerError::NotFound(_)) => {}
                Err(e) => log::warn!("{e}"),
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(out)
    }

    /// By full id, unique id prefix, or name.
    pub fn find(&self, key: &str) -> Result<ContainerRecord, ContainerError> {
        if let Ok(id) = fs::read_link(self.name_link(key))
            && let Ok(r) = self.load(&id.to_string_lossy())
        {
            return Ok(r);
        }
        if key.len() == 64 {
            return self.load(key);
        }
        let matches: Vec<ContainerRecord> = self
            .list()?
            .into_iter()
            .filter(|r| r.id.starts_with(key))
            .collect();
        match matches.len() {
            0 => Err(ContainerError::NotFound(key.to_string())),
            1 => Ok(matches.into_iter().next().expect("one match")),
            _ => Err(ContainerError::Ambiguous(key.to_string())),
        }
    }

    /// Where a directory goes while it is deleted: out of the listing at once, and marked
    /// for [`ContainerStore::sweep_leftovers`] if the deletion is interrupted.
    fn trash_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{TRASH_PREFIX}{id}"))
    }

    /// Remove the record and its directory (call inside burrow's user namespace: the upper
    /// directory holds files of the container's ids). The directory is first renamed out of
    /// the way, so a removal killed half-way leaves no half-record, only a directory that
    /// the next sweep deletes.
    pub fn remove(&self, record: &ContainerRecord) -> Result<(), ContainerError> {
        let dir = self.dir_of(&record.id);
        let trash = self.trash_path(&record.id);
        let link = self.name_link(&record.name);
        let lock = {
            let _names_lock = self.lock_names()?;
            if fs::read_link(&link).is_ok_and(|t| t.as_os_str() == record.id.as_str()) {
                let _ = fs::remove_file(&link);
            }
            // Held until the directory is gone: a sweep leaves it alone meanwhile. A directory
            // already gone was removed by someone else (a monitor honouring --rm).
            let lock = match self.lock_meta(&record.id) {
                Ok(lock) => lock,
                Err(ContainerError::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            match fs::rename(&dir, &trash) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err(&dir)(e)),
            }
            lock
        };
        let removed = fs::remove_dir_all(&trash);
        drop(lock);
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&trash)(e)),
        }
    }

    /// What an interrupted removal or creation left behind: directories being deleted, and
    /// container directories without a record. Cheap (one directory listing), for deciding
    /// whether a sweep, which needs the user namespace, is worth it.
    pub fn has_leftovers(&self) -> bool {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(TRASH_PREFIX)
                || (name.len() == 64 && !e.path().join("config.json").exists())
        })
    }

    /// Delete what [`ContainerStore::has_leftovers`] finds, except what a live burrow
    /// process is still creating, running or deleting (call inside burrow's user namespace).
    /// Returns how many directories were deleted.
    pub fn sweep_leftovers(&self) -> Result<usize, ContainerError> {
        let mut swept = 0;
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let (trash, lock) = if let Some(id) = name.strip_prefix(TRASH_PREFIX) {
                let trash = entry.path();
                match FileLock::try_acquire(&trash.join("config.lock"), LockKind::Exclusive) {
                    Ok(Some(lock)) => (trash, lock),
                    // Being deleted by its `rm`, or already gone.
                    _ => {
                        log::debug!("leaving {id} to the removal in progress");
                        continue;
                    }
                }
            } else if name.len() == 64 && !entry.path().join("config.json").exists() {
                // Creates make the directory and its record under the names lock.
                let _names_lock = self.lock_names()?;
                if self.dir_of(&name).join("config.json").exists() || self.is_locked(&name) {
                    continue;
                }
                let Ok(Some(lock)) =
                    FileLock::try_acquire(&self.meta_lock_path(&name), LockKind::Exclusive)
                else {
                    continue;
                };
                let trash = self.trash_path(&name);
                if fs::rename(self.dir_of(&name), &trash).is_err() {
                    continue;
                }
                (trash, lock)
            } else {
                continue;
            };
            match fs::remove_dir_all(&trash) {
                Ok(()) => swept += 1,
                Err(e) => log::warn!("cannot delete {}: {e}", trash.display()),
            }
            drop(lock);
        }
        Ok(swept)
    }
}

/// The prefix of a container directory being deleted.
const TRASH_PREFIX: &str = ".removing-";

/// The monitor's end of [`ContainerStore::request_stop`]. The fifo is held open for reading
/// and writing for the monitor's whole life, so a request written at any moment waits in it
/// until read, and the monitor never sees end of file.
pub struct StopRequests {
    fifo: OwnedFd,
    partial: Vec<u8>,
    /// A stop was requested: no restart policy applies any more.
    pub requested: bool,
    /// Since the last [`StopRequests::new_run`], a request came from a caller that did not see
    /// the current run (it saw none, or an earlier one), so it will not signal it.
    pub unseen_run: bool,
}

impl StopRequests {
    /// Make (or reuse) the container's fifo and open it. Open it before taking the run lock:
    /// whoever sees the lock held can then reach the monitor.
    pub fn open(store: &ContainerStore, id: &str) -> Result<StopRequests, ContainerError> {
        let path = store.stop_fifo(id);
        if fs::symlink_metadata(&path).is_ok_and(|m| !m.file_type().is_fifo()) {
            let _ = fs::remove_file(&path);
        }
        // Not removed and made anew: a second monitor started by mistake must not take the
        // fifo away from the one that runs the container.
        match nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(io_err(&path)(e.into())),
        }
        let fifo = nix::fcntl::open(
            &path,
            OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| io_err(&path)(e.into()))?;
        Ok(StopRequests {
            fifo,
            partial: Vec::new(),
            requested: false,
            unseen_run: false,
        })
    }

    /// The descriptor to poll for requests (readable when one is pending).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fifo.as_fd()
    }

    /// A new run of the command starts.
    pub fn new_run(&mut self) {
        self.unseen_run = false;
    }

    /// Take the pending requests; `current_pid` is the pid of the run now alive, 0 if none.
    pub fn read(&mut self, current_pid: i32) {
        let mut buf = [0u8; 512];
        loop {
            match nix::unistd::read(&self.fifo, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
            }
        }
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let seen = std::str::from_utf8(&line[..end])
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
                .unwrap_or(0);
            self.requested = true;
            if seen == 0 || seen != current_pid {
                self.unseen_run = true;
            }
        }
    }

    /// Sleep until `deadline` unless a stop is requested first; true if one was.
    pub fn wait_until(&mut self, deadline: Instant) -> bool {
        loop {
            self.read(0);
            if self.requested {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Rounded up, so the deadline has passed when poll times out.
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            let mut fds = [nix::poll::PollFd::new(
                self.fifo.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let timeout =
                nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX);
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(_) => {
                    // Cannot wait on the fifo: sleep the rest, then look once more.
                    std::thread::sleep(left);
                    self.read(0);
                    return self.requested;
                }
            }
        }
    }
}

/// A new 64-hex container id.
pub fn new_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> ContainerRecord {
        ContainerRecord {
            id: new_id(),
            name: name.into(),
            image: "img".into(),
            image_id: "sha256:x".into(),
            command: vec!["true".into()],
            created: now_rfc3339(),
            auto_remove: false,
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            started_at: None,
            finished_at: None,
            process: None,
            hostname: String::new(),
            create_args: serde_json::Value::Null,
            restart_count: 0,
            stopped_by_user: false,
            monitor_pid: 0,
            mounts: Vec::new(),
            log_config: Default::default(),
        }
    }

    #[test]
    fn names_are_unique_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let a = record("web");
        store.create(&a).unwrap();
        assert!(matches!(
            store.create(&record("web")),
            Err(ContainerError::NameInUse(..))
        ));
        assert_eq!(store.find("web").unwrap().id, a.id);
        assert_eq!(store.find(&a.id[..12]).unwrap().name, "web");
        store.remove(&a).unwrap();
        store.create(&record("web")).unwrap();
        assert!(matches!(
            store.create(&record("bad name")),
            Err(ContainerError::BadName(_))
        ));
    }

    #[test]
    fn concurrent_creates_of_one_name_give_it_to_exactly_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        for round in 0..40 {
            let name = format!("same{round}");
            let winners = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| s.spawn(|| store.create(&record(&name)).is_ok()))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .filter(|won| *won)
                    .count()
            });
            assert_eq!(
                winners, 1,
                "round {round}: name {name} given {winners} times"
            );
        }
    }

    #[test]
    fn running_without_lock_reads_as_exited() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let mut r = record("x");
        store.create(&r).unwrap();
        r.status = Status::Running;
        store.save(&r).unwrap();
        {
            let _lock = store.lock_running(&r.id).unwrap();
            assert_eq!(store.load(&r.id).unwrap().status, Status::Running);
        }
        assert_eq!(store.load(&r.id).unwrap().status, Status::Exited);
    }

    #[test]
    fn restarting_without_lock_reads_as_exited_with_its_code() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let mut r = record("x");
        store.create(&r).unwrap();
        r.status = Status::Restarting;
        r.exit_code = 3;
        store.save(&r).unwrap();
        {
            let _lock = store.lock_running(&r.id).unwrap();
            assert_eq!(store.load(&r.id).unwrap().status, Status::Restarting);
        }
        let loaded = store.load(&r.id).unwrap();
        assert_eq!((loaded.status, loaded.exit_code), (Status::Exited, 3));
    }

    #[test]
    fn concurrent_updates_of_different_fields_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let r = record("x");
        store.create(&r).unwrap();
        const ROUNDS: i32 = 40;
        std::thread::scope(|s| {
            let fields: [fn(&mut ContainerRecord); 3] = [
                |r| r.restart_count += 1,
                |r| r.exit_code += 1,
                |r| r.monitor_pid += 1,
            ];
            for bump in fields {
                let store = &store;
                let id = &r.id;
                s.spawn(move || {
                    for _ in 0..ROUNDS {
                        store.update(id, bump).unwrap();
                    }
                });
            }
        });
        let got = store.load(&r.id).unwrap();
        assert_eq!(
            (got.restart_count, got.exit_code, got.monitor_pid),
            (ROUNDS as u32, ROUNDS, ROUNDS),
            "updates were lost"
        );
    }

    #[test]
    fn an_update_waits_for_the_one_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let r = record("x");
        store.create(&r).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                store
                    .update(&r.id, |rec| {
                        tx.send(()).unwrap();
                        // Long enough for an unserialised writer to load and save meanwhile;
                        // with the lock, it waits however long this takes.
                        std::thread::sleep(std::time::Duration::from_millis(300));
                        rec.exit_code = 3;
                    })
                    .unwrap();
            });
            rx.recv().unwrap();
            store
                .update(&r.id, |rec| rec.stopped_by_user = true)
                .unwrap();
        });
        let got = store.load(&r.id).unwrap();
        assert_eq!((got.exit_code, got.stopped_by_user), (3, true));
    }

    #[test]
    fn updates_never_bring_a_removed_record_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let r = record("x");
        store.create(&r).unwrap();
        store.remove(&r).unwrap();
        assert!(matches!(
            store.update(&r.id, |rec| rec.exit_code = 1),
            Err(ContainerError::NotFound(_))
        ));
        assert!(!store.dir_of(&r.id).exists());
        assert!(store.find("x").is_err());
        // Removing again is not an error (a monitor may have honoured --rm first).
        store.remove(&r).unwrap();
    }

    #[test]
    fn a_dead_owner_is_settled_once_with_its_end_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let r = record("x");
        store.create(&r).unwrap();
        store
            .update(&r.id, |rec| {
                rec.status = Status::Running;
                rec.started_at = Some(now_rfc3339());
            })
            .unwrap();
        let first = store.load(&r.id).unwrap();
        assert_eq!((first.status, first.exit_code), (Status::Exited, 137));
        assert!(first.finished_at.is_some(), "FinishedAt set");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let again = store.load(&r.id).unwrap();
        assert_eq!(again.finished_at, first.finished_at, "stays as first seen");
    }

    #[test]
    fn leftovers_of_interrupted_removals_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let keep = record("keep");
        store.create(&keep).unwrap();
        assert!(!store.has_leftovers());
        // A removal killed after the rename, and one killed before it, in the old order
        // (record first): both leave a directory without a record.
        let a = record("a");
        store.create(&a).unwrap();
        fs::rename(store.dir_of(&a.id), store.trash_path(&a.id)).unwrap();
        let b = record("b");
        store.create(&b).unwrap();
        fs::remove_file(store.dir_of(&b.id).join("config.json")).unwrap();
        // A container whose run lock is held is left alone, record or not.
        let c = record("c");
        store.create(&c).unwrap();
        fs::remove_file(store.dir_of(&c.id).join("config.json")).unwrap();
        let held = store.lock_running(&c.id).unwrap();
        assert!(store.has_leftovers());
        assert_eq!(store.sweep_leftovers().unwrap(), 2);
        assert!(!store.trash_path(&a.id).exists() && !store.dir_of(&b.id).exists());
        assert!(store.dir_of(&c.id).exists());
        drop(held);
        assert_eq!(store.sweep_leftovers().unwrap(), 1);
        assert!(!store.has_leftovers());
        assert_eq!(store.load(&keep.id).unwrap().name, "keep");
        // The name of a swept container is free again.
        store.create(&record("b")).unwrap();
    }

    #[test]
    fn stop_requests_reach_the_monitor_and_wake_its_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let mut r = record("x");
        store.create(&r).unwrap();
        // Without a monitor, a request only marks the record.
        store.request_stop(&mut r, 0).unwrap();
        assert!(store.load(&r.id).unwrap().stopped_by_user);

        let mut requests = StopRequests::open(&store, &r.id).unwrap();
        let start = Instant::now();
        assert!(!requests.wait_until(start + std::time::Duration::from_millis(20)));
        assert!(start.elapsed() >= std::time::Duration::from_millis(20));

        // A request for the run the caller saw is not "unseen"; one for another run is.
        store.request_stop(&mut r, 42).unwrap();
        requests.read(42);
        assert!(requests.requested && !requests.unseen_run);
        store.request_stop(&mut r, 41).unwrap();
        requests.read(42);
        assert!(requests.unseen_run);

        // A request written while the monitor waits ends the wait at once.
        drop(requests);
        let mut requests = StopRequests::open(&store, &r.id).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(600);
        std::thread::scope(|s| {
            s.spawn(|| store.request_stop(&mut r.clone(), 0).unwrap());
            assert!(requests.wait_until(deadline));
        });
        assert!(requests.unseen_run);
    }
}
