//! The pure job engine: unit states, jobs, transactions and dependency checks, modelled on
//! systemd 252. It performs no IO; callers feed requests/events and execute the returned
//! [`Action`]s.

mod checks;
mod envexpand;
mod freezer;
mod notify;
pub mod props;
mod service;
mod socket;
mod transaction;
pub mod types;
pub mod unit;

#[cfg(test)]
mod tests;

pub use envexpand::expand_argv;
pub use types::*;
pub use unit::{SvcPhase, Unit};

use crate::names::{job_path, unit_path, UnitName};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Delay between a change and the garbage collection of unreferenced units.
const GC_DELAY_US: u64 = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    Gc,
    StopTimeout,
    StartTimeout,
    Restart,
}

/// Which process of a unit a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Main,
    Control,
}

pub struct Engine {
    source: Box<dyn UnitSource>,
    units: BTreeMap<String, Unit>,
    jobs: BTreeMap<u32, Job>,
    next_job_id: u32,
    next_token: u64,
    next_timer: u64,
    timers: HashMap<u64, (TimerKind, String)>,
    procs: HashMap<u64, (String, Role)>,
    actions: Vec<Action>,
    dirty_units: BTreeSet<String>,
    dirty_services: BTreeSet<String>,
    dirty_jobs: BTreeSet<u32>,
    gc_timer: Option<u64>,
    invocation_counter: u64,
    /// Alias name → unit id, learned when an alias symlink is loaded (systemd merges them).
    aliases: HashMap<String, String>,
    /// Type=forking parents that exited cleanly, waiting for [`Engine::main_pid_found`].
    forking_waits: HashMap<u64, String>,
    /// Restart jobs whose stop half just ended: their start waits until the change signals
    /// are out, so clients see the unit `inactive/dead` in between (see [`Engine::settle`]).
    restarted: BTreeSet<u32>,
}

impl Engine {
    pub fn new(source: Box<dyn UnitSource>) -> Self {
        Engine {
            source,
            units: BTreeMap::new(),
            jobs: BTreeMap::new(),
            next_job_id: 1,
            next_token: 1,
            next_timer: 1,
            timers: HashMap::new(),
            procs: HashMap::new(),
            actions: Vec::new(),
            dirty_units: BTreeSet::new(),
            dirty_services: BTreeSet::new(),
            dirty_jobs: BTreeSet::new(),
            gc_timer: None,
            invocation_counter: 0,
            aliases: HashMap::new(),
            forking_waits: HashMap::new(),
            restarted: BTreeSet::new(),
        }
    }

    /// Hands over everything the IO layer has to do since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    pub fn unit(&self, name: &str) -> Option<&Unit> {
        self.units.get(name).or_else(|| {
            self.aliases
                .get(name)
                .and_then(|id| self.units.get(id.as_str()))
        })
    }

    /// The unit id behind `name` (itself unless it is a known alias).
    fn canonical(&self, name: &str) -> String {
        self.aliases
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    pub fn job(&self, id: u32) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// Whether any job is waiting or running (`ListJobs` is non-empty).
    pub fn has_jobs(&self) -> bool {
        !self.jobs.is_empty()
    }

    pub fn source(&self) -> &dyn UnitSource {
        self.source.as_ref()
    }

    fn log(&mut self, level: LogLevel, message: String) {
        self.actions.push(Action::Log { level, message });
    }

    fn set_timer(&mut self, kind: TimerKind, unit: &str, delay_us: u64) -> u64 {
        let id = self.next_timer;
        self.next_timer += 1;
        self.timers.insert(id, (kind, unit.to_string()));
        self.actions.push(Action::SetTimer { id, delay_us });
        id
    }

    // ----- loading -------------------------------------------------------------------------

    /// Returns the unit, loading it (and the units it references) if needed, like systemd's
    /// `manager_load_unit`. Unknown files give a `not-found` stub.
    pub fn load_unit(&mut self, name: &str, now: Now) -> Result<&Unit, EngineError> {
        if UnitName::parse(name).is_none() {
            return Err(EngineError::new(
                ERR_INVALID_ARGS,
                format!("Unit name {name} is not valid."),
            ));
        }
        self.ensure_loaded(name);
        self.settle(now);
        let name = self.canonical(name);
        self.units
            .get(&name)
            .ok_or_else(|| EngineError::new(ERR_NO_SUCH_UNIT, format!("Unit {name} not loaded.")))
    }

    /// Loads `name` and, transitively, every unit its dependencies name.
    fn ensure_loaded(&mut self, name: &str) {
        let mut queue = vec![name.to_string()];
        while let Some(n) = queue.pop() {
            let n = self.canonical(&n);
            if self.units.contains_key(&n) || UnitName::parse(&n).is_none() {
                continue;
            }
            let unit = self.build_unit(&n);
            if let Some(id) = unit
                .def
                .as_ref()
                .map(|d| d.name.clone())
                .filter(|id| *id != n)
            {
                self.aliases.insert(n, id.clone());
                queue.push(id);
                continue;
            }
            let d = unit.deps();
            for list in [
                &d.requires,
                &d.requisite,
                &d.wants,
                &d.binds_to,
                &d.upholds,
                &d.conflicts,
                &d.after,
                &d.before,
                &d.part_of,
                &d.on_failure,
                &d.on_success,
            ] {
                queue.extend(list.iter().cloned());
            }
            self.actions.push(Action::UnitNew {
                id: n.clone(),
                path: unit_path(&n),
            });
            self.units.insert(n, unit);
        }
        self.schedule_gc();
    }

    fn build_unit(&mut self, name: &str) -> Unit {
        let mut unit = Unit::new(name);
        match self.source.load(name) {
            Loaded::Ok(def) => {
                unit.load_state = "loaded";
                unit.fragment_path = def.fragment_path.clone();
                unit.unit_file_state = self.source.file_state(name).unwrap_or_default();
                unit.unit_file_preset = self.source.file_preset(name).unwrap_or_default();
                unit.def = Some(*def);
            }
            Loaded::NotFound => {
                unit.load_error = Some((
                    "org.freedesktop.systemd1.NoSuchUnit".to_string(),
                    format!("Unit {name} not found."),
                ));
            }
            Loaded::Failed {
                load_state,
                error_name,
                message,
                path,
            } => {
                self.log(LogLevel::Warn, format!("{name}: {message}"));
                unit.load_state = load_state;
                unit.fragment_path = path;
                unit.unit_file_state = self.source.file_state(name).unwrap_or_default();
                unit.unit_file_preset = self.source.file_preset(name).unwrap_or_default();
                unit.load_error = Some((error_name.to_string(), message));
            }
        }
        unit
    }

    /// Re-reads one unit's definition, keeping runtime state; loads it if it is not loaded
    /// (a transient unit written over a `not-found` stub).
    pub fn reload_unit(&mut self, name: &str, now: Now) -> Result<&Unit, EngineError> {
        // The source indexes its directories per (re)load; the file may be new.
        self.source.reload();
        if !self.units.contains_key(name) {
            return self.load_unit(name, now);
        }
        self.refresh_unit(name);
        self.settle(now);
        self.units
            .get(name)
            .ok_or_else(|| EngineError::new(ERR_NO_SUCH_UNIT, format!("Unit {name} not loaded.")))
    }

    fn refresh_unit(&mut self, name: &str) {
        let fresh = self.build_unit(name);
        if let Some(u) = self.units.get_mut(name) {
            u.load_state = fresh.load_state;
            u.load_error = fresh.load_error;
            u.def = fresh.def;
            u.fragment_path = fresh.fragment_path;
            u.unit_file_state = fresh.unit_file_state;
            u.unit_file_preset = fresh.unit_file_preset;
        }
        let deps: Vec<String> = self.units.get(name).map(all_dep_names).unwrap_or_default();
        for d in deps {
            self.ensure_loaded(&d);
        }
        self.dirty_units.insert(name.to_string());
    }

    /// Re-reads all unit definitions, keeping runtime state (like `daemon-reload`).
    pub fn reload(&mut self, now: Now) {
        self.source.reload();
        let names: Vec<String> = self.units.keys().cloned().collect();
        for name in names {
            self.refresh_unit(&name);
        }
        self.settle(now);
    }

    // ----- state changes ---------------------------------------------------------------------

    /// Moves a unit to a new state and applies systemd's `unit_notify` consequences: job
    /// completion and retroactive stops of units bound to it.
    fn set_state(&mut self, name: &str, active: ActiveState, sub: &'static str, now: Now) {
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        let old = u.active;
        if old == active && u.sub == sub {
            return;
        }
        u.active = active;
        u.sub = sub;
        let stamp = now.into();
        if old.is_inactive_or_failed() && !active.is_inactive_or_failed() {
            u.ts.inactive_exit = stamp;
        } else if !old.is_inactive_or_failed() && active.is_inactive_or_failed() {
            u.ts.inactive_enter = stamp;
        }
        if !old.is_active_or_reloading() && active.is_active_or_reloading() {
            u.ts.active_enter = stamp;
        } else if old.is_active_or_reloading() && !active.is_active_or_reloading() {
            u.ts.active_exit = stamp;
        }
        let job = u.job;
        self.dirty_units.insert(name.to_string());

        let mut unexpected = true;
        if let Some(id) = job {
            if let Some(j) = self.jobs.get(&id).cloned() {
                unexpected = self.process_job_on_state(&j, active, now);
            }
        }
        // systemd 252 passes a service through failed/dead before auto-restart, which is
        // enough to stop the units bound to it.
        let going_down = active.is_inactive_or_deactivating() || sub == "auto-restart";
        if unexpected && old.is_active_or_activating() && going_down {
            self.retroactively_stop_bound(name, now);
        }
        if unexpected && old.is_inactive_or_failed() && active.is_active_or_activating() {
            self.retroactively_start_required(name, now);
        }
        // Same conditions as systemd 252's unit_notify: failing from anything but failed
        // triggers OnFailure=, reaching inactive from a running-ish state triggers OnSuccess=.
        if old != ActiveState::Failed && active == ActiveState::Failed {
            self.start_handlers(name, false, now);
        }
        if active == ActiveState::Inactive && !old.is_inactive_or_failed() {
            self.start_handlers(name, true, now);
        }
        self.socket_trigger_notify(name, now);
        self.schedule_gc();
    }

    /// systemd's `unit_start_on_failure`: start jobs for OnFailure= (or OnSuccess= with
    /// `success`) in OnFailureJobMode=/OnSuccessJobMode=; a handler that cannot be queued is
    /// only logged.
    fn start_handlers(&mut self, name: &str, success: bool, now: Now) {
        let key = if success { "OnSuccess=" } else { "OnFailure=" };
        let (handlers, mode) = match self.units.get(name) {
            Some(u) if success => (u.deps().on_success.clone(), u.handler_job_mode(true)),
            Some(u) => (u.deps().on_failure.clone(), u.handler_job_mode(false)),
            None => return,
        };
        if handlers.is_empty() {
            return;
        }
        self.log(
            LogLevel::Info,
            format!("{name}: Triggering {key} dependencies."),
        );
        for h in handlers {
            if let Err(e) = self.add_transaction(&h, JobType::Start, mode, now) {
                self.log(
                    LogLevel::Warn,
                    format!(
                        "{name}: Failed to enqueue {key} job, ignoring: {}",
                        e.message
                    ),
                );
            }
        }
    }

    /// systemd's `unit_process_job`; returns whether the change was unexpected.
    fn process_job_on_state(&mut self, j: &Job, ns: ActiveState, now: Now) -> bool {
        match j.job_type {
            JobType::Start => {
                if ns.is_active_or_reloading() {
                    self.finish_job(j.id, JobResult::Done, true, now);
                    false
                } else if j.state == JobState::Running && ns != ActiveState::Activating {
                    if ns.is_inactive_or_failed() {
                        let r = if ns == ActiveState::Failed {
                            JobResult::Failed
                        } else {
                            JobResult::Done
                        };
                        self.finish_job(j.id, r, true, now);
                    }
                    true
                } else {
                    false
                }
            }
            // The service finishes its reload job itself (it knows whether ExecReload= failed).
            JobType::Reload => {
                if j.state == JobState::Running && ns.is_inactive_or_deactivating() {
                    self.finish_job(j.id, JobResult::Failed, true, now);
                    true
                } else {
                    false
                }
            }
            JobType::Nop => false,
            JobType::Stop | JobType::Restart => {
                if ns.is_inactive_or_failed() {
                    if j.job_type == JobType::Restart {
                        self.restart_job_to_start(j.id);
                        self.restarted.insert(j.id);
                    } else {
                        self.finish_job(j.id, JobResult::Done, true, now);
                    }
                    false
                } else if j.state == JobState::Running && ns != ActiveState::Deactivating {
                    self.finish_job(j.id, JobResult::Failed, true, now);
                    true
                } else {
                    false
                }
            }
        }
    }

    fn restart_job_to_start(&mut self, id: u32) {
        if let Some(j) = self.jobs.get_mut(&id) {
            j.job_type = JobType::Start;
            j.state = JobState::Waiting;
            self.dirty_jobs.insert(id);
        }
    }

    fn retroactively_stop_bound(&mut self, name: &str, now: Now) {
        let bound: Vec<String> = self
            .units
            .values()
            .filter(|u| u.deps().binds_to.iter().any(|b| b == name))
            .filter(|u| !u.active.is_inactive_or_deactivating())
            .map(|u| u.name.clone())
            .collect();
        for b in bound {
            self.log(
                LogLevel::Info,
                format!("{b}: Bound to unit {name}, but unit isn't active."),
            );
            if let Err(e) = self.add_transaction(&b, JobType::Stop, JobMode::Replace, now) {
                self.log(
                    LogLevel::Warn,
                    format!("{b}: failed to enqueue stop job: {}", e.message),
                );
            }
        }
    }

    fn retroactively_start_required(&mut self, name: &str, now: Now) {
        let Some(u) = self.units.get(name) else {
            return;
        };
        let d = u.deps();
        let required: Vec<String> = d
            .requires
            .iter()
            .chain(d.binds_to.iter())
            .cloned()
            .collect();
        let wanted: Vec<String> = d.wants.clone();
        for (list, mode) in [(required, JobMode::Replace), (wanted, JobMode::Fail)] {
            for other in list {
                let needs = self
                    .units
                    .get(&other)
                    .is_some_and(|o| !o.active.is_active_or_activating());
                if needs {
                    let _ = self.add_transaction(&other, JobType::Start, mode, now);
                }
            }
        }
    }

    // ----- jobs ------------------------------------------------------------------------------

    /// Removes a job and emits JobRemoved (after the unit's pending change signal, as systemd
    /// does). On failure with `recursive`, start jobs of units requiring this one fail with
    /// `dependency`.
    fn finish_job(&mut self, id: u32, result: JobResult, recursive: bool, now: Now) {
        let Some(job) = self.jobs.remove(&id) else {
            return;
        };
        if let Some(u) = self.units.get_mut(&job.unit) {
            if u.job == Some(id) {
                u.job = None;
            }
        }
        self.dirty_jobs.remove(&id);
        self.restarted.remove(&id);
        self.flush_unit(&job.unit);
        let level = if result == JobResult::Done {
            LogLevel::Info
        } else {
            LogLevel::Warn
        };
        self.log(
            level,
            format!(
                "{}: Job {} {}/{} finished, result={}",
                job.unit,
                id,
                job.unit,
                job.job_type.as_str(),
                result.as_str()
            ),
        );
        self.actions.push(Action::JobRemoved {
            id,
            path: job_path(id),
            unit: job.unit.clone(),
            result,
        });
        if result != JobResult::Done && recursive && job.job_type == JobType::Start {
            let dependents: Vec<u32> = self
                .units
                .values()
                .filter(|u| {
                    let d = u.deps();
                    d.requires.contains(&job.unit)
                        || d.binds_to.contains(&job.unit)
                        || d.requisite.contains(&job.unit)
                })
                .filter_map(|u| u.job)
                .filter(|jid| {
                    self.jobs
                        .get(jid)
                        .is_some_and(|j| j.job_type == JobType::Start)
                })
                .collect();
            for jid in dependents {
                self.finish_job(jid, JobResult::Dependency, true, now);
            }
        }
        // A job failing this way may leave the unit's state untouched (it never started), so
        // systemd triggers OnFailure= from the job itself.
        if matches!(result, JobResult::Dependency | JobResult::Timeout) {
            self.start_handlers(&job.unit, false, now);
        }
        self.schedule_gc();
    }

    /// `Job.Cancel()`: like systemd, canceling fails dependent start jobs too.
    pub fn cancel_job(&mut self, id: u32, now: Now) -> Result<(), EngineError> {
        if !self.jobs.contains_key(&id) {
            return Err(EngineError::new(
                ERR_NO_SUCH_JOB,
                format!("Job {id} does not exist."),
            ));
        }
        self.finish_job(id, JobResult::Canceled, true, now);
        self.settle(now);
        Ok(())
    }

    /// Starts/stops/restarts `name` with `mode`; returns the anchor job id.
    pub fn enqueue(
        &mut self,
        name: &str,
        job_type: JobType,
        mode: &str,
        now: Now,
    ) -> Result<u32, EngineError> {
        let mode = JobMode::parse(mode).ok_or_else(|| {
            EngineError::new(ERR_INVALID_ARGS, format!("Job mode {mode} is invalid."))
        })?;
        if UnitName::parse(name).is_none() {
            return Err(EngineError::new(
                ERR_INVALID_ARGS,
                format!("Unit name {name} is not valid."),
            ));
        }
        self.ensure_loaded(name);
        let id = self.canonical(name);
        let name = id.as_str();
        // Only requests from outside are refused; dependencies go through add_transaction.
        let r = if self
            .units
            .get(name)
            .is_some_and(|u| u.refuses_manual(job_type))
        {
            Err(EngineError::new(
                ERR_ONLY_BY_DEPENDENCY,
                format!("Operation refused, unit {name} may be requested by dependency only (it is configured to refuse manual start/stop)."),
            ))
        } else {
            self.add_transaction(name, job_type, mode, now)
        };
        self.settle(now);
        r
    }

    /// Reload/TryRestart/ReloadOrRestart/ReloadOrTryRestart: picks the job type like systemd's
    /// `job_type_collapse` (a try-* on an inactive unit is a `nop` job, done at once).
    pub fn enqueue_request(
        &mut self,
        name: &str,
        req: Request,
        mode: &str,
        now: Now,
    ) -> Result<u32, EngineError> {
        if UnitName::parse(name).is_none() {
            return Err(EngineError::new(
                ERR_INVALID_ARGS,
                format!("Unit name {name} is not valid."),
            ));
        }
        self.ensure_loaded(name);
        let u = self.units.get(name).ok_or_else(|| {
            EngineError::new(ERR_NO_SUCH_UNIT, format!("Unit {name} not loaded."))
        })?;
        if u.load_state != "loaded" {
            return Err(transaction::load_error(u));
        }
        let active = u.active.is_active_or_activating();
        let jt = match (req, u.can_reload()) {
            (Request::Reload, false) => {
                return Err(EngineError::new(
                    ERR_JOB_TYPE_NOT_APPLICABLE,
                    format!("Job type reload is not applicable for unit {name}."),
                ))
            }
            (Request::Reload, true) => JobType::Reload,
            (Request::ReloadOrRestart, true) if active => JobType::Reload,
            (Request::ReloadOrRestart, true) => JobType::Start,
            (Request::ReloadOrRestart, false) => JobType::Restart,
            (Request::ReloadOrTryRestart, true) if active => JobType::Reload,
            (Request::ReloadOrTryRestart, false) | (Request::TryRestart, _) if active => {
                JobType::Restart
            }
            (Request::TryRestart | Request::ReloadOrTryRestart, _) => JobType::Nop,
        };
        self.enqueue(name, jt, mode, now)
    }

    /// Whether a waiting job may run now, per systemd's `job_is_runnable`/`job_compare`.
    fn job_is_runnable(&self, j: &Job) -> bool {
        let Some(u) = self.units.get(&j.unit) else {
            return true;
        };
        if j.ignore_order {
            return true;
        }
        let other_job = |n: &String| {
            self.units
                .get(n)
                .and_then(|o| o.job)
                .and_then(|id| self.jobs.get(&id))
        };
        // U After V: a start on U waits for any job on V.
        let after = u.deps().after.iter().cloned().chain(
            self.units
                .values()
                .filter(|o| o.deps().before.contains(&j.unit))
                .map(|o| o.name.clone()),
        );
        for v in after {
            if v != j.unit && other_job(&v).is_some() && !j.job_type.is_stopish() {
                return false;
            }
        }
        // U Before V: any job on U waits for a stop on V.
        let before = u.deps().before.iter().cloned().chain(
            self.units
                .values()
                .filter(|o| o.deps().after.contains(&j.unit))
                .map(|o| o.name.clone()),
        );
        for v in before {
            if v != j.unit && other_job(&v).is_some_and(|oj| oj.job_type.is_stopish()) {
                return false;
            }
        }
        true
    }

    /// Runs every runnable waiting job once; returns whether anything changed.
    fn dispatch_jobs(&mut self, now: Now) -> bool {
        let mut progress = false;
        let waiting: Vec<u32> = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Waiting && !self.restarted.contains(&j.id))
            .map(|j| j.id)
            .collect();
        for id in waiting {
            let Some(j) = self.jobs.get(&id).cloned() else {
                continue;
            };
            if j.state != JobState::Waiting
                || self.restarted.contains(&id)
                || !self.job_is_runnable(&j)
            {
                continue;
            }
            if self.run_job(&j, now) {
                progress = true;
            }
        }
        progress
    }

    /// systemd checks a `Requisite=` unit with a verify-active job of its own, which ends
    /// `skipped` when the unit is not active; clients see it come and go.
    fn skipped_verify_job(&mut self, unit: &str) {
        if self.units.get(unit).is_some_and(|u| u.job.is_some()) {
            return;
        }
        let id = self.next_job_id;
        self.next_job_id += 1;
        for a in [
            Action::JobNew {
                id,
                path: job_path(id),
                unit: unit.to_string(),
            },
            Action::JobRemoved {
                id,
                path: job_path(id),
                unit: unit.to_string(),
                result: JobResult::Skipped,
            },
        ] {
            self.actions.push(a);
        }
    }

    /// Returns false when the job could not run yet (it stays waiting).
    fn run_job(&mut self, j: &Job, now: Now) -> bool {
        let Some(u) = self.units.get(&j.unit) else {
            self.finish_job(j.id, JobResult::Failed, true, now);
            return true;
        };
        let state = u.active;
        match j.job_type {
            JobType::Start => {
                if state.is_active_or_reloading() {
                    self.finish_job(j.id, JobResult::Done, true, now);
                    return true;
                }
                if service::busy_stopping(u) {
                    return false;
                }
                let missing_requisites: Vec<String> = u
                    .deps()
                    .requisite
                    .iter()
                    .filter(|r| {
                        !self
                            .units
                            .get(*r)
                            .is_some_and(|o| o.active.is_active_or_reloading())
                    })
                    .cloned()
                    .collect();
                if !missing_requisites.is_empty() {
                    for r in &missing_requisites {
                        self.log(
                            LogLevel::Warn,
                            format!("{}: Requisite unit {r} is not active.", j.unit),
                        );
                        self.skipped_verify_job(r);
                    }
                    self.finish_job(j.id, JobResult::Dependency, true, now);
                    return true;
                }
                // systemd's unit_verify_deps: a BindsTo= unit this one is ordered after must
                // still be active when the start runs (a oneshot may already be gone again).
                let gone_binding = u.deps().binds_to.iter().find(|b| {
                    let ordered_after = u.deps().after.contains(*b)
                        || self
                            .units
                            .get(*b)
                            .is_some_and(|o| o.deps().before.contains(&j.unit));
                    ordered_after
                        && !self
                            .units
                            .get(*b)
                            .is_some_and(|o| o.active.is_active_or_reloading())
                });
                if let Some(b) = gone_binding.cloned() {
                    self.log(
                        LogLevel::Warn,
                        format!("{}: Bound to unit {b}, but unit isn't active.", j.unit),
                    );
                    self.finish_job(j.id, JobResult::Dependency, true, now);
                    return true;
                }
                self.mark_running(j.id);
                self.start_unit(&j.unit, now);
                // A start refused outright (start limit) leaves an already failed unit as it
                // was, so no state change ends the job; systemd fails it from the refusal.
                let refused = self.jobs.contains_key(&j.id)
                    && self
                        .units
                        .get(&j.unit)
                        .is_some_and(|u| u.active == ActiveState::Failed);
                if refused {
                    self.finish_job(j.id, JobResult::Failed, true, now);
                }
            }
            JobType::Nop => {
                self.finish_job(j.id, JobResult::Done, true, now);
            }
            JobType::Reload => {
                if state == ActiveState::Reloading {
                    return false;
                }
                if state != ActiveState::Active {
                    self.log(
                        LogLevel::Warn,
                        format!(
                            "{}: Unit cannot be reloaded because it is inactive.",
                            j.unit
                        ),
                    );
                    self.finish_job(j.id, JobResult::Invalid, true, now);
                    return true;
                }
                self.mark_running(j.id);
                self.service_reload(&j.unit, now);
            }
            JobType::Stop | JobType::Restart => {
                if state.is_inactive_or_failed() && !service::has_processes(u) {
                    if j.job_type == JobType::Restart {
                        self.restart_job_to_start(j.id);
                    } else {
                        self.finish_job(j.id, JobResult::Done, true, now);
                    }
                    return true;
                }
                self.mark_running(j.id);
                self.stop_unit(&j.unit, now);
            }
        }
        true
    }

    fn mark_running(&mut self, id: u32) {
        if let Some(j) = self.jobs.get_mut(&id) {
            j.state = JobState::Running;
            self.dirty_jobs.insert(id);
        }
    }

    fn start_unit(&mut self, name: &str, now: Now) {
        let is_service = self
            .units
            .get(name)
            .is_some_and(|u| u.service_def().is_some());
        if is_service {
            self.service_start(name, now);
        } else if self.is_socket(name) {
            self.socket_start(name, now);
        } else {
            self.log(LogLevel::Info, format!("Reached target {name}."));
            self.set_state(name, ActiveState::Active, "active", now);
        }
    }

    fn stop_unit(&mut self, name: &str, now: Now) {
        let is_service = self
            .units
            .get(name)
            .is_some_and(|u| u.service_def().is_some());
        if is_service {
            self.service_stop(name, now);
        } else if self.is_socket(name) {
            self.socket_stop(name, now);
        } else {
            self.set_state(name, ActiveState::Inactive, "dead", now);
        }
    }

    // ----- the main loop step ----------------------------------------------------------------

    /// Runs jobs and dependency checks until nothing changes, then emits change signals.
    ///
    /// A restart job whose unit just stopped becomes a start that runs only after that flush:
    /// systemd 252 puts it back on its run queue, and its main loop sends the queued change
    /// signals before it dispatches the run queue again. So every restart of a running unit
    /// shows `inactive/dead` on the bus between stopping and starting, which clients (BlueChi's
    /// proxies, BindsTo=/PartOf= requesters) rely on. A restart of a unit that is already
    /// inactive or failed goes on at once (its stop half does nothing; no flush in between).
    fn settle(&mut self, now: Now) {
        for _ in 0..1000 {
            for _ in 0..1000 {
                let mut progress = self.dispatch_jobs(now);
                progress |= self.check_binds_to(now);
                progress |= self.check_unneeded(now);
                progress |= self.check_upholds(now);
                if !progress {
                    break;
                }
            }
            self.flush_all();
            if self.restarted.is_empty() {
                break;
            }
            self.restarted.clear();
        }
    }

    fn flush_unit(&mut self, name: &str) {
        if self.dirty_units.remove(name) {
            if let Some(u) = self.units.get(name) {
                let changed = props::unit_changed_props(u, &self.jobs);
                self.actions.push(Action::PropertiesChanged {
                    path: unit_path(name),
                    interface: props::IFACE_UNIT.to_string(),
                    changed,
                });
            }
        }
        if self.dirty_services.remove(name) {
            if let Some(u) = self.units.get(name) {
                if u.is_service() {
                    self.actions.push(Action::PropertiesChanged {
                        path: unit_path(name),
                        interface: props::IFACE_SERVICE.to_string(),
                        changed: props::service_changed_props(u),
                    });
                }
            }
        }
    }

    fn flush_all(&mut self) {
        let names: BTreeSet<String> = self
            .dirty_units
            .union(&self.dirty_services)
            .cloned()
            .collect();
        for n in names {
            self.flush_unit(&n);
        }
        for id in std::mem::take(&mut self.dirty_jobs) {
            if let Some(j) = self.jobs.get(&id) {
                self.actions.push(Action::PropertiesChanged {
                    path: job_path(id),
                    interface: props::IFACE_JOB.to_string(),
                    changed: vec![(
                        "State".to_string(),
                        Value::Str(j.state.as_str().to_string()),
                    )],
                });
            }
        }
    }

    // ----- events ----------------------------------------------------------------------------

    pub fn timer_fired(&mut self, id: u64, now: Now) {
        let Some((kind, unit)) = self.timers.remove(&id) else {
            return;
        };
        match kind {
            TimerKind::Gc => {
                self.gc_timer = None;
                self.collect_garbage();
            }
            TimerKind::StopTimeout => self.service_stop_timeout(&unit, id, now),
            TimerKind::StartTimeout => self.service_start_timeout(&unit, id, now),
            TimerKind::Restart => self.service_restart_timer(&unit, id, now),
        }
        self.settle(now);
    }

    fn schedule_gc(&mut self) {
        if self.gc_timer.is_none() {
            let id = self.set_timer(TimerKind::Gc, "", GC_DELAY_US);
            self.gc_timer = Some(id);
        }
    }

    /// Unloads units nothing keeps alive: inactive (not failed), no job, and not referenced
    /// by the dependencies of a unit that is itself kept.
    fn collect_garbage(&mut self) {
        let mut keep: BTreeSet<String> = self
            .units
            .values()
            .filter(|u| {
                u.active != ActiveState::Inactive || u.job.is_some() || service::has_processes(u)
            })
            .map(|u| u.name.clone())
            .collect();
        let mut stack: Vec<String> = keep.iter().cloned().collect();
        while let Some(n) = stack.pop() {
            let refs = self.units.get(&n).map(all_dep_names).unwrap_or_default();
            for r in refs {
                if self.units.contains_key(&r) && keep.insert(r.clone()) {
                    stack.push(r);
                }
            }
        }
        let doomed: Vec<String> = self
            .units
            .keys()
            .filter(|n| !keep.contains(*n))
            .cloned()
            .collect();
        for n in doomed {
            self.units.remove(&n);
            self.dirty_units.remove(&n);
            self.dirty_services.remove(&n);
            self.actions.push(Action::UnitRemoved {
                path: unit_path(&n),
                id: n,
            });
        }
    }

    /// Drops all failed state (`ResetFailed`/`ResetFailedUnit`).
    pub fn reset_failed(&mut self, name: Option<&str>, now: Now) -> Result<(), EngineError> {
        let id = name.map(|n| self.canonical(n));
        let names: Vec<String> = match id.as_deref() {
            Some(n) => {
                if !self.units.contains_key(n) {
                    return Err(EngineError::new(
                        ERR_NO_SUCH_UNIT,
                        format!("Unit {n} not loaded."),
                    ));
                }
                vec![n.to_string()]
            }
            None => self.units.keys().cloned().collect(),
        };
        for n in names {
            if let Some(u) = self.units.get_mut(&n) {
                u.recent_starts.clear();
                u.start_limit_hit = false;
                if u.active == ActiveState::Failed {
                    u.svc.result = "success";
                    u.svc.phase = SvcPhase::Dead;
                    self.dirty_services.insert(n.clone());
                    self.set_state(&n, ActiveState::Inactive, "dead", now);
                }
            }
        }
        self.settle(now);
        Ok(())
    }

    /// `KillUnit(name, whom, signal)`: signals the unit's processes without changing jobs.
    pub fn kill_unit(&mut self, name: &str, whom: &str, signal: i32) -> Result<(), EngineError> {
        let u = self.unit(name).ok_or_else(|| {
            EngineError::new(ERR_NO_SUCH_UNIT, format!("Unit {name} not loaded."))
        })?;
        let tokens: Vec<u64> = match whom {
            "main" => u.svc.main.iter().map(|p| p.token).collect(),
            "control" => {
                let t: Vec<u64> = u.svc.control.iter().map(|p| p.token).collect();
                if t.is_empty() {
                    return Err(EngineError::new(
                        ERR_NO_SUCH_PROCESS,
                        "No control process to kill",
                    ));
                }
                t
            }
            "all" | "" => u.live_tokens(),
            _ => {
                return Err(EngineError::new(
                    ERR_INVALID_ARGS,
                    format!("Invalid who argument: {whom}"),
                ))
            }
        };
        if whom == "main" && tokens.is_empty() {
            return Err(EngineError::new(
                ERR_NO_SUCH_PROCESS,
                "No main process to kill",
            ));
        }
        self.actions.push(Action::Kill {
            unit: self.canonical(name),
            tokens,
            signal,
        });
        Ok(())
    }

    /// `FreezeUnit`: stops the unit's processes in place (FreezerState `frozen`).
    pub fn freeze_unit(&mut self, name: &str, now: Now) -> Result<(), EngineError> {
        self.set_frozen(name, true, now)
    }

    /// `ThawUnit`: resumes a frozen unit (FreezerState `running`).
    pub fn thaw_unit(&mut self, name: &str, now: Now) -> Result<(), EngineError> {
        self.set_frozen(name, false, now)
    }

    /// Tokens of every live process, for shutdown.
    pub fn all_live_tokens(&self) -> Vec<u64> {
        self.procs.keys().copied().collect()
    }
}

/// Every unit named in `u`'s dependencies; in systemd each of them, ordering included, is a
/// reference that keeps the named unit loaded while `u` is.
pub(crate) fn all_dep_names(u: &Unit) -> Vec<String> {
    let d = u.deps();
    [
        &d.requires,
        &d.requisite,
        &d.wants,
        &d.binds_to,
        &d.upholds,
        &d.conflicts,
        &d.after,
        &d.before,
        &d.part_of,
        &d.on_failure,
        &d.on_success,
    ]
    .into_iter()
    .flat_map(|l| l.iter().cloned())
    .collect()
}
