//! Where the runner finds binaries, scenario files and shipped unit files.

use std::path::{Path, PathBuf};

pub const BINARIES: [&str; 7] = [
    "bluechi-is-online",
    "systemctl",
    "bluechi-controller",
    "bluechi-agent",
    "bluechi-proxy",
    "bluechictl",
    "systemd-emulator",
];

/// `BLUECHI_BIN_DIR`, else the directory of the running executable; test executables live in
/// `target/<profile>/deps/`, so step out of that.
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("BLUECHI_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate own executable: {e}"))?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| format!("executable {} has no parent directory", exe.display()))?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        if let Some(parent) = dir.parent() {
            dir = parent.to_path_buf();
        }
    }
    Ok(dir)
}

/// Checks every binary the local backend runs is present, naming the fix if not.
pub fn check_binaries(dir: &Path) -> Result<(), String> {
    let missing: Vec<&str> = BINARIES
        .iter()
        .copied()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing binaries in {}: {}; run `cargo build --workspace` (or set BLUECHI_BIN_DIR)",
            dir.display(),
            missing.join(", ")
        ))
    }
}

pub fn scenarios_dir() -> PathBuf {
    std::env::var_os("BLUECHI_SCENARIOS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The repository the runner was built from (`ci/images.sh`, `containers/`).
pub fn repo_root() -> PathBuf {
    bluechi_testkit::podman::repo_root()
}

/// The agent's shipped `bluechi-proxy@.service` / `bluechi-dep@.service`.
pub fn shipped_units_dir() -> PathBuf {
    std::env::var_os("BLUECHI_UNITS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/bluechi-agent/units")
        })
}

/// A bare name means `<scenarios dir>/NAME.scenario`; anything with a slash or the extension is
/// a path.
pub fn resolve_scenario(arg: &str) -> PathBuf {
    if arg.contains('/') || arg.ends_with(".scenario") {
        PathBuf::from(arg)
    } else {
        scenarios_dir().join(format!("{arg}.scenario"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_into_the_scenarios_dir() {
        assert_eq!(resolve_scenario("x"), scenarios_dir().join("x.scenario"));
        assert_eq!(
            resolve_scenario("a/b.scenario"),
            PathBuf::from("a/b.scenario")
        );
    }

    #[test]
    fn missing_binaries_are_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_binaries(dir.path()).unwrap_err();
        assert!(
            err.contains("bluechictl") && err.contains("cargo build --workspace"),
            "{err}"
        );
    }
}
