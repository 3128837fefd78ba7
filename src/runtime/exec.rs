//! Finding and starting the container's command, with docker's exit codes when that fails.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::exit::{CANNOT_INVOKE, NOT_FOUND};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecFailure {
    pub code: u8,
    pub message: String,
}

/// `exec.LookPath` as docker's runtimes do it: names with a `/` are used as they are, others
/// are searched in the container's PATH.
pub fn look_path(name: &str, path_var: &str) -> Result<PathBuf, ExecFailure> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(ExecFailure {
        code: NOT_FOUND,
        message: format!("exec: {name:?}: executable file not found in $PATH"),
    })
}

fn cstrings(items: &[String]) -> Result<Vec<CString>, ExecFailure> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| ExecFailure {
                code: CANNOT_INVOKE,
                message: format!("argument or variable contains a NUL byte: {s:?}"),
            })
        })
        .collect()
}

/// Replace this process with the command; returns only on failure.
pub fn execute(args: &[String], env: &[String], path_var: &str) -> ExecFailure {
    let program = match look_path(&args[0], path_var) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let (argv, envp, prog) = match (
        cstrings(args),
        cstrings(env),
        cstrings(&[program.to_string_lossy().into_owned()]),
    ) {
        (Ok(a), Ok(e), Ok(p)) => (a, e, p),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    let err = nix::unistd::execve(&prog[0], &argv, &envp).unwrap_err();
    let code = match err {
        nix::Error::ENOENT => NOT_FOUND,
        _ => CANNOT_INVOKE,
    };
    ExecFailure {
        code,
        message: format!("exec: {:?}: {}", args[0], err.desc().to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let path = format!("/nonexistent:{}", dir.path().display());
        assert_eq!(look_path("tool", &path).unwrap(), exe);
        assert_eq!(look_path("plain", &path).unwrap_err().code, NOT_FOUND);
        assert_eq!(
            look_path("./rel/x", &path).unwrap(),
            PathBuf::from("./rel/x")
        );
        let e = look_path("nope", &path).unwrap_err();
        assert_eq!(
            e.message,
            "exec: \"nope\": executable file not found in $PATH"
        );
    }
}
