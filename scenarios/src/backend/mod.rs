//! Where a scenario's cluster runs. The runner only talks to this trait, so Podman backends
//! (emulator or real systemd in containers) can be added without touching it.

pub mod local;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use crate::syntax::Scenario;
use crate::transcript::CommandOutput;

pub trait Backend {
    /// Brings the whole cluster up; returns once every node is online at the controller.
    fn start(&mut self, scenario: &Scenario) -> impl Future<Output = Result<(), String>>;

    /// Runs a command on the controller node. `argv[0]` is a BlueChi tool name.
    fn run_command(
        &self,
        argv: &[String],
        deadline: Duration,
    ) -> impl Future<Output = Result<CommandOutput, String>>;

    /// A unit property from the node's systemd, as display text.
    fn unit_property(
        &self,
        node: &str,
        unit: &str,
        property: &str,
    ) -> impl Future<Output = Result<String, String>>;

    /// The last `lines` lines of each daemon's log, for the failure timeline.
    fn log_tails(&self, lines: usize) -> Vec<(String, String)>;

    /// Stops everything and removes what the run created. Must be idempotent; also runs on drop.
    fn teardown(&mut self);

    /// The unique marker carried in every child's environment.
    fn run_id(&self) -> &str;

    /// The run's working directory (removed by teardown unless kept).
    fn work_dir(&self) -> &Path;
}
