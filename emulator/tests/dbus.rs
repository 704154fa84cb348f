//! End to end: a private dbus-daemon, the emulator binary, and a zbus client.

mod support;

use futures_util::StreamExt;
use std::collections::HashMap;
use support::*;
use zbus::Connection;
use zvariant::{OwnedObjectPath, OwnedValue};

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

/// `PropertiesChanged` signals of the object at `path` (the emulator sends them on the bus only
/// while someone is subscribed).
async fn properties_changed(
    conn: &zbus::Connection,
    path: &str,
) -> zbus::proxy::SignalStream<'static> {
    let props = zbus::Proxy::new(conn, DEST, path.to_string(), IFACE_PROPS)
        .await
        .expect("proxy");
    props
        .receive_signal("PropertiesChanged")
        .await
        .expect("PropertiesChanged stream")
}

/// `JobRemoved` signals, with the emulator told to send them (`Subscribe`).
async fn job_removed(conn: &zbus::Connection) -> zbus::proxy::SignalStream<'static> {
    let manager = zbus::Proxy::new(conn, DEST, MANAGER, IFACE_MANAGER)
        .await
        .expect("proxy");
    let removed = manager
        .receive_signal("JobRemoved")
        .await
        .expect("JobRemoved stream");
    let () = call(conn, MANAGER, IFACE_MANAGER, "Subscribe", &())
        .await
        .expect("Subscribe");
    removed
}

#[tokio::test(flavor = "current_thread")]
async fn start_stop_over_dbus() {
    let Setup { dir: _dir, _bus, mut emulator, conn } = setup(&[
        ("oneshot.service", "[Unit]\nDescription=Reference oneshot unit\n[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=yes\n"),
        ("sleeper.service", "[Service]\nExecStart=sleep 300\n"),
    ], &[])
    .await;

    let mut removed = job_removed(&conn).await;

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
    let status = wait_exit(&mut emulator, "on SIGTERM").await;
    assert!(status.success(), "exit status {status}");
    assert!(process_gone(pid), "sleeper {pid} survived the emulator");
}

#[tokio::test(flavor = "current_thread")]
async fn failing_target_shows_running_then_failed_and_dep_stops() {
    let Setup { dir: _dir, _bus, emulator: _emulator, conn } = setup(&[
        ("target.service", "[Unit]\nDescription=Target service\n[Service]\nType=simple\nExecStart=/bin/false\nRemainAfterExit=yes\n"),
        ("bluechi-dep@.service", "[Unit]\nBindsTo=%i.service\nAfter=%i.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStop=true\n"),
    ], &[])
    .await;
    let target = "/org/freedesktop/systemd1/unit/target_2eservice";
    let mut changes = properties_changed(&conn, target).await;
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
    wait_until("the dep to stop", || async {
        prop(&conn, dep, "ActiveState").await == "inactive"
    })
    .await;
}

async fn service_prop_u32(conn: &Connection, path: &str, name: &str) -> u32 {
    let v: OwnedValue = call(
        conn,
        path,
        "org.freedesktop.DBus.Properties",
        "Get",
        &("org.freedesktop.systemd1.Service", name),
    )
    .await
    .expect("Properties.Get");
    u32::try_from(v).expect("u32 property")
}

#[tokio::test(flavor = "current_thread")]
async fn notify_forking_and_exec_services_with_real_processes() {
    let Setup { dir: _dir, _bus, emulator: _emulator, conn } = setup(&[
        ("n.service", "[Service]\nType=notify\nNotifyAccess=all\nExecStart=/bin/sh -c \"sleep 0.2; systemd-notify --ready --status=serving; exec sleep 300\"\n"),
        ("f.service", "[Service]\nType=forking\nExecStart=/bin/sh -c \"sleep 300 &\"\n"),
        ("e.service", "[Service]\nType=exec\nExecStart=/nonexistent/prog\n"),
        ("w.service", "[Service]\nType=oneshot\nRemainAfterExit=yes\nWorkingDirectory=/tmp\nEnvironment=X=1\nExecStart=/bin/sh -c 'test \"$PWD\" = /tmp'\nExecReload=/bin/sh -c 'test \"$X\" = 1'\n"),
    ], &[])
    .await;
    let mut removed = job_removed(&conn).await;
    let start = |name: &'static str| {
        let conn = conn.clone();
        async move {
            call::<_, OwnedObjectPath>(
                &conn,
                MANAGER,
                IFACE_MANAGER,
                "StartUnit",
                &(name, "replace"),
            )
            .await
            .expect("StartUnit")
        }
    };

    // READY=1 from a child of the main process (NotifyAccess=all) completes the start.
    let job = start("n.service").await;
    assert_eq!(wait_job_removed(&mut removed, &job).await, "done");
    let n = "/org/freedesktop/systemd1/unit/n_2eservice";
    assert_eq!(prop(&conn, n, "ActiveState").await, "active");
    assert_eq!(prop(&conn, n, "SubState").await, "running");

    // The forking parent exits; the backgrounded sleep becomes the main process.
    let job = start("f.service").await;
    assert_eq!(wait_job_removed(&mut removed, &job).await, "done");
    let f = "/org/freedesktop/systemd1/unit/f_2eservice";
    assert_eq!(prop(&conn, f, "SubState").await, "running");
    let pid = service_prop_u32(&conn, f, "MainPID").await;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "sleep", "MainPID {pid} is not the daemon");
    let job: OwnedObjectPath = call(
        &conn,
        MANAGER,
        IFACE_MANAGER,
        "StopUnit",
        &("f.service", "replace"),
    )
    .await
    .expect("StopUnit");
    assert_eq!(wait_job_removed(&mut removed, &job).await, "done");
    assert!(process_gone(pid), "forked daemon {pid} survived the stop");

    let status: OwnedValue = call(
        &conn,
        n,
        "org.freedesktop.DBus.Properties",
        "Get",
        &("org.freedesktop.systemd1.Service", "StatusText"),
    )
    .await
    .expect("StatusText");
    assert_eq!(String::try_from(status).ok().as_deref(), Some("serving"));

    // Stop it here: the emulator is killed on drop and would leave the daemon behind.
    let npid = service_prop_u32(&conn, n, "MainPID").await;
    assert!(npid > 0, "notify service has no MainPID");
    let job: OwnedObjectPath = call(
        &conn,
        MANAGER,
        IFACE_MANAGER,
        "StopUnit",
        &("n.service", "replace"),
    )
    .await
    .expect("StopUnit n");
    assert_eq!(wait_job_removed(&mut removed, &job).await, "done");
    assert!(process_gone(npid), "notify daemon {npid} survived the stop");

    // WorkingDirectory= is applied; ExecReload= runs as a reload job.
    let job = start("w.service").await;
    assert_eq!(wait_job_removed(&mut removed, &job).await, "done");
    let job: OwnedObjectPath = call(
        &conn,
        MANAGER,
        IFACE_MANAGER,
        "ReloadUnit",
        &("w.service", "replace"),
    )
    .await
    .expect("ReloadUnit");
    assert_eq!(wait_job_removed(&mut removed, &job).await, "done");

    // Type=exec: a failed execve fails the start job.
    let job = start("e.service").await;
    assert_eq!(wait_job_removed(&mut removed, &job).await, "failed");
}

/// (ActiveState, SubState) of a Unit PropertiesChanged signal; `None` for other interfaces.
fn unit_state(msg: &zbus::Message) -> Option<(String, String)> {
    let (iface, changed, _): (String, HashMap<String, OwnedValue>, Vec<String>) =
        msg.body().deserialize().expect("PropertiesChanged body");
    if iface != "org.freedesktop.systemd1.Unit" {
        return None;
    }
    let get = |k: &str| {
        changed
            .get(k)
            .and_then(|v| String::try_from(v.clone()).ok())
            .unwrap_or_else(|| panic!("{k} missing from a Unit PropertiesChanged"))
    };
    Some((get("ActiveState"), get("SubState")))
}

/// Calls RestartUnit on `unit` and returns the distinct states its PropertiesChanged signals
/// went through, starting with the state before the restart (coalescing may repeat a state;
/// a client only sees changes). Reads until `want.len()` distinct states are seen (or the
/// deadline), after the restart job was removed with `done`.
async fn restart_states(
    conn: &Connection,
    removed: &mut zbus::proxy::SignalStream<'_>,
    unit: &str,
    want: &[(&str, &str)],
) -> Vec<(String, String)> {
    let path = systemd_emulator::names::unit_path(unit);
    let mut changes = properties_changed(conn, &path).await;
    let mut seen = vec![(
        prop(conn, &path, "ActiveState").await,
        prop(conn, &path, "SubState").await,
    )];
    let job: OwnedObjectPath = call(
        conn,
        MANAGER,
        IFACE_MANAGER,
        "RestartUnit",
        &(unit, "replace"),
    )
    .await
    .unwrap_or_else(|e| panic!("RestartUnit {unit}: {e}"));
    assert_eq!(wait_job_removed(removed, &job).await, "done", "{unit}");
    let collect = async {
        while seen.len() < want.len() {
            let Some(msg) = changes.next().await else {
                break;
            };
            if let Some(s) = unit_state(&msg) {
                if seen.last() != Some(&s) {
                    seen.push(s);
                }
            }
        }
    };
    // On timeout `seen` is what arrived; the caller's comparison reports it.
    let _ = tokio::time::timeout(DEADLINE, collect).await;
    seen
}

fn states(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, s)| (a.to_string(), s.to_string()))
        .collect()
}

/// systemd 252 (observed with `busctl monitor` during `systemctl restart`): a running unit
/// of any type goes through `inactive/dead` between its stop and its new start; an inactive
/// unit's restart is a start, a failed unit goes from `failed` straight to activating/active.
#[tokio::test(flavor = "current_thread")]
async fn restart_shows_inactive_dead_between_stop_and_start() {
    let Setup { dir: _dir, _bus, emulator: _emulator, conn } = setup(&[
        ("s.service", "[Service]\nExecStart=sleep 300\n"),
        ("r.service", "[Service]\nRemainAfterExit=yes\nExecStart=sleep 300\n"),
        ("e.service", "[Service]\nType=exec\nExecStart=sleep 300\n"),
        ("f.service", "[Service]\nType=forking\nExecStart=/bin/sh -c \"sleep 300 &\"\n"),
        ("n.service", "[Service]\nType=notify\nNotifyAccess=all\nExecStart=/bin/sh -c \"systemd-notify --ready; exec sleep 300\"\n"),
        ("o.service", "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"),
        ("i.service", "[Service]\nExecStart=sleep 300\n"),
        ("x.service", "[Service]\nType=exec\nExecStart=sleep 300\n"),
    ], &[])
    .await;
    let mut removed = job_removed(&conn).await;

    let down = [
        ("active", "running"),
        ("deactivating", "stop-sigterm"),
        ("inactive", "dead"),
    ];
    let simple = [&down[..], &[("active", "running")]].concat();
    let waits = [&down[..], &[("activating", "start"), ("active", "running")]].concat();
    let oneshot = [
        ("active", "exited"),
        ("inactive", "dead"),
        ("activating", "start"),
        ("active", "exited"),
    ];
    let cases: [(&str, &[(&str, &str)]); 6] = [
        ("s.service", &simple),
        ("r.service", &simple),
        ("e.service", &waits),
        ("f.service", &waits),
        ("n.service", &waits),
        ("o.service", &oneshot),
    ];
    for (unit, want) in cases {
        let job = start_unit(&conn, unit).await;
        assert_eq!(wait_job_removed(&mut removed, &job).await, "done", "{unit}");
        let seen = restart_states(&conn, &mut removed, unit, want).await;
        assert_eq!(seen, states(want), "restart of {unit}");
    }

    let want = [("inactive", "dead"), ("active", "running")];
    let seen = restart_states(&conn, &mut removed, "i.service", &want).await;
    assert_eq!(seen, states(&want), "restart of inactive i.service");

    let job = start_unit(&conn, "x.service").await;
    assert_eq!(wait_job_removed(&mut removed, &job).await, "done");
    let x = systemd_emulator::names::unit_path("x.service");
    let pid = service_prop_u32(&conn, &x, "MainPID").await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL x.service's main process");
    wait_until("x.service failed", || async {
        prop(&conn, &x, "ActiveState").await == "failed"
    })
    .await;
    let want = [
        ("failed", "failed"),
        ("activating", "start"),
        ("active", "running"),
    ];
    let seen = restart_states(&conn, &mut removed, "x.service", &want).await;
    assert_eq!(seen, states(&want), "restart of failed x.service");

    // Stop what runs: the emulator is killed on drop and would leave the daemons behind.
    for unit in ["s", "r", "e", "f", "n", "i", "x"] {
        let job: OwnedObjectPath = call(
            &conn,
            MANAGER,
            IFACE_MANAGER,
            "StopUnit",
            &(format!("{unit}.service"), "replace"),
        )
        .await
        .expect("StopUnit");
        assert_eq!(wait_job_removed(&mut removed, &job).await, "done");
    }
}
