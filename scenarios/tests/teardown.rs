//! Nothing of a run may survive it: no process carrying the run marker, no run directory, no
//! bus socket, whether the run succeeded, failed, or was interrupted.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use scenario_runner::backend::local::sweep::marked_processes;
use scenario_runner::backend::{BackendKind, BackendOptions, Cluster};
use scenario_runner::{paths, runner, syntax};

const MINI: &str = "nodes: main worker1\ncontroller: main\n$ bluechictl status\n";

fn mini() -> syntax::Scenario {
    syntax::parse_str("mini", std::path::Path::new("mini.scenario"), MINI).unwrap()
}

#[test]
fn failed_startup_tears_everything_down() {
    let _lock = common::cluster_lock();
    let root = tempfile::tempdir().unwrap();
    let (bin_dir, units_dir) = common::fake_bin_dir(root.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut backend = Cluster::new(
        BackendKind::Local,
        &BackendOptions {
            units_dir,
            ready_timeout: Duration::from_secs(1),
            ..BackendOptions::new(bin_dir)
        },
    )
    .unwrap();
    let err = runtime
        .block_on(backend.start(&mini()))
        .expect_err("the fake emulator never owns its name");
    assert!(err.contains("org.freedesktop.systemd1"), "{err}");
    let run_id = backend.run_id().to_string();
    let work_dir = backend.work_dir().to_path_buf();
    // Positive control: the bus, the emulator and its escaped grandchild are alive now.
    common::poll(
        Duration::from_secs(5),
        "the fake emulator's grandchild",
        || marked_processes(&run_id).len() >= 3,
    );
    assert!(work_dir.join("main/bus.sock").exists());
    backend.teardown();
    common::assert_nothing_left(&run_id, &work_dir);
}

#[test]
fn sigint_during_startup_tears_everything_down() {
    let root = tempfile::tempdir().unwrap();
    let (bin_dir, units_dir) = common::fake_bin_dir(root.path());
    let file = root.path().join("mini.scenario");
    std::fs::write(&file, MINI).unwrap();
    interrupt_and_check(
        &file,
        &bin_dir,
        Some(&units_dir),
        |line| line.starts_with("scenario mini on local: run "),
        3,
    );
}

#[test]
fn sigint_mid_run_tears_everything_down() {
    let _lock = common::cluster_lock();
    let bin_dir = common::real_bin_dir();
    let file = paths::scenarios_dir().join("upholds-restarts-target.scenario");
    // After the first `$` step the whole cluster is up and the target is being started.
    interrupt_and_check(
        &file,
        &bin_dir,
        None,
        |line| line.contains("$ bluechictl start"),
        10,
    );
}

/// Runs the `scenario` binary on `file`, waits for a stdout line matching `when` and for at
/// least `min_procs` marked processes, sends SIGINT and checks that everything is gone.
fn interrupt_and_check(
    file: &std::path::Path,
    bin_dir: &std::path::Path,
    units_dir: Option<&std::path::Path>,
    when: impl Fn(&str) -> bool,
    min_procs: usize,
) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scenario"));
    cmd.arg(file)
        .env("BLUECHI_BIN_DIR", bin_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(u) = units_dir {
        cmd.env("BLUECHI_UNITS_DIR", u);
    }
    let mut child = cmd.spawn().unwrap();
    let rx = common::line_reader(child.stdout.take().unwrap());
    let run_line = common::read_until(&rx, Duration::from_secs(10), |l| l.contains(": run "));
    let (run_id, work_dir) = common::parse_run_line(&run_line);
    if !when(&run_line) {
        common::read_until(&rx, Duration::from_secs(30), &when);
    }
    common::poll(Duration::from_secs(10), "the run's processes", || {
        marked_processes(&run_id).len() >= min_procs
    });
    assert!(work_dir.exists());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let mut status = None;
    common::poll(Duration::from_secs(30), "the runner to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(130));
    common::assert_nothing_left(&run_id, &work_dir);
}

#[test]
fn successful_run_leaves_nothing_behind() {
    let _lock = common::cluster_lock();
    let bin_dir = common::real_bin_dir();
    let path = paths::scenarios_dir().join("stop-when-unneeded.scenario");
    let scenario = syntax::parse_file(&path).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut backend = Cluster::new(BackendKind::Local, &BackendOptions::new(bin_dir)).unwrap();
    let run_id = backend.run_id().to_string();
    let work_dir = backend.work_dir().to_path_buf();
    let progress = runner::Progress::new();
    let result = runtime.block_on(async {
        backend.start(&scenario).await?;
        runner::run_steps(&backend, &scenario, &progress)
            .await
            .1
            .map_err(|e| e.to_string())
    });
    if let Err(e) = &result {
        runner::print_timeline(&backend);
        panic!("run failed: {e}");
    }
    // Positive control: 3 buses, 3 emulators, 3 agents, 1 controller.
    assert!(marked_processes(&run_id).len() >= 10);
    for node in &scenario.nodes {
        assert!(work_dir.join(node).join("bus.sock").exists());
    }
    backend.teardown();
    common::assert_nothing_left(&run_id, &work_dir);
}

#[test]
fn scenario_file_errors_exit_with_2() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("bad.scenario");
    std::fs::write(&file, "nodes: a\ncontroller: a\nwait a x.service\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scenario"))
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.scenario:3:17: expected a condition"),
        "{stderr}"
    );
}
