//! Per backend: time from nothing to a 3-node cluster with every node online, and the wall
//! time of every scenario (the same files and snapshots on each backend).

use std::path::Path;
use std::time::{Duration, Instant};

use scenario_runner::backend::{BackendKind, Cluster};
use scenario_runner::{paths, syntax, Options};

const THREE_NODES: &str = "nodes: main worker1 worker2\ncontroller: main\n\
controller.conf:\n    [bluechi-controller]\n    AllowedNodeNames=main,worker1,worker2\n";
const STARTS: usize = 3;

fn options(bin_dir: &Path) -> Options {
    Options {
        bin_dir: Some(bin_dir.to_path_buf()),
        ready_timeout: Duration::from_secs(60),
        ..Options::default()
    }
}

/// Seconds from `Cluster::new` to every node online, `STARTS` times; teardown not counted.
async fn time_to_online(kind: BackendKind, opts: &Options) -> Result<Vec<f64>, String> {
    let scenario = syntax::parse_str("bench-3-nodes", Path::new("bench"), THREE_NODES)
        .map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    for _ in 0..STARTS {
        let start = Instant::now();
        let mut cluster = Cluster::new(kind, &opts.backend()?)?;
        cluster.start(&scenario).await?;
        times.push(start.elapsed().as_secs_f64());
        cluster.teardown();
    }
    Ok(times)
}

pub async fn run(bin_dir: &Path, kinds: &[BackendKind]) -> Result<(), String> {
    let opts = options(bin_dir);
    let mut files: Vec<_> = std::fs::read_dir(paths::scenarios_dir())
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "scenario"))
        .collect();
    files.sort();
    println!("\nbackends: time from nothing to 3 nodes online ({STARTS} starts), then each scenario's wall time");
    for kind in kinds {
        match time_to_online(*kind, &opts).await {
            Ok(t) => {
                let text: Vec<String> = t.iter().map(|s| format!("{s:.2}")).collect();
                println!("{kind:<16} 3 nodes online in {} s", text.join(" / "));
            }
            Err(e) => {
                println!("{kind:<16} skipped: {e}");
                continue;
            }
        }
        for file in &files {
            let start = Instant::now();
            let result = scenario_runner::run_file(file, *kind, &opts).await;
            let name = file.file_stem().map(|s| s.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            match result {
                Ok(_) => println!(
                    "{kind:<16} {name:<36} {:>7.2} s",
                    start.elapsed().as_secs_f64()
                ),
                Err(e) => println!("{kind:<16} {name:<36} FAILED: {e}"),
            }
        }
    }
    Ok(())
}
