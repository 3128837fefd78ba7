//! Image names: `index.json` of the OCI layout, one descriptor per name.

use std::collections::BTreeMap;
use std::fs;
use std::io;

use crate::reference::Reference;

use super::digest::{Digest, is_lower_hex};
use super::lock::{FileLock, LockKind};
use super::manifest::{
    ANNOTATION_REF_NAME, ConfigDoc, DOCKER_CONFIG, DOCKER_MANIFEST, Descriptor, IndexDoc,
    ManifestDoc, OCI_MANIFEST,
};
use super::{ImageRecord, StorageError, Store};

/// Shortest id prefix accepted, as docker.
const MIN_ID_PREFIX: usize = 3;

impl Store {
    pub(super) fn init_index(&self) -> Result<(), StorageError> {
        if self.index_path().exists() {
            return Ok(());
        }
        let _lock = FileLock::acquire(&self.lock_path(), LockKind::Exclusive)?;
        if !self.index_path().exists() {
            self.write_index(&IndexDoc::default())?;
        }
        Ok(())
    }

    /// No lock needed: the file is only ever replaced by rename.
    fn read_index(&self) -> Result<IndexDoc, StorageError> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                StorageError::Other(format!(
                    "{}: {e}: the image index is corrupt",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IndexDoc::default()),
            Err(e) => Err(StorageError::io(path, e)),
        }
    }

    /// Caller holds `storage.lock` exclusively, so the fixed temp name is ours.
    fn write_index(&self, index: &IndexDoc) -> Result<(), StorageError> {
        let path = self.index_path();
        let tmp = self.root.join("index.json.tmp");
        let bytes = serde_json::to_vec(index).map_err(|e| StorageError::Other(e.to_string()))?;
        fs::write(&tmp, bytes)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| StorageError::io(&path, e))
    }

    fn update_index<T>(
        &self,
        f: impl FnOnce(&mut IndexDoc) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let _lock = FileLock::acquire(&self.lock_path(), LockKind::Exclusive)?;
        let mut index = self.read_index()?;
        let out = f(&mut index)?;
        self.write_index(&index)?;
        Ok(out)
    }

    pub fn images(&self) -> Result<Vec<ImageRecord>, StorageError> {
        let index = self.read_index()?;
        let mut out = Vec::new();
        for (digest, names) in group_by_manifest(&index) {
            match self.record_for(&digest, names) {
                Ok(record) => out.push(record),
                // One damaged image must not hide all the others.
                Err(e) => log::warn!("skipping image {digest}: {e}"),
            }
        }
        Ok(out)
    }

    fn record_for(
        &self,
        manifest_digest: &Digest,
        names: Vec<String>,
    ) -> Result<ImageRecord, StorageError> {
        let manifest = ManifestDoc::parse(&self.read_blob(manifest_digest)?, manifest_digest)?;
        let config_desc = manifest.image_config(manifest_digest)?;
        let id = config_desc.digest()?;
        let config = ConfigDoc::parse(&self.read_blob(&id)?, &id)?;
        let diff_ids = config.diff_ids(&id)?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(StorageError::InvalidImage(format!(
                "manifest {manifest_digest} lists {} layers but its config {} diff ids",
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        // Only the digests a registry knows the image by (recorded by pull and push) are
        // RepoDigests, as docker has them: a loaded, imported or committed image has none.
        let (repo_digests, names): (Vec<String>, Vec<String>) =
            names.into_iter().partition(|n| n.contains('@'));
        Ok(ImageRecord {
            id,
            manifest_digest: manifest_digest.clone(),
            names,
            diff_ids,
            created: config.created,
            repo_digests,
        })
    }

    /// Record an image whose manifest, config and layer blobs are already stored, and give it
    /// `names`, taking them away from any other image (as docker does).
    pub fn add_image(
        &self,
        manifest_digest: &Digest,
        names: &[Reference],
    ) -> Result<ImageRecord, StorageError> {
        let bytes = self.read_blob(manifest_digest)?;
        let manifest = ManifestDoc::parse(&bytes, manifest_digest)?;
        let config = manifest.image_config(manifest_digest)?;
        let mut needed = vec![manifest_digest.clone(), config.digest()?];
        for layer in &manifest.layers {
            needed.push(layer.digest()?);
        }
        for digest in &needed {
            self.open_blob(digest)?;
        }
        let media_type = manifest.media_type.clone().unwrap_or_else(|| {
            if config.media_type == DOCKER_CONFIG {
                DOCKER_MANIFEST
            } else {
                OCI_MANIFEST
            }
            .to_string()
        });
        let template = Descriptor {
            media_type,
            digest: manifest_digest.to_string(),
            size: bytes.len() as u64,
            annotations: None,
            platform: None,
        };
        // Validate before taking names from other images.
        self.record_for(manifest_digest, Vec::new())?;
        let names = self.update_index(|index| {
            // Again under the lock: garbage collection removes blobs only while holding it, so
            // blobs present now stay until the image is named.
            if let Some(missing) = needed.iter().find(|d| !self.has_blob(d)) {
                return Err(StorageError::BlobNotFound(missing.clone()));
            }
            if !index.manifests.iter().any(|d| d.digest == template.digest) {
                index.manifests.push(template.clone());
            }
            for reference in names {
                for name in stored_names(reference) {
                    remove_name(index, &name);
                    add_name(index, &template, &name);
                }
            }
            Ok(names_of(index, manifest_digest))
        })?;
        self.record_for(manifest_digest, names)
    }

    /// By name (`busybox`, `demo:1`, `docker.io/library/busybox:latest`), full or short id,
    /// unique id prefix, or `name@sha256:` / manifest digest.
    pub fn find_image(&self, reference: &str) -> Result<ImageRecord, StorageError> {
        let images = self.images()?;
        let input = reference.trim();
        let not_found = || StorageError::ImageNotFound(reference.to_string());
        let bare = input.strip_prefix("sha256:");
        let hex = bare.unwrap_or(input);
        if hex.len() == 64 && is_lower_hex(hex) {
            let found = images
                .iter()
                .find(|i| i.id.hex() == hex)
                .or_else(|| images.iter().find(|i| i.manifest_digest.hex() == hex));
            return found.cloned().ok_or_else(not_found);
        }
        if bare.is_none()
            && let Ok(r) = Reference::parse(input)
        {
            let found = match &r.digest {
                None => {
                    let name = r.to_string();
                    images.iter().find(|i| i.names.contains(&name))
                }
                Some(d) => {
                    let want = format!("{}@{d}", r.name());
                    images.iter().find(|i| i.repo_digests.contains(&want))
                }
            };
            if let Some(found) = found {
                return Ok(found.clone());
            }
        }
        if hex.len() < MIN_ID_PREFIX || !is_lower_hex(hex) {
            return Err(not_found());
        }
        let mut matches: Vec<&ImageRecord> = images
            .iter()
            .filter(|i| i.id.hex().starts_with(hex))
            .collect();
        // Several manifests may share one config: still one image to the user.
        matches.sort_by(|a, b| a.id.cmp(&b.id).then(b.names.len().cmp(&a.names.len())));
        matches.dedup_by(|a, b| a.id == b.id);
        match matches.as_slice() {
            [] => Err(not_found()),
            [one] => Ok((*one).clone()),
            many => Err(StorageError::Ambiguous(
                reference.to_string(),
                format!(
                    "it matches {} images: {}",
                    many.len(),
                    many.iter()
                        .map(|i| i.id.short())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    pub fn image_config(
        &self,
        image: &ImageRecord,
    ) -> Result<oci_spec::image::ImageConfiguration, StorageError> {
        let bytes = self.read_blob(&image.id)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::InvalidImage(format!("config {}: {e}", image.id)))
    }

    /// Give `image` the name `reference` (which must carry a tag), taking it from any other.
    pub fn tag(
        &self,
        image: &ImageRecord,
        reference: &Reference,
    ) -> Result<ImageRecord, StorageError> {
        if reference.digest.is_some() || reference.tag.is_none() {
            return Err(StorageError::Other(format!(
                "{reference}: an image can only be tagged with name:tag, not a digest"
            )));
        }
        let name = reference.to_string();
        let digest = image.manifest_digest.to_string();
        let names = self.update_index(|index| {
            let Some(template) = index.manifests.iter().find(|d| d.digest == digest).cloned()
            else {
                return Err(StorageError::ImageNotFound(image.id.to_string()));
            };
            remove_name(index, &name);
            add_name(index, &template, &name);
            Ok(names_of(index, &image.manifest_digest))
        })?;
        self.record_for(&image.manifest_digest, names)
    }

    /// Remove a name; the image stays, nameless if that was its last name. Returns the image
    /// the name was taken from.
    pub fn untag(&self, reference: &Reference) -> Result<ImageRecord, StorageError> {
        let name = match &reference.digest {
            Some(d) => format!("{}@{d}", reference.name()),
            None => reference.to_string(),
        };
        let manifest = self.update_index(|index| {
            let Some(entry) = index
                .manifests
                .iter()
                .find(|d| d.annotation(ANNOTATION_REF_NAME) == Some(name.as_str()))
            else {
                return Err(StorageError::ImageNotFound(reference.familiar()));
            };
            let manifest = entry.digest()?;
            remove_name(index, &name);
            Ok(manifest)
        })?;
        let names = names_of(&self.read_index()?, &manifest);
        self.record_for(&manifest, names)
    }
}

impl Store {
    /// Forget the images with these manifests, every name of them included. Their blobs and
    /// layers stay until the next garbage collection ([`Store::gc`]).
    pub fn remove_manifests(&self, manifests: &[Digest]) -> Result<(), StorageError> {
        let wanted: Vec<String> = manifests.iter().map(ToString::to_string).collect();
        self.update_index(|index| {
            index.manifests.retain(|d| !wanted.contains(&d.digest));
            Ok(())
        })
    }

    /// Manifest digests of every image whose config (image id) is `id`.
    pub fn manifests_of(&self, id: &Digest) -> Result<Vec<Digest>, StorageError> {
        Ok(self
            .images()?
            .into_iter()
            .filter(|i| i.id == *id)
            .map(|i| i.manifest_digest)
            .collect())
    }

    pub(super) fn index_doc(&self) -> Result<IndexDoc, StorageError> {
        self.read_index()
    }

    pub(super) fn lock_index(&self) -> Result<FileLock, StorageError> {
        FileLock::acquire(&self.lock_path(), LockKind::Exclusive)
    }
}

/// Names under which `reference` is recorded: `name:tag` and/or `name@digest`.
fn stored_names(reference: &Reference) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(tag) = &reference.tag {
        out.push(format!("{}:{tag}", reference.name()));
    }
    if let Some(digest) = &reference.digest {
        out.push(format!("{}@{digest}", reference.name()));
    }
    out
}

/// Manifest digests in index order with their names.
fn group_by_manifest(index: &IndexDoc) -> Vec<(Digest, Vec<String>)> {
    let mut out: Vec<(Digest, Vec<String>)> = Vec::new();
    for desc in &index.manifests {
        let Ok(digest) = desc.digest() else {
            log::debug!(
                "index.json: ignoring descriptor with digest {}",
                desc.digest
            );
            continue;
        };
        if desc.is_index() {
            continue;
        }
        let pos = match out.iter().position(|(d, _)| *d == digest) {
            Some(pos) => pos,
            None => {
                out.push((digest, Vec::new()));
                out.len() - 1
            }
        };
        if let Some(name) = desc.annotation(ANNOTATION_REF_NAME)
            && !out[pos].1.iter().any(|n| n == name)
        {
            out[pos].1.push(name.to_string());
        }
    }
    out
}

fn names_of(index: &IndexDoc, manifest: &Digest) -> Vec<String> {
    group_by_manifest(index)
        .into_iter()
        .find(|(d, _)| d == manifest)
        .map(|(_, names)| names)
        .unwrap_or_default()
}

/// Take `name` off whichever image has it; an image left without names keeps one bare
/// descriptor so that it is still listed (as `<none>`).
fn remove_name(index: &mut IndexDoc, name: &str) {
    let mut i = 0;
    while i < index.manifests.len() {
        if index.manifests[i].annotation(ANNOTATION_REF_NAME) != Some(name) {
            i += 1;
            continue;
        }
        let digest = index.manifests[i].digest.clone();
        let others = index
            .manifests
            .iter()
            .filter(|d| d.digest == digest)
            .count()
            - 1;
        if others > 0 {
            index.manifests.remove(i);
        } else {
            let entry = &mut index.manifests[i];
            if let Some(a) = entry.annotations.as_mut() {
                a.remove(ANNOTATION_REF_NAME);
                if a.is_empty() {
                    entry.annotations = None;
                }
            }
            i += 1;
        }
    }
}

fn add_name(index: &mut IndexDoc, template: &Descriptor, name: &str) {
    let same = |d: &Descriptor| d.digest == template.digest;
    if index
        .manifests
        .iter()
        .any(|d| same(d) && d.annotation(ANNOTATION_REF_NAME) == Some(name))
    {
        return;
    }
    let nameless = index
        .manifests
        .iter_mut()
        .find(|d| same(d) && d.annotation(ANNOTATION_REF_NAME).is_none());
    let entry = match nameless {
        Some(entry) => entry,
        None => {
            let mut fresh = template.clone();
            fresh.annotations = None;
            index.manifests.push(fresh);
            index.manifests.last_mut().expect("just pushed")
        }
    };
    entry
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(ANNOTATION_REF_NAME.to_string(), name.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testutil::{TarBuilder, add_image, config_json};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn layer(content: &[u8]) -> Vec<u8> {
        TarBuilder::new().file("f", content, 0o644).finish()
    }

    #[test]
    fn layout_is_an_oci_layout_with_full_names() {
        let (dir, store) = store();
        assert!(dir.path().join("oci-layout").is_file());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(dir.path().join("blobs"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o077, 0);
        let img = add_image(&store, &[layer(b"1")], "a", &["busybox", "busybox:1"]);
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        let names: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["annotations"][ANNOTATION_REF_NAME].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox:1"
            ]
        );
        assert_eq!(
            index["manifests"][0]["digest"],
            img.manifest_digest.to_string()
        );
        assert_eq!(img.names, names);
        assert_eq!(img.diff_ids.len(), 1);
        assert_eq!(img.created.as_deref(), Some("2024-01-02T03:04:05Z"));
        // Not from a registry: no RepoDigests.
        assert!(img.repo_digests.is_empty(), "{:?}", img.repo_digests);
        let cfg = store.image_config(&img).unwrap();
        assert_eq!(
            cfg.config().as_ref().unwrap().cmd().as_deref(),
            Some(&["sh".to_string()][..])
        );
    }

    #[test]
    fn names_move_and_nameless_images_stay() {
        let (_dir, store) = store();
        let a = add_image(&store, &[layer(b"a")], "a", &["demo:1", "other"]);
        let b = add_image(&store, &[layer(b"b")], "b", &["demo:1"]);
        let a = store.find_image(&a.id.to_string()).unwrap();
        assert_eq!(a.names, ["docker.io/library/other:latest"]);
        assert_eq!(b.names, ["docker.io/library/demo:1"]);
        let a = store.untag(&Reference::parse("other").unwrap()).unwrap();
        assert!(a.names.is_empty());
        assert_eq!(store.images().unwrap().len(), 2);
        assert!(matches!(
            store.untag(&Reference::parse("other").unwrap()),
            Err(StorageError::ImageNotFound(_))
        ));
        let a = store.tag(&a, &Reference::parse("demo:1").unwrap()).unwrap();
        assert_eq!(a.names, ["docker.io/library/demo:1"]);
        let b = store.find_image(&b.id.to_string()).unwrap();
        assert!(b.names.is_empty());
        let images = store.images().unwrap();
        assert_eq!(images.len(), 2);
        // Re-adding the same manifest is idempotent.
        let again = store.add_image(&a.manifest_digest, &[]).unwrap();
        assert_eq!(again.names, a.names);
        assert_eq!(store.images().unwrap().len(), 2);
    }

    #[test]
    fn find_by_name_id_prefix_and_digest() {
        let (_dir, store) = store();
        let img = add_image(
            &store,
            &[layer(b"x")],
            "x",
            &["busybox", "localhost:5000/app:v1"],
        );
        for r in [
            "busybox",
            "busybox:latest",
            "docker.io/library/busybox:latest",
            "localhost:5000/app:v1",
            &img.id.to_string(),
            img.id.hex(),
            &img.id.hex()[..12],
            &format!("sha256:{}", &img.id.hex()[..5]),
            &img.manifest_digest.to_string(),
        ] {
            assert_eq!(store.find_image(r).unwrap().id, img.id, "{r}");
        }
        for r in [
            "alpine",
            "busybox:2",
            &img.id.hex()[..2],
            "zzz",
            &format!("alpine@{}", img.manifest_digest),
            // A name and the manifest's digest make no digest reference unless a registry
            // gave it (pull, push).
            &format!("busybox@{}", img.manifest_digest),
        ] {
            assert!(
                matches!(store.find_image(r), Err(StorageError::ImageNotFound(_))),
                "{r}"
            );
        }
    }

    #[test]
    fn ambiguous_prefix() {
        let (_dir, store) = store();
        // Find two configs whose ids share 3 hex digits.
        let diff = crate::storage::testutil::diff_id_of(&layer(b"same"));
        let mut seen: std::collections::HashMap<String, String> = Default::default();
        let (t1, t2, prefix) = (0..5000)
            .find_map(|i| {
                let tag = i.to_string();
                let id = Digest::sha256_of(&config_json(std::slice::from_ref(&diff), &tag));
                let prefix = id.hex()[..3].to_string();
                seen.insert(prefix.clone(), tag.clone())
                    .map(|other| (other, tag, prefix))
            })
            .unwrap();
        let a = add_image(&store, &[layer(b"same")], &t1, &[]);
        let b = add_image(&store, &[layer(b"same")], &t2, &[]);
        assert_ne!(a.id, b.id);
        let err = store.find_image(&prefix).unwrap_err();
        assert!(matches!(err, StorageError::Ambiguous(..)), "{err}");
        assert!(err.to_string().contains(a.id.short()));
        assert_eq!(store.find_image(&a.id.hex()[..20]).unwrap().id, a.id);
    }

    #[test]
    fn digest_references_are_kept() {
        let (_dir, store) = store();
        let img = add_image(&store, &[layer(b"d")], "d", &[]);
        let index_digest = Digest::sha256_of(b"some image index");
        let r = Reference::parse(&format!("busybox@{index_digest}")).unwrap();
        let img = store.add_image(&img.manifest_digest, &[r]).unwrap();
        assert!(img.names.is_empty());
        // A tag added later brings no digest of its own.
        let img = store
            .tag(&img, &Reference::parse("busybox:1").unwrap())
            .unwrap();
        assert_eq!(
            img.repo_digests,
            [format!("docker.io/library/busybox@{index_digest}")]
        );
        assert_eq!(
            store
                .find_image(&format!("busybox@{index_digest}"))
                .unwrap()
                .id,
            img.id
        );
    }

    #[test]
    fn add_image_needs_its_blobs() {
        let (_dir, store) = store();
        let missing = Digest::sha256_of(b"no such manifest");
        assert!(matches!(
            store.add_image(&missing, &[]),
            Err(StorageError::BlobNotFound(_))
        ));
        let not_manifest = store
            .put_blob(b"{\"schemaVersion\": 2, \"manifests\": []}")
            .unwrap();
        assert!(store.add_image(&not_manifest, &[]).is_err());
        assert!(store.images().unwrap().is_empty());
    }
}
