//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bluechi_testkit::poll;
use scenario_runner::backend::local::sweep::marked_processes;
use scenario_runner::paths;

/// Cluster runs are heavy on a small machine; one at a time per test binary.
pub static CLUSTER: Mutex<()> = Mutex::new(());

pub fn cluster_lock() -> std::sync::MutexGuard<'static, ()> {
    CLUSTER.lock().unwrap_or_else(|e| e.into_inner())
}

/// The directory with the real binaries; panics with the fix if any is missing.
pub fn real_bin_dir() -> PathBuf {
    let dir = paths::bin_dir().expect("binary directory");
    if let Err(e) = paths::check_binaries(&dir) {
        panic!("{e}");
    }
    dir
}

/// A bin dir whose emulator never claims its bus name but leaves a grandchild in another
/// session (only the marker sweep can find it), and whose other daemons exit at once.
pub fn fake_bin_dir(root: &Path) -> (PathBuf, PathBuf) {
    let bin = root.join("bin");
    let units = root.join("units");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&units).unwrap();
    for name in paths::BINARIES {
        let script = if name == "systemd-emulator" {
            "#!/bin/sh\nsetsid sleep 300 </dev/null >/dev/null 2>&1 &\nexec sleep 300\n"
        } else {
            "#!/bin/sh\nexit 1\n"
        };
        let path = bin.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for unit in ["bluechi-proxy@.service", "bluechi-dep@.service"] {
        std::fs::write(
            units.join(unit),
            "[Service]\nExecStart=/usr/libexec/bluechi-proxy\n",
        )
        .unwrap();
    }
    (bin, units)
}

/// Asserts that nothing of the run survives: no marked process, no run directory (and so no
/// bus socket in it).
pub fn assert_nothing_left(run_id: &str, work_dir: &Path) {
    // A SIGKILLed process may need a moment to disappear from /proc; the assertion says what
    // is left if it does not.
    let _ = poll::until_blocking("the run's processes to go", Duration::from_secs(5), || {
        marked_processes(run_id).is_empty()
    });
    assert_eq!(
        marked_processes(run_id),
        Vec::<i32>::new(),
        "stray processes of run {run_id}"
    );
    assert!(
        !work_dir.exists(),
        "run directory {} still exists",
        work_dir.display()
    );
}

/// Polls `f` until it returns true, panicking with `what` after `deadline`.
pub fn poll(deadline: Duration, what: &str, f: impl FnMut() -> bool) {
    poll::until_blocking(what, deadline, f).unwrap_or_else(|e| panic!("{e}"));
}

/// Streams a child's stdout lines into a channel (so reads can have deadlines).
pub fn line_reader(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads lines until one satisfies `pred`; returns it. Panics on EOF or deadline, showing what
/// was read.
pub fn read_until(
    rx: &mpsc::Receiver<String>,
    deadline: Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) if pred(&line) => return line,
            Ok(line) => seen.push(line),
            Err(e) => panic!(
                "no matching line ({e:?}); output so far:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// Parses "scenario NAME: run ID in DIR".
pub fn parse_run_line(line: &str) -> (String, PathBuf) {
    let rest = line.split_once(": run ").expect("run line").1;
    let (id, dir) = rest.split_once(" in ").expect("run line with directory");
    (id.to_string(), PathBuf::from(dir))
}
