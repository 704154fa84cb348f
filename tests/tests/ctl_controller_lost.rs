//! `bluechictl` commands that wait for signals must notice the controller leaving the bus:
//! after a SIGKILL no `JobRemoved` (or any other signal) ever comes, so `start`, `monitor`,
//! `status -w` and `metrics listen` must exit 1 with "Connection to the controller lost"
//! instead of waiting forever. Checked on a real local cluster (controller, agent, emulator).
//! `bluechi-is-online system --monitor` follows the name's owner already; it is checked too.
//! Run `cargo build --workspace --bins` first.

mod robust_support;
mod support_daemons;

use std::time::Duration;

use futures_util::StreamExt;
use robust_support::ctl::Ctl;
use robust_support::*;
use scenario_runner::backend::Daemon;
use scenario_runner::dbus;
use zbus::MessageStream;

const LOST: &str = "Connection to the controller lost\n";

const SCENARIO: &str = "\
nodes: main
controller: main

controller.conf:
    [bluechi-controller]
    AllowedNodeNames=main

unit main long.service:
    [Service]
    Type=oneshot
    ExecStart=/bin/sleep 60

unit main short.service:
    [Service]
    Type=oneshot
    ExecStart=/bin/true
";

#[test]
fn waiting_commands_exit_when_the_controller_is_killed() {
    let rt = runtime();
    rt.block_on(async {
        let backend = cluster("ctl-controller-lost", SCENARIO).await;
        let bus = node_bus(&backend, "main").await;

        // Streaming commands, each shown to be in its event loop by an event it printed.
        let mut monitor = Ctl::spawn(&backend, "monitor", &["monitor", "main"]);
        let mut watch = Ctl::spawn(
            &backend,
            "watch",
            &["status", "main", "short.service", "-w"],
        );
        let mut metrics = Ctl::spawn(&backend, "metrics", &["metrics", "listen"]);
        // No output to show it waits; it has long subscribed by the time the events below
        // are seen, and had it not, it would find the name gone and answer the same.
        let mut is_online = Ctl::spawn_program(
            &backend,
            "is-online",
            "bluechi-is-online",
            &["system", "--monitor"],
        );
        monitor
            .wait_for_output("Subscribing to node 'main' and unit '*'")
            .await;
        watch.wait_for_output("short.service").await;
        metrics
            .wait_for_output("Waiting for metrics signals...")
            .await;
        // A state change of short.service proves that monitor and status -w are subscribed
        // (retried: one of them may not have subscribed when the first change happened).
        let mut seen = false;
        for _ in 0..5 {
            let cmd = argv(&["bluechictl", "start", "main", "short.service"]);
            let out = backend
                .run_on_controller(&cmd, DEADLINE)
                .await
                .expect("start");
            assert!(out.stdout.contains("result: done"), "{out:?}");
            let both_saw_it = || {
                monitor
                    .stdout()
                    .contains("[main] short.service\n\tUnit state changed")
                    && watch.stdout().contains("\x1b[2J")
            };
            seen = bluechi_testkit::poll::until("both to see it", Duration::from_secs(2), || {
                std::future::ready(both_saw_it())
            })
            .await
            .is_ok();
            if seen {
                break;
            }
        }
        assert!(
            seen,
            "no events seen:\n--- monitor\n{}\n--- status -w\n{}",
            monitor.stdout(),
            watch.stdout()
        );

        // A job that will never finish: its JobNew, then one more round trip to the controller,
        // mean the StartUnit reply already went out to bluechictl (JobNew precedes it).
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.eclipse.bluechi.Controller")
            .expect("interface")
            .member("JobNew")
            .expect("member")
            .build();
        let mut job_new = MessageStream::for_match_rule(rule, &bus, None)
            .await
            .expect("JobNew match");
        let mut start = Ctl::spawn(&backend, "start", &["start", "main", "long.service"]);
        tokio::time::timeout(DEADLINE, job_new.next())
            .await
            .unwrap_or_else(|_| panic!("no JobNew:\n{}", start.stderr()));
        list_nodes_within(&bus, DEADLINE).await.expect("ListNodes");
        assert_eq!(
            start.exit_within(Duration::ZERO).await,
            None,
            "{}",
            start.stderr()
        );

        crash(&backend, "main", Daemon::Controller);
        let conn = dbus::connect(&format!(
            "unix:path={}",
            backend.work_dir().join("main").join("bus.sock").display()
        ))
        .await
        .expect("bus");
        poll("the controller to leave the bus", || async {
            let owned = dbus::name_has_owner(&conn, "org.eclipse.bluechi").await;
            (!owned.unwrap_or(true)).then_some(())
        })
        .await;

        // All are judged before asserting, so a failure lists every command that hung.
        let offline = "org.eclipse.bluechi is offline\n";
        let mut outcomes = Vec::new();
        for (ctl, want) in [
            (&mut start, LOST),
            (&mut monitor, LOST),
            (&mut watch, LOST),
            (&mut metrics, LOST),
            (&mut is_online, offline),
        ] {
            let code = ctl.exit_within(DEADLINE).await;
            let stderr = ctl.stderr();
            if (code, stderr.as_str()) != (Some(1), want) {
                outcomes.push((ctl.what.clone(), want, code, stderr));
            }
        }
        assert!(
            outcomes.is_empty(),
            "after the controller was killed, want exit 1 and this stderr; got (None = still \
             running after {DEADLINE:?}):\n{outcomes:#?}"
        );

        // With no controller at all, a waiting command fails on its call as before: it did
        // not lose a controller it never had.
        let cmd = argv(&["bluechictl", "start", "main", "short.service"]);
        let out = backend
            .run_on_controller(&cmd, DEADLINE)
            .await
            .expect("start");
        assert_ne!(out.stderr, LOST, "{out:?}");
        assert!(!out.stderr.is_empty() && out.stdout.is_empty(), "{out:?}");
    });
}
