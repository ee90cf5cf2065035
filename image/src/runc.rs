//! Running the image's binaries under `runc` with the security settings
//! of `deploy/ferrolb.yaml`: a typed [`Spec`] becomes the bundle's
//! `config.json`; an [`Attached`] container runs under `runc run` in the
//! foreground and is killed and deleted when dropped, a failing test
//! included.
//!
//! ```no_run
//! # fn main() -> ferrolb_image::Result<()> {
//! use ferrolb_image::{archive, runc};
//! let image = archive::read(&std::fs::read("target/image/ferrolb.tar").unwrap(), "ferrolb.tar")?;
//! ferrolb_image::rootfs::write_tree(&image.tree, "/tmp/rootfs".as_ref())?;
//! let spec = runc::Spec::speaker(&image.config)
//!     .netns("/var/run/netns/flb-1-0-node-1")
//!     .env("NODE_NAME=node-1")
//!     .bind("/tmp/kubeconfig", "/etc/ferrolb/kubeconfig")
//!     .env("KUBECONFIG=/etc/ferrolb/kubeconfig");
//! let log = std::fs::File::create("/tmp/speaker.log").unwrap();
//! let speaker = runc::Attached::spawn("speaker-1", "/tmp/rootfs".as_ref(), &spec, log.try_clone().unwrap(), log)?;
//! println!("speaker pid {}", speaker.pid());
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::archive::SPEAKER;
use crate::oci::ImageConfig;
use crate::{Error, Result};

/// A read-only bind mount from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Host path (file or directory).
    pub source: PathBuf,
    /// Path inside the container.
    pub destination: String,
}

/// What to run and how: the parts of an OCI runtime config that vary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Program and arguments.
    pub args: Vec<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Capabilities (`CAP_NET_RAW`, `CAP_SYS_NICE`) kept in the bounding, effective and
    /// permitted sets; inheritable and ambient stay empty.
    pub capabilities: Vec<String>,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privileges: bool,
    /// `readOnlyRootFilesystem: true`.
    pub readonly_root: bool,
    /// Join this network namespace (`/var/run/netns/<name>`) instead of a
    /// new, empty one.
    pub netns: Option<PathBuf>,
    /// Read-only bind mounts (kubeconfig, memberlist secret).
    pub binds: Vec<Bind>,
}

impl Spec {
    /// The image's own defaults: entrypoint, environment and user, no
    /// capabilities, no privilege escalation, read-only root.
    pub fn from_image(config: &ImageConfig) -> Self {
        let (uid, gid) = parse_user(&config.config.user);
        Self {
            args: config.config.entrypoint.clone(),
            env: config.config.env.clone(),
            uid,
            gid,
            capabilities: Vec::new(),
            no_new_privileges: true,
            readonly_root: true,
            netns: None,
            binds: Vec::new(),
        }
    }

    /// The controller as `deploy/ferrolb.yaml` runs it: uid/gid 65534
    /// (the image's default user), every capability dropped.
    pub fn controller(config: &ImageConfig) -> Self {
        Self::from_image(config)
    }

    /// The speaker as `deploy/ferrolb.yaml` runs it: `/ferrolb-speaker` as
    /// uid 0 with only `CAP_NET_RAW` and `CAP_SYS_NICE`.
    pub fn speaker(config: &ImageConfig) -> Self {
        Self {
            args: vec![SPEAKER.into()],
            uid: 0,
            gid: 0,
            capabilities: vec!["CAP_NET_RAW".into(), "CAP_SYS_NICE".into()],
            ..Self::from_image(config)
        }
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds `KEY=value` to the environment.
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.to_owned());
        self
    }

    /// Joins the network namespace at `path`.
    pub fn netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.netns = Some(path.into());
        self
    }

    /// Bind-mounts host `source` read-only at `destination`.
    pub fn bind(mut self, source: impl Into<PathBuf>, destination: &str) -> Self {
        self.binds.push(Bind {
            source: source.into(),
            destination: destination.to_owned(),
        });
        self
    }

    /// The OCI runtime `config.json` for a container whose root is `rootfs`.
    pub fn to_config(&self, rootfs: &Path, hostname: &str) -> Value {
        let caps = &self.capabilities;
        let mut mounts = vec![
            json!({"destination": "/proc", "type": "proc", "source": "proc"}),
            json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
            json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                   "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
            json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                   "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
            json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                   "options": ["nosuid", "noexec", "nodev"]}),
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                   "options": ["nosuid", "noexec", "nodev", "ro"]}),
        ];
        for b in &self.binds {
            mounts.push(json!({"destination": b.destination, "type": "bind",
                               "source": b.source, "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}));
        }
        let mut namespaces = vec![
            json!({"type": "pid"}),
            json!({"type": "ipc"}),
            json!({"type": "uts"}),
            json!({"type": "mount"}),
        ];
        namespaces.push(match &self.netns {
            Some(path) => json!({"type": "network", "path": path}),
            None => json!({"type": "network"}),
        });
        json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": self.uid, "gid": self.gid, "additionalGids": []},
                "args": self.args,
                "env": self.env,
                "cwd": "/",
                "capabilities": {
                    "bounding": caps, "effective": caps, "permitted": caps,
                    "inheritable": [], "ambient": []
                },
                "noNewPrivileges": self.no_new_privileges
            },
            "root": {"path": rootfs, "readonly": self.readonly_root},
            "hostname": hostname,
            "mounts": mounts,
            "linux": {
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "namespaces": namespaces,
                "maskedPaths": [
                    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                    "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
                ],
                "readonlyPaths": [
                    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
                ]
            }
        })
    }
}

/// `uid:gid` (or `uid`), numbers only; anything else is root, as runtimes
/// without an `/etc/passwd` lookup would refuse it anyway.
fn parse_user(user: &str) -> (u32, u32) {
    let mut parts = user.splitn(2, ':');
    let uid = parts.next().and_then(|u| u.parse().ok()).unwrap_or(0);
    let gid = parts.next().and_then(|g| g.parse().ok()).unwrap_or(uid);
    (uid, gid)
}

/// The lines of `/proc/<pid>/status` that show a process's privileges
/// (`Uid`, `Gid`, `NoNewPrivs` and the `Cap*` sets, hex), whitespace
/// collapsed: what a test compares with the manifests' security settings.
pub fn privileges(pid: u32) -> std::io::Result<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.starts_with("Cap") || ["Uid", "Gid", "NoNewPrivs"].contains(k))
        .map(|(k, v)| {
            (
                k.to_owned(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect())
}

/// Whether the process's `/` is mounted read-only (its mountinfo line for
/// mount point `/` lists `ro` among the per-mount options).
pub fn root_is_read_only(pid: u32) -> std::io::Result<bool> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    Ok(text.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.get(4) == Some(&"/") && f.get(5).is_some_and(|o| o.split(',').any(|x| x == "ro"))
    }))
}

/// Whether a `runc` binary answers `runc --version`.
pub fn available() -> bool {
    Command::new("runc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A fresh bundle directory holding `config.json` for `spec`.
fn write_bundle(id: &str, rootfs: &Path, spec: &Spec) -> Result<tempfile::TempDir> {
    let bundle = tempfile::Builder::new()
        .prefix("ferrolb-runc-")
        .tempdir()
        .map_err(|e| Error::write("a runc bundle directory", e))?;
    let config = bundle.path().join("config.json");
    let text = serde_json::to_vec_pretty(&spec.to_config(rootfs, id)).unwrap_or_default();
    std::fs::write(&config, text).map_err(|e| Error::write(config.display(), e))?;
    Ok(bundle)
}

/// `runc --root <bundle>/state ARGS`: every container keeps runc's state
/// beside its bundle, so containers of parallel tests never meet.
fn runc_in(bundle: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("runc");
    cmd.arg("--root").arg(bundle.join("state")).args(args);
    cmd
}

/// A container run in the foreground: `runc run` is this process's child,
/// forwards the signals it gets to the container's process and exits with
/// that process's status, so a caller can wait for it and read its exit
/// status like any child's (the lab's graceful-stop check does). Dropping
/// it SIGKILLs the container and deletes it.
#[derive(Debug)]
pub struct Attached {
    id: String,
    pid: u32,
    runc: std::process::Child,
    bundle: tempfile::TempDir,
}

impl Attached {
    /// Starts `spec` as container `id` with `rootfs` as its root; its
    /// output goes to `stdout` and `stderr`. Returns once the container's
    /// process exists (at most 10 s).
    pub fn spawn(
        id: &str,
        rootfs: &Path,
        spec: &Spec,
        stdout: impl Into<Stdio>,
        stderr: impl Into<Stdio>,
    ) -> Result<Self> {
        let bundle = write_bundle(id, rootfs, spec)?;
        let pid_file = bundle.path().join("pid");
        let error = |detail: String| Error::Runc {
            action: "run".into(),
            container: id.into(),
            detail,
        };
        let mut runc = runc_in(bundle.path(), &["run", "--pid-file"])
            .arg(&pid_file)
            .arg("--bundle")
            .arg(bundle.path())
            .arg(id)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| error(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
            {
                break pid;
            }
            let exited = runc.try_wait().map_err(|e| error(e.to_string()))?;
            if let Some(status) = exited {
                return Err(error(format!(
                    "runc exited with {status} before the container started"
                )));
            }
            if Instant::now() > deadline {
                let _ = runc.kill();
                let _ = runc.wait();
                return Err(error("the container did not start within 10 s".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Ok(Self {
            id: id.to_owned(),
            pid,
            runc,
            bundle,
        })
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pid (in this machine's pid namespace) of the container's
    /// process: signal it directly for a SIGKILL, which `runc run` cannot
    /// forward.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `runc run`'s exit status, once the container's process has exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.runc.try_wait()
    }

    /// Waits for the container's process to exit.
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.runc.wait()
    }

    fn kill_and_delete(&mut self) {
        let _ = runc_in(self.bundle.path(), &["kill", &self.id, "KILL"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // `runc run` exits once the container's process is gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.runc.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.runc.kill();
        let _ = self.runc.wait();
        let _ = runc_in(self.bundle.path(), &["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.kill_and_delete();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        let meta = crate::archive::Metadata {
            reference: crate::oci::Reference::parse("ferrolb:t").unwrap(),
            version: "0.1.0".into(),
            revision: None,
            epoch: 0,
            architecture: "amd64".into(),
            licenses: "Apache-2.0".into(),
        };
        crate::archive::config(&meta, "sha256:00").unwrap()
    }

    #[test]
    fn the_controller_runs_as_nobody_with_no_capabilities_at_all() {
        let c = Spec::controller(&image()).to_config(Path::new("/r"), "c");
        let p = &c["process"];
        assert_eq!(p["user"]["uid"], 65534);
        assert_eq!(p["user"]["gid"], 65534);
        assert_eq!(p["args"], json!(["/ferrolb-controller"]));
        for set in [
            "bounding",
            "effective",
            "permitted",
            "inheritable",
            "ambient",
        ] {
            assert_eq!(p["capabilities"][set], json!([]), "{set}");
        }
        assert_eq!(p["noNewPrivileges"], true);
        assert_eq!(c["root"], json!({"path": "/r", "readonly": true}));
    }

    #[test]
    fn the_speaker_is_root_with_only_net_raw() {
        let c = Spec::speaker(&image())
            .netns("/var/run/netns/x")
            .bind("/tmp/k", "/etc/ferrolb/kubeconfig")
            .to_config(Path::new("/r"), "s");
        let p = &c["process"];
        assert_eq!(p["user"]["uid"], 0);
        assert_eq!(p["args"], json!(["/ferrolb-speaker"]));
        for set in ["bounding", "effective", "permitted"] {
            assert_eq!(
                p["capabilities"][set],
                json!(["CAP_NET_RAW", "CAP_SYS_NICE"]),
                "{set}"
            );
        }
        for set in ["inheritable", "ambient"] {
            assert_eq!(p["capabilities"][set], json!([]), "{set}");
        }
        assert_eq!(p["noNewPrivileges"], true);
        let ns = c["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&json!({"type": "network", "path": "/var/run/netns/x"})));
        let bind = c["mounts"].as_array().unwrap().last().unwrap();
        assert_eq!(bind["destination"], "/etc/ferrolb/kubeconfig");
        assert!(bind["options"].as_array().unwrap().contains(&json!("ro")));
    }

    #[test]
    fn users_parse_as_numbers() {
        assert_eq!(parse_user("65534:65534"), (65534, 65534));
        assert_eq!(parse_user("1000"), (1000, 1000));
        assert_eq!(parse_user(""), (0, 0));
    }
}
