//! Job throughput: start+stop cycles of oneshot units straight to a systemd Manager (the
//! emulator or real systemd), one unit per in-flight client. The same code runs on the host
//! against the emulator and inside the container against systemd 252.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use zbus::Connection;

use crate::latency::{self, JobPath};

/// The unit each client cycles; `RemainAfterExit` makes the start job end at `active` and gives
/// the stop job something to do, as in BlueChi's own oneshot use.
pub const UNIT_TEXT: &str = "[Unit]\nDescription=bluechi-bench rate unit\n\n[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=yes\n";

/// Both managers refuse a sixth start within 10 s; one `ResetFailedUnit` every few cycles
/// clears the count. It is part of the timed loop on both sides alike.
const RESET_EVERY: usize = 4;
const WARMUP_CYCLES: usize = 5;

pub fn unit_name(i: usize) -> String {
    format!("bench-rate-{i}.service")
}

/// Writes the units of `concurrency` clients into `dir`.
pub fn write_units(dir: &Path, concurrency: usize) -> Result<(), String> {
    for i in 0..concurrency {
        let path = dir.join(unit_name(i));
        std::fs::write(&path, UNIT_TEXT)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A bus connection: a private bus by address, or the system bus.
pub async fn connect(address: Option<&str>) -> Result<Connection, String> {
    match address {
        Some(a) => scenario_runner::dbus::connect(a)
            .await
            .map_err(|e| format!("cannot connect to {a}: {e}")),
        None => Connection::system()
            .await
            .map_err(|e| format!("cannot connect to the system bus: {e}")),
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub jobs: usize,
    pub elapsed: Duration,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.jobs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

async fn cycles(conn: &Connection, path: &mut JobPath, unit: &str, n: usize) -> Result<(), String> {
    for i in 0..n {
        latency::start_stop(path, unit).await?;
        if i % RESET_EVERY == RESET_EVERY - 1 {
            latency::reset_start_limit(conn, unit).await?;
        }
    }
    latency::reset_start_limit(conn, unit).await
}

/// `total` start+stop cycles split over `concurrency` clients, each with its own connection
/// and unit; every job must end `done`. Connecting and a short warm-up are not timed.
pub async fn run(address: Option<&str>, total: usize, concurrency: usize) -> Result<Rate, String> {
    let concurrency = concurrency.max(1);
    let mut clients = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let conn = connect(address).await?;
        let unit = unit_name(i);
        let mut path = JobPath::systemd_filtered(&conn, Some(&unit)).await?;
        cycles(&conn, &mut path, &unit, WARMUP_CYCLES).await?;
        clients.push((conn, path, unit));
    }
    let per_client = total.div_ceil(concurrency);
    let start = Instant::now();
    try_join_all(
        clients
            .iter_mut()
            .map(|(conn, path, unit)| cycles(conn, path, unit, per_client)),
    )
    .await?;
    Ok(Rate {
        jobs: 2 * per_client * concurrency,
        elapsed: start.elapsed(),
    })
}

/// The line a client prints for the orchestrator (`rate JOBS SECONDS`), and its parser.
pub fn to_line(r: &Rate) -> String {
    format!("rate {} {:.6}", r.jobs, r.elapsed.as_secs_f64())
}

pub fn from_output(out: &str) -> Result<Rate, String> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("rate "))
        .ok_or_else(|| format!("no 'rate' line in the client's output: {out:?}"))?;
    let mut it = line.split_whitespace();
    let jobs = it.next().and_then(|j| j.parse().ok());
    let secs: Option<f64> = it.next().and_then(|s| s.parse().ok());
    match (jobs, secs) {
        (Some(jobs), Some(s)) if s.is_finite() && s >= 0.0 => Ok(Rate {
            jobs,
            elapsed: Duration::from_secs_f64(s),
        }),
        _ => Err(format!("malformed 'rate' line: {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trips() {
        let r = Rate {
            jobs: 4000,
            elapsed: Duration::from_millis(2500),
        };
        let back = from_output(&format!("noise\n{}\n", to_line(&r))).unwrap();
        assert_eq!(back, r);
        assert!((back.per_second() - 1600.0).abs() < 1e-6);
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(from_output("nothing here").is_err());
        assert!(from_output("rate x 1.0").is_err());
        assert!(from_output("rate 10 -1").is_err());
    }
}
