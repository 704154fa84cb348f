//! Dependency checks systemd runs after state changes: BindsTo=, StopWhenUnneeded=, Upholds=.

use super::types::*;
use super::Engine;

/// systemd's `auto_start_stop_ratelimit`: at most 16 automatic actions per unit in 10 s.
const AUTO_LIMIT_INTERVAL_US: u64 = 10_000_000;
const AUTO_LIMIT_BURST: usize = 16;

impl Engine {
    fn auto_ratelimit_ok(&mut self, name: &str, now: Now) -> bool {
        let Some(u) = self.units.get_mut(name) else {
            return false;
        };
        while u
            .recent_auto
            .front()
            .is_some_and(|t| now.monotonic_us.saturating_sub(*t) > AUTO_LIMIT_INTERVAL_US)
        {
            u.recent_auto.pop_front();
        }
        if u.recent_auto.len() >= AUTO_LIMIT_BURST {
            return false;
        }
        u.recent_auto.push_back(now.monotonic_us);
        true
    }

    /// An active unit without a job whose `BindsTo=` unit is inactive (and has no job) stops.
    pub(crate) fn check_binds_to(&mut self, now: Now) -> bool {
        let victims: Vec<(String, String)> = self
            .units
            .values()
            .filter(|u| u.job.is_none() && u.active == ActiveState::Active)
            .filter_map(|u| {
                u.deps()
                    .binds_to
                    .iter()
                    .find(|b| {
                        self.units
                            .get(*b)
                            .is_some_and(|o| o.job.is_none() && o.active.is_inactive_or_failed())
                    })
                    .map(|b| (u.name.clone(), b.clone()))
            })
            .collect();
        let mut progress = false;
        for (v, b) in victims {
            if !self.auto_ratelimit_ok(&v, now) {
                continue;
            }
            self.log(
                LogLevel::Info,
                format!("{v}: Unit is bound to inactive unit {b}. Stopping, too."),
            );
            if self
                .add_transaction(&v, JobType::Stop, JobMode::Fail, now)
                .is_ok()
            {
                progress = true;
            }
        }
        progress
    }

    /// Whether some unit that pulls `name` in is active, activating or has a job.
    fn is_needed(&self, name: &str) -> bool {
        self.units.values().any(|o| {
            let d = o.deps();
            let refs = d
                .requires
                .iter()
                .chain(d.requisite.iter())
                .chain(d.wants.iter())
                .chain(d.binds_to.iter())
                .chain(d.upholds.iter())
                .any(|x| x == name);
            refs && (o.job.is_some() || !o.active.is_inactive_or_failed())
        })
    }

    /// Active `StopWhenUnneeded=yes` units that nothing needs get a stop job (mode fail).
    pub(crate) fn check_unneeded(&mut self, now: Now) -> bool {
        let candidates: Vec<String> = self
            .units
            .values()
            .filter(|u| {
                u.stop_when_unneeded() && u.job.is_none() && u.active.is_active_or_reloading()
            })
            .map(|u| u.name.clone())
            .collect();
        let mut progress = false;
        for name in candidates {
            if self.is_needed(&name) || !self.auto_ratelimit_ok(&name, now) {
                continue;
            }
            self.log(
                LogLevel::Info,
                format!("{name}: Unit not needed anymore. Stopping."),
            );
            match self.add_transaction(&name, JobType::Stop, JobMode::Fail, now) {
                Ok(_) => progress = true,
                Err(e) => self.log(
                    LogLevel::Warn,
                    format!(
                        "{name}: Failed to enqueue stop job, ignoring: {}",
                        e.message
                    ),
                ),
            }
        }
        progress
    }

    /// Inactive units without a job that an active unit without a job `Upholds=` get a start job.
    pub(crate) fn check_upholds(&mut self, now: Now) -> bool {
        let candidates: Vec<(String, String)> = self
            .units
            .values()
            .filter(|u| {
                u.job.is_none() && u.active.is_inactive_or_failed() && u.load_state == "loaded"
            })
            .filter(|u| u.svc.result != "start-limit-hit")
            .filter_map(|u| {
                self.units
                    .values()
                    .find(|o| {
                        // Like systemd, an upholder with a pending job (e.g. being stopped)
                        // does not act.
                        o.job.is_none()
                            && o.active.is_active_or_reloading()
                            && o.deps().upholds.contains(&u.name)
                    })
                    .map(|o| (u.name.clone(), o.name.clone()))
            })
            .collect();
        let mut progress = false;
        for (name, by) in candidates {
            if !self.auto_ratelimit_ok(&name, now) {
                self.log(
                    LogLevel::Warn,
                    format!("{name}: Unit needs to be started because active unit {by} upholds it, but not doing so since we already did that too often."),
                );
                continue;
            }
            self.log(
                LogLevel::Info,
                format!("{name}: Unit is started because upheld by active unit {by}."),
            );
            match self.add_transaction(&name, JobType::Start, JobMode::Fail, now) {
                Ok(_) => progress = true,
                Err(e) => self.log(
                    LogLevel::Warn,
                    format!(
                        "{name}: Failed to enqueue start job, ignoring: {}",
                        e.message
                    ),
                ),
            }
        }
        progress
    }
}
