//! What the container runs: docker's merge rules for the image config and the command line
//! (entrypoint, command, environment, working directory, user).

use std::collections::HashMap;
use std::path::PathBuf;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no command specified: the image has no Entrypoint or Cmd; give a command after the image name"
    )]
    NoCommand,
    #[error("cannot read env file {path}: {source}")]
    EnvFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid environment variable {0:?}: the name must not be empty")]
    BadEnv(String),
    #[error("the working directory '{0}' is invalid, it needs to be an absolute path")]
    RelativeWorkdir(String),
}

/// The parts of an image config that decide the process (a subset of OCI's `config`).
#[derive(Debug, Clone, Default)]
pub struct ImageProcess {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

impl ImageProcess {
    pub fn from_oci(config: Option<&oci_spec::image::Config>) -> ImageProcess {
        let Some(c) = config else {
            return ImageProcess::default();
        };
        ImageProcess {
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
            user: c.user().clone().filter(|u| !u.is_empty()),
        }
    }
}

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct ProcessOverrides {
    /// `--entrypoint`: `Some("")` clears the image's entrypoint.
    pub entrypoint: Option<String>,
    pub command: Vec<String>,
    /// `-e` values in order, `KEY=VALUE` or `KEY` (taken from the caller's environment).
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
}

/// The process to start, before the user is resolved inside the container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessConfig {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// `user[:group]` as given (resolved later against the container's /etc/passwd).
    pub user: String,
}

impl ProcessConfig {
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().find_map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v)
        })
    }
}

/// docker's rules: `--entrypoint` replaces the image entrypoint and drops the image's Cmd;
/// command arguments replace Cmd; `-e` overrides `--env-file`, which overrides the image.
pub fn merge(
    image: &ImageProcess,
    overrides: &ProcessOverrides,
    hostname: &str,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<ProcessConfig, ConfigError> {
    let (entrypoint, default_cmd) = match &overrides.entrypoint {
        Some(e) if e.is_empty() => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.clone()], Vec::new()),
        None => (image.entrypoint.clone(), image.cmd.clone()),
    };
    let cmd = if overrides.command.is_empty() {
        default_cmd
    } else {
        overrides.command.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(ConfigError::NoCommand);
    }

    let mut env = EnvList::default();
    env.set("PATH", DEFAULT_PATH);
    env.set("HOSTNAME", hostname);
    for kv in &image.env {
        env.push_raw(kv);
    }
    if overrides.tty {
        env.set_default("TERM", "xterm");
    }
    for file in &overrides.env_files {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::EnvFile {
            path: file.clone(),
            source,
        })?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            env.apply_cli(line, lookup_env)?;
        }
    }
    for kv in &overrides.env {
        env.apply_cli(kv, lookup_env)?;
    }

    // As docker: `-w` must be absolute (an image's WorkingDir is the image's business), and
    // an empty one means none.
    let workdir = overrides.workdir.clone().filter(|w| !w.is_empty());
    if let Some(w) = &workdir
        && !w.starts_with('/')
    {
        return Err(ConfigError::RelativeWorkdir(w.clone()));
    }
    let cwd = workdir
        .or_else(|| image.working_dir.clone())
        .unwrap_or_else(|| "/".to_string());
    let user = overrides
        .user
        .clone()
        .or_else(|| image.user.clone())
        .unwrap_or_default();
    Ok(ProcessConfig {
        args,
        env: env.into_vec(),
        cwd,
        user,
    })
}

/// An ordered environment in which a later value for a key replaces the earlier one in place.
#[derive(Debug, Default)]
struct EnvList {
    entries: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl EnvList {
    fn set(&mut self, key: &str, value: &str) {
        match self.index.get(key) {
            Some(&i) => self.entries[i].1 = value.to_string(),
            None => {
                self.index.insert(key.to_string(), self.entries.len());
                self.entries.push((key.to_string(), value.to_string()));
            }
        }
    }

    fn set_default(&mut self, key: &str, value: &str) {
        if !self.index.contains_key(key) {
            self.set(key, value);
        }
    }

    fn unset(&mut self, key: &str) {
        if let Some(i) = self.index.remove(key) {
            self.entries.remove(i);
            for v in self.index.values_mut() {
                if *v > i {
                    *v -= 1;
                }
            }
        }
    }

    fn push_raw(&mut self, kv: &str) {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => self.set(k, v),
            _ => {}
        }
    }

    /// `KEY=VALUE` sets; a bare `KEY` copies the caller's value, or removes KEY when the caller
    /// has none (as docker does).
    fn apply_cli(
        &mut self,
        kv: &str,
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        match kv.split_once('=') {
            Some(("", _)) => Err(ConfigError::BadEnv(kv.to_string())),
            Some((k, v)) => {
                self.set(k, v);
                Ok(())
            }
            None if kv.is_empty() => Err(ConfigError::BadEnv(kv.to_string())),
            None => {
                match lookup_env(kv) {
                    Some(v) => self.set(kv, &v),
                    None => self.unset(kv),
                }
                Ok(())
            }
        }
    }

    fn into_vec(self) -> Vec<String> {
        self.entries
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn image() -> ImageProcess {
        ImageProcess {
            entrypoint: strings(&["/entry", "-x"]),
            cmd: strings(&["default"]),
            env: strings(&["PATH=/img/bin", "A=image", "B=image"]),
            working_dir: Some("/app".into()),
            user: Some("app".into()),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn image_defaults() {
        let p = merge(&image(), &ProcessOverrides::default(), "h1", &no_env).unwrap();
        assert_eq!(p.args, strings(&["/entry", "-x", "default"]));
        assert_eq!(
            p.env,
            strings(&["PATH=/img/bin", "HOSTNAME=h1", "A=image", "B=image"])
        );
        assert_eq!(p.cwd, "/app");
        assert_eq!(p.user, "app");
    }

    #[test]
    fn command_replaces_cmd_only() {
        let o = ProcessOverrides {
            command: strings(&["other", "arg"]),
            ..Default::default()
        };
        let p = merge(&image(), &o, "h", &no_env).unwrap();
        assert_eq!(p.args, strings(&["/entry", "-x", "other", "arg"]));
    }

    #[test]
    fn entrypoint_override_drops_image_cmd() {
        let o = ProcessOverrides {
            entrypoint: Some("/bin/sh".into()),
            ..Default::default()
        };
        assert_eq!(
            merge(&image(), &o, "h", &no_env).unwrap().args,
            strings(&["/bin/sh"])
        );
        let o = ProcessOverrides {
            entrypoint: Some(String::new()),
            command: strings(&["ls"]),
            ..Default::default()
        };
        assert_eq!(
            merge(&image(), &o, "h", &no_env).unwrap().args,
            strings(&["ls"])
        );
        let o = ProcessOverrides {
            entrypoint: Some(String::new()),
            ..Default::default()
        };
        assert!(matches!(
            merge(&image(), &o, "h", &no_env),
            Err(ConfigError::NoCommand)
        ));
    }

    #[test]
    fn env_precedence_and_host_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(&file, "# comment\n\nB=file\nC=file\nFROM_HOST\n").unwrap();
        let o = ProcessOverrides {
            env: strings(&["C=cli", "A", "D=x=y"]),
            env_files: vec![file],
            tty: true,
            ..Default::default()
        };
        let lookup = |k: &str| (k == "FROM_HOST").then(|| "host".to_string());
        let p = merge(&image(), &o, "h", &lookup).unwrap();
        // A was unset: the caller has no A.
        assert_eq!(
            p.env,
            strings(&[
                "PATH=/img/bin",
                "HOSTNAME=h",
                "B=file",
                "TERM=xterm",
                "C=cli",
                "FROM_HOST=host",
                "D=x=y"
            ])
        );
        assert_eq!(p.env_value("D"), Some("x=y"));
    }

    #[test]
    fn workdir_and_user_overrides() {
        let o = ProcessOverrides {
            workdir: Some("/w".into()),
            user: Some("0:0".into()),
            ..Default::default()
        };
        let p = merge(&image(), &o, "h", &no_env).unwrap();
        assert_eq!((p.cwd.as_str(), p.user.as_str()), ("/w", "0:0"));
        let p = merge(
            &ImageProcess::default(),
            &ProcessOverrides {
                command: strings(&["x"]),
                ..Default::default()
            },
            "h",
            &no_env,
        )
        .unwrap();
        assert_eq!((p.cwd.as_str(), p.user.as_str()), ("/", ""));
        assert_eq!(p.env_value("PATH"), Some(DEFAULT_PATH));
    }

    #[test]
    fn relative_workdir_refused_empty_ignored() {
        let with = |w: &str| ProcessOverrides {
            workdir: Some(w.into()),
            ..Default::default()
        };
        let e = merge(&image(), &with("rel"), "h", &no_env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the working directory 'rel' is invalid, it needs to be an absolute path"
        );
        let p = merge(&image(), &with(""), "h", &no_env).unwrap();
        assert_eq!(p.cwd, image().working_dir.unwrap_or_else(|| "/".into()));
    }
}
