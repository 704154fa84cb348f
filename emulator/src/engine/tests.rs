//! Engine tests with fake processes: no IO, the harness plays the role of the IO layer.

use super::*;
use crate::loader::MapSource;
use std::collections::BTreeMap;

const PROXY: &str = "[Unit]\nStopWhenUnneeded=yes\n[Service]\nType=oneshot\nRemainAfterExit=yes\nKillMode=mixed\n\
ExecStart=/usr/libexec/bluechi-proxy create %i.service\nExecStop=/usr/libexec/bluechi-proxy remove %i.service\n\
SuccessExitStatus=SIGTERM\n";
const DEP: &str = "[Unit]\nBindsTo=%i.service\nAfter=%i.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStop=true\n";
const P: &str = "bluechi-proxy@worker2_target.service";
const D: &str = "bluechi-dep@target.service";

struct H {
    e: Engine,
    now: Now,
    /// Live fake processes: token → (unit, argv).
    live: BTreeMap<u64, (String, Vec<String>)>,
    spawned: Vec<(String, Vec<String>)>,
    all: Vec<Action>,
    timers: Vec<u64>,
    /// Deliver SIGTERM/SIGKILL at once as a signal exit.
    auto_kill: bool,
}

impl H {
    fn new(src: MapSource) -> H {
        H {
            e: Engine::new(Box::new(src)),
            now: Now {
                realtime_us: 1_000_000,
                monotonic_us: 1_000,
            },
            live: BTreeMap::new(),
            spawned: Vec::new(),
            all: Vec::new(),
            timers: Vec::new(),
            auto_kill: true,
        }
    }

    /// Executes pending actions like the IO layer would, until none are left.
    fn pump(&mut self) {
        loop {
            let acts = self.e.take_actions();
            if acts.is_empty() {
                break;
            }
            for a in acts {
                self.all.push(a.clone());
                match a {
                    Action::Spawn {
                        token, unit, argv, ..
                    } => {
                        self.live.insert(token, (unit.clone(), argv.clone()));
                        self.spawned.push((unit, argv));
                        self.e.process_started(token, 1000 + token as u32, self.now);
                    }
                    Action::Kill { tokens, signal, .. } if self.auto_kill => {
                        for t in tokens {
                            if self.live.remove(&t).is_some() {
                                self.e.process_exited(t, Exit::Signal(signal), self.now);
                            }
                        }
                    }
                    Action::SetTimer { id, .. } => self.timers.push(id),
                    _ => {}
                }
            }
        }
    }

    fn advance(&mut self, us: u64) {
        self.now.monotonic_us += us;
        self.now.realtime_us += us;
    }

    fn start(&mut self, unit: &str) -> u32 {
        let r = self.e.enqueue(unit, JobType::Start, "replace", self.now);
        self.pump();
        r.unwrap_or_else(|e| panic!("start {unit}: {e}"))
    }

    fn stop(&mut self, unit: &str) -> u32 {
        let r = self.e.enqueue(unit, JobType::Stop, "replace", self.now);
        self.pump();
        r.unwrap_or_else(|e| panic!("stop {unit}: {e}"))
    }

    /// The fake process of `unit` whose argv contains `needle` exits.
    fn exit(&mut self, unit: &str, needle: &str, exit: Exit) {
        let token = self
            .live
            .iter()
            .find(|(_, (u, argv))| u == unit && argv.iter().any(|a| a.contains(needle)))
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no live process {needle} for {unit}: {:?}", self.live));
        self.live.remove(&token);
        self.advance(1000);
        self.e.process_exited(token, exit, self.now);
        self.pump();
    }

    fn fire_timers(&mut self) {
        for id in std::mem::take(&mut self.timers) {
            self.e.timer_fired(id, self.now);
        }
        self.pump();
    }

    fn state(&self, unit: &str) -> (String, String) {
        let u = self
            .e
            .unit(unit)
            .unwrap_or_else(|| panic!("{unit} not loaded"));
        (u.active.as_str().to_string(), u.sub.to_string())
    }

    fn assert_state(&self, unit: &str, active: &str, sub: &str) {
        assert_eq!(
            self.state(unit),
            (active.to_string(), sub.to_string()),
            "state of {unit}"
        );
    }

    /// (ActiveState, SubState) of every Unit PropertiesChanged for `unit`, in order.
    fn transitions(&self, unit: &str) -> Vec<(String, String)> {
        self.transitions_from(unit, 0)
    }

    /// The same, from action `mark` on.
    fn transitions_from(&self, unit: &str, mark: usize) -> Vec<(String, String)> {
        let path = crate::names::unit_path(unit);
        self.all[mark..]
            .iter()
            .filter_map(|a| match a {
                Action::PropertiesChanged {
                    path: p,
                    interface,
                    changed,
                } if *p == path && interface == props::IFACE_UNIT => {
                    let get = |k: &str| {
                        changed
                            .iter()
                            .find(|(n, _)| n == k)
                            .and_then(|(_, v)| match v {
                                Value::Str(s) => Some(s.clone()),
                                _ => None,
                            })
                    };
                    Some((get("ActiveState")?, get("SubState")?))
                }
                _ => None,
            })
            .collect()
    }

    fn job_results(&self, unit: &str) -> Vec<JobResult> {
        self.all
            .iter()
            .filter_map(|a| match a {
                Action::JobRemoved {
                    unit: u, result, ..
                } if u == unit => Some(*result),
                _ => None,
            })
            .collect()
    }

    fn spawned_for(&self, unit: &str) -> Vec<String> {
        self.spawned
            .iter()
            .filter(|(u, _)| u == unit)
            .map(|(_, a)| a.join(" "))
            .collect()
    }
}

fn tr(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn source_node(source: &str) -> H {
    H::new(
        MapSource::default()
            .with("source.service", source)
            .with("bluechi-proxy@.service", PROXY),
    )
}

fn target_node(target: &str) -> H {
    H::new(
        MapSource::default()
            .with("target.service", target)
            .with("bluechi-dep@.service", DEP),
    )
}

const SRC_A: &str = "[Unit]\nRequires=bluechi-proxy@worker2_target.service\nAfter=bluechi-proxy@worker2_target.service\n[Service]\nType=simple\nExecStart=/bin/true\nRemainAfterExit=yes\n";
const SRC_B: &str = "[Unit]\nWants=bluechi-proxy@worker2_target.service\nAfter=bluechi-proxy@worker2_target.service\n[Service]\nType=simple\nExecStart=/bin/true\nRemainAfterExit=yes\n";
const SRC_C: &str = "[Unit]\nUpholds=bluechi-proxy@worker2_target.service\nAfter=bluechi-proxy@worker2_target.service\n[Service]\nType=simple\nExecStart=/bin/true\nRemainAfterExit=yes\n";

#[test]
fn scenario_a_source_stopped_with_required_proxy() {
    let mut h = source_node(SRC_A);
    let job = h.start("source.service");
    assert_eq!(job, 1);
    // The proxy runs first (source is After= it); source waits.
    h.assert_state(P, "activating", "start");
    h.assert_state("source.service", "inactive", "dead");
    assert_eq!(
        h.spawned_for(P),
        vec!["/usr/libexec/bluechi-proxy create worker2_target.service"]
    );
    h.exit(P, "create", Exit::Code(0));
    h.assert_state(P, "active", "exited");
    h.assert_state("source.service", "active", "running");
    assert_eq!(h.job_results("source.service"), vec![JobResult::Done]);
    h.exit("source.service", "/bin/true", Exit::Code(0));
    h.assert_state("source.service", "active", "exited");

    h.stop(P);
    h.assert_state("source.service", "inactive", "dead");
    h.assert_state(P, "deactivating", "stop");
    h.exit(P, "remove", Exit::Code(0));
    h.assert_state(P, "inactive", "dead");
    assert_eq!(h.job_results(P), vec![JobResult::Done, JobResult::Done]);
    assert_eq!(
        h.job_results("source.service"),
        vec![JobResult::Done, JobResult::Done]
    );
}

#[test]
fn scenario_a_target_fails_and_dep_stops() {
    let mut h = target_node("[Service]\nType=simple\nExecStart=/bin/false\nRemainAfterExit=yes\n");
    let j = h.start(D);
    h.assert_state("target.service", "active", "running");
    h.assert_state(D, "active", "exited");
    assert_eq!(h.job_results(D), vec![JobResult::Done]);
    assert!(h
        .all
        .iter()
        .any(|a| matches!(a, Action::JobRemoved { id, result: JobResult::Done, .. } if *id == j)));
    h.exit("target.service", "/bin/false", Exit::Code(1));
    h.assert_state("target.service", "failed", "failed");
    assert_eq!(
        h.transitions("target.service"),
        tr(&[("active", "running"), ("failed", "failed")])
    );
    // The dep is bound to the target: its ExecStop runs, then it is inactive.
    h.assert_state(D, "deactivating", "stop");
    h.exit(D, "true", Exit::Code(0));
    h.assert_state(D, "inactive", "dead");
    let u = h.e.unit("target.service").unwrap();
    assert_eq!(
        (u.svc.result, u.svc.exec_main_code, u.svc.exec_main_status),
        ("exit-code", 1, 1)
    );
    // Failed units survive garbage collection, dead unreferenced ones do not.
    h.fire_timers();
    assert!(h.e.unit("target.service").is_some());
    assert!(h.e.unit(D).is_none());
}

#[test]
fn scenario_b_unneeded_target_and_proxy_stop() {
    let mut h = target_node("[Unit]\nStopWhenUnneeded=yes\n[Service]\nType=simple\nExecStart=/bin/true\nRemainAfterExit=yes\n");
    h.start(D);
    h.exit("target.service", "/bin/true", Exit::Code(0));
    h.assert_state("target.service", "active", "exited");
    h.stop(D);
    h.exit(D, "true", Exit::Code(0));
    h.assert_state(D, "inactive", "dead");
    h.assert_state("target.service", "inactive", "dead");

    let mut s = source_node(SRC_B);
    s.start("source.service");
    s.exit(P, "create", Exit::Code(0));
    s.exit("source.service", "/bin/true", Exit::Code(0));
    s.assert_state("source.service", "active", "exited");
    s.assert_state(P, "active", "exited");
    s.stop("source.service");
    s.assert_state("source.service", "inactive", "dead");
    s.assert_state(P, "deactivating", "stop");
    assert_eq!(
        s.spawned_for(P).last().map(String::as_str),
        Some("/usr/libexec/bluechi-proxy remove worker2_target.service")
    );
    s.exit(P, "remove", Exit::Code(0));
    s.assert_state(P, "inactive", "dead");
}

#[test]
fn scenario_b_failed_wanted_proxy_leaves_source_active() {
    let mut s = source_node(SRC_B);
    s.start("source.service");
    s.exit(P, "create", Exit::Code(1));
    s.assert_state(P, "failed", "failed");
    s.assert_state("source.service", "active", "running");
    assert_eq!(s.job_results(P), vec![JobResult::Failed]);
    assert_eq!(s.job_results("source.service"), vec![JobResult::Done]);
}

#[test]
fn scenario_c_upholds_restarts_proxy_and_target_exit_stops_dep() {
    let mut s = source_node(SRC_C);
    s.start("source.service");
    s.exit(P, "create", Exit::Code(0));
    s.assert_state("source.service", "active", "running");
    s.stop(P);
    s.exit(P, "remove", Exit::Code(0));
    // Upheld by the still active source: started again right away.
    s.assert_state("source.service", "active", "running");
    s.assert_state(P, "activating", "start");
    assert_eq!(
        s.spawned_for(P)
            .iter()
            .filter(|c| c.contains("create"))
            .count(),
        2
    );
    s.exit(P, "create", Exit::Code(0));
    s.assert_state(P, "active", "exited");

    let mut h = target_node(
        "[Unit]\nStopWhenUnneeded=yes\n[Service]\nType=simple\nExecStart=/bin/sleep 5\n",
    );
    h.start(D);
    h.assert_state("target.service", "active", "running");
    h.exit("target.service", "sleep", Exit::Code(0));
    h.assert_state("target.service", "inactive", "dead");
    h.exit(D, "true", Exit::Code(0));
    h.assert_state(D, "inactive", "dead");
    h.start(D);
    h.assert_state("target.service", "active", "running");
    h.assert_state(D, "active", "exited");
    assert_eq!(h.spawned_for("target.service").len(), 2);
}

#[test]
fn start_merges_with_pending_job() {
    let mut s = source_node(SRC_A);
    let a = s.start("source.service");
    let b = s.start("source.service");
    assert_eq!(a, b);
    let news = s
        .all
        .iter()
        .filter(|x| matches!(x, Action::JobNew { unit, .. } if unit == "source.service"))
        .count();
    assert_eq!(news, 1);
}

#[test]
fn already_active_unit_start_is_done_at_once() {
    let mut h = target_node("[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=yes\n");
    h.start("target.service");
    h.exit("target.service", "true", Exit::Code(0));
    let j = h.start("target.service");
    assert_eq!(
        h.job_results("target.service"),
        vec![JobResult::Done, JobResult::Done]
    );
    assert!(h.e.job(j).is_none());
}

#[test]
fn stop_replaces_start_and_kills_oneshot() {
    let mut s = source_node(SRC_A);
    s.start("source.service");
    s.stop(P);
    // Pending start jobs are canceled by the stop transaction.
    assert_eq!(
        s.job_results("source.service"),
        vec![JobResult::Canceled, JobResult::Done]
    );
    assert_eq!(s.job_results(P)[0], JobResult::Canceled);
    // SIGTERM is a success exit status for the proxy, so the stop ends clean.
    s.assert_state(P, "inactive", "dead");
    assert!(s
        .all
        .iter()
        .any(|a| matches!(a, Action::Kill { signal, .. } if *signal == libc::SIGTERM)));
    assert_eq!(s.job_results(P), vec![JobResult::Canceled, JobResult::Done]);
}

#[test]
fn required_failure_propagates_dependency_result() {
    let mut s = source_node(SRC_A);
    s.start("source.service");
    s.exit(P, "create", Exit::Code(1));
    s.assert_state(P, "failed", "failed");
    assert_eq!(s.job_results("source.service"), vec![JobResult::Dependency]);
    s.assert_state("source.service", "inactive", "dead");
    assert!(s.spawned_for("source.service").is_empty());
}

#[test]
fn ordering_runs_after_units_later_and_stops_in_reverse() {
    let mut h = H::new(
        MapSource::default()
            .with("a.service", "[Service]\nType=oneshot\nExecStart=/bin/a\nExecStop=/bin/stop-a\nRemainAfterExit=yes\n")
            .with("b.service", "[Unit]\nRequires=a.service\nAfter=a.service\n[Service]\nType=oneshot\nExecStart=/bin/b\nExecStop=/bin/stop-b\nRemainAfterExit=yes\n"),
    );
    h.start("b.service");
    assert_eq!(h.spawned.len(), 1);
    h.assert_state("b.service", "inactive", "dead");
    h.exit("a.service", "/bin/a", Exit::Code(0));
    h.exit("b.service", "/bin/b", Exit::Code(0));
    h.stop("a.service");
    // b is After a, so b stops first while a's stop job waits.
    h.assert_state("b.service", "deactivating", "stop");
    h.assert_state("a.service", "active", "exited");
    h.exit("b.service", "stop-b", Exit::Code(0));
    h.assert_state("a.service", "deactivating", "stop");
    h.exit("a.service", "stop-a", Exit::Code(0));
    h.assert_state("a.service", "inactive", "dead");
}

#[test]
fn missing_required_unit_fails_the_request() {
    let mut h = target_node("[Service]\nExecStart=/bin/true\n");
    let e =
        h.e.enqueue(
            "bluechi-dep@nothere.service",
            JobType::Start,
            "replace",
            h.now,
        )
        .unwrap_err();
    assert_eq!(e.name, ERR_NO_SUCH_UNIT);
    assert_eq!(e.message, "Unit nothere.service not found.");
    let e =
        h.e.enqueue("nothere.service", JobType::Start, "replace", h.now)
            .unwrap_err();
    assert_eq!(e.message, "Unit nothere.service not found.");
    let e =
        h.e.enqueue("target.service", JobType::Start, "bogus", h.now)
            .unwrap_err();
    assert_eq!(e.message, "Job mode bogus is invalid.");
    // The not-found stub is announced and later collected.
    h.pump();
    assert!(h
        .all
        .iter()
        .any(|a| matches!(a, Action::UnitNew { id, .. } if id == "nothere.service")));
    h.fire_timers();
    assert!(h
        .all
        .iter()
        .any(|a| matches!(a, Action::UnitRemoved { id, .. } if id == "nothere.service")));
}

#[test]
fn fail_mode_refuses_destructive_transaction() {
    let mut s = source_node(SRC_A);
    s.start("source.service");
    let e = s.e.enqueue(P, JobType::Stop, "fail", s.now).unwrap_err();
    assert_eq!(e.name, ERR_DESTRUCTIVE);
}

#[test]
fn stop_when_unneeded_unit_started_alone_stops_again() {
    let mut h = target_node("[Unit]\nStopWhenUnneeded=yes\n[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=yes\n");
    h.start("target.service");
    h.exit("target.service", "true", Exit::Code(0));
    h.assert_state("target.service", "inactive", "dead");
    assert_eq!(
        h.transitions("target.service"),
        tr(&[
            ("activating", "start"),
            ("active", "exited"),
            ("inactive", "dead")
        ])
    );
}

#[test]
fn job_cancel_and_state_signal() {
    let mut s = source_node(SRC_A);
    s.start("source.service");
    let proxy_job = s.e.unit(P).and_then(|u| u.job).unwrap();
    assert!(s.all.iter().any(|a| matches!(a, Action::PropertiesChanged { path, changed, .. }
        if *path == crate::names::job_path(proxy_job) && changed[0].1 == Value::Str("running".into()))));
    s.e.cancel_job(proxy_job, s.now).unwrap();
    s.pump();
    assert_eq!(s.job_results(P), vec![JobResult::Canceled]);
    assert_eq!(s.job_results("source.service"), vec![JobResult::Dependency]);
    assert_eq!(
        s.e.cancel_job(proxy_job, s.now).unwrap_err().name,
        ERR_NO_SUCH_JOB
    );
}

#[test]
fn oneshot_sigterm_without_success_status_fails() {
    let mut h = target_node("[Service]\nType=oneshot\nExecStart=/bin/sleep 100\n");
    h.start("target.service");
    h.stop("target.service");
    h.assert_state("target.service", "failed", "failed");
    assert_eq!(
        h.job_results("target.service"),
        vec![JobResult::Canceled, JobResult::Done]
    );
}

#[test]
fn stop_timeout_escalates_to_sigkill() {
    let mut h = target_node("[Service]\nExecStart=/bin/stubborn\nTimeoutStopSec=1\n");
    h.auto_kill = false;
    h.start("target.service");
    h.stop("target.service");
    h.assert_state("target.service", "deactivating", "stop-sigterm");
    h.fire_timers();
    h.assert_state("target.service", "deactivating", "stop-sigkill");
    h.exit("target.service", "stubborn", Exit::Signal(libc::SIGKILL));
    h.assert_state("target.service", "failed", "failed");
    assert_eq!(h.e.unit("target.service").unwrap().svc.result, "timeout");
}

#[test]
fn restart_on_failure_and_spawn_failure() {
    let mut h = target_node("[Service]\nExecStart=/bin/crash\nRestart=on-failure\nRestartSec=1\n");
    h.start("target.service");
    h.exit("target.service", "crash", Exit::Code(2));
    h.assert_state("target.service", "activating", "auto-restart");
    h.fire_timers();
    h.assert_state("target.service", "active", "running");
    assert_eq!(h.e.unit("target.service").unwrap().svc.n_restarts, 1);
    h.stop("target.service");
    h.assert_state("target.service", "inactive", "dead");
}

#[test]
fn exec_type_is_active_only_after_spawn() {
    let mut h = target_node("[Service]\nType=exec\nExecStart=/bin/x\n");
    h.e.enqueue("target.service", JobType::Start, "replace", h.now)
        .unwrap();
    let acts = h.e.take_actions();
    let token = acts.iter().find_map(|a| match a {
        Action::Spawn { token, .. } => Some(*token),
        _ => None,
    });
    h.assert_state("target.service", "activating", "start");
    let token = token.unwrap();
    h.e.spawn_failed(token, "No such file", h.now);
    h.pump();
    h.assert_state("target.service", "failed", "failed");
    assert_eq!(
        h.e.unit("target.service").unwrap().svc.exec_main_status,
        203
    );
}

#[test]
fn binds_to_stops_when_bound_unit_stopped() {
    let mut h = target_node("[Service]\nExecStart=/bin/sleep 100\n");
    h.start(D);
    h.stop("target.service");
    // The dep is After= the target, so it stops first.
    h.assert_state(D, "deactivating", "stop");
    h.assert_state("target.service", "active", "running");
    h.exit(D, "true", Exit::Code(0));
    h.assert_state(D, "inactive", "dead");
    h.assert_state("target.service", "inactive", "dead");
}

#[test]
fn properties_all_interfaces_merged() {
    let mut h = target_node("[Service]\nExecStart=/bin/sleep 100\n[Install]\nWantedBy=x.target\n");
    h.start("target.service");
    let all = h.e.unit_properties("target.service", "").unwrap();
    for k in [
        "Id",
        "LoadState",
        "ActiveState",
        "SubState",
        "FreezerState",
        "UnitFileState",
        "MainPID",
        "InactiveExitTimestampMonotonic",
    ] {
        assert!(all.iter().any(|(n, _)| n == k), "missing {k}");
    }
    let ufs = all
        .iter()
        .find(|(n, _)| n == "UnitFileState")
        .map(|(_, v)| v.clone());
    assert_eq!(ufs, Some(Value::Str("disabled".into())));
    let get = |k: &str| all.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    // No ExecReload=: cannot reload; a service can always be frozen here.
    assert_eq!(get("CanReload"), Some(Value::Bool(false)));
    assert_eq!(get("CanFreeze"), Some(Value::Bool(true)));
    assert!(h
        .e
        .unit_properties("target.service", "org.example.Nope")
        .is_none());
}

#[test]
fn can_reload_follows_exec_reload() {
    let mut h = target_node("[Service]\nExecStart=/bin/sleep 100\nExecReload=/bin/true\n");
    h.start("target.service");
    let all = h.e.unit_properties("target.service", "").unwrap();
    let can = all
        .iter()
        .find(|(n, _)| n == "CanReload")
        .map(|(_, v)| v.clone());
    assert_eq!(can, Some(Value::Bool(true)));
}

mod directives;
mod modes;
mod post;
mod restart;
mod services;
mod sockets;
