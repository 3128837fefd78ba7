//! `burrow search TERM`: search Docker Hub (or a registry's catalog) for images.

use crate::cli::GlobalArgs;
use crate::registry::cli_args::RegistryArgs;
use crate::registry::search::{SearchResult, search};

/// `burrow search --help`: what the command does beyond its one-line summary.
pub const LONG_ABOUT: &str = "Search Docker Hub (or another registry) for images.\n\n\
TERM alone searches Docker Hub. REGISTRY/TERM searches that registry: its /v1/search if it \
has one, else the repositories of its /v2/_catalog whose name contains TERM; a registry \
with neither is reported as not supporting search.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to search for; REGISTRY/TERM searches that registry
    #[arg(value_name = "TERM")]
    pub term: String,
    /// Maximum number of results
    #[arg(long, default_value_t = 25)]
    pub limit: usize,
    /// Go-template-like format: {{.Name}}, {{.Description}}, {{.StarCount}},
    /// {{.IsOfficial}}, {{.IsAutomated}}, {{.Index}}; a "table " prefix prints a header
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate descriptions
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter: stars=N, is-official=true|false, is-automated=true|false
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

fn header(name: &str) -> Option<String> {
    Some(
        match name {
            "Name" => "NAME",
            "Description" => "DESCRIPTION",
            "StarCount" | "Stars" => "STARS",
            "IsOfficial" | "Official" => "OFFICIAL",
            "IsAutomated" | "Automated" => "AUTOMATED",
            "Index" => "INDEX",
            _ => return None,
        }
        .to_string(),
    )
}

fn field(r: &SearchResult, name: &str) -> Option<String> {
    Some(match name {
        "Name" => r.name.clone(),
        "Description" => r.description.clone(),
        "StarCount" | "Stars" => r.stars.to_string(),
        "IsOfficial" | "Official" => r.official.to_string(),
        "IsAutomated" | "Automated" => r.automated.to_string(),
        "Index" => r.index.clone(),
        _ => return None,
    })
}

/// Expand `{{.Field}}` placeholders (and `\t`, `\n`).
pub fn render(format: &str, r: &SearchResult) -> anyhow::Result<String> {
    render_with(format, |name| field(r, name))
}

fn render_with(format: &str, value: impl Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = format;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after
            .find("}}")
            .ok_or_else(|| anyhow::anyhow!("--format: unclosed {{{{ in {format:?}"))?;
        let name = after[..j].trim().trim_start_matches('.');
        out.push_str(
            &value(name).ok_or_else(|| anyhow::anyhow!("--format: unknown field {name:?}"))?,
        );
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out.replace("\\t", "\t").replace("\\n", "\n"))
}

fn truncate(s: &str, n: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= n {
        s
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn keep(r: &SearchResult, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, v)| match k.as_str() {
        "stars" => v.parse::<u64>().is_ok_and(|n| r.stars >= n),
        "is-official" => v.parse::<bool>().is_ok_and(|b| r.official == b),
        "is-automated" => v.parse::<bool>().is_ok_and(|b| r.automated == b),
        _ => true,
    })
}

pub fn run(_global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let mut filters = Vec::new();
    for f in &args.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--filter {f:?}: expected KEY=VALUE"))?;
        if !["stars", "is-official", "is-automated"].contains(&k) {
            anyhow::bail!("--filter {f:?}: unknown filter {k:?}");
        }
        filters.push((k.to_string(), v.to_string()));
    }
    let results: Vec<SearchResult> =
        search(&args.term, args.limit, &args.registry.client_options())?
            .into_iter()
            .filter(|r| keep(r, &filters))
            .collect();
    match args.format.as_deref() {
        Some(f) => {
            let (table, f) = match f.strip_prefix("table ") {
                Some(rest) => (true, rest),
                None => (false, f),
            };
            if table {
                let line = render_with(f, header)?;
                outln!("{line}");
            }
            for r in &results {
                outln!("{}", render(f, r)?);
            }
        }
        None => {
            let rows: Vec<[String; 4]> = results
                .iter()
                .map(|r| {
                    [
                        r.name.clone(),
                        if args.no_trunc {
                            r.description.replace('\n', " ")
                        } else {
                            truncate(&r.description, 45)
                        },
                        r.stars.to_string(),
                        if r.official {
                            "[OK]".into()
                        } else {
                            String::new()
                        },
                    ]
                })
                .collect();
            let header = ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"].map(String::from);
            let mut widths = header.clone().map(|h| h.chars().count());
            for row in &rows {
                for (w, c) in widths.iter_mut().zip(row) {
                    *w = (*w).max(c.chars().count());
                }
            }
            for row in std::iter::once(&header).chain(rows.iter()) {
                let mut line = String::new();
                for (i, (c, w)) in row.iter().zip(widths).enumerate() {
                    if i + 1 == row.len() {
                        line.push_str(c);
                    } else {
                        line.push_str(c);
                        line.push_str(&" ".repeat(w - c.chars().count() + 3));
                    }
                }
                outln!("{}", line.trim_end());
            }
        }
    }
    Ok(0)
}
