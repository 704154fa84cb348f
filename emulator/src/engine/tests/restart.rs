//! Restart jobs as a bus client sees them: the ordered (ActiveState, SubState) values of the
//! unit's PropertiesChanged signals, checked against what systemd 252 emitted in the
//! conformance container (`busctl monitor` during `systemctl restart`, see DIRECTIVES.md).

use super::*;

/// How to finish the activation of a freshly spawned start, per service type.
#[derive(Clone, Copy, Debug)]
enum Up {
    /// Nothing to wait for (simple; exec is done when the harness reports the spawn).
    AtOnce,
    /// The forking parent exits cleanly and leaves a daemon behind.
    Forking,
    /// The main process sends READY=1.
    Notify,
    /// The oneshot's ExecStart= exits 0.
    Oneshot,
}

impl H {
    /// Distinct consecutive (ActiveState, SubState) values signalled for `unit` since action
    /// `mark`, starting with the unit's state at `mark` (`before`): signal coalescing may
    /// repeat a state, a client only sees changes.
    fn states_since(
        &self,
        unit: &str,
        mark: usize,
        before: (String, String),
    ) -> Vec<(String, String)> {
        let mut out = vec![before];
        for state in self.transitions_from(unit, mark) {
            if out.last() != Some(&state) {
                out.push(state);
            }
        }
        out
    }

    fn jobs_since(&self, unit: &str, mark: usize) -> (usize, Vec<JobResult>) {
        let mut new = 0;
        let mut removed = Vec::new();
        for a in &self.all[mark..] {
            match a {
                Action::JobNew { unit: u, .. } if u == unit => new += 1,
                Action::JobRemoved {
                    unit: u, result, ..
                } if u == unit => removed.push(*result),
                _ => {}
            }
        }
        (new, removed)
    }

    /// Completes the activation the last start of `unit` began.
    fn come_up(&mut self, unit: &str, up: Up) {
        match up {
            Up::AtOnce => {}
            Up::Forking => {
                let t = self.token(unit, "forker");
                self.exit(unit, "forker", Exit::Code(0));
                self.e.main_pid_found(t, Some(7000 + t as u32), self.now);
                // The daemon is the same token from now on; let the harness kill it.
                self.live
                    .insert(t, (unit.to_string(), vec!["daemon".to_string()]));
                self.pump();
            }
            Up::Notify => {
                let t = self.token(unit, "daemon");
                self.notify(t, 1000 + t as u32, "READY=1");
            }
            Up::Oneshot => self.exit(unit, "/bin/true", Exit::Code(0)),
        }
    }

    /// Restarts `unit`, drives the new start to its end, and returns the distinct states the
    /// unit signalled meanwhile (its state before the restart first).
    fn restart(&mut self, unit: &str, up: Up) -> Vec<(String, String)> {
        let before = match self.e.load_unit(unit, self.now) {
            Ok(u) => (u.active.as_str().to_string(), u.sub.to_string()),
            Err(e) => panic!("load {unit}: {e}"),
        };
        self.pump();
        let mark = self.all.len();
        let r = self.e.enqueue(unit, JobType::Restart, "replace", self.now);
        r.unwrap_or_else(|e| panic!("restart {unit}: {e}"));
        self.pump();
        self.come_up(unit, up);
        assert_eq!(
            self.jobs_since(unit, mark),
            (1, vec![JobResult::Done]),
            "one restart job for {unit}, done"
        );
        self.states_since(unit, mark, before)
    }
}

const A: &str = "a.service";

fn unit(body: &str) -> H {
    H::new(MapSource::default().with(A, &format!("[Service]\n{body}")))
}

fn start_up(h: &mut H, up: Up) {
    h.start(A);
    h.come_up(A, up);
}

/// Distinct (ActiveState, SubState) values in the order a client sees them.
type States<'a> = &'a [(&'a str, &'a str)];

/// Every service type that is up when the restart comes, with what systemd 252 signalled:
/// the stop ends in `inactive/dead` before the start begins.
#[test]
fn restart_of_active_unit_signals_inactive_dead_between_stop_and_start() {
    let down = [
        ("active", "running"),
        ("deactivating", "stop-sigterm"),
        ("inactive", "dead"),
    ];
    let simple = [&down[..], &[("active", "running")]].concat();
    // exec, forking and notify wait in activating/start for the exec, the PID or READY=1.
    let waits = [&down[..], &[("activating", "start"), ("active", "running")]].concat();
    // Nothing to kill: straight from active/exited to inactive/dead.
    let oneshot = [
        ("active", "exited"),
        ("inactive", "dead"),
        ("activating", "start"),
        ("active", "exited"),
    ];
    let cases: [(&str, Up, States); 7] = [
        ("ExecStart=/bin/daemon\n", Up::AtOnce, &simple),
        (
            "RemainAfterExit=yes\nExecStart=/bin/daemon\n",
            Up::AtOnce,
            &simple,
        ),
        ("Type=exec\nExecStart=/bin/daemon\n", Up::AtOnce, &waits),
        ("Type=forking\nExecStart=/bin/forker\n", Up::Forking, &waits),
        ("Type=notify\nExecStart=/bin/daemon\n", Up::Notify, &waits),
        (
            "Type=notify\nRemainAfterExit=yes\nExecStart=/bin/daemon\n",
            Up::Notify,
            &waits,
        ),
        (
            "Type=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
            Up::Oneshot,
            &oneshot,
        ),
    ];
    for (body, up, want) in cases {
        let mut h = unit(body);
        start_up(&mut h, up);
        assert_eq!(h.restart(A, up), tr(want), "restart of {body:?}");
    }
}

/// systemd 252: an inactive unit's restart is a plain start (its stop half has nothing to do).
#[test]
fn restart_of_inactive_unit_is_a_start() {
    let mut h = unit("ExecStart=/bin/daemon\n");
    assert_eq!(
        h.restart(A, Up::AtOnce),
        tr(&[("inactive", "dead"), ("active", "running")])
    );
    let mut h = unit("Type=oneshot\nExecStart=/bin/true\n");
    assert_eq!(
        h.restart(A, Up::Oneshot),
        tr(&[
            ("inactive", "dead"),
            ("activating", "start"),
            ("inactive", "dead")
        ])
    );
}

/// systemd 252: a failed unit goes from failed straight to activating/active, never through
/// inactive/dead.
#[test]
fn restart_of_failed_unit_does_not_pass_through_inactive() {
    let mut h = unit("ExecStart=/bin/daemon\n");
    h.start(A);
    h.exit(A, "daemon", Exit::Signal(libc::SIGKILL));
    h.assert_state(A, "failed", "failed");
    assert_eq!(
        h.restart(A, Up::AtOnce),
        tr(&[("failed", "failed"), ("active", "running")])
    );
    let mut h = unit("Type=exec\nExecStart=/bin/daemon\n");
    h.start(A);
    h.exit(A, "daemon", Exit::Signal(libc::SIGKILL));
    assert_eq!(
        h.restart(A, Up::AtOnce),
        tr(&[
            ("failed", "failed"),
            ("activating", "start"),
            ("active", "running")
        ])
    );
}

/// systemd 252: ExecStop= shows as deactivating/stop first; a oneshot killed in the middle of
/// its start fails (SIGTERM is no clean exit for it), and the restart shows `failed/failed`
/// where a clean stop shows `inactive/dead`.
#[test]
fn restart_with_exec_stop_and_of_a_starting_oneshot() {
    let mut h = unit("ExecStart=/bin/daemon\nExecStop=/bin/stopper\n");
    h.start(A);
    let mark = h.all.len();
    let before = h.state(A);
    h.e.enqueue(A, JobType::Restart, "replace", h.now)
        .unwrap_or_else(|e| panic!("restart: {e}"));
    h.pump();
    h.exit(A, "stopper", Exit::Code(0));
    assert_eq!(
        h.states_since(A, mark, before),
        tr(&[
            ("active", "running"),
            ("deactivating", "stop"),
            ("deactivating", "stop-sigterm"),
            ("inactive", "dead"),
            ("active", "running")
        ])
    );

    let mut h = unit("Type=oneshot\nExecStart=/bin/sleep 3\n");
    h.start(A);
    h.assert_state(A, "activating", "start");
    let mark = h.all.len();
    let before = h.state(A);
    h.e.enqueue(A, JobType::Restart, "replace", h.now)
        .unwrap_or_else(|e| panic!("restart: {e}"));
    h.pump();
    h.exit(A, "sleep", Exit::Code(0));
    assert_eq!(
        h.states_since(A, mark, before),
        tr(&[
            ("activating", "start"),
            ("deactivating", "stop-sigterm"),
            ("failed", "failed"),
            ("activating", "start"),
            ("inactive", "dead")
        ])
    );
}
