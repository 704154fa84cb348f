//! One agent on a private bus with its own systemd-emulator, connected to a fake controller
//! that we hold the peer link of: the only way to see what the agent serves to a controller.

use std::path::Path;
use std::time::Duration;

use zbus::Connection;

use crate::support_daemons::{fake_controller, Daemons};

const STEP: Duration = Duration::from_secs(15);

pub struct LoneAgent {
    pub bus_address: String,
    /// The fake controller's address, as the agent assembles it.
    pub controller_address: String,
    /// Our end of the agent's peer link (the agent has registered on it).
    pub link: Connection,
    // Declared after `link`: the link closes before the processes are killed.
    _daemons: Daemons,
    _dir: tempfile::TempDir,
}

impl LoneAgent {
    pub async fn start(bin: &Path) -> LoneAgent {
        let dir = tempfile::tempdir().expect("temporary directory");
        let units = dir.path().join("units");
        std::fs::create_dir_all(&units).expect("unit dir");
        let mut daemons = Daemons::start_bus(dir.path());
        let bus_address = daemons.bus_address().to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
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
        std::fs::write(
            &conf,
            format!(
                "[bluechi-agent]\nNodeName=lone\nControllerHost=127.0.0.1\n\
                 ControllerPort={port}\nLogTarget=stderr\nLogLevel=DEBUG\n"
            ),
        )
        .expect("agent config");
        let mut cmd = daemons.command(bin.join("bluechi-agent"));
        cmd.arg("-c").arg(&conf);
        daemons.spawn("bluechi-agent", cmd);
        let link = Connection::from(accept_registration(listener).await);
        LoneAgent {
            bus_address,
            controller_address: format!("tcp:host=127.0.0.1,port={port}"),
            link,
            _daemons: daemons,
            _dir: dir,
        }
    }
}

/// Accepts the agent's peer link and answers its `Register`; returns the link's stream.
pub async fn accept_registration(listener: tokio::net::TcpListener) -> zbus::MessageStream {
    let (socket, _) = tokio::time::timeout(STEP, listener.accept())
        .await
        .expect("the agent never connected")
        .expect("accept the agent");
    fake_controller::register(socket, STEP)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
