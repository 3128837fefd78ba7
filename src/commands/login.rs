//! `burrow login [SERVER]`: check credentials against a registry and store them in auth.json.

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::Context as _;

use crate::cli::GlobalArgs;
use crate::registry::auth::{self, Credentials};
use crate::registry::cli_args::RegistryArgs;
use crate::registry::client::RegistryClient;
use crate::registry::registries_conf::RegistriesConf;

/// `burrow login --help`: what the command does beyond its one-line summary.
pub const LONG_ABOUT: &str = "Log in to a registry: check the credentials against it, then store them.\n\n\
The password comes from --password-stdin (preferred), --password (insecure: other \
processes can see it; burrow warns), or a prompt without echo when standard input is a \
terminal. Credentials are stored in --authfile, else $REGISTRY_AUTH_FILE, else \
$XDG_RUNTIME_DIR/containers/auth.json (mode 0600). SERVER may be REGISTRY/NAMESPACE to \
store credentials used only for repositories under that namespace.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Registry to log in to (default: docker.io); REGISTRY/NAMESPACE stores credentials for
    /// that namespace only
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (insecure: visible to other processes; prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password (or token) from standard input
    #[arg(long)]
    pub password_stdin: bool,
    /// Print the username stored for the registry and exit
    #[arg(long)]
    pub get_login: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `https://host/v1/` → `host`; default docker.io.
pub fn server_key(server: Option<&str>) -> String {
    match server {
        Some(s) if !s.is_empty() => auth::normalize_key(s),
        _ => crate::reference::DEFAULT_REGISTRY.to_string(),
    }
}

fn prompt_line(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Read a line from the terminal without echo.
fn prompt_secret(prompt: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("reading the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    // Echo goes off before the prompt shows: whatever is typed after it is never echoed.
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning echo off")?;
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    r?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub fn run(_global: &GlobalArgs, args: Args) -> anyhow::Result<u8> {
    let key = server_key(args.server.as_deref());
    let registry = key.split('/').next().unwrap_or(&key).to_string();
    let authfile = args.registry.authfile.as_deref();
    if args.get_login {
        let (host, repo) = match key.split_once('/') {
            Some((h, r)) => (h, Some(r)),
            None => (key.as_str(), None),
        };
        return match auth::lookup(host, repo, authfile)? {
            Some(c) => {
                outln!("{}", c.username());
                Ok(0)
            }
            None => anyhow::bail!("not logged in to {key}"),
        };
    }
    if args.password.is_some() && args.password_stdin {
        anyhow::bail!("--password and --password-stdin cannot be used together");
    }
    let tty = std::io::stdin().is_terminal();
    let username = match &args.username {
        Some(u) => u.clone(),
        None if args.password_stdin => {
            anyhow::bail!("--password-stdin needs --username")
        }
        None if tty => prompt_line("Username: ")?,
        None => anyhow::bail!("no username: pass --username (and --password-stdin)"),
    };
    if username.is_empty() {
        anyhow::bail!("the username is empty");
    }
    let password = if let Some(p) = &args.password {
        errln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else if args.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from standard input")?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else if tty {
        prompt_secret("Password: ")?
    } else {
        anyhow::bail!("no password: pass --password-stdin and write it to standard input")
    };
    if password.is_empty() {
        anyhow::bail!("the password is empty");
    }
    let creds = Credentials::Basic { username, password };
    let conf = RegistriesConf::load()?;
    let mut opts = args.registry.client_options();
    opts.creds = Some(creds.clone());
    opts.no_stored_creds = true;
    let client = RegistryClient::connect(&registry, None, conf.is_insecure(&registry), &opts)?;
    client.check_login()?;
    drop(client);
    let path = auth::store(authfile, &key, &creds)?;
    log::debug!("credentials for {key} stored in {}", path.display());
    outln!("Login Succeeded!");
    Ok(0)
}
