//! The `podman` command as every test, the scenario runner and the benchmarks run it. This
//! project's machines need the repository's `containers/containers.conf` (runc, ulimits below
//! the machine's limits); a copy that forgot it failed only on those machines. Also here: what a
//! test does when it cannot run its subject (Podman missing, an image not built).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository: `BLUECHI_REPO_ROOT`, else where this crate was built from.
pub fn repo_root() -> PathBuf {
    std::env::var_os("BLUECHI_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or(Path::new("."))
                .to_path_buf()
        })
}

/// Points `cmd` (podman, or a script that runs it) at the repository's `containers.conf`,
/// unless the caller's environment already chose one.
pub fn with_containers_conf(cmd: &mut Command) -> &mut Command {
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        cmd.env(
            "CONTAINERS_CONF",
            repo_root().join("containers/containers.conf"),
        );
    }
    cmd
}

/// `podman` with the project's configuration; stdin is closed (podman never reads ours).
pub fn podman() -> Command {
    let mut cmd = Command::new("podman");
    with_containers_conf(&mut cmd).stdin(Stdio::null());
    cmd
}

/// stdout then stderr, for messages and for checks that do not care which stream.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `cmd`; its stdout on success, else `PROGRAM ARGS: stderr` (or why it did not start).
pub fn run_ok(cmd: &mut Command) -> Result<String, String> {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {line}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `podman ARGS`, checked: stdout on success, the reason otherwise.
pub fn podman_ok(args: &[&str]) -> Result<String, String> {
    run_ok(podman().args(args))
}

/// Why podman cannot be used here, if it cannot.
pub fn unavailable() -> Option<String> {
    match podman().arg("--version").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("podman --version failed: {}", text(&o))),
        Err(e) => Some(format!("podman not available: {e}")),
    }
}

/// Whether this run must not skip: CI sets `CI=true`.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A test that cannot run its subject is not a pass: under `CI=true` this fails with the
/// reason; elsewhere it prints why and the caller returns.
pub fn cannot_run(test: &str, why: &str) {
    assert!(!under_ci(), "{test} cannot run under CI=true: {why}");
    println!("SKIPPED {test}: {why}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_gets_the_repositorys_containers_conf_unless_one_is_set() {
        let cmd = podman();
        let set = cmd
            .get_envs()
            .find(|(k, _)| *k == "CONTAINERS_CONF")
            .and_then(|(_, v)| v.map(PathBuf::from));
        match std::env::var_os("CONTAINERS_CONF") {
            Some(_) => assert_eq!(set, None, "the caller's choice is kept"),
            None => {
                let conf = set.expect("CONTAINERS_CONF set");
                assert!(conf.ends_with("containers/containers.conf"), "{conf:?}");
                assert!(conf.exists(), "{conf:?} is not in the repository");
            }
        }
        assert_eq!(cmd.get_program(), "podman");
    }

    #[test]
    fn run_ok_gives_stdout_or_the_command_and_its_stderr() {
        assert_eq!(
            run_ok(Command::new("sh").args(["-c", "echo out"])),
            Ok("out\n".into())
        );
        assert_eq!(
            run_ok(Command::new("sh").args(["-c", "echo bad >&2; exit 3"])),
            Err("sh -c echo bad >&2; exit 3: bad".into())
        );
        let e = run_ok(&mut Command::new("/nonexistent/program")).unwrap_err();
        assert!(e.starts_with("cannot run /nonexistent/program: "), "{e}");
    }
}
