//! FreezeUnit/ThawUnit without a cgroup freezer: SIGSTOP/SIGCONT to the unit's process groups.

use super::props;
use super::types::*;
use super::Engine;
use crate::names::unit_path;

impl Engine {
    /// Checks as systemd 252's `bus_unit_method_freezer_generic` and `unit_freeze`/`unit_thaw`;
    /// freezing a frozen unit (or thawing a running one) is a no-op.
    pub(crate) fn set_frozen(
        &mut self,
        name: &str,
        frozen: bool,
        now: Now,
    ) -> Result<(), EngineError> {
        let u = self.units.get(name).ok_or_else(|| {
            EngineError::new(ERR_NO_SUCH_UNIT, format!("Unit {name} not loaded."))
        })?;
        if !u.is_service() || u.load_state != "loaded" {
            return Err(EngineError::new(
                ERR_NOT_SUPPORTED,
                format!("Unit '{name}' does not support freezing."),
            ));
        }
        if u.job.is_some() {
            return Err(EngineError::new(
                ERR_UNIT_BUSY,
                format!("Unit '{name}' has a pending job."),
            ));
        }
        if !u.active.is_active_or_reloading() {
            return Err(EngineError::new(ERR_UNIT_INACTIVE, "Unit is inactive."));
        }
        if u.frozen == frozen {
            return Ok(());
        }
        let tokens = u.live_tokens();
        let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        if !tokens.is_empty() {
            self.actions.push(Action::Kill {
                unit: name.to_string(),
                tokens,
                signal,
            });
        }
        self.mark_frozen(name, frozen);
        self.log(
            LogLevel::Info,
            format!(
                "{name}: Unit now {}.",
                if frozen { "frozen" } else { "thawed" }
            ),
        );
        self.settle(now);
        Ok(())
    }

    /// Records the freezer state and announces it.
    fn mark_frozen(&mut self, name: &str, frozen: bool) {
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        u.frozen = frozen;
        self.actions.push(Action::PropertiesChanged {
            path: unit_path(name),
            interface: props::IFACE_UNIT.to_string(),
            changed: vec![(
                "FreezerState".to_string(),
                Value::Str(props::freezer_state(u).to_string()),
            )],
        });
    }

    /// Stopping a frozen unit thaws it first, so its processes can act on SIGTERM.
    pub(crate) fn thaw_for_stop(&mut self, name: &str) {
        let Some(u) = self.units.get(name) else {
            return;
        };
        if !u.frozen {
            return;
        }
        let tokens = u.live_tokens();
        if !tokens.is_empty() {
            self.actions.push(Action::Kill {
                unit: name.to_string(),
                tokens,
                signal: libc::SIGCONT,
            });
        }
        self.mark_frozen(name, false);
    }
}
