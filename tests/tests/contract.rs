//! The D-Bus contract: every object our daemons serve, introspected on a live local cluster,
//! must carry exactly the contract's interfaces (`tests/contract/*.xml`, copied from
//! `shared/api`) — same members, argument names, types and directions, property types and
//! access. Run `cargo build --workspace --bins` first (or set BLUECHI_BIN_DIR).

mod support_contract;
mod support_daemons;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bluechi_core::config::TcpOptions;
use bluechi_testkit::poll::{self, Step};
use scenario_runner::backend::{BackendKind, BackendOptions, Cluster};
use scenario_runner::paths;
use scenario_runner::syntax::{Scenario, UnitFile};
use support_contract::lone_agent::LoneAgent;
use support_contract::{check_object, compare, load_contract, parse, Interface};
use zbus::Connection;

const CONTROLLER: &str = "org.eclipse.bluechi";
const AGENT: &str = "org.eclipse.bluechi.Agent";
const DEADLINE: Duration = Duration::from_secs(15);
/// Keeps the job of a `StartUnit` running long enough to introspect its object.
const SLOW_UNIT: &str = "slow.service";

fn scenario() -> Scenario {
    Scenario {
        name: "contract".into(),
        nodes: vec!["main".into(), "worker-1".into()],
        controller: "main".into(),
        controller_conf: "[bluechi-controller]\nAllowedNodeNames=main,worker-1\n".into(),
        agent_confs: Vec::new(),
        units: vec![UnitFile {
            node: "worker-1".into(),
            name: SLOW_UNIT.into(),
            text: "[Service]\nType=oneshot\nExecStart=/bin/sleep 3\n".into(),
        }],
        steps: Vec::new(),
        redactions: Vec::new(),
        offline: Vec::new(),
    }
}

async fn cluster() -> Cluster {
    let bin_dir = paths::bin_dir().expect("binary directory");
    let mut backend = Cluster::new(BackendKind::Local, &BackendOptions::new(bin_dir))
        .unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = backend.start(&scenario()).await {
        for (name, tail) in backend.log_tails(20) {
            eprintln!("--- {name}\n{tail}");
        }
        panic!("cluster did not come up: {e}");
    }
    backend
}

/// The local backend's bus for `node` (it listens on `<run dir>/<node>/bus.sock`).
async fn node_bus(backend: &Cluster, node: &str) -> Connection {
    let socket = backend.work_dir().join(node).join("bus.sock");
    let address = format!("unix:path={}", socket.display());
    zbus::connection::Builder::address(address.as_str())
        .expect("bus address")
        .build()
        .await
        .unwrap_or_else(|e| panic!("connect to {node}'s bus: {e}"))
}

async fn introspect(conn: &Connection, dest: Option<&str>, path: &str) -> Result<String, String> {
    let reply = tokio::time::timeout(
        DEADLINE,
        conn.call_method(
            dest,
            path,
            Some("org.freedesktop.DBus.Introspectable"),
            "Introspect",
            &(),
        ),
    )
    .await
    .map_err(|_| format!("Introspect {path}: no reply"))?
    .map_err(|e| format!("Introspect {path}: {e}"))?;
    reply
        .body()
        .deserialize::<String>()
        .map_err(|e| format!("Introspect {path}: {e}"))
}

type Objects = BTreeMap<String, (Vec<String>, String)>;

/// Introspects `paths` directly, recording each object's non-standard interfaces and text.
async fn fetch(conn: &Connection, dest: &str, paths: &[String]) -> (Objects, Vec<String>) {
    let mut found = Objects::new();
    let mut problems = Vec::new();
    for path in paths {
        match introspect(conn, Some(dest), path).await {
            Ok(xml) => {
                let own = parse(&xml, path)
                    .map(|o| own_interfaces(&o))
                    .unwrap_or_default();
                found.insert(path.clone(), (own, xml));
            }
            Err(e) => problems.push(format!("{dest}: {e}")),
        }
    }
    (found, problems)
}

fn own_interfaces(obj: &support_contract::Object) -> Vec<String> {
    obj.interfaces
        .keys()
        .filter(|i| !support_contract::STANDARD.contains(&i.as_str()))
        .cloned()
        .collect()
}

/// Walks the object tree from `root` by the children each object lists. A listed child that
/// cannot be introspected is a problem (sd-bus never lists one).
async fn walk(conn: &Connection, dest: &str, root: &str) -> (Objects, Vec<String>) {
    let mut found = Objects::new();
    let mut problems = Vec::new();
    let mut todo = vec![root.to_string()];
    while let Some(path) = todo.pop() {
        let xml = match introspect(conn, Some(dest), &path).await {
            Ok(x) => x,
            Err(e) => {
                problems.push(format!("{dest}: {e}"));
                continue;
            }
        };
        match parse(&xml, &path) {
            Ok(obj) => {
                let base = path.trim_end_matches('/');
                todo.extend(obj.children.iter().map(|c| format!("{base}/{c}")));
                found.insert(path, (own_interfaces(&obj), xml));
            }
            Err(e) => problems.push(format!("{dest}: {e}")),
        }
    }
    (found, problems)
}

/// Checks every object of a walk against the contract and requires `must_see` among them.
fn check_walk(
    dest: &str,
    objects: &Objects,
    must_see: &[(&str, &str)],
    contract: &BTreeMap<String, Interface>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, iface) in must_see {
        match objects.get(*path) {
            None => problems.push(format!("{dest}: object {path} not found in the tree")),
            Some((own, _)) if !own.iter().any(|i| i == iface) => {
                problems.push(format!("{dest}: {path} lacks {iface} (has {own:?})"))
            }
            Some(_) => {}
        }
    }
    for (path, (own, xml)) in objects {
        let own: Vec<&str> = own.iter().map(String::as_str).collect();
        problems.extend(
            check_object(path, xml, &own, contract)
                .into_iter()
                .map(|p| format!("{dest}: {p}")),
        );
    }
    problems
}

fn assert_no_problems(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} difference(s) from the contract:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// Serialises cluster runs within this test binary (2 cores, shared).
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn controller_and_agent_objects_match_the_contract() {
    let _lock = CLUSTER.lock().await;
    let contract = load_contract();
    let backend = cluster().await;
    let main = node_bus(&backend, "main").await;

    // A job object exists only while its job runs: start a slow oneshot and look at once.
    let reply = main
        .call_method(
            Some(CONTROLLER),
            "/org/eclipse/bluechi/node/worker_2d1",
            Some("org.eclipse.bluechi.Node"),
            "StartUnit",
            &(SLOW_UNIT, "replace"),
        )
        .await
        .expect("StartUnit on worker-1");
    let job: zvariant::OwnedObjectPath = reply.body().deserialize().expect("job path");
    let job = job.to_string();

    let nodes: Vec<(String, zvariant::OwnedObjectPath, String, String)> = main
        .call_method(
            Some(CONTROLLER),
            "/org/eclipse/bluechi",
            Some("org.eclipse.bluechi.Controller"),
            "ListNodes",
            &(),
        )
        .await
        .expect("ListNodes")
        .body()
        .deserialize()
        .expect("a(soss)");
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let mut paths = vec!["/org/eclipse/bluechi".to_string(), job.clone()];
    paths.extend(nodes.iter().map(|n| n.1.to_string()));
    let (objects, mut problems) = fetch(&main, CONTROLLER, &paths).await;
    let must_see = [
        ("/org/eclipse/bluechi", "org.eclipse.bluechi.Controller"),
        ("/org/eclipse/bluechi/node/main", "org.eclipse.bluechi.Node"),
        (
            "/org/eclipse/bluechi/node/worker_2d1",
            "org.eclipse.bluechi.Node",
        ),
        (job.as_str(), "org.eclipse.bluechi.Job"),
    ];
    problems.extend(check_walk(CONTROLLER, &objects, &must_see, &contract));

    for node in ["main", "worker-1"] {
        let bus = node_bus(&backend, node).await;
        let (objects, walk_problems) = walk(&bus, AGENT, "/").await;
        problems.extend(walk_problems);
        let must_see = [("/org/eclipse/bluechi", "org.eclipse.bluechi.Agent")];
        let who = format!("{AGENT} on {node}");
        problems.extend(check_walk(&who, &objects, &must_see, &contract));
        problems.extend(ancestors_problems(&bus, AGENT).await);
    }
    drop(backend);
    assert_no_problems(problems);
}

/// `/`, `/org` and `/org/eclipse` must list the next path element, as sd-bus does for the
/// ancestors of every registered object.
async fn ancestors_problems(conn: &Connection, dest: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, child) in [
        ("/", "org"),
        ("/org", "eclipse"),
        ("/org/eclipse", "bluechi"),
    ] {
        let obj = match introspect(conn, Some(dest), path).await {
            Ok(xml) => parse(&xml, path),
            Err(e) => Err(e),
        };
        match obj {
            Ok(o) if o.children.iter().any(|c| c == child) => {}
            Ok(o) => problems.push(format!(
                "{dest}: {path} lists children {:?}, not {child}",
                o.children
            )),
            Err(e) => problems.push(format!("{dest}: {e}")),
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread")]
async fn controller_tree_is_walkable_from_the_root() {
    let _lock = CLUSTER.lock().await;
    let contract = load_contract();
    let backend = cluster().await;
    let main = node_bus(&backend, "main").await;
    let mut problems = ancestors_problems(&main, CONTROLLER).await;
    let (objects, walk_problems) = walk(&main, CONTROLLER, "/").await;
    problems.extend(walk_problems);
    let must_see = [("/org/eclipse/bluechi", "org.eclipse.bluechi.Controller")];
    problems.extend(check_walk(CONTROLLER, &objects, &must_see, &contract));
    drop(backend);
    assert_no_problems(problems);
}

/// The controller's port, from the configuration the local backend wrote.
fn controller_port(work_dir: &Path) -> u16 {
    let conf = work_dir.join("controller.conf");
    let text = std::fs::read_to_string(&conf).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
    text.lines()
        .find_map(|l| l.strip_prefix("ControllerPort="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}: no ControllerPort", conf.display()))
}

fn no_tcp_options() -> TcpOptions {
    TcpOptions {
        ip_receive_errors: false,
        keepalive_time: 0,
        keepalive_interval: 0,
        keepalive_count: 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn controller_peer_link_object_matches_the_contract() {
    let _lock = CLUSTER.lock().await;
    let contract = load_contract();
    let backend = cluster().await;
    let address = format!(
        "tcp:host=127.0.0.1,port={}",
        controller_port(backend.work_dir())
    );
    // An anonymous peer: connected, never registered.
    let stream = bluechi_core::link::connect(&address, &no_tcp_options())
        .await
        .unwrap_or_else(|e| panic!("peer link to {address}: {e}"));
    let conn = Connection::from(stream);
    let mut problems = Vec::new();
    // The internal Controller interface, and the bus daemon's Hello that bus-style clients
    // (dasbus builds its proxies from introspection) call on the same link.
    for (path, iface) in [
        (
            "/org/eclipse/bluechi/internal",
            "org.eclipse.bluechi.internal.Controller",
        ),
        ("/org/freedesktop/DBus", "org.freedesktop.DBus"),
    ] {
        let xml = introspect(&conn, Some(CONTROLLER), path)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        problems.extend(check_object(path, &xml, &[iface], &contract));
    }
    // Both are reachable by walking down from the root.
    let org = introspect(&conn, Some(CONTROLLER), "/org")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let children = parse(&org, "/org").map(|o| o.children).unwrap_or_default();
    if children != ["eclipse", "freedesktop"] {
        problems.push(format!(
            "/org lists {children:?}, not [eclipse, freedesktop]"
        ));
    }
    let hello = conn
        .call_method(
            Some(CONTROLLER),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "Hello",
            &(),
        )
        .await
        .and_then(|m| m.body().deserialize::<String>())
        .unwrap_or_else(|e| panic!("Hello on the peer link: {e}"));
    if hello != ":1.0" {
        problems.push(format!("Hello returned {hello:?}, not \":1.0\""));
    }
    drop(conn);
    drop(backend);
    assert_no_problems(problems);
}

async fn introspect_peer(agent: &LoneAgent, path: &str) -> Result<String, String> {
    introspect(&agent.link, None, path).await
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_peer_link_objects_match_the_contract() {
    let contract = load_contract();
    let bin_dir = paths::bin_dir().expect("binary directory");
    paths::check_binaries(&bin_dir).unwrap_or_else(|e| panic!("{e}"));
    let agent = LoneAgent::start(&bin_dir).await;
    let mut problems = Vec::new();
    let mut check = |path: &str, xml: Result<String, String>, ifaces: &[&str]| match xml {
        Ok(x) => problems.extend(check_object(path, &x, ifaces, &contract)),
        Err(e) => problems.push(e),
    };

    let internal = "/org/eclipse/bluechi/internal/agent";
    check(
        internal,
        introspect_peer(&agent, internal).await,
        &["org.eclipse.bluechi.internal.Agent"],
    );

    // The metrics object exists only while metrics are enabled.
    let metrics = "/org/eclipse/bluechi/internal/agent/metrics";
    assert!(
        introspect_peer(&agent, metrics).await.is_err(),
        "metrics object before EnableMetrics"
    );
    agent
        .link
        .call_method(
            None::<&str>,
            internal,
            Some("org.eclipse.bluechi.internal.Agent"),
            "EnableMetrics",
            &(),
        )
        .await
        .expect("EnableMetrics");
    check(
        metrics,
        introspect_peer(&agent, metrics).await,
        &["org.eclipse.bluechi.internal.Agent.Metrics"],
    );

    // A proxy object appears with CreateProxy, whose reply is deferred: send it, don't wait.
    let public = zbus::connection::Builder::address(agent.bus_address.as_str())
        .expect("bus address")
        .build()
        .await
        .expect("connect to the agent's bus");
    let create = zbus::Message::method_call("/org/eclipse/bluechi", "CreateProxy")
        .and_then(|b| b.destination("org.eclipse.bluechi.Agent"))
        .and_then(|b| b.interface("org.eclipse.bluechi.Agent"))
        .and_then(|b| b.build(&("requester.service", "other", "target.service")))
        .expect("CreateProxy message");
    public.send(&create).await.expect("send CreateProxy");
    let proxy = "/org/eclipse/bluechi/internal/proxy/1";
    let xml = poll::until("the proxy object", DEADLINE, || async {
        introspect_peer(&agent, proxy).await.map(Some)
    })
    .await
    .map_err(|e| e.to_string());
    check(proxy, xml, &["org.eclipse.bluechi.internal.Proxy"]);

    // Parents list their children, so a generic client can find every object.
    let parent = introspect_peer(&agent, "/org/eclipse/bluechi/internal")
        .await
        .and_then(|x| parse(&x, "/org/eclipse/bluechi/internal"));
    match parent {
        Ok(o) if o.children == ["agent", "proxy"] => {}
        Ok(o) => problems.push(format!(
            "/org/eclipse/bluechi/internal lists {:?}",
            o.children
        )),
        Err(e) => problems.push(e),
    }
    drop(public);
    drop(agent);
    assert_no_problems(problems);
}

/// `SwitchController` is advertised by the contract, so it must work: same address refused,
/// a new one announced (`ControllerAddress`) and registered with.
#[tokio::test(flavor = "multi_thread")]
async fn agent_switch_controller_reconnects_to_the_new_address() {
    let bin_dir = paths::bin_dir().expect("binary directory");
    paths::check_binaries(&bin_dir).unwrap_or_else(|e| panic!("{e}"));
    let agent = LoneAgent::start(&bin_dir).await;
    let public = zbus::connection::Builder::address(agent.bus_address.as_str())
        .expect("bus address")
        .build()
        .await
        .expect("connect to the agent's bus");
    let switch = |address: String| {
        let public = public.clone();
        async move {
            public
                .call_method(
                    Some(AGENT),
                    "/org/eclipse/bluechi",
                    Some("org.eclipse.bluechi.Agent"),
                    "SwitchController",
                    &(address,),
                )
                .await
        }
    };
    let err = switch(agent.controller_address.clone())
        .await
        .expect_err("switching to the current controller");
    assert!(
        err.to_string()
            .contains("Failed to switch controller because already connected to the controller"),
        "{err}"
    );

    let second = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("second controller");
    let port = second.local_addr().expect("address").port();
    let new_address = format!("tcp:host=127.0.0.1,port={port}");
    let accepted = tokio::spawn(support_contract::lone_agent::accept_registration(second));
    switch(new_address.clone()).await.expect("SwitchController");
    let _new_link = accepted
        .await
        .expect("the agent registered with the new controller");

    let props = zbus::fdo::PropertiesProxy::builder(&public)
        .destination(AGENT)
        .and_then(|b| b.path("/org/eclipse/bluechi"))
        .expect("properties proxy")
        .build()
        .await
        .expect("properties proxy");
    let iface = zbus::names::InterfaceName::try_from("org.eclipse.bluechi.Agent").expect("name");
    let what = format!("the agent to be online at {new_address}");
    poll::until(what, DEADLINE, || async {
        let all = props.get_all(iface.clone()).await.expect("GetAll");
        let text = |k: &str| {
            all.get(k)
                .and_then(|v| String::try_from(v.clone()).ok())
                .unwrap_or_default()
        };
        if text("Status") == "online" && text("ControllerAddress") == new_address {
            return Step::Done(());
        }
        Step::Pending(format!(
            "Status={} ControllerAddress={}",
            text("Status"),
            text("ControllerAddress")
        ))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_comparison_catches_changed_signatures() {
    let contract = load_contract();
    let node = contract
        .get("org.eclipse.bluechi.Node")
        .expect("Node in the contract")
        .clone();
    assert_eq!(compare("Node", &node, &node), Vec::<String>::new());

    let mut changed = node.clone();
    let start = changed.methods.get_mut("StartUnit").expect("StartUnit");
    start[1].ty = "u".into();
    let stop = changed.methods.get_mut("StopUnit").expect("StopUnit");
    stop[2].direction = "in".into();
    let kill = changed.methods.get_mut("KillUnit").expect("KillUnit");
    kill[0].name = "unit".into();
    changed.methods.remove("ThawUnit");
    changed.methods.insert("Frobnicate".into(), Vec::new());
    changed.properties.get_mut("Status").expect("Status").access = "readwrite".into();
    changed.properties.remove("PeerIp");
    let problems = compare("Node", &changed, &node);
    let expect = [
        "Node: method KillUnit has arguments (in unit:s, in who:s, in signal:i) but the \
         contract says (in name:s, in who:s, in signal:i)",
        "Node: method StartUnit has arguments (in name:s, in mode:u, out job:o) but the \
         contract says (in name:s, in mode:s, out job:o)",
        "Node: method StopUnit has arguments (in name:s, in mode:s, in job:o) but the \
         contract says (in name:s, in mode:s, out job:o)",
        "Node: method ThawUnit is missing",
        "Node: method Frobnicate is not in the contract",
        "Node: property PeerIp is missing",
        "Node: property Status is s (readwrite) but the contract says s (read)",
    ];
    assert_eq!(problems, expect);

    let controller = contract
        .get("org.eclipse.bluechi.Controller")
        .expect("Controller in the contract");
    let mut changed = controller.clone();
    changed
        .signals
        .get_mut("JobRemoved")
        .expect("JobRemoved")
        .pop();
    let problems = compare("Controller", &changed, controller);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("Controller: signal JobRemoved has arguments"));
}

#[test]
fn check_object_reports_missing_and_unexpected_interfaces() {
    let contract = load_contract();
    let xml = "<node><interface name=\"org.freedesktop.DBus.Peer\"/>\
               <interface name=\"org.example.Extra\"/></node>";
    let problems = check_object("/x", xml, &["org.eclipse.bluechi.Job"], &contract);
    assert_eq!(
        problems,
        [
            "/x: standard interface org.freedesktop.DBus.Introspectable is missing",
            "/x: standard interface org.freedesktop.DBus.Properties is missing",
            "/x: interface org.eclipse.bluechi.Job is missing",
            "/x: unexpected interface org.example.Extra",
        ]
    );
    assert!(parse("<node><interface></node>", "/bad")
        .unwrap_err()
        .starts_with("/bad: invalid XML"));
}

#[test]
fn vendored_contract_matches_shared_api() {
    // The copy exists so the test runs from a clean clone; when the shared contract is present
    // (the workbench), the copy must not have drifted.
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/api");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        return;
    };
    let started = Instant::now();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "xml") {
            continue;
        }
        let name = path.file_name().expect("file name");
        let ours = support_contract::contract_dir().join(name);
        let theirs = std::fs::read(&path).expect("shared XML");
        let copy = std::fs::read(&ours).unwrap_or_else(|e| panic!("{}: {e}", ours.display()));
        assert!(
            theirs == copy,
            "{} differs from {}",
            ours.display(),
            path.display()
        );
    }
    assert!(started.elapsed() < DEADLINE);
}
