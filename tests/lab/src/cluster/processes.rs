//! The lab's processes: the controller in the `api` namespace and a
//! speaker per node (build binaries or runc containers, see
//! [`crate::process`]), their logs, node death and restore, and what the
//! bench reads from `/proc`.

use std::fs::File;
use std::time::Duration;

use anyhow::{anyhow, bail};

use super::{done, step, Cluster};
use crate::process::{Launcher, Proc, Program};
use crate::topology::{self, SPEAKER_HTTP_PORT, SYSTEM_NS};

impl Cluster {
    /// Writes the speakers' gossip secret, then starts the controller (when
    /// [`super::Options::controller`]) and every node's speaker.
    pub(super) fn start_components(&mut self) -> anyhow::Result<()> {
        let p = self.opts.progress;
        std::fs::write(self.dir.path().join("secret"), rand::random::<[u8; 32]>())?;
        if self.opts.controller {
            let t = step(p, "starting controller");
            self.start_controller()?;
            done(p, t);
        }
        for i in 0..self.nodes.len() {
            let name = self.nodes[i].name.clone();
            self.start_speaker(&name)?;
            if p {
                println!(
                    "{name}: speaker running (pid {})",
                    self.speaker_pid(&name).unwrap_or(0)
                );
            }
        }
        Ok(())
    }

    /// Starts (or restarts) the controller in the `api` namespace.
    pub fn start_controller(&mut self) -> anyhow::Result<()> {
        self.controller.take();
        let log = self.log_file("controller")?;
        let dir = self.dir.path();
        let env = [(
            "KUBECONFIG",
            dir.join("kubeconfig-controller").display().to_string(),
        )];
        let args = [
            "--lease-namespace",
            SYSTEM_NS,
            "--identity",
            "ferrolb-lab-controller",
            "--lease-duration",
            "4s",
            "--http-addr",
            "127.0.0.1:7472",
            "--log-format",
            "text",
        ]
        .map(String::from);
        let proc = self
            .launcher
            .spawn(Program::Controller, &self.api, &env, &args, dir, &log)?;
        self.controller = Some(proc);
        Ok(())
    }

    /// Starts the speaker of node `name` (replacing a previous one).
    pub fn start_speaker(&mut self, name: &str) -> anyhow::Result<()> {
        let log = self.log_file(name)?;
        let dir = self.dir.path().to_path_buf();
        let node = self.node_mut(name)?;
        node.speaker.take();
        let v4 = topology::node_v4(node.index);
        let mut env = vec![
            ("NODE_NAME", node.name.clone()),
            (
                "KUBECONFIG",
                dir.join("kubeconfig-speaker").display().to_string(),
            ),
        ];
        env.extend(
            self.opts
                .speaker_env
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone())),
        );
        let mut args: Vec<String> = ["--namespace", SYSTEM_NS, "--log-format", "text"]
            .map(String::from)
            .into();
        args.extend([
            "--http-addr".into(),
            format!("{v4}:{SPEAKER_HTTP_PORT}"),
            "--memberlist-advertise-addr".into(),
            v4.to_string(),
            "--memberlist-secret-file".into(),
            dir.join("secret").display().to_string(),
        ]);
        args.extend(self.opts.speaker_args.iter().cloned());
        let node = self.node(name)?;
        let proc = self
            .launcher
            .spawn(Program::Speaker, &node.host, &env, &args, &dir, &log)?;
        self.node_mut(name)?.speaker = Some(proc);
        Ok(())
    }

    /// Whether the speaker has command-line flag `flag` (`--ownership`),
    /// from its `--help`; `None` when that cannot be told (the image's
    /// speaker, run under runc, or `--help` failed).
    pub fn speaker_has_flag(&self, flag: &str) -> Option<bool> {
        let Launcher::Binaries(bins) = &self.launcher else {
            return None;
        };
        let out = std::process::Command::new(&bins.speaker)
            .arg("--help")
            .output()
            .ok()?;
        let help = String::from_utf8_lossy(&out.stdout);
        Some(
            help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .any(|word| word == flag),
        )
    }

    /// Sets environment variable `key` of every speaker started from now
    /// on (restart them to apply it).
    pub fn set_speaker_env(&mut self, key: &str, value: &str) {
        self.opts.speaker_env.retain(|(k, _)| k != key);
        self.opts
            .speaker_env
            .push((key.to_owned(), value.to_owned()));
    }

    /// The pid of node `name`'s speaker (`ip netns exec` execs it, so the
    /// child's pid is the speaker's; under runc, the container's process).
    pub fn speaker_pid(&self, name: &str) -> Option<u32> {
        self.node(name).ok()?.speaker.as_ref().map(|c| c.id())
    }

    /// The node's death: its switch port goes down (the cable is cut) and
    /// its speaker is SIGKILLed.
    pub fn kill_node(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self.node_mut(name)?;
        node.host.port_down()?;
        if let Some(mut s) = node.speaker.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        Ok(())
    }

    /// Stops the controller as kubelet would: SIGTERM, then waits (at most
    /// 10 s) for it to exit; returns its exit status as text.
    pub fn stop_controller(&mut self) -> anyhow::Result<String> {
        let Some(mut child) = self.controller.take() else {
            return Ok("not running".into());
        };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        match child.wait_timeout(Duration::from_secs(10))? {
            Some(status) => Ok(status.to_string()),
            None => bail!("the controller did not exit within 10 s of SIGTERM"),
        }
    }

    /// `(name, pid)` of the running controller (`controller`) and of each
    /// running speaker (its node's name), controller first.
    pub fn component_pids(&self) -> Vec<(String, u32)> {
        let controller = self
            .controller
            .as_ref()
            .map(|p| ("controller".to_owned(), p.id()));
        let speakers = self
            .nodes
            .iter()
            .filter_map(|n| Some((n.name.clone(), n.speaker.as_ref()?.id())));
        controller.into_iter().chain(speakers).collect()
    }

    /// Sends SIGTERM to node `name`'s speaker (it leaves gossip and answers
    /// for its IPs until their new owners announce them, at most its
    /// `--shutdown-handover-timeout`, 3 s); returns at once.
    /// [`Cluster::reap_speaker`] waits.
    pub fn term_speaker(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self.node_mut(name)?;
        let pid = node
            .speaker
            .as_ref()
            .map(|c| c.id())
            .ok_or_else(|| anyhow!("{name} has no speaker"))?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        Ok(())
    }

    /// Waits (at most 5 s: the 3 s handover bound, when nobody takes
    /// over, plus the leave) for a SIGTERMed speaker to exit; returns its
    /// exit status as text.
    pub fn reap_speaker(&mut self, name: &str) -> anyhow::Result<String> {
        let node = self.node_mut(name)?;
        let Some(mut child) = node.speaker.take() else {
            return Ok("not running".into());
        };
        match child.wait_timeout(Duration::from_secs(5))? {
            Some(status) => Ok(status.to_string()),
            None => bail!("{name}'s speaker did not exit within 5 s of SIGTERM"),
        }
    }

    /// Waits (at most `limit`, without blocking the runtime) for node
    /// `name`'s speaker to exit after [`Cluster::term_speaker`]; returns
    /// its exit status as text. Kubelet waits the Pod's
    /// `terminationGracePeriodSeconds` (30 s by default) before SIGKILL.
    pub async fn wait_speaker_exit(
        &mut self,
        name: &str,
        limit: Duration,
    ) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let node = self.node_mut(name)?;
            let Some(child) = node.speaker.as_mut() else {
                return Ok("not running".into());
            };
            if let Some(status) = child.try_wait()? {
                node.speaker.take();
                return Ok(status.to_string());
            }
            if std::time::Instant::now() >= deadline {
                bail!("{name}'s speaker did not exit within {limit:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Brings node `name` back: port up, addresses present, speaker running.
    pub fn restore_node(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self.node(name)?;
        node.host.port_up()?;
        // Carrier loss may have dropped the IPv6 address; re-adding an
        // address that is still there fails harmlessly.
        let _ = node
            .host
            .add_addr(&format!("{}/64", topology::node_v6(node.index)));
        if node.speaker.is_none() {
            self.start_speaker(name)?;
        }
        Ok(())
    }

    /// Components that have exited although they should run, with their
    /// status and log tail.
    pub fn dead_children(&mut self) -> Vec<String> {
        let mut dead = Vec::new();
        let mut check = |name: &str, child: &mut Option<Proc>| {
            if let Some(c) = child {
                if let Ok(Some(status)) = c.try_wait() {
                    dead.push((name.to_owned(), status.to_string()));
                    child.take();
                }
            }
        };
        check("controller", &mut self.controller);
        for n in &mut self.nodes {
            check(&n.name, &mut n.speaker);
        }
        dead.into_iter()
            .map(|(name, status)| {
                format!(
                    "{name} exited ({status}); last log lines:\n{}",
                    self.log_tail(&name, 10)
                )
            })
            .collect()
    }

    fn log_file(&self, name: &str) -> anyhow::Result<File> {
        let path = self.dir.path().join(format!("{name}.log"));
        Ok(File::options().create(true).append(true).open(&path)?)
    }

    /// A component's whole log (`node-1`, `controller`); empty when there
    /// is none. Restarts append to it, so a byte length taken before one
    /// marks where the new process's lines start.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The last `lines` lines of a component's log (`node-1`, `controller`).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = self.log(name);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Peak resident set size (VmHWM) of `pid`, in KiB.
    pub fn peak_rss_kib(pid: u32) -> Option<u64> {
        proc_status_field(pid, "VmHWM:")
    }

    /// Resident memory of `pid` now (VmRSS), in KiB.
    pub fn rss_kib(pid: u32) -> Option<u64> {
        proc_status_field(pid, "VmRSS:")
    }

    /// User + system CPU time of `pid`, in clock ticks (1/100 s).
    pub fn cpu_ticks(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }
}

fn proc_status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
