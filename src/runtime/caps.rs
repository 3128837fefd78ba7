//! Capabilities and privilege limits of the container's process.

use caps::{CapSet, Capability, CapsHashSet};

/// docker's default capability set.
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

#[derive(Debug, thiserror::Error)]
#[error("cannot set capabilities: {0}")]
pub struct CapsError(String);

fn wrap(e: caps::errors::CapsError) -> CapsError {
    CapsError(e.to_string())
}

/// Drop everything outside the default set from the bounding set. Needs CAP_SETPCAP, so it
/// runs before the switch to the container user.
pub fn limit_bounding_set() -> Result<(), CapsError> {
    let keep: CapsHashSet = DEFAULT_CAPS.iter().copied().collect();
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(wrap)?;
        }
    }
    Ok(())
}

/// After the switch to the container user: root keeps the default set (every capability
/// with `privileged`), anyone else nothing (as docker does without `--cap-add`). The
/// inheritable set is empty whoever runs (docker since 20.10.14, CVE-2022-24769): otherwise a
/// program with inheritable file capabilities would gain them even as a non-root user.
pub fn set_process_caps(uid: u32, privileged: bool) -> Result<(), CapsError> {
    let set: CapsHashSet = match (uid, privileged) {
        (0, true) => caps::read(None, CapSet::Bounding).map_err(wrap)?,
        (0, false) => DEFAULT_CAPS.iter().copied().collect(),
        _ => CapsHashSet::new(),
    };
    caps::clear(None, CapSet::Ambient).map_err(wrap)?;
    caps::set(None, CapSet::Effective, &set).map_err(wrap)?;
    caps::set(None, CapSet::Permitted, &set).map_err(wrap)?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(wrap)?;
    Ok(())
}

/// `no_new_privs`: setuid binaries and file capabilities cannot raise privileges in the container.
pub fn set_no_new_privs() -> Result<(), CapsError> {
    // SAFETY: plain prctl with integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(CapsError(std::io::Error::last_os_error().to_string()));
    }
    Ok(())
}
