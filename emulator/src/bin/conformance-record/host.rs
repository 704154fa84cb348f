//! The host side: one container with real systemd as PID 1, this binary bind-mounted into it.

use std::path::Path;
use std::process::Command;

/// Container name; `CONFORMANCE_CONTAINER` overrides it so that recordings can run side by side.
fn container() -> String {
    std::env::var("CONFORMANCE_CONTAINER")
        .unwrap_or_else(|_| "bluechi-conformance-recorder".to_string())
}

fn podman(args: &[&str]) -> Result<String, String> {
    let out = Command::new("podman")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run podman: {e}"))?;
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

fn abs(p: &Path) -> Result<String, String> {
    std::fs::canonicalize(p)
        .map(|p| p.display().to_string())
        .map_err(|e| format!("{}: {e}", p.display()))
}

pub fn run(image: &str, cases: &Path, fixtures: &Path, only: &[String]) -> Result<(), String> {
    let container = container();
    let container = container.as_str();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    std::fs::create_dir_all(fixtures).map_err(|e| format!("{}: {e}", fixtures.display()))?;
    let exe = abs(&exe)?;
    let cases = abs(cases)?;
    let fixtures = abs(fixtures)?;
    let _ = podman(&["rm", "-f", container]);
    podman(&[
        "run",
        "-d",
        "--name",
        container,
        "--systemd=always",
        "--network=none",
        "-v",
        &format!("{exe}:/usr/local/bin/conformance-record:ro"),
        "-v",
        &format!("{cases}:/conf/cases:ro"),
        "-v",
        &format!("{fixtures}:/conf/fixtures"),
        image,
        "/lib/systemd/systemd",
    ])?;
    let result = record(container, only);
    let _ = podman(&["rm", "-f", "-t", "2", container]);
    result
}

fn record(container: &str, only: &[String]) -> Result<(), String> {
    // Right after `podman run` systemctl may not reach systemd yet and returns at once; poll
    // until it reports a settled system (`degraded` is fine for us).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let out = Command::new("podman")
            .args([
                "exec",
                container,
                "systemctl",
                "is-system-running",
                "--wait",
            ])
            .output()
            .map_err(|e| format!("cannot run podman: {e}"))?;
        let state = String::from_utf8_lossy(&out.stdout);
        if matches!(state.trim(), "running" | "degraded") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let mut args = vec![
        "exec",
        container,
        "/usr/local/bin/conformance-record",
        "--inside",
        "--cases",
        "/conf/cases",
        "--fixtures",
        "/conf/fixtures",
    ];
    args.extend(only.iter().map(String::as_str));
    let status = Command::new("podman")
        .args(&args)
        .status()
        .map_err(|e| format!("cannot run podman: {e}"))?;
    if !status.success() {
        return Err(format!("recording inside the container failed ({status})"));
    }
    Ok(())
}
