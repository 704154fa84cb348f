//! Issue #8 item B: proxies survive a restart of the source node's agent and of the
//! controller. Either restart loses the controller's proxy monitors and dependency counts;
//! the target, stopped meanwhile behind BlueChi's back, must be started again once the
//! restarted daemon and the agents have found each other.
//! Run `cargo build --workspace --bins` first.

mod robust_support;
mod support_daemons;

use robust_support::*;
use scenario_runner::backend::{Cluster, Daemon};

/// Stops the target through worker1's systemd directly, not through BlueChi.
async fn stop_target_behind_bluechis_back(backend: &Cluster) {
    let bus = node_bus(backend, "worker1").await;
    bus.call_method(
        Some("org.freedesktop.systemd1"),
        "/org/freedesktop/systemd1",
        Some("org.freedesktop.systemd1.Manager"),
        "StopUnit",
        &("target.service", "replace"),
    )
    .await
    .expect("StopUnit target.service");
    wait_unit_state(backend, "worker1", "target.service", "inactive").await;
}

/// The target comes back, and source and proxy stayed up all along.
async fn expect_target_restarted(backend: &Cluster, restarted: (&str, Daemon)) {
    let r = tokio::time::timeout(
        DEADLINE,
        wait_unit_state(backend, "worker1", "target.service", "active"),
    )
    .await;
    if r.is_err() {
        dump_logs(backend);
        eprintln!(
            "--- restarted {}/{}\n{}",
            restarted.0,
            restarted.1.program(),
            daemon_log(backend, restarted.0, restarted.1)
        );
        panic!("the target was not started again after the restart");
    }
    for (node, unit) in [("main", "requester.service"), ("main", PROXY)] {
        let state = backend.unit_property(node, unit, "ActiveState").await;
        assert_eq!(state.as_deref(), Ok("active"), "{unit} on {node}");
    }
}

#[test]
fn source_agent_restart_restarts_the_target() {
    let rt = runtime();
    rt.block_on(async {
        let backend = cluster("proxy-agent-restart", PROXIED_PAIR).await;
        let bus = node_bus(&backend, "main").await;
        start_requester(&backend).await;

        crash(&backend, "main", Daemon::Agent);
        wait_node_status(&bus, "main", "offline").await;
        // The controller dropped main's proxy (StopDep); the target may keep running without
        // StopWhenUnneeded=, so it is stopped by hand: only a new StartDep brings it back.
        stop_target_behind_bluechis_back(&backend).await;

        start_daemon(&backend, "main", Daemon::Agent).await;
        wait_node_status(&bus, "main", "online").await;
        expect_target_restarted(&backend, ("main", Daemon::Agent)).await;
    });
}

#[test]
fn controller_restart_restarts_the_target() {
    let rt = runtime();
    rt.block_on(async {
        let backend = cluster("proxy-controller-restart", PROXIED_PAIR).await;
        start_requester(&backend).await;

        crash(&backend, "main", Daemon::Controller);
        stop_target_behind_bluechis_back(&backend).await;

        start_daemon(&backend, "main", Daemon::Controller).await;
        let bus = node_bus(&backend, "main").await;
        wait_node_status(&bus, "main", "online").await;
        wait_node_status(&bus, "worker1", "online").await;
        expect_target_restarted(&backend, ("main", Daemon::Controller)).await;
    });
}
