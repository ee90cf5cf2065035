//! How the lab runs ferrolb's two programs: the binaries from the build
//! (`ip netns exec NODE ferrolb-speaker ...`), or the shipped image's
//! binaries under runc with the manifests' security settings (`ferrolb-lab
//! --image ARCHIVE`), so the artifact a cluster pulls passes the same
//! end-to-end tests as the build.
//!
//! Either way a component is a [`Proc`]: a pid to signal, an exit status
//! to wait for, and a guard that kills it when dropped.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ferrolb_image::oci::ImageConfig;
use ferrolb_image::runc::{self, Attached, Spec};
use netlab::{ChildGuard, Host};

use crate::bins::Bins;

/// Which program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `ferrolb-controller`.
    Controller,
    /// `ferrolb-speaker`.
    Speaker,
}

/// Where the programs come from.
#[derive(Debug)]
pub enum Launcher {
    /// The binaries of the build.
    Binaries(Bins),
    /// An image archive, unpacked once; every component is a runc
    /// container of its own on that root filesystem.
    Image(Box<Image>),
}

impl From<Bins> for Launcher {
    fn from(bins: Bins) -> Self {
        Self::Binaries(bins)
    }
}

/// An unpacked image archive.
#[derive(Debug)]
pub struct Image {
    archive: PathBuf,
    config: ImageConfig,
    rootfs: tempfile::TempDir,
}

impl Launcher {
    /// `Image` for `archive` (checked and unpacked now; needs runc), else
    /// the build's binaries ([`Bins::locate`]).
    pub fn locate(archive: Option<&Path>) -> anyhow::Result<Self> {
        match archive {
            Some(path) => Ok(Self::Image(Box::new(Image::unpack(path)?))),
            None => Ok(Self::Binaries(Bins::locate()?)),
        }
    }

    /// What the lab runs, for progress lines.
    pub fn describe(&self) -> String {
        match self {
            Self::Binaries(b) => format!("binaries in {}", dir_of(&b.speaker).display()),
            Self::Image(i) => format!("image {} under runc", i.archive.display()),
        }
    }

    /// Starts `program` in `host`'s network namespace with `env` and
    /// `args`; paths in them must lie under `shared` (the lab's directory),
    /// which a container sees read-only at the same path. Output goes to
    /// `log`.
    pub fn spawn(
        &self,
        program: Program,
        host: &Host,
        env: &[(&str, String)],
        args: &[String],
        shared: &Path,
        log: &File,
    ) -> anyhow::Result<Proc> {
        let (out, err) = (log.try_clone()?, log.try_clone()?);
        match self {
            Self::Binaries(bins) => {
                let bin = match program {
                    Program::Controller => &bins.controller,
                    Program::Speaker => &bins.speaker,
                };
                let mut cmd = host.command(&bin.to_string_lossy());
                cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .stdout(out)
                    .stderr(err);
                Ok(Proc::Child(ChildGuard::spawn(&mut cmd)?))
            }
            Self::Image(image) => {
                let mut spec = match program {
                    Program::Controller => Spec::controller(&image.config),
                    Program::Speaker => Spec::speaker(&image.config),
                };
                spec = spec
                    .netns(format!("/var/run/netns/{}", host.netns()))
                    .bind(shared, &shared.to_string_lossy())
                    .args(args.iter().cloned());
                for (k, v) in env {
                    spec = spec.env(&format!("{k}={v}"));
                }
                if let Ok(filter) = std::env::var("RUST_LOG") {
                    spec = spec.env(&format!("RUST_LOG={filter}"));
                }
                let id = format!("{}-{}", host.netns(), program.name());
                let container = Attached::spawn(&id, image.rootfs.path(), &spec, out, err)
                    .with_context(|| format!("starting {} from the image", program.name()))?;
                Ok(Proc::Container(container))
            }
        }
    }
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Self::Controller => "controller",
            Self::Speaker => "speaker",
        }
    }
}

impl Image {
    fn unpack(archive: &Path) -> anyhow::Result<Self> {
        if !runc::available() {
            bail!(
                "--image needs runc (apt-get install runc) to run {}",
                archive.display()
            );
        }
        let bytes =
            std::fs::read(archive).with_context(|| format!("reading {}", archive.display()))?;
        let name = archive.to_string_lossy();
        let image = ferrolb_image::archive::read(&bytes, &name)?;
        let rootfs = tempfile::Builder::new()
            .prefix("ferrolb-lab-rootfs-")
            .tempdir()
            .context("creating a directory for the image's root filesystem")?;
        ferrolb_image::rootfs::write_tree(&image.tree, rootfs.path())?;
        // The container's `/`: the controller (uid 65534) must traverse it.
        std::fs::set_permissions(rootfs.path(), std::fs::Permissions::from_mode(0o755))?;
        Ok(Self {
            archive: archive.to_owned(),
            config: image.config,
            rootfs,
        })
    }
}

fn dir_of(path: &Path) -> &Path {
    path.parent().unwrap_or(path)
}

/// A running component: killed (and its container deleted) when dropped.
#[derive(Debug)]
pub enum Proc {
    /// A child process.
    Child(ChildGuard),
    /// A runc container in the foreground.
    Container(Attached),
}

impl Proc {
    /// The program's pid in this machine's pid namespace.
    pub fn id(&self) -> u32 {
        match self {
            Self::Child(c) => c.id(),
            Self::Container(c) => c.pid(),
        }
    }

    /// SIGKILLs the program (not a runc in front of it, which could not
    /// pass SIGKILL on).
    pub fn kill(&mut self) -> std::io::Result<()> {
        match self {
            Self::Child(c) => c.kill(),
            Self::Container(c) => nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.pid() as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .map_err(std::io::Error::from),
        }
    }

    /// Waits for the program to exit.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self {
            Self::Child(c) => c.wait(),
            Self::Container(c) => c.wait(),
        }
    }

    /// The exit status, if the program has exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        match self {
            Self::Child(c) => c.try_wait(),
            Self::Container(c) => c.try_wait(),
        }
    }

    /// Waits at most `timeout`, polling every 10 ms; `None`: still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
