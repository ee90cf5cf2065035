//! Adverse conditions for the soaks: busy loops on every CPU
//! ([`Burners`]) and a CPU quota on one process through a cgroup
//! ([`CpuLimit`]). Both undo themselves when dropped, on error paths too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use netlab::ChildGuard;

/// One busy-loop child process per CPU, killed when dropped.
///
/// Each child is `ferrolb-lab burn` (a hidden subcommand, [`burn`]): it
/// stops by itself after its time limit or as soon as its parent is gone,
/// so even a SIGKILLed lab leaves no spinner behind for long.
#[derive(Debug)]
pub struct Burners {
    children: Vec<ChildGuard>,
}

impl Burners {
    /// Starts one `program burn --secs LIMIT` per CPU (`program` is the
    /// `ferrolb-lab` binary).
    pub fn start(program: &Path, limit: Duration) -> anyhow::Result<Self> {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let secs = limit.as_secs().max(1).to_string();
        let mut children = Vec::new();
        for _ in 0..cpus {
            let mut cmd = Command::new(program);
            cmd.args(["burn", "--secs", &secs])
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            children.push(ChildGuard::spawn(&mut cmd).context("starting a busy loop")?);
        }
        Ok(Self { children })
    }

    /// How many run.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether none runs.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Kills them now (dropping does the same).
    pub fn stop(self) {
        drop(self);
    }
}

/// The body of `ferrolb-lab burn`: spins until `limit` has passed or the
/// parent process is gone (re-parented), whichever is first.
pub fn burn(limit: Duration) {
    let parent = std::os::unix::process::parent_id();
    let end = Instant::now() + limit;
    let mut x: u64 = 0;
    while Instant::now() < end && std::os::unix::process::parent_id() == parent {
        for i in 0..1_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
}

/// Which cgroup hierarchy holds the cpu controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v1: the cpu controller's own mount (`/sys/fs/cgroup/cpu`);
    /// `cpu.cfs_quota_us` and `cpu.cfs_period_us`.
    V1(PathBuf),
    /// cgroup v2 (`/sys/fs/cgroup` with `cgroup.controllers`): `cpu.max`.
    V2(PathBuf),
}

impl Hierarchy {
    /// v2 when `root/cgroup.controllers` exists, else v1 at `root/cpu`
    /// (or `root/cpu,cpuacct`).
    pub fn detect(root: &Path) -> anyhow::Result<Self> {
        if root.join("cgroup.controllers").exists() {
            return Ok(Self::V2(root.to_owned()));
        }
        for dir in ["cpu", "cpu,cpuacct"] {
            let path = root.join(dir);
            if path.join("cpu.cfs_quota_us").exists() {
                return Ok(Self::V1(path));
            }
        }
        bail!(
            "no cgroup cpu controller under {} (neither cgroup.controllers nor cpu/cpu.cfs_quota_us)",
            root.display()
        )
    }

    fn root(&self) -> &Path {
        match self {
            Self::V1(p) | Self::V2(p) => p,
        }
    }
}

/// The quota, in microseconds per `period_us`, that gives `share` of one
/// CPU (at least 1 ms, the kernel's minimum).
pub fn quota_us(period_us: u64, share: f64) -> u64 {
    ((period_us as f64 * share).round() as u64).max(1000)
}

/// The cgroup a process is in for `hierarchy`, from `/proc/PID/cgroup`
/// text: the `cpu` line for v1, the `0::` line for v2.
pub fn cgroup_of(proc_cgroup: &str, hierarchy: &Hierarchy) -> Option<String> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = match hierarchy {
            Hierarchy::V1(_) => controllers.split(',').any(|c| c == "cpu"),
            Hierarchy::V2(_) => controllers.is_empty(),
        };
        wanted.then(|| path.to_owned())
    })
}

/// A process held to a share of one CPU in a cgroup of its own; moved
/// back to its cgroup and the cgroup removed when dropped.
#[derive(Debug)]
pub struct CpuLimit {
    hierarchy: Hierarchy,
    dir: PathBuf,
    pid: u32,
    home: String,
    /// The share of one CPU.
    pub share: f64,
}

impl CpuLimit {
    /// Creates `/sys/fs/cgroup/...`/`name`, gives it `share` of one CPU and
    /// moves `pid` (the whole process) into it.
    pub fn apply(name: &str, pid: u32, share: f64) -> anyhow::Result<Self> {
        let hierarchy = Hierarchy::detect(Path::new("/sys/fs/cgroup"))?;
        let proc_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .with_context(|| format!("reading /proc/{pid}/cgroup"))?;
        let home = cgroup_of(&proc_cgroup, &hierarchy).unwrap_or_else(|| "/".into());
        let dir = hierarchy.root().join(name);
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let limit = Self {
            hierarchy,
            dir,
            pid,
            home,
            share,
        };
        limit.configure()?;
        write(&limit.dir.join("cgroup.procs"), &pid.to_string())?;
        Ok(limit)
    }

    fn configure(&self) -> anyhow::Result<()> {
        match &self.hierarchy {
            Hierarchy::V1(_) => {
                let period: u64 = read(&self.dir.join("cpu.cfs_period_us"))?
                    .trim()
                    .parse()
                    .context("cpu.cfs_period_us")?;
                let quota = quota_us(period, self.share);
                write(&self.dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                // With real-time group scheduling a cgroup gets no
                // real-time time by default, and a process with a
                // SCHED_FIFO thread (the speaker's heartbeats) cannot even
                // enter it: give it the same small share of real-time time.
                let rt = self.dir.join("cpu.rt_runtime_us");
                if rt.exists() {
                    let period: u64 = read(&self.dir.join("cpu.rt_period_us"))?
                        .trim()
                        .parse()
                        .context("cpu.rt_period_us")?;
                    write(&rt, &quota_us(period, self.share).to_string())?;
                }
                Ok(())
            }
            Hierarchy::V2(root) => {
                let control = root.join("cgroup.subtree_control");
                if !read(&control)?.split_whitespace().any(|c| c == "cpu") {
                    write(&control, "+cpu")?;
                }
                let period = 100_000;
                let quota = quota_us(period, self.share);
                write(&self.dir.join("cpu.max"), &format!("{quota} {period}"))
            }
        }
    }

    /// Periods in which the process was throttled so far (`nr_throttled`
    /// of `cpu.stat`): whether the quota was ever reached.
    pub fn throttled_periods(&self) -> Option<u64> {
        let stat = read(&self.dir.join("cpu.stat")).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for CpuLimit {
    fn drop(&mut self) {
        // A process still inside keeps the directory busy: move it home
        // (it may be gone already, which is fine).
        let home = self
            .hierarchy
            .root()
            .join(self.home.trim_start_matches('/'));
        let _ = write(&home.join("cgroup.procs"), &self.pid.to_string());
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "ferrolb-lab: could not remove the cgroup {}",
            self.dir.display()
        );
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, value: &str) -> anyhow::Result<()> {
    std::fs::write(path, value).with_context(|| format!("writing {value} to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenth_of_a_cpu_is_a_tenth_of_the_period() {
        assert_eq!(quota_us(100_000, 0.1), 10_000);
        assert_eq!(quota_us(100_000, 1.0), 100_000);
        // Never below the kernel's 1 ms minimum.
        assert_eq!(quota_us(100_000, 0.001), 1000);
    }

    #[test]
    fn the_cpu_line_is_read_for_v1_and_the_unified_line_for_v2() {
        let text = "9:name=systemd:/\n4:memory:/x\n2:cpu,cpuacct:/lab\n0::/user.slice\n";
        let v1 = Hierarchy::V1("/sys/fs/cgroup/cpu".into());
        let v2 = Hierarchy::V2("/sys/fs/cgroup".into());
        assert_eq!(cgroup_of(text, &v1).as_deref(), Some("/lab"));
        assert_eq!(cgroup_of(text, &v2).as_deref(), Some("/user.slice"));
        assert_eq!(cgroup_of("1:cpu:/\n", &v1).as_deref(), Some("/"));
        assert_eq!(cgroup_of("4:memory:/x\n", &v1), None);
    }

    #[test]
    fn the_hierarchy_is_v2_when_the_root_lists_controllers() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Hierarchy::detect(dir.path()).is_err());
        std::fs::create_dir(dir.path().join("cpu")).unwrap();
        std::fs::write(dir.path().join("cpu/cpu.cfs_quota_us"), "-1").unwrap();
        assert_eq!(
            Hierarchy::detect(dir.path()).unwrap(),
            Hierarchy::V1(dir.path().join("cpu"))
        );
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu io").unwrap();
        assert_eq!(
            Hierarchy::detect(dir.path()).unwrap(),
            Hierarchy::V2(dir.path().to_owned())
        );
    }
}
