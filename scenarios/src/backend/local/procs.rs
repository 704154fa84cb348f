//! The processes of one local run: each in its own process group, stopped in dependency order.
//! BlueChi's daemons are supervised like their units (`Restart=on-abnormal`, 100 ms): one
//! killed by a signal is started again, one stopped on purpose or exiting on its own is not.

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

/// How to start a process again: program, arguments and environment as first given.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Spec {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// systemd's `RestartSec=` default.
const RESTART_DELAY: Duration = Duration::from_millis(100);

/// Exit by one of these is clean for `Restart=on-abnormal` (systemd's "clean" signals).
const CLEAN_SIGNALS: [i32; 4] = [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGPIPE];

pub struct Daemon {
    pub name: String,
    pub node: String,
    pub stage: Stage,
    pub log: PathBuf,
    spec: Spec,
    /// Restarted after an abnormal exit (BlueChi's daemons).
    supervised: bool,
    child: Option<Child>,
    pgid: Pid,
    /// Set once the leader is reaped: how it ended.
    status: Option<std::process::ExitStatus>,
    /// Stopped on purpose: not restarted, not a crash.
    stopped: bool,
    /// An abnormal exit seen at this time: restart once the delay has passed.
    restart_at: Option<Instant>,
}

impl Daemon {
    /// Reaps the leader if it exited; returns whether it has.
    pub fn has_exited(&mut self) -> bool {
        if self.status.is_none() {
            match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(s))) => self.status = Some(s),
                Some(Ok(None)) => {}
                // Not ours to wait for any more: count it as gone.
                Some(Err(_)) | None => {
                    self.status = Some(std::os::unix::process::ExitStatusExt::from_raw(0))
                }
            }
        }
        self.status.is_some()
    }

    pub fn pid(&self) -> Option<i32> {
        (self.status.is_none())
            .then(|| self.child.as_ref().map(|c| c.id() as i32))
            .flatten()
    }

    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut().and_then(|c| c.stdout.take())
    }

    fn abnormal(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.status
            .and_then(|s| s.signal())
            .is_some_and(|sig| !CLEAN_SIGNALS.contains(&sig))
    }

    fn signal_group(&self, signal: Signal) {
        // The group may outlive its leader (a service the emulator started); ESRCH is fine.
        let _ = killpg(self.pgid, signal);
    }

    fn reap(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if self.status.is_none() {
                self.status = child.wait().ok();
            }
        }
    }
}

#[derive(Default)]
pub struct Daemons {
    list: Vec<Daemon>,
}

const STAGE_DEADLINE: Duration = Duration::from_secs(5);

/// Starts `spec` in a new process group with the run marker, stderr (and stdout unless
/// `pipe_stdout`) to `log` (appended to, so a restarted daemon keeps its history).
fn launch(
    spec: &Spec,
    log: &Path,
    run_id: &str,
    pipe_stdout: bool,
) -> Result<(Child, Pid), String> {
    let log_file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let stdout = if pipe_stdout {
        Stdio::piped()
    } else {
        log_file
            .try_clone()
            .map(Stdio::from)
            .map_err(|e| format!("cannot reuse {}: {e}", log.display()))?
    };
    let mut cmd = spec.command();
    cmd.env(MARKER_VAR, run_id)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log_file);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", spec.program.display()))?;
    let pgid = Pid::from_raw(child.id() as i32);
    Ok((child, pgid))
}

/// What `spawn` starts.
pub struct Launch<'a> {
    pub name: String,
    pub node: &'a str,
    pub stage: Stage,
    pub spec: Spec,
    pub log: PathBuf,
    pub pipe_stdout: bool,
    pub supervised: bool,
}

impl Daemons {
    pub fn spawn(&mut self, l: Launch<'_>, run_id: &str) -> Result<&mut Daemon, String> {
        let (child, pgid) = launch(&l.spec, &l.log, run_id, l.pipe_stdout)?;
        self.list.push(Daemon {
            name: l.name,
            node: l.node.to_string(),
            stage: l.stage,
            log: l.log,
            spec: l.spec,
            supervised: l.supervised,
            child: Some(child),
            pgid,
            status: None,
            stopped: false,
            restart_at: None,
        });
        let last = self.list.len() - 1;
        Ok(&mut self.list[last])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Daemon> {
        self.list.iter()
    }

    pub fn find_mut(&mut self, name: &str) -> Option<&mut Daemon> {
        self.list.iter_mut().find(|d| d.name == name)
    }

    /// The first daemon that died on its own, if any: a run cannot start without it.
    pub fn first_exited(&mut self) -> Option<String> {
        self.list
            .iter_mut()
            .find_map(|d| (d.has_exited() && !d.stopped).then(|| d.name.clone()))
    }

    /// Whether `name` died on its own and will not be started again (no restart pending).
    pub fn gone(&mut self, name: &str) -> bool {
        self.find_mut(name).is_some_and(|d| {
            d.has_exited()
                && !d.stopped
                && d.restart_at.is_none()
                && !(d.supervised && d.abnormal())
        })
    }

    /// Stops a daemon on purpose (SIGTERM, then SIGKILL after the deadline), so it stays down.
    pub fn stop(&mut self, name: &str) -> Result<(), String> {
        let d = self
            .find_mut(name)
            .ok_or_else(|| format!("no daemon {name}"))?;
        d.stopped = true;
        d.restart_at = None;
        if d.has_exited() {
            return Ok(());
        }
        d.signal_group(Signal::SIGTERM);
        let start = Instant::now();
        while !d.has_exited() && start.elapsed() < STAGE_DEADLINE {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !d.has_exited() {
            d.signal_group(Signal::SIGKILL);
            d.reap();
        }
        Ok(())
    }

    /// SIGKILL, as `systemctl kill -s KILL` would: the supervisor starts it again.
    pub fn kill(&mut self, name: &str) -> Result<(), String> {
        let d = self
            .find_mut(name)
            .ok_or_else(|| format!("no daemon {name}"))?;
        if d.has_exited() {
            return Err(format!("{name} is not running"));
        }
        d.signal_group(Signal::SIGKILL);
        d.reap();
        Ok(())
    }

    /// SIGKILL that the supervisor leaves alone (a crash under `Restart=no`): for tests that
    /// need a daemon down until they start it again.
    pub fn crash(&mut self, name: &str) -> Result<(), String> {
        self.kill(name)?;
        if let Some(d) = self.find_mut(name) {
            d.stopped = true;
        }
        Ok(())
    }

    /// Starts a daemon that is not running (a no-op if it is, like `systemctl start`).
    pub fn start(&mut self, name: &str, run_id: &str) -> Result<(), String> {
        let d = self
            .find_mut(name)
            .ok_or_else(|| format!("no daemon {name}"))?;
        if !d.has_exited() {
            return Ok(());
        }
        let (child, pgid) = launch(&d.spec, &d.log, run_id, false)?;
        d.child = Some(child);
        d.pgid = pgid;
        d.status = None;
        d.stopped = false;
        d.restart_at = None;
        Ok(())
    }

    /// One supervision pass: restarts supervised daemons that died abnormally, once their
    /// restart delay has passed. Returns what it restarted.
    pub fn supervise(&mut self, run_id: &str) -> Vec<String> {
        let now = Instant::now();
        let mut due = Vec::new();
        for d in self.list.iter_mut().filter(|d| d.supervised && !d.stopped) {
            if d.restart_at.is_none() && d.has_exited() && d.abnormal() {
                d.restart_at = Some(now + RESTART_DELAY);
            }
            if d.restart_at.is_some_and(|t| t <= now) {
                due.push(d.name.clone());
            }
        }
        due.retain(|name| self.start(name, run_id).is_ok());
        due
    }

    /// Pids of every live process of the node's daemons and their descendants (services the
    /// emulator started included), for freezing the node.
    pub fn node_processes(&self, node: &str) -> Vec<i32> {
        let roots: Vec<i32> = self
            .list
            .iter()
            .filter(|d| d.node == node)
            .filter_map(Daemon::pid)
            .collect();
        descendants(&roots)
    }

    /// SIGTERM stage by stage, waiting for each; then SIGKILL every group for leftovers.
    pub fn stop_all(&mut self) {
        for d in &mut self.list {
            d.stopped = true;
        }
        for stage in [Stage::BlueChi, Stage::Systemd, Stage::Bus] {
            for d in self.list.iter_mut().filter(|d| d.stage == stage) {
                if !d.has_exited() {
                    // A frozen node must be able to act on the SIGTERM.
                    d.signal_group(Signal::SIGCONT);
                    d.signal_group(Signal::SIGTERM);
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
            d.signal_group(Signal::SIGKILL);
            d.reap();
        }
    }
}

/// `roots` and every process descending from them, from /proc's parent links.
fn descendants(roots: &[i32]) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The command name may hold spaces and parentheses: fields start after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found: Vec<i32> = roots.to_vec();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for (pid, _) in parents.iter().filter(|(_, pp)| *pp == parent) {
            if !found.contains(pid) {
                found.push(*pid);
            }
        }
        i += 1;
    }
    found
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(dir: &Path, supervised: bool) -> (Daemons, String) {
        let mut d = Daemons::default();
        let spec = Spec {
            program: "/bin/sleep".into(),
            args: vec!["30".into()],
            env: Vec::new(),
        };
        let launch = Launch {
            name: "n/sleep".into(),
            node: "n",
            stage: Stage::BlueChi,
            spec,
            log: dir.join("sleep.log"),
            pipe_stdout: false,
            supervised,
        };
        d.spawn(launch, "procs-test").unwrap();
        (d, "n/sleep".into())
    }

    fn restarted_within(d: &mut Daemons, deadline: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if !d.supervise("procs-test").is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn killed_daemons_restart_and_stopped_ones_stay_down() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, name) = sleeper(dir.path(), true);
        let first = d.find_mut(&name).unwrap().pid().unwrap();
        d.kill(&name).unwrap();
        assert!(restarted_within(&mut d, Duration::from_secs(5)));
        let second = d.find_mut(&name).unwrap().pid().unwrap();
        assert_ne!(first, second);
        d.stop(&name).unwrap();
        assert!(!restarted_within(&mut d, Duration::from_millis(300)));
        assert!(d.first_exited().is_none(), "a deliberate stop is no crash");
        d.start(&name, "procs-test").unwrap();
        assert!(d.find_mut(&name).unwrap().pid().is_some());
        d.stop_all();
    }

    #[test]
    fn unsupervised_processes_are_not_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, name) = sleeper(dir.path(), false);
        d.kill(&name).unwrap();
        assert!(!restarted_within(&mut d, Duration::from_millis(300)));
        assert_eq!(d.first_exited().as_deref(), Some(name.as_str()));
        d.stop_all();
    }
}
