//! Real systemd 252 in Podman for comparison: this very program is mounted into the container
//! and run there as a client of the container's system bus (dbus-daemon 1.14, as on the host),
//! so both sides go through the same kind of bus with the same client code.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "localhost/bluechi-conformance-systemd252";
const INSIDE: &str = "/usr/local/bin/bluechi-bench";
const BOOT: Duration = Duration::from_secs(60);

pub struct Container {
    name: String,
}

fn podman(args: &[&str]) -> Result<Output, String> {
    Command::new("podman")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run podman {}: {e}", args.join(" ")))
}

fn stdout_of(args: &[&str]) -> Result<String, String> {
    let out = podman(args)?;
    if !out.status.success() {
        return Err(format!(
            "podman {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Why the systemd side cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    match Command::new("podman").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("podman is not installed".into()),
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
        stdout_of(&[
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
        let start = Instant::now();
        loop {
            let state = c.exec(&["systemctl", "is-system-running"]);
            let state = match &state {
                Ok(s) => s.trim().to_string(),
                // is-system-running exits non-zero while starting and when degraded.
                Err(e) => e.clone(),
            };
            if state.ends_with("running") || state.ends_with("degraded") {
                return Ok(c);
            }
            if start.elapsed() > BOOT {
                return Err(format!(
                    "systemd in {name} did not finish booting in 60 s (last: {state})"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
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
