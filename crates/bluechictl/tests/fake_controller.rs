//! End-to-end test of the `bluechictl` binary against a tiny fake controller that owns
//! `org.eclipse.bluechi` on a private dbus-daemon.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};

use bluechi_core::msg::{reply, reply_error, route};
use bluechi_testkit::bus::PrivateBus;
use bluechi_testkit::poll;
use futures_util::StreamExt;
use zbus::message::Type;
use zbus::zvariant::{ObjectPath, Value};
use zbus::Connection;

/// A private bus (the test kit's) in a directory of its own.
struct Bus {
    // Dropped first: the daemon dies before its directory goes.
    _bus: PrivateBus,
    address: String,
    _dir: tempfile::TempDir,
}

fn start_bus() -> Bus {
    let dir = tempfile::tempdir().unwrap();
    let bus = PrivateBus::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    Bus {
        address: bus.address().to_string(),
        _bus: bus,
        _dir: dir,
    }
}

const MAIN_PATH: &str = "/org/eclipse/bluechi/node/main";
const OFFLINE_PATH: &str = "/org/eclipse/bluechi/node/worker_2d2";
const MONITOR_PATH: &str = "/org/eclipse/bluechi/monitor/1";
const MONITOR_IFACE: &str = "org.eclipse.bluechi.Monitor";

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
            (MAIN_PATH, "Get") => {
                let (_iface, prop): (String, String) = msg.body().deserialize().unwrap();
                match prop.as_str() {
                    "LastSeenTimestamp" => reply(&conn, &hdr, &Value::from(0u64)).await,
                    _ => reply(&conn, &hdr, &Value::from("")).await,
                }
            }
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
            ("/org/eclipse/bluechi", "CreateMonitor") => {
                reply(
                    &conn,
                    &hdr,
                    &ObjectPath::from_static_str_unchecked(MONITOR_PATH),
                )
                .await;
            }
            (MONITOR_PATH, "SubscribeList") => {
                let (node, units): (String, Vec<String>) = msg.body().deserialize().unwrap();
                reply(&conn, &hdr, &2u64).await;
                let emit = |member: &'static str| (member, MONITOR_PATH);
                let unit = units.first().cloned().unwrap_or_default();
                let (m, path) = emit("UnitNew");
                let body = (node.as_str(), unit.as_str(), "real");
                conn.emit_signal(None::<()>, path, MONITOR_IFACE, m, &body)
                    .await
                    .unwrap();
                let (m, path) = emit("UnitStateChanged");
                let body = (node.as_str(), unit.as_str(), "active", "running", "real");
                conn.emit_signal(None::<()>, path, MONITOR_IFACE, m, &body)
                    .await
                    .unwrap();
                let mut props: HashMap<&str, Value> = HashMap::new();
                props.insert("NRestarts", Value::from(3u32));
                let (m, path) = emit("UnitPropertiesChanged");
                let body = (
                    node.as_str(),
                    unit.as_str(),
                    "org.freedesktop.systemd1.Service",
                    props,
                );
                conn.emit_signal(None::<()>, path, MONITOR_IFACE, m, &body)
                    .await
                    .unwrap();
                let (m, path) = emit("UnitRemoved");
                let body = (node.as_str(), unit.as_str(), "virtual");
                conn.emit_signal(None::<()>, path, MONITOR_IFACE, m, &body)
                    .await
                    .unwrap();
            }
            (MAIN_PATH, "FreezeUnit" | "ThawUnit" | "KillUnit" | "Reload" | "ResetFailed") => {
                reply(&conn, &hdr, &()).await;
            }
            (MAIN_PATH, "ResetFailedUnit") => {
                let (unit,): (String,) = msg.body().deserialize().unwrap();
                if unit == "bad.service" {
                    let text = format!("Unit {unit} not loaded.");
                    reply_error(&conn, &hdr, "org.freedesktop.systemd1.NoSuchUnit", &text).await;
                } else {
                    reply(&conn, &hdr, &()).await;
                }
            }
            (MAIN_PATH, "GetUnitFileState") => {
                let (unit,): (String,) = msg.body().deserialize().unwrap();
                let state = if unit.starts_with("on") {
                    "enabled"
                } else {
                    "disabled"
                };
                reply(&conn, &hdr, &state).await;
            }
            (MAIN_PATH, "GetDefaultTarget") => reply(&conn, &hdr, &"multi-user.target").await,
            (MAIN_PATH, "SetDefaultTarget") => {
                let changes = vec![(
                    "symlink",
                    "/etc/systemd/system/default.target",
                    "/usr/lib/systemd/system/graphical.target",
                )];
                reply(&conn, &hdr, &changes).await;
            }
            (MAIN_PATH, "EnableUnitFiles") => {
                let (_units, _runtime, _force): (Vec<String>, bool, bool) =
                    msg.body().deserialize().unwrap();
                let changes = vec![
                    (
                        "symlink",
                        "/etc/systemd/system/multi-user.target.wants/a.service",
                        "/etc/systemd/system/a.service",
                    ),
                    ("weird", "x", "y"),
                ];
                reply(&conn, &hdr, &(true, changes)).await;
            }
            (MAIN_PATH, "DisableUnitFiles") => {
                let changes = vec![(
                    "unlink",
                    "/etc/systemd/system/multi-user.target.wants/a.service",
                    "",
                )];
                reply(&conn, &hdr, &changes).await;
            }
            ("/org/eclipse/bluechi", "EnableMetrics") => {
                let text = "Metrics already enabled";
                let name = "org.freedesktop.DBus.Error.InconsistentMessage";
                reply_error(&conn, &hdr, name, text).await;
            }
            ("/org/eclipse/bluechi", "DisableMetrics") => reply(&conn, &hdr, &()).await,
            ("/org/eclipse/bluechi", "SetLogLevel") => {
                let (level,): (String,) = msg.body().deserialize().unwrap();
                if ["DEBUG", "INFO", "WARN", "ERROR"].contains(&level.as_str()) {
                    reply(&conn, &hdr, &()).await;
                } else {
                    let name = "org.freedesktop.DBus.Error.InvalidArgs";
                    reply_error(&conn, &hdr, name, "Invalid input for log level").await;
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

    for case in CASES {
        let o = run(case.args).await.unwrap();
        assert_eq!(
            (o.code, o.stdout.as_str(), o.stderr.as_str()),
            (case.code, case.stdout, case.stderr),
            "bluechictl {:?}",
            case.args
        );
    }

    // Every command's `--help` is its own page (general usage for help/version) and exits 0.
    for cmd in HELP_PAGES {
        let (addr, cmd) = (addr.clone(), *cmd);
        let o = tokio::task::spawn_blocking(move || run_ctl(&addr, &[cmd, "--help"]))
            .await
            .unwrap();
        assert_eq!((o.code, o.stderr.as_str()), (0, ""), "{cmd} --help");
        assert!(o
            .stdout
            .starts_with("bluechictl is a convenience CLI tool to interact with bluechi\n\n"));
        assert!(o.stdout.ends_with('\n'), "{cmd} --help");
    }
    let o = run(&["status", "--help"]).await.unwrap();
    assert_eq!(o.stdout, STATUS_HELP);
    let o = run(&["thaw", "-h", "a"]).await.unwrap();
    assert_eq!(
        o.stdout,
        "bluechictl is a convenience CLI tool to interact with bluechi\n\n\
         Description: \n  Thaw a previously frozen unit on a node\n\n\
         Usage: \n  bluechictl freeze [nodename] [unit]\n\n"
    );
}

const HELP_PAGES: &[&str] = &[
    "help",
    "list-unit-files",
    "is-enabled",
    "list-units",
    "start",
    "stop",
    "freeze",
    "thaw",
    "restart",
    "reload",
    "reset-failed",
    "kill",
    "monitor",
    "metrics",
    "enable",
    "disable",
    "daemon-reload",
    "status",
    "set-loglevel",
    "get-default",
    "set-default",
    "version",
];

const STATUS_HELP: &str = "bluechictl is a convenience CLI tool to interact with bluechi\n\n\
Description: \n  View status for units and nodes of BlueChi\n\n\
Usage: \n  bluechictl status [nodename] [unitname] [options]\n\n\
\x20 If [nodename] and [unitname] are not given, the status of all nodes will be displayed.\n\
\x20 If [unitname] is not given, the status of the specific node will be displayed.\n\
\nAvailable options:\n\
\x20 --help \t shows this help message\n\
\x20 --watch, -w \t continuously watch the status of the node(s) and unit \n";

struct Case {
    args: &'static [&'static str],
    code: i32,
    stdout: &'static str,
    stderr: &'static str,
}

const fn case(
    args: &'static [&'static str],
    code: i32,
    stdout: &'static str,
    stderr: &'static str,
) -> Case {
    Case {
        args,
        code,
        stdout,
        stderr,
    }
}

/// Paths that need the bus: argument and option validation (which upstream does after
/// connecting) and each command's success and error output.
const CASES: &[Case] = &[
    // Argument counts, per the command table.
    case(&["help", "x"], 1, "", "Too many arguments for method help\n"),
    case(&["version", "x"], 1, "", "Too many arguments for method version\n"),
    case(&["list-units", "a", "b"], 1, "", "Too many arguments for method list-units\n"),
    case(&["list-unit-files", "a", "b"], 1, "", "Too many arguments for method list-unit-files\n"),
    case(&["is-enabled", "main"], 1, "", "Too few arguments for method is-enabled\n"),
    case(&["stop", "a", "b", "c"], 1, "", "Too many arguments for method stop\n"),
    case(&["freeze", "a"], 1, "", "Too few arguments for method freeze\n"),
    case(&["kill", "a", "b", "c"], 1, "", "Too many arguments for method kill\n"),
    case(&["monitor", "a", "b", "c"], 1, "", "Too many arguments for method monitor\n"),
    case(&["metrics"], 1, "", "Too few arguments for method metrics\n"),
    case(&["enable", "main"], 1, "", "Too few arguments for method enable\n"),
    case(&["disable", "main"], 1, "", "Too few arguments for method disable\n"),
    case(&["daemon-reload"], 1, "", "Too few arguments for method daemon-reload\n"),
    case(&["set-loglevel"], 1, "", "Too few arguments for method set-loglevel\n"),
    case(&["set-loglevel", "a", "b", "c"], 1, "", "Too many arguments for method set-loglevel\n"),
    case(&["get-default"], 1, "", "Too few arguments for method get-default\n"),
    case(&["set-default", "main"], 1, "", "Too few arguments for method set-default\n"),
    // Count is checked before options.
    case(&["start", "-f"], 1, "", "Too few arguments for method start\n"),
    // Options not accepted by the command, reported by long name in the order given.
    case(&["status", "-f", "-w"], 1, "", "Unsupported option 'force' for method 'status'\n"),
    case(&["list-units", "--runtime"], 1, "", "Unsupported option 'runtime' for method 'list-units'\n"),
    case(&["disable", "main", "a.service", "--force"], 1, "", "Unsupported option 'force' for method 'disable'\n"),
    case(&["disable", "main", "a.service", "--runtime"], 1, "", "Unsupported option 'runtime' for method 'disable'\n"),
    case(&["start", "main", "a", "--kill-whom=all"], 1, "", "Unsupported option 'kill-whom' for method 'start'\n"),
    case(&["kill", "main", "a", "--filter=x"], 1, "", "Unsupported option 'filter' for method 'kill'\n"),
    // kill
    case(&["kill", "main", "a.service"], 0, "", ""),
    case(&["kill", "main", "a.service", "--kill-whom=main", "--signal=9"], 0, "", ""),
    case(&["kill", "main", "a", "--kill-whom=some"], 1, "", "Value 'some' of option --kill-whom is invalid\n"),
    case(&["kill", "main", "a", "--signal=32"], 1, "", "Value '32' of option --signal is invalid\n"),
    case(&["kill", "main", "a", "--signal", "KILL"], 1, "", "Value 'KILL' of option --signal is invalid\n"),
    case(&["kill", "ghost", "a"], 1, "", "Failed to issue method call for KillUnit: Unknown object '/org/eclipse/bluechi/node/ghost'.\n"),
    // freeze / thaw
    case(&["freeze", "main", "a.service"], 0, "Unit a.service freeze operation done\n", ""),
    case(&["thaw", "main", "a.service"], 0, "Unit a.service thaw operation done\n", ""),
    case(&["thaw", "ghost", "a.service"], 1, "", "Failed to issue method call: Unknown object '/org/eclipse/bluechi/node/ghost'.\n"),
    // is-enabled: exit code follows the state (QUIRK)
    case(&["is-enabled", "main", "on.service"], 0, "enabled\n", ""),
    case(&["is-enabled", "main", "off.service"], 1, "disabled\n", ""),
    case(&["is-enabled", "ghost", "a"], 1, "", "Failed to issue method call: Unknown object '/org/eclipse/bluechi/node/ghost'.\n"),
    // get-default / set-default
    case(&["get-default", "main"], 0, "multi-user.target\n", ""),
    case(&["set-default", "main", "graphical.target"], 0, "[(symlink /etc/systemd/system/default.target /usr/lib/systemd/system/graphical.target),]\n", ""),
    case(&["set-default", "main", "a.service"], 0, "", "Error: Unit 'a.service' is not a target unit\n"),
    // reset-failed
    case(&["reset-failed", "main"], 0, "", ""),
    case(&["reset-failed", "ghost"], 1, "", "Couldn't reset failed state of all units on node 'ghost': Unknown object '/org/eclipse/bluechi/node/ghost'.\n"),
    case(&["reset-failed", "main", "a.service", "bad.service", "c.service"], 1, "1 a.service\n2 bad.service\n", "Failed to issue method call: Unit bad.service not loaded.\n"),
    // reset-failed on all nodes: the exit code is the last node's (worker-2 is unknown here).
    case(&["reset-failed"], 1, "", "Couldn't reset failed state of all units on node 'worker-2': Unknown object '/org/eclipse/bluechi/node/worker_2d2'.\n"),
    // enable / disable report on stderr
    case(&["enable", "main", "a.service"], 0, "", "The unit files included enablement information\nCreated symlink /etc/systemd/system/multi-user.target.wants/a.service -> /etc/systemd/system/a.service\nUnknown operation: weird\n"),
    case(&["enable", "ghost", "a.service", "--no-reload"], 1, "", "Failed to issue call: Unknown object '/org/eclipse/bluechi/node/ghost'.\nFailed to enable the units on node [ghost] - Invalid request descriptor"),
    case(&["disable", "main", "a.service", "--no-reload"], 0, "", "Removed \"/etc/systemd/system/multi-user.target.wants/a.service\".\n"),
    case(&["disable", "ghost", "a.service"], 1, "", "Failed to issue call: Unknown object '/org/eclipse/bluechi/node/ghost'.\nFailed to disable the units on node [ghost] - Invalid request descriptorFailed to issue method call: Unknown object '/org/eclipse/bluechi/node/ghost'.\n"),
    // daemon-reload / set-loglevel
    case(&["daemon-reload", "main"], 0, "", ""),
    case(&["set-loglevel", "DEBUG"], 0, "", ""),
    case(&["set-loglevel", "LOUD"], 1, "", "Failed to issue method call: Invalid input for log level\n"),
    // metrics
    case(&["metrics", "enable"], 1, "", "Failed to issue method call: Metrics already enabled\n"),
    case(&["metrics", "disable"], 0, "Done\n", ""),
    case(&["metrics", "frob"], 1, "", "Unknown metrics command: frob"),
];

/// A long-running `bluechictl` whose stdout is collected as it arrives.
struct Streaming {
    child: Child,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Streaming {
    fn start(address: &str, args: &[&str]) -> Streaming {
        use std::io::Read;
        let mut child = Command::new(env!("CARGO_BIN_EXE_bluechictl"))
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", address)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut pipe = child.stdout.take().unwrap();
        let sink = std::sync::Arc::clone(&seen);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Streaming {
            child,
            seen,
            reader,
        }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Polls until stdout is at least `len` bytes long (10 s deadline).
    async fn wait_for_len(&self, len: usize) {
        let what = format!("{len} bytes of stdout");
        poll::until(what, std::time::Duration::from_secs(10), || {
            std::future::ready(self.seen.lock().unwrap().len() >= len)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}; only got {:?}", self.stdout()));
    }

    /// SIGINT, then exit code, full stdout and stderr.
    fn interrupt(mut self) -> (Option<i32>, String, String) {
        use std::io::Read;
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: plain kill(2) of the child we spawned and still own (not yet reaped).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        let status = self.child.wait().unwrap();
        self.reader.join().unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let stdout = String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned();
        (status.code(), stdout, stderr)
    }
}

async fn fake_controller(bus: &Bus) -> Connection {
    let conn = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name("org.eclipse.bluechi")
        .unwrap()
        .build()
        .await
        .unwrap();
    tokio::spawn(serve(conn.clone()));
    conn
}

/// `monitor` prints every event in its exact format and exits 0 on SIGINT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_prints_events_until_interrupted() {
    let bus = start_bus();
    let _conn = fake_controller(&bus).await;
    let run = Streaming::start(&bus.address, &["monitor", "main", "a.service,b.service"]);
    let expected = "Monitor path: /org/eclipse/bluechi/monitor/1\n\
        Subscribing to node 'main' and unit 'a.service'\n\
        Subscribing to node 'main' and unit 'b.service'\n\
        [main] a.service\n\tUnit created (reason: real)\n\
        [main] a.service\n\tUnit state changed (reason: real)\n\tActive: active (running)\n\
        [main] a.service\n\tUnit properties changed (Interface: org.freedesktop.systemd1.Service)\n\
        [main] a.service\n\tUnit removed (reason: virtual)\n";
    run.wait_for_len(expected.len()).await;
    assert_eq!(
        run.interrupt(),
        (Some(0), expected.to_string(), String::new())
    );
}

/// `status -w NODE`: cleared screen and table first, a redraw on every `Status` change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_redraws_the_node_table() {
    let bus = start_bus();
    let conn = fake_controller(&bus).await;
    let run = Streaming::start(&bus.address, &["status", "-w", "main"]);
    let clear = "\x1b[2J\x1b[0;0H";
    let header = "NODE                          | STATE     | IP                      | LAST SEEN                   \n\
        ==========================================================================================\n";
    let first = format!(
        "{clear}{header}main                          | online    | ::ffff:10.89.1.29       | now                         \n"
    );
    run.wait_for_len(first.len()).await;
    let changed = |key: &'static str, value: &'static str| {
        let conn = conn.clone();
        async move {
            let mut props: HashMap<&str, Value> = HashMap::new();
            props.insert(key, Value::from(value));
            let body = ("org.eclipse.bluechi.Node", props, Vec::<String>::new());
            conn.emit_signal(
                None::<()>,
                MAIN_PATH,
                "org.freedesktop.DBus.Properties",
                "PropertiesChanged",
                &body,
            )
            .await
            .unwrap();
        }
    };
    // Not about `Status`: reported on stderr (without newline) and not drawn.
    changed("PeerIp", "10.0.0.1").await;
    changed("Status", "offline").await;
    let second = format!(
        "{clear}{header}main                          | offline   |                         | never                       \n"
    );
    run.wait_for_len(first.len() + second.len()).await;
    let (code, stdout, stderr) = run.interrupt();
    assert_eq!(code, Some(0));
    assert_eq!(stdout, format!("{first}{second}"));
    assert_eq!(
        stderr,
        "Received connection status change signal with missing 'Status' key."
    );
}
