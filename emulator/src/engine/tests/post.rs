//! ExecStartPost=, ExecStopPost=, KillSignal=/RestartKillSignal=/SendSIGKILL= and the restart
//! policies.

use super::*;

impl H {
    fn svc_result(&self, unit: &str) -> &'static str {
        self.e.unit(unit).map(|u| u.svc.result).unwrap_or("-")
    }

    /// Signals of every Kill action for `unit`, in order.
    fn kill_signals(&self, unit: &str) -> Vec<i32> {
        self.all
            .iter()
            .filter_map(|a| match a {
                Action::Kill {
                    unit: u, signal, ..
                } if u == unit => Some(*signal),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn start_post_runs_after_fork_and_its_failure_fails_the_start() {
    let unit = |post: &str| format!("[Service]\nExecStart=/bin/daemon\nExecStartPost={post}\n");
    let mut h = H::new(
        MapSource::default()
            .with("a.service", &unit("/bin/post-ok"))
            .with("b.service", &unit("/bin/post-bad"))
            .with("c.service", &unit("-/bin/post-bad")),
    );
    h.start("a.service");
    h.assert_state("a.service", "activating", "start-post");
    assert_eq!(h.spawned_for("a.service"), ["/bin/daemon", "/bin/post-ok"]);
    assert!(h.job_results("a.service").is_empty());
    h.exit("a.service", "post-ok", Exit::Code(0));
    h.assert_state("a.service", "active", "running");
    assert_eq!(h.job_results("a.service"), [JobResult::Done]);

    h.start("b.service");
    h.exit("b.service", "post-bad", Exit::Code(1));
    h.assert_state("b.service", "failed", "failed");
    assert_eq!(h.svc_result("b.service"), "exit-code");
    assert_eq!(h.job_results("b.service"), [JobResult::Failed]);

    h.start("c.service");
    h.exit("c.service", "post-bad", Exit::Code(1));
    h.assert_state("c.service", "active", "running");
}

#[test]
fn start_post_waits_for_ready_and_for_every_oneshot_line() {
    let mut h = H::new(
        MapSource::default()
            .with(
                "n.service",
                "[Service]\nType=notify\nExecStart=/bin/daemon\nExecStartPost=/bin/post\n",
            )
            .with(
                "o.service",
                "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/one\nExecStart=/bin/two\nExecStartPost=/bin/post\n",
            ),
    );
    h.start("n.service");
    assert_eq!(h.spawned_for("n.service"), ["/bin/daemon"]);
    let (&t, _) = h
        .live
        .iter()
        .find(|(_, (u, _))| u == "n.service")
        .expect("daemon");
    h.e.notify(t, 1000 + t as u32, "READY=1", h.now);
    h.pump();
    h.assert_state("n.service", "activating", "start-post");
    h.exit("n.service", "post", Exit::Code(0));
    h.assert_state("n.service", "active", "running");

    h.start("o.service");
    h.exit("o.service", "one", Exit::Code(0));
    assert_eq!(h.spawned_for("o.service"), ["/bin/one", "/bin/two"]);
    h.exit("o.service", "two", Exit::Code(0));
    h.assert_state("o.service", "activating", "start-post");
    h.exit("o.service", "post", Exit::Code(0));
    h.assert_state("o.service", "active", "exited");
}

#[test]
fn stop_post_runs_after_stops_and_failed_starts_and_keeps_the_first_failure() {
    let unit = |extra: &str| {
        format!("[Service]\n{extra}ExecStart=/bin/daemon\nExecStopPost=/bin/cleanup\n")
    };
    let mut h = H::new(
        MapSource::default()
            .with("a.service", &unit(""))
            .with("b.service", &unit("ExecStartPre=/bin/false\n")),
    );
    h.start("a.service");
    h.stop("a.service");
    h.assert_state("a.service", "deactivating", "stop-post");
    // A failing ExecStopPost= fails a unit that stopped cleanly ...
    h.exit("a.service", "cleanup", Exit::Code(1));
    h.assert_state("a.service", "failed", "failed");
    assert_eq!(h.svc_result("a.service"), "exit-code");

    // ... but does not replace an earlier failure.
    h.start("a.service");
    h.exit("a.service", "daemon", Exit::Signal(libc::SIGKILL));
    h.assert_state("a.service", "deactivating", "stop-post");
    h.exit("a.service", "cleanup", Exit::Code(1));
    assert_eq!(h.svc_result("a.service"), "signal");

    h.start("b.service");
    h.exit("b.service", "false", Exit::Code(1));
    h.assert_state("b.service", "deactivating", "stop-post");
    h.exit("b.service", "cleanup", Exit::Code(0));
    h.assert_state("b.service", "failed", "failed");
    assert_eq!(h.svc_result("b.service"), "exit-code");
    assert_eq!(h.job_results("b.service"), [JobResult::Failed]);
}

#[test]
fn kill_signal_on_stop_and_restart_kill_signal_on_restart() {
    let mut h = H::new(MapSource::default().with(
        "a.service",
        "[Service]\nExecStart=/bin/daemon\nKillSignal=SIGINT\nRestartKillSignal=9\n",
    ));
    h.start("a.service");
    h.stop("a.service");
    h.assert_state("a.service", "inactive", "dead");
    h.start("a.service");
    let r = h.e.enqueue("a.service", JobType::Restart, "replace", h.now);
    assert!(r.is_ok());
    h.pump();
    h.assert_state("a.service", "active", "running");
    assert_eq!(h.kill_signals("a.service"), [libc::SIGINT, libc::SIGKILL]);
}

#[test]
fn send_sigkill_no_never_kills_and_fails_with_timeout() {
    let mut h = H::new(MapSource::default().with(
        "a.service",
        "[Service]\nExecStart=/bin/daemon\nSendSIGKILL=no\nTimeoutStopSec=1\n",
    ));
    h.auto_kill = false;
    h.start("a.service");
    h.stop("a.service");
    h.assert_state("a.service", "deactivating", "stop-sigterm");
    h.advance(1_000_000);
    h.fire_timers();
    h.assert_state("a.service", "deactivating", "final-sigterm");
    h.advance(1_000_000);
    h.fire_timers();
    h.assert_state("a.service", "failed", "failed");
    assert_eq!(h.svc_result("a.service"), "timeout");
    assert_eq!(h.kill_signals("a.service"), [libc::SIGTERM, libc::SIGTERM]);
}

#[test]
fn restart_policies_follow_result_and_exit_status_sets() {
    use crate::unitfile::{RestartPolicy as P, ServiceDef};
    // exec_main_code: 1 exited, 2 killed (CLD_*), 0 no main process exit recorded.
    let run = |result: &'static str, code: i32, status: i32| crate::engine::unit::ServiceRuntime {
        result,
        exec_main_code: code,
        exec_main_status: status,
        ..Default::default()
    };
    let exit3 = run("exit-code", 1, 3);
    let killed = run("signal", 2, libc::SIGKILL);
    let clean = run("success", 1, 0);
    let timeout = run("timeout", 0, 0);
    let def = |restart| ServiceDef {
        restart,
        ..Default::default()
    };
    let cases = [
        (P::OnSuccess, &clean, true),
        (P::OnSuccess, &exit3, false),
        (P::OnAbnormal, &exit3, false),
        (P::OnAbnormal, &killed, true),
        (P::OnAbnormal, &timeout, true),
        (P::OnAbort, &killed, true),
        (P::OnAbort, &timeout, false),
        (P::OnWatchdog, &killed, false),
        (P::No, &exit3, false),
    ];
    for (policy, svc, want) in cases {
        assert_eq!(
            crate::engine::service::shall_restart(&def(policy), svc),
            want,
            "{policy:?} with {}",
            svc.result
        );
    }
    let prevent = ServiceDef {
        restart: P::Always,
        restart_prevent: (vec![3], vec![]),
        ..Default::default()
    };
    assert!(!crate::engine::service::shall_restart(&prevent, &exit3));
    let force = ServiceDef {
        restart_force: (vec![], vec![libc::SIGKILL]),
        ..Default::default()
    };
    assert!(crate::engine::service::shall_restart(&force, &killed));
    assert!(!crate::engine::service::shall_restart(&force, &exit3));
}

#[test]
fn hanging_exec_stop_gets_kill_signal_before_sigkill() {
    let mut h = H::new(MapSource::default().with(
        "a.service",
        "[Service]\nExecStart=/bin/daemon\nExecStop=/bin/hang\nKillSignal=SIGINT\nTimeoutStopSec=1\n",
    ));
    h.auto_kill = false;
    h.start("a.service");
    h.stop("a.service");
    h.assert_state("a.service", "deactivating", "stop");
    h.advance(1_000_000);
    h.fire_timers();
    h.assert_state("a.service", "deactivating", "stop-sigterm");
    assert_eq!(h.kill_signals("a.service"), [libc::SIGINT]);
    h.advance(1_000_000);
    h.fire_timers();
    h.assert_state("a.service", "deactivating", "stop-sigkill");
    h.exit("a.service", "hang", Exit::Signal(libc::SIGKILL));
    h.exit("a.service", "daemon", Exit::Signal(libc::SIGKILL));
    h.assert_state("a.service", "failed", "failed");
    assert_eq!(h.svc_result("a.service"), "timeout");
    assert_eq!(h.kill_signals("a.service"), [libc::SIGINT, libc::SIGKILL]);
}
