//! CRD manifests generated from the Rust types, shared by the `crdgen`
//! binary and the test that keeps `deploy/crds/` in step with the code.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSON,
};
use kube::CustomResourceExt;

use crate::{IPAddressPool, L2Advertisement, ServiceL2Status};

/// Errors of generating, writing or checking the CRD manifests.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CRD could not be rendered as YAML.
    #[error("cannot render CRD {name} as YAML: {source}")]
    Render {
        /// Name of the CRD, e.g. `ipaddresspools.ferrolb.io`.
        name: String,
        /// What the YAML serializer said.
        source: serde_yaml::Error,
    },
    /// A manifest could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The manifest's path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Checked-in manifests differ from what the code generates.
    #[error(
        "CRD manifests are out of date: {}; run `cargo run -p ferrolb-crds --bin crdgen` and commit the result",
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    OutOfDate {
        /// The manifests that are missing or differ.
        paths: Vec<PathBuf>,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One generated manifest: its file name under `deploy/crds/` and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// File name, e.g. `ferrolb.io_ipaddresspools.yaml`.
    pub file_name: String,
    /// Full YAML text, including the "generated" header.
    pub yaml: String,
}

const HEADER: &str =
    "# Generated from crds/src by `cargo run -p ferrolb-crds --bin crdgen`. Do not edit.\n";

/// The `IPAddressPool` CRD exactly as installed.
pub fn ip_address_pool_crd() -> CustomResourceDefinition {
    IPAddressPool::crd()
}

/// The `L2Advertisement` CRD exactly as installed.
///
/// Unlike `L2Advertisement::crd()`, `spec` is optional and defaults to `{}`,
/// as in MetalLB, whose minimal documented advertisement has no spec. Use
/// this function (or [`crds`]) rather than the derive's `crd()`.
pub fn l2_advertisement_crd() -> CustomResourceDefinition {
    let mut crd = L2Advertisement::crd();
    optional_spec(&mut crd);
    crd
}

/// The `ServiceL2Status` CRD exactly as installed.
///
/// Unlike `ServiceL2Status::crd()`, `spec` is optional (as in MetalLB: it
/// has no fields) and there is no status subresource: the speaker writes
/// a record, labels, owner and status, in one request, and nobody else
/// writes it at all.
pub fn service_l2_status_crd() -> CustomResourceDefinition {
    let mut crd = ServiceL2Status::crd();
    optional_spec(&mut crd);
    for version in &mut crd.spec.versions {
        version.subresources = None;
    }
    crd
}

/// Makes `spec` optional, defaulting to `{}`.
fn optional_spec(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        if let Some(required) = root.required.as_mut() {
            required.retain(|field| field != "spec");
            if required.is_empty() {
                root.required = None;
            }
        }
        if let Some(spec) = root.properties.as_mut().and_then(|p| p.get_mut("spec")) {
            spec.default = Some(JSON(serde_json::json!({})));
        }
    }
}

/// Every ferrolb CRD, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        ip_address_pool_crd(),
        l2_advertisement_crd(),
        service_l2_status_crd(),
    ]
}

/// The manifest file name for a CRD: `<group>_<plural>.yaml`, as
/// controller-gen names them.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// Renders one CRD as the YAML checked in under `deploy/crds/`.
pub fn render(crd: &CustomResourceDefinition) -> Result<String> {
    let body = serde_yaml::to_string(crd).map_err(|source| Error::Render {
        name: crd.metadata.name.clone().unwrap_or_default(),
        source,
    })?;
    Ok(format!("{HEADER}{body}"))
}

/// Every manifest, rendered.
pub fn manifests() -> Result<Vec<Manifest>> {
    crds()
        .iter()
        .map(|crd| {
            Ok(Manifest {
                file_name: file_name(crd),
                yaml: render(crd)?,
            })
        })
        .collect()
}

/// All manifests as one multi-document YAML stream (for `kubectl apply -f -`).
pub fn render_all() -> Result<String> {
    Ok(manifests()?
        .into_iter()
        .map(|m| m.yaml)
        .collect::<Vec<_>>()
        .join("---\n"))
}

/// `deploy/crds/` of the source tree this crate was built from.
pub fn default_output_dir() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .parent()
        .unwrap_or(crate_dir)
        .join("deploy")
        .join("crds")
}

/// Writes every manifest into `dir`; returns the paths written.
pub fn write_all(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        action: "create directory",
        path: dir.to_path_buf(),
        source,
    })?;
    manifests()?
        .into_iter()
        .map(|m| {
            let path = dir.join(&m.file_name);
            std::fs::write(&path, m.yaml).map_err(|source| Error::Io {
                action: "write",
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
}

/// Fails with [`Error::OutOfDate`] naming every manifest in `dir` that is
/// missing or differs from what the code generates.
pub fn check_all(dir: &Path) -> Result<()> {
    let mut stale = Vec::new();
    for m in manifests()? {
        let path = dir.join(&m.file_name);
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if on_disk == m.yaml => {}
            Ok(_) => stale.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => stale.push(path),
            Err(source) => {
                return Err(Error::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        }
    }
    if stale.is_empty() {
        Ok(())
    } else {
        Err(Error::OutOfDate { paths: stale })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_file_names_follow_controller_gen() {
        let names: Vec<_> = crds().iter().map(file_name).collect();
        assert_eq!(
            names,
            [
                "ferrolb.io_ipaddresspools.yaml",
                "ferrolb.io_l2advertisements.yaml",
                "ferrolb.io_servicel2statuses.yaml"
            ]
        );
    }

    #[test]
    fn check_names_missing_and_stale_files_and_accepts_fresh_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = check_all(dir.path()).expect_err("empty dir is out of date");
        assert!(matches!(&err, Error::OutOfDate { paths } if paths.len() == 3));
        assert!(err.to_string().contains("crdgen"), "{err}");

        let written = write_all(dir.path()).expect("writable");
        assert_eq!(written.len(), 3);
        check_all(dir.path()).expect("freshly written manifests are current");

        std::fs::write(&written[1], "# edited by hand\n").expect("writable");
        match check_all(dir.path()) {
            Err(Error::OutOfDate { paths }) => assert_eq!(paths, [written[1].clone()]),
            other => panic!("expected OutOfDate, got {other:?}"),
        }
    }

    #[test]
    fn the_stream_holds_every_manifest_once() {
        let all = render_all().expect("renderable");
        assert_eq!(all.matches("kind: CustomResourceDefinition").count(), 3);
        assert_eq!(all.matches("\n---\n").count(), 2);
    }
}
