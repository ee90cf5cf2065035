//! The image's files, gathered from this machine (I/O): the two binaries,
//! the shared libraries `ldd` names with the symlinks on their way (so
//! `/lib64/ld-linux-x86-64.so.2` works in a merged-/usr layout), the CA
//! bundle, and generated `/etc/passwd` and `/etc/group`. Also writes a
//! tree to a directory (`rootfs`, `unpack`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::archive::{CA_CERTS, CONTROLLER, SPEAKER};
use crate::tree::{walk, Node, Step, Tree, DATA_MODE, EXEC_MODE};
use crate::{elf, oci, Error, Result};

/// `/etc/passwd`: root, and `nobody` (65534), the image's default user.
pub const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n";
/// `/etc/group`: root and `nobody` (65534).
pub const GROUP: &str = "root:x:0:\nnobody:x:65534:\n";

/// Where the inputs are on this machine.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// `ferrolb-controller` (release build).
    pub controller: PathBuf,
    /// `ferrolb-speaker` (release build).
    pub speaker: PathBuf,
    /// The CA bundle to ship, normally [`CA_CERTS`] of this machine.
    pub ca_certs: PathBuf,
}

/// The gathered tree and the binaries' architecture (GOARCH name).
#[derive(Debug, Clone)]
pub struct Gathered {
    /// Every file of the image.
    pub tree: Tree,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
}

/// Gathers every file of the image. Only contents and the path decide
/// what lands in the tree; mtimes, owners and modes of the inputs do not.
pub fn gather(inputs: &Inputs) -> Result<Gathered> {
    let mut tree = Tree::new();
    let mut arches = Vec::new();
    for (path, dest) in [(&inputs.controller, CONTROLLER), (&inputs.speaker, SPEAKER)] {
        let data = std::fs::read(path).map_err(|e| Error::read(path.display(), e))?;
        let elf_error = |reason: String| Error::Elf {
            path: path.display().to_string(),
            reason,
        };
        let h = elf::header(&data).map_err(elf_error)?;
        let arch = oci::goarch(h.machine, h.big_endian).ok_or_else(|| {
            elf_error(format!(
                "machine {} is not a Kubernetes architecture",
                h.machine
            ))
        })?;
        arches.push((path, arch));
        let interp = elf::interpreter(&data);
        tree.add_file(dest, EXEC_MODE, data)?;
        let mut libs = if interp.is_some() {
            ldd(path)?
        } else {
            Vec::new()
        };
        libs.extend(interp.map(PathBuf::from));
        for lib in libs {
            add_host_path(&mut tree, &lib, EXEC_MODE)?;
        }
    }
    if arches[0].1 != arches[1].1 {
        return Err(Error::ArchMismatch {
            controller: arches[0].0.display().to_string(),
            a: arches[0].1.into(),
            speaker: arches[1].0.display().to_string(),
            b: arches[1].1.into(),
        });
    }
    let certs =
        std::fs::read(&inputs.ca_certs).map_err(|e| Error::read(inputs.ca_certs.display(), e))?;
    tree.add_file(CA_CERTS, DATA_MODE, certs)?;
    tree.add_file("/etc/passwd", DATA_MODE, PASSWD.as_bytes().to_vec())?;
    tree.add_file("/etc/group", DATA_MODE, GROUP.as_bytes().to_vec())?;
    Ok(Gathered {
        tree,
        architecture: arches[0].1.to_owned(),
    })
}

/// Runs `ldd` on `binary` and returns the libraries' paths.
fn ldd(binary: &Path) -> Result<Vec<PathBuf>> {
    let fail = |detail: String| Error::Libraries {
        path: binary.display().to_string(),
        detail,
    };
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| fail(format!("running ldd: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(fail(format!(
            "ldd {}: {}{}",
            out.status,
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_ldd(&text).map_err(fail)
}

/// Parses `ldd` output: `name => /path (0x...)`, `/path (0x...)`; skips
/// the vDSO; a library `not found` is an error.
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("statically linked") {
            continue;
        }
        if line.ends_with("not found") {
            return Err(format!("a library is missing: {line}"));
        }
        let path = match line.split_once(" => ") {
            Some((_, rest)) => rest,
            None => line,
        };
        let path = path.split(" (0x").next().unwrap_or_default().trim();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        } else if !line.starts_with("linux-vdso") && !line.starts_with("linux-gate") {
            return Err(format!("unexpected ldd line: {line}"));
        }
    }
    Ok(libs)
}

/// Adds the host file `path` to the tree as it resolves on the host:
/// every symlink met on the way becomes a symlink in the tree (with its
/// own target text), the final file a regular file with `mode`.
pub fn add_host_path(tree: &mut Tree, path: &Path, mode: u32) -> Result<()> {
    let host = |at: &[String]| PathBuf::from(format!("/{}", at.join("/")));
    let at = walk(&path.to_string_lossy(), |at, _| {
        let here = host(at);
        let meta = std::fs::symlink_metadata(&here).map_err(|e| Error::read(here.display(), e))?;
        if !meta.file_type().is_symlink() {
            return Ok(Step::Through);
        }
        let target = std::fs::read_link(&here).map_err(|e| Error::read(here.display(), e))?;
        let target = target.to_string_lossy().into_owned();
        tree.insert(&here.to_string_lossy(), Node::Symlink(target.clone()))?;
        Ok(Step::Link(target))
    })?
    .ok_or_else(|| Error::read(path.display(), std::io::Error::other("too many symlinks")))?;
    let at = host(&at);
    let data = std::fs::read(&at).map_err(|e| Error::read(at.display(), e))?;
    tree.add_file(&at.to_string_lossy(), mode, data)
}

/// Writes `tree` below `dir`, which must not exist or be empty. Files get
/// the tree's modes; owners are whoever runs this (root, for runc).
pub fn write_tree(tree: &Tree, dir: &Path) -> Result<()> {
    let mut existing = std::fs::read_dir(dir).ok();
    if existing.as_mut().is_some_and(|d| d.next().is_some()) {
        return Err(Error::write(
            dir.display(),
            std::io::Error::other("directory is not empty"),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir.display(), e))?;
    // Sorted paths: parents first; the tree never puts anything below a
    // symlink, so nothing is written outside `dir`.
    for (path, node) in tree.iter() {
        let full = dir.join(path);
        let result = match node {
            Node::Dir => std::fs::create_dir(&full),
            Node::File { mode, data } => std::fs::write(&full, data).and_then(|()| {
                std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode))
            }),
            Node::Symlink(target) => std::os::unix::fs::symlink(target, &full),
        };
        result.map_err(|e| Error::write(full.display(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_library_paths_and_skips_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc6a5f2000)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0b0d5a0000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0b0d3bf000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f0b0e1c4000)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
    }

    #[test]
    fn a_missing_library_is_an_error_naming_it() {
        let err = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(err.contains("libfoo.so.1"), "{err}");
    }

    #[test]
    fn symlinks_on_the_way_to_a_host_file_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib/x")).unwrap();
        std::fs::write(root.join("usr/lib/x/ld.so.2"), b"ld").unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib64")).unwrap();
        std::os::unix::fs::symlink("../lib/x/ld.so.2", root.join("usr/lib64/ld.so.2")).unwrap();
        std::os::unix::fs::symlink("usr/lib64", root.join("lib64")).unwrap();
        let mut tree = Tree::new();
        add_host_path(&mut tree, &root.join("lib64/ld.so.2"), EXEC_MODE).unwrap();
        let rel = |p: &str| format!("{}/{p}", root.display());
        assert_eq!(
            tree.get(&rel("lib64")),
            Some(&Node::Symlink("usr/lib64".into()))
        );
        assert_eq!(
            tree.get(&rel("usr/lib64/ld.so.2")),
            Some(&Node::Symlink("../lib/x/ld.so.2".into()))
        );
        let ld = Node::File {
            mode: EXEC_MODE,
            data: b"ld".to_vec(),
        };
        assert_eq!(tree.get(&rel("usr/lib/x/ld.so.2")), Some(&ld));
        assert_eq!(tree.resolve(&rel("lib64/ld.so.2")), Some(&ld));
    }

    #[test]
    fn a_missing_input_binary_is_an_error_naming_it() {
        let inputs = Inputs {
            controller: "/nonexistent/ferrolb-controller".into(),
            speaker: "/nonexistent/ferrolb-speaker".into(),
            ca_certs: CA_CERTS.into(),
        };
        let err = gather(&inputs).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ferrolb-controller"), "{err}");
    }

    #[test]
    fn a_script_is_not_accepted_as_a_binary() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("ferrolb-speaker");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let me = std::env::current_exe().unwrap();
        let inputs = Inputs {
            controller: me,
            speaker: script.clone(),
            ca_certs: CA_CERTS.into(),
        };
        let err = gather(&inputs).unwrap_err().to_string();
        assert!(
            err.contains(&script.display().to_string()) && err.contains("ELF"),
            "{err}"
        );
    }
}
