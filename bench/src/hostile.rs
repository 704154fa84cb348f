//! The controller under hostile and faulty peers: `bluechictl status` latency while a client
//! floods calls and never reads, and the failure rate of back-to-back start/stop cycles of a
//! proxied service (issue #8). Printed, never asserted; run against older binaries with
//! `--bin-dir` to compare.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scenario_runner::backend::{BackendKind, BackendOptions, Cluster as RunnerCluster};
use scenario_runner::workloads::{lift_start_limits, proxy_churn, ChurnReport, ProxiedPair};
use scenario_runner::{faults, paths, syntax};

use crate::cluster::{Cluster, Spec};
use crate::stats::{ms, summarize};

/// A `bluechictl status` slower than this counts as timed out (the loop is frozen).
const STATUS_LIMIT: Duration = Duration::from_secs(5);
/// How long one flooder keeps its connection when the controller does not drop it (a
/// controller that stops reading it is frozen for all of that time).
const FLOOD_LIMIT: Duration = Duration::from_secs(30);
/// The least time measured under the flood.
const FLOOD_WINDOW: Duration = Duration::from_secs(5);

/// One `bluechictl status` against the cluster's main bus: its wall time, or `None` if it
/// failed or took longer than [`STATUS_LIMIT`].
async fn status_once(cluster: &Cluster, bin_dir: &Path) -> Option<Duration> {
    let mut cmd = tokio::process::Command::new(bin_dir.join("bluechictl"));
    cmd.arg("status")
        .env("DBUS_SYSTEM_BUS_ADDRESS", cluster.bus_address())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let start = Instant::now();
    match tokio::time::timeout(STATUS_LIMIT, cmd.status()).await {
        Ok(Ok(s)) if s.success() => Some(start.elapsed()),
        _ => None,
    }
}

/// At least `samples` runs of [`status_once`], and for at least `window`: the times of those
/// that answered, and how many did not.
async fn sample_status(
    cluster: &Cluster,
    bin_dir: &Path,
    samples: usize,
    window: Duration,
) -> (Vec<Duration>, usize) {
    let (mut answered, mut failed) = (Vec::new(), 0);
    let start = Instant::now();
    while answered.len() + failed < samples || start.elapsed() < window {
        match status_once(cluster, bin_dir).await {
            Some(t) => answered.push(t),
            None => failed += 1,
        }
    }
    (answered, failed)
}

fn print_status(what: &str, samples: &[Duration], timeouts: usize) {
    match summarize(samples) {
        Some(s) => println!("  {what:<44} {s}, {timeouts} failed or over {STATUS_LIMIT:?}"),
        None => {
            println!("  {what:<44} no answer at all ({timeouts} failed or over {STATUS_LIMIT:?})")
        }
    }
}

/// `bluechictl status` latency idle, then while non-reading flooders hammer the peer port
/// (each reconnecting when dropped), then the controller's RSS.
pub async fn flood(bin_dir: &Path, samples: usize, keep: bool) -> Result<(), String> {
    let cluster = Cluster::start(
        bin_dir,
        Spec {
            extra_nodes: Vec::new(),
            units: Vec::new(),
            keep,
        },
    )
    .await?;
    let controller = cluster.pid_of("bluechi-controller")?;
    let address = cluster.controller_address().await?;
    let port: u16 = address
        .rsplit_once("port=")
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| format!("no port in {address}"))?;
    println!("\n== bluechictl status while a client floods Introspect calls and never reads");
    let (idle, idle_failed) = sample_status(&cluster, bin_dir, samples, Duration::ZERO).await;
    print_status("idle", &idle, idle_failed);

    let stop = Arc::new(AtomicBool::new(false));
    let (drops, calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let hammer = {
        let (stop, drops, calls) = (stop.clone(), drops.clone(), calls.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match faults::silent_flood(port, 200_000, FLOOD_LIMIT).await {
                    Ok(f) => {
                        calls.fetch_add(f.calls, Ordering::Relaxed);
                        if f.dropped {
                            drops.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
    };
    // Let the first flood fill what it can before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Long enough for several floods to be dropped and reconnect.
    let (hammered, hammered_failed) = sample_status(&cluster, bin_dir, samples, FLOOD_WINDOW).await;
    stop.store(true, Ordering::Relaxed);
    let peak = crate::rss::of_pid(controller)?;
    // The flood in progress ends within its own limit; its figures count too.
    let _ = tokio::time::timeout(FLOOD_LIMIT + Duration::from_secs(2), hammer).await;
    print_status("during the flood", &hammered, hammered_failed);
    println!(
        "  flooders dropped by the controller: {}, calls written: {}; controller RSS {} kB",
        drops.load(Ordering::Relaxed),
        calls.load(Ordering::Relaxed),
        peak.total
    );
    if let (Some(a), Some(b)) = (summarize(&idle), summarize(&hammered)) {
        println!(
            "  p50 slowdown under the flood: {:+.2} ms",
            ms(b.p50) - ms(a.p50)
        );
    }
    cluster.teardown();
    Ok(())
}

/// One cluster of the seed's scenario churning `cycles` times.
async fn churn_one(bin_dir: &Path, cycles: usize, keep: bool) -> Result<ChurnReport, String> {
    let file = paths::scenarios_dir().join("stop-when-unneeded.scenario");
    let mut scenario =
        syntax::parser::parse_file(&file).map_err(|e| format!("{}: {e:?}", file.display()))?;
    scenario.steps.clear();
    let mut backend = RunnerCluster::new(
        BackendKind::Local,
        &BackendOptions {
            keep,
            ..BackendOptions::new(bin_dir)
        },
    )?;
    backend.start(&scenario).await?;
    lift_start_limits(&backend, &["worker1", "worker2"]).await?;
    let report = proxy_churn(&backend, &ProxiedPair::seed(), cycles).await;
    backend.teardown();
    report
}

/// Back-to-back start/stop cycles of the seed's proxied `source.service` on `clusters`
/// clusters at once (the load on shared cores widens the race windows, as on a busy host).
pub async fn churn(
    bin_dir: &Path,
    cycles: usize,
    clusters: usize,
    keep: bool,
) -> Result<(), String> {
    let clusters = clusters.max(1);
    let per = cycles.div_ceil(clusters);
    let runs = (0..clusters).map(|_| churn_one(bin_dir, per, keep));
    let reports = futures_util::future::join_all(runs).await;
    let pair = ProxiedPair::seed();
    println!(
        "\n== proxy churn: {} back-to-back start/stop cycles of {} on {} (Wants= {} on {}), {clusters} clusters at once",
        per * clusters,
        pair.source_unit,
        pair.source_node,
        pair.target_unit,
        pair.target_node
    );
    let (mut failed, mut total, mut elapsed) = (0, 0, Duration::ZERO);
    let mut examples = Vec::new();
    for r in reports {
        let r = r?;
        failed += r.failed;
        total += r.cycles;
        elapsed = elapsed.max(r.elapsed);
        examples.extend(r.examples);
    }
    println!(
        "  failed cycles: {failed} of {total} ({:.1} %), {:.1} ms per cycle per cluster",
        100.0 * failed as f64 / total.max(1) as f64,
        ms(elapsed) / per.max(1) as f64
    );
    for e in examples.iter().take(5) {
        println!("    {e}");
    }
    Ok(())
}
