//! Scenario runner: reads `.scenario` files (executable forms of documented BlueChi
//! behaviours), brings up a cluster, runs the steps and compares the transcript with a snapshot.

pub mod backend;
pub mod dbus;
pub mod faults;
pub mod paths;
pub mod runner;
pub mod snapshot;
pub mod syntax;
pub mod transcript;
pub mod workloads;

use std::path::{Path, PathBuf};
use std::time::Duration;

use backend::local::{LocalBackend, LocalConfig};
use backend::Backend;
pub use runner::RunError;
use syntax::Scenario;

#[derive(Debug, Clone)]
pub struct Options {
    /// Keep the run directory (logs, configs) after teardown.
    pub keep: bool,
    /// Where the BlueChi binaries and the emulator are; `None` finds them next to this program.
    pub bin_dir: Option<PathBuf>,
    /// Where the agent's shipped unit files are.
    pub units_dir: PathBuf,
    /// Holds `snapshots/`.
    pub scenarios_dir: PathBuf,
    /// Deadline for each readiness check while the cluster starts.
    pub ready_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            keep: false,
            bin_dir: None,
            units_dir: paths::shipped_units_dir(),
            scenarios_dir: paths::scenarios_dir(),
            ready_timeout: backend::local::DEFAULT_READY_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub name: String,
    pub steps: usize,
    pub elapsed: Duration,
    pub run_id: String,
    pub work_dir: PathBuf,
    pub transcript: String,
}

/// Runs one parsed scenario on the local backend and checks its snapshot. The cluster is torn
/// down before the snapshot is compared, on success and failure alike (and on drop, if the
/// future is cancelled).
pub async fn run_scenario(scenario: &Scenario, opts: &Options) -> Result<Summary, RunError> {
    let bin_dir = match &opts.bin_dir {
        Some(d) => d.clone(),
        None => paths::bin_dir().map_err(RunError::Setup)?,
    };
    let mut backend = LocalBackend::new(LocalConfig {
        bin_dir,
        units_dir: opts.units_dir.clone(),
        keep: opts.keep,
        ready_timeout: opts.ready_timeout,
    })
    .map_err(RunError::Setup)?;
    println!(
        "scenario {}: run {} in {}",
        scenario.name,
        backend.run_id(),
        backend.work_dir().display()
    );
    let progress = runner::Progress::new();
    let result = async {
        backend.start(scenario).await.map_err(RunError::Setup)?;
        println!(
            "[{:>6.3}s] cluster up: {} (controller on {})",
            progress.elapsed().as_secs_f64(),
            scenario.nodes.join(", "),
            scenario.controller
        );
        runner::run_steps(&backend, scenario, &progress).await
    }
    .await;
    if result.is_err() {
        runner::print_timeline(&backend);
    }
    let run_id = backend.run_id().to_string();
    let work_dir = backend.work_dir().to_path_buf();
    backend.teardown();
    let transcript = result?.text();
    snapshot::check(&scenario.name, &transcript, &opts.scenarios_dir)
        .map_err(RunError::Snapshot)?;
    Ok(Summary {
        name: scenario.name.clone(),
        steps: scenario.steps.len(),
        elapsed: progress.elapsed(),
        run_id,
        work_dir,
        transcript,
    })
}

/// Parses and runs one scenario file.
pub async fn run_file(path: &Path, opts: &Options) -> Result<Summary, RunError> {
    let scenario = syntax::parse_file(path)?;
    run_scenario(&scenario, opts).await
}
