//! Records conformance fixtures from real systemd 252.
//!
//! On the host (default) it boots one Podman container with systemd as PID 1 and re-runs itself
//! inside it with `--inside`, where it drives systemd over the container's system bus.
//!
//!     conformance-record --image IMG --cases DIR --fixtures DIR [CASE...]

mod host;
mod inside;

use std::path::PathBuf;
use std::process::ExitCode;

struct Args {
    inside: bool,
    image: String,
    cases: PathBuf,
    fixtures: PathBuf,
    only: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        inside: false,
        image: String::new(),
        cases: PathBuf::new(),
        fixtures: PathBuf::new(),
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--inside" => a.inside = true,
            "--image" => a.image = value("--image")?,
            "--cases" => a.cases = value("--cases")?.into(),
            "--fixtures" => a.fixtures = value("--fixtures")?.into(),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => a.only.push(s.trim_end_matches(".case").to_string()),
        }
    }
    if a.cases.as_os_str().is_empty() || a.fixtures.as_os_str().is_empty() {
        return Err("--cases and --fixtures are required".into());
    }
    if !a.inside && a.image.is_empty() {
        return Err("--image is required".into());
    }
    Ok(a)
}

/// The cases to record: all `*.case` files, or only the named ones.
fn case_files(dir: &std::path::Path, only: &[String]) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "case"))
        .filter(|p| {
            only.is_empty()
                || p.file_stem()
                    .is_some_and(|s| only.iter().any(|o| *o == s.to_string_lossy()))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("conformance-record: {e}");
            return ExitCode::from(2);
        }
    };
    let r = if args.inside {
        case_files(&args.cases, &args.only).and_then(|f| inside::run(&f, &args.fixtures))
    } else {
        host::run(&args.image, &args.cases, &args.fixtures, &args.only)
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conformance-record: {e}");
            ExitCode::FAILURE
        }
    }
}
