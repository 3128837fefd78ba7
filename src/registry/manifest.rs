//! Image manifests and indexes as registries serve them: Docker schema2 and OCI, Docker
//! manifest lists and OCI indexes, and platform selection.

use serde::{Deserialize, Serialize};

use super::{RegistryError, Result};

pub use crate::storage::manifest::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST as DOCKER_LIST, OCI_INDEX, OCI_MANIFEST,
};
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for manifest requests.
pub fn accept_header() -> String {
    [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(", ")
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest document.
#[derive(Debug, Clone)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// Parse a manifest, using the `mediaType` field or the `Content-Type` the registry sent.
pub fn parse(
    bytes: &[u8],
    content_type: Option<&str>,
    context: &str,
) -> Result<(Manifest, String)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        schema_version: Option<u32>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let bad = |message: String| RegistryError::BadManifest {
        context: context.to_string(),
        message,
    };
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "text/plain");
    let media_type = probe
        .media_type
        .clone()
        .or_else(|| content_type.map(str::to_string))
        .unwrap_or_else(|| {
            if probe.manifests.is_some() {
                OCI_INDEX.to_string()
            } else if probe.config.is_some() {
                OCI_MANIFEST.to_string()
            } else {
                String::new()
            }
        });
    match media_type.as_str() {
        DOCKER_MANIFEST | OCI_MANIFEST => {
            let m: ImageManifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
            Ok((Manifest::Image(m), media_type))
        }
        DOCKER_LIST | OCI_INDEX => {
            let m: ImageIndex = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
            Ok((Manifest::Index(m), media_type))
        }
        _ if probe.schema_version == Some(1) => Err(RegistryError::UnsupportedManifest {
            reference: context.to_string(),
            media_type: if media_type.is_empty() {
                DOCKER_SCHEMA1.to_string()
            } else {
                media_type
            },
        }),
        _ => Err(RegistryError::UnsupportedManifest {
            reference: context.to_string(),
            media_type,
        }),
    }
}

/// The host's platform as registries name it.
pub fn host_platform() -> Platform {
    let arch = crate::storage::manifest::host_architecture();
    // Registries name the ARM generation too; 64-bit ARM is always v8.
    let variant = match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    };
    Platform {
        architecture: arch.to_string(),
        os: "linux".to_string(),
        variant: variant.map(str::to_string),
        os_version: None,
    }
}

/// Parse `os/arch[/variant]` (`linux/arm64`, `linux/arm/v7`; `arm64` alone means linux).
pub fn parse_platform(s: &str) -> Result<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    let norm_arch = |a: &str| match a {
        "x86_64" | "x86-64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        "i386" => "386".to_string(),
        a => a.to_ascii_lowercase(),
    };
    let (os, arch, variant) = match parts.as_slice() {
        [arch] if !arch.is_empty() => ("linux".to_string(), norm_arch(arch), None),
        [os, arch] if !os.is_empty() && !arch.is_empty() => {
            (os.to_ascii_lowercase(), norm_arch(arch), None)
        }
        [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => (
            os.to_ascii_lowercase(),
            norm_arch(arch),
            Some(variant.to_ascii_lowercase()),
        ),
        _ => {
            return Err(RegistryError::Other(format!(
                "invalid platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64"
            )));
        }
    };
    Ok(Platform {
        architecture: arch,
        os,
        variant,
        os_version: None,
    })
}

fn norm_variant(p: &Platform) -> Option<String> {
    match (p.architecture.as_str(), p.variant.as_deref()) {
        ("arm64", None | Some("v8")) => None,
        // An arm image without a variant is v7, as docker and containerd read it.
        ("arm", None) => Some("v7".to_string()),
        (_, v) => v.map(str::to_string),
    }
}

/// The variants that run where `variant` does, best first: an arm v7 machine runs v6 and v5
/// images too (containerd's order).
fn compatible_variants(arch: &str, variant: Option<&str>) -> Vec<Option<String>> {
    let arm_order = ["v8", "v7", "v6", "v5"];
    match (arch, variant) {
        ("arm", Some(v)) if arm_order.contains(&v) => arm_order
            .iter()
            .skip_while(|a| **a != v)
            .map(|a| Some(a.to_string()))
            .collect(),
        (_, v) => vec![v.map(str::to_string)],
    }
}

/// Pick the manifest for `want` from an index: os and arch must match; the variant too, or
/// one the wanted variant runs (arm v7 runs v6 images). An arm platform without a variant
/// means v7, as docker has it. Without an explicit variant, any variant of the architecture
/// is the last resort.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    want: &Platform,
    explicit: bool,
) -> Option<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
        })
        .collect();
    let want_variant = norm_variant(want);
    for variant in compatible_variants(&want.architecture, want_variant.as_deref()) {
        if let Some(d) = candidates
            .iter()
            .find(|d| d.platform.as_ref().map(norm_variant) == Some(variant.clone()))
        {
            return Some(d);
        }
    }
    if explicit && want.variant.is_some() {
        return None;
    }
    candidates.first().copied()
}

/// The platforms an index offers, for error messages.
pub fn available_platforms(index: &ImageIndex) -> String {
    let list: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| p.os != "unknown")
        .map(|p| p.to_string())
        .collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ImageIndex {
        let json = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,"platform":{"architecture":"amd64","os":"linux"}},
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":1,"platform":{"architecture":"arm","os":"linux","variant":"v6"}},
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cc","size":1,"platform":{"architecture":"arm","os":"linux","variant":"v7"}},
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:dd","size":1,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
          {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:ee","size":1,"platform":{"architecture":"unknown","os":"unknown"}}
        ]}"#;
        match parse(json.as_bytes(), None, "t").unwrap().0 {
            Manifest::Index(i) => i,
            _ => panic!(),
        }
    }

    #[test]
    fn platform_selection() {
        let i = index();
        let pick = |s: &str| {
            select_platform(&i, &parse_platform(s).unwrap(), true).map(|d| d.digest.clone())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("sha256:aa"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("sha256:cc"));
        assert_eq!(pick("linux/arm64").as_deref(), Some("sha256:dd"));
        assert_eq!(pick("linux/arm64/v8").as_deref(), Some("sha256:dd"));
        assert_eq!(pick("linux/s390x"), None);
        // arm v5 runs no v6/v7 image.
        assert_eq!(pick("linux/arm/v5"), None);
        // linux/arm means v7, as docker has it, not the first arm entry (v6).
        assert_eq!(pick("linux/arm").as_deref(), Some("sha256:cc"));
        assert!(available_platforms(&i).contains("linux/arm/v7"));
        assert!(!available_platforms(&i).contains("unknown"));
    }

    #[test]
    fn arm_variants_fall_back_to_older_ones() {
        let i = index();
        let mut only_v6 = i.clone();
        only_v6
            .manifests
            .retain(|d| d.digest != "sha256:cc" && d.digest != "sha256:dd");
        let pick = |idx: &ImageIndex, s: &str| {
            select_platform(idx, &parse_platform(s).unwrap(), true).map(|d| d.digest.clone())
        };
        assert_eq!(pick(&only_v6, "linux/arm").as_deref(), Some("sha256:bb"));
        assert_eq!(pick(&only_v6, "linux/arm/v7").as_deref(), Some("sha256:bb"));
        assert_eq!(pick(&only_v6, "linux/arm/v6").as_deref(), Some("sha256:bb"));
        // An image without a variant counts as v7.
        let mut bare = i.clone();
        bare.manifests.retain(|d| d.digest != "sha256:cc");
        bare.manifests[1].platform.as_mut().unwrap().variant = None;
        assert_eq!(pick(&bare, "linux/arm/v7").as_deref(), Some("sha256:bb"));
    }

    #[test]
    fn media_types() {
        let m = br#"{"schemaVersion":2,"config":{"digest":"sha256:aa","size":1},"layers":[]}"#;
        assert_eq!(
            parse(m, Some(DOCKER_MANIFEST), "t").unwrap().1,
            DOCKER_MANIFEST
        );
        assert_eq!(parse(m, None, "t").unwrap().1, OCI_MANIFEST);
        let s1 = br#"{"schemaVersion":1,"name":"x"}"#;
        assert!(matches!(
            parse(s1, Some(DOCKER_SCHEMA1_SIGNED), "t"),
            Err(RegistryError::UnsupportedManifest { .. })
        ));
    }
}
