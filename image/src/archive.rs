//! The image archive (pure): one tar that is both a Docker archive
//! (`manifest.json`, what `docker load` reads) and an OCI image layout
//! (`oci-layout`, `index.json`, what containerd's importer prefers, so
//! `ctr images import` and `kind load image-archive` read it), sharing the
//! blobs under `blobs/sha256/`, the way `docker save` writes it since
//! Docker 25. See `docs/image.md`.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use crate::oci::{self, Descriptor, DockerEntry, ImageConfig, Index, Manifest, OciLayout};
use crate::tree::{Node, Tree};
use crate::{Error, Result};

/// Where the binaries live in the image.
pub const CONTROLLER: &str = "/ferrolb-controller";
/// The speaker binary.
pub const SPEAKER: &str = "/ferrolb-speaker";
/// The CA bundle.
pub const CA_CERTS: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Files every ferrolb image must hold.
pub const REQUIRED: [&str; 5] = [CONTROLLER, SPEAKER, CA_CERTS, "/etc/passwd", "/etc/group"];
/// The image's default user: `nobody` (the speaker's manifest overrides it).
pub const DEFAULT_USER: &str = "65534:65534";
/// The project's source repository (label `org.opencontainers.image.source`).
pub const SOURCE: &str = "https://github.com/ferrolb/ferrolb";

/// What the image says about itself besides its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Name and tag (`RepoTags`, `io.containerd.image.name`).
    pub reference: oci::Reference,
    /// Workspace version (label).
    pub version: String,
    /// Git commit, when known (label).
    pub revision: Option<String>,
    /// Seconds since the epoch: `created`, every tar entry's mtime.
    pub epoch: u64,
    /// GOARCH name of the binaries.
    pub architecture: String,
    /// SPDX licence (label).
    pub licenses: String,
}

/// A built archive.
#[derive(Debug, Clone)]
pub struct Built {
    /// The tar.
    pub bytes: Vec<u8>,
    /// The image manifest's digest: the image digest registries and
    /// `ctr images ls` show.
    pub digest: String,
    /// The config's digest: Docker's image ID.
    pub config_digest: String,
}

/// The image configuration for `meta` and one layer with `diff_id`.
pub fn config(meta: &Metadata, diff_id: &str) -> Result<ImageConfig> {
    let created = created(meta.epoch)?;
    let mut labels = BTreeMap::new();
    let mut label =
        |k: &str, v: &str| labels.insert(format!("org.opencontainers.image.{k}"), v.to_owned());
    label("title", "ferrolb");
    label(
        "description",
        "ferrolb: LoadBalancer IPs for bare-metal Kubernetes (controller and L2 speaker)",
    );
    label("version", &meta.version);
    label("source", SOURCE);
    label("licenses", &meta.licenses);
    if let Some(rev) = &meta.revision {
        label("revision", rev);
    }
    Ok(ImageConfig {
        created: created.clone(),
        architecture: meta.architecture.clone(),
        os: "linux".into(),
        config: oci::RunConfig {
            user: DEFAULT_USER.into(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            entrypoint: vec![CONTROLLER.into()],
            working_dir: "/".into(),
            labels,
        },
        rootfs: oci::RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id.to_owned()],
        },
        history: vec![oci::History {
            created,
            created_by: "ferrolb-image build".into(),
        }],
    })
}

/// RFC 3339 of `epoch` seconds.
pub fn created(epoch: u64) -> Result<String> {
    let ts = i64::try_from(epoch)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .ok_or_else(|| Error::Metadata {
            what: "build time".into(),
            detail: format!("{epoch} seconds is out of range"),
        })?;
    Ok(ts.to_string())
}

/// Builds the archive of `tree`.
pub fn build(tree: &Tree, meta: &Metadata) -> Result<Built> {
    let layer = tree.layer_tar(meta.epoch);
    let diff_id = oci::sha256(&layer);
    let gz = gzip(&layer);
    let config = oci::to_json(&config(meta, &diff_id)?);
    let descriptor = |media: &str, bytes: &[u8]| Descriptor {
        media_type: media.into(),
        digest: oci::sha256(bytes),
        size: bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let manifest = Manifest {
        schema_version: 2,
        media_type: oci::MEDIA_MANIFEST.into(),
        config: descriptor(oci::MEDIA_CONFIG, &config),
        layers: vec![descriptor(oci::MEDIA_LAYER_GZIP, &gz)],
    };
    let manifest_json = oci::to_json(&manifest);
    let mut entry = descriptor(oci::MEDIA_MANIFEST, &manifest_json);
    entry.platform = Some(oci::Platform {
        architecture: meta.architecture.clone(),
        os: "linux".into(),
    });
    let reference = meta.reference.to_string();
    entry
        .annotations
        .insert(oci::ANNOTATION_IMAGE_NAME.into(), reference.clone());
    entry
        .annotations
        .insert(oci::ANNOTATION_REF_NAME.into(), meta.reference.tag.clone());
    let index = Index {
        schema_version: 2,
        media_type: oci::MEDIA_INDEX.into(),
        manifests: vec![entry.clone()],
    };
    let docker = vec![DockerEntry {
        config: oci::blob_path(&manifest.config.digest),
        repo_tags: vec![reference],
        layers: vec![oci::blob_path(&manifest.layers[0].digest)],
    }];
    let layout = OciLayout {
        image_layout_version: "1.0.0".into(),
    };

    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for blob in [config, manifest_json, gz] {
        files.insert(oci::blob_path(&oci::sha256(&blob)), blob);
    }
    files.insert("index.json".into(), oci::to_json(&index));
    files.insert("manifest.json".into(), oci::to_json(&docker));
    files.insert("oci-layout".into(), oci::to_json(&layout));
    Ok(Built {
        bytes: outer_tar(&files, meta.epoch),
        digest: entry.digest,
        config_digest: manifest.config.digest,
    })
}

/// gzip with no name and mtime 0, so only the content decides the bytes.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

fn outer_tar(files: &BTreeMap<String, Vec<u8>>, mtime: u64) -> Vec<u8> {
    let mut tree = Tree::new();
    for (path, data) in files {
        // Paths are our own constants and digests: always valid.
        let _ = tree.add_file(path, 0o644, data.clone());
    }
    tree.layer_tar(mtime)
}

/// An archive read back and checked.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// `name:tag` from `index.json`.
    pub reference: String,
    /// The manifest's digest (the image digest).
    pub digest: String,
    /// The config's digest.
    pub config_digest: String,
    /// The image configuration.
    pub config: ImageConfig,
    /// The manifest.
    pub manifest: Manifest,
    /// `manifest.json`.
    pub docker: Vec<DockerEntry>,
    /// The image's filesystem.
    pub tree: Tree,
}

/// Reads `bytes` as an image archive (`archive` names it in errors) and
/// checks it as `docker load` and `ctr images import` would, and more:
/// every blob matches its digest and size, both indexes name the same
/// config and layer, the layer matches the config's `diff_ids`, and the
/// filesystem holds [`REQUIRED`] with every binary's loader.
pub fn read(bytes: &[u8], archive: &str) -> Result<Loaded> {
    let corrupt = |e: std::io::Error| Error::Corrupt {
        archive: archive.to_owned(),
        detail: e.to_string(),
    };
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut tar = tar::Archive::new(bytes);
    for item in tar.entries().map_err(corrupt)? {
        let mut e = item.map_err(corrupt)?;
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = e
            .path()
            .map_err(corrupt)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).map_err(corrupt)?;
        files.insert(path, data);
    }
    if files.is_empty() {
        return Err(Error::Corrupt {
            archive: archive.to_owned(),
            detail: "no files".into(),
        });
    }
    let get = |entry: &str| {
        files.get(entry).ok_or_else(|| Error::MissingEntry {
            archive: archive.to_owned(),
            entry: entry.to_owned(),
        })
    };
    let json = |entry: &str| -> Result<serde_json::Value> {
        serde_json::from_slice(get(entry)?).map_err(|e| Error::bad(archive, entry, e))
    };
    let layout: OciLayout = serde_json::from_value(json("oci-layout")?)
        .map_err(|e| Error::bad(archive, "oci-layout", e))?;
    if layout.image_layout_version != "1.0.0" {
        return Err(Error::bad(
            archive,
            "oci-layout",
            format!("version {}", layout.image_layout_version),
        ));
    }
    let index: Index = serde_json::from_value(json("index.json")?)
        .map_err(|e| Error::bad(archive, "index.json", e))?;
    let [entry] = index.manifests.as_slice() else {
        return Err(Error::bad(
            archive,
            "index.json",
            format!("{} manifests, expected 1", index.manifests.len()),
        ));
    };
    let reference = entry
        .annotations
        .get(oci::ANNOTATION_IMAGE_NAME)
        .cloned()
        .ok_or_else(|| {
            Error::bad(
                archive,
                "index.json",
                format!("no {} annotation", oci::ANNOTATION_IMAGE_NAME),
            )
        })?;
    let blob = |d: &Descriptor| -> Result<&Vec<u8>> {
        let path = oci::blob_path(&d.digest);
        let data = get(&path)?;
        let actual = oci::sha256(data);
        if actual != d.digest || data.len() as u64 != d.size {
            return Err(Error::bad(
                archive,
                &path,
                format!(
                    "is {actual} ({} bytes), descriptor says {} ({} bytes)",
                    data.len(),
                    d.digest,
                    d.size
                ),
            ));
        }
        Ok(data)
    };
    let manifest: Manifest =
        serde_json::from_slice(blob(entry)?).map_err(|e| Error::bad(archive, "manifest", e))?;
    let config_bytes = blob(&manifest.config)?;
    let config: ImageConfig =
        serde_json::from_slice(config_bytes).map_err(|e| Error::bad(archive, "config", e))?;
    let [layer] = manifest.layers.as_slice() else {
        return Err(Error::bad(
            archive,
            "manifest",
            format!("{} layers, expected 1", manifest.layers.len()),
        ));
    };
    let layer_path = oci::blob_path(&layer.digest);
    let mut layer_tar = Vec::new();
    flate2::read::GzDecoder::new(blob(layer)?.as_slice())
        .read_to_end(&mut layer_tar)
        .map_err(|e| Error::bad(archive, &layer_path, format!("gunzip: {e}")))?;
    let diff_id = oci::sha256(&layer_tar);
    if config.rootfs.diff_ids != [diff_id.clone()] {
        return Err(Error::bad(
            archive,
            "config",
            format!("diff_ids {:?}, layer is {diff_id}", config.rootfs.diff_ids),
        ));
    }
    let docker: Vec<DockerEntry> = serde_json::from_value(json("manifest.json")?)
        .map_err(|e| Error::bad(archive, "manifest.json", e))?;
    let agrees = docker.len() == 1
        && docker[0].config == oci::blob_path(&manifest.config.digest)
        && docker[0].layers == [layer_path.clone()]
        && docker[0].repo_tags == [reference.clone()];
    if !agrees {
        return Err(Error::bad(
            archive,
            "manifest.json",
            "does not name the config, layer and tag index.json names",
        ));
    }
    let tree = Tree::from_layer_tar(&layer_tar, archive, &layer_path)?;
    for file in REQUIRED {
        if !matches!(tree.get(file), Some(Node::File { .. })) {
            return Err(Error::MissingFile {
                archive: archive.to_owned(),
                file: file.to_owned(),
            });
        }
    }
    for bin in [CONTROLLER, SPEAKER] {
        if let Some(Node::File { data, .. }) = tree.get(bin) {
            if let Some(interp) = crate::elf::interpreter(data) {
                if !matches!(tree.resolve(&interp), Some(Node::File { .. })) {
                    return Err(Error::MissingFile {
                        archive: archive.to_owned(),
                        file: format!("{interp} (the loader of {bin})"),
                    });
                }
            }
        }
    }
    Ok(Loaded {
        reference,
        digest: entry.digest.clone(),
        config_digest: manifest.config.digest.clone(),
        config,
        manifest,
        docker,
        tree,
    })
}
