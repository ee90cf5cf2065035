//! What the image's test files share: where the shipped archive is, and
//! small archives to test with. Tests that need the archive, root or a tool
//! are `#[ignore]`d and fail with the reason when run without it
//! (netlab's rule).

#![allow(dead_code)]

use std::path::PathBuf;

/// The variable the test command sets after `bash scripts/image`.
pub const ARCHIVE_VAR: &str = "FERROLB_IMAGE_ARCHIVE";

/// The archive `bash scripts/image` built; fails the test (which is
/// `#[ignore]`d for this reason) when the variable is not set.
pub fn shipped_archive(test: &str) -> PathBuf {
    match std::env::var_os(ARCHIVE_VAR) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => netlab::unavailable(
            test,
            format!(
                "{ARCHIVE_VAR} is not set: run `bash scripts/image` and export \
                 {ARCHIVE_VAR}=target/image/ferrolb.tar"
            ),
        ),
    }
}

/// Reads and checks the archive at `path`.
pub fn load(path: &std::path::Path) -> ferrolb_image::archive::Loaded {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    ferrolb_image::archive::read(&bytes, &path.display().to_string()).unwrap()
}

/// Image metadata for test archives.
pub fn metadata(architecture: &str) -> ferrolb_image::archive::Metadata {
    ferrolb_image::archive::Metadata {
        reference: ferrolb_image::oci::Reference::parse("ghcr.io/ferrolb/ferrolb:test").unwrap(),
        version: ferrolb_image::VERSION.into(),
        revision: Some("0000000000000000000000000000000000000000".into()),
        epoch: 1_700_000_000,
        architecture: architecture.into(),
        licenses: ferrolb_image::LICENSES.into(),
    }
}

/// A small real image: `/bin/true` and `/bin/false` of this machine (small
/// dynamic ELF binaries) stand in for the controller and the speaker,
/// gathered like the real ones (ldd, loader, CA bundle); written to
/// `dir/small.tar`.
pub fn small_archive(dir: &std::path::Path) -> (PathBuf, ferrolb_image::archive::Built) {
    use ferrolb_image::{archive, rootfs};
    let gathered = rootfs::gather(&rootfs::Inputs {
        controller: "/bin/true".into(),
        speaker: "/bin/false".into(),
        ca_certs: archive::CA_CERTS.into(),
    })
    .unwrap();
    let built = archive::build(&gathered.tree, &metadata(&gathered.architecture)).unwrap();
    let path = dir.join("small.tar");
    std::fs::write(&path, &built.bytes).unwrap();
    (path, built)
}
