//! Real systemd 252 in Podman for comparison: this very program is mounted into the container
//! and run there as a client of the container's system bus (dbus-daemon 1.14, as on the host),
//! so both sides go through the same kind of bus with the same client code.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use bluechi_testkit::podman as kit;
use bluechi_testkit::poll::{Poll, Step};

pub const IMAGE: &str = "localhost/bluechi-conformance-systemd252";
const INSIDE: &str = "/usr/local/bin/bluechi-bench";
const BOOT: Duration = Duration::from_secs(60);

pub struct Container {
    name: String,
}

/// `podman ARGS` (the test kit's command: the project's containers.conf), not checked.
fn podman(args: &[&str]) -> Result<Output, String> {
    kit::podman()
        .args(args)
        .output()
        .map_err(|e| format!("cannot run podman {}: {e}", args.join(" ")))
}

/// Why the systemd side cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    if let Some(why) = kit::unavailable() {
        return Some(why);
    }
    match podman(&["image", "exists", IMAGE]) {
        Ok(o) if o.status.success() => None,
        _ => Some(format!(
            "image {IMAGE} is missing (build it with `ci/conformance.sh --image-only`)"
        )),
    }
}

impl Container {
    /// Boots systemd in a container named `name` (a leftover of that name is replaced) with
    /// `program` mounted, and waits until systemd reports the boot finished.
    pub fn start(name: &str, program: &Path) -> Result<Container, String> {
        let _ = podman(&["rm", "-f", "-t", "0", name]);
        let mount = format!("{}:{INSIDE}:ro", program.display());
        kit::podman_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--systemd=always",
            "--network=none",
            "-v",
            &mount,
            IMAGE,
            "/lib/systemd/systemd",
        ])?;
        let c = Container { name: name.into() };
        Poll::new(format!("systemd in {name} to finish booting"), BOOT)
            .every(Duration::from_millis(200))
            .until_blocking(|| {
                let state = match c.exec(&["systemctl", "is-system-running"]) {
                    Ok(s) => s.trim().to_string(),
                    // is-system-running exits non-zero while starting and when degraded.
                    Err(e) => e,
                };
                if state.ends_with("running") || state.ends_with("degraded") {
                    Step::Done(())
                } else {
                    Step::Pending(state)
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(c)
    }

    /// Runs a command in the container; its stdout, or an error whose text ends with it.
    pub fn exec(&self, cmd: &[&str]) -> Result<String, String> {
        let out = podman(&[&["exec", self.name.as_str()], cmd].concat())?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "`{}` in {} failed ({}): {} {stdout}",
                cmd.join(" "),
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Runs this program's client mode inside with `args`.
    pub fn client(&self, args: &[&str]) -> Result<String, String> {
        self.exec(&[&[INSIDE], args].concat())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
    }
}
