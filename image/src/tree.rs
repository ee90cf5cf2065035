//! The image's filesystem as an in-memory tree, and its one layer (pure).
//!
//! Paths are relative (`etc/passwd`), kept sorted; an entry's parents are
//! always directories, never symlinks, so nothing read from an archive can
//! place a file behind a link (and so outside the target when unpacked).
//! The layer tar has no timestamps, owners or modes of its own: every
//! entry gets the one build time, uid/gid 0 and the mode the tree holds.

use std::collections::BTreeMap;
use std::io::Read;

use crate::{Error, Result};

/// Mode of every directory.
pub const DIR_MODE: u32 = 0o755;
/// Mode of binaries, shared libraries and the loader.
pub const EXEC_MODE: u32 = 0o755;
/// Mode of data files.
pub const DATA_MODE: u32 = 0o644;

/// One entry of a [`Tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file.
    File {
        /// Permission bits.
        mode: u32,
        /// Contents.
        data: Vec<u8>,
    },
    /// A symbolic link to this target (relative or absolute).
    Symlink(String),
}

/// A filesystem: relative paths, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

/// What [`walk`] finds at one step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A directory or file: go on.
    Through,
    /// A symlink with this target text: follow it.
    Link(String),
}

/// Walks `path` one component at a time, as the kernel resolves a path:
/// `.` and empty components are skipped, `..` goes up, and a symlink's
/// target is walked in its place (from the root when absolute), at most 40
/// of them. `look(at, more)` is asked about each prefix `at` (components
/// from the root; `more` says whether components follow). Returns the
/// resolved components, `None` after 40 symlinks, or `look`'s error. One
/// walker for the tree inside the image and for the host files copied
/// into it, so both resolve a path the same way.
pub fn walk<E>(
    path: &str,
    mut look: impl FnMut(&[String], bool) -> std::result::Result<Step, E>,
) -> std::result::Result<Option<Vec<String>>, E> {
    let mut pending: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
    let mut at: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                at.pop();
                continue;
            }
            _ => {}
        }
        at.push(c);
        let more = !pending.iter().all(|p| p.is_empty() || p == ".");
        if let Step::Link(target) = look(&at, more)? {
            hops += 1;
            if hops > 40 {
                return Ok(None);
            }
            at.pop();
            if target.starts_with('/') {
                at.clear();
            }
            pending.extend(target.split('/').rev().map(str::to_owned));
        }
    }
    Ok(Some(at))
}

/// Checks and normalizes a path for the tree: no leading `/`, no empty,
/// `.` or `..` components, no trailing `/`.
pub fn clean(path: &str) -> Result<String> {
    let trimmed = path
        .trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/');
    let bad = trimmed.is_empty()
        || trimmed
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Error::Conflict {
            path: path.trim_start_matches('/').to_owned(),
            detail: "not a plain relative path".into(),
        });
    }
    Ok(trimmed.to_owned())
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file (and its parent directories).
    pub fn add_file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> Result<()> {
        self.insert(path, Node::File { mode, data })
    }

    /// Adds a symlink (and its parent directories).
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.insert(path, Node::Symlink(target.to_owned()))
    }

    /// Adds a directory (and its parents).
    pub fn add_dir(&mut self, path: &str) -> Result<()> {
        self.insert(path, Node::Dir)
    }

    /// Inserts `node`; the same node twice is fine (two binaries sharing a
    /// library), two different ones at one path are a conflict.
    pub fn insert(&mut self, path: &str, node: Node) -> Result<()> {
        let path = clean(path)?;
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            let parent = path[..end].to_owned();
            match self.nodes.get(&parent) {
                None => {
                    self.nodes.insert(parent, Node::Dir);
                }
                Some(Node::Dir) => {}
                Some(_) => {
                    return Err(Error::Conflict {
                        path,
                        detail: format!("its parent /{parent} is not a directory"),
                    })
                }
            }
            end += 1;
        }
        match self.nodes.get(&path) {
            None => {
                self.nodes.insert(path, node);
                Ok(())
            }
            Some(old) if *old == node => Ok(()),
            Some(old) => Err(Error::Conflict {
                detail: format!("already holds {}, not {}", kind(old), kind(&node)),
                path,
            }),
        }
    }

    /// The entry at `path` (no symlinks followed).
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(clean(path).ok()?.as_str())
    }

    /// The entry `path` leads to after following symlinks inside the tree
    /// (at most 40), as the kernel would inside the container.
    pub fn resolve(&self, path: &str) -> Option<&Node> {
        let at = walk(path, |at, more| match self.nodes.get(&at.join("/")) {
            None => Err(()),
            Some(Node::Symlink(target)) => Ok(Step::Link(target.clone())),
            Some(Node::File { .. }) if more => Err(()),
            Some(_) => Ok(Step::Through),
        })
        .ok()??;
        if at.is_empty() {
            return Some(&Node::Dir);
        }
        self.nodes.get(&at.join("/"))
    }

    /// Every entry, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(p, n)| (p.as_str(), n))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The layer: a tar of every entry in path order, each with `mtime`,
    /// uid/gid 0 and no owner names.
    pub fn layer_tar(&self, mtime: u64) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, node) in &self.nodes {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(mtime);
            h.set_uid(0);
            h.set_gid(0);
            // Writing into a Vec cannot fail; paths were checked on insert.
            let written = match node {
                Node::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(DIR_MODE);
                    h.set_size(0);
                    builder.append_data(&mut h, format!("{path}/"), &[][..])
                }
                Node::File { mode, data } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(data.len() as u64);
                    builder.append_data(&mut h, path, data.as_slice())
                }
                Node::Symlink(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    builder.append_link(&mut h, path, target)
                }
            };
            debug_assert!(written.is_ok(), "{path}: {written:?}");
        }
        builder.into_inner().unwrap_or_default()
    }

    /// Reads a layer tar back (`archive` and `entry` name it in errors).
    /// Refuses hard links, devices and whiteouts: ferrolb's image has none.
    pub fn from_layer_tar(bytes: &[u8], archive: &str, entry: &str) -> Result<Self> {
        let mut tree = Tree::new();
        let mut reader = tar::Archive::new(bytes);
        let entries = reader
            .entries()
            .map_err(|e| Error::bad(archive, entry, format!("layer tar: {e}")))?;
        for item in entries {
            let mut e = item.map_err(|e| Error::bad(archive, entry, format!("layer tar: {e}")))?;
            let raw = e
                .path()
                .map_err(|err| Error::bad(archive, entry, format!("layer tar path: {err}")))?
                .to_string_lossy()
                .into_owned();
            let path = clean(&raw)
                .map_err(|_| Error::bad(archive, entry, format!("unsafe path {raw:?}")))?;
            if path
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(".wh."))
            {
                return Err(Error::bad(archive, entry, format!("whiteout {path}")));
            }
            let mode = e.header().mode().unwrap_or(DATA_MODE) & 0o7777;
            let node = match e.header().entry_type() {
                tar::EntryType::Directory => Node::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut data = Vec::new();
                    e.read_to_end(&mut data)
                        .map_err(|err| Error::bad(archive, entry, format!("{path}: {err}")))?;
                    Node::File { mode, data }
                }
                tar::EntryType::Symlink => {
                    let target = e.link_name().ok().flatten().ok_or_else(|| {
                        Error::bad(archive, entry, format!("{path}: symlink without target"))
                    })?;
                    Node::Symlink(target.to_string_lossy().into_owned())
                }
                other => {
                    return Err(Error::bad(
                        archive,
                        entry,
                        format!("{path}: unsupported entry type {other:?}"),
                    ))
                }
            };
            tree.insert(&path, node)
                .map_err(|err| Error::bad(archive, entry, err))?;
        }
        Ok(tree)
    }
}

fn kind(node: &Node) -> String {
    match node {
        Node::Dir => "a directory".into(),
        Node::File { data, .. } => format!("a file of {} bytes", data.len()),
        Node::Symlink(t) => format!("a symlink to {t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(order: &[usize]) -> Tree {
        type Add<'a> = &'a dyn Fn(&mut Tree) -> Result<()>;
        let adds: [Add; 4] = [
            &|t| t.add_file("/ferrolb-controller", EXEC_MODE, b"ctl".to_vec()),
            &|t| t.add_file("/etc/passwd", DATA_MODE, b"root".to_vec()),
            &|t| t.add_symlink("/lib64", "usr/lib64"),
            &|t| t.add_file("/usr/lib64/ld.so", EXEC_MODE, b"ld".to_vec()),
        ];
        let mut t = Tree::new();
        for &i in order {
            adds[i](&mut t).unwrap();
        }
        t
    }

    #[test]
    fn insertion_order_does_not_change_the_layer() {
        let a = sample(&[0, 1, 2, 3]).layer_tar(7);
        let b = sample(&[3, 2, 1, 0]).layer_tar(7);
        assert_eq!(a, b);
        assert_ne!(a, sample(&[0, 1, 2, 3]).layer_tar(8));
    }

    #[test]
    fn layer_entries_are_sorted_with_the_fixed_time_and_root_owner() {
        let bytes = sample(&[2, 0, 3, 1]).layer_tar(1_700_000_000);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut paths = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(h.mtime().unwrap(), 1_700_000_000);
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            assert_eq!(h.username().unwrap(), Some(""));
            assert_eq!(h.groupname().unwrap(), Some(""));
            paths.push(e.path().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(
            paths,
            [
                "etc/",
                "etc/passwd",
                "ferrolb-controller",
                "lib64",
                "usr/",
                "usr/lib64/",
                "usr/lib64/ld.so"
            ]
        );
    }

    #[test]
    fn a_layer_reads_back_into_the_same_tree() {
        let t = sample(&[0, 1, 2, 3]);
        let back = Tree::from_layer_tar(&t.layer_tar(0), "a.tar", "layer").unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn the_same_entry_twice_is_fine_and_a_different_one_is_a_conflict() {
        let mut t = sample(&[0]);
        t.add_file("ferrolb-controller", EXEC_MODE, b"ctl".to_vec())
            .unwrap();
        let err = t
            .add_file("ferrolb-controller", EXEC_MODE, b"other".to_vec())
            .unwrap_err();
        assert!(err.to_string().contains("/ferrolb-controller"), "{err}");
    }

    #[test]
    fn nothing_goes_below_a_symlink_or_outside_the_root() {
        let mut t = sample(&[2]);
        let err = t.add_file("lib64/evil", DATA_MODE, vec![]).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert!(t.add_file("../etc/shadow", DATA_MODE, vec![]).is_err());
        assert!(t.add_file("a/./b", DATA_MODE, vec![]).is_err());
        assert!(t.add_file("", DATA_MODE, vec![]).is_err());
    }

    #[test]
    fn symlinks_resolve_inside_the_tree() {
        let mut t = sample(&[0, 2, 3]);
        t.add_symlink("usr/lib64/ld-linux.so", "../lib64/ld.so")
            .unwrap();
        t.add_symlink("abs", "/lib64/ld-linux.so").unwrap();
        t.add_symlink("loop", "loop").unwrap();
        let ld = Node::File {
            mode: EXEC_MODE,
            data: b"ld".to_vec(),
        };
        assert_eq!(t.resolve("/lib64/ld.so"), Some(&ld));
        assert_eq!(t.resolve("/lib64/ld-linux.so"), Some(&ld));
        assert_eq!(t.resolve("/abs"), Some(&ld));
        assert_eq!(t.resolve("/loop"), None);
        assert_eq!(t.resolve("/missing"), None);
        assert_eq!(t.resolve("/ferrolb-controller/x"), None);
    }
}
