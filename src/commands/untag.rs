//! `burrow untag IMAGE [NAME...]`: remove names from an image (all of them without NAME).

use crate::cli::GlobalArgs;
use crate::reference::Reference;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image whose names to remove
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Names to remove (default: every name of the image)
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let store = super::open_store(global)?;
    let image = store.find_image(&args.image)?;
    let names: Vec<String> = if args.names.is_empty() {
        image.names.clone()
    } else {
        args.names.clone()
    };
    for n in &names {
        let r = Reference::parse(n)?;
        if !args.names.is_empty() && !image.names.iter().any(|have| *have == r.to_string()) {
            anyhow::bail!("{n}: not a name of image {}", args.image);
        }
        store.untag(&r)?;
    }
    Ok(0)
}
