//! The JSON documents of an image (pure): OCI image config, manifest and
//! index, the OCI layout marker, and Docker's `manifest.json`.
//!
//! Field order is the struct order and maps are `BTreeMap`s, so the same
//! values always serialize to the same bytes (and digests).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// `application/vnd.oci.image.index.v1+json`
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.manifest.v1+json`
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.config.v1+json`
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `application/vnd.oci.image.layer.v1.tar+gzip`
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation containerd's importer (`ctr images import`) names images by.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation holding the tag.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The path of a blob inside the layout: `blobs/sha256/<hex>`.
pub fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// Set on the index's entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Set on the index's entry (image name, tag).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// OS and architecture (GOARCH names: `amd64`, `arm64`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// Always `linux` here.
    pub os: String,
}

/// The image configuration (OCI image-spec `config.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// RFC 3339, the fixed build time.
    pub created: String,
    /// GOARCH name.
    pub architecture: String,
    /// `linux`.
    pub os: String,
    /// How to run it.
    pub config: RunConfig,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
    /// One entry per layer.
    #[serde(default)]
    pub history: Vec<History>,
}

/// The `config` part of the image configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    /// `uid:gid`.
    #[serde(rename = "User", default)]
    pub user: String,
    /// `KEY=value`.
    #[serde(rename = "Env", default)]
    pub env: Vec<String>,
    /// The program.
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Vec<String>,
    /// Working directory.
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: String,
    /// `org.opencontainers.image.*` labels.
    #[serde(rename = "Labels", default)]
    pub labels: BTreeMap<String, String>,
}

/// `rootfs` of the image configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `sha256:` of each uncompressed layer tar.
    pub diff_ids: Vec<String>,
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339.
    pub created: String,
    /// What made the layer.
    pub created_by: String,
}

/// An OCI image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MEDIA_MANIFEST`].
    pub media_type: String,
    /// The image configuration.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
}

/// An OCI image index (`index.json` of the layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// [`MEDIA_INDEX`].
    #[serde(default)]
    pub media_type: String,
    /// One entry per tagged image.
    pub manifests: Vec<Descriptor>,
}

/// The `oci-layout` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciLayout {
    /// `1.0.0`.
    pub image_layout_version: String,
}

/// One entry of Docker's `manifest.json` (what `docker load` reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerEntry {
    /// Path of the config blob in the tar.
    pub config: String,
    /// `name:tag` references.
    pub repo_tags: Vec<String>,
    /// Paths of the layer blobs in the tar, base first.
    pub layers: Vec<String>,
}

/// Compact, deterministic JSON.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Only plain structs, strings and string maps: serialization cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// An image reference split at the tag: `ghcr.io/ferrolb/ferrolb:v0.1.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `ghcr.io/ferrolb/ferrolb`.
    pub name: String,
    /// `v0.1.0`.
    pub tag: String,
}

impl Reference {
    /// Parses `name:tag`; the tag follows the last `:` after the last `/`
    /// (so a registry port is not a tag).
    pub fn parse(text: &str) -> Option<Self> {
        let slash = text.rfind('/').map_or(0, |i| i + 1);
        let colon = slash + text[slash..].rfind(':')?;
        let (name, tag) = (&text[..colon], &text[colon + 1..]);
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && !tag.starts_with(['.', '-']);
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c));
        (tag_ok && name_ok).then(|| Self {
            name: name.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// The OCI/GOARCH name of an ELF machine (`e_machine`), little-endian
/// unless noted; `None` for machines no Kubernetes node runs.
pub fn goarch(e_machine: u16, big_endian: bool) -> Option<&'static str> {
    Some(match (e_machine, big_endian) {
        (62, false) => "amd64",
        (183, false) => "arm64",
        (40, false) => "arm",
        (3, false) => "386",
        (243, false) => "riscv64",
        (21, false) => "ppc64le",
        (22, true) => "s390x",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_nothing_is_the_well_known_digest() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(blob_path("sha256:ab"), "blobs/sha256/ab");
    }

    #[test]
    fn a_descriptor_serializes_in_spec_order_without_empty_fields() {
        let d = Descriptor {
            media_type: MEDIA_CONFIG.into(),
            digest: "sha256:00".into(),
            size: 2,
            platform: None,
            annotations: BTreeMap::new(),
        };
        assert_eq!(
            String::from_utf8(to_json(&d)).unwrap(),
            r#"{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:00","size":2}"#
        );
    }

    #[test]
    fn docker_manifest_fields_are_pascal_case() {
        let e = DockerEntry {
            config: "blobs/sha256/c".into(),
            repo_tags: vec!["a/b:c".into()],
            layers: vec!["blobs/sha256/l".into()],
        };
        assert_eq!(
            String::from_utf8(to_json(&vec![e])).unwrap(),
            r#"[{"Config":"blobs/sha256/c","RepoTags":["a/b:c"],"Layers":["blobs/sha256/l"]}]"#
        );
    }

    #[test]
    fn references_split_at_the_tag_not_at_a_registry_port() {
        let r = Reference::parse("ghcr.io/ferrolb/ferrolb:v0.1.0").unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_str()),
            ("ghcr.io/ferrolb/ferrolb", "v0.1.0")
        );
        let r = Reference::parse("localhost:5000/ferrolb:dev").unwrap();
        assert_eq!(r.name, "localhost:5000/ferrolb");
        assert_eq!(r.to_string(), "localhost:5000/ferrolb:dev");
        assert_eq!(Reference::parse("localhost:5000/ferrolb"), None);
        assert_eq!(Reference::parse("ferrolb"), None);
        assert_eq!(Reference::parse("Ferrolb:v1"), None);
        assert_eq!(Reference::parse("ferrolb:"), None);
        assert_eq!(Reference::parse("ferrolb:-x"), None);
    }

    #[test]
    fn elf_machines_map_to_oci_architectures() {
        assert_eq!(goarch(62, false), Some("amd64"));
        assert_eq!(goarch(183, false), Some("arm64"));
        assert_eq!(goarch(22, true), Some("s390x"));
        assert_eq!(goarch(62, true), None);
        assert_eq!(goarch(0, false), None);
    }
}
