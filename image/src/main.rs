//! `ferrolb-image`: builds, inspects and unpacks ferrolb's image archive.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ferrolb_image::{archive, meta, rootfs, tree::Node};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Builds ferrolb's container image archive without Docker"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Builds the image archive (Docker archive + OCI layout in one tar).
    Build {
        #[command(flatten)]
        inputs: Inputs,
        #[command(flatten)]
        meta: MetaArgs,
        /// Where to write the archive.
        #[arg(long, env = "FERROLB_IMAGE_OUT")]
        out: PathBuf,
    },
    /// Lays out the image's files in a directory (for `FROM scratch`).
    Rootfs {
        #[command(flatten)]
        inputs: Inputs,
        /// The directory (must not exist or be empty).
        #[arg(long)]
        out: PathBuf,
    },
    /// Checks an archive and prints its reference, digest, size and files.
    Inspect {
        /// The archive.
        archive: PathBuf,
    },
    /// Checks an archive and writes the image's filesystem to a directory.
    Unpack {
        /// The archive.
        archive: PathBuf,
        /// The directory (must not exist or be empty).
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
struct Inputs {
    /// The controller binary (release build).
    #[arg(long, env = "FERROLB_IMAGE_CONTROLLER")]
    controller: PathBuf,
    /// The speaker binary (release build).
    #[arg(long, env = "FERROLB_IMAGE_SPEAKER")]
    speaker: PathBuf,
    /// The CA bundle to ship.
    #[arg(long, env = "FERROLB_IMAGE_CA_CERTS", default_value = archive::CA_CERTS)]
    ca_certs: PathBuf,
}

#[derive(Debug, Args)]
struct MetaArgs {
    /// Image reference NAME:TAG, instead of the kustomization's `images:` entry.
    #[arg(long, env = "FERROLB_IMAGE_TAG")]
    tag: Option<String>,
    /// The kustomization holding the image's name and tag.
    #[arg(long, env = "FERROLB_KUSTOMIZATION", default_value = meta::KUSTOMIZATION)]
    kustomization: PathBuf,
    /// The revision label; default: `git rev-parse HEAD` here.
    #[arg(long, env = "FERROLB_IMAGE_REVISION")]
    revision: Option<String>,
    /// Build time in seconds; default: the HEAD commit's time, else 0.
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    source_date_epoch: Option<String>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Build { inputs, meta, out } => build(&inputs, &meta, &out),
        Cmd::Rootfs { inputs, out } => {
            let gathered = rootfs::gather(&inputs.into())?;
            rootfs::write_tree(&gathered.tree, &out)?;
            println!("wrote {} entries to {}", gathered.tree.len(), out.display());
            Ok(())
        }
        Cmd::Inspect { archive } => inspect(&archive),
        Cmd::Unpack { archive, dir } => {
            let image = read(&archive)?;
            rootfs::write_tree(&image.tree, &dir)?;
            println!(
                "{} ({}) unpacked to {}",
                image.reference,
                image.digest,
                dir.display()
            );
            Ok(())
        }
    }
}

impl From<Inputs> for rootfs::Inputs {
    fn from(i: Inputs) -> Self {
        Self {
            controller: i.controller,
            speaker: i.speaker,
            ca_certs: i.ca_certs,
        }
    }
}

fn build(inputs: &Inputs, args: &MetaArgs, out: &Path) -> anyhow::Result<()> {
    let reference = match &args.tag {
        Some(tag) => meta::reference_from_flag(tag)?,
        None => meta::reference_from_file(&args.kustomization)?,
    };
    let here = Path::new(".");
    let epoch = meta::epoch(
        args.source_date_epoch.as_deref(),
        meta::git_commit_time(here),
    )?;
    let gathered = rootfs::gather(&rootfs::Inputs {
        controller: inputs.controller.clone(),
        speaker: inputs.speaker.clone(),
        ca_certs: inputs.ca_certs.clone(),
    })?;
    let metadata = archive::Metadata {
        reference,
        version: ferrolb_image::VERSION.into(),
        revision: args.revision.clone().or_else(|| meta::git_revision(here)),
        epoch,
        architecture: gathered.architecture.clone(),
        licenses: ferrolb_image::LICENSES.into(),
    };
    let built = archive::build(&gathered.tree, &metadata)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Written next to the target and renamed: a reader never sees half an archive.
    let partial = out.with_extension("tar.partial");
    std::fs::write(&partial, &built.bytes)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, out).with_context(|| format!("renaming to {}", out.display()))?;
    println!("archive  {}", out.display());
    println!("ref      {}", metadata.reference);
    println!("digest   {}", built.digest);
    println!("config   {}", built.config_digest);
    println!("platform linux/{}", metadata.architecture);
    println!("created  {}", archive::created(metadata.epoch)?);
    println!("size     {} bytes", built.bytes.len());
    println!("files    {}", gathered.tree.len());
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<archive::Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(archive::read(&bytes, &path.display().to_string())?)
}

fn inspect(path: &Path) -> anyhow::Result<()> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let image = read(path)?;
    let c = &image.config;
    println!("ref        {}", image.reference);
    println!("digest     {}", image.digest);
    println!("config     {}", image.config_digest);
    println!("platform   {}/{}", c.os, c.architecture);
    println!("created    {}", c.created);
    println!("size       {size} bytes");
    println!("user       {}", c.config.user);
    println!("entrypoint {}", c.config.entrypoint.join(" "));
    for (k, v) in &c.config.labels {
        println!("label      {k}={v}");
    }
    println!("files:");
    for (path, node) in image.tree.iter() {
        match node {
            Node::Dir => println!("  d {:o} {:>10}  /{path}/", 0o755, ""),
            Node::File { mode, data } => println!("  f {mode:o} {:>10}  /{path}", data.len()),
            Node::Symlink(t) => println!("  l {:o} {:>10}  /{path} -> {t}", 0o777, ""),
        }
    }
    Ok(())
}
