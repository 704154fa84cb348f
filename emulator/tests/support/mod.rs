//! Shared pieces of the emulator's end-to-end tests: a private dbus-daemon (the test kit's),
//! the emulator binary, zbus clients (over the bus or the private socket).
#![allow(dead_code)]

use bluechi_testkit::bus::PrivateBus;
use bluechi_testkit::poll;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;
use zbus::Connection;

pub const DEST: &str = "org.freedesktop.systemd1";
pub const MANAGER: &str = "/org/freedesktop/systemd1";
pub const IFACE_MANAGER: &str = "org.freedesktop.systemd1.Manager";
pub const IFACE_PROPS: &str = "org.freedesktop.DBus.Properties";
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Kills the process on drop so a failing test leaves nothing behind.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private dbus-daemon in `dir` (the test kit's).
pub fn start_bus(dir: &Path) -> PrivateBus {
    PrivateBus::start(dir).unwrap_or_else(|e| panic!("{e}"))
}

/// A temp dir with `units` written to `DIR/units`.
pub fn unit_dir(units: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit_dir = dir.path().join("units");
    std::fs::create_dir(&unit_dir).expect("mkdir units");
    for (name, text) in units {
        std::fs::write(unit_dir.join(name), text).expect("write unit");
    }
    (dir, unit_dir)
}

pub fn emulator(args: &[&std::ffi::OsStr]) -> Guard {
    Guard(
        Command::new(env!("CARGO_BIN_EXE_systemd-emulator"))
            .args(args)
            .spawn()
            .expect("spawn emulator"),
    )
}

pub async fn wait_for_name(conn: &Connection) {
    let dbus = zbus::fdo::DBusProxy::new(conn).await.expect("DBus proxy");
    let name = zbus::names::BusName::try_from(DEST).expect("valid name");
    wait_until(&format!("the emulator to acquire {DEST}"), || async {
        dbus.name_has_owner(name.clone()).await.unwrap_or(false)
    })
    .await;
}

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub _bus: PrivateBus,
    pub emulator: Guard,
    pub conn: Connection,
}

/// A private bus with the emulator serving `units` on it; `extra` are more emulator flags.
pub async fn setup(units: &[(&str, &str)], extra: &[&str]) -> Setup {
    let (dir, units) = unit_dir(units);
    let bus = start_bus(dir.path());
    let address = bus.address().to_string();
    let runtime = dir.path().join("run");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--unit-dir".as_ref(),
        units.as_os_str(),
        "--bus-address".as_ref(),
        address.as_ref(),
        "--runtime-dir".as_ref(),
        runtime.as_os_str(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let emulator = emulator(&args);
    let conn = zbus::connection::Builder::address(address.as_str())
        .expect("address")
        .build()
        .await
        .expect("connect");
    wait_for_name(&conn).await;
    Setup {
        dir,
        _bus: bus,
        emulator,
        conn,
    }
}

/// Calls a method; on p2p connections `dest` is ignored by the peer.
pub async fn call_msg<B>(
    conn: &Connection,
    path: &str,
    iface: &str,
    method: &str,
    body: &B,
) -> zbus::Result<zbus::Message>
where
    B: serde::Serialize + zvariant::DynamicType,
{
    let dest = if conn.unique_name().is_some() {
        Some(DEST)
    } else {
        None
    };
    conn.call_method(dest, path, Some(iface), method, body)
        .await
}

pub async fn call<B, R>(
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
    call_msg(conn, path, iface, method, body)
        .await?
        .body()
        .deserialize::<R>()
}

/// (error name, message) of a failed call; panics if the call succeeded.
pub fn method_error<T: std::fmt::Debug>(r: zbus::Result<T>) -> (String, String) {
    match r {
        Err(zbus::Error::MethodError(name, msg, _)) => (name.to_string(), msg.unwrap_or_default()),
        other => panic!("expected a D-Bus error, got {other:?}"),
    }
}

pub async fn get_prop(
    conn: &Connection,
    path: &str,
    iface: &str,
    name: &str,
) -> zvariant::OwnedValue {
    call(conn, path, IFACE_PROPS, "Get", &(iface, name))
        .await
        .unwrap_or_else(|e| panic!("Get {iface}.{name} on {path}: {e}"))
}

/// `StartUnit(unit, "replace")`; panics if the call fails.
pub async fn start_unit(conn: &Connection, unit: &str) -> zvariant::OwnedObjectPath {
    call(
        conn,
        MANAGER,
        IFACE_MANAGER,
        "StartUnit",
        &(unit, "replace"),
    )
    .await
    .unwrap_or_else(|e| panic!("StartUnit {unit}: {e}"))
}

/// The unit object's ActiveState, `None` if it cannot be read as a string.
pub async fn active_state(conn: &Connection, path: &str) -> Option<String> {
    String::try_from(get_prop(conn, path, "org.freedesktop.systemd1.Unit", "ActiveState").await)
        .ok()
}

/// Polls `f` until it is true or the deadline passes.
pub async fn wait_until<F, Fut>(what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll::until(what, DEADLINE, f)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits for the emulator to exit; `what` says after what, for the message.
pub async fn wait_exit(emu: &mut Guard, what: &str) -> std::process::ExitStatus {
    poll::until(format!("the emulator to exit {what}"), DEADLINE, || {
        std::future::ready(emu.0.try_wait().expect("try_wait"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Whether `pid` is gone (a zombie counts as gone) within the deadline.
pub fn process_gone(pid: u32) -> bool {
    poll::until_blocking(format!("process {pid} to go"), DEADLINE, || {
        // A zombie still has a /proc entry; state Z counts as gone.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(s) => s
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        }
    })
    .is_ok()
}
