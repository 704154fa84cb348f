//! `scenario [--keep] [--update] [--backend local|podman-emulator|podman-systemd|all] NAME_OR_PATH...`

use std::process::ExitCode;

use clap::Parser;
use scenario_runner::backend::BackendKind;
use scenario_runner::{paths, syntax, Options, RunError};

#[derive(Parser)]
#[command(about = "Run BlueChi scenario files and compare their transcripts with snapshots")]
struct Cli {
    /// Keep the run directory (configs, unit files, daemon logs) for inspection.
    #[arg(long)]
    keep: bool,
    /// Accept the new transcripts as snapshots (INSTA_UPDATE=always).
    #[arg(long)]
    update: bool,
    /// Where the cluster runs: local, podman-emulator, podman-systemd, or all (each in turn,
    /// against the same snapshot).
    #[arg(long, default_value = "local")]
    backend: String,
    /// Scenario names (in the scenarios directory) or paths to .scenario files.
    #[arg(required = true, value_name = "NAME_OR_PATH")]
    scenarios: Vec<String>,
}

fn main() -> ExitCode {
    // Before any thread: the Podman backends' API service address.
    scenario_runner::backend::podman::prepare_process();
    let cli = Cli::parse();
    // insta caches these on first use, so they are set before anything else runs.
    if cli.update {
        std::env::set_var("INSTA_UPDATE", "always");
    }
    if std::env::var_os("INSTA_WORKSPACE_ROOT").is_none() {
        // Otherwise insta shells out to `cargo metadata`, which a plain binary should not need.
        if let Some(root) = paths::scenarios_dir().parent() {
            std::env::set_var("INSTA_WORKSPACE_ROOT", root);
        }
    }

    let kinds = match BackendKind::parse_list(&cli.backend) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: --backend: {e}");
            return ExitCode::from(2);
        }
    };
    // Every file is checked before anything starts: a typo should not cost a cluster run.
    let mut parsed = Vec::new();
    let mut parse_failed = false;
    for arg in &cli.scenarios {
        match syntax::parse_file(&paths::resolve_scenario(arg)) {
            Ok(s) => parsed.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                parse_failed = true;
            }
        }
    }
    if parse_failed {
        return ExitCode::from(2);
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = Options {
        keep: cli.keep,
        ..Options::default()
    };
    let code = runtime.block_on(async {
        tokio::select! {
            code = run_all(&parsed, &kinds, &opts) => code,
            signal = interrupted() => {
                // Dropping the run future above tore the cluster down.
                eprintln!("interrupted by {signal}; cluster torn down");
                130
            }
        }
    });
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn run_all(scenarios: &[syntax::Scenario], kinds: &[BackendKind], opts: &Options) -> i32 {
    let mut worst = 0;
    for kind in kinds {
        for scenario in scenarios {
            worst = worst.max(run_one(scenario, *kind, opts).await);
        }
    }
    worst
}

async fn run_one(scenario: &syntax::Scenario, kind: BackendKind, opts: &Options) -> i32 {
    match scenario_runner::run_scenario(scenario, kind, opts).await {
        Ok(s) => {
            println!(
                "scenario {} on {kind}: {} steps, snapshot matches ({:.2}s)",
                s.name,
                s.steps,
                s.elapsed.as_secs_f64()
            );
            0
        }
        Err(e) => {
            println!("scenario {} on {kind}: FAILED", scenario.name);
            eprintln!("error: {e}");
            if matches!(e, RunError::Snapshot(_)) {
                eprintln!(
                    "(accept the new transcript with `scenario --update {}`)",
                    scenario.name
                );
            }
            e.exit_code()
        }
    }
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without handlers the default action still kills us; just never report a signal.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
