//! Issue #8 item B: proxies survive a restart of the source node's agent and of the
//! controller. Either restart loses the controller's proxy monitors and dependency counts;
//! the target, stopped meanwhile behind BlueChi's back, must be started again once the
//! restarted daemon and the agents have found each other.
//! Run `cargo build --workspace --bins` first.

mod robust_support;
mod support_daemons;

use robust_support::*;
use scenario_runner::backend::local::LocalBackend;
use scenario_runner::backend::Backend;

fn restarted_log(backend: &LocalBackend, node: &str, program: &str) -> String {
    std::fs::read_to_string(restarted_log_path(backend, node, program)).unwrap_or_default()
}

/// The source with its proxy, and the target, all active.
async fn start_source(backend: &LocalBackend) {
    let out = backend
        .run_command(
            &argv(&["bluechictl", "start", "main", "requester.service"]),
            DEADLINE,
        )
        .await
        .expect("start source");
    assert_eq!(
        out.stdout, "Unit requester.service StartUnit operation result: done\n",
        "{out:?}"
    );
    wait_unit_state(backend, "main", PROXY, "active").await;
    wait_unit_state(backend, "worker1", "target.service", "active").await;
}

/// Stops the target through worker1's systemd directly, not through BlueChi.
async fn stop_target_behind_bluechis_back(backend: &LocalBackend) {
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
async fn expect_target_restarted(backend: &LocalBackend, restarted: (&str, &str)) {
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
            restarted.1,
            restarted_log(backend, restarted.0, restarted.1)
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
        start_source(&backend).await;

        let agent = daemon_pid(&backend, "bluechi-agent", Some("main")).expect("main's agent");
        kill(agent, "KILL");
        wait_node_status(&bus, "main", "offline").await;
        // The controller dropped main's proxy (StopDep); the target may keep running without
        // StopWhenUnneeded=, so it is stopped by hand: only a new StartDep brings it back.
        stop_target_behind_bluechis_back(&backend).await;

        let config = backend.work_dir().join("main").join("agent.conf");
        let _agent = respawn(&backend, "main", "bluechi-agent", &config);
        wait_node_status(&bus, "main", "online").await;
        expect_target_restarted(&backend, ("main", "bluechi-agent")).await;
    });
}

#[test]
fn controller_restart_restarts_the_target() {
    let rt = runtime();
    rt.block_on(async {
        let backend = cluster("proxy-controller-restart", PROXIED_PAIR).await;
        start_source(&backend).await;

        let controller = daemon_pid(&backend, "bluechi-controller", None).expect("controller");
        kill(controller, "KILL");
        poll("the controller to be gone", || async {
            (!is_alive(controller)).then_some(())
        })
        .await;
        stop_target_behind_bluechis_back(&backend).await;

        let config = backend.work_dir().join("controller.conf");
        let _controller = respawn(&backend, "main", "bluechi-controller", &config);
        let bus = node_bus(&backend, "main").await;
        wait_node_status(&bus, "main", "online").await;
        wait_node_status(&bus, "worker1", "online").await;
        expect_target_restarted(&backend, ("main", "bluechi-controller")).await;
    });
}
