//! `burrow logout [SERVER]`: remove stored credentials (`--all`: every registry's).

use crate::cli::GlobalArgs;
use crate::registry::auth;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Registry to log out from (default: docker.io)
    #[arg(value_name = "SERVER", conflicts_with = "all")]
    pub server: Option<String>,
    /// Remove the credentials of every registry from the auth file
    #[arg(short, long)]
    pub all: bool,
    /// Credentials file (default: $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<std::path::PathBuf>,
}

pub fn run(_global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let authfile = args.authfile.as_deref();
    if args.all {
        auth::remove(authfile, None)?;
        outln!("Removed login credentials for all registries");
        return Ok(0);
    }
    let key = super::login::server_key(args.server.as_deref());
    if auth::remove(authfile, Some(&key))? {
        outln!("Removing login credentials for {key}");
        return Ok(0);
    }
    if auth::in_docker_config(&key) {
        anyhow::bail!(
            "not logged in to {key} with burrow: the credentials in docker's config.json were stored by docker; remove them with 'docker logout {key}'"
        );
    }
    anyhow::bail!("not logged in to {key}")
}
