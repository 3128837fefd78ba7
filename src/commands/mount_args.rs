//! `-v`, `--mount`, `--tmpfs` and `--volumes-from`, resolved into the container's mounts when
//! it is created (named volumes are created on first use, anonymous ones get a random name).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::containers::ContainerStore;
use crate::runtime::ExtraMount;
use crate::volumes::VolumeStore;

/// What one flag asked for, before volumes are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Bind {
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
        chown: bool,
        must_exist: bool,
    },
    Volume {
        name: Option<String>,
        target: PathBuf,
        readonly: bool,
        chown: bool,
        nocopy: bool,
    },
    Tmpfs {
        target: PathBuf,
        options: Option<String>,
        readonly: bool,
    },
}

fn absolute_target(t: &str) -> anyhow::Result<PathBuf> {
    if !t.starts_with('/') {
        anyhow::bail!(
            "invalid mount destination {t:?}: it must be an absolute path in the container"
        );
    }
    Ok(PathBuf::from(t))
}

fn host_path(s: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(s);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

/// `-v [SOURCE:]TARGET[:OPTIONS]`.
pub fn parse_volume(spec: &str) -> anyhow::Result<Request> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [t] => (None, *t, ""),
        [s, t] if t.starts_with('/') => (Some(*s), *t, ""),
        [t, o] => (None, *t, *o),
        [s, t, o] => (Some(*s), *t, *o),
        _ => anyhow::bail!("invalid volume specification {spec:?}: use [SOURCE:]TARGET[:OPTIONS]"),
    };
    let target = absolute_target(target)?;
    let (mut readonly, mut chown, mut nocopy) = (false, false, false);
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "U" => chown = true,
            "nocopy" => nocopy = true,
            // SELinux relabelling and propagation modes have no effect on a rootless overlay.
            "z" | "Z" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "copy" => {}
            other => anyhow::bail!(
                "invalid volume option {other:?} in {spec:?}: use ro, rw, z, Z, U or nocopy"
            ),
        }
    }
    Ok(match source {
        Some(s) if s.starts_with('/') || s.starts_with('.') => Request::Bind {
            source: host_path(s)?,
            target,
            readonly,
            chown,
            must_exist: false,
        },
        Some(name) => Request::Volume {
            name: Some(name.to_string()),
            target,
            readonly,
            chown,
            nocopy,
        },
        None => Request::Volume {
            name: None,
            target,
            readonly,
            chown,
            nocopy,
        },
    })
}

/// `--mount type=bind|volume|tmpfs,source=...,target=...,readonly,...`.
pub fn parse_mount(spec: &str) -> anyhow::Result<Request> {
    let mut kind = "volume".to_string();
    let (mut source, mut target, mut readonly, mut nocopy) = (None, None, false, false);
    let mut tmpfs = Vec::new();
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => kind = v.to_string(),
            "source" | "src" => source = Some(v.to_string()),
            "target" | "destination" | "dst" => target = Some(v.to_string()),
            "readonly" | "ro" => readonly = v.is_empty() || v == "true" || v == "1",
            "volume-nocopy" => nocopy = v.is_empty() || v == "true",
            "tmpfs-size" => tmpfs.push(format!("size={v}")),
            "tmpfs-mode" => tmpfs.push(format!("mode={v}")),
            "bind-propagation" | "consistency" | "z" | "Z" => {}
            other => anyhow::bail!("invalid --mount field {other:?} in {spec:?}"),
        }
    }
    let target = absolute_target(
        &target.ok_or_else(|| anyhow::anyhow!("invalid --mount {spec:?}: target is required"))?,
    )?;
    Ok(match kind.as_str() {
        "bind" => Request::Bind {
            source: host_path(&source.ok_or_else(|| {
                anyhow::anyhow!("invalid --mount {spec:?}: a bind mount needs a source")
            })?)?,
            target,
            readonly,
            chown: false,
            must_exist: true,
        },
        "volume" => Request::Volume {
            name: source,
            target,
            readonly,
            chown: false,
            nocopy,
        },
        "tmpfs" => Request::Tmpfs {
            target,
            options: (!tmpfs.is_empty()).then(|| tmpfs.join(",")),
            readonly,
        },
        other => anyhow::bail!("invalid mount type {other:?}: use bind, volume or tmpfs"),
    })
}

/// `--tmpfs TARGET[:OPTIONS]`.
pub fn parse_tmpfs(spec: &str) -> anyhow::Result<Request> {
    let (target, options) = spec
        .split_once(':')
        .map_or((spec, None), |(t, o)| (t, Some(o.to_string())));
    Ok(Request::Tmpfs {
        target: absolute_target(target)?,
        options,
        readonly: false,
    })
}

/// Everything the flags asked for plus anonymous volumes for the image's `VOLUME`s, resolved
/// to host paths. Named volumes are created on first use.
pub fn resolve(
    requests: Vec<Request>,
    image_volumes: &[String],
    volumes_from: &[String],
    volumes: &VolumeStore,
    containers: &ContainerStore,
) -> anyhow::Result<Vec<ExtraMount>> {
    let mut out: Vec<ExtraMount> = Vec::new();
    for from in volumes_from {
        let (name, mode) = from
            .split_once(':')
            .map_or((from.as_str(), None), |(n, m)| (n, Some(m)));
        let other = containers.find(name)?;
        for mut m in other.mounts {
            if let Some(mode) = mode {
                m.readonly = mode == "ro";
            }
            m.seed = false;
            out.push(m);
        }
    }
    let mut requests = requests;
    for v in image_volumes {
        if !requests.iter().any(|r| target_of(r) == Path::new(v))
            && !out.iter().any(|m| m.target == Path::new(v))
        {
            requests.push(Request::Volume {
                name: None,
                target: PathBuf::from(v),
                readonly: false,
                chown: false,
                nocopy: false,
            });
        }
    }
    for r in requests {
        out.retain(|m| m.target != target_of(&r));
        out.push(match r {
            Request::Bind {
                source,
                target,
                readonly,
                chown,
                must_exist,
            } => {
                if !source.exists() {
                    if must_exist {
                        anyhow::bail!(
                            "invalid mount config: bind source path does not exist: {}",
                            source.display()
                        );
                    }
                    // docker's -v creates a missing host directory.
                    std::fs::create_dir_all(&source)?;
                }
                ExtraMount {
                    source: Some(source),
                    target,
                    readonly,
                    tmpfs_options: None,
                    seed: false,
                    chown,
                    volume: None,
                }
            }
            Request::Volume {
                name,
                target,
                readonly,
                chown,
                nocopy,
            } => {
                let anonymous = name.is_none();
                let name = name.unwrap_or_else(crate::containers::new_id);
                let (volume, _) = volumes.create(&name, BTreeMap::new(), anonymous)?;
                ExtraMount {
                    source: Some(volume.mountpoint),
                    target,
                    readonly,
                    tmpfs_options: None,
                    seed: !nocopy,
                    chown,
                    volume: Some(volume.name),
                }
            }
            Request::Tmpfs {
                target,
                options,
                readonly,
            } => ExtraMount {
                source: None,
                target,
                readonly,
                tmpfs_options: options,
                seed: false,
                chown: false,
                volume: None,
            },
        });
    }
    Ok(out)
}

fn target_of(r: &Request) -> &Path {
    match r {
        Request::Bind { target, .. }
        | Request::Volume { target, .. }
        | Request::Tmpfs { target, .. } => target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flag_forms() {
        assert_eq!(
            parse_volume("/host:/ctr:ro").unwrap(),
            Request::Bind {
                source: "/host".into(),
                target: "/ctr".into(),
                readonly: true,
                chown: false,
                must_exist: false
            }
        );
        assert_eq!(
            parse_volume("cache:/cache:U,z").unwrap(),
            Request::Volume {
                name: Some("cache".into()),
                target: "/cache".into(),
                readonly: false,
                chown: true,
                nocopy: false
            }
        );
        assert_eq!(
            parse_volume("/data").unwrap(),
            Request::Volume {
                name: None,
                target: "/data".into(),
                readonly: false,
                chown: false,
                nocopy: false
            }
        );
        assert!(parse_volume("x:relative").is_err());
        assert!(parse_volume("/a:/b:bogus").is_err());
    }

    #[test]
    fn mount_flag_forms() {
        assert_eq!(
            parse_mount("type=bind,src=/h,dst=/c,readonly").unwrap(),
            Request::Bind {
                source: "/h".into(),
                target: "/c".into(),
                readonly: true,
                chown: false,
                must_exist: true
            }
        );
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,tmpfs-size=1m").unwrap(),
            Request::Tmpfs {
                target: "/t".into(),
                options: Some("size=1m".into()),
                readonly: false
            }
        );
        assert!(parse_mount("type=nfs,target=/x").is_err());
        assert!(parse_mount("type=bind,target=/x").is_err());
        assert_eq!(
            parse_tmpfs("/run:size=1m,mode=700").unwrap(),
            Request::Tmpfs {
                target: "/run".into(),
                options: Some("size=1m,mode=700".into()),
                readonly: false
            }
        );
    }

    #[test]
    fn missing_bind_source() {
        let dir = tempfile::tempdir().unwrap();
        let vols = VolumeStore::open(dir.path()).unwrap();
        let ctrs = ContainerStore::open(dir.path()).unwrap();
        let missing = dir.path().join("nope");
        let r = parse_mount(&format!("type=bind,src={},dst=/x", missing.display())).unwrap();
        assert!(resolve(vec![r], &[], &[], &vols, &ctrs).is_err());
        let r = parse_volume(&format!("{}:/x", missing.display())).unwrap();
        let m = resolve(vec![r], &["/img".into()], &[], &vols, &ctrs).unwrap();
        assert!(missing.is_dir());
        assert_eq!(m.len(), 2);
        assert!(m[1].volume.is_some() && m[1].seed);
    }
}
