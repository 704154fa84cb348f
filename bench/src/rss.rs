//! Resident memory of the daemons under test, from `/proc/<pid>/status`.

use std::path::Path;
use std::time::{Duration, Instant};

/// The `VmRSS` line of a `/proc/<pid>/status` text, in kB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Breakdown of `VmRSS`: anonymous, file-backed (mostly the binary's text) and shmem, in kB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rss {
    pub total: u64,
    pub anon: u64,
    pub file: u64,
}

pub fn parse_rss(status: &str) -> Option<Rss> {
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Rss {
        total: parse_vm_rss(status)?,
        anon: field("RssAnon:").unwrap_or(0),
        file: field("RssFile:").unwrap_or(0),
    })
}

/// `VmHWM` (peak resident set) of a `/proc/<pid>/status` text, in kB.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn of_pid(pid: i32) -> Result<Rss, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_rss(&text).ok_or_else(|| format!("{path} has no VmRSS line"))
}

/// Which of `pids` runs the executable `exe` (by `/proc/<pid>/exe`).
pub fn pids_running(pids: &[i32], exe: &Path) -> Vec<i32> {
    let wanted = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    pids.iter()
        .copied()
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == wanted))
        .collect()
}

/// Samples until `stable_for` consecutive readings agree within 8 kB (allocator noise), so
/// "idle" means after start-up has settled; gives up at `deadline` with the last reading.
pub async fn settled(pid: i32, stable_for: usize, deadline: Duration) -> Result<Rss, String> {
    const PERIOD: Duration = Duration::from_millis(100);
    let start = Instant::now();
    let mut last = of_pid(pid)?;
    let mut agreeing = 0;
    while agreeing < stable_for && start.elapsed() < deadline {
        tokio::time::sleep(PERIOD).await;
        let now = of_pid(pid)?;
        if now.total.abs_diff(last.total) <= 8 {
            agreeing += 1;
        } else {
            agreeing = 0;
        }
        last = now;
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tbluechi-agent\nVmPeak:\t  20000 kB\nVmRSS:\t    3512 kB\nRssAnon:\t     400 kB\nRssFile:\t    3112 kB\nRssShmem:\t       0 kB\n";

    #[test]
    fn parses_the_breakdown() {
        assert_eq!(
            parse_rss(STATUS),
            Some(Rss {
                total: 3512,
                anon: 400,
                file: 3112
            })
        );
    }

    #[test]
    fn peak_is_read() {
        assert_eq!(parse_vm_hwm(STATUS), None);
        assert_eq!(
            parse_vm_hwm("VmHWM:\t  4100 kB\nVmRSS:\t 3900 kB\n"),
            Some(4100)
        );
    }

    #[test]
    fn no_vm_rss_is_none() {
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
        assert_eq!(parse_rss("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn own_process_is_found_and_measured() {
        let me = std::process::id() as i32;
        let exe = std::env::current_exe().unwrap();
        assert_eq!(pids_running(&[me, 1], &exe), vec![me]);
        assert!(of_pid(me).unwrap().total > 0);
    }
}
