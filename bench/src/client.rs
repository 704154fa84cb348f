//! Client modes: the measuring half of the rate and load benchmarks on its own, printing
//! `rate ...` / `load ...` lines. The orchestrator runs them inside the systemd container.

use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;

use crate::{load, rate, rss};

#[derive(Subcommand, Debug)]
pub enum Client {
    /// Start+stop cycles of oneshot units against a systemd Manager (internal).
    #[command(hide = true)]
    RateClient {
        /// Bus address (default: the system bus).
        #[arg(long)]
        bus_address: Option<String>,
        /// Write the units here and `Reload` first (for a real systemd).
        #[arg(long)]
        write_units: Option<PathBuf>,
        #[arg(long)]
        cycles: usize,
        #[arg(long)]
        concurrency: usize,
    },
    /// Generate unit files in DIR, `Reload`, then list/load/reload them (internal).
    #[command(hide = true)]
    LoadClient {
        #[arg(long)]
        bus_address: Option<String>,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        count: usize,
        /// Whose memory to report after loading (the manager's pid).
        #[arg(long)]
        pid: i32,
        /// Skip ListUnitFiles (slow in systemd 252 for thousands of files).
        #[arg(long)]
        no_list_files: bool,
    },
}

async fn reload(conn: &zbus::Connection) -> Result<(), String> {
    conn.call_method(
        Some("org.freedesktop.systemd1"),
        "/org/freedesktop/systemd1",
        Some("org.freedesktop.systemd1.Manager"),
        "Reload",
        &(),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("Manager.Reload: {e}"))
}

pub async fn run(client: Client) -> Result<(), String> {
    match client {
        Client::RateClient {
            bus_address,
            write_units,
            cycles,
            concurrency,
        } => {
            if let Some(dir) = write_units {
                rate::write_units(&dir, concurrency)?;
                reload(&rate::connect(bus_address.as_deref()).await?).await?;
            }
            let r = rate::run(bus_address.as_deref(), cycles, concurrency).await?;
            println!("{}", rate::to_line(&r));
        }
        Client::LoadClient {
            bus_address,
            dir,
            count,
            pid,
            no_list_files,
        } => {
            let names = load::generate(&dir, count)?;
            let conn = rate::connect(bus_address.as_deref()).await?;
            // A running systemd sees new files only after a reload: timed as "pick-up".
            let t = Instant::now();
            reload(&conn).await?;
            println!("load pickup {:.6}", t.elapsed().as_secs_f64());
            let f = load::measure(&conn, &names, !no_list_files).await?;
            print!("{}", load::to_lines(&f));
            let path = format!("/proc/{pid}/status");
            let status =
                std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
            let rss = rss::parse_vm_rss(&status).ok_or(format!("{path}: no VmRSS"))?;
            let hwm = rss::parse_vm_hwm(&status).ok_or(format!("{path}: no VmHWM"))?;
            println!("load vmrss {rss}\nload vmhwm {hwm}");
            load::remove(&dir, &names)?;
            reload(&conn).await?;
        }
    }
    Ok(())
}
