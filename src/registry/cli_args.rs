//! Command-line options shared by the commands that talk to registries.

use std::path::PathBuf;

use super::client::ClientOptions;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryArgs {
    /// Require HTTPS and verify certificates (default); --tls-verify=false allows plain HTTP
    /// and skips certificate verification
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub tls_verify: Option<bool>,
    /// Directory of certificates for the registry (*.crt CAs, *.cert/*.key client
    /// certificate) instead of /etc/containers/certs.d/HOST
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Credentials file (default: $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

impl RegistryArgs {
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            authfile: self.authfile.clone(),
            creds: None,
            no_stored_creds: false,
        }
    }
}
