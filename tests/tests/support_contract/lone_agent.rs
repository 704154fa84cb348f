//! One agent on a private bus with its own systemd-emulator, connected to a fake controller
//! that we hold the peer link of: the only way to see what the agent serves to a controller.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use zbus::message::Type;
use zbus::Connection;

const STEP: Duration = Duration::from_secs(15);

/// Children killed by their own pids, newest first, when dropped (also on a failed start).
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
    pub bus_address: String,
    /// The fake controller's address, as the agent assembles it.
    pub controller_address: String,
    /// Our end of the agent's peer link (the agent has registered on it).
    pub link: Connection,
    // Declared after `link`: the link closes before the processes are killed.
    _children: Children,
    _dir: tempfile::TempDir,
}

fn start_bus(dir: &Path) -> (Child, String) {
    let conf = dir.join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            "<busconfig><type>custom</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>\
             <policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>\
             <allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy></busconfig>",
            dir.join("bus.sock").display()
        ),
    )
    .expect("bus config");
    let mut child = Command::new("dbus-daemon")
        .arg("--nofork")
        .arg("--print-address=1")
        .arg(format!("--config-file={}", conf.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon (run ci/setup.sh)");
    let mut line = String::new();
    let out = child.stdout.take().expect("stdout pipe");
    std::io::BufReader::new(out)
        .read_line(&mut line)
        .expect("bus address");
    assert!(!line.trim().is_empty(), "dbus-daemon printed no address");
    (child, line.trim().to_string())
}

fn daemon(bin: &Path, name: &str, bus: &str, args: &[&str], log: &Path) -> Child {
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
    pub async fn start(bin: &Path) -> LoneAgent {
        let dir = tempfile::tempdir().expect("temporary directory");
        let units = dir.path().join("units");
        std::fs::create_dir_all(&units).expect("unit dir");
        let (bus, bus_address) = start_bus(dir.path());
        let mut children = Children(vec![bus]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake controller listener");
        let port = listener.local_addr().expect("listener address").port();
        let unit_dir = units.display().to_string();
        children.0.push(daemon(
            bin,
            "systemd-emulator",
            &bus_address,
            &["--unit-dir", &unit_dir],
            &dir.path().join("systemd-emulator.log"),
        ));
        wait_for_name(&bus_address, "org.freedesktop.systemd1").await;
        let conf = dir.path().join("agent.conf");
        std::fs::write(
            &conf,
            format!(
                "[bluechi-agent]\nNodeName=lone\nControllerHost=127.0.0.1\n\
                 ControllerPort={port}\nLogTarget=stderr\nLogLevel=DEBUG\n"
            ),
        )
        .expect("agent config");
        let conf = conf.display().to_string();
        children.0.push(daemon(
            bin,
            "bluechi-agent",
            &bus_address,
            &["-c", &conf],
            &dir.path().join("bluechi-agent.log"),
        ));
        let link = Connection::from(accept_registration(listener).await);
        LoneAgent {
            bus_address,
            controller_address: format!("tcp:host=127.0.0.1,port={port}"),
            link,
            _children: children,
            _dir: dir,
        }
    }
}

/// Polls until `name` has an owner on the bus (the agent needs systemd at startup).
async fn wait_for_name(bus: &str, name: &str) {
    let conn = zbus::connection::Builder::address(bus)
        .expect("bus address")
        .build()
        .await
        .expect("connect to the private bus");
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.expect("bus proxy");
    let start = std::time::Instant::now();
    loop {
        let owned = zbus::names::BusName::try_from(name)
            .ok()
            .map(|n| dbus.name_has_owner(n));
        if let Some(call) = owned {
            if call.await.unwrap_or(false) {
                return;
            }
        }
        assert!(start.elapsed() < STEP, "{name} never appeared on the bus");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Accepts the agent's peer link and answers its `Register`; returns the link's stream.
pub async fn accept_registration(listener: tokio::net::TcpListener) -> zbus::MessageStream {
    let (socket, _) = tokio::time::timeout(STEP, listener.accept())
        .await
        .expect("the agent never connected")
        .expect("accept the agent");
    let tcp = bluechi_core::config::TcpOptions {
        ip_receive_errors: false,
        keepalive_time: 0,
        keepalive_interval: 0,
        keepalive_count: 0,
    };
    let guid = bluechi_core::link::new_guid();
    let mut stream = bluechi_core::link::accept_tcp(socket, &tcp, &guid)
        .await
        .expect("peer-link handshake");
    let conn = Connection::from(&stream);
    loop {
        let m = tokio::time::timeout(STEP, stream.next())
            .await
            .expect("the agent never registered")
            .expect("peer link closed before Register")
            .expect("a message");
        let h = m.header();
        if m.message_type() == Type::MethodCall && h.member().is_some_and(|x| x == "Register") {
            conn.reply(&h, &()).await.expect("reply to Register");
            return stream;
        }
    }
}
