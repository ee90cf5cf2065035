//! ferrolb's container image, built without Docker: one reproducible tar
//! that `docker load`, `ctr images import` and `kind load image-archive`
//! all read. See `docs/image.md`.
//!
//! - [`tree`]: the image's filesystem in memory, and its layer tar (pure).
//! - [`oci`]: the JSON documents (config, manifest, index) (pure).
//! - [`archive`]: builds the archive from a tree, reads and checks one (pure).
//! - [`elf`]: an ELF binary's machine and loader (pure).
//! - [`meta`]: name and tag (the kustomization), revision, build time.
//! - [`rootfs`]: gathers the files from this machine; writes a tree out.
//! - [`runc`]: runs the image's binaries under runc, as the manifests do.
//!
//! ```no_run
//! # fn main() -> ferrolb_image::Result<()> {
//! use ferrolb_image::{archive, rootfs};
//! let gathered = rootfs::gather(&rootfs::Inputs {
//!     controller: "target/image-build/release/ferrolb-controller".into(),
//!     speaker: "target/image-build/release/ferrolb-speaker".into(),
//!     ca_certs: archive::CA_CERTS.into(),
//! })?;
//! let meta = archive::Metadata {
//!     reference: ferrolb_image::meta::reference_from_file("deploy/base/kustomization.yaml".as_ref())?,
//!     version: ferrolb_image::VERSION.into(),
//!     revision: ferrolb_image::meta::git_revision(".".as_ref()),
//!     epoch: 0,
//!     architecture: gathered.architecture,
//!     licenses: ferrolb_image::LICENSES.into(),
//! };
//! let built = archive::build(&gathered.tree, &meta)?;
//! println!("{} {}", meta.reference, built.digest);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod archive;
#[cfg(test)]
mod archive_tests;
pub mod elf;
mod error;
pub mod meta;
pub mod oci;
pub mod rootfs;
pub mod runc;
pub mod tree;

pub use error::{Error, Result};

/// The workspace version (this crate shares it), for the version label.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The workspace licence, for the licenses label.
pub const LICENSES: &str = env!("CARGO_PKG_LICENSE");
