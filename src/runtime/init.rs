//! The container's first process, from clone to exec: mounts, pivot_root, terminal, user,
//! capabilities. Runs in the new namespaces; reports failure to burrow over the sync channel.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};

use super::rootfs::Mounted;
use super::sync::{Channel, ChildMessage, ParentMessage};
use super::{ContainerSpec, Network, ProcessConfig, Stdio, caps, exec, mounts, pty, user};
use crate::exit::BURROW_ERROR;

pub struct Failure {
    pub code: u8,
    pub message: String,
}

fn fail(context: &str) -> impl Fn(String) -> Failure + '_ {
    move |e| Failure {
        code: BURROW_ERROR,
        message: format!("{context}: {e}"),
    }
}

fn fail_on<E: std::fmt::Display>(context: &str) -> impl Fn(E) -> Failure + '_ {
    move |e| fail(context)(e.to_string())
}

/// Entry point after clone. Never returns.
pub fn container_main(spec: &ContainerSpec, chan: &Channel) -> ! {
    let failure = match setup_and_exec(spec, chan) {
        Ok(f) | Err(f) => f,
    };
    let _ = chan.send(
        &ChildMessage::Failed {
            code: failure.code,
            message: failure.message,
        },
        None,
    );
    // SAFETY: leave without running the parent's destructors in this copy of its memory.
    unsafe { libc::_exit(failure.code as i32) }
}

fn setup_and_exec(spec: &ContainerSpec, chan: &Channel) -> Result<Failure, Failure> {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(fail_on("make mounts private"))?;
    let mounted = spec
        .rootfs_driver
        .mount(&spec.layers(), &spec.merged)
        .map_err(fail_on("root filesystem"))?;
    if let Mounted::NeedsServer(dev) = mounted {
        // Until the parent serves it, anything touching the mount below waits.
        chan.send(&ChildMessage::MountServer, Some(dev.as_raw_fd()))
            .map_err(fail_on("hand over the root filesystem"))?;
    }
    mounts::seed_volumes(&spec.merged, &spec.mounts).map_err(fail_on("volumes"))?;
    mounts::apply(&spec.merged, &mounts::plan(&spec.mount_plan_input()))
        .map_err(fail_on("mounts"))?;
    if spec.network == Network::Private {
        loopback_up().map_err(fail_on("bring up lo"))?;
    }
    nix::unistd::sethostname(&spec.hostname).map_err(fail_on("set hostname"))?;
    mounts::pivot_into(&spec.merged).map_err(fail_on("pivot_root"))?;
    mounts::protect_kernel_paths().map_err(fail_on("protect kernel paths"))?;
    if spec.read_only {
        mounts::make_root_readonly().map_err(fail_on("read-only root"))?;
    }

    if spec.tty {
        let (master, slave) = pty::open_container_pty().map_err(fail_on("open pty"))?;
        chan.send(
            &ChildMessage::PtyMaster,
            Some(std::os::fd::AsRawFd::as_raw_fd(&master)),
        )
        .map_err(fail_on("send pty"))?;
        drop(master);
        pty::become_terminal_owner(slave).map_err(fail_on("set up terminal"))?;
    } else {
        nix::unistd::setsid().map_err(fail_on("setsid"))?;
        setup_stdio(&spec.stdio, spec.interactive).map_err(fail_on("standard streams"))?;
    }

    let who = resolve_user(&spec.process, &spec.group_add)?;
    for m in spec.mounts.iter().filter(|m| m.chown) {
        super::copy::chown_tree(&m.target, who.uid, who.gid)
            .map_err(fail_on(&format!("chown {}", m.target.display())))?;
    }
    if !Path::new(&spec.process.cwd).is_dir() {
        std::fs::create_dir_all(&spec.process.cwd).map_err(fail_on(&format!(
            "create working directory {}",
            spec.process.cwd
        )))?;
    }
    caps::limit_bounding_set().map_err(fail_on("capabilities"))?;

    chan.send(&ChildMessage::Ready, None)
        .map_err(fail_on("sync"))?;
    match chan.recv::<ParentMessage>().map_err(fail_on("sync"))? {
        Some((ParentMessage::Start, _)) => {}
        None => return Err(fail("start")("burrow exited".into())),
    }
    Ok(become_process(
        &spec.process,
        &who,
        spec.can_setgroups,
        false,
    ))
}

/// The container user, resolved against the container's own /etc/passwd and /etc/group.
pub(super) fn resolve_user(
    process: &ProcessConfig,
    group_add: &[String],
) -> Result<user::ResolvedUser, Failure> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    user::resolve(&process.user, &passwd, &group, group_add).map_err(|e| Failure {
        code: BURROW_ERROR,
        message: e.to_string(),
    })
}

/// Switch to the container user with docker's privileges and exec the command: the last step
/// of both a container's first process and `exec`. Returns only on failure.
pub(super) fn become_process(
    process: &ProcessConfig,
    who: &user::ResolvedUser,
    can_setgroups: bool,
    privileged: bool,
) -> Failure {
    match switch_user_and_exec(process, who, can_setgroups, privileged) {
        Ok(f) | Err(f) => f,
    }
}

fn switch_user_and_exec(
    process: &ProcessConfig,
    who: &user::ResolvedUser,
    can_setgroups: bool,
    privileged: bool,
) -> Result<Failure, Failure> {
    if can_setgroups {
        let groups: Vec<Gid> = who
            .additional_gids
            .iter()
            .map(|&g| Gid::from_raw(g))
            .collect();
        setgroups(&groups).map_err(fail_on("setgroups"))?;
    }
    let (uid, gid) = (Uid::from_raw(who.uid), Gid::from_raw(who.gid));
    let unmapped = |kind: &'static str, id: u32| {
        move |e: nix::Error| Failure {
            code: BURROW_ERROR,
            message: if e == nix::Error::EINVAL {
                format!(
                    "{kind} {id} does not exist in burrow's user namespace: add subordinate ids \
                     for your user to /etc/subuid and /etc/subgid (e.g. 'user:100000:65536')"
                )
            } else {
                format!("switch to {kind} {id}: {e}")
            },
        }
    };
    setresgid(gid, gid, gid).map_err(unmapped("gid", who.gid))?;
    setresuid(uid, uid, uid).map_err(unmapped("uid", who.uid))?;
    caps::set_process_caps(who.uid, privileged).map_err(fail_on("capabilities"))?;
    if !privileged {
        caps::set_no_new_privs().map_err(fail_on("no_new_privs"))?;
    }
    nix::unistd::chdir(process.cwd.as_str()).map_err(|e| Failure {
        code: crate::exit::CANNOT_INVOKE,
        message: format!("cannot enter working directory {}: {e}", process.cwd),
    })?;

    let mut env = process.env.clone();
    if process.env_value("HOME").is_none() {
        env.push(format!("HOME={}", who.home));
    }
    reset_signals();
    close_inherited_fds();
    let path_var = process
        .env_value("PATH")
        .unwrap_or(super::process_config::DEFAULT_PATH)
        .to_string();
    let failure = exec::execute(&process.args, &env, &path_var);
    Ok(Failure {
        code: failure.code,
        message: failure.message,
    })
}

/// burrow blocks signals to read them from a signalfd and Rust ignores SIGPIPE; neither may
/// leak into the container's command.
fn reset_signals() {
    // SAFETY: resetting dispositions and the mask of this single-threaded process.
    unsafe {
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// No descriptor of burrow's above stderr reaches the container's command.
fn close_inherited_fds() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: marks descriptors close-on-exec; the sync channel already is.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
}

/// Standard streams of a container without a terminal: burrow's own (foreground), or the
/// descriptors the caller gave (the monitor's log pipes); stdin is /dev/null without `-i`.
pub(super) fn setup_stdio(stdio: &Stdio, interactive: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let dup = |from: i32, to: i32| -> std::io::Result<()> {
        // SAFETY: dup2 onto a standard descriptor.
        if unsafe { libc::dup2(from, to) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    if let Stdio::Fds {
        stdin,
        stdout,
        stderr,
    } = stdio
    {
        if let Some(fd) = stdin {
            dup(fd.as_raw_fd(), 0)?;
        }
        dup(stdout.as_raw_fd(), 1)?;
        dup(stderr.as_raw_fd(), 2)?;
    }
    let stdin_given = matches!(stdio, Stdio::Fds { stdin: Some(_), .. });
    if !interactive && !stdin_given {
        let null = std::fs::File::open("/dev/null")?;
        dup(null.as_raw_fd(), 0)?;
    }
    Ok(())
}

fn loopback_up() -> std::io::Result<()> {
    // SAFETY: an ioctl on a fresh datagram socket with a zeroed ifreq naming "lo".
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        let name = CString::new("lo").unwrap_or_default();
        for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes_with_nul()) {
            *dst = *src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let rc = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        let err = std::io::Error::last_os_error();
        libc::close(sock);
        if rc != 0 {
            return Err(err);
        }
    }
    Ok(())
}
