//! `burrow history` (= `image history`): the history of an image, from its config.

use anyhow::Context;
use serde_json::Value;

use crate::cli::GlobalArgs;
use crate::storage::Store;

use super::format::{ago, human_size_with_precision, table};
use super::image_size::LayerSizes;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print sizes and dates in human readable format. SIZE is the unpacked size of the entry's
    /// layer (three significant digits, as docker; 0B for an entry without a layer); bytes with
    /// -H=false
    #[arg(short = 'H', long, default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub human: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Format the output: `table TEMPLATE`, `json`, or a Go template per entry (fields ID,
    /// CreatedSince, CreatedAt, CreatedBy, Size, Comment)
    #[arg(long)]
    pub format: Option<String>,
    /// Image: name, id or digest
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// One row of the history, newest first.
pub struct Entry {
    pub id: Option<String>,
    pub created: Option<String>,
    pub created_by: String,
    pub size: u64,
    pub comment: String,
}

/// The history entries of an image, newest first, each non-empty one with its layer's size.
pub fn entries(store: &Store, image: &crate::storage::ImageRecord) -> anyhow::Result<Vec<Entry>> {
    let config: Value = serde_json::from_slice(&store.read_blob(&image.id)?)
        .with_context(|| format!("config {}", image.id))?;
    let sizes: Vec<u64> = LayerSizes::of(store, std::slice::from_ref(image))?
        .layers(image)
        .into_iter()
        .map(|(_, size)| size)
        .collect();
    let mut out = Vec::new();
    let history = config["history"].as_array().cloned().unwrap_or_default();
    let mut layer = 0;
    if history.is_empty() {
        for size in &sizes {
            out.push(Entry {
                id: None,
                created: config["created"].as_str().map(String::from),
                created_by: String::new(),
                size: *size,
                comment: String::new(),
            });
        }
    }
    for h in &history {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty {
            0
        } else {
            layer += 1;
            sizes.get(layer - 1).copied().unwrap_or(0)
        };
        out.push(Entry {
            id: None,
            created: h["created"].as_str().map(String::from),
            created_by: h["created_by"].as_str().unwrap_or_default().to_string(),
            size,
            comment: h["comment"].as_str().unwrap_or_default().to_string(),
        });
    }
    out.reverse();
    if let Some(top) = out.first_mut() {
        top.id = Some(image.id.to_string());
    }
    Ok(out)
}

/// docker's `stringutils.Ellipsis`.
fn ellipsis(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    let mut out: String = chars[..max - 1].iter().collect();
    out.push('…');
    out
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let store = super::open_store(global)?;
    let image = store.find_image(&args.image).map_err(|e| match e {
        crate::storage::StorageError::ImageNotFound(_) => {
            anyhow::anyhow!("No such image: {}", args.image)
        }
        other => other.into(),
    })?;
    let entries = entries(&store, &image)?;
    let id = |e: &Entry| match &e.id {
        Some(id) if args.no_trunc => id.clone(),
        Some(id) => id.trim_start_matches("sha256:")[..12].to_string(),
        None => "<missing>".to_string(),
    };
    // Each layer's unpacked size; three digits, as docker's `history`.
    let size = |e: &Entry| {
        if args.human {
            human_size_with_precision(e.size, 3)
        } else {
            e.size.to_string()
        }
    };
    if args.quiet {
        for e in &entries {
            outln!("{}", id(e));
        }
        return Ok(0);
    }
    if let Some(format) = &args.format {
        let items: Vec<Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "ID": id(e),
                    "CreatedSince": ago(e.created.as_deref()),
                    "CreatedAt": e.created.clone().unwrap_or_default(),
                    "CreatedBy": e.created_by,
                    "Size": size(e),
                    "Comment": e.comment,
                })
            })
            .collect();
        let header = |f: &str| {
            Some(
                match f {
                    "ID" => "IMAGE",
                    "CreatedSince" => "CREATED",
                    "CreatedAt" => "CREATED AT",
                    "CreatedBy" => "CREATED BY",
                    "Size" => "SIZE",
                    "Comment" => "COMMENT",
                    _ => return None,
                }
                .to_string(),
            )
        };
        out!("{}", super::format::render_rows(format, &items, &header)?);
        return Ok(0);
    }
    let mut rows = vec![
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
            .map(String::from)
            .to_vec(),
    ];
    for e in &entries {
        let created = if args.human {
            ago(e.created.as_deref())
        } else {
            e.created.clone().unwrap_or_default()
        };
        let created_by = e.created_by.replace(['\t', '\n'], " ");
        let created_by = if args.no_trunc {
            created_by
        } else {
            ellipsis(&created_by, 45)
        };
        rows.push(vec![id(e), created, created_by, size(e), e.comment.clone()]);
    }
    out!("{}", table(&rows));
    Ok(0)
}
