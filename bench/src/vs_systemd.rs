//! The emulator against real systemd 252: oneshot job throughput, and unit-file load time and
//! memory. The emulator runs alone on a private dbus-daemon; systemd in Podman (skipped with a
//! note when unavailable).

use std::path::Path;
use std::time::Duration;

use crate::load::{self, Figures};
use crate::lone::LoneEmulator;
use crate::podman::Container;
use crate::rate::{self, Rate};
use crate::rss;
use crate::stats::ms;

fn temp_dirs() -> Result<(tempfile::TempDir, std::path::PathBuf), String> {
    let dir = tempfile::Builder::new()
        .prefix("bluechi-bench-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let units = dir.path().join("units");
    std::fs::create_dir(&units).map_err(|e| format!("cannot create {}: {e}", units.display()))?;
    Ok((dir, units))
}

fn print_rate(who: &str, inflight: usize, r: &Rate) {
    println!(
        "  {:<44} {:>6} jobs in {:>7.3} s  {:>8.0} jobs/s",
        format!("{who}, {inflight} in flight"),
        r.jobs,
        r.elapsed.as_secs_f64(),
        r.per_second()
    );
}

/// `cycles` start+stop cycles with 1 and with `concurrency` units in flight, on both sides.
pub async fn rate(
    bin_dir: &Path,
    cycles: usize,
    concurrency: usize,
    systemd: Option<&Container>,
) -> Result<(), String> {
    println!(
        "\n== oneshot throughput: StartUnit->JobRemoved then StopUnit->JobRemoved, {cycles} cycles (oneshot /bin/true, RemainAfterExit; one ResetFailedUnit per 4 cycles per unit)"
    );
    let (dir, units) = temp_dirs()?;
    rate::write_units(&units, concurrency)?;
    let emu = LoneEmulator::start(bin_dir, &units, dir.path()).await?;
    let mut results = Vec::new();
    for k in [1, concurrency] {
        let r = rate::run(Some(&emu.address), cycles, k).await?;
        print_rate("emulator (private dbus-daemon)", k, &r);
        results.push((k, r, None));
    }
    let after = rss::of_pid(emu.pid)?;
    emu.stop();
    let Some(c) = systemd else {
        println!("  emulator RSS after the runs: {} kB", after.total);
        return Ok(());
    };
    for (k, _, sd) in results.iter_mut() {
        let out = c.client(&[
            "rate-client",
            "--write-units",
            "/etc/systemd/system",
            "--cycles",
            &cycles.to_string(),
            "--concurrency",
            &k.to_string(),
        ])?;
        let r = rate::from_output(&out)?;
        print_rate("systemd 252 (podman, dbus-daemon)", *k, &r);
        *sd = Some(r);
    }
    for (k, emu_rate, sd) in &results {
        if let Some(sd) = sd {
            let ratio = emu_rate.per_second() / sd.per_second().max(1e-9);
            println!(
                "  {:<44} {ratio:>6.2}x  (target >= 1x: {})",
                format!("emulator/systemd, {k} in flight"),
                if ratio >= 1.0 { "met" } else { "missed" }
            );
        }
    }
    println!("  emulator RSS after the runs: {} kB", after.total);
    Ok(())
}

/// systemd 252's ListUnitFiles took ~7 s at 1,000 files and grows quadratically.
const SYSTEMD_LIST_FILES_MAX: usize = 1000;

fn print_figures(f: &Figures, count: usize, list_files: bool) {
    if list_files {
        println!(
            "    {:<42} {:>9.3} ms  ({} files)",
            "ListUnitFiles",
            ms(f.list_files),
            f.listed
        );
    } else {
        println!(
            "    {:<42} skipped (systemd 252: ~7 s at 1,000 files, quadratic)",
            "ListUnitFiles"
        );
    }
    println!(
        "    {:<42} {:>9.3} ms  ({:.1} us/unit)",
        format!("LoadUnit x{count}, sequential"),
        ms(f.load_all),
        ms(f.load_all) * 1000.0 / count.max(1) as f64
    );
    println!(
        "    {:<42} {:>9.3} ms  ({} units loaded)",
        "ListUnits",
        ms(f.list_units),
        f.units
    );
    println!(
        "    {:<42} {:>9.3} ms",
        "Reload (daemon-reload) after the loads",
        ms(f.reload)
    );
}

fn secs(out: &str, key: &str) -> Result<Duration, String> {
    let v = load::value(out, key)?;
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("'load {key}' is not seconds: {v:?}"))
}

/// Load figures for each count of generated unit files.
pub async fn load(
    bin_dir: &Path,
    counts: &[usize],
    systemd: Option<&Container>,
) -> Result<(), String> {
    println!("\n== unit files: 9 chained oneshot services (Requires=/After=) + 1 target (Wants=) per 10 files");
    println!(
        "   (both managers unload inactive unreferenced units after LoadUnit: see 'units loaded')"
    );
    for &count in counts {
        let (dir, units) = temp_dirs()?;
        let names = load::generate(&units, count)?;
        let emu = LoneEmulator::start(bin_dir, &units, dir.path()).await?;
        let conn = rate::connect(Some(&emu.address)).await?;
        println!("  emulator, {count} files");
        println!(
            "    {:<42} {:>9.3} ms",
            "start-up to name acquired",
            ms(emu.startup)
        );
        let idle = rss::of_pid(emu.pid)?;
        let f = load::measure(&conn, &names, true).await?;
        print_figures(&f, count, true);
        let status = std::fs::read_to_string(format!("/proc/{}/status", emu.pid))
            .map_err(|e| format!("cannot read the emulator's status: {e}"))?;
        println!(
            "    {:<42} {:>6} kB  (VmHWM {} kB; {} kB before loading)",
            "emulator VmRSS after loading",
            rss::parse_vm_rss(&status).unwrap_or(0),
            rss::parse_vm_hwm(&status).unwrap_or(0),
            idle.total
        );
        drop(conn);
        emu.stop();
        let Some(c) = systemd else { continue };
        let count_arg = count.to_string();
        let mut client_args = vec![
            "load-client",
            "--dir",
            "/etc/systemd/system",
            "--count",
            &count_arg,
            "--pid",
            "1",
        ];
        let list_files = count <= SYSTEMD_LIST_FILES_MAX;
        if !list_files {
            client_args.push("--no-list-files");
        }
        let out = c.client(&client_args)?;
        let f = load::from_output(&out)?;
        println!("  systemd 252 (podman), {count} files");
        println!(
            "    {:<42} {:>9.3} ms",
            "Reload to pick up the new files",
            ms(secs(&out, "pickup")?)
        );
        print_figures(&f, count, list_files);
        println!(
            "    {:<42} {:>6} kB  (VmHWM {} kB)",
            "PID 1 VmRSS after loading",
            load::value(&out, "vmrss")?,
            load::value(&out, "vmhwm")?
        );
    }
    Ok(())
}
