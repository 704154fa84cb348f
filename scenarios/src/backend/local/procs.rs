//! The daemons of one run: each in its own process group, stopped in dependency order.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::sweep::MARKER_VAR;

/// Teardown order: clients of the bus go before the bus; BlueChi before the systemd it drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    BlueChi = 0,
    Systemd = 1,
    Bus = 2,
}

pub struct Daemon {
    pub name: String,
    pub stage: Stage,
    pub log: PathBuf,
    child: Child,
    pgid: Pid,
    exited: bool,
}

impl Daemon {
    /// Reaps the leader if it exited; returns whether it has.
    pub fn has_exited(&mut self) -> bool {
        if !self.exited {
            self.exited = matches!(self.child.try_wait(), Ok(Some(_)) | Err(_));
        }
        self.exited
    }

    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }
}

#[derive(Default)]
pub struct Daemons {
    list: Vec<Daemon>,
}

const STAGE_DEADLINE: Duration = Duration::from_secs(5);

impl Daemons {
    /// Starts `cmd` in a new process group with the run marker, stderr (and stdout unless
    /// `pipe_stdout`) appended to `log`.
    pub fn spawn(
        &mut self,
        name: &str,
        stage: Stage,
        mut cmd: Command,
        log: &Path,
        run_id: &str,
        pipe_stdout: bool,
    ) -> Result<&mut Daemon, String> {
        let log_file =
            File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let stdout = if pipe_stdout {
            Stdio::piped()
        } else {
            log_file
                .try_clone()
                .map(Stdio::from)
                .map_err(|e| format!("cannot reuse {}: {e}", log.display()))?
        };
        cmd.env(MARKER_VAR, run_id)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log_file);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        let pgid = Pid::from_raw(child.id() as i32);
        self.list.push(Daemon {
            name: name.to_string(),
            stage,
            log: log.to_path_buf(),
            child,
            pgid,
            exited: false,
        });
        let last = self.list.len() - 1;
        Ok(&mut self.list[last])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Daemon> {
        self.list.iter()
    }

    /// The first daemon that died on its own, if any: a run cannot continue without it.
    pub fn first_exited(&mut self) -> Option<String> {
        self.list
            .iter_mut()
            .find_map(|d| d.has_exited().then(|| d.name.clone()))
    }

    /// SIGTERM stage by stage, waiting for each; then SIGKILL every group for leftovers.
    pub fn stop_all(&mut self) {
        for stage in [Stage::BlueChi, Stage::Systemd, Stage::Bus] {
            for d in self.list.iter_mut().filter(|d| d.stage == stage) {
                if !d.has_exited() {
                    let _ = killpg(d.pgid, Signal::SIGTERM);
                }
            }
            let start = Instant::now();
            while start.elapsed() < STAGE_DEADLINE {
                let all_gone = self
                    .list
                    .iter_mut()
                    .filter(|d| d.stage == stage)
                    .all(|d| d.has_exited());
                if all_gone {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for d in &mut self.list {
            // The group may outlive its leader (a service the emulator started); ESRCH is fine.
            let _ = killpg(d.pgid, Signal::SIGKILL);
            if !d.exited {
                let _ = d.child.wait();
                d.exited = true;
            }
        }
    }
}

/// The last `n` lines of a log file (lossy UTF-8), or a note why there are none.
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n);
            lines[start..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
