//! Listing a repository's tags (`pull --all-tags`): `GET /v2/NAME/tags/list`, page by page
//! through the `Link: <...>; rel="next"` header as the distribution spec has it.

use serde::Deserialize;

use super::client::{ClientOptions, RegistryClient, ReqBody, resolve_location, scope};
use super::registries_conf::RegistriesConf;
use super::{RegistryError, Result};
use crate::reference::Reference;

/// Pages larger than this are a broken or hostile registry.
const MAX_PAGE: u64 = 8 << 20;
/// Registries cap pages themselves; this bounds a registry that keeps sending `next`.
const MAX_PAGES: usize = 10_000;

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The `next` URL of a `Link` header, if any.
pub fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|part| {
        let (url, params) = part.trim().split_once(';')?;
        params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"))
            .then(|| url.trim().trim_start_matches('<').trim_end_matches('>'))
    })
}

/// Every tag of the repository `input` names (a name without tag or digest; short names go
/// through registries.conf), as references, sorted.
pub fn list_tags(input: &str, opts: &ClientOptions) -> Result<Vec<Reference>> {
    let conf = RegistriesConf::load()?;
    let mut first_err = None;
    for reference in conf.resolve(input)? {
        let insecure = conf.is_insecure(&reference.registry);
        match tags_of(&reference, insecure, opts) {
            Ok(tags) => {
                return Ok(tags
                    .into_iter()
                    .map(|tag| Reference {
                        tag: Some(tag),
                        digest: None,
                        ..reference.clone()
                    })
                    .collect());
            }
            Err(e) => {
                log::info!("{}: {e}", reference.repository);
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| RegistryError::Other(format!("{input}: no such repository"))))
}

fn tags_of(reference: &Reference, insecure: bool, opts: &ClientOptions) -> Result<Vec<String>> {
    let client = RegistryClient::connect(
        &reference.registry,
        Some(&reference.repository),
        insecure,
        opts,
    )?;
    let repository = reference.repository.as_str();
    let scopes = vec![scope(repository, "pull")];
    let mut url = format!("{}?n=1000", client.url(&format!("{repository}/tags/list")));
    let mut tags = Vec::new();
    for _ in 0..MAX_PAGES {
        let mut resp = client.send("GET", &url, &scopes, &[], ReqBody::Empty)?;
        if resp.status().as_u16() != 200 {
            return Err(client.status_error("GET", &url, repository, "tags", resp));
        }
        let next = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(next_link)
            .map(|n| resolve_location(&url, n));
        let page: TagList = resp
            .body_mut()
            .with_config()
            .limit(MAX_PAGE)
            .read_to_vec()
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| RegistryError::Transfer {
                registry: reference.registry.clone(),
                message: format!("{repository}: reading the tag list: {e}"),
            })?;
        tags.extend(page.tags.unwrap_or_default());
        match next {
            Some(n) => url = n,
            None => {
                tags.sort();
                tags.dedup();
                return Ok(tags);
            }
        }
    }
    Err(RegistryError::Transfer {
        registry: reference.registry.clone(),
        message: format!("{repository}: the tag list does not end"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next() {
        assert_eq!(
            next_link(r#"</v2/app/tags/list?n=2&last=b>; rel="next""#),
            Some("/v2/app/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<https://r/x?p=1>; rel="prev", <https://r/x?p=3>; rel="next""#),
            Some("https://r/x?p=3")
        );
        assert_eq!(next_link(r#"</v2/x>; rel="prev""#), None);
        assert_eq!(next_link(""), None);
    }
}
