//! Upstream defects we fix without changing the wire protocol (README "Deliberate
//! differences"), each checked on a real local cluster:
//! Q1 jobs of a node that disconnects finish ("failed"), Q7 proxies keep working after the
//! source agent reconnects, Q20 jobs merged by systemd complete every waiting client.
//! Run `cargo build --workspace --bins` first.

mod robust_support;
mod support_daemons;

use robust_support::*;
use scenario_runner::backend::Daemon;
use scenario_runner::transcript::Exit;

const Q1: &str = "\
nodes: main worker1
controller: main

controller.conf:
    [bluechi-controller]
    AllowedNodeNames=main,worker1

unit worker1 long.service:
    [Service]
    Type=oneshot
    ExecStart=/bin/sleep 30
";

#[test]
fn q1_jobs_of_a_killed_agent_end_as_failed() {
    let rt = runtime();
    rt.block_on(async {
        let backend = cluster("robust-q1", Q1).await;
        let bus = node_bus(&backend, "main").await;
        let cmd = argv(&["bluechictl", "start", "worker1", "long.service"]);
        let start = backend.run_on_controller(&cmd, DEADLINE);
        let kill_when_running = async {
            // The job runs once systemd started the service; then the agent dies hard.
            wait_unit_state(&backend, "worker1", "long.service", "activating").await;
            crash(&backend, "worker1", Daemon::Agent);
            wait_node_status(&bus, "worker1", "offline").await;
        };
        let (out, ()) = tokio::join!(start, kill_when_running);
        let out = out.unwrap_or_else(|e| {
            dump_logs(&backend);
            panic!("bluechictl start never returned: {e}")
        });
        assert_eq!(
            out.stdout, "Unit long.service StartUnit operation result: failed\n",
            "stderr: {}",
            out.stderr
        );
        assert!(matches!(out.exit, Exit::Code(_)), "{:?}", out.exit);
        assert!(list_nodes_within(&bus, DEADLINE).await.is_ok());
    });
}

#[test]
fn q7_proxy_reacts_after_the_source_agent_reconnects() {
    let rt = runtime();
    rt.block_on(async {
        let backend = cluster("robust-q7", PROXIED_PAIR).await;
        let bus = node_bus(&backend, "main").await;
        start_requester(&backend).await;

        // A new link for the same agent: switch to the same controller under another name.
        let agent_bus = node_bus(&backend, "main").await;
        let other = format!("tcp:host=localhost,port={}", controller_port(&backend));
        agent_bus
            .call_method(
                Some("org.eclipse.bluechi.Agent"),
                "/org/eclipse/bluechi",
                Some("org.eclipse.bluechi.Agent"),
                "SwitchController",
                &(other.as_str(),),
            )
            .await
            .expect("SwitchController");
        poll("main to reconnect on the new address", || async {
            let addr = agent_bus
                .call_method(
                    Some("org.eclipse.bluechi.Agent"),
                    "/org/eclipse/bluechi",
                    Some("org.freedesktop.DBus.Properties"),
                    "Get",
                    &("org.eclipse.bluechi.Agent", "ControllerAddress"),
                )
                .await
                .ok()?;
            let (v,): (zvariant::OwnedValue,) = addr.body().deserialize().ok()?;
            let addr = String::try_from(v).ok()?;
            let online = node_status(&bus, "main").await.as_deref() == Some("online");
            (addr == other && online).then_some(())
        })
        .await;
        // The proxy re-announced itself: the dependency on worker1 is held again.
        wait_unit_state(&backend, "worker1", "target.service", "active").await;
        wait_unit_state(&backend, "main", PROXY, "active").await;

        // The proxy still follows its target: the target going down takes the proxy down.
        let out = backend
            .run_on_controller(
                &argv(&["bluechictl", "stop", "worker1", "target.service"]),
                DEADLINE,
            )
            .await
            .expect("stop target");
        assert!(out.stdout.ends_with("result: done\n"), "{out:?}");
        let r = tokio::time::timeout(
            DEADLINE * 2,
            wait_unit_state(&backend, "main", PROXY, "inactive"),
        )
        .await;
        if r.is_err() {
            dump_logs(&backend);
            panic!("the proxy ignored its target stopping after the reconnect");
        }
    });
}

const Q20: &str = "\
nodes: main
controller: main

controller.conf:
    [bluechi-controller]
    AllowedNodeNames=main

unit main slow.service:
    [Service]
    Type=oneshot
    ExecStart=/bin/sleep 2
";

#[test]
fn q20_merged_jobs_complete_every_client() {
    let rt = runtime();
    rt.block_on(async {
        let backend = cluster("robust-q20", Q20).await;
        let cmd = argv(&["bluechictl", "start", "main", "slow.service"]);
        let (a, b) = tokio::join!(
            backend.run_on_controller(&cmd, DEADLINE),
            backend.run_on_controller(&cmd, DEADLINE)
        );
        for out in [a, b] {
            let out = out.unwrap_or_else(|e| {
                dump_logs(&backend);
                panic!("a client waiting on a merged job hangs: {e}")
            });
            assert_eq!(
                out.stdout, "Unit slow.service StartUnit operation result: done\n",
                "stderr: {}",
                out.stderr
            );
            assert_eq!(out.exit, Exit::Code(0));
        }
    });
}
