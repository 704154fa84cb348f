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

use backend::{BackendKind, BackendOptions, Cluster};
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

impl Options {
    /// What a backend needs from these options.
    pub fn backend(&self) -> Result<BackendOptions, String> {
        let bin_dir = match &self.bin_dir {
            Some(d) => d.clone(),
            None => paths::bin_dir()?,
        };
        Ok(BackendOptions {
            bin_dir,
            units_dir: self.units_dir.clone(),
            keep: self.keep,
            ready_timeout: self.ready_timeout,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub name: String,
    pub backend: BackendKind,
    pub steps: usize,
    pub elapsed: Duration,
    pub run_id: String,
    pub work_dir: PathBuf,
    pub transcript: String,
}

/// Runs one parsed scenario on `kind` and checks its snapshot (the same snapshot on every
/// backend). The cluster is torn down before the snapshot is compared, on success and failure
/// alike (and on drop, if the future is cancelled). When a step fails, the transcript so far is
/// compared with the snapshot too.
pub async fn run_scenario(
    scenario: &Scenario,
    kind: BackendKind,
    opts: &Options,
) -> Result<Summary, RunError> {
    let mut cluster =
        Cluster::new(kind, &opts.backend().map_err(RunError::Setup)?).map_err(RunError::Setup)?;
    println!(
        "scenario {} on {kind}: run {} in {}",
        scenario.name,
        cluster.run_id(),
        cluster.work_dir().display()
    );
    let progress = runner::Progress::new();
    let (transcript, result) = match cluster.start(scenario).await {
        Err(e) => (None, Err(RunError::Setup(e))),
        Ok(()) => {
            println!(
                "[{:>6.3}s] cluster up: {} (controller on {})",
                progress.elapsed().as_secs_f64(),
                scenario.nodes.join(", "),
                scenario.controller
            );
            let (t, r) = runner::run_steps(&cluster, scenario, &progress).await;
            (Some(t.text()), r)
        }
    };
    if result.is_err() {
        runner::print_timeline(&cluster);
    }
    let run_id = cluster.run_id().to_string();
    let work_dir = cluster.work_dir().to_path_buf();
    cluster.teardown();
    if let Err(e) = result {
        if let Some(partial) = &transcript {
            eprintln!(
                "{}",
                snapshot::compare_partial(&scenario.name, partial, &opts.scenarios_dir)
            );
        }
        return Err(e);
    }
    let transcript = transcript.unwrap_or_default();
    snapshot::check(&scenario.name, &transcript, &opts.scenarios_dir)
        .map_err(RunError::Snapshot)?;
    Ok(Summary {
        name: scenario.name.clone(),
        backend: kind,
        steps: scenario.steps.len(),
        elapsed: progress.elapsed(),
        run_id,
        work_dir,
        transcript,
    })
}

/// Parses and runs one scenario file.
pub async fn run_file(path: &Path, kind: BackendKind, opts: &Options) -> Result<Summary, RunError> {
    let scenario = syntax::parse_file(path)?;
    run_scenario(&scenario, kind, opts).await
}
