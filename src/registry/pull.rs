//! `pull`: manifest (and platform selection in an index), then the config and the layers,
//! streamed straight into the store with their digests verified as they arrive, each layer
//! unpacked from the same stream (into a temp dir named once the digest and diff id match).
//! Layers are fetched in parallel on scoped threads (all joined before returning); blobs the
//! store already has, from any image, are never fetched again; a per-digest lock makes
//! concurrent pulls of the same blob do the work once.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use super::client::{ClientOptions, RegistryClient, ReqBody, scope};
use super::manifest::{self, Descriptor, ImageManifest, Manifest, Platform};
use super::parallel;
use super::progress::{Progress, short_id};
use super::registries_conf::{RegistriesConf, Source};
use super::{RegistryError, Result, check_digest_str, sha256_digest, store_digest};
use crate::reference::Reference;
use crate::storage::{BlobWriter, ImageRecord, Store};

/// When `run`/`create` pull: `--pull=always|missing|never|newer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PullPolicy {
    /// Pull every time.
    Always,
    /// Pull only when the image is not in the store.
    #[default]
    Missing,
    /// Never pull; fail when the image is not in the store.
    Never,
    /// Pull when the registry has a different image for the name (keep the local one when
    /// the registry cannot be reached).
    Newer,
}

/// Largest manifest accepted (registries limit them to 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;
/// Parallel layer downloads.
pub const DEFAULT_JOBS: usize = 6;

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    pub client: ClientOptions,
    /// `--platform os/arch[/variant]`.
    pub platform: Option<String>,
    /// Parallel downloads (0: the default).
    pub jobs: usize,
    /// Unpack each layer while it downloads (the caller is in burrow's user namespace);
    /// `None` leaves unpacking to `run`.
    pub unpack: Option<crate::storage::UnpackOptions>,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: ImageRecord,
    /// The name the image was pulled as.
    pub reference: Reference,
    /// Digest of the manifest as the registry names it (the index for multi-arch images).
    pub repo_digest: String,
    /// Whether anything was downloaded.
    pub downloaded: bool,
}

/// A fetched manifest: its bytes, media type and digest.
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
    pub manifest: Manifest,
}

/// Pull `input` (a name as typed: short names go through registries.conf) into `store`.
pub fn pull(store: &Store, input: &str, opts: &PullOptions, progress: &Progress) -> Result<Pulled> {
    let conf = RegistriesConf::load()?;
    let candidates = conf.resolve(input)?;
    let mut first_err = None;
    let total: usize = candidates.len();
    for (i, reference) in candidates.iter().enumerate() {
        let sources = conf.pull_sources(reference)?;
        let n_sources = sources.len();
        for (j, source) in sources.iter().enumerate() {
            let last = i + 1 == total && j + 1 == n_sources;
            let insecure = source.insecure || conf.is_insecure(&source.registry);
            match pull_from(store, reference, source, insecure, opts, progress) {
                Ok(p) => return Ok(p),
                Err(e) if !last && retryable(&e) => {
                    log::info!(
                        "{}/{}: {e}; trying the next candidate",
                        source.registry,
                        source.repository
                    );
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    // With several candidates, the first failure usually says most.
                    return Err(match first_err {
                        Some(f) if candidates.len() > 1 && is_not_found(&e) => f,
                        _ => e,
                    });
                }
            }
        }
    }
    Err(first_err.unwrap_or_else(|| RegistryError::Other(format!("{input}: nothing to pull"))))
}

fn is_not_found(e: &RegistryError) -> bool {
    matches!(
        e,
        RegistryError::ManifestUnknown { .. } | RegistryError::NameUnknown { .. }
    )
}

fn retryable(e: &RegistryError) -> bool {
    matches!(
        e,
        RegistryError::ManifestUnknown { .. }
            | RegistryError::NameUnknown { .. }
            | RegistryError::Unauthorized { .. }
            | RegistryError::Denied { .. }
            | RegistryError::Connect { .. }
            | RegistryError::Transfer { .. }
            | RegistryError::Http { .. }
    )
}

/// GET a manifest by tag or digest; the digest of the bytes is computed here.
pub fn fetch_manifest(
    client: &RegistryClient,
    repository: &str,
    reference: &str,
    scopes: &[String],
    display: &str,
) -> Result<FetchedManifest> {
    let url = client.url(&format!("{repository}/manifests/{reference}"));
    let resp = client.send(
        "GET",
        &url,
        scopes,
        &[("Accept", manifest::accept_header())],
        ReqBody::Empty,
    )?;
    if resp.status().as_u16() != 200 {
        return Err(client.status_error("GET", &url, repository, display, resp));
    }
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = resp.into_body();
    let bytes = body
        .with_config()
        .limit(MAX_MANIFEST)
        .read_to_vec()
        .map_err(|e| RegistryError::Transfer {
            registry: client.registry.clone(),
            message: format!("{display}: reading the manifest: {e}"),
        })?;
    let digest = sha256_digest(&bytes);
    if reference.contains(':') && reference.starts_with("sha256:") && digest != reference {
        return Err(RegistryError::DigestMismatch {
            what: format!("{display}: manifest"),
            expected: reference.to_string(),
            actual: digest,
        });
    }
    let (manifest, media_type) = manifest::parse(&bytes, content_type.as_deref(), display)?;
    Ok(FetchedManifest {
        bytes,
        media_type,
        digest,
        manifest,
    })
}

/// Resolve an index to the image manifest for the wanted platform (or return the image
/// manifest as is). Returns (image manifest, the top-level digest).
pub fn resolve_image_manifest(
    client: &RegistryClient,
    repository: &str,
    reference: &str,
    scopes: &[String],
    display: &str,
    platform: Option<&str>,
) -> Result<(FetchedManifest, ImageManifest, String)> {
    let top = fetch_manifest(client, repository, reference, scopes, display)?;
    let top_digest = top.digest.clone();
    match top.manifest.clone() {
        Manifest::Image(m) => Ok((top, m, top_digest)),
        Manifest::Index(index) => {
            let (want, explicit): (Platform, bool) = match platform {
                Some(p) => (manifest::parse_platform(p)?, true),
                None => (manifest::host_platform(), false),
            };
            let desc = manifest::select_platform(&index, &want, explicit).ok_or_else(|| {
                RegistryError::NoMatchingPlatform {
                    reference: display.to_string(),
                    platform: want.to_string(),
                    available: manifest::available_platforms(&index),
                }
            })?;
            check_digest_str(&desc.digest)?;
            let child = fetch_manifest(client, repository, &desc.digest, scopes, display)?;
            if child.bytes.len() as u64 != desc.size && desc.size != 0 {
                return Err(RegistryError::SizeMismatch {
                    what: format!("{display}: manifest {}", desc.digest),
                    expected: desc.size,
                    actual: child.bytes.len() as u64,
                });
            }
            match child.manifest.clone() {
                Manifest::Image(m) => Ok((child, m, top_digest)),
                Manifest::Index(_) => Err(RegistryError::BadManifest {
                    context: display.to_string(),
                    message: "an index inside an index is not supported".to_string(),
                }),
            }
        }
    }
}

fn has_blob(store: &Store, digest: &str) -> Result<bool> {
    Ok(store.has_blob(&store_digest(digest)?))
}

/// Hold an exclusive lock on a digest while it is being fetched into `store`, so concurrent
/// pulls of the same image fetch each blob once.
fn lock_digest(store: &Store, digest: &str) -> Option<nix::fcntl::Flock<std::fs::File>> {
    let dir = store.root().join("locks");
    std::fs::create_dir_all(&dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{}.lock", digest.replace(':', "-"))))
        .ok()?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).ok()
}

/// Where the layers of a pull are unpacked as they download: the image's diff ids (from its
/// config) and the options of burrow's user namespace, which the caller has entered.
#[derive(Clone, Copy)]
pub struct Unpacking<'a> {
    pub diff_ids: &'a [crate::storage::Digest],
    pub opts: crate::storage::UnpackOptions,
}

/// A blob download's body on its way into the store: every byte read through it is written to
/// the blob's temp file (which hashes it) and counted against the descriptor's size, so the
/// decompressor and tar unpacker reading from it feed the store at the same time.
struct BlobStream<'a, R> {
    body: R,
    blob: &'a mut BlobWriter,
    client: &'a RegistryClient,
    store: &'a Store,
    desc: &'a Descriptor,
    progress: &'a Progress,
    row: usize,
    cancel: &'a AtomicBool,
    done: u64,
    /// Why reading stopped early: reported instead of what the unpacker made of it.
    failure: Option<RegistryError>,
}

impl<R: Read> BlobStream<'_, R> {
    fn fail(&mut self, e: RegistryError) -> std::io::Error {
        let err = std::io::Error::other(e.to_string());
        self.failure.get_or_insert(e);
        err
    }

    /// Read the rest of the body into the blob.
    fn drain(&mut self) -> std::io::Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        while self.read(&mut buf)? != 0 {}
        Ok(())
    }
}

impl<R: Read> Read for BlobStream<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(e) = &self.failure {
            return Err(std::io::Error::other(e.to_string()));
        }
        if self.cancel.load(Ordering::Relaxed) {
            return Err(self.fail(RegistryError::Other("cancelled".into())));
        }
        let n = loop {
            match self.body.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let message = format!(
                        "{}: download failed after {} of {} bytes: {e}",
                        short_id(&self.desc.digest),
                        self.done,
                        self.desc.size
                    );
                    return Err(self.fail(RegistryError::Transfer {
                        registry: self.client.registry.clone(),
                        message,
                    }));
                }
            }
        };
        if let Err(e) = self.blob.write_all(&buf[..n]) {
            return Err(self.fail(RegistryError::io(self.store.root(), e)));
        }
        self.done += n as u64;
        if self.done > self.desc.size {
            return Err(self.fail(RegistryError::SizeMismatch {
                what: format!("{}/{}", self.client.registry, self.desc.digest),
                expected: self.desc.size,
                actual: self.done,
            }));
        }
        self.progress.update(self.row, self.done);
        Ok(n)
    }
}

/// What [`download_blob`] did with a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The store had it already.
    Present,
    /// Stored; not unpacked (not a layer, or its layer was being handled elsewhere).
    Stored,
    /// Stored, and its layer unpacked from the download stream.
    Unpacked,
}

/// Stream one blob into the store, verifying size and digest; nothing is kept on error.
/// With `layer` (an index into `Unpacking::diff_ids`), the layer is unpacked from the same
/// stream into a temp dir, which is named only once both the digest and the diff id matched.
#[allow(clippy::too_many_arguments)]
pub fn download_blob(
    client: &RegistryClient,
    store: &Store,
    repository: &str,
    desc: &Descriptor,
    scopes: &[String],
    progress: &Progress,
    row: usize,
    cancel: &AtomicBool,
    layer: Option<(Unpacking<'_>, usize)>,
) -> Result<Fetched> {
    check_digest_str(&desc.digest)?;
    let _lock = lock_digest(store, &desc.digest);
    if has_blob(store, &desc.digest)? {
        progress.finish(row, "Already exists");
        return Ok(Fetched::Present);
    }
    let expected = store_digest(&desc.digest)?;
    // Taken before the request, so that a layer someone else is unpacking (under another
    // blob's digest) is only downloaded here, and unpacked by the caller once it is free.
    let mut unpack = match layer {
        Some((u, i)) => match store.begin_layer_unpack(u.diff_ids, i, u.opts)? {
            crate::storage::LayerSlot::Empty(l) => Some(l),
            crate::storage::LayerSlot::Present | crate::storage::LayerSlot::Busy => None,
        },
        None => None,
    };
    let what = format!("{}/{}@{}", client.registry, repository, desc.digest);
    let url = client.url(&format!("{repository}/blobs/{}", desc.digest));
    let resp = client.send("GET", &url, scopes, &[], ReqBody::Empty)?;
    if resp.status().as_u16() != 200 {
        return Err(client.status_error("GET", &url, repository, &what, resp));
    }
    progress.set_status(row, "Downloading");
    let body = resp
        .into_body()
        .into_with_config()
        .limit(desc.size.saturating_add(1))
        .reader();
    let mut writer = store.blob_writer()?;
    let mut stream = BlobStream {
        body,
        blob: &mut writer,
        client,
        store,
        desc,
        progress,
        row,
        cancel,
        done: 0,
        failure: None,
    };
    let unpacked = unpack.as_mut().map(|l| l.unpack(&mut stream));
    // Whatever the unpacker made of the stream, the rest of the body goes into the blob: its
    // digest tells corruption in transit (reported as such) from a bad layer.
    let drained = stream.drain();
    let (done, failure) = (stream.done, stream.failure.take());
    if let Some(e) = failure {
        return Err(e);
    }
    drained.map_err(|e| RegistryError::io(store.root(), e))?;
    if done != desc.size {
        return Err(RegistryError::SizeMismatch {
            what,
            expected: desc.size,
            actual: done,
        });
    }
    // Every byte is in the temporary file (and the layer in its temp dir), nothing verified
    // or named yet.
    crate::storage::crash_point("pull-blob-written");
    if unpacked.is_some() {
        crate::storage::crash_point("pull-layer-unpacked");
    }
    progress.set_status(row, "Verifying Checksum");
    match writer.commit(Some(&expected)) {
        Ok(_) => {}
        Err(crate::storage::StorageError::DigestMismatch { actual, .. }) => {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: desc.digest.clone(),
                actual: actual.to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    let fetched = match (unpack, unpacked) {
        (Some(layer), Some(result)) => {
            // The bytes are the registry's: an unpack error is the layer's own.
            result?;
            layer.commit()?;
            Fetched::Unpacked
        }
        _ => Fetched::Stored,
    };
    progress.finish(row, "Download complete");
    Ok(fetched)
}

/// A repository of a registry, with the token scopes its blobs need.
#[derive(Clone, Copy)]
pub struct Remote<'a> {
    pub client: &'a RegistryClient,
    pub repository: &'a str,
    pub scopes: &'a [String],
}

/// Fetch the layer blobs `layers` in parallel (at most `jobs` at once); the first error
/// cancels the rest. With `unpacking`, every layer is unpacked too: while it downloads, or
/// from the store when its blob is there already (layers are independent directories keyed by
/// their chain id, so any order works). Returns how many blobs were fetched.
pub fn download_all(
    remote: &Remote<'_>,
    store: &Store,
    layers: &[Descriptor],
    progress: &Progress,
    jobs: usize,
    unpacking: Option<Unpacking<'_>>,
) -> Result<usize> {
    let Remote {
        client,
        repository,
        scopes,
    } = *remote;
    // (index, progress row); a blob listed twice is fetched once and handled at its first index.
    let mut todo: Vec<(usize, usize)> = Vec::new();
    let mut present: Vec<usize> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, d) in layers.iter().enumerate() {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        if has_blob(store, &d.digest)? {
            let row = progress.add(&d.digest, d.size, "Already exists");
            progress.finish(row, "Already exists");
            present.push(i);
            continue;
        }
        let row = progress.add(&d.digest, d.size, "Pulling fs layer");
        todo.push((i, row));
    }
    // Work items: blobs to fetch, and present ones only to unpack.
    let work: Vec<(usize, Option<usize>)> = todo
        .iter()
        .map(|&(i, row)| (i, Some(row)))
        .chain(present.iter().map(|&i| (i, None)))
        .collect();
    if todo.is_empty() && unpacking.is_none() {
        return Ok(0);
    }
    // (A layer without a diff id is not unpacked: storing the image rejects it.)
    let layer_of = |i: usize| unpacking.filter(|u| i < u.diff_ids.len()).map(|u| (u, i));
    let handle = |&(i, row): &(usize, Option<usize>), cancel: &AtomicBool| -> Result<()> {
        let desc = &layers[i];
        let fetched = match row {
            Some(row) => download_blob(
                client,
                store,
                repository,
                desc,
                scopes,
                progress,
                row,
                cancel,
                layer_of(i),
            )?,
            None => Fetched::Present,
        };
        if fetched != Fetched::Unpacked
            && let Some((u, i)) = layer_of(i)
        {
            store.unpack_layer_at(u.diff_ids, i, &store_digest(&desc.digest)?, u.opts)?;
        }
        Ok(())
    };
    parallel::for_each(&work, jobs, handle)?;
    Ok(todo.len())
}

/// A client for `source`'s registry, and the token scope a pull from its repository asks for.
fn pull_client(
    source: &Source,
    insecure: bool,
    opts: &ClientOptions,
) -> Result<(RegistryClient, Vec<String>)> {
    let client =
        RegistryClient::connect(&source.registry, Some(&source.repository), insecure, opts)?;
    Ok((client, vec![scope(&source.repository, "pull")]))
}

fn pull_from(
    store: &Store,
    reference: &Reference,
    source: &Source,
    insecure: bool,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<Pulled> {
    let (client, scopes) = pull_client(source, insecure, &opts.client)?;
    let repository = source.repository.as_str();
    let display = reference.to_string();
    let tag_or_digest = reference.manifest_ref();
    let (fetched, image, top_digest) = resolve_image_manifest(
        &client,
        repository,
        &tag_or_digest,
        &scopes,
        &display,
        opts.platform.as_deref(),
    )?;
    let label = reference
        .tag
        .clone()
        .unwrap_or_else(|| tag_or_digest.clone());
    progress.message(&format!("{label}: Pulling from {}", reference.repository));

    let mut blobs = vec![image.config.clone()];
    for l in &image.layers {
        if !l.urls.is_empty() && l.media_type.contains("nondistributable") {
            return Err(RegistryError::BadManifest {
                context: display.clone(),
                message: format!(
                    "layer {} is a foreign (non-distributable) layer, which burrow cannot fetch",
                    l.digest
                ),
            });
        }
        blobs.push(l.clone());
    }
    let manifest_present = has_blob(store, &fetched.digest)?;
    let jobs = if opts.jobs == 0 {
        DEFAULT_JOBS
    } else {
        opts.jobs
    };
    // The config is small: fetch it first, alone, so the layer rows show only layers.
    let config_fetched = download_config(&client, store, repository, &image.config, &scopes)?;
    let diff_ids = match opts.unpack {
        Some(_) => config_diff_ids(store, &image.config)?,
        None => Vec::new(),
    };
    if opts.unpack.is_some() && diff_ids.len() != image.layers.len() {
        // Caught before any layer is fetched (storing the image would refuse it anyway).
        return Err(RegistryError::BadManifest {
            context: display.clone(),
            message: format!(
                "the image config lists {} layer diff ids for the manifest's {} layers",
                diff_ids.len(),
                image.layers.len()
            ),
        });
    }
    let unpacking = opts.unpack.map(|unpack_opts| {
        // Left by a killed pull; we are in the user namespace that owns their files.
        store.clean_stale_layer_temps();
        Unpacking {
            diff_ids: &diff_ids,
            opts: unpack_opts,
        }
    });
    let remote = Remote {
        client: &client,
        repository,
        scopes: &scopes,
    };
    let fetched_layers = download_all(&remote, store, &image.layers, progress, jobs, unpacking)?;
    progress.close();
    drop(client);

    let stored = store.put_blob(&fetched.bytes)?;
    if stored.to_string() != fetched.digest {
        return Err(RegistryError::DigestMismatch {
            what: format!("{display}: manifest"),
            expected: fetched.digest.clone(),
            actual: stored.to_string(),
        });
    }
    let manifest_digest = store_digest(&fetched.digest)?;
    // The digest the registry knows it by (its index's, for a multi-platform image) names it
    // too: its RepoDigest, as docker records it.
    let by_digest = Reference {
        tag: None,
        digest: Some(top_digest.clone()),
        ..reference.clone()
    };
    let image_record = store.add_image(&manifest_digest, &[reference.clone(), by_digest])?;
    Ok(Pulled {
        image: image_record,
        reference: reference.clone(),
        repo_digest: top_digest,
        downloaded: config_fetched || fetched_layers > 0 || !manifest_present,
    })
}

/// The diff ids of a stored image config, lowest layer first.
fn config_diff_ids(store: &Store, config: &Descriptor) -> Result<Vec<crate::storage::Digest>> {
    let bytes = store.read_blob(&store_digest(&config.digest)?)?;
    let parsed: oci_spec::image::ImageConfiguration =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::BadManifest {
            context: config.digest.clone(),
            message: format!("unreadable image config: {e}"),
        })?;
    parsed
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| store_digest(d))
        .collect()
}

fn download_config(
    client: &RegistryClient,
    store: &Store,
    repository: &str,
    desc: &Descriptor,
    scopes: &[String],
) -> Result<bool> {
    if has_blob(store, &desc.digest)? {
        return Ok(false);
    }
    let quiet = Progress::with_mode(super::progress::Mode::Quiet);
    let row = quiet.add(&desc.digest, desc.size, "");
    let cancel = AtomicBool::new(false);
    download_blob(
        client, store, repository, desc, scopes, &quiet, row, &cancel, None,
    )?;
    Ok(true)
}

/// The manifest digest the registry has now for `input` on this host's (or the given)
/// platform: the image manifest's, as the store records it.
pub fn remote_manifest_digest(input: &str, opts: &PullOptions) -> Result<String> {
    let conf = RegistriesConf::load()?;
    let reference = conf
        .resolve(input)?
        .into_iter()
        .next()
        .ok_or_else(|| RegistryError::Other(format!("{input}: nothing to resolve")))?;
    let source = conf
        .pull_sources(&reference)?
        .pop()
        .expect("pull_sources returns the primary location");
    let insecure = source.insecure || conf.is_insecure(&source.registry);
    let (client, scopes) = pull_client(&source, insecure, &opts.client)?;
    let tag_or_digest = reference.manifest_ref();
    let (fetched, _, _) = resolve_image_manifest(
        &client,
        &source.repository,
        &tag_or_digest,
        &scopes,
        &reference.to_string(),
        opts.platform.as_deref(),
    )?;
    Ok(fetched.digest)
}

/// For `run`/`create --pull=POLICY`: the image for `reference`, pulled if the policy says so,
/// with the client settings (`--tls-verify`, `--authfile`, `--cert-dir`) and `--platform` in
/// `opts`.
pub fn ensure_image(
    store: &Store,
    reference: &str,
    policy: PullPolicy,
    opts: &PullOptions,
    quiet: bool,
) -> Result<ImageRecord, RegistryError> {
    let local = store.find_image(reference);
    let do_pull = |store: &Store| pull_unpacking(store, reference, opts, quiet);
    match policy {
        PullPolicy::Never => local.map_err(|_| RegistryError::NotPresent {
            reference: reference.to_string(),
        }),
        PullPolicy::Missing => match local {
            Ok(img) => Ok(img),
            Err(_) => do_pull(store),
        },
        PullPolicy::Always => do_pull(store),
        PullPolicy::Newer => match local {
            Err(_) => do_pull(store),
            Ok(img) => match remote_manifest_digest(reference, opts) {
                Ok(d) if d == img.manifest_digest.to_string() => Ok(img),
                Ok(_) => do_pull(store),
                Err(e) => {
                    log::warn!(
                        "{reference}: cannot check the registry ({e}); using the local image"
                    );
                    if log::max_level() < log::LevelFilter::Warn {
                        eprintln!(
                            "burrow: warning: {reference}: cannot check the registry; using the local image"
                        );
                    }
                    Ok(img)
                }
            },
        },
    }
}

/// Pull for a container about to be made: in a forked child that enters burrow's user
/// namespace, so each layer unpacks while it downloads (as `burrow pull` does), and this
/// process stays outside it (run enters the container's namespace later, which may be
/// another one). The child reports the image id, or the error text, through a pipe.
/// With other threads alive, forking is unsafe: the pull then runs here and leaves the
/// unpacking to the container's start.
fn pull_unpacking(
    store: &Store,
    reference: &str,
    opts: &PullOptions,
    quiet: bool,
) -> Result<ImageRecord> {
    // run's stdout is the container's: report the pull on stderr, as docker does.
    let pull_here = |opts: &PullOptions| -> Result<ImageRecord> {
        let progress = Progress::new_stderr(quiet);
        Ok(pull(store, reference, opts, &progress)?.image)
    };
    if crate::userns::thread_count() > 1 {
        return pull_here(opts);
    }
    let io_err = |e: nix::Error| RegistryError::io(store.root(), std::io::Error::from(e));
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io_err)?;
    // SAFETY: this process is single-threaded (checked above); the child pulls, writes its
    // report and leaves with _exit, never returning into the caller.
    match unsafe { nix::unistd::fork() }.map_err(io_err)? {
        nix::unistd::ForkResult::Child => {
            drop(read_end);
            let result = crate::userns::enter_current()
                .map_err(|e| RegistryError::Other(e.to_string()))
                .and_then(|mapping| {
                    let mut opts = opts.clone();
                    opts.unpack = Some(crate::storage::UnpackOptions {
                        ignore_chown_errors: mapping.kind == crate::userns::MappingKind::SingleId,
                    });
                    pull_here(&opts)
                });
            let report = match result {
                Ok(image) => serde_json::json!({ "id": image.id.to_string() }),
                Err(e) => serde_json::json!({ "error": e.to_string() }),
            };
            let _ = std::fs::File::from(write_end).write_all(report.to_string().as_bytes());
            // SAFETY: leave the forked copy without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(write_end);
            let mut text = String::new();
            let read = std::fs::File::from(read_end).read_to_string(&mut text);
            let _ = nix::sys::wait::waitpid(child, None);
            read.map_err(|e| RegistryError::io(store.root(), e))?;
            let report: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
                RegistryError::Other(format!("{reference}: the pull ended without a result"))
            })?;
            if let Some(id) = report.get("id").and_then(|v| v.as_str()) {
                return Ok(store.find_image(id)?);
            }
            Err(RegistryError::Other(
                report
                    .get("error")
                    .and_then(|v| v.as_str())
                    .unwrap_or("the pull failed")
                    .to_string(),
            ))
        }
    }
}
