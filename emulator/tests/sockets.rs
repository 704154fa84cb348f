//! Socket activation with real processes: traffic on a .socket's listening socket starts its
//! service, which finds the socket as fd 3 with sd_listen_fds()'s variables.

mod support;

use std::os::unix::fs::PermissionsExt;
use support::*;
use zvariant::{OwnedObjectPath, OwnedValue};

const SOCK_PATH: &str = "/org/freedesktop/systemd1/unit/a_2esocket";
const SVC_PATH: &str = "/org/freedesktop/systemd1/unit/a_2eservice";
const IFACE_UNIT: &str = "org.freedesktop.systemd1.Unit";

async fn state(conn: &zbus::Connection, path: &str) -> (String, String) {
    let get = |name: &'static str| async move {
        let v: OwnedValue = get_prop(conn, path, IFACE_UNIT, name).await;
        String::try_from(v).unwrap_or_default()
    };
    (get("ActiveState").await, get("SubState").await)
}

async fn wait_state(conn: &zbus::Connection, path: &str, want: (&str, &str)) {
    wait_until(&format!("{path} {want:?}"), || async {
        let (a, s) = state(conn, path).await;
        (a.as_str(), s.as_str()) == want
    })
    .await;
}

#[tokio::test]
async fn traffic_starts_the_service_with_the_listening_fd() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sock = tmp.path().join("sub/a.sock");
    let seen = tmp.path().join("seen");
    let script = tmp.path().join("check.sh");
    std::fs::write(
        &script,
        format!(
            "test \"$LISTEN_FDS\" = 1 || exit 3\n\
             test \"$LISTEN_PID\" = $$ || exit 4\n\
             test \"$LISTEN_FDNAMES\" = a.socket || exit 5\n\
             test -S /proc/self/fd/3 || exit 6\n\
             echo ok > {}\nexec sleep 100\n",
            seen.display()
        ),
    )
    .expect("write script");
    let socket_unit = format!(
        "[Socket]\nListenStream={}\nSocketMode=0600\nRemoveOnStop=yes\n",
        sock.display()
    );
    let service_unit = format!("[Service]\nExecStart=/bin/sh {}\n", script.display());
    let s = setup(
        &[("a.socket", &socket_unit), ("a.service", &service_unit)],
        &[],
    )
    .await;
    let c = &s.conn;
    let _: OwnedObjectPath = call(
        c,
        MANAGER,
        IFACE_MANAGER,
        "StartUnit",
        &("a.socket", "replace"),
    )
    .await
    .expect("StartUnit a.socket");
    wait_state(c, SOCK_PATH, ("active", "listening")).await;
    let mode = std::fs::metadata(&sock)
        .expect("socket file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o600);
    assert_eq!(state(c, SVC_PATH).await.0, "inactive");

    let _client = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    wait_state(c, SVC_PATH, ("active", "running")).await;
    wait_state(c, SOCK_PATH, ("active", "running")).await;
    wait_until("service saw its fd", || async { seen.exists() }).await;

    // Stopping the socket closes and removes it but leaves the service running.
    let _: OwnedObjectPath = call(
        c,
        MANAGER,
        IFACE_MANAGER,
        "StopUnit",
        &("a.socket", "replace"),
    )
    .await
    .expect("StopUnit a.socket");
    wait_state(c, SOCK_PATH, ("inactive", "dead")).await;
    wait_until("socket file removed", || async { !sock.exists() }).await;
    assert_eq!(
        state(c, SVC_PATH).await,
        ("active".into(), "running".into())
    );
    let _: OwnedObjectPath = call(
        c,
        MANAGER,
        IFACE_MANAGER,
        "StopUnit",
        &("a.service", "replace"),
    )
    .await
    .expect("StopUnit a.service");
    wait_state(c, SVC_PATH, ("inactive", "dead")).await;
}

#[tokio::test]
async fn bind_failure_fails_the_socket_with_resources() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A regular file where the socket's directory should be: bind cannot succeed.
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, "").expect("write");
    let socket_unit = format!("[Socket]\nListenStream={}/a.sock\n", blocker.display());
    let s = setup(
        &[
            ("a.socket", &socket_unit),
            ("a.service", "[Service]\nExecStart=/bin/sleep 100\n"),
        ],
        &[],
    )
    .await;
    let c = &s.conn;
    let _: OwnedObjectPath = call(
        c,
        MANAGER,
        IFACE_MANAGER,
        "StartUnit",
        &("a.socket", "replace"),
    )
    .await
    .expect("StartUnit a.socket");
    wait_state(c, SOCK_PATH, ("failed", "failed")).await;
}
