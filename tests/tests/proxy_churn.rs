//! Issue #8 item A: starting a proxied service again right after stopping it. The seed's
//! `stop-when-unneeded` cluster (source.service on worker1 `Wants=` a proxy for worker2's
//! target.service, which is `StopWhenUnneeded=yes`) goes through back-to-back start/stop
//! cycles; the previous cycle's stop (target deactivating, unloaded) overlaps the next cycle's
//! subscription. Every start must end with the proxy and the target active.
//! Run `cargo build --workspace --bins` first.

mod robust_support;
mod support_daemons;

use std::time::{Duration, Instant};

use robust_support::*;
use scenario_runner::backend::local::LocalBackend;
use scenario_runner::backend::Backend;

/// Enough to show a race that hit 4-7% of cycles (25 of 600 here before the fix); a debug
/// run takes about 25 s.
const CYCLES: usize = 150;
/// Clusters churning side by side: the load on the shared cores widens the race window.
const CLUSTERS: usize = 4;
const PROXY: &str = "bluechi-proxy@worker2_target.service";

/// How one cycle's start ended.
#[derive(Debug)]
enum Outcome {
    Ok,
    Failed(String),
}

async fn state(backend: &LocalBackend, node: &str, unit: &str) -> String {
    backend
        .unit_property(node, unit, "ActiveState")
        .await
        .unwrap_or_else(|e| format!("<{e}>"))
}

async fn bluechictl(backend: &LocalBackend, args: &[&str]) -> String {
    let mut words = vec!["bluechictl"];
    words.extend_from_slice(args);
    let out = backend
        .run_command(&argv(&words), DEADLINE)
        .await
        .unwrap_or_else(|e| {
            dump_logs(backend);
            panic!("{words:?}: {e}")
        });
    out.stdout
}

/// Starts the source and waits until the proxy and the target are both active, or the proxy
/// has given up (it is `After=`'d by the source, so its start job is over once `start`
/// returns: `activating` no longer, only `active` or a failure).
async fn start_cycle(backend: &LocalBackend) -> Outcome {
    let out = bluechictl(backend, &["start", "worker1", "source.service"]).await;
    if out != "Unit source.service StartUnit operation result: done\n" {
        return Outcome::Failed(format!("start printed {out:?}"));
    }
    let begin = Instant::now();
    loop {
        let proxy = state(backend, "worker1", PROXY).await;
        let target = state(backend, "worker2", "target.service").await;
        match (proxy.as_str(), target.as_str()) {
            ("active", "active") => return Outcome::Ok,
            ("active", _) | ("activating", _) => {}
            _ => return Outcome::Failed(format!("proxy {proxy}, target {target}")),
        }
        if begin.elapsed() > DEADLINE {
            return Outcome::Failed(format!("proxy {proxy}, target {target} (timed out)"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// systemd refuses more than 5 starts of a unit within 10 s; the churn needs hundreds. A
/// `service.d` drop-in lifts the limit for every service on the two nodes, leaving the seed's
/// unit files as they are.
async fn lift_start_limits(backend: &LocalBackend) {
    for node in ["worker1", "worker2"] {
        let dir = backend
            .work_dir()
            .join(node)
            .join("units")
            .join("service.d");
        std::fs::create_dir_all(&dir).expect("drop-in directory");
        std::fs::write(dir.join("churn.conf"), "[Unit]\nStartLimitIntervalSec=0\n")
            .expect("drop-in");
        let out = bluechictl(backend, &["daemon-reload", node]).await;
        assert_eq!(out, "", "daemon-reload {node}");
    }
}

/// Runs `CYCLES` cycles on its own cluster; returns the failed cycles.
async fn churn(name: String, text: String) -> Vec<String> {
    let backend = cluster(&name, &text).await;
    lift_start_limits(&backend).await;
    let mut failures = Vec::new();
    for cycle in 0..CYCLES {
        if let Outcome::Failed(why) = start_cycle(&backend).await {
            failures.push(format!("{name} cycle {cycle}: {why}"));
            // The next cycle must start from a clean slate, whatever this one left.
            bluechictl(&backend, &["stop", "worker1", "source.service"]).await;
            bluechictl(&backend, &["reset-failed", "worker1", PROXY]).await;
            continue;
        }
        // Back to back: the next start follows as soon as the source is stopped, while
        // the proxy and the target are still on their way down.
        let out = bluechictl(&backend, &["stop", "worker1", "source.service"]).await;
        assert_eq!(
            out, "Unit source.service StopUnit operation result: done\n",
            "{name} cycle {cycle}"
        );
    }
    if !failures.is_empty() {
        dump_logs(&backend);
    }
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
