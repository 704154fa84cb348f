//! Podman plumbing shared by the tests that judge our code against systemd 252's image: the
//! `podman` command with the project's CONTAINERS_CONF, a container and a network removed on
//! every path, `sh -c` inside a container and polling with a deadline; `images` builds the node
//! images of `ci/images.sh`.

#![allow(dead_code)] // Each test binary uses its own subset.

pub mod images;

use std::process::{Command, Output};
use std::time::Duration;

use bluechi_testkit::poll::{Poll, Step};

/// Debian bookworm with systemd 252, built by `ci/conformance.sh`.
pub const IMAGE: &str = "localhost/bluechi-conformance-systemd252";
pub const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// The kit's `podman` (the project's CONTAINERS_CONF) and what a test does when it cannot run.
pub use bluechi_testkit::podman::{
    cannot_run, podman, repo_root, text, unavailable as podman_unavailable,
};

pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Why the test cannot run here, if it cannot.
pub fn skip_reason() -> Option<String> {
    if let Some(why) = podman_unavailable() {
        return Some(why);
    }
    match podman().args(["image", "exists", IMAGE]).status() {
        Ok(s) if s.success() => None,
        _ => Some(format!("image {IMAGE} not built (see ci/conformance.sh)")),
    }
}

/// `{prefix}-{tag}-{pid}`: unique per test process; `BLUECHI_CONTAINER_PREFIX` keeps developers
/// sharing a machine apart (default `bluechi`).
pub fn container_name(tag: &str) -> String {
    let prefix =
        std::env::var("BLUECHI_CONTAINER_PREFIX").unwrap_or_else(|_| "bluechi".to_string());
    format!("{prefix}-{tag}-{}", std::process::id())
}

/// `-v HOST:/etc/dbus-1/system.d/NAME:ro` for a policy file of the repository.
pub fn policy_volume(repo_path: &str) -> String {
    let file = repo_root().join(repo_path);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{}:/etc/dbus-1/system.d/{name}:ro", file.display())
}

/// Polls `probe` until it yields a value; at the deadline panics with `what` and `report()`.
pub fn poll<T>(what: &str, probe: impl FnMut() -> Option<T>, report: impl FnOnce() -> String) -> T {
    Poll::new(what, DEADLINE)
        .every(POLL)
        .until_blocking(probe)
        .unwrap_or_else(|e| panic!("{e}\n{}", report()))
}

/// A podman network for one test (`{prefix}-{tag}-{pid}`); removed on every path, after the
/// containers on it when it is declared before them.
pub struct Network {
    pub name: String,
}

impl Network {
    pub fn create(tag: &str) -> Network {
        let n = Network {
            name: container_name(tag),
        };
        let _ = podman().args(["network", "rm", "-f", &n.name]).output();
        let o = run(podman().args(["network", "create", &n.name]));
        assert!(
            o.status.success(),
            "podman network create failed: {}",
            text(&o)
        );
        n
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = podman().args(["network", "rm", "-f", &self.name]).output();
    }
}

/// A detached container; removed on every path, including a failed assertion.
pub struct Container {
    pub name: String,
    /// Shell script whose output explains a failure (journals, logs); podman logs are added.
    pub diagnostics: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.name]).output();
    }
}

impl Container {
    /// `podman run -d --name NAME ARGS...` (ARGS include the image and command).
    pub fn start(tag: &str, args: &[String]) -> Container {
        let c = Container {
            name: container_name(tag),
            diagnostics: String::new(),
        };
        let _ = podman().args(["rm", "-f", "-t", "0", &c.name]).output();
        let o = run(podman().args(["run", "-d", "--name", &c.name]).args(args));
        assert!(o.status.success(), "podman run failed: {}", text(&o));
        c
    }

    pub fn sh(&self, script: &str) -> Output {
        run(podman().args(["exec", &self.name, "sh", "-c", script]))
    }

    pub fn sh_ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(
            o.status.success(),
            "`{script}` failed: {}\n{}",
            text(&o),
            self.report()
        );
        text(&o)
    }

    /// Polls `script` until its output satisfies `ok`; panics with the last output and the
    /// diagnostics at the deadline.
    pub fn wait_for(&self, what: &str, script: &str, ok: impl Fn(&str) -> bool) -> String {
        Poll::new(what, DEADLINE)
            .every(POLL)
            .until_blocking(|| {
                let out = text(&self.sh(script));
                if ok(&out) {
                    Step::Done(out)
                } else {
                    Step::Pending(format!("output of `{script}`:\n{out}"))
                }
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", self.report()))
    }

    /// What the container's daemons said: the diagnostics script and the tail of podman logs.
    pub fn report(&self) -> String {
        let mut out = String::new();
        if !self.diagnostics.is_empty() {
            out.push_str(&text(&self.sh(&self.diagnostics)));
        }
        let logs = run(podman().args(["logs", "--tail", "80", &self.name]));
        out.push_str("--- podman logs ---\n");
        out.push_str(&text(&logs));
        out
    }

    /// The container's state and exit code as podman reports them.
    pub fn state(&self) -> (String, i64) {
        let o = run(podman().args([
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            &self.name,
        ]));
        let t = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let (status, code) = t.split_once(' ').unwrap_or((t.as_str(), ""));
        (status.to_string(), code.parse().unwrap_or(-1))
    }
}
