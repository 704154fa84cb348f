//! One test per scenario file: each brings up a local cluster with the built binaries
//! (`cargo build --workspace` first) and compares the transcript with its snapshot.

mod common;

use scenario_runner::backend::BackendKind;
use scenario_runner::{paths, Options};

fn run(name: &str) {
    let _lock = common::cluster_lock();
    let bin_dir = common::real_bin_dir();
    let path = paths::scenarios_dir().join(format!("{name}.scenario"));
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let opts = Options {
        bin_dir: Some(bin_dir),
        ..Options::default()
    };
    match runtime.block_on(scenario_runner::run_file(&path, BackendKind::Local, &opts)) {
        Ok(summary) => {
            assert_eq!(summary.name, name);
            common::assert_nothing_left(&summary.run_id, &summary.work_dir);
        }
        Err(e) => panic!("scenario {name} failed: {e}"),
    }
}

const SCENARIOS: [&str; 14] = [
    "agent-loses-controller",
    "agent-switches-controller",
    "agent-transports",
    "job-of-a-disconnecting-node",
    "monitor-wildcard-node-reconnect",
    "node-not-allowed-stays-out",
    "node-paused-and-resumed",
    "node-unplugged-during-list-units",
    "proxy-controller-restarts",
    "proxy-source-node-reconnects",
    "requires-stops-source",
    "stop-when-unneeded",
    "unit-files-change-while-running",
    "upholds-restarts-target",
];

#[test]
fn requires_stops_source() {
    run("requires-stops-source");
}

#[test]
fn agent_transports() {
    run("agent-transports");
}

#[test]
fn stop_when_unneeded() {
    run("stop-when-unneeded");
}

#[test]
fn upholds_restarts_target() {
    run("upholds-restarts-target");
}

#[test]
fn agent_switches_controller() {
    run("agent-switches-controller");
}

#[test]
fn node_not_allowed_stays_out() {
    run("node-not-allowed-stays-out");
}

#[test]
fn node_paused_and_resumed() {
    run("node-paused-and-resumed");
}

#[test]
fn unit_files_change_while_running() {
    run("unit-files-change-while-running");
}

#[test]
fn agent_loses_controller() {
    run("agent-loses-controller");
}

#[test]
fn job_of_a_disconnecting_node() {
    run("job-of-a-disconnecting-node");
}

#[test]
fn monitor_wildcard_node_reconnect() {
    run("monitor-wildcard-node-reconnect");
}

#[test]
fn node_unplugged_during_list_units() {
    run("node-unplugged-during-list-units");
}

#[test]
fn proxy_controller_restarts() {
    run("proxy-controller-restarts");
}

#[test]
fn proxy_source_node_reconnects() {
    run("proxy-source-node-reconnects");
}

/// A scenario file without a test here would silently never run.
#[test]
fn every_scenario_file_has_a_test() {
    let mut found: Vec<String> = std::fs::read_dir(paths::scenarios_dir())
        .expect("scenarios dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".scenario").map(str::to_string)
        })
        .collect();
    found.sort();
    assert_eq!(found, SCENARIOS.to_vec());
}

/// Every shipped scenario parses (cheap, and needs no binaries).
#[test]
fn every_scenario_file_parses() {
    for name in SCENARIOS {
        let path = paths::scenarios_dir().join(format!("{name}.scenario"));
        let s = scenario_runner::syntax::parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.nodes[..2], ["main", "worker1"], "{name}");
        // Upstream denies every proxy by default: a scenario using one must allow it.
        let uses_proxy = s.units.iter().any(|u| u.text.contains("bluechi-proxy@"));
        if uses_proxy {
            assert!(
                s.controller_conf
                    .contains("AllowDependenciesOn=main,worker1,worker2"),
                "{name} uses a proxy but allows no dependencies"
            );
        }
    }
}
