//! RefuseManualStart=/RefuseManualStop=, OnFailure=/OnSuccess= and PartOf=.

use super::*;

const SLEEP: &str = "[Service]\nExecStart=/bin/sleep 1000\n";
const HANDLER: &str = "[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=yes\n";

fn refused(r: Result<u32, EngineError>) -> String {
    match r {
        Ok(id) => panic!("request was accepted as job {id}"),
        Err(e) => {
            assert_eq!(e.name, ERR_ONLY_BY_DEPENDENCY);
            e.message
        }
    }
}

#[test]
fn refuse_manual_start_rejects_request_but_not_dependency() {
    let mut h = H::new(
        MapSource::default()
            .with(
                "a.service",
                "[Unit]\nWants=b.service\n[Service]\nExecStart=/bin/sleep 1000\n",
            )
            .with(
                "b.service",
                "[Unit]\nRefuseManualStart=yes\n[Service]\nExecStart=/bin/sleep 1000\n",
            ),
    );
    let r = h.e.enqueue("b.service", JobType::Start, "replace", h.now);
    h.pump();
    let msg = refused(r);
    assert_eq!(
        msg,
        "Operation refused, unit b.service may be requested by dependency only (it is configured to refuse manual start/stop)."
    );
    h.assert_state("b.service", "inactive", "dead");
    assert!(!h.e.has_jobs());
    // A restart counts as a start too.
    let r = h.e.enqueue("b.service", JobType::Restart, "replace", h.now);
    refused(r);

    h.start("a.service");
    h.assert_state("a.service", "active", "running");
    h.assert_state("b.service", "active", "running");
    // Stopping stays allowed.
    h.stop("b.service");
    h.assert_state("b.service", "inactive", "dead");
}

#[test]
fn refuse_manual_stop_keeps_unit_running() {
    let mut h = H::new(MapSource::default().with(
        "a.service",
        "[Unit]\nRefuseManualStop=yes\n[Service]\nExecStart=/bin/sleep 1000\n",
    ));
    h.start("a.service");
    let r = h.e.enqueue("a.service", JobType::Stop, "replace", h.now);
    h.pump();
    refused(r);
    refused(h.e.enqueue("a.service", JobType::Restart, "replace", h.now));
    h.assert_state("a.service", "active", "running");
    assert!(h.spawned_for("a.service").len() == 1);
    h.exit("a.service", "sleep", Exit::Signal(libc::SIGKILL));
    h.assert_state("a.service", "failed", "failed");
}

#[test]
fn on_failure_starts_handler_only_on_failure() {
    let mut h = H::new(
        MapSource::default()
            .with(
                "a.service",
                "[Unit]\nOnFailure=h.service\n[Service]\nType=oneshot\nExecStart=/bin/false\n",
            )
            .with(
                "ok.service",
                "[Unit]\nOnFailure=h.service\n[Service]\nType=oneshot\nExecStart=/bin/true\n",
            )
            .with("h.service", HANDLER),
    );
    h.start("ok.service");
    h.exit("ok.service", "true", Exit::Code(0));
    h.assert_state("ok.service", "inactive", "dead");
    assert!(
        h.spawned_for("h.service").is_empty(),
        "clean exit must not trigger OnFailure="
    );

    h.start("a.service");
    h.exit("a.service", "false", Exit::Code(1));
    h.assert_state("a.service", "failed", "failed");
    assert_eq!(h.job_results("a.service"), vec![JobResult::Failed]);
    h.exit("h.service", "true", Exit::Code(0));
    h.assert_state("h.service", "active", "exited");
    assert_eq!(h.job_results("h.service"), vec![JobResult::Done]);
}

#[test]
fn on_success_starts_handler_only_on_clean_finish() {
    let mut h = H::new(
        MapSource::default()
            .with(
                "a.service",
                "[Unit]\nOnSuccess=h.service\n[Service]\nType=oneshot\nExecStart=/bin/true\n",
            )
            .with(
                "bad.service",
                "[Unit]\nOnSuccess=h.service\n[Service]\nType=oneshot\nExecStart=/bin/false\n",
            )
            .with("h.service", HANDLER),
    );
    h.start("bad.service");
    h.exit("bad.service", "false", Exit::Code(1));
    h.assert_state("bad.service", "failed", "failed");
    assert!(
        h.spawned_for("h.service").is_empty(),
        "failure must not trigger OnSuccess="
    );

    h.start("a.service");
    h.exit("a.service", "true", Exit::Code(0));
    h.assert_state("a.service", "inactive", "dead");
    h.exit("h.service", "true", Exit::Code(0));
    h.assert_state("h.service", "active", "exited");
}

#[test]
fn part_of_propagates_stop_and_restart_but_not_start() {
    let mut h = H::new(
        MapSource::default()
            .with(
                "a.service",
                "[Unit]\nPartOf=b.service\n[Service]\nExecStart=/bin/sleep 1000\n",
            )
            .with("b.service", SLEEP),
    );
    h.start("a.service");
    h.assert_state("a.service", "active", "running");
    h.assert_state("b.service", "inactive", "dead");

    h.start("b.service");
    let r = h.e.enqueue("b.service", JobType::Restart, "replace", h.now);
    h.pump();
    assert!(r.is_ok(), "restart: {r:?}");
    assert_eq!(h.spawned_for("a.service").len(), 2, "a restarted with b");
    assert_eq!(h.spawned_for("b.service").len(), 2);
    h.assert_state("a.service", "active", "running");

    h.stop("b.service");
    h.assert_state("a.service", "inactive", "dead");
    h.assert_state("b.service", "inactive", "dead");

    // Stopping the part does not stop the whole.
    h.start("b.service");
    h.start("a.service");
    h.stop("a.service");
    h.assert_state("b.service", "active", "running");
}
