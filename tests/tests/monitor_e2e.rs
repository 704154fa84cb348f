//! End to end on a real local cluster: public monitors (unicast to owner and peers only),
//! fleet `ListUnits` in configuration order, and `StartUnitJobMetrics`.

use std::path::Path;
use std::time::{Duration, Instant};

use bluechi_core::ordered::OrderedDict;
use futures_util::StreamExt;
use scenario_runner::backend::{BackendKind, BackendOptions, Cluster};
use scenario_runner::{dbus, paths, syntax};
use zbus::{Connection, MatchRule, Message, MessageStream};
use zvariant::OwnedObjectPath;

const SCENARIO: &str = "\
nodes: main worker1
controller: main

controller.conf:
    [bluechi-controller]
    AllowedNodeNames=worker1,main

unit worker1 simple.service:
    [Service]
    Type=simple
    ExecStart=/bin/true
    RemainAfterExit=yes
";

const DEADLINE: Duration = Duration::from_secs(20);
const BUS: &str = "org.eclipse.bluechi";
const MONITOR_IFACE: &str = "org.eclipse.bluechi.Monitor";

type UnitTuple = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

async fn call(
    conn: &Connection,
    path: &str,
    iface: &str,
    method: &str,
    body: &(impl zbus::export::serde::Serialize + zvariant::DynamicType),
) -> Message {
    conn.call_method(Some(BUS), path, Some(iface), method, body)
        .await
        .unwrap_or_else(|e| panic!("{iface}.{method} on {path}: {e}"))
}

async fn stream_for(conn: &Connection, path: &str, iface: &str) -> MessageStream {
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .path(path.to_string())
        .unwrap()
        .interface(iface.to_string())
        .unwrap()
        .build();
    MessageStream::for_match_rule(rule, conn, None)
        .await
        .unwrap()
}

/// Reads signals until `pred` matches one; returns every member seen (in order).
async fn read_until(
    s: &mut MessageStream,
    what: &str,
    pred: impl Fn(&Message) -> bool,
) -> Vec<String> {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = DEADLINE.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, s.next()).await {
            Ok(Some(Ok(m))) => {
                seen.push(
                    m.header()
                        .member()
                        .map(|x| x.to_string())
                        .unwrap_or_default(),
                );
                if pred(&m) {
                    return seen;
                }
            }
            other => panic!("waiting for {what}: {other:?}; seen {seen:?}"),
        }
    }
}

fn is_active_state(m: &Message) -> bool {
    m.header().member().is_some_and(|x| x == "UnitStateChanged")
        && m.body()
            .deserialize::<(String, String, String, String, String)>()
            .is_ok_and(|(n, u, a, _, _)| n == "worker1" && u == "simple.service" && a == "active")
}

#[test]
fn monitors_fleet_and_metrics_on_a_local_cluster() {
    let bin_dir = match std::env::var("BLUECHI_BIN_DIR") {
        Ok(d) => d.into(),
        Err(_) => paths::bin_dir().expect("binary directory"),
    };
    let scenario = syntax::parser::parse_str("monitor-e2e", Path::new("monitor-e2e"), SCENARIO)
        .expect("scenario parses");
    let mut backend = Cluster::new(
        BackendKind::Local,
        &BackendOptions {
            ready_timeout: DEADLINE,
            ..BackendOptions::new(bin_dir)
        },
    )
    .expect("backend");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        backend.start(&scenario).await.inspect_err(|_| {
            for (name, tail) in backend.log_tails(30) {
                eprintln!("--- {name}\n{tail}");
            }
        })?;
        scenario_checks(backend.work_dir()).await;
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let out = backend
            .run_on_controller(&argv(&["bluechictl", "metrics", "disable"]), DEADLINE)
            .await?;
        assert_eq!(out.stdout, "Done\n", "stderr: {}", out.stderr);
        let out = backend
            .run_on_controller(&argv(&["bluechictl", "metrics", "disable"]), DEADLINE)
            .await?;
        assert_eq!(
            out.stderr,
            "Failed to issue method call: Metrics already disabled\n"
        );
        let out = backend
            .run_on_controller(&argv(&["bluechictl", "list-units"]), DEADLINE)
            .await?;
        let first_node_row = out.stdout.lines().nth(2).unwrap_or_default().to_string();
        assert!(first_node_row.starts_with("worker1 "), "{}", out.stdout);
        // Columns 3 and 4 are systemd's ActiveState and SubState (not SubState and Following).
        for row in out.stdout.lines().skip(2) {
            let cols: Vec<&str> = row.split(" | ").map(str::trim).collect();
            assert!(
                matches!(
                    cols.get(2).copied(),
                    Some(
                        "active"
                            | "inactive"
                            | "failed"
                            | "activating"
                            | "deactivating"
                            | "reloading"
                    )
                ),
                "ACTIVE column of {row:?} is not an active state:\n{}",
                out.stdout
            );
            assert!(
                !cols.get(3).copied().unwrap_or_default().is_empty(),
                "{row:?}"
            );
        }
        Ok::<(), String>(())
    });
    if result.is_err() {
        for (name, tail) in backend.log_tails(40) {
            eprintln!("--- {name}\n{tail}");
        }
    }
    backend.teardown();
    result.expect("cluster start");
}

async fn scenario_checks(work: &Path) {
    let address = format!("unix:path={}", work.join("main/bus.sock").display());
    let owner = dbus::connect(&address).await.unwrap();
    let listener = dbus::connect(&address).await.unwrap();
    let peer = dbus::connect(&address).await.unwrap();

    // Fleet ListUnits: every node, in configuration order (worker1 before main).
    let reply = call(
        &owner,
        "/org/eclipse/bluechi",
        "org.eclipse.bluechi.Controller",
        "ListUnits",
        &(),
    )
    .await;
    let dict: OrderedDict<Vec<UnitTuple>> = reply.body().deserialize().unwrap();
    let names: Vec<&str> = dict.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["worker1", "main"]);

    let reply = call(
        &owner,
        "/org/eclipse/bluechi",
        "org.eclipse.bluechi.Controller",
        "CreateMonitor",
        &(),
    )
    .await;
    let path: OwnedObjectPath = reply.body().deserialize().unwrap();
    let path = path.as_str().to_string();
    assert_eq!(path, "/org/eclipse/bluechi/monitor/1");

    let mut own_stream = stream_for(&owner, &path, MONITOR_IFACE).await;
    let mut listen_stream = stream_for(&listener, &path, MONITOR_IFACE).await;
    let mut peer_stream = stream_for(&peer, &path, MONITOR_IFACE).await;
    let peer_name = peer.unique_name().unwrap().to_string();
    let reply = call(
        &owner,
        &path,
        MONITOR_IFACE,
        "AddPeer",
        &(peer_name.as_str(),),
    )
    .await;
    let peer_id: u32 = reply.body().deserialize().unwrap();
    assert_eq!(peer_id, 1);

    let reply = call(
        &owner,
        &path,
        MONITOR_IFACE,
        "Subscribe",
        &("worker1", "simple.service"),
    )
    .await;
    let sub: u32 = reply.body().deserialize().unwrap();
    assert!(sub >= 2, "subscription ids start at 2, got {sub}");

    let metrics_path = "/org/eclipse/bluechi/metrics";
    call(
        &owner,
        "/org/eclipse/bluechi",
        "org.eclipse.bluechi.Controller",
        "EnableMetrics",
        &(),
    )
    .await;
    let mut metrics = stream_for(&listener, metrics_path, "org.eclipse.bluechi.Metrics").await;
    let err = owner
        .call_method(
            Some(BUS),
            "/org/eclipse/bluechi",
            Some("org.eclipse.bluechi.Controller"),
            "EnableMetrics",
            &(),
        )
        .await
        .expect_err("second EnableMetrics fails");
    assert!(err.to_string().contains("Metrics already enabled"), "{err}");

    let node = "/org/eclipse/bluechi/node/worker1";
    call(
        &owner,
        node,
        "org.eclipse.bluechi.Node",
        "StartUnit",
        &("simple.service", "replace"),
    )
    .await;

    let seen = read_until(
        &mut own_stream,
        "owner's UnitStateChanged active",
        is_active_state,
    )
    .await;
    assert!(seen.iter().any(|m| m == "UnitNew"), "owner saw {seen:?}");
    let seen = read_until(
        &mut peer_stream,
        "peer's UnitStateChanged active",
        is_active_state,
    )
    .await;
    assert!(seen.iter().any(|m| m == "UnitNew"), "peer saw {seen:?}");

    read_until(&mut metrics, "StartUnitJobMetrics", |m| {
        m.header()
            .member()
            .is_some_and(|x| x == "StartUnitJobMetrics")
            && m.body()
                .deserialize::<(String, String, String, u64, u64)>()
                .is_ok_and(|(n, j, u, _, _)| {
                    n == "worker1"
                        && u == "simple.service"
                        && j.starts_with("/org/eclipse/bluechi/job/")
                })
    })
    .await;

    // The listener matched the monitor's signals but is no peer: unicast never reaches it.
    // Everything the peer got was sent before this point, so a short look suffices.
    let leaked = tokio::time::timeout(Duration::from_millis(300), listen_stream.next()).await;
    assert!(leaked.is_err(), "non-peer received {leaked:?}");

    // Closing the monitor tells the peer.
    call(&owner, &path, MONITOR_IFACE, "Close", &()).await;
    read_until(&mut peer_stream, "PeerRemoved", |m| {
        m.header().member().is_some_and(|x| x == "PeerRemoved")
            && m.body()
                .deserialize::<(String,)>()
                .is_ok_and(|(r,)| r == "monitor closed")
    })
    .await;
}
