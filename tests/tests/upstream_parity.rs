//! Behaviours upstream's clients and tests rely on, where our daemons once told themselves
//! apart from upstream's (issue 9): a wildcard monitor across a node's reconnect, the agent's
//! job metrics in `bluechictl metrics listen`, `set-loglevel` of a node with an invalid
//! level (quirk Q2), and the order of things on the peer link around `Register`. Most run on
//! a real local cluster (controller, agents, emulator); the agent's side of the link is also
//! checked against a fake controller (`LoneAgent`), the controller's against a fake agent.
//! Run `cargo build --workspace --bins` first.

mod robust_support;
mod support_contract;
mod support_daemons;

use std::time::Duration;

use bluechi_core::config::TcpOptions;
use futures_util::StreamExt;
use robust_support::ctl::Ctl;
use robust_support::*;
use scenario_runner::backend::{Cluster, Daemon, DaemonAction, Fault};
use scenario_runner::paths;
use scenario_runner::transcript::Exit;
use support_contract::lone_agent::LoneAgent;
use zbus::message::Type;
use zbus::{Connection, Message, MessageStream};

const SCENARIO: &str = "\
nodes: main worker1
controller: main

controller.conf:
    [bluechi-controller]
    AllowedNodeNames=main,worker1

unit worker1 simple.service:
    [Service]
    Type=simple
    ExecStart=/bin/true
    ExecReload=/bin/true
    RemainAfterExit=yes
";

/// One agent and an allowed node no agent runs for: the tests play that node's agent.
const GHOST_SCENARIO: &str = "\
nodes: main
controller: main

controller.conf:
    [bluechi-controller]
    AllowedNodeNames=main,ghost
";
const GHOST: &str = "ghost";

const CTL_DEADLINE: Duration = Duration::from_secs(20);
const AGENT_PATH: &str = "/org/eclipse/bluechi/internal/agent";
const AGENT_IFACE: &str = "org.eclipse.bluechi.internal.Agent";

/// `bluechictl ARGS` on the controller node; panics unless it exits 0 with no output.
async fn ctl_quiet(backend: &Cluster, args: &[&str]) {
    let out = backend
        .run_on_controller(&argv(&[&["bluechictl"], args].concat()), CTL_DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("bluechictl {args:?}: {e}"));
    assert_eq!(
        (out.exit, out.stdout.as_str(), out.stderr.as_str()),
        (Exit::Code(0), "", ""),
        "bluechictl {args:?}"
    );
}

/// `bluechictl ARGS` on the controller node; panics unless it exits 0.
async fn run_ok(backend: &Cluster, args: &[&str]) {
    let out = backend
        .run_on_controller(&argv(&[&["bluechictl"], args].concat()), CTL_DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("bluechictl {args:?}: {e}"));
    assert_eq!(out.exit, Exit::Code(0), "bluechictl {args:?}: {out:?}");
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Spec §3.4.2 (upstream test `monitor-wildcard-node-reconnect`): a `(*, *)` monitor sees a
/// node's wildcard entry removed when its agent goes away and announced again when it is back.
#[test]
fn wildcard_monitor_sees_a_reconnected_node_announced_again() {
    runtime().block_on(async {
        let backend = cluster("wildcard-reconnect", SCENARIO).await;
        let mut monitor = Ctl::spawn(&backend, "monitor", &["monitor"]);
        let announced = "[worker1] *\n\tUnit created (reason: virtual)\n";
        let removed = "[worker1] *\n\tUnit removed (reason: virtual)\n";
        monitor.wait_for_output(announced).await;

        // Killed: its unit's Restart=on-abnormal (the local backend's supervisor) starts it
        // again, and it registers anew.
        let kill = Fault::Daemon {
            node: "worker1".into(),
            daemon: Daemon::Agent,
            action: DaemonAction::Kill,
        };
        backend.fault(&kill).await.expect("kill worker1's agent");
        monitor.wait_for_output(removed).await;
        poll(
            "worker1's units announced again after its reconnect",
            || async { (count(&monitor.stdout(), announced) >= 2).then_some(()) },
        )
        .await;
        // In upstream's order: the node's entry goes, then comes back once; nothing else
        // about it.
        let out = monitor.stdout();
        assert_eq!(count(&out, announced), 2, "{out}");
        let removed_at = out.find(removed).expect("removal");
        let again_at = out.rfind(announced).expect("second announcement");
        assert!(
            removed_at < again_at,
            "announced again before removal:\n{out}"
        );
        assert_eq!(count(&out, removed), 1, "{out}");
    });
}

/// The line `metrics listen` prints for one of worker1's agent job metrics.
fn agent_line(method: &str) -> String {
    format!("[worker1] Agent systemd {method} job on simple.service net measured time: ")
}

/// Spec §3.5: with metrics on, `metrics listen` prints the agent's line for each lifecycle
/// job next to the controller's start metrics; with metrics off the agent sends none.
#[test]
fn metrics_listen_prints_the_agents_job_lines() {
    runtime().block_on(async {
        let backend = cluster("agent-metrics", SCENARIO).await;
        run_ok(&backend, &["metrics", "enable"]).await;
        let mut listen = Ctl::spawn(&backend, "metrics", &["metrics", "listen"]);
        listen
            .wait_for_output("Waiting for metrics signals...\n")
            .await;

        for (cmd, method) in [
            ("start", "StartUnit"),
            ("restart", "RestartUnit"),
            ("reload", "ReloadUnit"),
            ("stop", "StopUnit"),
        ] {
            run_ok(&backend, &[cmd, "worker1", "simple.service"]).await;
            listen.wait_for_output(&agent_line(method)).await;
        }
        // The controller's own start metric is still there (it follows the job's end: the
        // controller fetches the unit's timestamps first).
        listen
            .wait_for_output("[worker1] Job /org/eclipse/bluechi/job/")
            .await;

        // Metrics off: a start sends no agent line. The stop after metrics are back on is
        // sent after the start's would have been, so once its line is there, the start's
        // would be too.
        run_ok(&backend, &["metrics", "disable"]).await;
        run_ok(&backend, &["start", "worker1", "simple.service"]).await;
        run_ok(&backend, &["metrics", "enable"]).await;
        run_ok(&backend, &["stop", "worker1", "simple.service"]).await;
        poll("the agent's second StopUnit line", || async {
            (count(&listen.stdout(), &agent_line("StopUnit")) >= 2).then_some(())
        })
        .await;
        let out = listen.stdout();
        assert_eq!(
            count(&out, &agent_line("StartUnit")),
            1,
            "a StartUnit line while metrics were disabled:\n{out}"
        );

        // The agent's lines carry a time in milliseconds.
        for line in out.lines().filter(|l| l.contains("Agent systemd")) {
            let ms = line
                .rsplit_once("time: ")
                .and_then(|(_, t)| t.strip_suffix("ms"))
                .and_then(|t| t.parse::<f64>().ok());
            assert!(ms.is_some_and(|ms| ms >= 0.0), "no time in {line:?}");
        }
    });
}

/// A node's public object path (names here need no escaping).
fn node_path(node: &str) -> String {
    format!("/org/eclipse/bluechi/node/{node}")
}

/// `Node.SetLogLevel` on the controller's bus with any body; the error name and text if it
/// failed.
async fn set_node_log_level<B>(bus: &Connection, node: &str, body: &B) -> Result<(), String>
where
    B: zbus::export::serde::Serialize + zvariant::DynamicType,
{
    bus.call_method(
        Some("org.eclipse.bluechi"),
        node_path(node).as_str(),
        Some("org.eclipse.bluechi.Node"),
        "SetLogLevel",
        body,
    )
    .await
    .map(|_| ())
    .map_err(|e| match e {
        zbus::Error::MethodError(name, text, _) => format!("{name}: {}", text.unwrap_or_default()),
        other => other.to_string(),
    })
}

/// Spec §2.3 and quirk Q2: upstream answers `Node.SetLogLevel` with an invalid level with
/// success (and the node stays connected) and logs the agent's refusal at debug level; a valid
/// level reaches the agent, a lower one as well as a higher one; a body of the wrong type is
/// refused like any method's; the controller's own `SetLogLevel` still refuses an invalid
/// level.
#[test]
fn set_loglevel_of_a_node_with_an_invalid_level_succeeds_silently() {
    runtime().block_on(async {
        let backend = cluster("set-loglevel", SCENARIO).await;
        let log = backend.work_dir().join("worker1").join("bluechi-agent.log");
        let agent_log = || std::fs::read_to_string(&log).unwrap_or_default();
        let controller_log = backend
            .work_dir()
            .join("main")
            .join("bluechi-controller.log");
        ctl_quiet(&backend, &["set-loglevel", "worker1", "INF"]).await;
        poll("the agent's refusal in the controller's log", || async {
            std::fs::read_to_string(&controller_log)
                .ok()?
                .contains("Failed to set log level call: Invalid input for log level")
                .then_some(())
        })
        .await;
        // The agent kept its level (DEBUG): the request is logged at INFO. The log line is
        // written before the job starts, so it is there once `start` has returned.
        run_ok(&backend, &["start", "worker1", "simple.service"]).await;
        assert!(
            agent_log().contains("Request to StartUnit unit: simple.service"),
            "{}",
            agent_log()
        );
        // A valid level reaches the agent: at ERROR the next request is not logged.
        ctl_quiet(&backend, &["set-loglevel", "worker1", "ERROR"]).await;
        run_ok(&backend, &["stop", "worker1", "simple.service"]).await;
        assert!(
            !agent_log().contains("Request to StopUnit unit: simple.service"),
            "{}",
            agent_log()
        );
        // And back down: at DEBUG the next request is logged again.
        ctl_quiet(&backend, &["set-loglevel", "worker1", "DEBUG"]).await;
        run_ok(&backend, &["start", "worker1", "simple.service"]).await;
        assert_eq!(
            count(&agent_log(), "Request to StartUnit unit: simple.service"),
            2,
            "{}",
            agent_log()
        );

        let bus = node_bus(&backend, "main").await;
        assert_eq!(
            set_node_log_level(&bus, "worker1", &(7u32,)).await,
            Err("org.freedesktop.DBus.Error.InvalidArgs: Invalid arguments".to_string())
        );

        let out = backend
            .run_on_controller(&argv(&["bluechictl", "set-loglevel", "INF"]), CTL_DEADLINE)
            .await
            .expect("bluechictl set-loglevel INF");
        assert_eq!(out.exit, Exit::Code(1), "{out:?}");
        assert_eq!(
            out.stderr, "Failed to issue method call: Invalid input for log level\n",
            "{out:?}"
        );
        assert_eq!(
            node_status(&bus, "worker1").await.as_deref(),
            Some("online")
        );
    });
}

/// Our end of a peer link to the controller, as an agent opens it, with `Register(name)`
/// sent: the stream shows everything the controller sends; the serial is the `Register`'s.
async fn fake_agent(backend: &Cluster, name: &str) -> (MessageStream, u32) {
    let no_keepalive = TcpOptions {
        ip_receive_errors: false,
        keepalive_time: 0,
        keepalive_interval: 0,
        keepalive_count: 0,
    };
    let stream = bluechi_core::link::connect(&controller_address(backend), &no_keepalive)
        .await
        .expect("peer link to the controller");
    let register = Message::method_call("/org/eclipse/bluechi/internal", "Register")
        .and_then(|b| b.interface("org.eclipse.bluechi.internal.Controller"))
        .and_then(|b| b.build(&(name,)))
        .expect("Register");
    let serial = register.primary_header().serial_num().get();
    Connection::from(&stream)
        .send(&register)
        .await
        .expect("send Register");
    (stream, serial)
}

/// The next message from the other end of a peer link, within the deadline.
async fn next_message(stream: &mut MessageStream) -> Message {
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("nothing on the peer link in time")
        .expect("the peer link ended")
        .unwrap_or_else(|e| panic!("the peer link failed: {e}"))
}

/// The calls the controller sent before its reply to `Register` (serial `register`), as
/// `member(string argument)`; panics if registering failed.
async fn calls_before_register_reply(stream: &mut MessageStream, register: u32) -> Vec<String> {
    let mut calls = Vec::new();
    loop {
        let m = next_message(stream).await;
        let h = m.header();
        match m.message_type() {
            Type::MethodCall => {
                let arg = m.body().deserialize::<(String,)>().map(|(a,)| a);
                let member = h.member().map(|x| x.to_string()).unwrap_or_default();
                calls.push(format!("{member}({})", arg.unwrap_or_default()));
            }
            Type::Error if h.reply_serial().is_some_and(|s| s.get() == register) => {
                panic!("Register failed: {m:?}")
            }
            Type::MethodReturn if h.reply_serial().is_some_and(|s| s.get() == register) => {
                return calls;
            }
            _ => {}
        }
    }
}

/// Spec §1.5 step 2: upstream's controller re-sends what a node must know (subscriptions,
/// proxy dependencies, metrics) before it answers `Register`; upstream's agent relies on
/// nothing else, ours answers either order.
#[test]
fn controller_resends_subscriptions_and_metrics_before_answering_register() {
    runtime().block_on(async {
        let backend = cluster("register-order", GHOST_SCENARIO).await;
        run_ok(&backend, &["metrics", "enable"]).await;
        // A (*, *) monitor subscribes every node, the offline ghost too.
        let mut monitor = Ctl::spawn(&backend, "monitor", &["monitor"]);
        monitor
            .wait_for_output("[main] *\n\tUnit created (reason: virtual)\n")
            .await;
        let (mut link, register) = fake_agent(&backend, GHOST).await;
        let calls = calls_before_register_reply(&mut link, register).await;
        assert_eq!(calls, ["Subscribe(*)", "EnableMetrics()"]);
    });
}

/// Spec §2.3: a `Node.SetLogLevel` whose agent call never gets an answer (here the node goes
/// away meanwhile) fails the way every such call does, not as an agent refusal.
#[test]
fn set_loglevel_cut_off_by_a_disconnect_fails_like_any_node_call() {
    runtime().block_on(async {
        let backend = cluster("set-loglevel-cut-off", GHOST_SCENARIO).await;
        let (mut link, register) = fake_agent(&backend, GHOST).await;
        calls_before_register_reply(&mut link, register).await;
        let bus = node_bus(&backend, "main").await;
        let call = {
            let bus = bus.clone();
            tokio::spawn(async move { set_node_log_level(&bus, GHOST, &("DEBUG",)).await })
        };
        loop {
            let m = next_message(&mut link).await;
            if m.header().member().is_some_and(|x| x == "SetLogLevel") {
                break;
            }
        }
        Connection::from(&link)
            .close()
            .await
            .expect("close the peer link");
        let result = tokio::time::timeout(DEADLINE, call)
            .await
            .expect("SetLogLevel never answered")
            .expect("SetLogLevel task");
        assert_eq!(
            result,
            Err("org.freedesktop.DBus.Error.Failed: Request cancelled".to_string())
        );
    });
}

/// A call on the agent's internal interface, from our end of its peer link.
async fn agent_call<B>(link: &Connection, member: &str, body: &B) -> Result<(), String>
where
    B: zbus::export::serde::Serialize + zvariant::DynamicType,
{
    link.call_method(None::<&str>, AGENT_PATH, Some(AGENT_IFACE), member, body)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The next signal the agent emits, as `member(arguments)` with its path if not the agent's.
async fn next_agent_signal(events: &mut MessageStream) -> String {
    loop {
        let m = next_message(events).await;
        if m.message_type() != Type::Signal {
            continue;
        }
        let h = m.header();
        let member = h.member().map(|x| x.to_string()).unwrap_or_default();
        let path = h.path().map(|p| p.to_string()).unwrap_or_default();
        let args = match member.as_str() {
            "UnitNew" => m
                .body()
                .deserialize::<(String, String)>()
                .map(|a| format!("{a:?}")),
            "JobDone" => m
                .body()
                .deserialize::<(u32, String)>()
                .map(|a| format!("{a:?}")),
            "AgentJobMetrics" => m
                .body()
                .deserialize::<(String, String, u64)>()
                .map(|(u, method, _)| format!("{:?}", (u, method))),
            _ => continue,
        };
        let args = args.unwrap_or_else(|e| format!("unreadable body: {e}"));
        return match path.as_str() {
            AGENT_PATH => format!("{member}{args}"),
            _ => format!("{path} {member}{args}"),
        };
    }
}

fn bin_dir() -> std::path::PathBuf {
    let bin = paths::bin_dir().expect("binary directory");
    paths::check_binaries(&bin).unwrap_or_else(|e| panic!("{e}"));
    bin
}

/// The agent's half of the registration order: a controller (upstream's, and ours) sends
/// `Subscribe` before it answers `Register`, and the virtual event must come back anyway.
#[test]
fn agent_answers_a_subscribe_sent_before_its_register_reply() {
    runtime().block_on(async {
        let (agent, register) = LoneAgent::start_unanswered(&bin_dir(), &[]).await;
        let mut events = MessageStream::from(&agent.link);
        agent_call(&agent.link, "Subscribe", &("*",))
            .await
            .expect("Subscribe(*) before the Register reply");
        assert_eq!(
            next_agent_signal(&mut events).await,
            r#"UnitNew("*", "virtual")"#
        );
        agent
            .link
            .reply(&register.header(), &())
            .await
            .expect("reply to Register");
    });
}

/// Spec §3.4.1: the agent's subscriptions belong to one link. After the link drops (the agent
/// keeps running), the controller's renewed subscriptions are new ones: `*` is announced
/// again and nothing is "already subscribed".
#[test]
fn agent_subscriptions_end_with_their_link() {
    runtime().block_on(async {
        let mut agent = LoneAgent::start(&bin_dir()).await;
        for round in ["the first link", "the link after a drop"] {
            let mut events = MessageStream::from(&agent.link);
            for unit in ["*", "not-loaded.service"] {
                agent_call(&agent.link, "Subscribe", &(unit,))
                    .await
                    .unwrap_or_else(|e| panic!("Subscribe({unit}) on {round}: {e}"));
            }
            assert_eq!(
                next_agent_signal(&mut events).await,
                r#"UnitNew("*", "virtual")"#,
                "on {round}"
            );
            if round == "the first link" {
                agent.drop_link_and_reconnect().await;
            }
        }
    });
}

/// Spec §3.5 and upstream's order: a finished job's `AgentJobMetrics` comes before its
/// `JobDone`, so the time is known when a client sees the job go.
#[test]
fn agent_sends_job_metrics_before_job_done() {
    runtime().block_on(async {
        let unit = "[Service]\nType=simple\nExecStart=/bin/true\nRemainAfterExit=yes\n";
        let agent =
            LoneAgent::start_with_units(&bin_dir(), &[("simple.service", unit)]).await;
        agent_call(&agent.link, "EnableMetrics", &())
            .await
            .expect("EnableMetrics");
        let mut events = MessageStream::from(&agent.link);
        agent_call(&agent.link, "StartUnit", &("simple.service", "replace", 7u32))
            .await
            .expect("StartUnit");
        let first = next_agent_signal(&mut events).await;
        let second = next_agent_signal(&mut events).await;
        assert_eq!(
            [first, second],
            [
                r#"/org/eclipse/bluechi/internal/agent/metrics AgentJobMetrics("simple.service", "StartUnit")"#.to_string(),
                r#"JobDone(7, "done")"#.to_string(),
            ]
        );
    });
}
