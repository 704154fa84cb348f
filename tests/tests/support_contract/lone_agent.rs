//! One agent on a private bus with its own systemd-emulator, connected to a fake controller
//! that we hold the peer link of: the only way to see what the agent serves to a controller.

use std::path::Path;
use std::time::Duration;

use tokio::net::TcpListener;
use zbus::{Connection, Message};

use crate::support_daemons::{fake_controller, Daemons};

const STEP: Duration = Duration::from_secs(15);

pub struct LoneAgent {
    pub bus_address: String,
    /// The fake controller's address, as the agent assembles it.
    pub controller_address: String,
    /// Our end of the agent's peer link (the agent has registered on it, unless it came from
    /// [`LoneAgent::start_unanswered`]).
    pub link: Connection,
    /// Where the agent connects again when a link ends.
    listener: TcpListener,
    // Declared after `link`: the link closes before the processes are killed.
    _daemons: Daemons,
    _dir: tempfile::TempDir,
}

impl LoneAgent {
    /// The agent, registered on `link`.
    pub async fn start(bin: &Path) -> LoneAgent {
        LoneAgent::start_with_units(bin, &[]).await
    }

    /// The agent, registered on `link`; its systemd has `units` (name, text).
    pub async fn start_with_units(bin: &Path, units: &[(&str, &str)]) -> LoneAgent {
        let (agent, register) = LoneAgent::start_unanswered(bin, units).await;
        agent
            .link
            .reply(&register.header(), &())
            .await
            .expect("reply to Register");
        agent
    }

    /// The agent connected on `link`, its `Register` call returned unanswered: the test
    /// decides what the agent sees before it is registered. Its systemd has `unit_files`.
    pub async fn start_unanswered(bin: &Path, unit_files: &[(&str, &str)]) -> (LoneAgent, Message) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let units = dir.path().join("units");
        std::fs::create_dir_all(&units).expect("unit dir");
        for (name, text) in unit_files {
            std::fs::write(units.join(name), text).expect("unit file");
        }
        let mut daemons = Daemons::start_bus(dir.path());
        let bus_address = daemons.bus_address().to_string();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake controller listener");
        let port = listener.local_addr().expect("listener address").port();
        let mut cmd = daemons.command(bin.join("systemd-emulator"));
        cmd.arg("--unit-dir").arg(&units);
        daemons.spawn("systemd-emulator", cmd);
        // The agent needs systemd at startup.
        let bus = scenario_runner::dbus::connect(&bus_address)
            .await
            .expect("connect to the private bus");
        daemons
            .wait_for_name(&bus, "org.freedesktop.systemd1", "systemd-emulator", STEP)
            .await;
        drop(bus);
        let conf = dir.path().join("agent.conf");
        // A heartbeat tick gives up on a link that has not registered yet (spec §1.7): a long
        // interval leaves the test all the time it needs before it answers `Register`.
        std::fs::write(
            &conf,
            format!(
                "[bluechi-agent]\nNodeName=lone\nControllerHost=127.0.0.1\n\
                 ControllerPort={port}\nHeartbeatInterval=600000\nLogTarget=stderr\n\
                 LogLevel=DEBUG\n"
            ),
        )
        .expect("agent config");
        let mut cmd = daemons.command(bin.join("bluechi-agent"));
        cmd.arg("-c").arg(&conf);
        daemons.spawn("bluechi-agent", cmd);
        let (socket, _) = tokio::time::timeout(STEP, listener.accept())
            .await
            .expect("the agent never connected")
            .expect("accept the agent");
        let (stream, register) = fake_controller::until_register(socket, STEP)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let agent = LoneAgent {
            bus_address,
            controller_address: format!("tcp:host=127.0.0.1,port={port}"),
            link: Connection::from(stream),
            listener,
            _daemons: daemons,
            _dir: dir,
        };
        (agent, register)
    }

    /// Drops the current link, as a controller that went away would, and registers the
    /// agent's reconnect (the same agent process) as the new `link`.
    pub async fn drop_link_and_reconnect(&mut self) {
        let old = self.link.clone();
        old.close().await.expect("close the peer link");
        self.link = Connection::from(accept_on(&self.listener).await);
    }
}

/// Accepts the agent's peer link and answers its `Register`; returns the link's stream.
pub async fn accept_registration(listener: TcpListener) -> zbus::MessageStream {
    accept_on(&listener).await
}

async fn accept_on(listener: &TcpListener) -> zbus::MessageStream {
    let (socket, _) = tokio::time::timeout(STEP, listener.accept())
        .await
        .expect("the agent never connected")
        .expect("accept the agent");
    fake_controller::register(socket, STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
