//! Where the build's `ferrolb-speaker` and `ferrolb-controller` are; under
//! cargo, built first with the running program's profile.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};

/// Where the binaries are.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `ferrolb-speaker`.
    pub speaker: PathBuf,
    /// `ferrolb-controller`.
    pub controller: PathBuf,
}

impl Bins {
    /// `$FERROLB_BIN_DIR`, else the directory of the running executable (or
    /// its parent, for test binaries in `deps/`). When run by cargo
    /// (`cargo run`, `cargo test`: `$CARGO` is set) the two binaries are
    /// built first with the same profile, so one command is enough.
    pub fn locate() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the running executable")?;
        let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        let test = dir.file_name().is_some_and(|n| n == "deps");
        if test {
            dir.pop();
        }
        if let Some(d) = std::env::var_os("FERROLB_BIN_DIR") {
            dir = PathBuf::from(d);
        } else if let Some(cargo) = std::env::var_os("CARGO") {
            build_with_cargo(Path::new(&cargo), &dir, test)?;
        }
        let bins = Self {
            speaker: dir.join("ferrolb-speaker"),
            controller: dir.join("ferrolb-controller"),
        };
        for b in [&bins.speaker, &bins.controller] {
            if !b.is_file() {
                bail!(
                    "{} not found: build the workspace binaries first \
                     (`cargo build --release --bins`) or set FERROLB_BIN_DIR",
                    b.display()
                );
            }
        }
        Ok(bins)
    }
}

/// Builds the speaker and the controller into `dir`'s target directory and
/// profile. For a test binary (`test`), as part of the whole workspace's
/// tests: the same packages and dev-dependencies `cargo nextest run
/// --workspace` resolved features for, so the binaries it already built
/// are up to date and nothing is compiled twice with other features.
fn build_with_cargo(cargo: &Path, dir: &Path, test: bool) -> anyhow::Result<()> {
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_owned();
    let target = dir.parent().context("target directory")?;
    let mut args: Vec<&str> = vec!["build"];
    // `target/debug` is the default profile, which `cargo test` and
    // nextest also build test targets with (as profile `test`); naming
    // `--profile dev` would build those targets differently and so
    // rebuild what the test run just built.
    if profile != "debug" {
        args.extend(["--profile", profile.as_str()]);
    }
    if test {
        args.extend(["--workspace", "--tests"]);
    } else {
        args.extend([
            "-p",
            "ferrolb-speaker",
            "-p",
            "ferrolb-controller",
            "--bins",
        ]);
    }
    let mut command = std::process::Command::new(cargo);
    // Cargo gives the running program (this lab, or a test) its package's
    // variables; build scripts such as ring's rerun when those differ from
    // the outer build's, so passing them on would rebuild half the
    // dependency tree here and again on the next outer build.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if is_package_variable(key) {
            command.env_remove(key);
        }
    }
    let status = command
        .args(&args)
        .env("CARGO_TARGET_DIR", target)
        .stdout(Stdio::null())
        .status()
        .context("running cargo build for the speaker and controller")?;
    if !status.success() {
        bail!("cargo build of ferrolb-speaker and ferrolb-controller failed ({status})");
    }
    Ok(())
}

/// Variables cargo sets for the program it runs or tests (its package's
/// name, version, manifest directory...), as opposed to settings such as
/// `CARGO_HOME` or `CARGO_TARGET_DIR`.
fn is_package_variable(key: &str) -> bool {
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_EXE_",
        "CARGO_CFG_",
    ]
    .iter()
    .any(|p| key.starts_with(p))
        || matches!(
            key,
            "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "OUT_DIR"
        )
}

#[cfg(test)]
mod tests {
    use super::is_package_variable;

    #[test]
    fn package_variables_are_dropped_and_cargo_settings_kept() {
        for key in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_EXE_ferrolb-lab",
            "OUT_DIR",
            "CARGO_TARGET_TMPDIR",
        ] {
            assert!(is_package_variable(key), "{key}");
        }
        for key in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_TERM_COLOR",
            "PATH",
        ] {
            assert!(!is_package_variable(key), "{key}");
        }
    }
}
