//! `burrow images` (= `image ls`): list images, with docker's filters.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, bail};

use crate::cli::GlobalArgs;
use crate::reference::Reference;
use crate::storage::{Digest, ImageRecord, Store};

use super::format::{ago, human_size, human_size_with_precision, table};
use super::image_size::LayerSizes;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only show image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Show all images (burrow keeps no intermediate images, so this lists the same)
    #[arg(short, long)]
    pub all: bool,
    /// Show digests: the registry's manifest digest of an image pulled or pushed (its
    /// RepoDigest), <none> for one loaded, imported or committed, as docker
    #[arg(long)]
    pub digests: bool,
    /// Filter output: dangling=true|false, label=KEY[=VALUE], before=IMAGE, since=IMAGE,
    /// reference=PATTERN
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Only images of this repository[:tag]
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
    /// Format the output using a Go template, "table ...", or "json". SIZE ({{.Size}}) is the
    /// image's unpacked size, as docker shows it (three significant digits; {{.VirtualSize}}
    /// four), not the compressed size of its layers
    #[arg(long)]
    pub format: Option<String>,
}

/// Parsed `--filter` values (several of one kind: any may match, as docker does).
#[derive(Debug, Default)]
pub struct Filters {
    dangling: Option<bool>,
    labels: Vec<(String, Option<String>)>,
    before: Option<ImageRecord>,
    since: Option<ImageRecord>,
    references: Vec<String>,
}

impl Filters {
    pub fn parse(store: &Store, specs: &[String]) -> anyhow::Result<Filters> {
        let mut f = Filters::default();
        for spec in specs {
            let Some((key, value)) = spec.split_once('=') else {
                bail!("bad format of filter (expected name=value): {spec}");
            };
            match key {
                "dangling" => {
                    f.dangling = Some(match value.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => bail!("invalid filter 'dangling={value}'"),
                    })
                }
                "label" => f.labels.push(match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.to_string(), None),
                }),
                "before" => {
                    f.before = Some(
                        store
                            .find_image(value)
                            .with_context(|| format!("filter before={value}"))?,
                    )
                }
                "since" => {
                    f.since = Some(
                        store
                            .find_image(value)
                            .with_context(|| format!("filter since={value}"))?,
                    )
                }
                "reference" => f.references.push(value.to_string()),
                _ => bail!("invalid filter '{key}'"),
            }
        }
        Ok(f)
    }

    /// Whether `image` passes; its names are narrowed to those the reference filters match.
    pub fn apply(&self, store: &Store, image: &mut ImageRecord) -> bool {
        if let Some(d) = self.dangling
            && d != image.names.is_empty()
        {
            return false;
        }
        if !self.labels.is_empty() {
            let labels = image_labels(store, image);
            let ok = self.labels.iter().all(|(k, v)| match (labels.get(k), v) {
                (Some(_), None) => true,
                (Some(have), Some(want)) => have == want,
                (None, _) => false,
            });
            if !ok {
                return false;
            }
        }
        let created = |i: &ImageRecord| i.created.clone().unwrap_or_default();
        if let Some(b) = &self.before
            && created(image) >= created(b)
        {
            return false;
        }
        if let Some(s) = &self.since
            && created(image) <= created(s)
        {
            return false;
        }
        if !self.references.is_empty() {
            image.names.retain(|n| {
                let Ok(r) = Reference::parse(n) else {
                    return false;
                };
                let repo = Reference {
                    tag: None,
                    digest: None,
                    ..r.clone()
                };
                self.references.iter().any(|p| {
                    [
                        repo.familiar(),
                        r.familiar(),
                        repo.to_string(),
                        r.to_string(),
                    ]
                    .iter()
                    .any(|candidate| glob_match(p, candidate))
                })
            });
            if image.names.is_empty() {
                return false;
            }
        }
        true
    }
}

fn image_labels(store: &Store, image: &ImageRecord) -> BTreeMap<String, String> {
    let Ok(bytes) = store.read_blob(&image.id) else {
        return BTreeMap::new();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return BTreeMap::new();
    };
    v["config"]["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Go's `path.Match`: `*` and `?` do not cross `/`, `[...]` classes with `^`/`!` negation
/// and ranges, `\` escapes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => {
                let rest = &p[1..];
                for i in 0..=n.len() {
                    if go(rest, &n[i..]) {
                        return true;
                    }
                    if i < n.len() && n[i] == '/' {
                        break;
                    }
                }
                false
            }
            Some('?') => !n.is_empty() && n[0] != '/' && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(&c) = n.first() else {
                    return false;
                };
                let mut i = 1;
                let negate = matches!(p.get(1), Some('^') | Some('!'));
                if negate {
                    i += 1;
                }
                let mut matched = false;
                let mut first = true;
                while i < p.len() && (p[i] != ']' || first) {
                    first = false;
                    let lo = p[i];
                    if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                        if lo <= c && c <= p[i + 2] {
                            matched = true;
                        }
                        i += 3;
                    } else {
                        if lo == c {
                            matched = true;
                        }
                        i += 1;
                    }
                }
                if i >= p.len() {
                    return false;
                }
                matched != negate && c != '/' && go(&p[i + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// Images sorted as docker lists them: newest first.
pub fn sorted_images(store: &Store) -> anyhow::Result<Vec<ImageRecord>> {
    let mut images = store.images()?;
    images.sort_by(|a, b| b.created.cmp(&a.created));
    Ok(images)
}

pub fn short_or_full(d: &Digest, no_trunc: bool) -> String {
    if no_trunc {
        d.to_string()
    } else {
        d.hex()[..12].to_string()
    }
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let store = super::open_store(global)?;
    let mut filters = args.filter.clone();
    if let Some(repo) = &args.repository {
        filters.push(format!("reference={repo}"));
    }
    let filters = Filters::parse(&store, &filters)?;
    let mut images = Vec::new();
    for mut image in sorted_images(&store)? {
        if filters.apply(&store, &mut image) {
            images.push(image);
        }
    }
    let id = |d: &Digest| short_or_full(d, args.no_trunc);
    if args.quiet {
        let mut seen = HashSet::new();
        for image in &images {
            if seen.insert(image.id.clone()) {
                outln!("{}", id(&image.id));
            }
        }
        return Ok(0);
    }
    let mut header = vec!["REPOSITORY", "TAG"];
    if args.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    let mut items = Vec::new();
    let sizes = LayerSizes::of(&store, &images)?;
    for image in &images {
        let created = ago(image.created.as_deref());
        let bytes = sizes.image(image);
        // docker's `images` rounds to three digits, its deprecated VirtualSize to four.
        let size = human_size_with_precision(bytes, 3);
        let mut names: Vec<(String, String, String)> = image
            .names
            .iter()
            .filter_map(|n| Reference::parse(n).ok())
            .map(|r| {
                let digest = image
                    .repo_digests
                    .iter()
                    .find(|d| d.starts_with(&format!("{}@", r.name())))
                    .and_then(|d| d.split_once('@'))
                    .map(|(_, d)| d.to_string())
                    .unwrap_or_else(|| "<none>".into());
                let (repo, tag) = r.repository_and_tag();
                (repo, tag, digest)
            })
            .collect();
        if names.is_empty() {
            names.push(("<none>".into(), "<none>".into(), "<none>".into()));
        }
        for (repo, tag, digest) in names {
            items.push(serde_json::json!({
                "ID": id(&image.id),
                "Repository": repo,
                "Tag": tag,
                "Digest": digest,
                "CreatedSince": created,
                "CreatedAt": image.created.clone().unwrap_or_default(),
                "Size": size,
                "Containers": "N/A",
                "SharedSize": "N/A",
                "UniqueSize": "N/A",
                "VirtualSize": human_size(bytes),
            }));
            let mut row = vec![repo, tag];
            if args.digests {
                row.push(digest);
            }
            row.extend([id(&image.id), created.clone(), size.clone()]);
            rows.push(row);
        }
    }
    if let Some(format) = &args.format {
        let header = |f: &str| {
            Some(
                match f {
                    "ID" => "IMAGE ID",
                    "CreatedSince" => "CREATED",
                    "Repository" => "REPOSITORY",
                    "Tag" => "TAG",
                    "Digest" => "DIGEST",
                    "Size" => "SIZE",
                    _ => return None,
                }
                .to_string(),
            )
        };
        out!("{}", super::format::render_rows(format, &items, &header)?);
        return Ok(0);
    }
    out!("{}", table(&rows));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_as_go_path_match() {
        assert!(glob_match("busy*", "busybox"));
        assert!(glob_match("*", "busybox"));
        assert!(!glob_match("*", "test/base"));
        assert!(glob_match("test/*", "test/base"));
        assert!(glob_match("test/*:1", "test/base:1"));
        assert!(!glob_match("test/*:2", "test/base:1"));
        assert!(glob_match("b?sybox", "busybox"));
        assert!(glob_match("[a-c]usybox", "busybox"));
        assert!(!glob_match("[^a-c]usybox", "busybox"));
        assert!(glob_match("busybox", "busybox"));
        assert!(!glob_match("busybox", "busybox2"));
    }
}
