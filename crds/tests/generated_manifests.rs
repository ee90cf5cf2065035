//! The CRD manifests checked in under `deploy/crds/` must be exactly what
//! the Rust types generate.

use ferrolb_crds::generate::{check_all, default_output_dir, manifests};

#[test]
fn checked_in_crd_manifests_match_the_code() {
    if let Err(err) = check_all(&default_output_dir()) {
        panic!("{err}");
    }
}

#[test]
fn checked_in_manifests_parse_back_to_the_generated_crds() {
    for manifest in manifests().expect("renderable") {
        let path = default_output_dir().join(&manifest.file_name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo run -p ferrolb-crds --bin crdgen`",
                path.display()
            )
        });
        let parsed: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_yaml::from_str(&text).expect("checked-in manifest is a CRD");
        let generated = ferrolb_crds::generate::crds()
            .into_iter()
            .find(|crd| ferrolb_crds::generate::file_name(crd) == manifest.file_name)
            .expect("generated");
        assert_eq!(parsed, generated, "{}", path.display());
    }
}
