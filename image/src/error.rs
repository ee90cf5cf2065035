//! Every failure names the file it is about: an input binary, a library,
//! the kustomization, the archive and the entry inside it.

use std::io;

/// What went wrong, and with which file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read (missing input binary, library, CA bundle).
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Cause.
        source: io::Error,
    },
    /// A file or directory could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Cause.
        source: io::Error,
    },
    /// An input binary is not an ELF executable this tool understands.
    #[error("{path} is not a usable ELF executable: {reason}")]
    Elf {
        /// The binary.
        path: String,
        /// Why.
        reason: String,
    },
    /// The two binaries were built for different architectures.
    #[error("{controller} is {a} but {speaker} is {b}: build both for one architecture")]
    ArchMismatch {
        /// Controller binary.
        controller: String,
        /// Its architecture.
        a: String,
        /// Speaker binary.
        speaker: String,
        /// Its architecture.
        b: String,
    },
    /// `ldd` failed or reported a library it could not find.
    #[error("finding the shared libraries of {path}: {detail}")]
    Libraries {
        /// The binary.
        path: String,
        /// What ldd said.
        detail: String,
    },
    /// Two inputs want different things at one path of the image.
    #[error("image path /{path}: {detail}")]
    Conflict {
        /// Path inside the image.
        path: String,
        /// What clashed.
        detail: String,
    },
    /// The image name and tag could not be read from the kustomization.
    #[error("image reference from {path}: {detail}")]
    Reference {
        /// The kustomization (or `--tag`).
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// Build metadata (timestamp) is unusable.
    #[error("{what}: {detail}")]
    Metadata {
        /// Which setting.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// The archive is not a readable tar (truncated, corrupt).
    #[error("archive {archive}: not a readable tar ({detail}); truncated or corrupt?")]
    Corrupt {
        /// The archive.
        archive: String,
        /// The tar reader's complaint.
        detail: String,
    },
    /// A file the format requires is missing from the archive.
    #[error("archive {archive}: {entry} is missing")]
    MissingEntry {
        /// The archive.
        archive: String,
        /// The entry (`index.json`, `blobs/sha256/...`).
        entry: String,
    },
    /// An entry of the archive is not what the format requires.
    #[error("archive {archive}: {entry}: {detail}")]
    BadEntry {
        /// The archive.
        archive: String,
        /// The entry.
        entry: String,
        /// What is wrong.
        detail: String,
    },
    /// The image's filesystem lacks a file every ferrolb image must hold.
    #[error("archive {archive}: the image has no {file}")]
    MissingFile {
        /// The archive.
        archive: String,
        /// The file inside the image (`/ferrolb-speaker`).
        file: String,
    },
    /// A runc command failed.
    #[error("runc {action} {container}: {detail}")]
    Runc {
        /// `run`, `kill`, `delete`, `state`.
        action: String,
        /// Container id.
        container: String,
        /// Exit status and stderr, or the spawn error.
        detail: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn read(path: impl std::fmt::Display, source: io::Error) -> Self {
        Self::Read {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn write(path: impl std::fmt::Display, source: io::Error) -> Self {
        Self::Write {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn bad(archive: &str, entry: &str, detail: impl std::fmt::Display) -> Self {
        Self::BadEntry {
            archive: archive.to_owned(),
            entry: entry.to_owned(),
            detail: detail.to_string(),
        }
    }
}
