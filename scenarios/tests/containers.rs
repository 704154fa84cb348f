//! Every scenario on both Podman backends (our emulator as PID 1, real systemd 252 as PID 1)
//! against the same snapshots as the local backend, and nothing of a run left in Podman
//! (containers, networks, volumes) or on disk (the API service's socket), whether the run
//! passed or was interrupted. Needs root and podman; the images are built (cached) by
//! `ci/images.sh` from the binaries of this build. Without podman the tests say why and pass;
//! under CI=true they fail.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use bluechi_testkit::podman;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use scenario_runner::backend::podman::PodmanRun;
use scenario_runner::backend::BackendKind;
use scenario_runner::{paths, Options};

/// Skips (or, under CI=true, fails) when Podman is missing.
fn require_podman(test: &str) -> bool {
    match podman::unavailable() {
        None => true,
        Some(why) => {
            podman::cannot_run(test, &why);
            false
        }
    }
}

fn service_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("bluechi-podman-{}", std::process::id()))
}

fn every_scenario_on(kind: BackendKind) {
    let _lock = common::cluster_lock();
    if !require_podman(&format!("every_scenario_on_{kind}")) {
        return;
    }
    let opts = Options {
        bin_dir: Some(common::real_bin_dir()),
        ..Options::default()
    };
    let mut files: Vec<_> = std::fs::read_dir(paths::scenarios_dir())
        .expect("scenarios dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "scenario"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "only {} scenarios", files.len());
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut failed = Vec::new();
    for file in &files {
        match runtime.block_on(scenario_runner::run_file(file, kind, &opts)) {
            Ok(summary) => {
                println!(
                    "{kind}: {} ({:.2}s)",
                    summary.name,
                    summary.elapsed.as_secs_f64()
                );
                let left = PodmanRun::leftovers(&summary.run_id);
                assert!(left.is_empty(), "{} left {left:?}", summary.name);
            }
            Err(e) => failed.push(format!("{}: {e}", file.display())),
        }
    }
    assert!(
        !service_dir().exists(),
        "the API service's socket directory outlived the runs"
    );
    assert!(
        failed.is_empty(),
        "failed on {kind}:\n{}",
        failed.join("\n")
    );
}

#[test]
fn every_scenario_on_podman_emulator() {
    every_scenario_on(BackendKind::PodmanEmulator);
}

#[test]
fn every_scenario_on_podman_systemd() {
    every_scenario_on(BackendKind::PodmanSystemd);
}

/// A run that fails (a state that never comes) leaves nothing behind either.
#[test]
fn a_failed_run_leaves_no_containers_behind() {
    let _lock = common::cluster_lock();
    if !require_podman("a_failed_run_leaves_no_containers_behind") {
        return;
    }
    let text = "nodes: main worker1\ncontroller: main\n\
                controller.conf:\n    [bluechi-controller]\n    AllowedNodeNames=main,worker1\n\
                wait worker1 never.service active/running within 1s\n";
    let scenario = scenario_runner::syntax::parse_str(
        "failing",
        std::path::Path::new("failing.scenario"),
        text,
    )
    .expect("scenario");
    let opts = Options {
        bin_dir: Some(common::real_bin_dir()),
        ..Options::default()
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut cluster = scenario_runner::backend::Cluster::new(
        BackendKind::PodmanEmulator,
        &opts.backend().expect("options"),
    )
    .expect("cluster");
    let run_id = cluster.run_id().to_string();
    let result = runtime.block_on(async {
        cluster.start(&scenario).await?;
        assert!(
            !PodmanRun::leftovers(&run_id).is_empty(),
            "positive control: the run's containers were not found"
        );
        let progress = scenario_runner::runner::Progress::new();
        scenario_runner::runner::run_steps(&cluster, &scenario, &progress)
            .await
            .1
            .map_err(|e| e.to_string())
    });
    let err = result.expect_err("the wait cannot succeed");
    assert!(err.contains("never.service"), "{err}");
    cluster.teardown();
    assert_eq!(PodmanRun::leftovers(&run_id), Vec::<String>::new());
    assert!(
        !service_dir().exists(),
        "the API service's socket outlived the run"
    );
}

/// SIGINT while a Podman run is up: the runner exits 130 and leaves nothing in Podman.
#[test]
fn sigint_leaves_no_containers_behind() {
    let _lock = common::cluster_lock();
    if !require_podman("sigint_leaves_no_containers_behind") {
        return;
    }
    let file = paths::scenarios_dir().join("upholds-restarts-target.scenario");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scenario"))
        .args(["--backend", "podman-emulator"])
        .arg(&file)
        .env("BLUECHI_BIN_DIR", common::real_bin_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("scenario binary");
    let pid = child.id();
    let rx = common::line_reader(child.stdout.take().expect("stdout"));
    let run_line = common::read_until(&rx, Duration::from_secs(120), |l| l.contains(": run "));
    let (run_id, _) = common::parse_run_line(&run_line);
    // The cluster is up and a job runs: containers and the network exist now.
    common::read_until(&rx, Duration::from_secs(120), |l| {
        l.contains("$ bluechictl start")
    });
    assert!(
        !PodmanRun::leftovers(&run_id).is_empty(),
        "positive control: the run's containers were not found"
    );
    kill(Pid::from_raw(pid as i32), Signal::SIGINT).expect("SIGINT");
    let mut status = None;
    common::poll(Duration::from_secs(60), "the runner to exit", || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(130));
    assert_eq!(PodmanRun::leftovers(&run_id), Vec::<String>::new());
    let dir = std::env::temp_dir().join(format!("bluechi-podman-{pid}"));
    assert!(!dir.exists(), "{} outlived the runner", dir.display());
}

/// `end` interrupts a capture as Ctrl-C would, also a program that keeps SIGINT's default
/// action (`bluechi-is-online --monitor` installs no handler): it dies of SIGINT at once, the
/// same on the local backend and in a container, instead of waiting out the grace period.
#[test]
fn end_interrupts_a_capture_on_every_backend() {
    let _lock = common::cluster_lock();
    let podman = require_podman("end_interrupts_a_capture_on_every_backend");
    let text = "nodes: main\ncontroller: main\n\
                controller.conf:\n    [bluechi-controller]\n    AllowedNodeNames=main\n";
    let scenario =
        scenario_runner::syntax::parse_str("capture", std::path::Path::new("c.scenario"), text)
            .expect("scenario");
    let opts = Options {
        bin_dir: Some(common::real_bin_dir()),
        ..Options::default()
    };
    let mut kinds = vec![BackendKind::Local];
    if podman {
        kinds.push(BackendKind::PodmanEmulator);
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    for kind in kinds {
        runtime.block_on(async {
            let mut cluster =
                scenario_runner::backend::Cluster::new(kind, &opts.backend().expect("options"))
                    .expect("cluster");
            cluster.start(&scenario).await.expect("cluster up");
            let argv: Vec<String> = ["bluechi-is-online", "agent", "--monitor"]
                .map(String::from)
                .to_vec();
            let host = cluster.host("main").expect("main");
            let bg = host.spawn(&argv, "monitor").await.expect("capture");
            let grace = Duration::from_secs(5);
            let started = std::time::Instant::now();
            let out = bg.finish(grace).await.expect("finish");
            assert_eq!(
                out.exit,
                scenario_runner::transcript::Exit::Signal(libc::SIGINT),
                "{kind}: {out:?}"
            );
            assert!(started.elapsed() < grace, "{kind}: SIGINT did not end it");
            cluster.teardown();
        });
    }
}
