//! Shared by the `robust_*` tests: a local cluster from scenario text, the daemons' pids
//! (found through the run marker, so a test can SIGKILL one), liveness checks and polling.

#![allow(dead_code)] // Each test binary uses its own subset.

pub mod ctl;
pub mod fuzz;
pub mod lone;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use bluechi_testkit::poll::Poll;

use scenario_runner::backend::local::sweep;
use scenario_runner::backend::{BackendKind, BackendOptions, Cluster, Daemon, DaemonAction};
use scenario_runner::{dbus, paths, syntax};
use zbus::Connection;

/// A crashed daemon stays a zombie until the backend reaps it.
pub use crate::support_daemons::is_alive;

/// `requester.service` on `main` wants worker1's `target.service` through a proxy (the
/// cluster of the proxy restart and Q7 tests).
pub const PROXIED_PAIR: &str = "\
nodes: main worker1
controller: main

controller.conf:
    [bluechi-controller]
    AllowedNodeNames=main,worker1

    [node main]
    AllowDependenciesOn=worker1

unit main requester.service:
    [Unit]
    Wants=bluechi-proxy@worker1_target.service
    After=bluechi-proxy@worker1_target.service

    [Service]
    Type=simple
    ExecStart=/bin/true
    RemainAfterExit=yes

unit worker1 target.service:
    [Service]
    Type=simple
    ExecStart=/bin/true
    RemainAfterExit=yes
";

/// Starts `PROXIED_PAIR`'s requester and waits for its proxy and the target to be active.
pub async fn start_requester(backend: &Cluster) {
    let out = backend
        .run_on_controller(
            &argv(&["bluechictl", "start", "main", "requester.service"]),
            DEADLINE,
        )
        .await
        .expect("start requester");
    assert_eq!(
        out.stdout, "Unit requester.service StartUnit operation result: done\n",
        "{out:?}"
    );
    wait_unit_state(backend, "main", PROXY, "active").await;
    wait_unit_state(backend, "worker1", "target.service", "active").await;
}

/// The proxy unit `PROXIED_PAIR`'s requester pulls in.
pub const PROXY: &str = "bluechi-proxy@worker1_target.service";

/// Generous: two cores are shared with other builds and test runs.
pub const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Brings up the scenario's cluster (binaries from `BLUECHI_BIN_DIR` or next to the test).
pub async fn cluster(name: &str, scenario_text: &str) -> Cluster {
    let scenario = syntax::parser::parse_str(name, Path::new(name), scenario_text)
        .unwrap_or_else(|e| panic!("scenario {name}: {e:?}"));
    let bin_dir = paths::bin_dir().expect("binary directory");
    let options = BackendOptions {
        bin_dir,
        units_dir: paths::shipped_units_dir(),
        keep: false,
        ready_timeout: DEADLINE,
    };
    let mut backend = Cluster::new(BackendKind::Local, &options).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = backend.start(&scenario).await {
        dump_logs(&backend);
        panic!("cluster did not come up: {e}");
    }
    backend
}

pub fn dump_logs(backend: &Cluster) {
    for (name, tail) in backend.log_tails(40) {
        eprintln!("--- {name}\n{tail}");
    }
}

/// The TCP port the runner configured for the controller.
pub fn controller_port(backend: &Cluster) -> u16 {
    let conf = std::fs::read_to_string(backend.work_dir().join("controller.conf"))
        .expect("controller.conf");
    conf.lines()
        .find_map(|l| l.strip_prefix("ControllerPort="))
        .and_then(|p| p.trim().parse().ok())
        .expect("ControllerPort in controller.conf")
}

pub fn controller_address(backend: &Cluster) -> String {
    format!("tcp:host=127.0.0.1,port={}", controller_port(backend))
}

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The live process of this run running `program`; for agents, `node`'s (its config path
/// lies in the node's directory).
pub fn daemon_pid(backend: &Cluster, program: &str, node: Option<&str>) -> Option<i32> {
    let node_dir = node.map(|n| backend.work_dir().join(n).display().to_string());
    sweep::marked_processes(backend.run_id())
        .into_iter()
        .filter(|&pid| is_alive(pid))
        .find(|&pid| {
            let args = cmdline(pid);
            let runs = args
                .first()
                .is_some_and(|a| Path::new(a).file_name().is_some_and(|f| f == program));
            let of_node = match &node_dir {
                Some(dir) => args.iter().any(|a| a.starts_with(dir.as_str())),
                None => true,
            };
            runs && of_node
        })
}

pub fn kill(pid: i32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{signal} {pid} failed");
}

/// A private connection to `node`'s bus.
pub async fn node_bus(backend: &Cluster, node: &str) -> Connection {
    let socket = backend.work_dir().join(node).join("bus.sock");
    dbus::connect(&format!("unix:path={}", socket.display()))
        .await
        .unwrap_or_else(|e| panic!("connect to {node}'s bus: {e}"))
}

/// `ListNodes` must answer within `limit`: the controller's loop is not stalled.
pub async fn list_nodes_within(
    conn: &Connection,
    limit: Duration,
) -> Result<Vec<(String, String)>, String> {
    match tokio::time::timeout(limit, dbus::list_nodes(conn)).await {
        Ok(Ok(nodes)) => Ok(nodes),
        Ok(Err(e)) => Err(format!("ListNodes failed: {e}")),
        Err(_) => Err(format!("ListNodes did not answer within {limit:?}")),
    }
}

/// Polls `probe` until it returns `Some`, or panics naming `what` after `DEADLINE`.
pub async fn poll<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_with(what, String::new, probe).await
}

/// [`poll`], with `context()` (daemon logs, say) in the message if it times out.
pub async fn poll_with<T, F, Fut>(what: &str, context: impl Fn() -> String, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    Poll::new(what, DEADLINE)
        .every(POLL)
        .until(probe)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", context()))
}

pub async fn node_status(conn: &Connection, node: &str) -> Option<String> {
    let nodes = dbus::list_nodes(conn).await.ok()?;
    nodes.into_iter().find(|(n, _)| n == node).map(|(_, s)| s)
}

pub async fn wait_node_status(conn: &Connection, node: &str, status: &str) {
    poll(&format!("node {node} to be {status}"), || async {
        (node_status(conn, node).await.as_deref() == Some(status)).then_some(())
    })
    .await
}

pub async fn wait_unit_state(backend: &Cluster, node: &str, unit: &str, active: &str) {
    poll(&format!("{unit} on {node} to be {active}"), || async {
        let state = backend
            .unit_property(node, unit, "ActiveState")
            .await
            .ok()?;
        (state == active).then_some(())
    })
    .await
}

pub fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// A process a test started in its own process group (a restarted daemon, a waiting
/// bluechictl); the group is killed and the child reaped on drop. Restarted daemons carry the
/// run marker, so teardown's sweep finds them too.
pub struct GroupChild(pub std::process::Child);

impl Drop for GroupChild {
    fn drop(&mut self) {
        let pid = self.0.id() as libc::pid_t;
        // SAFETY: kill(2) has no memory effects; the child is not reaped yet, so its group id
        // cannot have been reused.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// Kills `node`'s daemon and keeps it down (a crash its unit would not restart), for tests
/// that act while it is gone; [`start_daemon`] brings it back.
pub fn crash(backend: &Cluster, node: &str, daemon: Daemon) {
    local_host(backend, node)
        .crash(daemon)
        .unwrap_or_else(|e| panic!("crash {node}'s {}: {e}", daemon.name()));
}

pub async fn start_daemon(backend: &Cluster, node: &str, daemon: Daemon) {
    backend
        .host(node)
        .unwrap_or_else(|e| panic!("{e}"))
        .daemon(daemon, DaemonAction::Start)
        .await
        .unwrap_or_else(|e| panic!("start {node}'s {}: {e}", daemon.name()));
}

/// The local host of `node` (these tests run on the local backend).
pub fn local_host<'a>(
    backend: &'a Cluster,
    node: &str,
) -> &'a scenario_runner::backend::local::LocalHost {
    backend
        .host(node)
        .ok()
        .and_then(|h| h.as_local())
        .unwrap_or_else(|| panic!("{node} is not a local node"))
}

/// `node`'s daemon log (restarts append to it).
pub fn daemon_log(backend: &Cluster, node: &str, daemon: Daemon) -> String {
    let path = local_host(backend, node)
        .dir()
        .join(format!("{}.log", daemon.program()));
    std::fs::read_to_string(path).unwrap_or_default()
}
