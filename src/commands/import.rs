//! `burrow import`: a rootfs tarball (a file, STDIN, or an http(s) URL, streamed) becomes a
//! one-layer image.

use std::io::Read;

use anyhow::Context;

use crate::cli::GlobalArgs;
use crate::reference::Reference;
use crate::storage::ImageChanges;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Apply Dockerfile instructions to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
    /// ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)
    #[arg(short, long, value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// Commit message for the imported image (its history entry and `.Comment`)
    #[arg(short, long)]
    pub message: Option<String>,
    /// Tarball to import (plain, gzip or zstd): a file, an http(s) URL, or - for STDIN
    pub file: String,
    /// Name for the image, REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// A Dockerfile instruction's JSON-array form, or its shell form run by `/bin/sh -c`.
fn command_form(rest: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(rest)
        .unwrap_or_else(|_| vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
}

/// `KEY=VALUE ...` pairs, or the old `KEY VALUE` form.
fn pairs(rest: &str) -> Vec<(String, String)> {
    if !rest.split_whitespace().next().unwrap_or("").contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return vec![(k.to_string(), v.trim().to_string())];
    }
    rest.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

pub fn parse_changes(changes: &[String]) -> anyhow::Result<ImageChanges> {
    let mut out = ImageChanges::default();
    for change in changes {
        let (instr, rest) = change
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        let rest = rest.trim();
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => out.cmd = Some(command_form(rest)),
            "ENTRYPOINT" => out.entrypoint = Some(command_form(rest)),
            "ENV" => out
                .env
                .extend(pairs(rest).into_iter().map(|(k, v)| format!("{k}={v}"))),
            "WORKDIR" => out.working_dir = Some(rest.to_string()),
            "USER" => out.user = Some(rest.to_string()),
            "EXPOSE" => out.exposed_ports.extend(rest.split_whitespace().map(|p| {
                if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                }
            })),
            "LABEL" => out.labels.extend(pairs(rest)),
            "VOLUME" => out.volumes.extend(
                serde_json::from_str::<Vec<String>>(rest)
                    .unwrap_or_else(|_| rest.split_whitespace().map(String::from).collect()),
            ),
            "STOPSIGNAL" => out.stop_signal = Some(rest.to_string()),
            "ONBUILD" => out.on_build.push(rest.to_string()),
            other => anyhow::bail!(
                "unsupported --change instruction {other:?}: use CMD, ENTRYPOINT, ENV, EXPOSE, \
                 LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR"
            ),
        }
    }
    Ok(out)
}

fn is_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// The body of a GET of `url`, streamed (redirects followed, the system's CA roots).
fn open_url(url: &str) -> anyhow::Result<impl Read + use<>> {
    let response = crate::registry::client::simple_agent(true)
        .get(url)
        .config()
        .max_redirects(10)
        .max_redirects_will_error(true)
        .build()
        .call()
        .with_context(|| format!("cannot download {url}"))?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("cannot download {url}: the server answered {status}");
    }
    Ok(response.into_body().into_reader())
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let name = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()?;
    let changes = parse_changes(&args.change)?;
    let store = super::open_store(global)?;
    let reader: Box<dyn Read> = if args.file == "-" {
        Box::new(std::io::stdin().lock())
    } else if is_url(&args.file) {
        Box::new(open_url(&args.file)?)
    } else {
        Box::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file))?,
        )
    };
    let image = store
        .import_rootfs(reader, name.as_ref(), &changes, args.message.as_deref())
        .context("cannot import the tarball")?;
    outln!("{}", image.id);
    super::load::unpack_now(&store, std::slice::from_ref(&image))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_files() {
        assert!(is_url("http://example.com/rootfs.tar"));
        assert!(is_url("HTTPS://example.com/rootfs.tar.gz"));
        assert!(!is_url("./http://x"));
        assert!(!is_url("rootfs.tar"));
        assert!(!is_url("-"));
    }

    #[test]
    fn dockerfile_changes() {
        let c = parse_changes(&[
            "CMD [\"sh\", \"-c\", \"echo hi\"]".into(),
            "ENTRYPOINT /bin/run".into(),
            "ENV A=1 B=2".into(),
            "ENV C three".into(),
            "WORKDIR /app".into(),
            "USER app".into(),
            "EXPOSE 80 53/udp".into(),
            "LABEL team=core".into(),
            "VOLUME [\"/data\", \"/logs\"]".into(),
            "VOLUME /cache".into(),
            "ONBUILD RUN make".into(),
            "STOPSIGNAL SIGINT".into(),
        ])
        .unwrap();
        assert_eq!(c.volumes, ["/data", "/logs", "/cache"]);
        assert_eq!(c.on_build, ["RUN make"]);
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(c.cmd.unwrap(), ["sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "/bin/run"]);
        assert_eq!(c.env, ["A=1", "B=2", "C=three"]);
        assert_eq!(c.working_dir.as_deref(), Some("/app"));
        assert_eq!(c.user.as_deref(), Some("app"));
        assert_eq!(c.exposed_ports, ["80/tcp", "53/udp"]);
        assert_eq!(c.labels.get("team").map(String::as_str), Some("core"));
        assert!(parse_changes(&["RUN x".into()]).is_err());
    }
}
