//! `burrow images`: list images.

use crate::cli::GlobalArgs;
use crate::reference::Reference;

use super::format::{ago, human_size, table};

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
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let store = super::open_store(global)?;
    let images = store.images()?;
    let id = |d: &crate::storage::Digest| {
        if args.no_trunc {
            d.to_string()
        } else {
            d.hex()[..12].to_string()
        }
    };
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for image in &images {
            if seen.insert(image.id.clone()) {
                println!("{}", id(&image.id));
            }
        }
        return Ok(0);
    }
    let mut rows = vec![
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
            .map(String::from)
            .to_vec(),
    ];
    for image in &images {
        let created = ago(image.created.as_deref());
        let size = human_size(image.size);
        let names: Vec<(String, String)> = image
            .names
            .iter()
            .filter_map(|n| Reference::parse(n).ok())
            .map(|r| {
                let familiar = Reference { tag: None, digest: None, ..r.clone() }.familiar();
                (familiar, r.tag.unwrap_or_else(|| "<none>".into()))
            })
            .collect();
        if names.is_empty() {
            rows.push(vec!["<none>".into(), "<none>".into(), id(&image.id), created, size]);
            continue;
        }
        for (repo, tag) in names {
            rows.push(vec![repo, tag, id(&image.id), created.clone(), size.clone()]);
        }
    }
    print!("{}", table(&rows));
    Ok(0)
}
