//! The daemon shell: the private peer-to-peer socket and orderly shutdown on SIGTERM.

mod support;

use bluechi_testkit::poll;
use std::time::{Duration, Instant};
use support::*;
use zvariant::OwnedObjectPath;

/// A zbus client on the private socket. Every message there carries systemd's well-known name
/// as sender, which zbus cannot parse, so it goes through the relay our agent uses.
async fn connect_private(path: &std::path::Path) -> zbus::Connection {
    // The socket file appears just before the emulator listens on it: retry refusals.
    poll::until("the private socket to answer", DEADLINE, || async {
        bluechi_core::sd_private::connect(path).await.map(Some)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A raw connection to the private socket, retried until the emulator listens.
fn connect_raw(path: &std::path::Path) -> std::os::unix::net::UnixStream {
    poll::until_blocking("the private socket to accept", DEADLINE, || {
        std::os::unix::net::UnixStream::connect(path).map(Some)
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A bare D-Bus peer on the private socket, to see the SENDER field that the relay drops.
struct RawPeer(std::os::unix::net::UnixStream);

impl RawPeer {
    fn connect(path: &std::path::Path) -> RawPeer {
        use std::io::{BufRead, Write};
        let s = connect_raw(path);
        s.set_read_timeout(Some(DEADLINE)).expect("read timeout");
        let uid: String = nix::unistd::geteuid()
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut w = &s;
        write!(w, "\0AUTH EXTERNAL {uid}\r\n").expect("AUTH");
        let mut line = String::new();
        std::io::BufReader::new(&s)
            .read_line(&mut line)
            .expect("auth reply");
        assert!(line.starts_with("OK "), "auth reply {line:?}");
        w.write_all(b"BEGIN\r\n").expect("BEGIN");
        RawPeer(s)
    }

    fn call<B: serde::Serialize + zvariant::DynamicType>(&mut self, member: &str, body: &B) {
        use std::io::Write;
        let m = zbus::Message::method_call(MANAGER, member)
            .and_then(|b| b.interface(IFACE_MANAGER))
            .and_then(|b| b.destination(DEST))
            .and_then(|b| b.build(body))
            .expect("method call");
        self.0.write_all(m.data()).expect("send call");
    }

    fn read(&mut self) -> Vec<u8> {
        use std::io::Read;
        let mut buf = vec![0u8; 16];
        self.0.read_exact(&mut buf).expect("message header");
        let len = bluechi_core::wire::message_len(&buf).expect("valid header");
        buf.resize(len, 0);
        self.0.read_exact(&mut buf[16..]).expect("message");
        buf
    }
}

/// The object path at `at` (u32 length, bytes) in a little-endian message.
fn path_at(m: &[u8], at: usize) -> String {
    let len = u32::from_le_bytes(m[at..at + 4].try_into().expect("4 bytes")) as usize;
    String::from_utf8_lossy(&m[at + 4..at + 4 + len]).into_owned()
}

fn body_start(m: &[u8]) -> usize {
    let fields = u32::from_le_bytes(m[12..16].try_into().expect("4 bytes")) as usize;
    (16 + fields).div_ceil(8) * 8
}

/// Reads messages until JobRemoved for `job`; returns that message.
fn wait_job_removed(peer: &mut RawPeer, job: &str) -> Vec<u8> {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        let m = peer.read();
        let member = bluechi_core::wire::string_field(&m, 3);
        let is_removed = m[1] == 4 && member.as_deref() == Some("JobRemoved");
        if is_removed && path_at(&m, body_start(&m) + 4) == job {
            return m;
        }
    }
    panic!("no JobRemoved for {job}");
}

/// The manager's `Version` property, read over `conn` (a private-socket connection).
async fn manager_version(conn: &zbus::Connection) -> String {
    let v: zvariant::OwnedValue = call(
        conn,
        MANAGER,
        IFACE_PROPS,
        "Get",
        &(IFACE_MANAGER, "Version"),
    )
    .await
    .expect("Version over the private socket");
    String::try_from(v).expect("Version s")
}

#[tokio::test(flavor = "current_thread")]
async fn private_socket_serves_calls_and_signals() {
    let (dir, units) = unit_dir(&[(
        "p.service",
        "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    )]);
    let sock = dir.path().join("private");
    let run = dir.path().join("run");
    let _emu = emulator(&[
        "--unit-dir".as_ref(),
        units.as_os_str(),
        "--no-bus".as_ref(),
        "--private-socket".as_ref(),
        sock.as_os_str(),
        "--runtime-dir".as_ref(),
        run.as_os_str(),
    ]);
    // zbus clients work through the relay.
    let conn = connect_private(&sock).await;
    assert_eq!(manager_version(&conn).await, "252");
    drop(conn);

    let mut peer = RawPeer::connect(&sock);
    let mut other = RawPeer::connect(&sock);
    peer.call("Subscribe", &());
    peer.call("StartUnit", &("p.service", "replace"));
    // Find the StartUnit reply (the second one) for the job; replies are stamped too.
    let mut replies = 0;
    let job = loop {
        let m = peer.read();
        if m[1] == 2 {
            assert_eq!(bluechi_core::wire::sender(&m).as_deref(), Some(DEST));
            replies += 1;
            if replies == 2 {
                break path_at(&m, body_start(&m));
            }
        }
    };
    assert!(job.starts_with("/org/freedesktop/systemd1/job/"), "{job}");
    let removed = wait_job_removed(&mut peer, &job);
    assert_eq!(
        bluechi_core::wire::sender(&removed).as_deref(),
        Some(DEST),
        "sender missing"
    );
    // Signals go to every private connection, subscribed or not, as systemd does.
    let removed = wait_job_removed(&mut other, &job);
    assert_eq!(
        bluechi_core::wire::sender(&removed).as_deref(),
        Some(DEST),
        "sender missing"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn sigterm_stops_units_in_order_then_exits() {
    let (dir, _) = unit_dir(&[]);
    let marker = dir.path().join("stopped");
    let unit = format!(
        "[Service]\nExecStart=/bin/sleep 300\nExecStop=/bin/sh -c 'echo bye > {}; kill $MAINPID'\n",
        marker.display()
    );
    let s = setup(&[("long.service", unit.as_str())], &[]).await;
    let c = &s.conn;
    start_unit(c, "long.service").await;
    let path = "/org/freedesktop/systemd1/unit/long_2eservice";
    let pid = poll::until("long.service's main PID", DEADLINE, || async {
        let v = get_prop(c, path, "org.freedesktop.systemd1.Service", "MainPID").await;
        Some(u32::try_from(v).expect("MainPID u32")).filter(|&pid| pid != 0)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut emu = s.emulator;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(emu.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM the emulator");
    let status = wait_exit(&mut emu, "after SIGTERM").await;
    assert!(status.success(), "exit status {status}");
    assert!(
        process_gone(pid),
        "service process {pid} survived the emulator"
    );
    let said = std::fs::read_to_string(&marker).expect("ExecStop ran at shutdown");
    assert_eq!(said.trim(), "bye");
}

#[tokio::test(flavor = "current_thread")]
async fn a_peer_that_never_reads_does_not_stall_the_others() {
    let (dir, units) = unit_dir(&[("t.target", "[Unit]\nDescription=t\n")]);
    let sock = dir.path().join("private");
    let run = dir.path().join("run");
    let _emu = emulator(&[
        "--unit-dir".as_ref(),
        units.as_os_str(),
        "--no-bus".as_ref(),
        "--private-socket".as_ref(),
        sock.as_os_str(),
        "--runtime-dir".as_ref(),
        run.as_os_str(),
    ]);
    let mut stuck = RawPeer::connect(&sock);
    stuck.call("Subscribe", &());
    let conn = connect_private(&sock).await;
    // Enough signals to fill the socket buffer and then the peer's queue several times over.
    for i in 0..600 {
        for member in ["StartUnit", "StopUnit"] {
            let answer = tokio::time::timeout(
                DEADLINE,
                call::<_, OwnedObjectPath>(
                    &conn,
                    MANAGER,
                    IFACE_MANAGER,
                    member,
                    &("t.target", "replace"),
                ),
            )
            .await;
            assert!(answer.is_ok(), "{member} #{i} got no answer in time");
        }
    }
    // The stuck peer was dropped: after what was buffered, its socket ends.
    use std::io::Read;
    let start = Instant::now();
    let mut buf = vec![0u8; 65536];
    loop {
        match stuck.0.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(start.elapsed() < DEADLINE, "stuck peer never disconnected"),
        }
    }
    assert!(start.elapsed() < DEADLINE, "stuck peer never disconnected");
}

/// Reads until the peer closes; true if that happened before `within`.
fn closed_within(s: &mut std::os::unix::net::UnixStream, within: Duration) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(within)).expect("read timeout");
    let mut buf = [0u8; 256];
    let start = Instant::now();
    while start.elapsed() < within {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
    false
}

#[tokio::test(flavor = "current_thread")]
async fn private_socket_caps_connections_and_times_out_handshakes() {
    let (dir, units) = unit_dir(&[]);
    let sock = dir.path().join("private");
    let run = dir.path().join("run");
    let _emu = emulator(&[
        "--unit-dir".as_ref(),
        units.as_os_str(),
        "--no-bus".as_ref(),
        "--private-socket".as_ref(),
        sock.as_os_str(),
        "--runtime-dir".as_ref(),
        run.as_os_str(),
    ]);
    let first = connect_raw(&sock);
    let start = Instant::now();
    let mut silent = vec![first];
    while silent.len() < 256 {
        silent.push(std::os::unix::net::UnixStream::connect(&sock).expect("connect"));
    }
    let mut refused = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    assert!(
        closed_within(&mut refused, Duration::from_secs(3)),
        "connection over the cap was not refused"
    );
    // Peers that never authenticate are dropped after the handshake timeout.
    for s in &mut silent {
        assert!(
            closed_within(s, DEADLINE),
            "silent peer kept its connection"
        );
    }
    assert!(
        start.elapsed() >= Duration::from_secs(4),
        "handshake timeout too short"
    );
    // Their slots are free again.
    drop(RawPeer::connect(&sock));
}

/// A long-running service whose ExecStop= leaves a marker, and its unit text.
fn marked_service(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let marker = dir.join("stopped");
    let unit = format!(
        "[Service]\nExecStart=/bin/sleep 300\nExecStop=/bin/sh -c 'echo bye > {}; kill $MAINPID'\n",
        marker.display()
    );
    (marker, unit)
}

#[tokio::test(flavor = "current_thread")]
async fn losing_the_bus_stops_units_in_order() {
    let marker_dir = tempfile::tempdir().expect("tempdir");
    let (marker, unit) = marked_service(marker_dir.path());
    let s = setup(&[("long.service", unit.as_str())], &[]).await;
    start_unit(&s.conn, "long.service").await;
    let path = "/org/freedesktop/systemd1/unit/long_2eservice";
    wait_until("long.service active", || async {
        active_state(&s.conn, path)
            .await
            .is_some_and(|a| a == "active")
    })
    .await;
    let Setup {
        mut _bus,
        mut emulator,
        dir: _dir,
        ..
    } = s;
    _bus.kill();
    wait_exit(&mut emulator, "after losing the bus").await;
    let said = std::fs::read_to_string(&marker).expect("ExecStop ran after the bus went away");
    assert_eq!(said.trim(), "bye");
}

#[tokio::test(flavor = "current_thread")]
async fn losing_the_bus_keeps_the_private_socket_serving() {
    let (dir, units) = unit_dir(&[]);
    let mut bus = start_bus(dir.path());
    let address = bus.address().to_string();
    let sock = dir.path().join("private");
    let run = dir.path().join("run");
    let mut emu = emulator(&[
        "--unit-dir".as_ref(),
        units.as_os_str(),
        "--bus-address".as_ref(),
        address.as_ref(),
        "--private-socket".as_ref(),
        sock.as_os_str(),
        "--runtime-dir".as_ref(),
        run.as_os_str(),
    ]);
    let conn = zbus::connection::Builder::address(address.as_str())
        .expect("address")
        .build()
        .await
        .expect("connect");
    wait_for_name(&conn).await;
    drop(conn);
    bus.kill();
    let private = connect_private(&sock).await;
    // Well after the bus is gone, the private socket still answers.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(500) {
        let v: zvariant::OwnedValue = call(
            &private,
            MANAGER,
            IFACE_PROPS,
            "Get",
            &(IFACE_MANAGER, "Version"),
        )
        .await
        .expect("Version over the private socket after the bus went away");
        assert_eq!(String::try_from(v).expect("Version s"), "252");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        emu.0.try_wait().expect("try_wait").is_none(),
        "emulator exited"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn stop_kills_what_a_remain_after_exit_unit_left_behind() {
    let pid_dir = tempfile::tempdir().expect("tempdir");
    let pid_file = pid_dir.path().join("bg.pid");
    let unit = format!(
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'sleep 1000 & echo $! > {}'\n",
        pid_file.display()
    );
    let s = setup(&[("bg.service", unit.as_str())], &[]).await;
    start_unit(&s.conn, "bg.service").await;
    let path = "/org/freedesktop/systemd1/unit/bg_2eservice";
    let state = || async {
        let v = get_prop(
            &s.conn,
            path,
            "org.freedesktop.systemd1.Unit",
            "ActiveState",
        )
        .await;
        String::try_from(v).unwrap_or_default()
    };
    wait_until("bg.service active", || async { state().await == "active" }).await;
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(!process_gone_now(pid), "background sleep did not start");
    let _: OwnedObjectPath = call(
        &s.conn,
        MANAGER,
        IFACE_MANAGER,
        "StopUnit",
        &("bg.service", "replace"),
    )
    .await
    .expect("StopUnit");
    wait_until("bg.service inactive", || async {
        state().await == "inactive"
    })
    .await;
    assert!(process_gone(pid), "leftover sleep {pid} survived stop");
}

/// True if `pid` is not running (no entry, or a zombie) right now.
fn process_gone_now(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

#[tokio::test(flavor = "current_thread")]
async fn default_runtime_dir_is_removed_at_exit() {
    let (dir, units) = unit_dir(&[]);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir tmp");
    let sock = dir.path().join("private");
    let mut emu = Guard(
        std::process::Command::new(env!("CARGO_BIN_EXE_systemd-emulator"))
            .env("TMPDIR", &tmp)
            .arg("--unit-dir")
            .arg(&units)
            .arg("--no-bus")
            .arg("--private-socket")
            .arg(&sock)
            .spawn()
            .expect("spawn emulator"),
    );
    let conn = connect_private(&sock).await;
    let exec = vec![("/bin/true".to_string(), vec!["true".to_string()], false)];
    let props: Vec<(&str, zvariant::Value)> = vec![("ExecStart", zvariant::Value::new(exec))];
    let aux: Vec<(String, Vec<(String, zvariant::Value)>)> = Vec::new();
    let _: OwnedObjectPath = call(
        &conn,
        MANAGER,
        IFACE_MANAGER,
        "StartTransientUnit",
        &("run-y.service", "fail", &props, &aux),
    )
    .await
    .expect("StartTransientUnit");
    let runtime = tmp.join(format!("systemd-emulator.{}", emu.0.id()));
    assert!(runtime.is_dir(), "{} not created", runtime.display());
    drop(conn);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(emu.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM the emulator");
    wait_exit(&mut emu, "after SIGTERM").await;
    assert!(!runtime.exists(), "{} left behind", runtime.display());
}

type Change = (String, String, String);

async fn enable(conn: &zbus::Connection, unit: &str, runtime: bool) -> Vec<Change> {
    let (_, changes): (bool, Vec<Change>) = call(
        conn,
        MANAGER,
        IFACE_MANAGER,
        "EnableUnitFiles",
        &(vec![unit], runtime, false),
    )
    .await
    .unwrap_or_else(|e| panic!("EnableUnitFiles {unit} runtime={runtime}: {e}"));
    changes
}

async fn file_state(conn: &zbus::Connection, unit: &str) -> String {
    call(conn, MANAGER, IFACE_MANAGER, "GetUnitFileState", &(unit,))
        .await
        .unwrap_or_else(|e| panic!("GetUnitFileState {unit}: {e}"))
}

/// `systemctl enable --runtime` with `--unit-dir`: the link goes to the runtime directory
/// (`enabled-runtime`), not to the unit directory, and is gone after a restart of the
/// emulator, as /run is after a reboot; a plain `enable` persists.
#[tokio::test(flavor = "current_thread")]
async fn enable_runtime_goes_to_the_runtime_dir_and_not_beyond_exit() {
    let install = "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n";
    let (dir, units) = unit_dir(&[("a.service", install), ("b.service", install)]);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir tmp");
    let sock = dir.path().join("private");
    let spawn = || {
        Guard(
            std::process::Command::new(env!("CARGO_BIN_EXE_systemd-emulator"))
                .env("TMPDIR", &tmp)
                .arg("--unit-dir")
                .arg(&units)
                .arg("--no-bus")
                .arg("--private-socket")
                .arg(&sock)
                .spawn()
                .expect("spawn emulator"),
        )
    };
    let shown = |p: std::path::PathBuf| p.display().to_string();
    let mut emu = spawn();
    let conn = connect_private(&sock).await;
    let runtime = tmp.join(format!("systemd-emulator.{}", emu.0.id()));
    assert_eq!(
        enable(&conn, "a.service", true).await,
        vec![(
            "symlink".to_string(),
            shown(runtime.join("system/multi-user.target.wants/a.service")),
            shown(units.join("a.service")),
        )]
    );
    assert_eq!(file_state(&conn, "a.service").await, "enabled-runtime");
    let changes = enable(&conn, "b.service", false).await;
    assert_eq!(
        changes.first().map(|c| c.1.clone()),
        Some(shown(units.join("multi-user.target.wants/b.service")))
    );
    assert_eq!(file_state(&conn, "b.service").await, "enabled");
    drop(conn);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(emu.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM the emulator");
    wait_exit(&mut emu, "after SIGTERM").await;

    let emu = spawn();
    let conn = connect_private(&sock).await;
    assert_eq!(file_state(&conn, "a.service").await, "disabled");
    assert_eq!(file_state(&conn, "b.service").await, "enabled");
    drop(conn);
    drop(emu);

    // A user manager's runtime links go to RUNTIME/user, as systemd --user's do to
    // $XDG_RUNTIME_DIR/systemd/user.
    let run = dir.path().join("run");
    let usock = dir.path().join("user-private");
    let _user = Guard(
        std::process::Command::new(env!("CARGO_BIN_EXE_systemd-emulator"))
            .env("HOME", dir.path())
            .env_remove("XDG_RUNTIME_DIR")
            .arg("--user")
            .arg("--unit-dir")
            .arg(&units)
            .arg("--no-bus")
            .arg("--private-socket")
            .arg(&usock)
            .arg("--runtime-dir")
            .arg(&run)
            .spawn()
            .expect("spawn user emulator"),
    );
    let conn = connect_private(&usock).await;
    assert_eq!(
        enable(&conn, "a.service", true).await[0].1,
        shown(run.join("user/multi-user.target.wants/a.service"))
    );
    assert_eq!(file_state(&conn, "a.service").await, "enabled-runtime");
}

#[tokio::test(flavor = "current_thread")]
async fn pid_file_naming_a_foreign_process_is_ignored() {
    let pid_dir = tempfile::tempdir().expect("tempdir");
    let pid_file = pid_dir.path().join("d.pid");
    // The test runner is no process of the unit.
    let unit = format!(
        "[Service]\nType=forking\nPIDFile={}\nExecStart=/bin/sh -c 'echo {} > {}'\n",
        pid_file.display(),
        std::process::id(),
        pid_file.display()
    );
    let s = setup(&[("d.service", unit.as_str())], &[]).await;
    start_unit(&s.conn, "d.service").await;
    let path = "/org/freedesktop/systemd1/unit/d_2eservice";
    wait_until("d.service settled", || async {
        active_state(&s.conn, path)
            .await
            .is_some_and(|a| a != "activating")
    })
    .await;
    let v = get_prop(&s.conn, path, "org.freedesktop.systemd1.Service", "MainPID").await;
    let pid = u32::try_from(v).expect("MainPID u32");
    assert_ne!(pid, std::process::id(), "a foreign PID became MainPID");
}

/// A private socket a live manager serves is never taken: a second emulator given the same
/// path exits 1 and the first keeps serving; `--user` makes no private socket of its own (on a
/// desktop the real user manager's is at $XDG_RUNTIME_DIR/systemd/private).
#[tokio::test(flavor = "current_thread")]
async fn a_live_private_socket_is_not_taken_and_user_mode_makes_none() {
    let (dir, units) = unit_dir(&[]);
    let sock = dir.path().join("private");
    let run = dir.path().join("run");
    let common = |run: &std::path::Path| {
        vec![
            "--unit-dir".into(),
            units.clone().into_os_string(),
            "--no-bus".into(),
            "--private-socket".into(),
            sock.clone().into_os_string(),
            "--runtime-dir".into(),
            run.as_os_str().to_os_string(),
        ]
    };
    let first_args = common(&run);
    let refs: Vec<&std::ffi::OsStr> = first_args.iter().map(|a| a.as_os_str()).collect();
    let _first = emulator(&refs);
    let conn = connect_private(&sock).await;
    let second_args = common(&dir.path().join("run2"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_systemd-emulator"))
        .args(&second_args)
        .output()
        .expect("second emulator");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a running manager is listening there"),
        "{out:?}"
    );
    // The first one still answers on its socket.
    assert_eq!(manager_version(&conn).await, "252");

    // --user with a runtime directory: no private socket appears there.
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(&xdg).expect("xdg dir");
    let _bus = start_bus(dir.path());
    let address = _bus.address().to_string();
    let mut user = Guard(
        std::process::Command::new(env!("CARGO_BIN_EXE_systemd-emulator"))
            .args(["--user", "--unit-dir"])
            .arg(&units)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("XDG_RUNTIME_DIR", &xdg)
            .env_remove("HOME")
            .spawn()
            .expect("user emulator"),
    );
    let session = zbus::connection::Builder::address(address.as_str())
        .expect("address")
        .build()
        .await
        .expect("session bus");
    wait_for_name(&session).await;
    assert!(
        !xdg.join("systemd/private").exists(),
        "--user took a private socket"
    );
    assert!(
        user.0.try_wait().expect("wait").is_none(),
        "user emulator exited"
    );
}
