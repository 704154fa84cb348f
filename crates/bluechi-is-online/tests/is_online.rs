//! `bluechi-is-online` against a fake BlueChi daemon on a private dbus-daemon: exit codes,
//! messages, waiting, monitoring and the controller-switch grace.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bluechi_testkit::bus::PrivateBus;
use bluechi_testkit::poll;
use futures_util::StreamExt;
use zbus::message::Type;
use zbus::{Connection, MessageStream};
use zvariant::Value;

const AGENT: &str = "org.eclipse.bluechi.Agent";
const DEADLINE: Duration = Duration::from_secs(10);

/// A private bus (the test kit's) in a directory of its own, killed when dropped.
struct Bus {
    // Dropped first: the daemon dies before its directory goes.
    _bus: PrivateBus,
    address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    fn start() -> Bus {
        let dir = tempfile::tempdir().expect("temporary directory");
        let bus = PrivateBus::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        Bus {
            address: bus.address().to_string(),
            _bus: bus,
            _dir: dir,
        }
    }
}

/// Serves `Status` (and `ControllerAddress`) of one BlueChi object under a bus name.
struct Fake {
    conn: Connection,
    path: String,
    iface: String,
    status: Arc<Mutex<String>>,
    /// How many times `Status` was read: a child has finished its first check once it grew.
    reads: Arc<AtomicUsize>,
}

impl Fake {
    async fn start(bus: &Bus, name: &str, path: &str, iface: &str, status: &str) -> Fake {
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .expect("address")
            .build()
            .await
            .expect("connect fake");
        let status = Arc::new(Mutex::new(status.to_string()));
        let mut stream = MessageStream::from(&conn);
        let reads = Arc::new(AtomicUsize::new(0));
        let (c, s, r) = (conn.clone(), status.clone(), reads.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                if m.message_type() != Type::MethodCall {
                    continue;
                }
                let hdr = m.header();
                if hdr.member().map(|x| x.as_str()) == Some("Get") {
                    let value = s.lock().map(|v| v.clone()).unwrap_or_default();
                    let _ = c.reply(&hdr, &(Value::from(value),)).await;
                    r.fetch_add(1, Ordering::SeqCst);
                } else {
                    let _ = c
                        .reply_error(&hdr, "org.freedesktop.DBus.Error.UnknownMethod", &("no",))
                        .await;
                }
            }
        });
        conn.request_name(name).await.expect("own the name");
        Fake {
            conn,
            path: path.into(),
            iface: iface.into(),
            status,
            reads,
        }
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// Returns once `Status` has been read more than `before` times.
    async fn wait_for_read(&self, before: usize) {
        poll::until("somebody to read Status", DEADLINE, || {
            std::future::ready(self.reads() > before)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    async fn changed(&self, key: &str, value: &str) {
        if key == "Status" {
            *self.status.lock().expect("status lock") = value.to_string();
        }
        let mut changed: HashMap<&str, Value<'_>> = HashMap::new();
        changed.insert(key, Value::from(value));
        self.conn
            .emit_signal(
                None::<&str>,
                self.path.as_str(),
                "org.freedesktop.DBus.Properties",
                "PropertiesChanged",
                &(self.iface.as_str(), changed, Vec::<&str>::new()),
            )
            .await
            .expect("emit PropertiesChanged");
    }
}

async fn agent(bus: &Bus, status: &str) -> Fake {
    Fake::start(
        bus,
        "org.eclipse.bluechi.Agent",
        "/org/eclipse/bluechi",
        "org.eclipse.bluechi.Agent",
        status,
    )
    .await
}

fn spawn(bus: &Bus, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_bluechi-is-online"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run bluechi-is-online")
}

async fn finish(child: tokio::process::Child) -> (i32, String) {
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("bluechi-is-online did not exit in time")
        .expect("wait for bluechi-is-online");
    let code = out.status.code().expect("exit code, not a signal");
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn run(bus: &Bus, args: &[&str]) -> (i32, String) {
    finish(spawn(bus, args)).await
}

/// Returns once a client has subscribed to the owner changes of `name`: the child adds that
/// match rule last before its first read, so from then on it sees every change.
async fn wait_until_subscribed(bus: &Bus, name: &str) {
    let conn = zbus::connection::Builder::address(bus.address.as_str())
        .expect("address")
        .build()
        .await
        .expect("connect probe");
    let needle = format!("arg0='{name}'");
    poll::until("a client to subscribe", DEADLINE, || async {
        let reply = conn
            .call_method(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                Some("org.freedesktop.DBus.Debug.Stats"),
                "GetAllMatchRules",
                &(),
            )
            .await
            .expect("dbus-daemon with Debug.Stats");
        let rules: HashMap<String, Vec<String>> = reply.body().deserialize().expect("a{sas}");
        rules.values().flatten().any(|r| r.contains(&needle))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn online_agent_exits_0_silently() {
    let bus = Bus::start();
    let _fake = agent(&bus, "online").await;
    assert_eq!(run(&bus, &["agent"]).await, (0, String::new()));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_offline_agent_exits_1_naming_the_bus_name() {
    let bus = Bus::start();
    let (code, err) = run(&bus, &["agent"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "org.eclipse.bluechi.Agent is offline\n")
    );
    let _fake = agent(&bus, "offline").await;
    let (code, err) = run(&bus, &["agent", "--monitor"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "org.eclipse.bluechi.Agent is offline\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn node_and_system_use_the_controller_objects() {
    let bus = Bus::start();
    let conn = Fake::start(
        &bus,
        "org.eclipse.bluechi",
        "/org/eclipse/bluechi/node/node_2dfoo",
        "org.eclipse.bluechi.Node",
        "online",
    )
    .await;
    assert_eq!(run(&bus, &["node", "node-foo"]).await.0, 0);
    // The fake answers Get on any path, so "system" reads "online", which is not "up".
    let (code, err) = run(&bus, &["system"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "org.eclipse.bluechi is offline\n")
    );
    *conn.status.lock().unwrap() = "degraded".into();
    assert_eq!(run(&bus, &["system"]).await.0, 1);
    *conn.status.lock().unwrap() = "up".into();
    assert_eq!(run(&bus, &["system"]).await.0, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_returns_as_soon_as_the_agent_comes_online() {
    let bus = Bus::start();
    let fake = agent(&bus, "offline").await;
    let started = Instant::now();
    let child = spawn(&bus, &["agent", "--wait=8000"]);
    fake.wait_for_read(0).await;
    fake.changed("Status", "online").await;
    assert_eq!(finish(child).await, (0, String::new()));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "waited for the timer"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_gives_up_when_its_timer_fires() {
    let bus = Bus::start();
    let _fake = agent(&bus, "offline").await;
    let started = Instant::now();
    let (code, err) = run(&bus, &["agent", "--wait=300"]).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "org.eclipse.bluechi.Agent is offline\n")
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_sees_an_agent_that_appears_on_the_bus() {
    let bus = Bus::start();
    let child = spawn(&bus, &["agent", "--wait=8000"]);
    wait_until_subscribed(&bus, AGENT).await;
    let _fake = agent(&bus, "online").await;
    assert_eq!(finish(child).await, (0, String::new()));
}

#[tokio::test(flavor = "multi_thread")]
async fn monitor_runs_until_the_agent_goes_offline_or_away() {
    let bus = Bus::start();
    let fake = agent(&bus, "online").await;
    let child = spawn(&bus, &["agent", "--monitor"]);
    fake.wait_for_read(0).await;
    fake.changed("Status", "online").await;
    fake.changed("Status", "offline").await;
    let (code, err) = finish(child).await;
    assert_eq!(
        (code, err.as_str()),
        (1, "org.eclipse.bluechi.Agent is offline\n")
    );

    fake.changed("Status", "online").await;
    let reads = fake.reads();
    let child = spawn(&bus, &["agent", "--monitor"]);
    fake.wait_for_read(reads).await;
    fake.conn
        .release_name("org.eclipse.bluechi.Agent")
        .await
        .expect("release");
    assert_eq!(finish(child).await.0, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_controller_switch_excuses_one_offline_state() {
    let bus = Bus::start();
    let fake = agent(&bus, "online").await;
    let mut child = spawn(&bus, &["agent", "--monitor", "--switch-timeout=5000"]);
    fake.wait_for_read(0).await;
    fake.changed("ControllerAddress", "tcp:host=127.0.0.2,port=842")
        .await;
    fake.changed("Status", "offline").await;
    // Held, not waited for: the monitor must stay up through the excused offline state.
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_millis(300) {
        if child.try_wait().expect("try_wait").is_some() {
            let (code, err) = finish(child).await;
            panic!("monitor exited ({code}) on the excused offline state: {err}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.changed("Status", "online").await;
    fake.changed("Status", "offline").await;
    assert_eq!(finish(child).await.0, 1);
}

/// Runs the binary as `bluechi-is-online` (glibc messages quote argv[0]) with `address` as
/// the system bus; returns exit code, stdout and stderr.
fn run_plain(address: &str, args: &[&str]) -> (i32, String, String) {
    use std::os::unix::process::CommandExt;
    let out = Command::new(env!("CARGO_BIN_EXE_bluechi-is-online"))
        .arg0("bluechi-is-online")
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", address)
        .env_remove("POSIXLY_CORRECT")
        .output()
        .expect("run bluechi-is-online");
    (
        out.status.code().expect("exit code, not a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const USAGE: &str = "bluechi-is-online checks and monitors the connection state of BlueChi components\n\n\
Usage: \n  bluechi-is-online [agent|node|system] [OPTIONS]\n\n\
Available commands:\n\
\x20 help: \t shows this help message\n\
\x20 version: \t shows the version of bluechi-is-online\n\
\x20 agent: \t on the agent machine check and/or monitor the connection of the agent to the controller\n\
\x20 node [name]: \t on the controller machine check and/or monitor the connection of the given node to the controller\n\
\x20 system: \t on the controller machine check and/or monitor the connection of all nodes to the controller\n\
Available options:\n\
\x20 --monitor: \t\t keeps monitoring as long as [agent|node|system] is online and exits if it detects an offline state.\n\
\x20 --wait: \t\t Wait n milliseconds for [agent|node|system] to get online.\n\
\x20 --switch-timeout: \t Only for [agent]. Wait n milliseconds for after switching controller to get online again.\n";

/// Every path that ends before the bus is used: exact stdout, stderr and exit code. Usage
/// errors exit 1, like every other failure (upstream's `EXIT_FAILURE`).
#[test]
fn help_version_and_usage_errors_are_byte_exact() {
    let nowhere = "unix:path=/nonexistent/bluechi-is-online-test.sock";
    let version = format!(
        "bluechi-is-online version {}-1\n",
        env!("CARGO_PKG_VERSION")
    );
    let no_bus = "Failed to connect to api bus: No such file or directory\n\
                  Failed to open bus: No such file or directory\n";
    let cases: &[(&[&str], i32, &str, &str)] = &[
        (&["version"], 0, &version, ""),
        (&["help"], 0, USAGE, ""),
        (&["-h"], 0, USAGE, ""),
        (&["--help"], 0, USAGE, ""),
        (&["node", "--help"], 0, USAGE, ""),
        (&["agent", "extra", "-h"], 0, USAGE, ""),
        (&[], 1, USAGE, "No command given\n"),
        (&["--monitor"], 1, USAGE, "No command given\n"),
        (&["frobnicate"], 1, USAGE, "Method frobnicate not found\n"),
        (
            &["-m", "agent"],
            1,
            USAGE,
            "bluechi-is-online: invalid option -- 'm'\n",
        ),
        (
            &["agent", "--verbose"],
            1,
            USAGE,
            "bluechi-is-online: unrecognized option '--verbose'\n",
        ),
        (
            &["agent", "--wait"],
            1,
            USAGE,
            "bluechi-is-online: option '--wait' requires an argument\n",
        ),
        (&["node"], 1, "", "Too few arguments for method node\n"),
        (
            &["node", "a", "b"],
            1,
            "",
            "Too many arguments for method node\n",
        ),
        (
            &["system", "x"],
            1,
            "",
            "Too many arguments for method system\n",
        ),
        (
            &["help", "x"],
            1,
            "",
            "Too many arguments for method help\n",
        ),
        (
            &["node", "a", "--switch-timeout=5"],
            1,
            "",
            "Unsupported option 'switch-timeout' for method 'node'\n",
        ),
        (
            &["version", "--wait=5"],
            1,
            "",
            "Unsupported option 'wait' for method 'version'\n",
        ),
        (
            &["agent", "--wait=5s"],
            1,
            "",
            "Failed to parse --wait: Invalid argument\n",
        ),
        (
            &["agent", "--switch-timeout", ""],
            1,
            "",
            "Failed to parse --switch-timeout: Invalid argument\n",
        ),
        (&["agent"], 1, "", no_bus),
        (&["system", "--wait=-1"], 1, "", no_bus),
    ];
    for (args, code, stdout, stderr) in cases {
        let got = run_plain(nowhere, args);
        assert_eq!(
            (got.0, got.1.as_str(), got.2.as_str()),
            (*code, *stdout, *stderr),
            "bluechi-is-online {args:?}"
        );
    }
}
