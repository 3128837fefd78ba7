//! `burrow wait`: block until containers stop, then print their exit codes.

use crate::cli::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Containers to wait for
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let containers = super::open_containers(global)?;
    let mut failed = false;
    for key in &args.containers {
        match containers.find(key) {
            Ok(record) => {
                containers.wait_unlocked(&record.id);
                let code = containers
                    .load(&record.id)
                    .map_or(record.exit_code, |r| r.exit_code);
                outln!("{code}");
            }
            Err(e) => {
                errln!("burrow: {e}");
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}
