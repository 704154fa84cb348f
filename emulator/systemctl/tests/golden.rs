//! Our systemctl against the emulator, compared with what real systemctl 252 printed against real
//! systemd 252 for the same session (tests/golden/, recorded by record.sh).

use bluechi_testkit::bus::PrivateBus;
use bluechi_testkit::poll;
use regex::Regex;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

/// One recorded invocation: the arguments and what came out.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    line: String,
    stdout: String,
    stderr: String,
    exit: i32,
}

impl Step {
    fn render(&self) -> String {
        let mut s = format!("$ systemctl {}\n{}", self.line, self.stdout);
        if !self.stderr.is_empty() {
            s.push_str("[stderr]\n");
            s.push_str(&self.stderr);
        }
        s.push_str(&format!("[exit {}]\n", self.exit));
        s
    }
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn session_lines(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(crate_dir().join(format!("tests/{name}.session")))
        .expect("session file");
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Splits a golden file into its blocks, one per "$ systemctl" line.
fn golden_blocks(name: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(crate_dir().join(format!("tests/golden/{name}.golden")))
        .expect("golden file");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(cmd) = line.strip_prefix("$ systemctl ") {
            out.push((cmd.trim_end().to_string(), String::new()));
        }
        out.last_mut()
            .expect("golden starts with a command")
            .1
            .push_str(line);
    }
    out
}

/// Masks what legitimately differs between a systemd 252 container and the emulator on a
/// temporary unit directory.
fn normalise(text: &str, unit_dir: &str) -> String {
    let rules: &[(&str, &str)] = &[
        (
            r"since [A-Z][a-z]{2} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z]+; .* ago",
            "since TIME",
        ),
        (r"(Main PID|Process): \d+", "$1: PID"),
        // Preset policy is the manager's (UnitFilePreset), not served by the emulator.
        (r"; preset: [a-z]+\)", ")"),
        // The emulator has no cgroups, and no ExecStart= runtime property for Process: lines.
        (r"(?m)^ +CGroup: .*\n", ""),
        (r"(?m)^ +[├└]─.*\n", ""),
        (r"(?m)^ +Process: .*\n", ""),
    ];
    let mut s = text.replace("/etc/systemd/system", "UNITDIR");
    s = s.replace(unit_dir, "UNITDIR");
    for (re, with) in rules {
        s = Regex::new(re)
            .expect("valid regex")
            .replace_all(&s, *with)
            .into_owned();
    }
    s
}

/// Kills the process on drop so a failing test leaves nothing behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The emulator binary, built into the same target directory as our systemctl.
fn emulator_binary() -> PathBuf {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_systemctl"));
    let profile_dir = ours.parent().expect("binary dir");
    let target_dir = profile_dir.parent().expect("target dir");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args([
            "build",
            "-q",
            "-p",
            "systemd-emulator",
            "--bin",
            "systemd-emulator",
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(crate_dir())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building systemd-emulator failed");
    profile_dir.join("systemd-emulator")
}

struct Node {
    dir: tempfile::TempDir,
    address: String,
    _bus: PrivateBus,
    _emulator: Guard,
}

impl Node {
    fn unit_dir(&self) -> PathBuf {
        self.dir.path().join("units")
    }

    fn systemctl(&self, line: &str) -> Step {
        let out = Command::new(env!("CARGO_BIN_EXE_systemctl"))
            .args(line.split(' '))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .output()
            .expect("run systemctl");
        Step {
            line: line.to_string(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            exit: out.status.code().unwrap_or(-1),
        }
    }
}

/// A private bus with the emulator serving tests/units/ on it.
fn node() -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit_dir = dir.path().join("units");
    std::fs::create_dir(&unit_dir).expect("mkdir units");
    for e in std::fs::read_dir(crate_dir().join("tests/units")).expect("tests/units") {
        let e = e.expect("dir entry");
        std::fs::copy(e.path(), unit_dir.join(e.file_name())).expect("copy unit");
    }
    let emulator = emulator_binary();
    let bus = PrivateBus::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let address = bus.address().to_string();
    let emulator = Guard(
        Command::new(emulator)
            .arg("--unit-dir")
            .arg(&unit_dir)
            .arg("--bus-address")
            .arg(&address)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("spawn emulator"),
    );
    let node = Node {
        dir,
        address,
        _bus: bus,
        _emulator: emulator,
    };
    // Ready once the manager answers on the bus.
    poll::until_blocking("the emulator to answer on the bus", DEADLINE, || {
        node.systemctl("daemon-reload").exit == 0
    })
    .unwrap_or_else(|e| panic!("{e}"));
    node
}

/// Runs `session` against the emulator and compares every step with the golden.
fn compare_session(session: &str) {
    let golden = golden_blocks(session);
    let node = node();
    let unit_dir = node.unit_dir().display().to_string();
    let mut failures = Vec::new();
    for (line, want) in &golden {
        let got = node.systemctl(line);
        let want = normalise(want, &unit_dir);
        let got = normalise(&got.render(), &unit_dir);
        if want != got {
            failures.push(format!(
                "--- systemd 252:\n{want}+++ ours on the emulator:\n{got}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} steps differ:\n{}",
        failures.len(),
        golden.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_files_cover_the_sessions() {
    let ends_with_exit = Regex::new(r"\[exit \d+\]\n$").unwrap();
    for session in ["core", "enable"] {
        let lines = session_lines(session);
        let blocks = golden_blocks(session);
        let recorded: Vec<&String> = blocks.iter().map(|(l, _)| l).collect();
        assert_eq!(
            lines.iter().collect::<Vec<_>>(),
            recorded,
            "tests/golden/{session}.golden is stale: run record.sh"
        );
        for (line, block) in &blocks {
            assert!(
                ends_with_exit.is_match(block),
                "{session}: `{line}` has no exit status"
            );
        }
    }
}

#[test]
fn normalise_masks_times_pids_and_paths() {
    let real = "● a.service - A\n     Loaded: loaded (/etc/systemd/system/a.service; disabled; preset: enabled)\n     Active: active (running) since Tue 2026-11-24 05:49:26 UTC; 210ms ago\n   Main PID: 114 (sleep)\n     CGroup: /x/a.service\n             └─114 /bin/sleep 300\n";
    let ours = "● a.service - A\n     Loaded: loaded (/tmp/u/a.service; disabled)\n     Active: active (running) since Tue 2026-11-24 06:49:26 UTC; 1min 2s ago\n   Main PID: 7 (sleep)\n";
    assert_eq!(normalise(real, "/tmp/u"), normalise(ours, "/tmp/u"));
    assert_ne!(
        normalise(real, "/tmp/u"),
        normalise(&ours.replace("running", "exited"), "/tmp/u")
    );
}

#[test]
fn core_session_matches_golden() {
    compare_session("core");
}

#[test]
fn enable_session_matches_golden() {
    compare_session("enable");
}
