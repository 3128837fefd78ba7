//! Image references, normalised the way docker does:
//! `alpine` → `docker.io/library/alpine:latest`, `user/x` → `docker.io/user/x:latest`,
//! `host:port/x:tag`, `x@sha256:...`, and tag and digest together.

use std::fmt;
use std::str::FromStr;

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?}: {1}")]
    Invalid(String, &'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port if any (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// Repository path inside the registry (`library/alpine`).
    pub repository: String,
    pub tag: Option<String>,
    /// `algorithm:hex`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parse and normalise; a reference with neither tag nor digest gets `latest`.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let bad = |why| ReferenceError::Invalid(input.to_string(), why);
        if input.is_empty() {
            return Err(bad("empty reference"));
        }
        let (name, digest) = match input.split_once('@') {
            Some((n, d)) => {
                validate_digest(d).map_err(bad)?;
                (n, Some(d.to_string()))
            }
            None => (input, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &name[last_slash + i + 1..];
                validate_tag(tag).map_err(bad)?;
                (&name[..last_slash + i], Some(tag.to_string()))
            }
            None => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = registry.to_ascii_lowercase();
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        validate_repository(&repository).map_err(bad)?;
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What to fetch from a registry's `manifests/` endpoint: the digest when there is one,
    /// else the tag, else `latest`.
    pub fn manifest_ref(&self) -> String {
        self.digest
            .clone()
            .or_else(|| self.tag.clone())
            .unwrap_or_else(|| "latest".to_string())
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The REPOSITORY and TAG columns of docker's listings (`busybox`, `latest`; `<none>`
    /// without a tag).
    pub fn repository_and_tag(&self) -> (String, String) {
        let repo = Reference {
            tag: None,
            digest: None,
            ..self.clone()
        };
        (
            repo.familiar(),
            self.tag.clone().unwrap_or_else(|| "<none>".into()),
        )
    }

    /// The shortest form docker would print (`busybox:latest`, `user/x:1`, `host:5000/x:1`).
    pub fn familiar(&self) -> String {
        let mut s = if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest);
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn validate_digest(d: &str) -> Result<(), &'static str> {
    let (alg, hex) = d.split_once(':').ok_or("digest must be algorithm:hex")?;
    let ok_len = match alg {
        "sha256" => hex.len() == 64,
        "sha512" => hex.len() == 128,
        _ => return Err("unsupported digest algorithm"),
    };
    if !ok_len
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("malformed digest");
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), &'static str> {
    let mut bytes = tag.bytes();
    let first_ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_');
    if !first_ok
        || tag.len() > 128
        || !bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err("malformed tag");
    }
    Ok(())
}

fn validate_repository(repo: &str) -> Result<(), &'static str> {
    if repo.is_empty() {
        return Err("empty repository name");
    }
    for component in repo.split('/') {
        let b = component.as_bytes();
        if b.is_empty() {
            return Err("empty path component");
        }
        if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
            return Err("repository name components must start and end with a letter or digit");
        }
        if !b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
        {
            return Err("repository name must be lowercase");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(norm("user/x"), "docker.io/user/x:latest");
        assert_eq!(norm("localhost:5000/x:1"), "localhost:5000/x:1");
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        assert_eq!(norm("ghcr.io/org/app:v1.2"), "ghcr.io/org/app:v1.2");
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            norm(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            norm(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
    }

    #[test]
    fn familiar_names() {
        assert_eq!(
            Reference::parse("alpine").unwrap().familiar(),
            "alpine:latest"
        );
        assert_eq!(Reference::parse("a/b:1").unwrap().familiar(), "a/b:1");
        assert_eq!(Reference::parse("h:1/b:1").unwrap().familiar(), "h:1/b:1");
    }

    #[test]
    fn bad_references() {
        for bad in ["", "UPPER", "a//b", "x:", "x@sha256:abc", "-x", "x:-bad"] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
