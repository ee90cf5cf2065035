//! The archive writer and reader, on small in-memory images.

use std::io::Read;

use serde_json::Value;

use crate::archive::{self, Metadata};
use crate::elf::tests::fake_elf;
use crate::oci::{self, Reference};
use crate::tree::{Tree, DATA_MODE, EXEC_MODE};

const EPOCH: u64 = 1_700_000_000;

fn meta() -> Metadata {
    Metadata {
        reference: Reference::parse("ghcr.io/ferrolb/ferrolb:v0.1.0").unwrap(),
        version: "0.1.0".into(),
        revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
        epoch: EPOCH,
        architecture: "amd64".into(),
        licenses: "Apache-2.0".into(),
    }
}

type Add = fn(&mut Tree);

const PARTS: [Add; 8] = [
    |t| {
        t.add_file(archive::CONTROLLER, EXEC_MODE, fake_elf("/lib64/ld.so.2"))
            .unwrap()
    },
    |t| {
        t.add_file(archive::SPEAKER, EXEC_MODE, fake_elf("/lib64/ld.so.2"))
            .unwrap()
    },
    |t| {
        t.add_file(archive::CA_CERTS, DATA_MODE, b"certs".to_vec())
            .unwrap()
    },
    |t| {
        t.add_file("/etc/passwd", DATA_MODE, crate::rootfs::PASSWD.into())
            .unwrap()
    },
    |t| {
        t.add_file("/etc/group", DATA_MODE, crate::rootfs::GROUP.into())
            .unwrap()
    },
    |t| t.add_symlink("/lib64", "usr/lib64").unwrap(),
    |t| {
        t.add_symlink("/usr/lib64/ld.so.2", "../lib/ld.so.2")
            .unwrap()
    },
    |t| {
        t.add_file("/usr/lib/ld.so.2", EXEC_MODE, b"loader".to_vec())
            .unwrap()
    },
];

fn tree_in(order: impl IntoIterator<Item = usize>) -> Tree {
    let mut t = Tree::new();
    for i in order {
        PARTS[i](&mut t);
    }
    t
}

fn tree() -> Tree {
    tree_in(0..PARTS.len())
}

/// The outer tar's files, path to contents.
fn entries(bytes: &[u8]) -> Vec<(String, Vec<u8>, tar::Header)> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(bytes);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push((path, data, e.header().clone()));
    }
    out
}

fn file(bytes: &[u8], path: &str) -> Vec<u8> {
    entries(bytes)
        .into_iter()
        .find(|(p, ..)| p == path)
        .unwrap_or_else(|| panic!("{path} missing"))
        .1
}

fn json(bytes: &[u8], path: &str) -> Value {
    serde_json::from_slice(&file(bytes, path)).unwrap()
}

#[test]
fn the_same_files_in_any_order_give_the_same_bytes_and_digest() {
    let a = archive::build(&tree(), &meta()).unwrap();
    let b = archive::build(&tree_in((0..PARTS.len()).rev()), &meta()).unwrap();
    let c = archive::build(&tree_in([5, 2, 7, 0, 3, 6, 1, 4]), &meta()).unwrap();
    assert_eq!(a.bytes, b.bytes);
    assert_eq!(a.bytes, c.bytes);
    assert_eq!(a.digest, c.digest);
    let later = Metadata {
        epoch: EPOCH + 1,
        ..meta()
    };
    assert_ne!(archive::build(&tree(), &later).unwrap().digest, a.digest);
}

#[test]
fn outer_entries_are_sorted_with_the_fixed_time_and_no_owner() {
    let built = archive::build(&tree(), &meta()).unwrap();
    let all = entries(&built.bytes);
    let paths: Vec<&str> = all.iter().map(|(p, ..)| p.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    assert_eq!(paths, sorted);
    assert_eq!(paths[..2], ["blobs/", "blobs/sha256/"]);
    assert_eq!(paths[5..], ["index.json", "manifest.json", "oci-layout"]);
    for (path, _, h) in &all {
        assert_eq!(h.mtime().unwrap(), EPOCH, "{path}");
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0), "{path}");
        assert_eq!(h.username().unwrap(), Some(""), "{path}");
        let mode = if path.ends_with('/') { 0o755 } else { 0o644 };
        assert_eq!(h.mode().unwrap(), mode, "{path}");
    }
}

#[test]
fn every_blob_is_named_by_its_digest() {
    let built = archive::build(&tree(), &meta()).unwrap();
    for (path, data, _) in entries(&built.bytes) {
        if let Some(hex) = path.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            assert_eq!(oci::sha256(&data), format!("sha256:{hex}"));
        }
    }
}

#[test]
fn the_index_names_the_image_for_containerd_and_the_tag_for_oci() {
    let built = archive::build(&tree(), &meta()).unwrap();
    let index = json(&built.bytes, "index.json");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], oci::MEDIA_INDEX);
    let entry = &index["manifests"][0];
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(entry["mediaType"], oci::MEDIA_MANIFEST);
    assert_eq!(entry["digest"], built.digest.as_str());
    let manifest = file(&built.bytes, &oci::blob_path(&built.digest));
    assert_eq!(entry["size"], manifest.len());
    assert_eq!(
        entry["platform"],
        serde_json::json!({"architecture": "amd64", "os": "linux"})
    );
    let ann = &entry["annotations"];
    assert_eq!(
        ann[oci::ANNOTATION_IMAGE_NAME],
        "ghcr.io/ferrolb/ferrolb:v0.1.0"
    );
    assert_eq!(ann[oci::ANNOTATION_REF_NAME], "v0.1.0");
    assert_eq!(
        json(&built.bytes, "oci-layout"),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
}

#[test]
fn the_manifest_describes_config_and_layer_exactly() {
    let built = archive::build(&tree(), &meta()).unwrap();
    let m: Value =
        serde_json::from_slice(&file(&built.bytes, &oci::blob_path(&built.digest))).unwrap();
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], oci::MEDIA_MANIFEST);
    for (d, media) in [
        (&m["config"], oci::MEDIA_CONFIG),
        (&m["layers"][0], oci::MEDIA_LAYER_GZIP),
    ] {
        assert_eq!(d["mediaType"], media);
        let blob = file(&built.bytes, &oci::blob_path(d["digest"].as_str().unwrap()));
        assert_eq!(d["size"], blob.len());
    }
    assert_eq!(m["config"]["digest"], built.config_digest.as_str());
    let gz = file(
        &built.bytes,
        &oci::blob_path(m["layers"][0]["digest"].as_str().unwrap()),
    );
    assert_eq!(gz[..2], [0x1f, 0x8b]);
    assert_eq!(gz[4..8], [0, 0, 0, 0], "gzip mtime must be 0");
    let mut layer = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut layer)
        .unwrap();
    let config = json(&built.bytes, &oci::blob_path(&built.config_digest));
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([oci::sha256(&layer)])
    );
}

#[test]
fn the_config_runs_the_controller_as_nobody_with_every_label() {
    let built = archive::build(&tree(), &meta()).unwrap();
    let c = json(&built.bytes, &oci::blob_path(&built.config_digest));
    assert_eq!(c["architecture"], "amd64");
    assert_eq!(c["os"], "linux");
    assert_eq!(c["created"], "2023-11-14T22:13:20Z");
    assert_eq!(c["config"]["User"], "65534:65534");
    assert_eq!(
        c["config"]["Entrypoint"],
        serde_json::json!(["/ferrolb-controller"])
    );
    assert_eq!(c["rootfs"]["type"], "layers");
    let labels = c["config"]["Labels"].as_object().unwrap();
    for key in [
        "title",
        "version",
        "source",
        "revision",
        "licenses",
        "description",
    ] {
        assert!(
            labels.contains_key(&format!("org.opencontainers.image.{key}")),
            "{key}"
        );
    }
    assert_eq!(labels["org.opencontainers.image.source"], archive::SOURCE);
    assert_eq!(labels["org.opencontainers.image.version"], "0.1.0");
}

#[test]
fn the_docker_manifest_points_at_the_same_blobs() {
    let built = archive::build(&tree(), &meta()).unwrap();
    let d = json(&built.bytes, "manifest.json");
    assert_eq!(d.as_array().unwrap().len(), 1);
    assert_eq!(d[0]["Config"], oci::blob_path(&built.config_digest));
    assert_eq!(
        d[0]["RepoTags"],
        serde_json::json!(["ghcr.io/ferrolb/ferrolb:v0.1.0"])
    );
    let layer = d[0]["Layers"][0].as_str().unwrap();
    assert!(
        entries(&built.bytes).iter().any(|(p, ..)| p == layer),
        "{layer}"
    );
}

#[test]
fn an_archive_reads_back_into_the_same_image() {
    let built = archive::build(&tree(), &meta()).unwrap();
    let loaded = archive::read(&built.bytes, "x.tar").unwrap();
    assert_eq!(loaded.tree, tree());
    assert_eq!(loaded.digest, built.digest);
    assert_eq!(loaded.reference, "ghcr.io/ferrolb/ferrolb:v0.1.0");
}

#[test]
fn a_truncated_archive_is_an_error_naming_it_never_a_panic() {
    let built = archive::build(&tree(), &meta()).unwrap();
    // The end: the last entry's padding, then two zero blocks; cutting
    // there loses nothing, anywhere before loses content.
    let content_end = built.bytes.len() - 1024 - 512;
    for len in (0..built.bytes.len()).step_by(97) {
        match archive::read(&built.bytes[..len], "cut.tar") {
            Err(e) => assert!(e.to_string().contains("cut.tar"), "{len}: {e}"),
            Ok(_) => assert!(
                len >= content_end,
                "cut at {len} of {} was accepted",
                built.bytes.len()
            ),
        }
    }
}

#[test]
fn a_corrupt_byte_anywhere_is_an_error_never_a_panic() {
    let built = archive::build(&tree(), &meta()).unwrap();
    for at in (0..built.bytes.len()).step_by(89) {
        let mut bytes = built.bytes.clone();
        bytes[at] ^= 0x55;
        // A flip in padding or an unused header field changes nothing
        // that matters; anything else must be reported.
        if let Err(e) = archive::read(&bytes, "flip.tar") {
            assert!(e.to_string().contains("flip.tar"), "{at}: {e}");
        }
    }
    assert!(archive::read(b"not a tar at all", "junk.tar")
        .unwrap_err()
        .to_string()
        .contains("junk.tar"));
}

#[test]
fn a_changed_layer_is_caught_by_its_digest() {
    let built = archive::build(&tree(), &meta()).unwrap();
    let m: Value =
        serde_json::from_slice(&file(&built.bytes, &oci::blob_path(&built.digest))).unwrap();
    let layer_path = oci::blob_path(m["layers"][0]["digest"].as_str().unwrap());
    let mut bytes = built.bytes.clone();
    let gz = file(&bytes, &layer_path);
    let at = bytes
        .windows(gz.len())
        .position(|w| w == gz.as_slice())
        .unwrap();
    bytes[at + gz.len() / 2] ^= 1;
    let err = archive::read(&bytes, "x.tar").unwrap_err().to_string();
    assert!(err.contains(&layer_path), "{err}");
}

#[test]
fn an_archive_without_the_speaker_is_refused_naming_it() {
    let built = archive::build(&tree_in([0, 2, 3, 4, 5, 6, 7]), &meta()).unwrap();
    let err = archive::read(&built.bytes, "half.tar")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("half.tar") && err.contains("/ferrolb-speaker"),
        "{err}"
    );
}

#[test]
fn a_binary_whose_loader_is_missing_is_refused() {
    let built = archive::build(&tree_in(0..5), &meta()).unwrap();
    let err = archive::read(&built.bytes, "noloader.tar")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/lib64/ld.so.2"), "{err}");
}
