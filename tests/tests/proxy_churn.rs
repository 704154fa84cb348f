//! Issue #8 item A: starting a proxied service again right after stopping it. The seed's
//! `stop-when-unneeded` cluster (source.service on worker1 `Wants=` a proxy for worker2's
//! target.service, which is `StopWhenUnneeded=yes`) goes through back-to-back start/stop
//! cycles; the previous cycle's stop (target deactivating, unloaded) overlaps the next cycle's
//! subscription. Every start must end with the proxy and the target active.
//! Run `cargo build --workspace --bins` first.

mod robust_support;
mod support_daemons;

use std::time::Instant;

use robust_support::*;
use scenario_runner::workloads::{lift_start_limits, proxy_churn, ProxiedPair};

/// Enough to show a race that hit 4-7% of cycles (25 of 600 here before the fix); a debug
/// run takes about 25 s.
const CYCLES: usize = 150;
/// Clusters churning side by side: the load on the shared cores widens the race window.
const CLUSTERS: usize = 4;

/// Runs `CYCLES` cycles on its own cluster; returns the failed cycles.
async fn churn(name: String, text: String) -> Vec<String> {
    let backend = cluster(&name, &text).await;
    lift_start_limits(&backend, &["worker1", "worker2"])
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let report = proxy_churn(&backend, &ProxiedPair::seed(), CYCLES)
        .await
        .unwrap_or_else(|e| {
            dump_logs(&backend);
            panic!("{name}: {e}")
        });
    if report.failed > 0 {
        dump_logs(&backend);
    }
    let mut failures: Vec<String> = report
        .examples
        .iter()
        .map(|e| format!("{name} {e}"))
        .collect();
    failures.extend((report.examples.len()..report.failed).map(|_| format!("{name}: (more)")));
    failures
}

#[test]
fn back_to_back_start_stop_never_fails_the_proxy() {
    let text = std::fs::read_to_string(
        scenario_runner::paths::scenarios_dir().join("stop-when-unneeded.scenario"),
    )
    .expect("the seed scenario stop-when-unneeded.scenario");
    let rt = runtime();
    rt.block_on(async {
        let begin = Instant::now();
        let runs = (0..CLUSTERS).map(|i| churn(format!("proxy-churn-{i}"), text.clone()));
        let failures: Vec<String> = futures_util::future::join_all(runs)
            .await
            .into_iter()
            .flatten()
            .collect();
        let total = CYCLES * CLUSTERS;
        println!(
            "proxy churn: {total} cycles ({CLUSTERS} clusters) in {:.1}s, {} failure(s)",
            begin.elapsed().as_secs_f64(),
            failures.len()
        );
        assert!(
            failures.is_empty(),
            "{} of {total} starts did not end with proxy and target active:\n{}",
            failures.len(),
            failures.join("\n")
        );
    });
}
