//! One agent on a private bus with its own systemd-emulator, pointed at a listener we own:
//! the test plays the controller and may drop the link and accept the agent's reconnect.

use std::time::Duration;

use tokio::net::TcpListener;
use zbus::{Connection, MessageStream};

use super::DEADLINE;
use crate::support_daemons::{fake_controller, Daemons};

pub struct LoneAgent {
    pub bus: Connection,
    listener: TcpListener,
    daemons: Daemons,
    _dir: tempfile::TempDir,
}

impl LoneAgent {
    pub async fn start() -> LoneAgent {
        let bin = scenario_runner::paths::bin_dir().expect("binary directory");
        let dir = tempfile::tempdir().expect("temporary directory");
        let units = dir.path().join("units");
        std::fs::create_dir_all(&units).expect("unit dir");
        let mut daemons = Daemons::start_bus(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listener");
        let port = listener.local_addr().expect("address").port();
        let mut cmd = daemons.command(bin.join("systemd-emulator"));
        cmd.arg("--unit-dir").arg(&units);
        daemons.spawn("systemd-emulator", cmd);
        let conn = scenario_runner::dbus::connect(daemons.bus_address())
            .await
            .expect("private bus");
        daemons
            .wait_for_name(
                &conn,
                "org.freedesktop.systemd1",
                "systemd-emulator",
                DEADLINE,
            )
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
        let mut cmd = daemons.command(bin.join("bluechi-agent"));
        cmd.arg("-c").arg(&agent_conf);
        daemons.spawn("bluechi-agent", cmd);
        LoneAgent {
            bus: conn,
            listener,
            daemons,
            _dir: dir,
        }
    }

    /// A crashed agent lingers as a zombie until dropped.
    pub fn alive(&self) -> bool {
        self.daemons.alive("bluechi-agent")
    }

    pub fn log(&self) -> String {
        self.daemons.log("bluechi-agent")
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
        fake_controller::register(socket, DEADLINE).await.ok()
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
