//! Running `ip` and other programs, and guarding spawned children.

use std::{
    ffi::OsStr,
    ops::{Deref, DerefMut},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{Error, Result};

/// Runs `program args..` to completion and returns its stdout.
///
/// stdin is closed so a program that unexpectedly prompts cannot hang a test.
pub(crate) fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<String> {
    run_with_input(program, args, None)
}

/// [`run`], feeding `input` (when given) to the program's stdin.
pub(crate) fn run_with_input<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    input: Option<&str>,
) -> Result<String> {
    use std::io::Write;
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let spawn_error = |source| Error::Spawn {
        program: program.to_owned(),
        args: shown.clone(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // Dropping stdin closes it: the program sees end of input.
        stdin.write_all(text.as_bytes()).map_err(spawn_error)?;
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    if !output.status.success() {
        return Err(Error::Command {
            program: program.to_owned(),
            args: shown,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `ip args..` (iproute2).
pub(crate) fn ip(args: &[&str]) -> Result<String> {
    run("ip", args)
}

/// A child process that is killed and reaped when the guard is dropped.
///
/// Dropping happens on panic unwinding too, so a failing assertion never
/// leaves a speaker or a tcpdump running. Derefs to [`Child`] for stdout,
/// stdin and `id()`.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Spawns `command` and guards the child.
    pub fn spawn(command: &mut Command) -> Result<Self> {
        let child = command.spawn().map_err(|source| Error::Spawn {
            program: command.get_program().to_string_lossy().into_owned(),
            args: command
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            source,
        })?;
        Ok(Self { child })
    }

    /// Waits at most `timeout` for the child to exit, polling every 10 ms.
    /// `Ok(None)` means it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Deref for ChildGuard {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Both fail harmlessly when the child already exited and was reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
