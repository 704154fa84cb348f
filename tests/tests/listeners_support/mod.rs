//! A controller started the way systemd socket activation starts it: the test binds the
//! listening socket, hands it over as fd 3 with `LISTEN_PID`/`LISTEN_FDS`, and the controller's
//! own TCP port and unix socket are switched off, so an agent can only reach it through the
//! activated fd. Controller, agent and systemd-emulator share one private bus (their names do
//! not clash), which keeps the rig small.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use zbus::Connection;
use zvariant::OwnedValue;

use crate::robust_support::{poll, DEADLINE};
use crate::support_daemons::Daemons;

pub const NODE: &str = "lis";
const NODE_PATH: &str = "/org/eclipse/bluechi/node/lis";

/// The socket handed to the controller as fd 3.
pub enum Activated {
    Unix,
    Tcp,
}

pub struct Rig {
    pub bus: Connection,
    daemons: Daemons,
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The agent's `ControllerAddress=`.
    pub controller_address: String,
}

/// Runs in the forked child before exec: only async-signal-safe calls.
fn pass_as_fd3(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: plain fd syscalls on descriptors the child inherited.
    unsafe {
        if fd == 3 {
            // dup2 onto itself would keep close-on-exec set.
            let flags = libc::fcntl(3, libc::F_GETFD);
            if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        } else if libc::dup2(fd, 3) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Rig {
    /// Bus, systemd-emulator and a socket-activated controller with `controller_keys` added to
    /// its `[bluechi-controller]` section; the agent is started separately by `start_agent`.
    pub async fn start(kind: Activated, controller_keys: &str) -> Rig {
        let bin = scenario_runner::paths::bin_dir().expect("binary directory");
        scenario_runner::paths::check_binaries(&bin).unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().expect("temporary directory");
        let daemons = Daemons::start_bus(dir.path());
        let bus = scenario_runner::dbus::connect(daemons.bus_address())
            .await
            .expect("private bus");
        let units = dir.path().join("units");
        std::fs::create_dir_all(&units).expect("unit dir");
        let mut rig = Rig {
            bus,
            daemons,
            dir,
            bin,
            controller_address: String::new(),
        };
        let mut cmd = rig.daemons.command(rig.bin.join("systemd-emulator"));
        cmd.arg("--unit-dir").arg(&units);
        rig.daemons.spawn("systemd-emulator", cmd);

        let (socket, address): (OwnedFd, String) = match kind {
            Activated::Unix => {
                let path = rig.dir.path().join("controller.sock");
                let l = std::os::unix::net::UnixListener::bind(&path).expect("bind unix socket");
                (l.into(), format!("unix:path={}", path.display()))
            }
            Activated::Tcp => {
                let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tcp socket");
                let port = l.local_addr().expect("local address").port();
                (l.into(), format!("tcp:host=127.0.0.1,port={port}"))
            }
        };
        rig.controller_address = address;
        let conf = rig.write(
            "controller.conf",
            &format!(
                "[bluechi-controller]\nUseTCP=false\nUseUDS=false\nAllowedNodeNames={NODE}\n\
                 LogTarget=stderr\nLogLevel=DEBUG\n{controller_keys}\n"
            ),
        );
        let controller = rig.bin.join("bluechi-controller");
        // `sh` execs the controller in place, so `$$` is the controller's own pid.
        let mut cmd = rig.daemons.command("sh");
        cmd.arg("-c")
            .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#)
            .arg(&controller)
            .arg("-c")
            .arg(&conf);
        let fd = socket.as_raw_fd();
        // SAFETY: the hook only makes fd syscalls, which are async-signal-safe.
        unsafe { cmd.pre_exec(move || pass_as_fd3(fd)) };
        rig.daemons.spawn("bluechi-controller", cmd);
        // The child holds its own copy now.
        drop(socket);
        rig.wait_name("org.eclipse.bluechi", "bluechi-controller")
            .await;
        rig
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{name}: {e}"));
        path.display().to_string()
    }

    pub fn log(&self, name: &str) -> String {
        self.daemons.log(name)
    }

    /// Every daemon's log, for a failure message.
    pub fn logs(&self) -> String {
        self.daemons.logs()
    }

    async fn wait_name(&self, name: &str, daemon: &str) {
        self.daemons
            .wait_for_name(&self.bus, name, daemon, DEADLINE)
            .await
    }

    /// The agent for `NODE`, connecting to the activated socket, with `agent_keys` added.
    pub async fn start_agent(&mut self, agent_keys: &str) {
        let conf = self.write(
            "agent.conf",
            &format!(
                "[bluechi-agent]\nNodeName={NODE}\nControllerAddress={}\n\
                 LogTarget=stderr\nLogLevel=DEBUG\n{agent_keys}\n",
                self.controller_address
            ),
        );
        let mut cmd = self.daemons.command(self.bin.join("bluechi-agent"));
        cmd.arg("-c").arg(&conf);
        self.daemons.spawn("bluechi-agent", cmd);
        self.wait_name("org.eclipse.bluechi.Agent", "bluechi-agent")
            .await;
    }

    pub fn pid(&self, name: &str) -> Option<i32> {
        self.daemons.pid(name)
    }

    pub fn signal(&self, name: &str, signal: &str) {
        let pid = self
            .pid(name)
            .unwrap_or_else(|| panic!("{name} not started"));
        crate::robust_support::kill(pid, signal);
    }

    pub async fn node_status(&self) -> Option<String> {
        crate::robust_support::node_status(&self.bus, NODE).await
    }

    pub async fn wait_node_status(&self, status: &str) {
        poll(&format!("node {NODE} to be {status}"), || async {
            (self.node_status().await.as_deref() == Some(status)).then_some(())
        })
        .await
    }

    async fn property(
        &self,
        dest: &str,
        path: &str,
        iface: &str,
        name: &str,
    ) -> Option<OwnedValue> {
        let reply = self
            .bus
            .call_method(
                Some(dest),
                path,
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(iface, name),
            )
            .await
            .ok()?;
        let (v,): (OwnedValue,) = reply.body().deserialize().ok()?;
        Some(v)
    }

    pub async fn node_property(&self, name: &str) -> Option<OwnedValue> {
        self.property(
            "org.eclipse.bluechi",
            NODE_PATH,
            "org.eclipse.bluechi.Node",
            name,
        )
        .await
    }

    pub async fn agent_status(&self) -> Option<String> {
        let v = self
            .property(
                "org.eclipse.bluechi.Agent",
                "/org/eclipse/bluechi",
                "org.eclipse.bluechi.Agent",
                "Status",
            )
            .await?;
        String::try_from(v).ok()
    }

    pub async fn wait_agent_status(&self, status: &str) {
        poll(&format!("agent Status to be {status}"), || async {
            (self.agent_status().await.as_deref() == Some(status)).then_some(())
        })
        .await
    }
}

/// Runs a controller whose environment claims socket activation for another pid; returns its
/// exit status and output, or `None` if it is still running at the deadline.
pub fn controller_with_foreign_listen_pid() -> Option<(std::process::ExitStatus, String)> {
    let bin = scenario_runner::paths::bin_dir().expect("binary directory");
    let dir = tempfile::tempdir().expect("temporary directory");
    let conf = dir.path().join("controller.conf");
    std::fs::write(
        &conf,
        "[bluechi-controller]\nUseTCP=false\nUseUDS=false\nLogTarget=stderr\n",
    )
    .expect("controller config");
    let log = dir.path().join("controller.log");
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    // Our own pid is certainly not the controller's.
    let mut child = Command::new(bin.join("bluechi-controller"))
        .arg("-c")
        .arg(&conf)
        .env("LISTEN_PID", std::process::id().to_string())
        .env("LISTEN_FDS", "1")
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus.sock")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("bluechi-controller");
    let status = bluechi_testkit::poll::until_blocking("the controller to exit", DEADLINE, || {
        child.try_wait().ok().flatten()
    })
    .ok();
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status.map(|s| (s, std::fs::read_to_string(&log).unwrap_or_default()))
}
