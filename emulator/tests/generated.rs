//! Random unit graphs from `conformance::generate`, replayed against the pure engine: checks
//! what must hold whatever real systemd would report (the recorded `gen-*` cases compare with
//! systemd itself).

use proptest::prelude::*;
use std::collections::BTreeMap;
use systemd_emulator::conformance::case::Case;
use systemd_emulator::conformance::fixture::StepObs;
use systemd_emulator::conformance::generate::generate;
use systemd_emulator::conformance::replay::{run_traced, JobEvent};

/// `(binder, bound)` for every BindsTo= line of the case's units.
fn binds_to(c: &Case) -> Vec<(String, String)> {
    c.units
        .iter()
        .flat_map(|(n, t)| {
            t.lines()
                .filter_map(|l| l.strip_prefix("BindsTo="))
                .map(move |b| (n.clone(), b.to_string()))
        })
        .collect()
}

fn active_of<'a>(obs: &'a StepObs, unit: &str) -> &'a str {
    obs.units
        .iter()
        .find(|u| u.name == unit)
        .map_or("?", |u| u.active.as_str())
}

fn check(seed: u64) -> Result<(), String> {
    let c = generate(seed);
    let steps = run_traced(&c).map_err(|e| format!("step did not settle: {e}"))?;
    let again = run_traced(&c).map_err(|e| format!("second run: {e}"))?;
    if steps != again {
        return Err("two replays of the same case differ".into());
    }
    // Jobs still open at a step boundary would mean the step never settled.
    let mut open: BTreeMap<u32, String> = BTreeMap::new();
    let mut removed: Vec<u32> = Vec::new();
    for (n, (obs, trace)) in steps.iter().enumerate() {
        let at = |m: String| format!("step {} ({}): {m}", n + 1, obs.op);
        let mut last_result: BTreeMap<&str, &str> = BTreeMap::new();
        for ev in trace {
            match ev {
                JobEvent::New { id, unit } => {
                    if open.insert(*id, unit.clone()).is_some() || removed.contains(id) {
                        return Err(at(format!("job {id} ({unit}) announced twice")));
                    }
                }
                JobEvent::Removed { id, unit, result } => {
                    if open.remove(id).is_none() {
                        return Err(at(format!("job {id} ({unit}) removed twice or never new")));
                    }
                    removed.push(*id);
                    last_result.insert(unit, result);
                }
            }
        }
        if !open.is_empty() {
            return Err(at(format!("jobs left pending: {open:?}")));
        }
        for (unit, result) in &last_result {
            if *result == "failed" && active_of(obs, unit) == "active" {
                return Err(at(format!("{unit} is active after its job failed")));
            }
        }
        for (binder, bound) in binds_to(&c) {
            let b = active_of(obs, &bound);
            if (b == "inactive" || b == "failed") && active_of(obs, &binder) == "active" {
                return Err(at(format!("{binder} active though bound {bound} is {b}")));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_graphs_keep_engine_invariants(seed in any::<u64>()) {
        if let Err(e) = check(seed) {
            let text = systemd_emulator::conformance::generate::render(&generate(seed));
            prop_assert!(false, "seed {}: {}\n{}", seed, e, text);
        }
    }
}

/// Seeds that once broke an invariant, plus the range the recorded `gen-*` cases come from.
const REGRESSIONS: &[u64] = &[
    4202757903384875205,
    8408574117576165071,
    16001999750856320329,
];

#[test]
fn the_recorded_seeds_keep_engine_invariants() {
    for &seed in REGRESSIONS
        .iter()
        .chain((1..=60).collect::<Vec<_>>().iter())
    {
        if let Err(e) = check(seed) {
            panic!("seed {seed}: {e}");
        }
    }
}

#[test]
fn committed_gen_cases_match_the_generator() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/cases");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("cases directory").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(seed) = name
            .strip_prefix("gen-")
            .and_then(|s| s.strip_suffix(".case"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).expect("readable case");
        let want = systemd_emulator::conformance::generate::render(&generate(seed));
        assert_eq!(
            text, want,
            "{name} differs from generate({seed}): regenerate and re-record it"
        );
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} gen-*.case files");
}
