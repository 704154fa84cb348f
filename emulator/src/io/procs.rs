//! Spawning children in their own process groups, signalling and reaping them.

use crate::engine::Exit;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

#[derive(Default)]
pub struct Procs {
    by_pid: HashMap<i32, u64>,
    pid_by_token: HashMap<u64, i32>,
}

impl Procs {
    /// Forks `argv` with our environment plus `env`, stdin from /dev/null, in a new process
    /// group. Program names without `/` are searched in PATH (as systemd allows).
    pub fn spawn(
        &mut self,
        token: u64,
        argv: &[String],
        env: &[(String, String)],
    ) -> std::io::Result<u32> {
        let Some((prog, args)) = argv.split_first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty command line",
            ));
        };
        let child = Command::new(prog)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pid = child.id();
        // Reaping happens through waitpid(-1) on SIGCHLD, not through `child`.
        drop(child);
        self.by_pid.insert(pid as i32, token);
        self.pid_by_token.insert(token, pid as i32);
        Ok(pid)
    }

    /// Signals the process group of each token (the group outlives its leader).
    pub fn kill(&self, tokens: &[u64], signal: i32) {
        let Ok(sig) = Signal::try_from(signal) else {
            return;
        };
        for t in tokens {
            if let Some(pid) = self.pid_by_token.get(t) {
                if let Err(e) = killpg(Pid::from_raw(*pid), sig) {
                    tracing::debug!("killpg({pid}, {sig}) failed: {e}");
                }
            }
        }
    }

    pub fn live_count(&self) -> usize {
        self.by_pid.len()
    }

    pub fn all_tokens(&self) -> Vec<u64> {
        self.pid_by_token.keys().copied().collect()
    }

    /// Reaps every exited child (ours or adopted orphans); returns (token, exit) for ours.
    pub fn reap(&mut self) -> Vec<(u64, Exit)> {
        let mut out = Vec::new();
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.record(pid, Exit::Code(code), &mut out),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.record(pid, Exit::Signal(sig as i32), &mut out)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        out
    }

    fn record(&mut self, pid: Pid, exit: Exit, out: &mut Vec<(u64, Exit)>) {
        if let Some(token) = self.by_pid.remove(&pid.as_raw()) {
            self.pid_by_token.remove(&token);
            out.push((token, exit));
        }
    }
}

/// Children of this process that we did not start directly (orphans adopted as subreaper).
pub fn adopted_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.split_whitespace().nth(1) == Some(me.as_str()))
                })
                .unwrap_or(false)
        })
        .collect()
}
