//! Last line of defence against stray processes: anything whose environment carries the run
//! marker is ours, wherever it was reparented to.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub const MARKER_VAR: &str = "BLUECHI_SCENARIO_RUN";

/// Pids of live processes whose environment contains `BLUECHI_SCENARIO_RUN=<run_id>`.
pub fn marked_processes(run_id: &str) -> Vec<i32> {
    let needle = format!("{MARKER_VAR}={run_id}");
    let own = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            // Unreadable (exited, or not ours) environments cannot be ours to kill.
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// SIGKILLs marked processes until none remain or `deadline` passes (a dying parent may fork
/// once more). Returns the pids it killed.
pub fn kill_marked(run_id: &str, deadline: Duration) -> Vec<i32> {
    let start = Instant::now();
    let mut killed = Vec::new();
    loop {
        let found = marked_processes(run_id);
        if found.is_empty() || start.elapsed() >= deadline {
            return killed;
        }
        for pid in found {
            if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() && !killed.contains(&pid) {
                killed.push(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_kills_a_marked_process() {
        let id = format!("sweep-test-{}", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(MARKER_VAR, &id)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = Instant::now();
        while !marked_processes(&id).contains(&pid) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "marked child never seen"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!marked_processes("some-other-run").contains(&pid));
        assert!(kill_marked(&id, Duration::from_secs(5)).contains(&pid));
        let status = child.wait().unwrap();
        assert!(!status.success());
    }
}
