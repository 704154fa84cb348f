//! Upstream's Python bindings (`bluechi` on PyPI, built on dasbus) against our controller: the
//! script in `tests/python/` lists nodes, reads node properties, runs start/stop jobs to their
//! `JobRemoved` and monitors a unit; a plain dasbus client calls `Hello` on the controller's
//! peer endpoint as on a bus. Needs `ci/setup.sh` (python3-dasbus, python3-gi, the
//! bindings) and `cargo build --workspace --bins` (or BLUECHI_BIN_DIR).

mod robust_support;
mod support_daemons;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use scenario_runner::backend::{BackendKind, BackendOptions, Cluster};
use scenario_runner::paths;
use scenario_runner::syntax::{Scenario, UnitFile};

use robust_support::controller_address;

/// The system interpreter: Debian's dasbus and PyGObject are installed for it, not for
/// whatever `python3` comes first on PATH.
const PYTHON: &str = "/usr/bin/python3";
const UNIT: &str = "sleeper.service";
const SCRIPT_DEADLINE: Duration = Duration::from_secs(60);

fn scenario() -> Scenario {
    Scenario {
        name: "python-client".into(),
        nodes: vec!["main".into(), "worker1".into()],
        controller: "main".into(),
        controller_conf: "[bluechi-controller]\nAllowedNodeNames=main,worker1\n".into(),
        agent_confs: Vec::new(),
        units: vec![UnitFile {
            node: "worker1".into(),
            name: UNIT.into(),
            text: "[Service]\nType=simple\nExecStart=/bin/sleep 60\n".into(),
        }],
        steps: Vec::new(),
        redactions: Vec::new(),
        offline: Vec::new(),
    }
}

fn require_python_bindings() {
    let probe = std::process::Command::new(PYTHON)
        .args(["-c", "import dasbus, gi, bluechi.api"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{PYTHON} lacks dasbus/gi/bluechi: {}\nrun ci/setup.sh",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("cannot run {PYTHON}: {e}; run ci/setup.sh"),
    }
}

/// Runs `tests/python/SCRIPT ARGS` with `bus` as the system bus, within the deadline.
async fn run_script(script: &str, args: &[&str], bus: &str) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let child = tokio::process::Command::new(PYTHON)
        .arg(&script)
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("PYTHONPATH")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the Python client");
    tokio::time::timeout(SCRIPT_DEADLINE, child.wait_with_output())
        .await
        .expect("the Python client did not finish in time")
        .expect("wait for the Python client")
}

async fn start_cluster() -> Cluster {
    let mut backend = Cluster::new(
        BackendKind::Local,
        &BackendOptions::new(paths::bin_dir().expect("binary directory")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    backend
        .start(&scenario())
        .await
        .unwrap_or_else(|e| panic!("cluster did not come up: {e}"));
    backend
}

/// dasbus treats the peer link as a message bus: GLib calls Hello on connecting, and a proxy
/// built from introspection must find Hello at /org/freedesktop/DBus (spec §1.2).
#[tokio::test(flavor = "multi_thread")]
async fn dasbus_calls_hello_on_the_controller_peer_link() {
    require_python_bindings();
    let backend = start_cluster().await;
    let out = run_script("peer_hello.py", &[&controller_address(&backend)], "").await;
    let logs = backend.log_tails(15);
    drop(backend);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.lines().any(|l| l == "OK hello :1.0"),
        "stdout:\n{stdout}\nstderr:\n{stderr}\ndaemon logs:\n{logs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_python_bindings_drive_our_controller() {
    require_python_bindings();
    let backend = start_cluster().await;
    let bus = format!(
        "unix:path={}",
        backend.work_dir().join("main").join("bus.sock").display()
    );
    let out = run_script(
        "bluechi_client.py",
        &["worker1", UNIT, "main", "worker1"],
        &bus,
    )
    .await;
    let logs = backend.log_tails(15);
    drop(backend);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let context = || {
        let daemons: Vec<String> = logs.iter().map(|(n, t)| format!("--- {n}\n{t}")).collect();
        format!(
            "stdout:\n{stdout}\nstderr:\n{stderr}\ndaemon logs:\n{}",
            daemons.join("\n")
        )
    };
    println!("{stdout}");
    assert!(out.status.success(), "script failed\n{}", context());
    for check in [
        "list-nodes",
        "node-properties",
        "start-job",
        "stop-job",
        "monitor",
    ] {
        let prefix = format!("OK {check}");
        assert!(
            stdout.lines().any(|l| l.starts_with(&prefix)),
            "no `{prefix}`\n{}",
            context()
        );
    }
    assert!(
        stdout.contains("OK list-nodes main worker1"),
        "{}",
        context()
    );
    assert!(stdout.lines().any(|l| l == "PASS"), "{}", context());
}
