//! Daemon state the D-Bus layer keeps beside the engine: things systemd's manager holds that
//! the job engine does not need (environment, transient units, runtime property overrides),
//! and the signals a call asks the runtime to send around it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// A manager signal the runtime emits on behalf of a method call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutSignal {
    Reloading(bool),
    UnitFilesChanged,
}

#[derive(Debug, Default)]
pub struct Daemon {
    /// Manager `Environment` (SetEnvironment/UnsetEnvironment).
    pub environment: Vec<String>,
    /// Where StartTransientUnit writes unit files (`<runtime>/transient`).
    pub transient_dir: Option<PathBuf>,
    pub transient: BTreeSet<String>,
    /// Unit properties changed at runtime by SetUnitProperties: unit → (property → value).
    pub overrides: BTreeMap<String, BTreeMap<String, crate::engine::Value>>,
    pub unit_paths: Vec<String>,
    /// Signals to send before the reply, and after the engine's actions.
    pub pre: Vec<OutSignal>,
    pub post: Vec<OutSignal>,
    /// Set by Manager.Exit: the runtime shuts down after replying.
    pub exit_requested: bool,
    pub exit_code: u8,
    /// Running as the system manager (PID 1 or `--system`).
    pub system: bool,
    /// Bus clients that called Subscribe; signals go on the bus only while there are any
    /// (private connections always get them).
    pub subscribers: BTreeSet<String>,
}

impl Daemon {
    /// `Subscribe`/`Unsubscribe` from `sender` (`None`: a private connection, which systemd
    /// treats as always subscribed).
    pub fn subscribe(
        &mut self,
        sender: Option<&str>,
        on: bool,
    ) -> Result<(), crate::engine::EngineError> {
        let Some(sender) = sender else {
            return Ok(());
        };
        match (on, on && self.subscribers.insert(sender.to_string())) {
            (true, true) => Ok(()),
            (true, false) => Err(crate::engine::EngineError::new(
                "org.freedesktop.systemd1.AlreadySubscribed",
                "Client is already subscribed.",
            )),
            (false, _) if self.subscribers.remove(sender) => Ok(()),
            (false, _) => Err(crate::engine::EngineError::new(
                "org.freedesktop.systemd1.NotSubscribed",
                "Client is not subscribed.",
            )),
        }
    }

    /// Forgets a unit the engine unloaded; returns its transient file to delete, if any.
    pub fn unit_gone(&mut self, name: &str) -> Option<PathBuf> {
        self.overrides.remove(name);
        if self.transient.remove(name) {
            return self.transient_dir.as_ref().map(|d| d.join(name));
        }
        None
    }
}
