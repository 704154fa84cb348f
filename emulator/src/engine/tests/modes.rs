//! Job modes other than replace/fail, and OnFailureJobMode=/OnSuccessJobMode=.

use super::*;

const SLEEP: &str = "[Service]\nExecStart=/bin/sleep 1000\n";
/// A oneshot whose start job stays running until the test lets its process exit.
const SLOW: &str = "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/slow\n";
const AFTER_SLOW: &str =
    "[Unit]\nRequires=slow.service\nAfter=slow.service\n[Service]\nExecStart=/bin/sleep 1000\n";

fn enqueue(h: &mut H, unit: &str, jt: JobType, mode: &str) -> Result<u32, EngineError> {
    let r = h.e.enqueue(unit, jt, mode, h.now);
    h.pump();
    r
}

fn job_of(h: &H, unit: &str) -> Option<Job> {
    h.e.unit(unit)
        .and_then(|u| u.job)
        .and_then(|id| h.e.job(id).cloned())
}

/// slow.service activating with a running start job, a.service waiting for it.
fn pending_after_slow() -> H {
    let mut h = H::new(
        MapSource::default()
            .with("slow.service", SLOW)
            .with("a.service", AFTER_SLOW)
            .with("c.service", SLEEP),
    );
    h.start("a.service");
    h.assert_state("slow.service", "activating", "start");
    h.assert_state("a.service", "inactive", "dead");
    assert!(job_of(&h, "a.service").is_some_and(|j| j.state == JobState::Waiting));
    h
}

#[test]
fn all_systemd_modes_parse_and_unknown_is_invalid() {
    for m in [
        "replace",
        "fail",
        "isolate",
        "ignore-dependencies",
        "ignore-requirements",
        "flush",
        "replace-irreversibly",
    ] {
        assert_eq!(JobMode::parse(m).map(JobMode::as_str), Some(m));
    }
    let mut h = H::new(MapSource::default().with("c.service", SLEEP));
    let e = enqueue(&mut h, "c.service", JobType::Start, "bogus").unwrap_err();
    assert_eq!(e.name, ERR_INVALID_ARGS);
    assert_eq!(e.message, "Job mode bogus is invalid.");
}

#[test]
fn flush_cancels_queued_jobs_outside_the_transaction() {
    let mut h = pending_after_slow();
    enqueue(&mut h, "c.service", JobType::Start, "flush").unwrap();
    h.assert_state("c.service", "active", "running");
    assert_eq!(h.job_results("a.service"), vec![JobResult::Canceled]);
    assert_eq!(h.job_results("slow.service"), vec![JobResult::Canceled]);
    assert!(!h.e.has_jobs());
    // Not recursive: the unit keeps activating, only its job is gone.
    h.assert_state("slow.service", "activating", "start");
    h.assert_state("a.service", "inactive", "dead");
}

#[test]
fn flush_keeps_jobs_of_the_transaction() {
    let mut h = pending_after_slow();
    let a_job = job_of(&h, "a.service").map(|j| j.id);
    let id = enqueue(&mut h, "a.service", JobType::Start, "flush").unwrap();
    assert_eq!(Some(id), a_job, "the pending start merges");
    // slow.service's running job is in the transaction too (Requires=), so it stays.
    assert!(job_of(&h, "slow.service").is_some());
    h.exit("slow.service", "/bin/slow", Exit::Code(0));
    h.assert_state("a.service", "active", "running");
    assert_eq!(h.job_results("a.service"), vec![JobResult::Done]);
}

#[test]
fn replace_irreversibly_jobs_cannot_be_replaced() {
    let mut h = H::new(MapSource::default().with("slow.service", SLOW).with(
        "x.service",
        "[Unit]\nConflicts=slow.service\n[Service]\nExecStart=/bin/sleep 1000\n",
    ));
    enqueue(
        &mut h,
        "slow.service",
        JobType::Start,
        "replace-irreversibly",
    )
    .unwrap();
    assert!(job_of(&h, "slow.service").is_some_and(|j| j.irreversible));
    let e = enqueue(&mut h, "slow.service", JobType::Stop, "replace").unwrap_err();
    assert_eq!(e.name, ERR_DESTRUCTIVE);
    assert_eq!(
        e.message,
        "Transaction for slow.service/stop is destructive (slow.service has 'start' job queued, but 'stop' is included in transaction)."
    );
    // Through a dependency too.
    let e = enqueue(&mut h, "x.service", JobType::Start, "replace").unwrap_err();
    assert_eq!(e.name, ERR_DESTRUCTIVE);
    h.assert_state("x.service", "inactive", "dead");
    // A mergeable request is fine and keeps the job irreversible.
    enqueue(&mut h, "slow.service", JobType::Start, "replace").unwrap();
    assert!(job_of(&h, "slow.service").is_some_and(|j| j.irreversible));
    h.exit("slow.service", "/bin/slow", Exit::Code(0));
    h.assert_state("slow.service", "active", "exited");
    // Once the job is done, replacing is allowed again.
    h.stop("slow.service");
    h.assert_state("slow.service", "inactive", "dead");
}

#[test]
fn plain_replace_replaces_a_reversible_job() {
    let mut h = H::new(MapSource::default().with("slow.service", SLOW));
    enqueue(&mut h, "slow.service", JobType::Start, "replace").unwrap();
    assert!(job_of(&h, "slow.service").is_some_and(|j| !j.irreversible));
    enqueue(&mut h, "slow.service", JobType::Stop, "replace").unwrap();
    assert_eq!(h.job_results("slow.service")[0], JobResult::Canceled);
}

#[test]
fn ignore_dependencies_runs_without_waiting_for_ordering() {
    let mut h = pending_after_slow();
    // Cancel a's queued job first so the new one is fresh.
    enqueue(&mut h, "a.service", JobType::Stop, "ignore-dependencies").unwrap();
    enqueue(&mut h, "a.service", JobType::Start, "ignore-dependencies").unwrap();
    h.assert_state("a.service", "active", "running");
    // slow.service's job is untouched.
    h.assert_state("slow.service", "activating", "start");
    assert!(job_of(&h, "slow.service").is_some());
}

#[test]
fn ignore_requirements_still_waits_for_ordering() {
    let mut h = pending_after_slow();
    enqueue(&mut h, "a.service", JobType::Stop, "ignore-requirements").unwrap();
    enqueue(&mut h, "a.service", JobType::Start, "ignore-requirements").unwrap();
    h.assert_state("a.service", "inactive", "dead");
    assert!(job_of(&h, "a.service").is_some_and(|j| !j.ignore_order));
    h.exit("slow.service", "/bin/slow", Exit::Code(0));
    h.assert_state("a.service", "active", "running");
}

#[test]
fn isolate_needs_a_start_job_and_allow_isolate() {
    let mut h = H::new(
        MapSource::default()
            .with("iso.target", "[Unit]\nAllowIsolate=yes\n")
            .with("plain.target", "[Unit]\nWants=c.service\n")
            .with("c.service", SLEEP),
    );
    let e = enqueue(&mut h, "iso.target", JobType::Stop, "isolate").unwrap_err();
    assert_eq!(e.name, ERR_INVALID_ARGS);
    assert_eq!(e.message, "Isolate is only valid for start.");
    let e = enqueue(&mut h, "plain.target", JobType::Start, "isolate").unwrap_err();
    assert_eq!(e.name, ERR_NO_ISOLATION);
    assert_eq!(e.message, "Operation refused, unit may not be isolated.");
    h.assert_state("c.service", "inactive", "dead");
}

#[test]
fn isolate_stops_units_and_jobs_outside() {
    let mut h = H::new(
        MapSource::default()
            .with("slow.service", SLOW)
            .with("a.service", AFTER_SLOW)
            .with("c.service", SLEEP)
            .with("d.service", SLEEP)
            .with(
                "keep.service",
                "[Unit]\nIgnoreOnIsolate=yes\n[Service]\nExecStart=/bin/sleep 1000\n",
            )
            .with("iso.target", "[Unit]\nAllowIsolate=yes\nWants=c.service\n"),
    );
    h.start("a.service");
    h.start("keep.service");
    h.start("c.service");
    h.start("d.service");
    enqueue(&mut h, "iso.target", JobType::Start, "isolate").unwrap();
    h.assert_state("iso.target", "active", "active");
    h.assert_state("c.service", "active", "running");
    h.assert_state("keep.service", "active", "running");
    h.assert_state("d.service", "inactive", "dead");
    assert_eq!(
        h.job_results("d.service"),
        vec![JobResult::Done, JobResult::Done]
    );
    // a's waiting start is replaced by a stop; the activating oneshot is stopped.
    assert_eq!(h.job_results("a.service")[0], JobResult::Canceled);
    h.assert_state("a.service", "inactive", "dead");
    assert!(h
        .e
        .unit("slow.service")
        .is_some_and(|u| u.active.is_inactive_or_failed()));
    assert!(!h.e.has_jobs());
}

#[test]
fn on_failure_job_mode_isolate_is_used() {
    let mut h = H::new(
        MapSource::default()
            .with(
                "f.service",
                "[Unit]\nOnFailure=rescue.target\nOnFailureJobMode=isolate\n[Service]\nType=oneshot\nExecStart=/bin/false\n",
            )
            .with("rescue.target", "[Unit]\nAllowIsolate=yes\nWants=h.service\n")
            .with("h.service", SLEEP)
            .with("other.service", SLEEP),
    );
    let f = h.e.load_unit("f.service", h.now).unwrap();
    assert_eq!(f.load_state, "loaded");
    assert_eq!(f.handler_job_mode(false), JobMode::Isolate);
    assert_eq!(f.handler_job_mode(true), JobMode::Replace);
    h.start("other.service");
    let _ = enqueue(&mut h, "f.service", JobType::Start, "replace");
    h.exit("f.service", "/bin/false", Exit::Code(1));
    h.assert_state("f.service", "failed", "failed");
    h.assert_state("rescue.target", "active", "active");
    h.assert_state("h.service", "active", "running");
    // Isolation stopped what rescue.target does not pull in.
    h.assert_state("other.service", "inactive", "dead");
}

#[test]
fn isolate_with_several_handlers_is_a_bad_setting() {
    let mut h = H::new(MapSource::default().with(
        "f.service",
        "[Unit]\nOnSuccess=a.target b.target\nOnSuccessJobMode=isolate\nOnFailureJobMode=bogus\n[Service]\nExecStart=/bin/true\n",
    ));
    let f = h.e.load_unit("f.service", h.now).unwrap();
    assert_eq!(f.load_state, "bad-setting");
    let e = enqueue(&mut h, "f.service", JobType::Start, "replace").unwrap_err();
    assert_eq!(e.name, ERR_BAD_SETTING);
}

#[test]
fn isolate_settings_are_unit_properties() {
    let mut h = H::new(MapSource::default().with(
        "iso.target",
        "[Unit]\nAllowIsolate=yes\nIgnoreOnIsolate=yes\nOnFailureJobMode=flush\n",
    ));
    h.e.load_unit("iso.target", h.now).unwrap();
    let all = h.e.unit_properties("iso.target", "").unwrap();
    let get = |k: &str| all.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("CanIsolate"), Some(Value::Bool(true)));
    assert_eq!(get("AllowIsolate"), Some(Value::Bool(true)));
    assert_eq!(get("IgnoreOnIsolate"), Some(Value::Bool(true)));
    assert_eq!(get("OnFailureJobMode"), Some(Value::Str("flush".into())));
    assert_eq!(get("OnSuccessJobMode"), Some(Value::Str("replace".into())));
}
