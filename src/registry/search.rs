//! `search`: Docker Hub's search API (`/v1/search`), and for other registries their
//! `/v1/search` if they have one, else the `/v2/_catalog` filtered by the term.

use serde::Deserialize;

use super::client::{ClientOptions, RegistryClient, ReqBody, urlencode};
use super::registries_conf::RegistriesConf;
use super::{RegistryError, Result};
use crate::reference::DEFAULT_REGISTRY;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchResult {
    /// The full name to pull (`docker.io/library/alpine`).
    pub index: String,
    pub name: String,
    pub description: String,
    pub stars: u64,
    pub official: bool,
    pub automated: bool,
}

#[derive(Deserialize)]
struct V1Result {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    star_count: u64,
    #[serde(default)]
    is_official: bool,
    #[serde(default)]
    is_automated: bool,
}

#[derive(Deserialize)]
struct V1Response {
    #[serde(default)]
    results: Vec<V1Result>,
}

/// Split `TERM` into (registry, term): `localhost:5000/foo` searches `foo` on localhost:5000;
/// anything else searches Docker Hub.
pub fn split_term(term: &str) -> (String, String) {
    if let Some((first, rest)) = term.split_once('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        return (first.to_string(), rest.to_string());
    }
    (DEFAULT_REGISTRY.to_string(), term.to_string())
}

pub fn search(term: &str, limit: usize, opts: &ClientOptions) -> Result<Vec<SearchResult>> {
    let (registry, query) = split_term(term);
    let conf = RegistriesConf::load()?;
    let insecure = conf.is_insecure(&registry);
    if registry == DEFAULT_REGISTRY {
        return hub_search(&query, limit, opts);
    }
    let client = RegistryClient::connect(&registry, None, insecure, opts)?;
    // Registries with a v1 search endpoint (e.g. Quay) answer it; distribution answers 404.
    let url = format!(
        "{}?q={}&n={limit}",
        client.url("").replace("/v2/", "/v1/search"),
        urlencode(&query)
    );
    if let Ok(mut resp) = client.send("GET", &url, &[], &[], ReqBody::Empty)
        && resp.status().as_u16() == 200
        && let Ok(v) = resp
            .body_mut()
            .with_config()
            .limit(8 << 20)
            .read_to_vec()
            .ok()
            .and_then(|b| serde_json::from_slice::<V1Response>(&b).ok())
            .ok_or(())
    {
        return Ok(convert(&registry, v.results, limit));
    }
    // The catalog: needs the `registry:catalog:*` scope.
    let url = format!("{}?n=1000", client.url("_catalog"));
    let scopes = vec!["registry:catalog:*".to_string()];
    let mut resp = client.send("GET", &url, &scopes, &[], ReqBody::Empty)?;
    match resp.status().as_u16() {
        200 => {}
        401 | 403 if !client.has_credentials() => {
            return Err(RegistryError::Unauthorized {
                registry: registry.clone(),
                repository: "_catalog".to_string(),
            });
        }
        _ => return Err(RegistryError::SearchUnsupported { registry }),
    }
    #[derive(Deserialize)]
    struct Catalog {
        #[serde(default)]
        repositories: Vec<String>,
    }
    let catalog: Catalog = resp
        .body_mut()
        .with_config()
        .limit(32 << 20)
        .read_to_vec()
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|_| RegistryError::SearchUnsupported {
            registry: registry.clone(),
        })?;
    let q = query.to_ascii_lowercase();
    Ok(catalog
        .repositories
        .into_iter()
        .filter(|r| r.to_ascii_lowercase().contains(&q))
        .take(limit)
        .map(|r| SearchResult {
            index: registry.clone(),
            name: format!("{registry}/{r}"),
            ..Default::default()
        })
        .collect())
}

fn convert(registry: &str, results: Vec<V1Result>, limit: usize) -> Vec<SearchResult> {
    results
        .into_iter()
        .take(limit)
        .map(|r| SearchResult {
            index: registry.to_string(),
            name: if registry == DEFAULT_REGISTRY {
                r.name.clone()
            } else {
                format!("{registry}/{}", r.name)
            },
            description: r.description.unwrap_or_default(),
            stars: r.star_count,
            official: r.is_official,
            automated: r.is_automated,
        })
        .collect()
}

fn hub_search(query: &str, limit: usize, opts: &ClientOptions) -> Result<Vec<SearchResult>> {
    let base = std::env::var("BURROW_DOCKERHUB_SEARCH_URL")
        .unwrap_or_else(|_| "https://index.docker.io/v1/search".to_string());
    let url = format!("{base}?q={}&n={limit}", urlencode(query));
    let agent = super::client::simple_agent(opts.tls_verify != Some(false));
    let mut resp = agent.get(&url).call().map_err(|e| RegistryError::Connect {
        registry: DEFAULT_REGISTRY.to_string(),
        message: e.to_string(),
        hint: String::new(),
    })?;
    if resp.status().as_u16() != 200 {
        return Err(RegistryError::Http {
            method: "GET".into(),
            url: base,
            status: resp.status().as_u16(),
            message: String::new(),
        });
    }
    let v: V1Response = resp
        .body_mut()
        .with_config()
        .limit(8 << 20)
        .read_to_vec()
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| RegistryError::Other(format!("Docker Hub search: {e}")))?;
    Ok(convert(DEFAULT_REGISTRY, v.results, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_split() {
        assert_eq!(split_term("alpine"), ("docker.io".into(), "alpine".into()));
        assert_eq!(split_term("user/x"), ("docker.io".into(), "user/x".into()));
        assert_eq!(
            split_term("localhost:5000/foo"),
            ("localhost:5000".into(), "foo".into())
        );
    }
}
