//! `bluechi-bench`: figures for the production core on the local backend, printed and never
//! asserted: job latency through BlueChi against the emulator alone, the daemons' idle RSS,
//! and the controller under 100 nodes (RSS, `ListUnits` latency).

mod backends;
mod client;
mod cluster;
mod fake_agent;
mod fleet;
mod hostile;
mod latency;
mod load;
mod lone;
mod podman;
mod rate;
mod rss;
mod stats;
mod vs_systemd;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use scenario_runner::backend::BackendKind;
use scenario_runner::syntax::UnitFile;

use cluster::{Cluster, Spec, NODE};
use latency::JobPath;
use stats::{ms, summarize};

/// Upstream's idle RSS per daemon, the target of the issue.
const UPSTREAM_RSS_KB: u64 = 3500;
const SETTLE: Duration = Duration::from_secs(5);
const UNIT: &str = "bench-oneshot.service";

/// The parts of the benchmark, in the order they run.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    /// Job latency through BlueChi and straight to the emulator, daemons' RSS.
    Latency,
    /// The controller with many fake nodes.
    Fleet,
    /// Oneshot start+stop jobs/s, emulator vs systemd 252.
    Rate,
    /// Unit-file load time and memory, emulator vs systemd 252.
    Load,
    /// `bluechictl status` latency while a client floods calls and never reads.
    Flood,
    /// Failure rate of back-to-back start/stop cycles of a proxied service.
    Churn,
    /// Per backend (local, Podman with the emulator, Podman with systemd 252): 3 nodes online,
    /// and every scenario's wall time.
    Backends,
}

#[derive(Parser, Debug)]
#[command(about = "Benchmarks of the BlueChi daemons on the local backend (release build)")]
struct Args {
    #[command(subcommand)]
    client: Option<client::Client>,
    /// Run only these sections (repeatable or comma-separated; default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Start+stop cycles of the throughput runs.
    #[arg(long, default_value_t = 2000)]
    rate_cycles: usize,
    /// Units in flight in the concurrent throughput run.
    #[arg(long, default_value_t = 8)]
    rate_concurrency: usize,
    /// Numbers of generated unit files of the load runs.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 10000])]
    load_counts: Vec<usize>,
    /// Skip the systemd 252 side (Podman).
    #[arg(long)]
    no_podman: bool,
    /// Name of the systemd container (replaced if it exists, removed at the end).
    #[arg(long, default_value = "bluechi-bench-sd")]
    container: String,
    /// Directory of the daemons and the emulator (default: next to this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Start/stop pairs per path (each pair is two jobs).
    #[arg(long, default_value_t = 200)]
    jobs: usize,
    /// Unmeasured start/stop pairs first, so both paths run warm.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Fake nodes connected for the fleet figures.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Units each fake node reports.
    #[arg(long, default_value_t = 200)]
    units: usize,
    /// `Controller.ListUnits` calls measured.
    #[arg(long, default_value_t = 20)]
    calls: usize,
    /// `bluechictl status` runs measured idle and under the flood.
    #[arg(long, default_value_t = 20)]
    status_samples: usize,
    /// Start/stop cycles of the proxy churn run (split over the clusters).
    #[arg(long, default_value_t = 1000)]
    churn_cycles: usize,
    /// Clusters churning side by side.
    #[arg(long, default_value_t = 4)]
    churn_clusters: usize,
    /// Keep each cluster's run directory (configs, daemon logs).
    #[arg(long)]
    keep: bool,
}

fn oneshot_unit() -> UnitFile {
    UnitFile {
        node: NODE.into(),
        name: UNIT.into(),
        text: "[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=yes\n".into(),
    }
}

fn print_rss(what: &str, r: rss::Rss) {
    let verdict = if r.total <= UPSTREAM_RSS_KB {
        "at/below"
    } else {
        "above"
    };
    println!(
        "  {what:<44} {:>6} kB  (anon {:>5} kB, file {:>5} kB)  {verdict} upstream's {UPSTREAM_RSS_KB} kB",
        r.total, r.anon, r.file
    );
}

/// One method's figures through BlueChi and direct, and the difference (BlueChi's overhead).
fn print_latency(method: &str, bluechi: &[Duration], direct: &[Duration]) -> Result<(), String> {
    let (Some(b), Some(d)) = (summarize(bluechi), summarize(direct)) else {
        return Err("no jobs measured (--jobs 0?)".into());
    };
    let overhead = ms(b.p50) - ms(d.p50);
    println!(
        "  {:<44} {b}",
        format!("Node.{method}: controller->agent->emulator")
    );
    println!(
        "  {:<44} {d}",
        format!("Manager.{method}: emulator directly")
    );
    println!(
        "  {:<44} p50 {overhead:+.3} ms, p99 {:+.3} ms  (target p50 < 1 ms: {})",
        "  BlueChi overhead",
        ms(b.p99) - ms(d.p99),
        if overhead < 1.0 { "met" } else { "missed" }
    );
    Ok(())
}

/// Idle RSS, then job latency through BlueChi and straight to the emulator, interleaved pair by
/// pair so load from other work on the machine hits both paths alike.
async fn jobs_and_idle_rss(bin_dir: &Path, args: &Args) -> Result<(), String> {
    let cluster = Cluster::start(
        bin_dir,
        Spec {
            extra_nodes: Vec::new(),
            units: vec![oneshot_unit()],
            keep: args.keep,
        },
    )
    .await?;
    let controller = cluster.pid_of("bluechi-controller")?;
    let agent = cluster.pid_of("bluechi-agent")?;
    println!("== idle RSS (VmRSS once start-up settled; one node online)");
    print_rss(
        "bluechi-controller",
        rss::settled(controller, 5, SETTLE).await?,
    );
    print_rss("bluechi-agent", rss::settled(agent, 5, SETTLE).await?);

    let mut via_bluechi = JobPath::controller(&cluster.bus, NODE).await?;
    let mut direct = JobPath::systemd(&cluster.bus).await?;
    // [start, stop] samples of each path.
    let (mut b, mut d) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for i in 0..args.warmup + args.jobs {
        let bt = latency::start_stop(&mut via_bluechi, UNIT).await?;
        latency::reset_start_limit(&cluster.bus, UNIT).await?;
        let dt = latency::start_stop(&mut direct, UNIT).await?;
        latency::reset_start_limit(&cluster.bus, UNIT).await?;
        if i >= args.warmup {
            for k in 0..2 {
                b[k].push(bt[k]);
                d[k].push(dt[k]);
            }
        }
    }
    println!(
        "\n== job latency: call -> JobRemoved, {UNIT} (oneshot /bin/true, RemainAfterExit), {} start/stop pairs per path, interleaved",
        args.jobs
    );
    for (k, method) in ["StartUnit", "StopUnit"].into_iter().enumerate() {
        print_latency(method, &b[k], &d[k])?;
    }
    println!("\n== RSS after the jobs");
    print_rss("bluechi-controller", rss::of_pid(controller)?);
    print_rss("bluechi-agent", rss::of_pid(agent)?);
    cluster.teardown();
    Ok(())
}

/// The controller with `args.nodes` fake nodes of `args.units` units each.
async fn fleet(bin_dir: &Path, args: &Args) -> Result<(), String> {
    let names = fleet::node_names(args.nodes);
    let cluster = Cluster::start(
        bin_dir,
        Spec {
            extra_nodes: names.clone(),
            units: Vec::new(),
            keep: args.keep,
        },
    )
    .await?;
    let controller = cluster.pid_of("bluechi-controller")?;
    let units = Arc::new(fake_agent::synthetic_units(args.units)?);
    let start = Instant::now();
    let agents = fleet::connect_all(&cluster, &names, units).await?;
    println!(
        "\n== controller with {} nodes ({} fake agents of {} units + the real `main`; all online after {:.0} ms)",
        args.nodes + 1,
        agents.len(),
        args.units,
        ms(start.elapsed())
    );
    print_rss(
        "bluechi-controller, nodes registered",
        rss::settled(controller, 5, SETTLE).await?,
    );
    let mut times = Vec::with_capacity(args.calls);
    let mut seen = (0, 0);
    for _ in 0..args.calls {
        let (t, reply) = fleet::list_units(&cluster.bus).await?;
        times.push(t);
        seen = fleet::count_units(&reply)?;
    }
    if let Some(s) = summarize(&times) {
        println!(
            "  Controller.ListUnits ({} nodes, {} units/reply) {s}",
            seen.0, seen.1
        );
    }
    print_rss(
        "bluechi-controller, after ListUnits",
        rss::of_pid(controller)?,
    );
    drop(agents);
    cluster.teardown();
    Ok(())
}

async fn run(args: Args) -> Result<(), String> {
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => scenario_runner::paths::bin_dir()?,
    };
    println!("binaries: {}", bin_dir.display());
    let wanted = |s: Section| args.only.is_empty() || args.only.contains(&s);
    if wanted(Section::Latency) {
        jobs_and_idle_rss(&bin_dir, &args).await?;
    }
    if wanted(Section::Fleet) {
        fleet(&bin_dir, &args).await?;
    }
    if wanted(Section::Flood) {
        hostile::flood(&bin_dir, args.status_samples, args.keep).await?;
    }
    if wanted(Section::Churn) {
        hostile::churn(&bin_dir, args.churn_cycles, args.churn_clusters, args.keep).await?;
    }
    if wanted(Section::Backends) {
        let kinds: Vec<BackendKind> = BackendKind::ALL
            .into_iter()
            .filter(|k| *k == BackendKind::Local || !args.no_podman)
            .collect();
        backends::run(&bin_dir, &kinds).await?;
    }
    if !wanted(Section::Rate) && !wanted(Section::Load) {
        return Ok(());
    }
    let container = systemd_container(&args)?;
    if wanted(Section::Rate) {
        let c = container.as_ref();
        vs_systemd::rate(&bin_dir, args.rate_cycles, args.rate_concurrency, c).await?;
    }
    if wanted(Section::Load) {
        vs_systemd::load(&bin_dir, &args.load_counts, container.as_ref()).await?;
    }
    Ok(())
}

/// systemd 252 in Podman with this program inside, or `None` with the reason printed.
fn systemd_container(args: &Args) -> Result<Option<podman::Container>, String> {
    let why = if args.no_podman {
        Some("--no-podman".to_string())
    } else {
        podman::unavailable()
    };
    if let Some(why) = why {
        println!("\n(systemd 252 side skipped: {why})");
        return Ok(None);
    }
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let start = Instant::now();
    let c = podman::Container::start(&args.container, &me)?;
    println!(
        "\nsystemd 252: container {} of {} booted in {:.1} s",
        args.container,
        podman::IMAGE,
        start.elapsed().as_secs_f64()
    );
    Ok(Some(c))
}

fn main() -> std::process::ExitCode {
    // Before any thread: the Podman backends' API service address.
    scenario_runner::backend::podman::prepare_process();
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(async_main()),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn async_main() -> std::process::ExitCode {
    let mut args = Args::parse();
    let outcome = match args.client.take() {
        Some(c) => client::run(c).await,
        None => run(args).await,
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bluechi-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
