//! End to end: a private dbus-daemon, the emulator binary, and a zbus client.

use futures_util::StreamExt;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zbus::Connection;
use zvariant::{OwnedObjectPath, OwnedValue};

const DEST: &str = "org.freedesktop.systemd1";
const MANAGER: &str = "/org/freedesktop/systemd1";
const IFACE_MANAGER: &str = "org.freedesktop.systemd1.Manager";
const DEADLINE: Duration = Duration::from_secs(10);

/// Kills the process on drop so a failing test leaves nothing behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_bus(dir: &Path) -> (Guard, String) {
    let config = dir.join("bus.conf");
    let socket = dir.join("bus.sock");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
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
    .expect("write bus config");
    let mut child = Command::new("dbus-daemon")
        .arg("--nofork")
        .arg("--print-address")
        .arg(format!("--config-file={}", config.display()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("dbus-daemon must be installed");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read bus address");
    (Guard(child), line.trim().to_string())
}

async fn wait_for_name(conn: &Connection) {
    let dbus = zbus::fdo::DBusProxy::new(conn).await.expect("DBus proxy");
    let start = Instant::now();
    loop {
        let name = zbus::names::BusName::try_from(DEST).expect("valid name");
        if dbus.name_has_owner(name).await.unwrap_or(false) {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "emulator never acquired {DEST}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn call<B, R>(
    conn: &Connection,
    path: &str,
    iface: &str,
    method: &str,
    body: &B,
) -> zbus::Result<R>
where
    B: serde::Serialize + zvariant::DynamicType,
    R: for<'d> serde::Deserialize<'d> + zvariant::Type,
{
    let reply = conn
        .call_method(Some(DEST), path, Some(iface), method, body)
        .await?;
    reply.body().deserialize::<R>()
}

async fn prop(conn: &Connection, path: &str, name: &str) -> String {
    let v: OwnedValue = call(
        conn,
        path,
        "org.freedesktop.DBus.Properties",
        "Get",
        &("org.freedesktop.systemd1.Unit", name),
    )
    .await
    .expect("Properties.Get");
    String::try_from(v).expect("string property")
}

async fn wait_job_removed(
    stream: &mut zbus::proxy::SignalStream<'_>,
    job: &OwnedObjectPath,
) -> String {
    let fut = async {
        while let Some(msg) = stream.next().await {
            let (_, path, _, result): (u32, OwnedObjectPath, String, String) =
                msg.body().deserialize().expect("JobRemoved body");
            if &path == job {
                return result;
            }
        }
        panic!("signal stream ended");
    };
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("JobRemoved within deadline")
}

fn process_gone(pid: u32) -> bool {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

struct Setup {
    _dir: tempfile::TempDir,
    _bus: Guard,
    emulator: Guard,
    conn: Connection,
}

/// A private bus with the emulator serving `units` on it.
async fn setup(units: &[(&str, &str)]) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit_dir = dir.path().join("units");
    std::fs::create_dir(&unit_dir).expect("mkdir units");
    for (name, text) in units {
        std::fs::write(unit_dir.join(name), text).expect("write unit");
    }
    let (bus, address) = start_bus(dir.path());
    let emulator = Guard(
        Command::new(env!("CARGO_BIN_EXE_systemd-emulator"))
            .arg("--unit-dir")
            .arg(&unit_dir)
            .arg("--bus-address")
            .arg(&address)
            .spawn()
            .expect("spawn emulator"),
    );
    let conn = zbus::connection::Builder::address(address.as_str())
        .expect("address")
        .build()
        .await
        .expect("connect");
    wait_for_name(&conn).await;
    Setup {
        _dir: dir,
        _bus: bus,
        emulator,
        conn,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn start_stop_over_dbus() {
    let Setup { _dir, _bus, mut emulator, conn } = setup(&[
        ("oneshot.service", "[Unit]\nDescription=Reference oneshot unit\n[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=yes\n"),
        ("sleeper.service", "[Service]\nExecStart=sleep 300\n"),
    ])
    .await;

    let manager = zbus::Proxy::new(&conn, DEST, MANAGER, IFACE_MANAGER)
        .await
        .expect("proxy");
    let mut removed = manager
        .receive_signal("JobRemoved")
        .await
        .expect("JobRemoved stream");
    let () = call(&conn, MANAGER, IFACE_MANAGER, "Subscribe", &())
        .await
        .expect("Subscribe");

    let job: OwnedObjectPath = call(
        &conn,
        MANAGER,
        IFACE_MANAGER,
        "StartUnit",
        &("oneshot.service", "replace"),
    )
    .await
    .expect("StartUnit");
    assert_eq!(wait_job_removed(&mut removed, &job).await, "done");
    let unit = "/org/freedesktop/systemd1/unit/oneshot_2eservice";
    assert_eq!(prop(&conn, unit, "ActiveState").await, "active");
    assert_eq!(prop(&conn, unit, "SubState").await, "exited");
    let all: HashMap<String, OwnedValue> = call(
        &conn,
        unit,
        "org.freedesktop.DBus.Properties",
        "GetAll",
        &("",),
    )
    .await
    .expect("GetAll");
    for key in [
        "Id",
        "LoadState",
        "ActiveState",
        "SubState",
        "FreezerState",
        "UnitFileState",
    ] {
        assert!(all.contains_key(key), "GetAll(\"\") lacks {key}");
    }
    assert_eq!(
        all.get("UnitFileState")
            .and_then(|v| String::try_from(v.clone()).ok())
            .as_deref(),
        Some("static")
    );

    let err = call::<_, OwnedObjectPath>(
        &conn,
        MANAGER,
        IFACE_MANAGER,
        "StartUnit",
        &("missing.service", "replace"),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("Unit missing.service not found."),
        "{err}"
    );
    let err = call::<_, ()>(
        &conn,
        "/org/freedesktop/systemd1/job/999",
        "org.freedesktop.systemd1.Job",
        "Cancel",
        &(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("UnknownObject"), "{err}");

    let job: OwnedObjectPath = call(
        &conn,
        MANAGER,
        IFACE_MANAGER,
        "StartUnit",
        &("sleeper.service", "replace"),
    )
    .await
    .expect("StartUnit sleeper");
    assert_eq!(wait_job_removed(&mut removed, &job).await, "done");
    let sleeper = "/org/freedesktop/systemd1/unit/sleeper_2eservice";
    let pid: u32 = {
        let v: OwnedValue = call(
            &conn,
            sleeper,
            "org.freedesktop.DBus.Properties",
            "Get",
            &("org.freedesktop.systemd1.Service", "MainPID"),
        )
        .await
        .expect("MainPID");
        u32::try_from(v).expect("u32 MainPID")
    };
    assert!(pid > 0);

    let job: OwnedObjectPath = call(
        &conn,
        MANAGER,
        IFACE_MANAGER,
        "StopUnit",
        &("oneshot.service", "replace"),
    )
    .await
    .expect("StopUnit");
    assert_eq!(wait_job_removed(&mut removed, &job).await, "done");
    assert_eq!(prop(&conn, unit, "ActiveState").await, "inactive");
    assert_eq!(prop(&conn, unit, "SubState").await, "dead");

    // SIGTERM: the emulator stops its children and exits 0.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(emulator.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = emulator.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "emulator did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");
    assert!(process_gone(pid), "sleeper {pid} survived the emulator");
}

#[tokio::test(flavor = "current_thread")]
async fn failing_target_shows_running_then_failed_and_dep_stops() {
    let Setup { _dir, _bus, emulator: _emulator, conn } = setup(&[
        ("target.service", "[Unit]\nDescription=Target service\n[Service]\nType=simple\nExecStart=/bin/false\nRemainAfterExit=yes\n"),
        ("bluechi-dep@.service", "[Unit]\nBindsTo=%i.service\nAfter=%i.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStop=true\n"),
    ])
    .await;
    let target = "/org/freedesktop/systemd1/unit/target_2eservice";
    let props = zbus::Proxy::new(&conn, DEST, target, "org.freedesktop.DBus.Properties")
        .await
        .expect("proxy");
    let mut changes = props
        .receive_signal("PropertiesChanged")
        .await
        .expect("PropertiesChanged stream");
    // Like systemd, the emulator only signals on the bus while a client is subscribed.
    let () = call(&conn, MANAGER, IFACE_MANAGER, "Subscribe", &())
        .await
        .expect("Subscribe");
    let job: OwnedObjectPath = call(
        &conn,
        MANAGER,
        IFACE_MANAGER,
        "StartUnit",
        &("bluechi-dep@target.service", "replace"),
    )
    .await
    .expect("StartUnit dep");
    assert!(job.as_str().starts_with("/org/freedesktop/systemd1/job/"));

    let mut seen = Vec::new();
    let collect = async {
        while let Some(msg) = changes.next().await {
            let (iface, changed, _): (String, HashMap<String, OwnedValue>, Vec<String>) =
                msg.body().deserialize().expect("body");
            if iface != "org.freedesktop.systemd1.Unit" {
                continue;
            }
            let get = |k: &str| {
                changed
                    .get(k)
                    .and_then(|v| String::try_from(v.clone()).ok())
                    .expect("state in signal")
            };
            seen.push((get("ActiveState"), get("SubState")));
            if seen.last().is_some_and(|(a, _)| a == "failed") {
                return;
            }
        }
    };
    tokio::time::timeout(DEADLINE, collect)
        .await
        .expect("target reaches failed");
    assert_eq!(
        seen,
        vec![
            ("active".to_string(), "running".to_string()),
            ("failed".to_string(), "failed".to_string())
        ]
    );

    let dep = "/org/freedesktop/systemd1/unit/bluechi_2ddep_40target_2eservice";
    let start = Instant::now();
    loop {
        if prop(&conn, dep, "ActiveState").await == "inactive" {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "dep never stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
