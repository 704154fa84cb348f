//! Writes random conformance cases and compares their recordings with the emulator.
//!
//!     conformance-generate write --out DIR (--count N | SEED...)
//!     conformance-generate compare DIR
//!
//! `write` makes `DIR/gen-<seed>.case` (with `--count`, N fresh random seeds); `compare` replays
//! every case in DIR against the pure engine, diffs it with `DIR/<case>.fixture` as recorded by
//! `conformance-record`, and prints the agreement.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use systemd_emulator::conformance::{case, fixture, generate, replay};

fn fresh_seed(i: u64) -> u64 {
    // RandomState is seeded from the OS per process: enough for picking new graphs.
    RandomState::new().hash_one(i) % 1_000_000_000
}

fn write(args: &[String]) -> Result<(), String> {
    let mut out: Option<PathBuf> = None;
    let mut seeds = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next().map(PathBuf::from),
            "--count" => {
                let n: u64 = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--count needs a number")?;
                seeds.extend((0..n).map(fresh_seed));
            }
            s => seeds.push(s.parse().map_err(|_| format!("bad seed {s:?}"))?),
        }
    }
    let out = out.ok_or("--out DIR is required")?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for seed in seeds {
        let c = generate::generate(seed);
        let path = out.join(format!("{}.case", c.name));
        std::fs::write(&path, generate::render(&c))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{}", c.name);
    }
    Ok(())
}

fn compare_case(path: &Path, dir: &Path) -> Result<(usize, Vec<String>), String> {
    let c = case::load(path).map_err(|e| e.to_string())?;
    let fx = dir.join(format!("{}.fixture", c.name));
    let text = std::fs::read_to_string(&fx).map_err(|e| format!("{}: {e}", fx.display()))?;
    let real = fixture::parse(&fx.display().to_string(), &text)?;
    let emu = replay::run(&c).map_err(|e| format!("replay: {e}"))?;
    let mut agree = 0;
    let mut diffs = Vec::new();
    for (i, (r, e)) in real.iter().zip(&emu).enumerate() {
        let d = r.diff(e);
        if d.is_empty() {
            agree += 1;
        } else {
            diffs.push(format!(
                "{} step {} ({}): systemd vs emulator: {}",
                c.name,
                i + 1,
                r.op,
                d.join("; ")
            ));
        }
    }
    Ok((agree, diffs))
}

fn compare(dir: &Path) -> Result<bool, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "case"))
        .collect();
    files.sort();
    let (mut agree, mut total, mut bad) = (0, 0, 0);
    for f in &files {
        let steps = case::load(f).map(|c| c.steps.len()).unwrap_or(0);
        total += steps;
        match compare_case(f, dir) {
            Ok((a, diffs)) => {
                agree += a;
                for d in diffs {
                    println!("{d}");
                }
            }
            Err(e) => {
                bad += 1;
                println!("{}: {e}", f.display());
            }
        }
    }
    println!(
        "conformance-generate: {agree}/{total} steps agree over {} cases ({bad} not comparable)",
        files.len()
    );
    Ok(agree == total && bad == 0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("write") => write(&args[1..]).map(|()| true),
        Some("compare") if args.len() == 2 => compare(Path::new(&args[1])),
        _ => Err(
            "usage: conformance-generate write --out DIR (--count N | SEED...) | compare DIR"
                .to_string(),
        ),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("conformance-generate: {e}");
            ExitCode::from(2)
        }
    }
}
