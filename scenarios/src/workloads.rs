//! Repeated workloads over a running cluster, shared by the robustness tests and the benchmark:
//! each returns what went wrong rather than stopping at the first failure, so a rate can be
//! reported.

use std::time::{Duration, Instant};

use crate::backend::Backend;

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

    pub fn proxy_unit(&self) -> String {
        format!(
            "bluechi-proxy@{}_{}.service",
            self.target_node, self.target_unit
        )
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
const SETTLE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

async fn bluechictl<B: Backend>(backend: &B, args: &[&str]) -> Result<String, String> {
    let argv: Vec<String> = std::iter::once("bluechictl")
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect();
    let out = backend.run_command(&argv, COMMAND_DEADLINE).await?;
    Ok(out.stdout)
}

async fn state<B: Backend>(backend: &B, node: &str, unit: &str) -> String {
    backend
        .unit_property(node, unit, "ActiveState")
        .await
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// One cycle: start the source, check that the proxy is up and the target follows, stop the
/// source at once. `Err` describes a failed cycle.
async fn cycle<B: Backend>(backend: &B, p: &ProxiedPair) -> Result<(), String> {
    let started = bluechictl(backend, &["start", &p.source_node, &p.source_unit]).await?;
    let proxy = p.proxy_unit();
    let deadline = Instant::now() + SETTLE;
    let outcome = loop {
        let proxy_state = state(backend, &p.source_node, &proxy).await;
        let target_state = state(backend, &p.target_node, &p.target_unit).await;
        if proxy_state == "failed" {
            break Err(format!(
                "proxy failed, target {target_state}, start printed {:?}",
                started.trim()
            ));
        }
        if proxy_state == "active" && target_state == "active" {
            break Ok(());
        }
        if Instant::now() >= deadline {
            break Err(format!(
                "after {SETTLE:?}: proxy {proxy_state}, target {target_state}, start printed {:?}",
                started.trim()
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    bluechictl(backend, &["stop", &p.source_node, &p.source_unit]).await?;
    if outcome.is_err() {
        // A failed proxy would refuse the next cycles' starts for its start limit.
        bluechictl(backend, &["reset-failed", &p.source_node, &proxy]).await?;
    }
    outcome
}

/// `cycles` back-to-back start/stop cycles of `pair`'s source, with no pause between them.
pub async fn proxy_churn<B: Backend>(
    backend: &B,
    pair: &ProxiedPair,
    cycles: usize,
) -> Result<ChurnReport, String> {
    let start = Instant::now();
    let mut report = ChurnReport {
        cycles,
        ..ChurnReport::default()
    };
    for i in 0..cycles {
        if let Err(what) = cycle(backend, pair).await {
            report.failed += 1;
            if report.examples.len() < 5 {
                report.examples.push(format!("cycle {i}: {what}"));
            }
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}
