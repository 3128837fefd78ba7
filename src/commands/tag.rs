//! `burrow tag SOURCE TARGET...`: give an image more names.

use crate::cli::GlobalArgs;
use crate::reference::Reference;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image to name: a name, id or digest
    #[arg(value_name = "SOURCE_IMAGE")]
    pub source: String,
    /// New names: [REGISTRY/]REPOSITORY[:TAG]
    #[arg(value_name = "TARGET_IMAGE", required = true, num_args = 1..)]
    pub targets: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let store = super::open_store(global)?;
    let image = store.find_image(&args.source)?;
    for t in &args.targets {
        let r = Reference::parse(t)?;
        if r.digest.is_some() {
            anyhow::bail!("{t}: a tag cannot contain a digest");
        }
        store.tag(&image, &r)?;
    }
    Ok(0)
}
