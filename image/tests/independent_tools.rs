//! Archives checked by tools that share no code with ours: skopeo reads
//! both of its faces (`docker-archive:` and `oci-archive:`), umoci unpacks
//! the OCI one, and they must agree with our reader on the digest, the
//! config and the files. `#[ignore]`d, so they only run when asked
//! (docs/testing.md).

mod common;

use std::path::Path;
use std::process::Command;

use ferrolb_image::archive::Loaded;
use ferrolb_image::tree::Node;
use serde_json::Value;

fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn skopeo_json(args: &[&str]) -> Value {
    serde_json::from_slice(&run("skopeo", args)).unwrap()
}

/// skopeo and umoci see what our reader sees in the archive at `path`.
fn agree(path: &Path, ours: &Loaded, scratch: &Path) {
    let docker = format!("docker-archive:{}", path.display());
    let oci = format!("oci-archive:{}", path.display());

    // The OCI face: skopeo's digest is the manifest's, the config the same bytes.
    let inspect = skopeo_json(&["inspect", &oci]);
    assert_eq!(inspect["Digest"], ours.digest.as_str());
    assert_eq!(inspect["Architecture"], ours.config.architecture.as_str());
    let config = run("skopeo", &["inspect", "--raw", "--config", &oci]);
    assert_eq!(ferrolb_image::oci::sha256(&config), ours.config_digest);

    // The Docker face: skopeo builds its own manifest from manifest.json;
    // it must name our config and our layer's uncompressed digest.
    let raw = skopeo_json(&["inspect", "--raw", &docker]);
    assert_eq!(raw["config"]["digest"], ours.config_digest.as_str());
    let inspect_docker = skopeo_json(&["inspect", &docker]);
    assert_eq!(
        inspect_docker["Layers"],
        serde_json::json!(ours.config.rootfs.diff_ids)
    );
    assert_eq!(inspect_docker["Labels"], inspect["Labels"]);
    let labels = inspect["Labels"].as_object().unwrap();
    assert_eq!(labels.len(), 6, "{labels:?}");

    // Both faces convert to an OCI layout, and umoci unpacks it into the
    // files our own reader found, with the image's user and entrypoint.
    for (i, source) in [&oci, &docker].into_iter().enumerate() {
        let layout = scratch.join(format!("layout{i}"));
        let dest = format!("oci:{}:ferrolb", layout.display());
        run(
            "skopeo",
            &["--insecure-policy", "copy", "-q", source, &dest],
        );
        let bundle = scratch.join(format!("bundle{i}"));
        let image = format!("{}:ferrolb", layout.display());
        run(
            "umoci",
            &["unpack", "--image", &image, &bundle.to_string_lossy()],
        );
        let spec: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(spec["process"]["user"]["uid"], 65534, "{source}");
        assert_eq!(
            spec["process"]["args"],
            serde_json::json!(["/ferrolb-controller"])
        );
        let rootfs = bundle.join("rootfs");
        for (p, node) in ours.tree.iter() {
            let on_disk = rootfs.join(p);
            let meta = std::fs::symlink_metadata(&on_disk)
                .unwrap_or_else(|e| panic!("{source}: umoci has no /{p}: {e}"));
            match node {
                Node::Dir => assert!(meta.is_dir(), "/{p}"),
                Node::File { data, mode } => {
                    use std::os::unix::fs::PermissionsExt;
                    assert_eq!(&std::fs::read(&on_disk).unwrap(), data, "/{p}");
                    assert_eq!(meta.permissions().mode() & 0o7777, *mode, "/{p}");
                }
                Node::Symlink(t) => {
                    assert_eq!(std::fs::read_link(&on_disk).unwrap().to_string_lossy(), *t)
                }
            }
        }
        let count = walk(&rootfs);
        assert_eq!(
            count,
            ours.tree.len(),
            "{source}: umoci unpacked other files"
        );
    }
}

fn walk(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        n += 1;
        if e.file_type().unwrap().is_dir() {
            n += walk(&e.path());
        }
    }
    n
}

fn tools(test: &str) {
    netlab::require_tool(test, "skopeo", &["--version"]);
    netlab::require_tool(test, "umoci", &["--version"]);
}

#[test]
#[ignore = "needs skopeo and umoci"]
fn skopeo_and_umoci_read_a_small_archive_as_we_do() {
    let test = "skopeo_and_umoci_read_a_small_archive_as_we_do";
    tools(test);
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = common::small_archive(dir.path());
    agree(&path, &common::load(&path), dir.path());
}

#[test]
#[ignore = "needs skopeo, umoci and the image archive (bash scripts/image)"]
fn skopeo_and_umoci_read_the_shipped_archive_as_we_do() {
    let test = "skopeo_and_umoci_read_the_shipped_archive_as_we_do";
    let path = common::shipped_archive(test);
    tools(test);
    let dir = tempfile::tempdir().unwrap();
    agree(&path, &common::load(&path), dir.path());
}
