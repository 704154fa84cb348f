//! Daemons private to one test: a dbus-daemon listening in the test's directory (the test
//! kit's `PrivateBus`) and the programs attached to it. Each program logs to `<name>.log` there
//! and runs in its own process group, so whatever it forks dies with it when the set is dropped.

#![allow(dead_code)] // Each test binary uses its own subset.

pub mod fake_controller;

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bluechi_testkit::bus::PrivateBus;
use bluechi_testkit::poll::{self, Step};
use zbus::Connection;

/// Running and not a zombie: a crashed daemon stays a zombie until it is reaped.
pub fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after_comm = s.rsplit_once(')')?.1.trim_start().to_string();
            after_comm.chars().next()
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

struct Proc {
    name: &'static str,
    child: Child,
}

/// The bus and the daemons on it, killed newest first on drop; the bus, a field dropped after
/// `Drop::drop` has killed the daemons, outlives its users.
pub struct Daemons {
    dir: PathBuf,
    procs: Vec<Proc>,
    bus: PrivateBus,
}

impl Daemons {
    /// Starts a dbus-daemon on `dir/bus.sock`; logs of later daemons go to `dir` too.
    pub fn start_bus(dir: &Path) -> Daemons {
        Daemons {
            dir: dir.to_path_buf(),
            procs: Vec::new(),
            bus: PrivateBus::start(dir).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    pub fn bus_address(&self) -> &str {
        self.bus.address()
    }

    /// `program` with our bus as its system bus and nothing inherited that could redirect it
    /// (a session bus, or socket activation meant for the test runner).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", self.bus.address())
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS")
            .stdin(Stdio::null());
        cmd
    }

    /// Starts `cmd` as `name`, stdout and stderr in `<name>.log`, in a new process group.
    pub fn spawn(&mut self, name: &'static str, mut cmd: Command) {
        let log = std::fs::File::create(self.log_path(name)).expect("log file");
        let err = log.try_clone().expect("log file");
        let child = cmd
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        self.procs.push(Proc { name, child });
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Every daemon's log, the bus's first, for a failure message.
    pub fn logs(&self) -> String {
        std::iter::once("dbus-daemon")
            .chain(self.procs.iter().map(|p| p.name))
            .map(|name| format!("--- {name}\n{}", self.log(name)))
            .collect()
    }

    pub fn pid(&self, name: &str) -> Option<i32> {
        self.procs
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.child.id() as i32)
    }

    /// Never reaped before drop, so a crashed daemon shows as a zombie here.
    pub fn alive(&self, name: &str) -> bool {
        self.pid(name).is_some_and(is_alive)
    }

    /// Polls until `name` has an owner on `conn`'s bus; panics with every log if `daemon`
    /// dies first or `deadline` passes.
    pub async fn wait_for_name(
        &self,
        conn: &Connection,
        name: &str,
        daemon: &str,
        deadline: Duration,
    ) {
        poll::until(format!("{daemon} to own {name}"), deadline, || async move {
            let owned = scenario_runner::dbus::name_has_owner(conn, name)
                .await
                .unwrap_or(false);
            if owned {
                Step::Done(())
            } else if !self.alive(daemon) {
                Step::Fail(format!("{daemon} died"))
            } else {
                Step::Pending(format!("{name} has no owner"))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}:\n{}", self.logs()));
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        while let Some(mut p) = self.procs.pop() {
            let pid = p.child.id() as libc::pid_t;
            // SAFETY: kill(2) has no memory effects. The child is not reaped yet, so its pid,
            // and with it the group id, cannot have been reused. SIGKILL also ends a stopped one.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}
