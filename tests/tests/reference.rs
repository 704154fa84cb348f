//! Our scenario snapshots must contain upstream's output byte for byte.
//!
//! For every step upstream recorded (`tests/reference/<scenario>/NN-*.cmd`), the step rendered
//! from upstream's stdout/stderr/exit code with the scenario's own redactions must appear in our
//! snapshot, in the same order. Node-table IPs and the racing `start` result of scenario A are
//! the only bytes redacted, on both sides alike.

use std::fs;
use std::path::{Path, PathBuf};

use scenario_runner::syntax::parse_file;
use scenario_runner::transcript::{render_step, CommandOutput, Exit};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The snapshot body: insta's header (between the first two `---` lines) removed.
fn snapshot_body(name: &str) -> String {
    let path = root()
        .join("scenarios/snapshots")
        .join(format!("{name}.snap"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut parts = text.splitn(3, "---\n");
    parts.next();
    parts.next();
    parts.next().unwrap_or_default().to_string()
}

fn reference_steps(name: &str) -> Vec<(String, CommandOutput)> {
    let dir = root().join("tests/reference").join(name);
    let mut cmds: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cmd"))
        .collect();
    cmds.sort();
    assert!(!cmds.is_empty(), "no reference steps in {}", dir.display());
    cmds.into_iter()
        .map(|cmd| {
            let read = |ext: &str| fs::read_to_string(cmd.with_extension(ext)).unwrap_or_default();
            let rc: i32 = read("rc").trim().parse().expect("rc file holds a number");
            let output = CommandOutput {
                stdout: read("stdout"),
                stderr: read("stderr"),
                exit: Exit::Code(rc),
            };
            (read("cmd").trim().to_string(), output)
        })
        .collect()
}

fn check(name: &str) {
    let scenario = parse_file(&root().join("scenarios").join(format!("{name}.scenario")))
        .unwrap_or_else(|e| panic!("{e}"));
    let body = snapshot_body(name);
    let mut from = 0;
    for (cmd, output) in reference_steps(name) {
        let expected = render_step(&cmd, &output, &scenario.redactions);
        match body[from..].find(&expected) {
            Some(i) => from += i + expected.len(),
            None => panic!(
                "{name}: upstream's step not found (in order) in our snapshot:\n{expected}\n\
                 --- our snapshot from there on:\n{}",
                &body[from..]
            ),
        }
    }
}

#[test]
fn requires_stops_source_matches_upstream() {
    check("requires-stops-source");
}

#[test]
fn stop_when_unneeded_matches_upstream() {
    check("stop-when-unneeded");
}

#[test]
fn upholds_restarts_target_matches_upstream() {
    check("upholds-restarts-target");
}

/// The vendored copies must not drift from the project's shared reference, when it is there.
#[test]
fn vendored_reference_equals_shared() {
    let shared = root().join("../shared/reference");
    if !shared.is_dir() {
        eprintln!(
            "{} not present; only the vendored copy is used",
            shared.display()
        );
        return;
    }
    let pairs = [
        ("scenario-A-requires-stops-source", "requires-stops-source"),
        ("scenario-B-stop-when-unneeded", "stop-when-unneeded"),
        (
            "scenario-C-upholds-restarts-target",
            "upholds-restarts-target",
        ),
    ];
    for (src, dst) in pairs {
        for e in fs::read_dir(root().join("tests/reference").join(dst)).unwrap() {
            let p = e.unwrap().path();
            let theirs = fs::read(shared.join(src).join(p.file_name().unwrap())).unwrap();
            assert_eq!(fs::read(&p).unwrap(), theirs, "{} drifted", p.display());
        }
    }
}

/// A mismatch must be caught: a changed byte in upstream's output is not found.
#[test]
fn comparison_detects_a_changed_byte() {
    let scenario = parse_file(&root().join("scenarios/stop-when-unneeded.scenario")).unwrap();
    let (cmd, mut output) = reference_steps("stop-when-unneeded").remove(2);
    output.stdout = output.stdout.replacen("exited", "exitec", 1);
    let expected = render_step(&cmd, &output, &scenario.redactions);
    assert!(!snapshot_body("stop-when-unneeded").contains(&expected));
}
