//! Building and installing job transactions (systemd's `transaction.c`, simplified).

use super::types::*;
use super::Engine;
use crate::names::job_path;

/// Planned jobs, anchor first.
struct Tx {
    entries: Vec<(String, JobType)>,
    mode: JobMode,
    /// Units whose job matters to the anchor (systemd's `matters_to_anchor`): reached only
    /// through requirement-like dependencies, so dropping it would break the request.
    matters: Vec<String>,
}

const ERR_BAD_MESSAGE: &str = "org.freedesktop.DBus.Error.InconsistentMessage";

pub(super) fn load_error(u: &super::Unit) -> EngineError {
    match u.load_state {
        "not-found" => EngineError::new(ERR_NO_SUCH_UNIT, format!("Unit {} not found.", u.name)),
        "bad-setting" => EngineError::new(ERR_BAD_SETTING, format!("Unit {} has a bad unit file setting.", u.name)),
        "masked" => EngineError::new("org.freedesktop.systemd1.UnitMasked", format!("Unit {} is masked.", u.name)),
        // The loader already words unparsable files like systemd (errno EBADMSG).
        _ if u.load_error.as_ref().is_some_and(|e| e.0 == ERR_BAD_MESSAGE) => EngineError::new(
            ERR_BAD_MESSAGE,
            u.load_error.as_ref().map(|e| e.1.clone()).unwrap_or_default(),
        ),
        _ => EngineError::new(
            ERR_LOAD_FAILED,
            format!(
                "Unit {} failed to load properly, please adjust/correct and reload service manager: {}",
                u.name,
                u.load_error.as_ref().map(|e| e.1.as_str()).unwrap_or("Invalid argument")
            ),
        ),
    }
}

impl Engine {
    /// Plans jobs for `anchor` and its dependencies, checks them against `mode`, installs them
    /// and returns the anchor's job id.
    pub(crate) fn add_transaction(
        &mut self,
        anchor: &str,
        job_type: JobType,
        mode: JobMode,
        now: Now,
    ) -> Result<u32, EngineError> {
        self.ensure_loaded(anchor);
        let u = self.units.get(anchor).ok_or_else(|| {
            EngineError::new(ERR_NO_SUCH_UNIT, format!("Unit {anchor} not loaded."))
        })?;
        if job_type == JobType::Stop
            && u.load_state != "loaded"
            && u.active == ActiveState::Inactive
        {
            return Err(EngineError::new(
                ERR_NO_SUCH_UNIT,
                format!("Unit {anchor} not loaded."),
            ));
        }
        if mode == JobMode::Isolate {
            if job_type != JobType::Start {
                return Err(EngineError::new(
                    ERR_INVALID_ARGS,
                    "Isolate is only valid for start.",
                ));
            }
            if !u.allow_isolate() {
                return Err(EngineError::new(
                    ERR_NO_ISOLATION,
                    "Operation refused, unit may not be isolated.",
                ));
            }
        }
        let mut tx = Tx {
            entries: Vec::new(),
            mode,
            matters: Vec::new(),
        };
        self.plan(&mut tx, anchor, job_type, true, true)?;
        if mode == JobMode::Isolate {
            self.plan_isolate_stops(&mut tx);
        }
        self.drop_redundant(&mut tx, anchor);
        self.check_destructive(&tx, anchor, job_type)?;
        if matches!(mode, JobMode::Isolate | JobMode::Flush) {
            self.cancel_outside(&tx, now);
        }
        Ok(self.install(&tx, anchor, now))
    }

    /// systemd's `transaction_add_isolate_jobs`: stop every unit that is up (or has a job)
    /// and is neither part of the transaction nor IgnoreOnIsolate=; a stop that cannot be
    /// planned is left out.
    fn plan_isolate_stops(&mut self, tx: &mut Tx) {
        let victims: Vec<String> = self
            .units
            .values()
            .filter(|u| !u.ignore_on_isolate())
            .filter(|u| !u.active.is_inactive_or_failed() || u.job.is_some())
            .filter(|u| !tx.entries.iter().any(|(n, _)| *n == u.name))
            .map(|u| u.name.clone())
            .collect();
        for v in victims {
            if tx.entries.iter().any(|(n, _)| *n == v) {
                continue;
            }
            let before = tx.entries.len();
            if self.plan(tx, &v, JobType::Stop, false, false).is_err() {
                tx.entries.truncate(before);
            }
        }
    }

    /// Modes `isolate` and `flush` cancel every queued job outside the new transaction, not
    /// recursively (dependent jobs and OnFailure= are left alone), as systemd does.
    fn cancel_outside(&mut self, tx: &Tx, now: Now) {
        let outside: Vec<u32> = self
            .jobs
            .values()
            .filter(|j| !tx.entries.iter().any(|(n, _)| *n == j.unit))
            .filter(|j| {
                !self
                    .units
                    .get(&j.unit)
                    .is_some_and(|u| u.ignore_on_isolate())
            })
            .map(|j| j.id)
            .collect();
        for id in outside {
            self.finish_job(id, JobResult::Canceled, false, now);
        }
    }

    fn plan(
        &mut self,
        tx: &mut Tx,
        name: &str,
        job_type: JobType,
        required: bool,
        matters: bool,
    ) -> Result<(), EngineError> {
        if let Some((_, old)) = tx.entries.iter().find(|(u, _)| u == name) {
            // Two jobs that cannot merge: if both matter systemd refuses the transaction; if
            // only the old one does, the new one goes, with the jobs that needed it (the
            // caller that pulled in a job which does not matter drops that whole branch).
            let old_matters = tx.matters.iter().any(|m| m == name);
            if old_matters && !mergeable(*old, job_type) {
                return Err(EngineError::new(
                    ERR_JOBS_CONFLICTING,
                    format!(
                        "Transaction contains conflicting jobs '{}' and '{}' for {name}. Probably contradicting requirement dependencies configured.",
                        job_type.as_str(),
                        old.as_str()
                    ),
                ));
            }
            return Ok(());
        }
        if matters {
            tx.matters.push(name.to_string());
        }
        self.ensure_loaded(name);
        let Some(u) = self.units.get(name) else {
            return Ok(());
        };
        match job_type {
            JobType::Start | JobType::Restart => {
                if u.load_state != "loaded" {
                    return if required { Err(load_error(u)) } else { Ok(()) };
                }
                let d = u.deps().clone();
                tx.entries.push((name.to_string(), job_type));
                if tx.mode.ignores_requirements() {
                    return Ok(());
                }
                for r in d.requires.iter().chain(d.binds_to.iter()) {
                    // A required dependency that cannot load fails the whole request.
                    self.plan(tx, r, JobType::Start, true, matters)?;
                }
                for w in d.wants.iter().chain(d.upholds.iter()) {
                    let before = tx.entries.len();
                    if self.plan(tx, w, JobType::Start, false, false).is_err() {
                        tx.entries.truncate(before);
                    }
                }
                // Conflicts= is symmetric: units naming this one in theirs are stopped too, but
                // those stops do not matter to systemd's anchor job, so mode `fail` drops them
                // (transaction_minimize_impact) instead of stopping a running unit, and so does
                // a clash with a job this unit requires of the same unit.
                let needed = |o: &str| {
                    [&d.requires, &d.requisite, &d.binds_to]
                        .iter()
                        .any(|l| l.iter().any(|x| x == o))
                };
                let conflicted_by: Vec<String> = self
                    .units
                    .values()
                    .filter(|o| o.deps().conflicts.iter().any(|c| c == name))
                    .filter(|o| tx.mode != JobMode::Fail && !needed(&o.name))
                    .map(|o| o.name.clone())
                    .collect();
                for c in &d.conflicts {
                    self.plan(tx, c, JobType::Stop, false, matters)?;
                }
                for c in &conflicted_by {
                    let before = tx.entries.len();
                    if self.plan(tx, c, JobType::Stop, false, false).is_err() {
                        tx.entries.truncate(before);
                    }
                }
                if job_type == JobType::Restart {
                    // Units that require this one (or are PartOf= it) are restarted along with
                    // it if running, like systemd's try-restart propagation.
                    let mut dependents = self.requiring_units(name);
                    dependents.extend(self.part_of_units(name));
                    for dep in dependents {
                        let active = self
                            .units
                            .get(&dep)
                            .is_some_and(|o| o.active.is_active_or_activating());
                        if active {
                            self.plan(tx, &dep, JobType::Restart, false, matters)?;
                        }
                    }
                }
            }
            JobType::Reload | JobType::Nop => {
                if u.load_state != "loaded" {
                    return if required { Err(load_error(u)) } else { Ok(()) };
                }
                tx.entries.push((name.to_string(), job_type));
            }
            JobType::Stop => {
                // systemd drops a non-anchor stop of a unit that is already down as redundant,
                // and then the jobs only that stop pulled in as garbage.
                let redundant = !tx.entries.is_empty()
                    && u.active.is_inactive_or_failed()
                    && u.job.is_none()
                    && !super::service::has_processes(u);
                tx.entries.push((name.to_string(), JobType::Stop));
                if redundant || tx.mode.ignores_requirements() {
                    return Ok(());
                }
                let mut dependents = self.requiring_units(name);
                dependents.extend(self.part_of_units(name));
                for dep in dependents {
                    self.plan(tx, &dep, JobType::Stop, false, matters)?;
                }
            }
        }
        Ok(())
    }

    /// Units with `Requires=`, `BindsTo=` or `Requisite=` on `name` (stop propagates to them).
    pub(crate) fn requiring_units(&self, name: &str) -> Vec<String> {
        self.units
            .values()
            .filter(|o| {
                let d = o.deps();
                d.requires
                    .iter()
                    .chain(d.binds_to.iter())
                    .chain(d.requisite.iter())
                    .any(|x| x == name)
            })
            .map(|o| o.name.clone())
            .collect()
    }

    /// Units with `PartOf=` on `name`: stops and restarts of `name` propagate to them, starts
    /// do not.
    fn part_of_units(&self, name: &str) -> Vec<String> {
        self.units
            .values()
            .filter(|o| o.deps().part_of.iter().any(|x| x == name))
            .map(|o| o.name.clone())
            .collect()
    }

    /// Non-anchor jobs that would not change anything are left out, as systemd does.
    fn drop_redundant(&self, tx: &mut Tx, anchor: &str) {
        tx.entries.retain(|(name, jt)| {
            if name == anchor {
                return true;
            }
            let Some(u) = self.units.get(name) else {
                return false;
            };
            let existing = u.job.and_then(|id| self.jobs.get(&id));
            match jt {
                JobType::Start => {
                    !(u.active.is_active_or_reloading()
                        && existing.is_none_or(|j| j.job_type == JobType::Start))
                }
                JobType::Stop => {
                    !(u.active.is_inactive_or_failed()
                        && existing.is_none_or(|j| j.job_type == JobType::Stop)
                        && !super::service::has_processes(u))
                }
                JobType::Restart | JobType::Reload | JobType::Nop => true,
            }
        });
    }

    /// systemd's `transaction_is_destructive`: in mode `fail` no queued job may be replaced,
    /// in any mode no irreversible one.
    fn check_destructive(
        &self,
        tx: &Tx,
        anchor: &str,
        anchor_type: JobType,
    ) -> Result<(), EngineError> {
        for (name, jt) in &tx.entries {
            let Some(j) = self
                .units
                .get(name)
                .and_then(|u| u.job)
                .and_then(|id| self.jobs.get(&id))
            else {
                continue;
            };
            if (tx.mode == JobMode::Fail || j.irreversible) && !mergeable(j.job_type, *jt) {
                return Err(EngineError::new(
                    ERR_DESTRUCTIVE,
                    format!(
                        "Transaction for {anchor}/{} is destructive ({name} has '{}' job queued, but '{}' is included in transaction).",
                        anchor_type.as_str(),
                        j.job_type.as_str(),
                        jt.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn install(&mut self, tx: &Tx, anchor: &str, now: Now) -> u32 {
        let mut anchor_id = 0;
        let irreversible = tx.mode == JobMode::ReplaceIrreversibly;
        for (name, jt) in &tx.entries {
            // Only the anchor itself skips ordering, as in systemd.
            let ignore_order = tx.mode == JobMode::IgnoreDependencies && name == anchor;
            let existing = self
                .units
                .get(name)
                .and_then(|u| u.job)
                .and_then(|id| self.jobs.get(&id))
                .cloned();
            let id = match existing {
                Some(j) if mergeable(j.job_type, *jt) => {
                    if j.job_type == JobType::Start
                        && *jt == JobType::Restart
                        && j.state == JobState::Waiting
                    {
                        if let Some(jm) = self.jobs.get_mut(&j.id) {
                            jm.job_type = JobType::Restart;
                        }
                    }
                    if let Some(jm) = self.jobs.get_mut(&j.id) {
                        jm.ignore_order |= ignore_order;
                        jm.irreversible |= irreversible;
                    }
                    j.id
                }
                other => {
                    if let Some(old) = other {
                        self.finish_job(old.id, JobResult::Canceled, false, now);
                    }
                    let id = self.new_job(name, *jt);
                    if let Some(jm) = self.jobs.get_mut(&id) {
                        jm.ignore_order = ignore_order;
                        jm.irreversible = irreversible;
                    }
                    id
                }
            };
            if name == anchor {
                anchor_id = id;
            }
        }
        anchor_id
    }

    fn new_job(&mut self, unit: &str, job_type: JobType) -> u32 {
        let id = self.next_job_id;
        self.next_job_id += 1;
        self.jobs.insert(
            id,
            Job {
                id,
                unit: unit.to_string(),
                job_type,
                state: JobState::Waiting,
                ignore_order: false,
                irreversible: false,
            },
        );
        if let Some(u) = self.units.get_mut(unit) {
            u.job = Some(id);
        }
        self.actions.push(Action::JobNew {
            id,
            path: job_path(id),
            unit: unit.to_string(),
        });
        id
    }
}

/// Whether a new job of type `new` can merge into an installed job of type `old`.
fn mergeable(old: JobType, new: JobType) -> bool {
    matches!(
        (old, new),
        (JobType::Start, JobType::Start)
            | (JobType::Stop, JobType::Stop)
            | (JobType::Restart, JobType::Restart)
            | (JobType::Restart, JobType::Start)
            | (JobType::Start, JobType::Restart)
            | (JobType::Reload, JobType::Reload)
            | (JobType::Start | JobType::Restart, JobType::Reload)
    )
}
