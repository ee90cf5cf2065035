//! The archive `bash scripts/image` built (`FERROLB_IMAGE_ARCHIVE`): no
//! machine's paths in its binaries, and its digest is a function of its
//! files and metadata alone. `#[ignore]`d, so it only runs when asked
//! (docs/testing.md).

mod common;

use std::path::{Path, PathBuf};

use ferrolb_image::archive::{self, Metadata};
use ferrolb_image::tree::Node;

/// Paths of this machine that a careless build leaves in binaries.
fn machine_paths() -> Vec<String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".cargo")));
    let mut paths = vec![workspace];
    paths.extend(cargo_home);
    // With the trailing slash: `/root` alone also matches `/rootfs`.
    paths.extend(home.filter(|h| h != Path::new("/")));
    paths
        .into_iter()
        .map(|p| format!("{}/", p.display()))
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
#[ignore = "needs the image archive (bash scripts/image)"]
fn the_shipped_binaries_carry_no_build_paths() {
    let path = common::shipped_archive("the_shipped_binaries_carry_no_build_paths");
    let image = common::load(&path);
    let needles = machine_paths();
    for bin in [archive::CONTROLLER, archive::SPEAKER] {
        let Some(Node::File { data, .. }) = image.tree.get(bin) else {
            panic!("{bin} missing");
        };
        for needle in &needles {
            if let Some(at) = find(data, needle.as_bytes()) {
                let end = (at + 120).min(data.len());
                panic!(
                    "{bin} holds {needle:?} at byte {at}: {:?}",
                    String::from_utf8_lossy(&data[at..end])
                );
            }
        }
        // Remapped instead: the workspace is /src, the registry /cargo.
        assert!(
            find(data, b"/cargo/registry/").is_some(),
            "{bin}: remapping not applied?"
        );
    }
}

#[test]
#[ignore = "needs the image archive (bash scripts/image)"]
fn the_shipped_layer_and_config_follow_from_its_files_and_metadata_alone() {
    let test = "the_shipped_layer_and_config_follow_from_its_files_and_metadata_alone";
    let path = common::shipped_archive(test);
    let image = common::load(&path);
    let labels = &image.config.config.labels;
    let label = |k: &str| {
        labels
            .get(&format!("org.opencontainers.image.{k}"))
            .cloned()
    };
    let created: jiff::Timestamp = image.config.created.parse().unwrap();
    let meta = Metadata {
        reference: ferrolb_image::oci::Reference::parse(&image.reference).unwrap(),
        version: label("version").unwrap(),
        revision: label("revision"),
        epoch: created.as_second() as u64,
        architecture: image.config.architecture.clone(),
        licenses: label("licenses").unwrap(),
    };
    // The whole archive is compared by `scripts/image` run twice (CI
    // could too); gzipping 40 MB in a debug test build takes half a
    // minute, so here: the layer and the config, rebuilt from the files.
    let layer = image.tree.layer_tar(meta.epoch);
    let diff_id = ferrolb_image::oci::sha256(&layer);
    assert_eq!(image.config.rootfs.diff_ids, std::slice::from_ref(&diff_id));
    let config = archive::config(&meta, &diff_id).unwrap();
    assert_eq!(config, image.config);
    assert_eq!(
        ferrolb_image::oci::sha256(&ferrolb_image::oci::to_json(&config)),
        image.config_digest
    );
}
