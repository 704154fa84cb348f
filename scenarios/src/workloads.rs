//! Repeated workloads over a running cluster, shared by the robustness tests and the benchmark:
//! each returns what went wrong rather than stopping at the first failure, so a rate can be
//! reported.

use std::time::{Duration, Instant};

use bluechi_testkit::poll::{Poll, PollError, Step};

use crate::backend::{Cluster, UnitFileChange};

/// A unit on one node that reaches a unit on another through a proxy (`Wants=` or
/// `Requires=` on `bluechi-proxy@TARGETNODE_TARGETUNIT.service`).
#[derive(Debug, Clone)]
pub struct ProxiedPair {
    pub source_node: String,
    pub source_unit: String,
    pub target_node: String,
    pub target_unit: String,
}

impl ProxiedPair {
    /// The seed's pair: `source.service` on worker1 wants worker2's `target.service`.
    pub fn seed() -> Self {
        Self {
            source_node: "worker1".into(),
            source_unit: "source.service".into(),
            target_node: "worker2".into(),
            target_unit: "target.service".into(),
        }
    }

    /// The proxy unit the source pulls in: `bluechi-proxy@NODE_NAME.service`, where the
    /// helper adds `.service` back to NAME, so the target must be a service.
    pub fn proxy_unit(&self) -> String {
        let unit = self
            .target_unit
            .strip_suffix(".service")
            .unwrap_or(&self.target_unit);
        format!("bluechi-proxy@{}_{unit}.service", self.target_node)
    }
}

/// What a churn run saw.
#[derive(Debug, Clone, Default)]
pub struct ChurnReport {
    pub cycles: usize,
    /// Cycles in which the proxy failed or the target did not come up.
    pub failed: usize,
    /// What the first few failures looked like.
    pub examples: Vec<String>,
    pub elapsed: Duration,
}

/// How long the target may take to come up after the source's start job is done.
const SETTLE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(5);
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

async fn bluechictl(backend: &Cluster, args: &[&str]) -> Result<String, String> {
    let argv: Vec<String> = std::iter::once("bluechictl")
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect();
    let out = backend.run_on_controller(&argv, COMMAND_DEADLINE).await?;
    Ok(out.stdout)
}

async fn state(backend: &Cluster, node: &str, unit: &str) -> String {
    backend
        .unit_property(node, unit, "ActiveState")
        .await
        .unwrap_or_else(|e| format!("<{e}>"))
}

/// systemd refuses more than 5 starts of a unit within 10 s, and a churn needs hundreds: a
/// `service.d` drop-in on each of `nodes` lifts the limit for every service there, leaving the
/// scenario's unit files as they are.
pub async fn lift_start_limits(backend: &Cluster, nodes: &[&str]) -> Result<(), String> {
    for node in nodes {
        let change = UnitFileChange::Write {
            name: "service.d/churn.conf".into(),
            text: "[Unit]\nStartLimitIntervalSec=0\n".into(),
        };
        backend.change_unit_file(node, &change).await?;
        let out = bluechictl(backend, &["daemon-reload", node]).await?;
        if !out.is_empty() {
            return Err(format!("daemon-reload {node} printed {out:?}"));
        }
    }
    Ok(())
}

/// Starts the source and waits until the proxy and the target are both active, or the proxy
/// has given up (the source is `After=` it, so its start job is over once `start` returns:
/// only `active` or a failure remain). `Err` describes a failed start.
async fn start_cycle(backend: &Cluster, p: &ProxiedPair) -> Result<(), String> {
    let out = bluechictl(backend, &["start", &p.source_node, &p.source_unit]).await?;
    if out != format!("Unit {} StartUnit operation result: done\n", p.source_unit) {
        return Err(format!("start printed {out:?}"));
    }
    let proxy_unit = &p.proxy_unit();
    let settled = Poll::new("the proxy and the target to be active", SETTLE)
        .every(POLL)
        .until(|| async move {
            let proxy = state(backend, &p.source_node, proxy_unit).await;
            let target = state(backend, &p.target_node, &p.target_unit).await;
            let seen = format!("proxy {proxy}, target {target}");
            match (proxy.as_str(), target.as_str()) {
                ("active", "active") => Step::Done(()),
                ("active", _) | ("activating", _) => Step::Pending(seen),
                _ => Step::Fail(seen),
            }
        })
        .await;
    settled.map_err(|e| match e {
        // What a failed cycle reports is what it saw, as before.
        PollError::Failed { reason, .. } => reason,
        PollError::TimedOut { last, after, .. } => format!("{last} after {after:?}"),
    })
}

/// `cycles` back-to-back start/stop cycles of `pair`'s source: each stop is followed at once by
/// the next start, while the proxy and the target are still on their way down. Call
/// [`lift_start_limits`] first. `Err` only when a command could not run at all.
pub async fn proxy_churn(
    backend: &Cluster,
    pair: &ProxiedPair,
    cycles: usize,
) -> Result<ChurnReport, String> {
    let start = Instant::now();
    let mut report = ChurnReport {
        cycles,
        ..ChurnReport::default()
    };
    let stopped = format!(
        "Unit {} StopUnit operation result: done\n",
        pair.source_unit
    );
    for i in 0..cycles {
        let outcome = start_cycle(backend, pair).await;
        let out = bluechictl(backend, &["stop", &pair.source_node, &pair.source_unit]).await?;
        let failure = match outcome {
            Err(why) => {
                // The next cycle starts from a clean slate, whatever this one left.
                bluechictl(
                    backend,
                    &["reset-failed", &pair.source_node, &pair.proxy_unit()],
                )
                .await?;
                Some(why)
            }
            Ok(()) if out != stopped => Some(format!("stop printed {out:?}")),
            Ok(()) => None,
        };
        if let Some(why) = failure {
            report.failed += 1;
            if report.examples.len() < 10 {
                report.examples.push(format!("cycle {i}: {why}"));
            }
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_units_are_named_as_in_the_seed() {
        assert_eq!(
            ProxiedPair::seed().proxy_unit(),
            "bluechi-proxy@worker2_target.service"
        );
        // The helper splits at the first underscore: node names have none, unit names may.
        let underscored = ProxiedPair {
            target_unit: "my_db.service".into(),
            ..ProxiedPair::seed()
        };
        assert_eq!(
            underscored.proxy_unit(),
            "bluechi-proxy@worker2_my_db.service"
        );
    }
}
