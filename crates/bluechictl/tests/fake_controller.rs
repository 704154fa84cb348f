//! End-to-end test of the `bluechictl` binary against a tiny fake controller that owns
//! `org.eclipse.bluechi` on a private dbus-daemon.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use bluechi_core::msg::{reply, reply_error, route};
use futures_util::StreamExt;
use zbus::message::Type;
use zbus::zvariant::{ObjectPath, Value};
use zbus::Connection;

struct Bus {
    daemon: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn start_bus() -> Bus {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bus.conf");
    let socket = dir.path().join("bus.sock");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
            socket.display()
        ),
    )
    .unwrap();
    let mut daemon = Command::new("dbus-daemon")
        .args(["--nofork", "--print-address"])
        .arg(format!("--config-file={}", config.display()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("dbus-daemon must be installed");
    // The address is printed once the daemon listens, so reading it is the readiness check.
    let mut line = String::new();
    BufReader::new(daemon.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Bus {
        daemon,
        address: line.trim().to_string(),
        _dir: dir,
    }
}

const MAIN_PATH: &str = "/org/eclipse/bluechi/node/main";
const OFFLINE_PATH: &str = "/org/eclipse/bluechi/node/worker_2d2";

async fn serve(conn: Connection) {
    let mut stream = zbus::MessageStream::from(&conn);
    while let Some(Ok(msg)) = stream.next().await {
        if msg.message_type() != Type::MethodCall {
            continue;
        }
        let r = route(&msg);
        let hdr = msg.header();
        match (r.path.as_str(), r.member.as_str()) {
            ("/org/eclipse/bluechi", "ListNodes") => {
                let nodes = vec![
                    (
                        "main",
                        ObjectPath::from_static_str_unchecked(MAIN_PATH),
                        "online",
                        "::ffff:10.89.1.29",
                    ),
                    (
                        "worker-2",
                        ObjectPath::from_static_str_unchecked(OFFLINE_PATH),
                        "offline",
                        "",
                    ),
                ];
                reply(&conn, &hdr, &nodes).await;
            }
            (OFFLINE_PATH, "Get") => reply(&conn, &hdr, &Value::from(0u64)).await,
            (MAIN_PATH, "GetUnitProperties") => {
                let (unit, _iface): (String, String) = msg.body().deserialize().unwrap();
                let mut props: HashMap<&str, Value> = HashMap::new();
                props.insert("Id", Value::from(unit.clone()));
                props.insert("FreezerState", Value::from("running"));
                props.insert("UnitFileState", Value::from(""));
                props.insert("NRestarts", Value::from(3u32));
                if unit == "missing.service" {
                    props.insert("LoadState", Value::from("not-found"));
                } else {
                    props.insert("LoadState", Value::from("loaded"));
                    props.insert("ActiveState", Value::from("failed"));
                    props.insert("SubState", Value::from("failed"));
                }
                reply(&conn, &hdr, &props).await;
            }
            (MAIN_PATH, "StartUnit") => {
                let (unit, _mode): (String, String) = msg.body().deserialize().unwrap();
                let job = ObjectPath::from_static_str_unchecked("/org/eclipse/bluechi/job/7");
                let other = ObjectPath::from_static_str_unchecked("/org/eclipse/bluechi/job/6");
                reply(&conn, &hdr, &job).await;
                // An unrelated job first, then ours right after the reply: the client must
                // pick the right one and must not miss a signal racing the reply.
                for (id, path, result) in [(6u32, &other, "failed"), (7u32, &job, "done")] {
                    conn.emit_signal(
                        None::<()>,
                        "/org/eclipse/bluechi",
                        "org.eclipse.bluechi.Controller",
                        "JobRemoved",
                        &(id, path, "main", unit.as_str(), result),
                    )
                    .await
                    .unwrap();
                }
            }
            (path, _) if path.starts_with("/org/eclipse/bluechi/node/") && path != MAIN_PATH => {
                reply_error(
                    &conn,
                    &hdr,
                    "org.freedesktop.DBus.Error.UnknownObject",
                    &format!("Unknown object '{path}'."),
                )
                .await;
            }
            _ => {
                reply_error(
                    &conn,
                    &hdr,
                    "org.freedesktop.DBus.Error.UnknownMethod",
                    "nope",
                )
                .await;
            }
        }
    }
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_ctl(address: &str, args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_bluechictl"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", address)
        .output()
        .unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bluechictl_against_fake_controller() {
    let bus = start_bus();
    let conn = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name("org.eclipse.bluechi")
        .unwrap()
        .build()
        .await
        .unwrap();
    tokio::spawn(serve(conn));
    let addr = bus.address.clone();
    let run = |args: &'static [&'static str]| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || run_ctl(&addr, args))
    };

    let o = run(&["status"]).await.unwrap();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        "NODE                          | STATE     | IP                      | LAST SEEN                   \n\
         ==========================================================================================\n\
         main                          | online    | ::ffff:10.89.1.29       | now                         \n\
         worker-2                      | offline   |                         | never                       \n"
    );

    let o = run(&["status", "ghost"]).await.unwrap();
    assert_eq!(
        (o.code, o.stderr.as_str(), o.stdout.as_str()),
        (1, "Node ghost not found\n", "")
    );

    let o = run(&["status", "main", "target.service", "missing.service"])
        .await
        .unwrap();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        "UNIT\t\t| LOADED\t| ACTIVE\t| SUBSTATE\t| FREEZERSTATE\t| ENABLED\t|\n\
         ------------------------------------------------------------------------------------------------\n\
         target.service\t| loaded\t| failed\t| failed\t| running\t| (null)\t|\n"
    );
    assert_eq!(o.stderr, "Unit missing.service could not be found.\n");

    let o = run(&["status", "ghost", "x.service"]).await.unwrap();
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        "Failed to issue call: Unknown object '/org/eclipse/bluechi/node/ghost'.\n\
         Failed to get status of unit x.service on node ghost - Invalid request descriptor\n"
    );

    let o = run(&["start", "main", "source.service"]).await.unwrap();
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "Unit source.service StartUnit operation result: done\n")
    );

    let o = run(&["start", "ghost", "source.service"]).await.unwrap();
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        "Failed to issue method call: Unknown object '/org/eclipse/bluechi/node/ghost'.\n"
    );

    let o = run(&["version"]).await.unwrap();
    assert_eq!(
        o.stdout,
        format!("bluechictl version {}\n", bluechi_core::VERSION)
    );

    let o = run(&["start", "main"]).await.unwrap();
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "Too few arguments for method start\n")
    );

    let o = run(&["stop", "a", "b", "-w"]).await.unwrap();
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "Unsupported option 'watch' for method 'stop'\n")
    );

    let o = run(&["frobnicate"]).await.unwrap();
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr, "Method frobnicate not found\n");
    assert!(o.stdout.starts_with("bluechictl is a convenience CLI tool"));
}
