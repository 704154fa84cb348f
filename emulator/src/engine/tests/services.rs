//! Type=notify/forking/exec, start timeouts, ExecStartPre= and the start rate limit.

use super::*;

impl H {
    /// Token of the live process of `unit` whose argv contains `needle`.
    pub(super) fn token(&self, unit: &str, needle: &str) -> u64 {
        self.live
            .iter()
            .find(|(_, (u, argv))| u == unit && argv.iter().any(|a| a.contains(needle)))
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no live process {needle} for {unit}"))
    }

    pub(super) fn notify(&mut self, token: u64, pid: u32, msg: &str) {
        self.e.notify(token, pid, msg, self.now);
        self.pump();
    }

    fn result(&self, unit: &str) -> &'static str {
        self.e.unit(unit).map(|u| u.svc.result).unwrap_or("-")
    }
}

const NOTIFY: &str = "[Service]\nType=notify\nExecStart=/bin/daemon\n";

#[test]
fn notify_start_finishes_on_ready_from_main_pid_only() {
    let mut h = H::new(MapSource::default().with("a.service", NOTIFY));
    h.start("a.service");
    h.assert_state("a.service", "activating", "start");
    assert!(h.e.has_jobs());
    let t = h.token("a.service", "daemon");
    // NotifyAccess=main (the default for notify) ignores other processes of the unit.
    h.notify(t, 4242, "READY=1");
    h.assert_state("a.service", "activating", "start");
    h.notify(t, 1000 + t as u32, "STATUS=serving\nREADY=1");
    h.assert_state("a.service", "active", "running");
    assert_eq!(h.job_results("a.service"), vec![JobResult::Done]);
    assert_eq!(
        h.e.unit("a.service").map(|u| u.svc.status_text.clone()),
        Some("serving".to_string())
    );
    h.notify(t, 1000 + t as u32, "RELOADING=1");
    h.assert_state("a.service", "reloading", "reload");
    h.notify(t, 1000 + t as u32, "READY=1");
    h.assert_state("a.service", "active", "running");
}

#[test]
fn notify_access_all_and_none() {
    let mut h = H::new(
        MapSource::default()
            .with(
                "a.service",
                "[Service]\nType=notify\nNotifyAccess=all\nExecStart=/bin/daemon\n",
            )
            .with(
                "b.service",
                "[Service]\nType=notify\nNotifyAccess=none\nExecStart=/bin/daemon\n",
            ),
    );
    assert!(h.e.load_unit("a.service", h.now).is_ok());
    assert!(h.e.accepts_notify("a.service"));
    h.start("a.service");
    let t = h.token("a.service", "daemon");
    h.notify(t, 4242, "READY=1");
    h.assert_state("a.service", "active", "running");
    h.start("b.service");
    assert!(!h.e.accepts_notify("b.service"));
    let t = h.token("b.service", "daemon");
    h.notify(t, 1000 + t as u32, "READY=1");
    h.assert_state("b.service", "activating", "start");
}

#[test]
fn start_timeout_terminates_and_fails_the_job() {
    let mut h = H::new(MapSource::default().with(
        "a.service",
        "[Service]\nType=notify\nExecStart=/bin/daemon\nTimeoutStartSec=1\n",
    ));
    h.start("a.service");
    h.advance(1_000_000);
    h.fire_timers();
    assert!(h
        .all
        .iter()
        .any(|a| matches!(a, Action::Kill { signal, .. } if *signal == libc::SIGTERM)));
    h.assert_state("a.service", "failed", "failed");
    assert_eq!(h.result("a.service"), "timeout");
    assert_eq!(h.job_results("a.service"), vec![JobResult::Failed]);
}

#[test]
fn notify_main_exiting_before_ready_is_a_protocol_error() {
    let mut h = H::new(MapSource::default().with("a.service", NOTIFY));
    h.start("a.service");
    h.exit("a.service", "daemon", Exit::Code(0));
    h.assert_state("a.service", "failed", "failed");
    assert_eq!(h.result("a.service"), "protocol");
    assert_eq!(h.job_results("a.service"), vec![JobResult::Failed]);
}

#[test]
fn forking_takes_the_daemon_as_main_process() {
    let mut h = H::new(MapSource::default().with(
        "a.service",
        "[Service]\nType=forking\nPIDFile=/run/a.pid\nExecStart=/bin/forker\n",
    ));
    h.start("a.service");
    h.assert_state("a.service", "activating", "start");
    let t = h.token("a.service", "forker");
    h.exit("a.service", "forker", Exit::Code(0));
    let asked = h.all.iter().any(|a| {
        matches!(a, Action::FindMainPid { token, pid_file, .. }
            if *token == t && pid_file.as_deref() == Some("/run/a.pid"))
    });
    assert!(asked, "FindMainPid not requested");
    h.e.main_pid_found(t, Some(777), h.now);
    h.pump();
    h.assert_state("a.service", "active", "running");
    assert_eq!(
        h.e.unit("a.service")
            .and_then(|u| u.svc.main)
            .map(|p| p.pid),
        Some(777)
    );
    assert_eq!(h.job_results("a.service"), vec![JobResult::Done]);
    // The daemon ends cleanly: the unit stops.
    h.e.process_exited(t, Exit::Code(0), h.now);
    h.pump();
    h.assert_state("a.service", "inactive", "dead");
}

#[test]
fn forking_parent_failure_or_no_daemon() {
    let mut h = H::new(
        MapSource::default()
            .with(
                "a.service",
                "[Service]\nType=forking\nExecStart=/bin/forker\n",
            )
            .with(
                "b.service",
                "[Service]\nType=forking\nExecStart=/bin/forker\n",
            ),
    );
    h.start("a.service");
    h.exit("a.service", "forker", Exit::Code(3));
    h.assert_state("a.service", "failed", "failed");
    assert_eq!(h.result("a.service"), "exit-code");
    h.start("b.service");
    let t = h.token("b.service", "forker");
    h.exit("b.service", "forker", Exit::Code(0));
    h.e.main_pid_found(t, None, h.now);
    h.pump();
    h.assert_state("b.service", "inactive", "dead");
    assert_eq!(h.job_results("b.service"), vec![JobResult::Done]);
}

#[test]
fn exec_start_job_waits_for_exec() {
    let mut h = H::new(MapSource::default().with(
        "a.service",
        "[Service]\nType=exec\nExecStart=/nonexistent\n",
    ));
    // Take the spawn ourselves to report an exec failure instead of a start.
    h.e.enqueue("a.service", JobType::Start, "replace", h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    let token =
        h.e.take_actions()
            .into_iter()
            .find_map(|a| match a {
                Action::Spawn { token, .. } => Some(token),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no spawn"));
    h.assert_state("a.service", "activating", "start");
    h.e.spawn_failed(token, "No such file or directory", h.now);
    h.pump();
    h.assert_state("a.service", "failed", "failed");
    assert_eq!(h.result("a.service"), "exit-code");
    assert_eq!(h.job_results("a.service"), vec![JobResult::Failed]);
}

#[test]
fn exec_start_pre_runs_first_and_failure_fails_start() {
    let mut h = H::new(
        MapSource::default()
            .with(
                "a.service",
                "[Service]\nExecStartPre=/bin/prepare\nExecStart=/bin/daemon\n",
            )
            .with(
                "b.service",
                "[Service]\nExecStartPre=/bin/prepare\nExecStart=/bin/daemon\n",
            ),
    );
    h.start("a.service");
    h.assert_state("a.service", "activating", "start-pre");
    assert_eq!(h.spawned_for("a.service"), vec!["/bin/prepare".to_string()]);
    h.exit("a.service", "prepare", Exit::Code(0));
    h.assert_state("a.service", "active", "running");
    h.start("b.service");
    h.exit("b.service", "prepare", Exit::Code(1));
    h.assert_state("b.service", "failed", "failed");
    assert_eq!(h.spawned_for("b.service"), vec!["/bin/prepare".to_string()]);
    assert_eq!(h.job_results("b.service"), vec![JobResult::Failed]);
}

#[test]
fn start_limit_burst_fails_then_reset_failed_clears() {
    let mut h = H::new(MapSource::default().with(
        "a.service",
        "[Unit]\nStartLimitBurst=2\nStartLimitIntervalSec=1min\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
    ));
    for _ in 0..2 {
        h.start("a.service");
        h.exit("a.service", "true", Exit::Code(0));
        h.assert_state("a.service", "active", "exited");
        h.stop("a.service");
    }
    h.start("a.service");
    h.assert_state("a.service", "failed", "failed");
    assert_eq!(h.result("a.service"), "start-limit-hit");
    // Failing again keeps the state, but the job still fails.
    h.start("a.service");
    assert_eq!(h.job_results("a.service").last(), Some(&JobResult::Failed));
    h.e.reset_failed(Some("a.service"), h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    h.start("a.service");
    h.assert_state("a.service", "activating", "start");
}

const RELOADABLE: &str = "[Service]\nExecStart=/bin/daemon\nExecReload=/bin/reloader\n";

#[test]
fn reload_runs_exec_reload_and_failure_keeps_unit_active() {
    let mut h = H::new(
        MapSource::default()
            .with("a.service", RELOADABLE)
            .with("n.service", "[Service]\nExecStart=/bin/daemon\n"),
    );
    h.start("a.service");
    let id =
        h.e.enqueue_request("a.service", Request::Reload, "replace", h.now)
            .unwrap_or_else(|e| panic!("{e}"));
    h.pump();
    h.assert_state("a.service", "reloading", "reload");
    h.exit("a.service", "reloader", Exit::Code(0));
    h.assert_state("a.service", "active", "running");
    assert!(h.all.iter().any(
        |a| matches!(a, Action::JobRemoved { id: i, result: JobResult::Done, .. } if *i == id)
    ));

    h.e.enqueue_request("a.service", Request::Reload, "replace", h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    h.pump();
    h.exit("a.service", "reloader", Exit::Code(1));
    h.assert_state("a.service", "active", "running");
    assert_eq!(h.result("a.service"), "success");
    assert_eq!(
        h.e.unit("a.service").map(|u| u.svc.reload_result),
        Some("exit-code")
    );
    assert_eq!(h.job_results("a.service").last(), Some(&JobResult::Failed));

    let err =
        h.e.enqueue_request("n.service", Request::Reload, "replace", h.now)
            .unwrap_err();
    assert_eq!(err.name, ERR_JOB_TYPE_NOT_APPLICABLE);
    assert_eq!(
        err.message,
        "Job type reload is not applicable for unit n.service."
    );
}

#[test]
fn reload_of_inactive_unit_is_invalid_and_try_restart_is_nop() {
    let mut h = H::new(MapSource::default().with("a.service", RELOADABLE));
    h.e.enqueue_request("a.service", Request::Reload, "replace", h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    h.pump();
    assert_eq!(h.job_results("a.service"), vec![JobResult::Invalid]);
    h.e.enqueue_request("a.service", Request::TryRestart, "replace", h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    h.pump();
    assert_eq!(h.job_results("a.service").last(), Some(&JobResult::Done));
    h.assert_state("a.service", "inactive", "dead");
    assert!(h.spawned_for("a.service").is_empty());
    // ReloadOrRestart starts an inactive unit.
    h.e.enqueue_request("a.service", Request::ReloadOrRestart, "replace", h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    h.pump();
    h.assert_state("a.service", "active", "running");
    // ReloadOrTryRestart reloads an active one.
    h.e.enqueue_request("a.service", Request::ReloadOrTryRestart, "replace", h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    h.pump();
    h.assert_state("a.service", "reloading", "reload");
}

#[test]
fn freeze_and_thaw_signal_the_process_groups() {
    let mut h = H::new(
        MapSource::default()
            .with("a.service", "[Service]\nExecStart=/bin/daemon\n")
            .with("t.target", ""),
    );
    assert!(h.e.load_unit("t.target", h.now).is_ok());
    let err = h.e.freeze_unit("nothere.service", h.now).unwrap_err();
    assert_eq!(err.message, "Unit nothere.service not loaded.");
    let err = h.e.freeze_unit("t.target", h.now).unwrap_err();
    assert_eq!(err.name, ERR_NOT_SUPPORTED);
    assert!(h.e.load_unit("a.service", h.now).is_ok());
    let err = h.e.freeze_unit("a.service", h.now).unwrap_err();
    assert_eq!(err.name, ERR_UNIT_INACTIVE);

    h.start("a.service");
    let signals = |h: &H| -> Vec<i32> {
        h.all
            .iter()
            .filter_map(|a| match a {
                Action::Kill { signal, .. } => Some(*signal),
                _ => None,
            })
            .collect()
    };
    h.auto_kill = false;
    h.e.freeze_unit("a.service", h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    h.pump();
    assert_eq!(h.e.unit("a.service").map(|u| u.frozen), Some(true));
    assert_eq!(signals(&h), vec![libc::SIGSTOP]);
    // Freezing again is a no-op.
    h.e.freeze_unit("a.service", h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    h.pump();
    assert_eq!(signals(&h), vec![libc::SIGSTOP]);
    h.e.thaw_unit("a.service", h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    h.pump();
    assert_eq!(signals(&h), vec![libc::SIGSTOP, libc::SIGCONT]);
    assert_eq!(h.e.unit("a.service").map(|u| u.frozen), Some(false));

    // Stopping a frozen unit thaws it first (so ExecStop= and SIGTERM are acted on).
    h.e.freeze_unit("a.service", h.now)
        .unwrap_or_else(|e| panic!("{e}"));
    h.pump();
    h.stop("a.service");
    h.exit("a.service", "daemon", Exit::Signal(libc::SIGTERM));
    let s = signals(&h);
    assert_eq!(&s[s.len() - 2..], &[libc::SIGCONT, libc::SIGTERM]);
    h.assert_state("a.service", "inactive", "dead");
    assert_eq!(h.e.unit("a.service").map(|u| u.frozen), Some(false));
}
