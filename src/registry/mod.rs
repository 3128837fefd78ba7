//! Talking to OCI registries: references, auth, pull and push.
//!
//! The network client is synchronous (`ureq` over rustls): parallel transfers run on scoped
//! threads that are all joined before a pull or push returns, so no thread is alive when burrow
//! later forks into its user namespace.

pub mod auth;
pub mod cli_args;
pub mod client;
pub mod manifest;
mod parallel;
pub mod progress;
pub mod pull;
pub mod push;
pub mod registries_conf;
pub mod search;
pub mod tags;

use std::path::PathBuf;

use crate::reference::ReferenceError;
use crate::storage::StorageError;

pub use client::{ClientOptions, RegistryClient};
pub use pull::{PullPolicy, ensure_image};

/// Everything that can go wrong talking to a registry, worded so that a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    #[error(
        "unauthorized: authentication required for {registry}/{repository}: run 'burrow login {registry}'"
    )]
    Unauthorized {
        registry: String,
        repository: String,
    },

    #[error("unauthorized: the registry {registry} rejected the credentials{detail}")]
    BadCredentials { registry: String, detail: String },

    #[error(
        "denied: access to {registry}/{repository} was refused{detail}: check that the repository exists and that your account may use it"
    )]
    Denied {
        registry: String,
        repository: String,
        detail: String,
    },

    #[error("{reference}: manifest unknown: no such tag or digest in the registry")]
    ManifestUnknown { reference: String },

    #[error("{reference}: repository name not known to the registry")]
    NameUnknown { reference: String },

    #[error(
        "{reference}: no image for platform {platform} in the manifest list (available: {available})"
    )]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },

    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("{reference}: unsupported manifest type {media_type:?}")]
    UnsupportedManifest {
        reference: String,
        media_type: String,
    },

    #[error("{context}: invalid manifest: {message}")]
    BadManifest { context: String, message: String },

    #[error("{method} {url}: the registry answered {status}{message}")]
    Http {
        method: String,
        url: String,
        status: u16,
        message: String,
    },

    #[error("cannot reach registry {registry}: {message}{hint}")]
    Connect {
        registry: String,
        message: String,
        hint: String,
    },

    #[error("{registry}: {message}")]
    Transfer { registry: String, message: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Storage(#[from] StorageError),

    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("credential helper docker-credential-{helper}: {message}")]
    CredentialHelper { helper: String, message: String },

    #[error(
        "No such image: {reference}: it is not in local storage and --pull=never forbids pulling it"
    )]
    NotPresent { reference: String },

    #[error("{registry} does not support search")]
    SearchUnsupported { registry: String },

    #[error("{0}")]
    Other(String),
}

impl RegistryError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RegistryError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Parse `sha256:hex` into the store's digest type.
pub(crate) fn store_digest(s: &str) -> Result<crate::storage::Digest> {
    s.parse::<crate::storage::Digest>()
        .map_err(|e| RegistryError::Other(format!("{s}: invalid digest: {e}")))
}

/// Validate a `sha256:hex` digest string as received from a registry.
pub(crate) fn check_digest_str(s: &str) -> Result<()> {
    match s.split_once(':') {
        Some(("sha256", hex))
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(RegistryError::Other(format!(
            "unsupported or malformed digest {s:?} (only sha256 is supported)"
        ))),
    }
}

/// `sha256:hex` of some bytes.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
