//! Where the image's name, tag, revision and build time come from.
//!
//! The name and tag live in one place, the `images:` entry `ferrolb` of
//! `deploy/base/kustomization.yaml` (`newName`, `newTag`); the build time
//! is `SOURCE_DATE_EPOCH`, else the HEAD commit's time, else 0.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use crate::oci::Reference;
use crate::{Error, Result};

/// The kustomization's path, relative to the workspace root.
pub const KUSTOMIZATION: &str = "deploy/base/kustomization.yaml";
/// The `images:` entry naming ferrolb's image.
pub const IMAGE_ENTRY: &str = "ferrolb";

#[derive(Debug, Deserialize)]
struct Kustomization {
    #[serde(default)]
    images: Vec<KustomizeImage>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KustomizeImage {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
}

/// The reference of the `images:` entry [`IMAGE_ENTRY`] in `yaml` (read
/// from `path`, which errors name).
pub fn reference_from_kustomization(yaml: &str, path: &str) -> Result<Reference> {
    let fail = |detail: String| Error::Reference {
        path: path.to_owned(),
        detail,
    };
    let k: Kustomization =
        serde_yaml::from_str(yaml).map_err(|e| fail(format!("not a kustomization: {e}")))?;
    let entry = k
        .images
        .iter()
        .find(|i| i.name == IMAGE_ENTRY)
        .ok_or_else(|| fail(format!("no `images:` entry with `name: {IMAGE_ENTRY}`")))?;
    let name = entry.new_name.as_deref().unwrap_or(IMAGE_ENTRY);
    let tag = entry
        .new_tag
        .as_deref()
        .ok_or_else(|| fail(format!("the `{IMAGE_ENTRY}` image entry has no newTag")))?;
    Reference::parse(&format!("{name}:{tag}"))
        .ok_or_else(|| fail(format!("{name}:{tag} is not a valid image reference")))
}

/// Reads the kustomization at `path`.
pub fn reference_from_file(path: &Path) -> Result<Reference> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Reference {
        path: path.display().to_string(),
        detail: format!("{e} (it holds the image name and tag; or pass --tag NAME:TAG)"),
    })?;
    reference_from_kustomization(&text, &path.display().to_string())
}

/// Parses a `--tag NAME:TAG` override.
pub fn reference_from_flag(text: &str) -> Result<Reference> {
    Reference::parse(text).ok_or_else(|| Error::Reference {
        path: "--tag".into(),
        detail: format!("{text:?} is not NAME:TAG (lowercase name, tag of [A-Za-z0-9_.-])"),
    })
}

/// The build time: `SOURCE_DATE_EPOCH` if set (must be a number), else
/// the commit time git gives, else 0.
pub fn epoch(source_date_epoch: Option<&str>, commit_time: Option<u64>) -> Result<u64> {
    match source_date_epoch.map(str::trim) {
        Some(v) if !v.is_empty() => v.parse().map_err(|_| Error::Metadata {
            what: "SOURCE_DATE_EPOCH".into(),
            detail: format!("{v:?} is not a number of seconds"),
        }),
        _ => Ok(commit_time.unwrap_or(0)),
    }
}

/// `git -C dir <args>`, trimmed, or `None` (no git, not a checkout).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The HEAD commit of the checkout at `dir`.
pub fn git_revision(dir: &Path) -> Option<String> {
    git(dir, &["rev-parse", "HEAD"])
}

/// The HEAD commit's committer time, in seconds.
pub fn git_commit_time(dir: &Path) -> Option<u64> {
    git(dir, &["log", "-1", "--format=%ct"])?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\n\
                        kind: Kustomization\n\
                        resources: [../ferrolb.yaml]\n\
                        images:\n\
                        - name: other\n  newTag: x\n\
                        - name: ferrolb\n  newName: ghcr.io/ferrolb/ferrolb\n  newTag: v0.1.0\n";

    #[test]
    fn the_reference_comes_from_the_ferrolb_images_entry() {
        let r = reference_from_kustomization(YAML, "k.yaml").unwrap();
        assert_eq!(r.to_string(), "ghcr.io/ferrolb/ferrolb:v0.1.0");
    }

    #[test]
    fn a_kustomization_without_the_entry_or_tag_is_a_clear_error() {
        let err = reference_from_kustomization("images: []\n", "deploy/base/kustomization.yaml")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("deploy/base/kustomization.yaml") && text.contains("name: ferrolb"),
            "{text}"
        );
        let err = reference_from_kustomization("images:\n- name: ferrolb\n", "k.yaml").unwrap_err();
        assert!(err.to_string().contains("newTag"), "{err}");
        let err = reference_from_kustomization(": [", "k.yaml").unwrap_err();
        assert!(err.to_string().contains("k.yaml"), "{err}");
    }

    #[test]
    fn a_missing_kustomization_names_the_file_and_the_way_out() {
        let err = reference_from_file(Path::new("/nonexistent/kustomization.yaml")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/kustomization.yaml") && text.contains("--tag"),
            "{text}"
        );
    }

    #[test]
    fn source_date_epoch_wins_then_the_commit_then_zero() {
        assert_eq!(epoch(Some("1700000000"), Some(5)).unwrap(), 1_700_000_000);
        assert_eq!(epoch(None, Some(5)).unwrap(), 5);
        assert_eq!(epoch(Some(""), None).unwrap(), 0);
        assert!(epoch(Some("yesterday"), None)
            .unwrap_err()
            .to_string()
            .contains("SOURCE_DATE_EPOCH"));
    }

    #[test]
    fn the_tag_flag_takes_name_and_tag() {
        assert_eq!(reference_from_flag("ferrolb:dev").unwrap().tag, "dev");
        assert!(reference_from_flag("ferrolb")
            .unwrap_err()
            .to_string()
            .contains("--tag"));
    }
}
