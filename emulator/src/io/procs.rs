//! Spawning children in their own process groups, signalling and reaping them.

use super::readfile::{read_bounded, ENV_FILE_LIMIT, PID_FILE_LIMIT};
use crate::engine::{expand_argv, ExecContext, Exit};
use crate::unitfile::envfile::parse_env_file;
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::{HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Exits of processes not (yet) ours that are remembered, for a daemon adopted too late.
const MAX_ORPHAN_EXITS: usize = 64;

#[derive(Default)]
pub struct Procs {
    by_pid: HashMap<i32, u64>,
    pid_by_token: HashMap<u64, i32>,
    /// The process group of each token; kept after its leader is reaped while members remain
    /// (a daemon's orphaned children), so that stopping the unit still reaches them.
    pgid_by_token: HashMap<u64, i32>,
    /// The unit each token was spawned for.
    unit_by_token: HashMap<u64, String>,
    /// Leftover groups already sent SIGTERM because their unit stopped.
    terminated: HashSet<u64>,
    /// Groups of tokens reaped in the last [`Procs::reap`], for [`Procs::adopt_main`].
    reaped_groups: HashMap<u64, i32>,
    orphan_exits: HashMap<i32, Exit>,
}

impl Procs {
    /// Forks `argv` with our environment plus `env`, stdin from /dev/null, in a new process
    /// group. Program names without `/` are searched in PATH (as systemd allows).
    pub fn spawn(
        &mut self,
        token: u64,
        unit: &str,
        argv: &[String],
        env: &[(String, String)],
        cwd: &std::path::Path,
        fds: &[(std::os::fd::RawFd, String)],
    ) -> std::io::Result<u32> {
        let Some((prog, args)) = argv.split_first() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty command line",
            ));
        };
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(cwd)
            .stdin(Stdio::null())
            .process_group(0);
        // Socket-activated processes exec themselves (LISTEN_PID needs the child's PID).
        let _image = if fds.is_empty() {
            None
        } else {
            Some(super::sockets::pass_fds(&mut cmd, argv, env, fds)?)
        };
        let child = cmd.spawn()?;
        let pid = child.id();
        // Reaping happens through waitpid(-1) on SIGCHLD, not through `child`.
        drop(child);
        self.by_pid.insert(pid as i32, token);
        self.pid_by_token.insert(token, pid as i32);
        self.pgid_by_token.insert(token, pid as i32);
        self.unit_by_token.insert(token, unit.to_string());
        Ok(pid)
    }

    /// Signals the process group of each token (the group outlives its leader).
    pub fn kill(&self, tokens: &[u64], signal: i32) {
        let Ok(sig) = Signal::try_from(signal) else {
            return;
        };
        for t in tokens {
            if let Some(pid) = self.pgid_by_token.get(t) {
                if let Err(e) = killpg(Pid::from_raw(*pid), sig) {
                    tracing::debug!("killpg({pid}, {sig}) failed: {e}");
                }
            }
        }
    }

    pub fn has_token(&self, token: u64) -> bool {
        self.pid_by_token.contains_key(&token)
    }

    /// Type=forking: finds the daemon the just-reaped process behind `token` left behind, from
    /// `pid_file` or as the only process of its group whose parent is outside it, and makes it
    /// the token's process. Returns its PID, and its exit if it already ended.
    pub fn adopt_main(
        &mut self,
        token: u64,
        pid_file: Option<&str>,
    ) -> Option<(u32, Option<Exit>)> {
        let pgid = self.reaped_groups.get(&token).copied()?;
        let pid = match pid_file {
            Some(path) => match read_bounded(path, PID_FILE_LIMIT) {
                Ok(text) => match text.trim().parse::<i32>() {
                    Ok(p) if p > 0 && self.may_adopt(p, pgid) => p,
                    Ok(p) if p > 0 => {
                        tracing::warn!(
                            "{path}:1: PID {p} is not a process of this unit, ignoring the PID file"
                        );
                        return None;
                    }
                    _ => {
                        tracing::warn!("{path}:1: PID file does not contain a valid PID");
                        return None;
                    }
                },
                Err(e) => {
                    tracing::warn!("{path}: cannot read PID file: {e}");
                    return None;
                }
            },
            None => guess_group_leader(pgid)?,
        };
        let exit = self.orphan_exits.remove(&pid);
        if exit.is_none() {
            self.by_pid.insert(pid, token);
            self.pid_by_token.insert(token, pid);
            self.pgid_by_token.insert(token, pgid);
        }
        Some((pid as u32, exit))
    }

    /// Whether `pid` from a PID file may become the main process of the unit whose group is
    /// `pgid`: it must be alive and in that group, below one of its members, or an orphan we
    /// adopted that no other unit owns (a daemon that called setsid()).
    fn may_adopt(&self, pid: i32, pgid: i32) -> bool {
        let me = std::process::id() as i32;
        if self.orphan_exits.contains_key(&pid) {
            return true;
        }
        if pid == me || pid == 1 || self.by_pid.contains_key(&pid) {
            return false;
        }
        let mut p = pid;
        // Bounded: a process tree is not deeper than this in practice, and /proc may change.
        for _ in 0..64 {
            let Some((_, ppid, group)) = stat_of(p) else {
                return false;
            };
            if group == pgid || (p == pid && ppid == me) {
                return true;
            }
            if ppid <= 1 || ppid == me {
                return false;
            }
            p = ppid;
        }
        false
    }

    pub fn live_count(&self) -> usize {
        self.by_pid.len()
    }

    /// Every token with a live process or a leftover group.
    pub fn all_tokens(&self) -> Vec<u64> {
        self.pgid_by_token.keys().copied().collect()
    }

    /// Sends SIGTERM (and SIGCONT) once to leftover groups, whose leader is gone, of units
    /// that `stopped` says are no longer running: systemd stops a unit's whole cgroup.
    pub fn terminate_leftovers(&mut self, stopped: impl Fn(&str) -> bool) {
        for (token, pgid) in &self.pgid_by_token {
            if self.pid_by_token.contains_key(token) || self.terminated.contains(token) {
                continue;
            }
            let unit = self.unit_by_token.get(token).map(String::as_str);
            if !unit.is_none_or(&stopped) {
                continue;
            }
            tracing::debug!(
                "{}: killing leftover process group {pgid}",
                unit.unwrap_or("?")
            );
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGTERM);
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGCONT);
            self.terminated.insert(*token);
        }
    }

    /// Forgets the groups of tokens without a live process once the group is empty.
    fn prune_groups(&mut self) {
        let live = &self.pid_by_token;
        self.pgid_by_token.retain(|token, pgid| {
            live.contains_key(token) || killpg(Pid::from_raw(*pgid), None) != Err(Errno::ESRCH)
        });
        let groups = &self.pgid_by_token;
        self.unit_by_token.retain(|t, _| groups.contains_key(t));
        self.terminated.retain(|t| groups.contains_key(t));
    }

    /// Reaps every exited child (ours or adopted orphans); returns (token, exit) for ours.
    pub fn reap(&mut self) -> Vec<(u64, Exit)> {
        let mut out = Vec::new();
        self.reaped_groups.clear();
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
        self.prune_groups();
        out
    }

    fn record(&mut self, pid: Pid, exit: Exit, out: &mut Vec<(u64, Exit)>) {
        if let Some(token) = self.by_pid.remove(&pid.as_raw()) {
            self.pid_by_token.remove(&token);
            if let Some(g) = self.pgid_by_token.get(&token) {
                self.reaped_groups.insert(token, *g);
            }
            out.push((token, exit));
        } else {
            if self.orphan_exits.len() >= MAX_ORPHAN_EXITS {
                self.orphan_exits.clear();
            }
            self.orphan_exits.insert(pid.as_raw(), exit);
        }
    }
}

/// What a spawn needs after reading EnvironmentFile= files.
#[derive(Debug, PartialEq, Eq)]
pub struct Prepared {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: std::path::PathBuf,
}

/// Reads the environment files and resolves the working directory of a spawn. An unreadable
/// file without `-` is an error (the unit fails with `resources`).
pub fn prepare(
    argv: &[String],
    env: &[(String, String)],
    ctx: &ExecContext,
) -> Result<Prepared, String> {
    let mut from_files = Vec::new();
    for (path, optional) in &ctx.env_files {
        match read_bounded(path, ENV_FILE_LIMIT) {
            Ok(text) => {
                let f = parse_env_file(&text);
                for w in f.warnings {
                    tracing::warn!("{path}:{w}");
                }
                from_files.extend(f.vars);
            }
            Err(_) if *optional => {}
            Err(e) => return Err(format!("Failed to load environment files: {path}: {e}")),
        }
    }
    let env = ctx.merge(env, &from_files);
    let argv = if ctx.env_files.is_empty() {
        argv.to_vec()
    } else {
        expand_argv(argv, &env)
    };
    let cwd = match &ctx.working_directory {
        None => "/".into(),
        Some((dir, optional)) => {
            let dir = if dir == "~" {
                std::env::var("HOME").unwrap_or_else(|_| "/root".to_string())
            } else {
                dir.clone()
            };
            if *optional && !std::path::Path::new(&dir).is_dir() {
                "/".into()
            } else {
                dir.into()
            }
        }
    };
    Ok(Prepared { argv, env, cwd })
}

/// (pid, ppid, process group) of a live (not zombie) process, from `/proc/PID/stat`.
fn stat_of(pid: i32) -> Option<(i32, i32, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.first() == Some(&"Z") {
        return None;
    }
    Some((pid, f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?))
}

/// systemd's main PID guess: the one process of the group whose parent is not in it.
fn guess_group_leader(pgid: i32) -> Option<i32> {
    let rd = std::fs::read_dir("/proc").ok()?;
    let members: Vec<(i32, i32, i32)> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter_map(stat_of)
        .filter(|(_, _, g)| *g == pgid)
        .collect();
    let tops: Vec<i32> = members
        .iter()
        .filter(|(_, ppid, _)| !members.iter().any(|(p, _, _)| p == ppid))
        .map(|(p, _, _)| *p)
        .collect();
    match tops.as_slice() {
        [one] => Some(*one),
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prepare_reads_env_files_and_working_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("env");
        std::fs::write(&file, "# x\nFOO=from-file\nBAR='b c'\n").expect("write env file");
        let path = file.display().to_string();
        let ctx = ExecContext {
            env_files: vec![(path.clone(), false), ("/nonexistent/env".into(), true)],
            working_directory: Some((dir.path().display().to_string(), false)),
            unset_environment: vec!["GONE".into()],
            sockets: Vec::new(),
        };
        let env = vec![("FOO".into(), "unit".into()), ("GONE".into(), "x".into())];
        let p = prepare(&strs(&["/bin/echo", "$FOO", "${BAR}"]), &env, &ctx).expect("prepared");
        assert_eq!(p.argv, strs(&["/bin/echo", "from-file", "b c"]));
        assert_eq!(
            p.env,
            vec![
                ("FOO".into(), "from-file".into()),
                ("BAR".into(), "b c".into())
            ]
        );
        assert_eq!(p.cwd, dir.path());

        let missing = ExecContext {
            env_files: vec![("/nonexistent/env".into(), false)],
            ..ExecContext::default()
        };
        let err = prepare(&strs(&["/bin/true"]), &[], &missing).unwrap_err();
        assert!(err.contains("/nonexistent/env"), "{err}");
        let p = prepare(&strs(&["/bin/true"]), &[], &ExecContext::default()).expect("prepared");
        assert_eq!(p.cwd, std::path::Path::new("/"));
    }
}
