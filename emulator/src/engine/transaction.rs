//! Building and installing job transactions (systemd's `transaction.c`, simplified).

use super::types::*;
use super::Engine;
use crate::names::job_path;
use crate::unitfile::Deps;

/// Planned jobs, anchor first.
struct Tx {
    entries: Vec<(String, JobType)>,
    mode: JobMode,
    /// Units whose job matters to the anchor (systemd's `matters_to_anchor`): reached only
    /// through requirement-like dependencies, so dropping it would break the request.
    matters: Vec<String>,
}

/// One pending piece of [`Engine::plan`]'s depth-first walk.
enum Step {
    Plan {
        name: String,
        job_type: JobType,
        required: bool,
        matters: bool,
    },
    /// An optional dependency (Wants=, Upholds=, a reverse Conflicts=): if planning it fails,
    /// its whole branch is dropped and the transaction goes on.
    Try {
        name: String,
        job_type: JobType,
    },
    /// Where a failing optional branch unwinds to: the plan's lengths before that branch.
    Undo {
        entries: usize,
        matters: usize,
    },
    StartTail {
        name: String,
        job_type: JobType,
        matters: bool,
        deps: Box<Deps>,
    },
    RestartDependents {
        name: String,
        matters: bool,
    },
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

    /// Plans `name` and everything it pulls in. Dependency chains can be as long as there are
    /// unit files, so the walk keeps its own work list instead of recursing once per hop; the
    /// order of steps is the depth-first order of a recursive walk.
    fn plan(
        &mut self,
        tx: &mut Tx,
        name: &str,
        job_type: JobType,
        required: bool,
        matters: bool,
    ) -> Result<(), EngineError> {
        let mut work = vec![Step::Plan {
            name: name.to_string(),
            job_type,
            required,
            matters,
        }];
        while let Some(step) = work.pop() {
            let done = match step {
                Step::Plan {
                    name,
                    job_type,
                    required,
                    matters,
                } => self.plan_unit(tx, &name, job_type, required, matters, &mut work),
                Step::Try { name, job_type } => {
                    work.push(Step::Undo {
                        entries: tx.entries.len(),
                        matters: tx.matters.len(),
                    });
                    work.push(Step::Plan {
                        name,
                        job_type,
                        required: false,
                        matters: false,
                    });
                    Ok(())
                }
                Step::Undo { .. } => Ok(()),
                Step::StartTail {
                    name,
                    job_type,
                    matters,
                    deps,
                } => {
                    self.plan_start_tail(tx, &name, job_type, matters, &deps, &mut work);
                    Ok(())
                }
                Step::RestartDependents { name, matters } => {
                    self.plan_restart_dependents(&name, matters, &mut work);
                    Ok(())
                }
            };
            if let Err(e) = done {
                // Unwind to the innermost optional branch and drop what it planned; with none
                // left, the request fails.
                loop {
                    match work.pop() {
                        Some(Step::Undo { entries, matters }) => {
                            tx.entries.truncate(entries);
                            tx.matters.truncate(matters);
                            break;
                        }
                        Some(_) => {}
                        None => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// One unit's own job; the dependencies it pulls in go onto `work`, last first.
    fn plan_unit(
        &mut self,
        tx: &mut Tx,
        name: &str,
        job_type: JobType,
        required: bool,
        matters: bool,
        work: &mut Vec<Step>,
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
                let deps = u.deps().clone();
                // A start pulled in for a unit that is already up (no job pending) is redundant,
                // and systemd 252 does not follow its dependencies: a unit it wants that failed
                // stays failed (case wants-active-restart-skip). The requested unit itself
                // (the first entry) still pulls its dependencies in again.
                let settled_active = job_type == JobType::Start
                    && !tx.entries.is_empty()
                    && u.job.is_none()
                    && matches!(u.active, ActiveState::Active | ActiveState::Reloading);
                tx.entries.push((name.to_string(), job_type));
                if tx.mode.ignores_requirements() || settled_active {
                    return Ok(());
                }
                let wants: Vec<Step> = deps
                    .wants
                    .iter()
                    .chain(deps.upholds.iter())
                    .map(|w| Step::Try {
                        name: w.clone(),
                        job_type: JobType::Start,
                    })
                    .collect();
                // A required dependency that cannot load fails the whole request.
                let requires: Vec<Step> = deps
                    .requires
                    .iter()
                    .chain(deps.binds_to.iter())
                    .map(|r| Step::Plan {
                        name: r.clone(),
                        job_type: JobType::Start,
                        required: true,
                        matters,
                    })
                    .collect();
                work.push(Step::StartTail {
                    name: name.to_string(),
                    job_type,
                    matters,
                    deps: Box::new(deps),
                });
                work.extend(wants.into_iter().rev());
                work.extend(requires.into_iter().rev());
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
                work.extend(dependents.into_iter().rev().map(|dep| Step::Plan {
                    name: dep,
                    job_type: JobType::Stop,
                    required: false,
                    matters,
                }));
            }
        }
        Ok(())
    }

    /// The rest of a start once its requirements and wants are planned: conflicts, then (for a
    /// restart) the running units that depend on it.
    fn plan_start_tail(
        &self,
        tx: &Tx,
        name: &str,
        job_type: JobType,
        matters: bool,
        d: &Deps,
        work: &mut Vec<Step>,
    ) {
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
        if job_type == JobType::Restart {
            work.push(Step::RestartDependents {
                name: name.to_string(),
                matters,
            });
        }
        work.extend(conflicted_by.into_iter().rev().map(|c| Step::Try {
            name: c,
            job_type: JobType::Stop,
        }));
        work.extend(d.conflicts.iter().rev().map(|c| Step::Plan {
            name: c.clone(),
            job_type: JobType::Stop,
            required: false,
            matters,
        }));
    }

    /// Units that require this one (or are PartOf= it) are restarted along with it if running,
    /// like systemd's try-restart propagation.
    fn plan_restart_dependents(&self, name: &str, matters: bool, work: &mut Vec<Step>) {
        let mut dependents = self.requiring_units(name);
        dependents.extend(self.part_of_units(name));
        let active: Vec<String> = dependents
            .into_iter()
            .filter(|dep| {
                self.units
                    .get(dep)
                    .is_some_and(|o| o.active.is_active_or_activating())
            })
            .collect();
        work.extend(active.into_iter().rev().map(|dep| Step::Plan {
            name: dep,
            job_type: JobType::Restart,
            required: false,
            matters,
        }));
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
                    // systemd's job_install: a restart merged into a start becomes a restart;
                    // if the start is already running it is re-run ("Merged into running job,
                    // re-running"), so an activating unit is stopped and started again.
                    if j.job_type == JobType::Start && *jt == JobType::Restart {
                        if let Some(jm) = self.jobs.get_mut(&j.id) {
                            jm.job_type = JobType::Restart;
                            jm.state = JobState::Waiting;
                        }
                        self.dirty_jobs.insert(j.id);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::MapSource;

    const NOW: Now = Now {
        realtime_us: 1_000_000,
        monotonic_us: 1_000,
    };

    /// A Requires= chain this long overflowed the stack when planning recursed once per hop.
    #[test]
    fn long_requires_chain_plans_on_a_small_stack() {
        const N: usize = 2_000;
        let mut src = MapSource::default();
        for i in 0..N {
            let text = if i + 1 < N {
                format!("[Unit]\nRequires=t{}.target\nWants=gone{i}.target\n", i + 1)
            } else {
                "[Unit]\n".to_string()
            };
            src = src.with(&format!("t{i}.target"), &text);
        }
        let planned = std::thread::Builder::new()
            .stack_size(128 << 10)
            .spawn(move || {
                let started = std::time::Instant::now();
                let mut e = Engine::new(Box::new(src));
                let r = e.enqueue("t0.target", JobType::Start, "replace", NOW);
                println!("transaction: {N}-unit chain in {:?}", started.elapsed());
                let last = format!("t{}.target", N - 1);
                (
                    r.map_err(|e| e.to_string()),
                    e.units.get(&last).map(|u| u.active),
                )
            })
            .map(|h| h.join());
        let Ok(Ok((ok, last))) = planned else {
            panic!("planning thread failed")
        };
        assert_eq!(ok, Ok(1));
        assert_eq!(last, Some(ActiveState::Active));
    }

    /// A Wants= branch that fails (here: its Requires= cannot load) is dropped whole, and the
    /// rest of the transaction still runs.
    #[test]
    fn failed_wants_branch_is_dropped() {
        let src = MapSource::default()
            .with("a.target", "[Unit]\nWants=b.target c.target\n")
            .with("b.target", "[Unit]\nRequires=d.target missing.target\n")
            .with("c.target", "[Unit]\n")
            .with("d.target", "[Unit]\n");
        let mut e = Engine::new(Box::new(src));
        assert!(e
            .enqueue("a.target", JobType::Start, "replace", NOW)
            .is_ok());
        let active = |e: &Engine, n: &str| e.units.get(n).map(|u| u.active);
        assert_eq!(active(&e, "a.target"), Some(ActiveState::Active));
        assert_eq!(active(&e, "c.target"), Some(ActiveState::Active));
        assert_ne!(active(&e, "b.target"), Some(ActiveState::Active));
        assert_ne!(active(&e, "d.target"), Some(ActiveState::Active));
    }
}
