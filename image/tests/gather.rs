//! Gathering files from this machine: what the inputs' mtimes, modes and
//! locations may not change, and what a bad input says.

mod common;

use std::fs::{File, FileTimes, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ferrolb_image::{archive, rootfs};

fn copy(from: &str, to: &Path, mtime_secs: u64, mode: u32) {
    std::fs::copy(from, to).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime_secs);
    File::options()
        .write(true)
        .open(to)
        .unwrap()
        .set_times(FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
    std::fs::set_permissions(to, Permissions::from_mode(mode)).unwrap();
}

fn build(dir: &Path, mtime: u64, mode: u32) -> archive::Built {
    let (c, s, ca) = (dir.join("c"), dir.join("s"), dir.join("ca.crt"));
    copy("/bin/true", &c, mtime, mode);
    copy("/bin/false", &s, mtime + 7, mode);
    std::fs::write(&ca, b"certs").unwrap();
    let gathered = rootfs::gather(&rootfs::Inputs {
        controller: c,
        speaker: s,
        ca_certs: ca,
    })
    .unwrap();
    archive::build(&gathered.tree, &common::metadata(&gathered.architecture)).unwrap()
}

#[test]
fn input_mtimes_modes_and_locations_do_not_change_the_archive() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = build(a.path(), 1_000, 0o755);
    let second = build(b.path(), 2_000_000_000, 0o700);
    assert_eq!(first.digest, second.digest);
    assert!(first.bytes == second.bytes);
}

#[test]
fn the_gathered_image_holds_binaries_libraries_loader_and_users() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = common::small_archive(dir.path());
    // `read` checks every required file and that each binary's loader
    // resolves inside the image.
    let image = common::load(&path);
    let passwd = image.tree.get("/etc/passwd").unwrap();
    let ferrolb_image::tree::Node::File { data, .. } = passwd else {
        panic!("{passwd:?}")
    };
    let text = String::from_utf8_lossy(data);
    assert!(text.starts_with("root:x:0:0:"), "{text}");
    assert!(text.contains("nobody:x:65534:65534:"), "{text}");
    let libc = image.tree.iter().any(|(p, _)| {
        p.rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with("libc.so"))
    });
    assert!(
        libc,
        "no libc in {:?}",
        image.tree.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
}

#[test]
fn missing_or_unusable_inputs_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("speaker.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let cases = [
        (
            "/nonexistent/ferrolb-controller",
            "/bin/false",
            archive::CA_CERTS,
            "/nonexistent/ferrolb-controller",
        ),
        (
            "/bin/true",
            script.to_str().unwrap(),
            archive::CA_CERTS,
            script.to_str().unwrap(),
        ),
        (
            "/bin/true",
            "/bin/false",
            "/nonexistent/ca.crt",
            "/nonexistent/ca.crt",
        ),
    ];
    for (c, s, ca, named) in cases {
        let err = rootfs::gather(&rootfs::Inputs {
            controller: c.into(),
            speaker: s.into(),
            ca_certs: ca.into(),
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains(named), "{err}");
    }
}

#[test]
fn the_cli_reports_a_missing_archive_and_a_truncated_one_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (path, built) = common::small_archive(dir.path());
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &built.bytes[..built.bytes.len() / 2]).unwrap();
    let missing = dir.path().join("missing.tar");
    let tool = env!("CARGO_BIN_EXE_ferrolb-image");
    for bad in [&cut, &missing] {
        let out = std::process::Command::new(tool)
            .arg("inspect")
            .arg(bad)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&bad.display().to_string()), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = std::process::Command::new(tool)
        .arg("inspect")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&built.digest) && stdout.contains("/ferrolb-speaker"),
        "{stdout}"
    );
}
