//! `push`: every blob of the image (skipped when the registry has it, mounted from another
//! repository of the same registry when the image came from there, else uploaded: monolithic,
//! or in chunks for large blobs), then the manifest last.

use super::client::{ClientOptions, RegistryClient, ReqBody, resolve_location, scope, urlencode};
use super::manifest::{self, Descriptor, Manifest};
use super::parallel;
use super::progress::Progress;
use super::registries_conf::RegistriesConf;
use super::{RegistryError, Result, store_digest};
use crate::reference::Reference;
use crate::storage::Store;

/// Blobs larger than this go up in chunks of this size (`BURROW_PUSH_CHUNK_SIZE` overrides).
pub const DEFAULT_CHUNK_SIZE: u64 = 64 << 20;

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub client: ClientOptions,
    /// Parallel uploads (0: the default).
    pub jobs: usize,
    /// Chunk size for large blobs (0: the default).
    pub chunk_size: u64,
}

#[derive(Debug, Clone)]
pub struct Pushed {
    pub reference: Reference,
    pub digest: String,
    pub size: usize,
}

fn chunk_size(opts: &PushOptions) -> u64 {
    if opts.chunk_size > 0 {
        return opts.chunk_size;
    }
    std::env::var("BURROW_PUSH_CHUNK_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(DEFAULT_CHUNK_SIZE)
}

/// Push the local image `source` as `dest` (default: the source name).
pub fn push(
    store: &Store,
    source: &str,
    dest: Option<&str>,
    opts: &PushOptions,
    progress: &Progress,
) -> Result<Pushed> {
    let image = store.find_image(source)?;
    let dest_ref = match dest {
        Some(d) => Reference::parse(d)?,
        None => Reference::parse(source).map_err(|_| {
            RegistryError::Other(format!(
                "{source}: push needs a name: 'burrow push {source} REGISTRY/REPOSITORY[:TAG]'"
            ))
        })?,
    };
    let manifest_bytes = store.read_blob(&image.manifest_digest)?;
    let (parsed, media_type) =
        manifest::parse(&manifest_bytes, None, &format!("image {}", image.id))?;
    let Manifest::Image(m) = parsed else {
        return Err(RegistryError::BadManifest {
            context: source.to_string(),
            message: "the stored manifest is an index".to_string(),
        });
    };
    let conf = RegistriesConf::load()?;
    let insecure = conf.is_insecure(&dest_ref.registry);
    let client = RegistryClient::connect(
        &dest_ref.registry,
        Some(&dest_ref.repository),
        insecure,
        &opts.client,
    )?;
    let repository = dest_ref.repository.as_str();

    // Other repositories of the same registry the image is known under: blobs can be
    // mounted from there instead of uploaded.
    let mount_from: Vec<String> = image
        .names
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .filter(|r| r.registry == dest_ref.registry && r.repository != dest_ref.repository)
        .map(|r| r.repository)
        .fold(Vec::new(), |mut v, r| {
            if !v.contains(&r) {
                v.push(r);
            }
            v
        });
    let mut scopes = vec![scope(repository, "pull,push")];
    for r in mount_from.iter().take(1) {
        scopes.push(scope(r, "pull"));
    }

    progress.message(&format!(
        "The push refers to repository [{}]",
        dest_ref.name()
    ));
    let mut blobs: Vec<Descriptor> = m.layers.clone();
    blobs.push(m.config.clone());
    upload_all(
        &client,
        store,
        repository,
        &blobs,
        &scopes,
        mount_from.first().map(String::as_str),
        opts,
        progress,
    )?;
    progress.close();

    let target = dest_ref
        .tag
        .clone()
        .or_else(|| dest_ref.digest.clone())
        .unwrap_or_else(|| "latest".to_string());
    let url = client.url(&format!("{repository}/manifests/{target}"));
    let resp = client.send(
        "PUT",
        &url,
        &scopes,
        &[("Content-Type", media_type)],
        ReqBody::Bytes(&manifest_bytes),
    )?;
    if !(200..=202).contains(&resp.status().as_u16()) {
        return Err(client.status_error("PUT", &url, repository, &dest_ref.to_string(), resp));
    }
    let digest = super::sha256_digest(&manifest_bytes);
    if let Some(d) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        && d != digest
    {
        log::warn!("{dest_ref}: the registry reports manifest digest {d}, expected {digest}");
    }
    Ok(Pushed {
        reference: dest_ref,
        digest,
        size: manifest_bytes.len(),
    })
}

#[allow(clippy::too_many_arguments)]
fn upload_all(
    client: &RegistryClient,
    store: &Store,
    repository: &str,
    blobs: &[Descriptor],
    scopes: &[String],
    mount_from: Option<&str>,
    opts: &PushOptions,
    progress: &Progress,
) -> Result<()> {
    let mut todo = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for d in blobs {
        if seen.insert(d.digest.clone()) {
            let row = progress.add(&d.digest, d.size, "Preparing");
            todo.push((row, d));
        }
    }
    let jobs = if opts.jobs == 0 { 4 } else { opts.jobs };
    parallel::for_each(&todo, jobs, |(row, desc), _| {
        upload_blob(
            client, store, repository, desc, scopes, mount_from, opts, progress, *row,
        )
    })
}

fn location_of(
    client: &RegistryClient,
    url: &str,
    resp: &ureq::http::Response<ureq::Body>,
) -> Result<String> {
    let loc = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Transfer {
            registry: client.registry.clone(),
            message: "upload session answered without a Location".to_string(),
        })?;
    Ok(resolve_location(url, loc))
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", urlencode(value))
}

#[allow(clippy::too_many_arguments)]
fn upload_blob(
    client: &RegistryClient,
    store: &Store,
    repository: &str,
    desc: &Descriptor,
    scopes: &[String],
    mount_from: Option<&str>,
    opts: &PushOptions,
    progress: &Progress,
    row: usize,
) -> Result<()> {
    let what = format!("{}/{}@{}", client.registry, repository, desc.digest);
    // Already there?
    let url = client.url(&format!("{repository}/blobs/{}", desc.digest));
    let resp = client.send("HEAD", &url, scopes, &[], ReqBody::Empty)?;
    match resp.status().as_u16() {
        200 => {
            progress.finish(row, "Layer already exists");
            return Ok(());
        }
        404 => {}
        _ => return Err(client.status_error("HEAD", &url, repository, &what, resp)),
    }
    // Start an upload, or mount from another repository.
    let uploads = client.url(&format!("{repository}/blobs/uploads/"));
    let start = match mount_from {
        Some(from) => format!(
            "{uploads}?mount={}&from={}",
            urlencode(&desc.digest),
            urlencode(from)
        ),
        None => uploads.clone(),
    };
    let resp = client.send("POST", &start, scopes, &[], ReqBody::Empty)?;
    let mut location = match resp.status().as_u16() {
        201 if mount_from.is_some() => {
            progress.finish(row, &format!("Mounted from {}", mount_from.unwrap_or("")));
            return Ok(());
        }
        202 => location_of(client, &start, &resp)?,
        _ => return Err(client.status_error("POST", &start, repository, &what, resp)),
    };
    let digest = store_digest(&desc.digest)?;
    let path = store.blob_path(&digest);
    let size = std::fs::metadata(&path)
        .map_err(|e| RegistryError::io(&path, e))?
        .len();
    if size != desc.size {
        return Err(RegistryError::SizeMismatch {
            what: format!("local blob {}", path.display()),
            expected: desc.size,
            actual: size,
        });
    }
    progress.set_status(row, "Pushing");
    let report = |n: u64| progress.update(row, n);
    let chunk = chunk_size(opts);
    if size <= chunk {
        let put = with_query(&location, "digest", &desc.digest);
        let resp = client.send(
            "PUT",
            &put,
            scopes,
            &[("Content-Type", "application/octet-stream".to_string())],
            ReqBody::File {
                path: &path,
                offset: 0,
                len: size,
                progress: Some(&report),
            },
        )?;
        if !matches!(resp.status().as_u16(), 201 | 204) {
            return Err(client.status_error("PUT", &put, repository, &what, resp));
        }
    } else {
        let mut offset = 0u64;
        while offset < size {
            let len = chunk.min(size - offset);
            let base = offset;
            let chunk_report = move |n: u64| progress.update(row, base + n);
            let resp = client.send(
                "PATCH",
                &location,
                scopes,
                &[
                    ("Content-Type", "application/octet-stream".to_string()),
                    ("Content-Range", format!("{}-{}", offset, offset + len - 1)),
                ],
                ReqBody::File {
                    path: &path,
                    offset,
                    len,
                    progress: Some(&chunk_report),
                },
            )?;
            if resp.status().as_u16() != 202 {
                return Err(client.status_error("PATCH", &location, repository, &what, resp));
            }
            location = location_of(client, &location, &resp)?;
            offset += len;
        }
        let put = with_query(&location, "digest", &desc.digest);
        let resp = client.send("PUT", &put, scopes, &[], ReqBody::Empty)?;
        if !matches!(resp.status().as_u16(), 201 | 204) {
            return Err(client.status_error("PUT", &put, repository, &what, resp));
        }
    }
    progress.finish(row, "Pushed");
    Ok(())
}
