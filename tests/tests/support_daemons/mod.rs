//! Daemons private to one test: a dbus-daemon listening in the test's directory and the
//! programs attached to it. Each program logs to `<name>.log` there and runs in its own process
//! group, so whatever it forks dies with it when the set is dropped.

#![allow(dead_code)] // Each test binary uses its own subset.

pub mod fake_controller;

use std::ffi::OsStr;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zbus::Connection;

const POLL: Duration = Duration::from_millis(25);

/// A bus that lets anyone own and call anything: the tests, not a policy, decide who talks.
pub fn bus_config(socket: &Path) -> String {
    format!(
        "<busconfig><type>custom</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>\
         <policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>\
         <allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy></busconfig>",
        socket.display()
    )
}

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

/// The bus and the daemons on it, killed newest first on drop so the bus outlives its users.
pub struct Daemons {
    dir: PathBuf,
    bus_address: String,
    procs: Vec<Proc>,
}

impl Daemons {
    /// Starts a dbus-daemon on `dir/bus.sock`; logs of later daemons go to `dir` too.
    pub fn start_bus(dir: &Path) -> Daemons {
        let conf = dir.join("bus.conf");
        std::fs::write(&conf, bus_config(&dir.join("bus.sock"))).expect("bus config");
        let mut child = Command::new("dbus-daemon")
            .arg("--nofork")
            .arg("--print-address=1")
            .arg(format!("--config-file={}", conf.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("dbus-daemon (run ci/setup.sh)");
        let out = child.stdout.take().expect("dbus-daemon stdout");
        // Owned before reading, so a failed read still kills the bus.
        let mut daemons = Daemons {
            dir: dir.to_path_buf(),
            bus_address: String::new(),
            procs: vec![Proc {
                name: "dbus-daemon",
                child,
            }],
        };
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("bus address");
        assert!(!line.trim().is_empty(), "dbus-daemon printed no address");
        daemons.bus_address = line.trim().to_string();
        daemons
    }

    pub fn bus_address(&self) -> &str {
        &self.bus_address
    }

    /// `program` with our bus as its system bus and nothing inherited that could redirect it
    /// (a session bus, or socket activation meant for the test runner).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_address)
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

    /// Every daemon's log, for a failure message.
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("--- {}\n{}", p.name, self.log(p.name)))
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
        let start = Instant::now();
        loop {
            let owned = scenario_runner::dbus::name_has_owner(conn, name)
                .await
                .unwrap_or(false);
            if owned {
                return;
            }
            assert!(
                self.alive(daemon),
                "{daemon} died before owning {name}:\n{}",
                self.logs()
            );
            assert!(
                start.elapsed() < deadline,
                "{daemon} never owned {name}:\n{}",
                self.logs()
            );
            tokio::time::sleep(POLL).await;
        }
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
