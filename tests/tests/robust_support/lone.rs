//! One agent on a private bus with its own systemd-emulator, pointed at a listener we own:
//! the test plays the controller and may drop the link and accept the agent's reconnect.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bluechi_core::config::TcpOptions;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use zbus::message::Type;
use zbus::{Connection, MessageStream};

use super::{poll, DEADLINE};

/// Children killed by their own pids, newest first.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        while let Some(mut c) = self.0.pop() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct LoneAgent {
    pub bus: Connection,
    listener: TcpListener,
    children: Children,
    _dir: tempfile::TempDir,
}

fn spawn(bin: &Path, name: &str, bus: &str, args: &[&str], log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    let err = log.try_clone().expect("log file");
    Command::new(bin.join(name))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdout(log)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

impl LoneAgent {
    pub async fn start() -> LoneAgent {
        let bin = scenario_runner::paths::bin_dir().expect("binary directory");
        let dir = tempfile::tempdir().expect("temporary directory");
        let units = dir.path().join("units");
        std::fs::create_dir_all(&units).expect("unit dir");
        let conf = dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                "<busconfig><type>custom</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>\
                 <policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>\
                 <allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy></busconfig>",
                dir.path().join("bus.sock").display()
            ),
        )
        .expect("bus config");
        let mut bus = Command::new("dbus-daemon")
            .arg("--nofork")
            .arg("--print-address=1")
            .arg(format!("--config-file={}", conf.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let mut address = String::new();
        std::io::BufReader::new(bus.stdout.take().expect("stdout"))
            .read_line(&mut address)
            .expect("bus address");
        let address = address.trim().to_string();
        let mut children = Children(vec![bus]);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listener");
        let port = listener.local_addr().expect("address").port();
        let unit_dir = units.display().to_string();
        children.0.push(spawn(
            &bin,
            "systemd-emulator",
            &address,
            &["--unit-dir", &unit_dir],
            &dir.path().join("systemd-emulator.log"),
        ));
        let conn = scenario_runner::dbus::connect(&address)
            .await
            .expect("private bus");
        poll("systemd on the private bus", || async {
            scenario_runner::dbus::name_has_owner(&conn, "org.freedesktop.systemd1")
                .await
                .ok()?
                .then_some(())
        })
        .await;
        let agent_conf = dir.path().join("agent.conf");
        // A short heartbeat makes reconnects after a dropped link quick.
        std::fs::write(
            &agent_conf,
            format!(
                "[bluechi-agent]\nNodeName=lone\nControllerHost=127.0.0.1\nControllerPort={port}\n\
                 HeartbeatInterval=200\nLogTarget=stderr\nLogLevel=DEBUG\n"
            ),
        )
        .expect("agent config");
        let agent_conf = agent_conf.display().to_string();
        children.0.push(spawn(
            &bin,
            "bluechi-agent",
            &address,
            &["-c", &agent_conf],
            &dir.path().join("bluechi-agent.log"),
        ));
        LoneAgent {
            bus: conn,
            listener,
            children,
            _dir: dir,
        }
    }

    /// The agent is the newest child; a crashed one lingers as a zombie until dropped.
    pub fn alive(&self) -> bool {
        self.children
            .0
            .last()
            .is_some_and(|c| super::is_alive(c.id() as i32))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("bluechi-agent.log")).unwrap_or_default()
    }

    /// Accepts the agent's next connection and answers its `Register`. An attempt the agent
    /// already gave up on (its retry tick fired while we were not accepting) is closed by the
    /// agent before it registers; the next attempt is taken instead.
    pub async fn accept(&self) -> MessageStream {
        let start = std::time::Instant::now();
        loop {
            assert!(start.elapsed() < DEADLINE, "the agent never registered");
            if let Some(stream) = self.try_accept().await {
                return stream;
            }
        }
    }

    async fn try_accept(&self) -> Option<MessageStream> {
        let (socket, _) = tokio::time::timeout(DEADLINE, self.listener.accept())
            .await
            .expect("the agent never connected")
            .expect("accept");
        let tcp = TcpOptions {
            ip_receive_errors: false,
            keepalive_time: 0,
            keepalive_interval: 0,
            keepalive_count: 0,
        };
        let guid = bluechi_core::link::new_guid();
        let mut stream = bluechi_core::link::accept_tcp(socket, &tcp, &guid)
            .await
            .ok()?;
        let conn = Connection::from(&stream);
        loop {
            let m = tokio::time::timeout(DEADLINE, stream.next())
                .await
                .ok()??
                .ok()?;
            let h = m.header();
            if m.message_type() == Type::MethodCall && h.member().is_some_and(|x| x == "Register") {
                conn.reply(&h, &()).await.ok()?;
                return Some(stream);
            }
        }
    }

    /// The agent's public `Status`, within `limit`: its loop is not stalled.
    pub async fn status_within(&self, limit: Duration) -> Result<String, String> {
        let call = self.bus.call_method(
            Some("org.eclipse.bluechi.Agent"),
            "/org/eclipse/bluechi",
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &("org.eclipse.bluechi.Agent", "Status"),
        );
        let reply = tokio::time::timeout(limit, call)
            .await
            .map_err(|_| format!("agent did not answer within {limit:?}"))?
            .map_err(|e| format!("agent Status: {e}"))?;
        let (v,): (zvariant::OwnedValue,) =
            reply.body().deserialize().map_err(|e| e.to_string())?;
        String::try_from(v).map_err(|e| e.to_string())
    }
}
