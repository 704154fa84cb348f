//! Replays every conformance case against the pure engine and compares each step with the
//! fixture recorded from real systemd 252 (`ci/conformance.sh` re-records them).

use std::path::{Path, PathBuf};
use systemd_emulator::conformance::{case, fixture, known, replay};

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(sub)
}

#[test]
fn emulator_agrees_with_recorded_systemd() {
    let known_text = std::fs::read_to_string(dir("DIRECTIVES.md")).unwrap_or_default();
    let known = known::parse(&known_text);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir("conformance/cases"))
        .expect("cases directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "case"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no conformance cases found");

    let (mut total, mut agree) = (0usize, 0usize);
    let mut unexpected = Vec::new();
    let mut stale_known = Vec::new();
    for f in &files {
        let c = case::load(f).unwrap_or_else(|e| panic!("{e}"));
        let fx_path = dir("conformance/fixtures").join(format!("{}.fixture", c.name));
        let fx_text = std::fs::read_to_string(&fx_path)
            .unwrap_or_else(|e| panic!("{}: {e} (run ci/conformance.sh)", fx_path.display()));
        let real = fixture::parse(&fx_path.display().to_string(), &fx_text)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            real.len(),
            c.steps.len(),
            "{}: fixture is stale (step count differs), re-record it",
            c.name
        );
        let emu = match replay::run(&c) {
            Ok(v) => v,
            Err(e) => {
                total += c.steps.len();
                if !known::is_known(&known, &c.name, 1) {
                    unexpected.push(format!("{}: replay failed: {e}", c.name));
                }
                continue;
            }
        };
        for (i, (r, e)) in real.iter().zip(&emu).enumerate() {
            let n = i + 1;
            total += 1;
            assert_eq!(r.op, e.op, "{}: fixture is stale at step {n}", c.name);
            let d = r.diff(e);
            if d.is_empty() {
                agree += 1;
                if known.iter().any(|k| k.case == c.name && k.step == Some(n)) {
                    stale_known.push(format!("{} step {n}", c.name));
                }
            } else {
                let line = format!(
                    "{} step {n} ({}): systemd vs emulator: {}",
                    c.name,
                    r.op,
                    d.join("; ")
                );
                if known::is_known(&known, &c.name, n) {
                    println!("known: {line}");
                } else {
                    unexpected.push(line);
                }
            }
        }
    }
    let pct = if total == 0 {
        0.0
    } else {
        100.0 * agree as f64 / total as f64
    };
    println!(
        "conformance: {agree}/{total} steps agree ({pct:.1}%) over {} cases",
        files.len()
    );
    for s in &stale_known {
        println!("note: {s} is listed as known but now agrees");
    }
    assert!(
        unexpected.is_empty(),
        "disagreements not listed in DIRECTIVES.md:\n{}",
        unexpected.join("\n")
    );
}
