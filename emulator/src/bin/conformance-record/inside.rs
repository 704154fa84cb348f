//! Inside the container: drives real systemd over the system bus and writes fixtures.

use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use systemd_emulator::conformance::case::{self, signal_number, Case, Op};
use systemd_emulator::conformance::fixture::{self, StepObs, UnitObs};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::{Connection, Proxy};

const DEST: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT_DIR: &str = "/etc/systemd/system";
/// States must stay unchanged this long with no job pending before a step counts as settled.
const STABLE: Duration = Duration::from_millis(400);
const STEP_DEADLINE: Duration = Duration::from_secs(120);

type JobLog = Arc<Mutex<Vec<(String, String)>>>;

struct Sd {
    conn: Connection,
    mgr: Proxy<'static>,
    jobs: JobLog,
}

pub fn run(files: &[PathBuf], out: &Path) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    rt.block_on(run_all(files, out))
}

async fn run_all(files: &[PathBuf], out: &Path) -> Result<(), String> {
    let sd = connect().await?;
    let mut failed = 0;
    for f in files {
        let c = case::load(f).map_err(|e| e.to_string())?;
        match record_case(&sd, &c).await {
            Ok(steps) => {
                let path = out.join(format!("{}.fixture", c.name));
                std::fs::write(&path, fixture::render(&c.name, &steps))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                eprintln!("recorded {} ({} steps)", c.name, steps.len());
            }
            Err(e) => {
                failed += 1;
                eprintln!("FAILED {}: {e}", c.name);
            }
        }
        cleanup(&sd, &c).await;
    }
    if failed > 0 {
        return Err(format!("{failed} case(s) could not be recorded"));
    }
    Ok(())
}

async fn connect() -> Result<Sd, String> {
    let conn = Connection::system()
        .await
        .map_err(|e| format!("system bus: {e}"))?;
    let mgr = Proxy::new(&conn, DEST, MANAGER_PATH, MANAGER)
        .await
        .map_err(|e| format!("manager proxy: {e}"))?;
    let jobs: JobLog = Arc::default();
    let mut stream = mgr
        .receive_signal("JobRemoved")
        .await
        .map_err(|e| format!("JobRemoved match: {e}"))?;
    // systemd only broadcasts job signals while some client is subscribed.
    mgr.call_method("Subscribe", &())
        .await
        .map_err(|e| format!("Subscribe: {e}"))?;
    let sink = jobs.clone();
    tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            if let Ok((_, _, unit, result)) = msg
                .body()
                .deserialize::<(u32, OwnedObjectPath, String, String)>()
            {
                if let Ok(mut v) = sink.lock() {
                    v.push((unit, result));
                }
            }
        }
    });
    Ok(Sd { conn, mgr, jobs })
}

fn error_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.to_string(),
        other => format!("error:{other}"),
    }
}

async fn call<B>(sd: &Sd, method: &str, body: &B) -> Result<(), String>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    sd.mgr
        .call_method(method, body)
        .await
        .map(|_| ())
        .map_err(|e| error_name(&e))
}

/// Installs the case's unit files, other files and symlinks below [`UNIT_DIR`].
fn install_files(c: &Case) -> Result<(), String> {
    let at = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    for (rel, text) in c.units.iter().chain(&c.files) {
        let p = Path::new(UNIT_DIR).join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| at(parent, e))?;
        }
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, text).map_err(|e| at(&p, e))?;
    }
    for (rel, target) in &c.links {
        let p = Path::new(UNIT_DIR).join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| at(parent, e))?;
        }
        let t = if target.contains('/') {
            PathBuf::from(target)
        } else {
            Path::new(UNIT_DIR).join(target)
        };
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(&t, &p).map_err(|e| at(&p, e))?;
    }
    Ok(())
}

async fn record_case(sd: &Sd, c: &Case) -> Result<Vec<StepObs>, String> {
    install_files(c)?;
    call(sd, "Reload", &()).await?;
    let units = c.recorded_units();
    wait_idle(sd, &units).await?;
    let mut out = Vec::new();
    for step in &c.steps {
        if let Ok(mut v) = sd.jobs.lock() {
            v.clear();
        }
        let outcome = match run_op(sd, &step.op).await {
            Ok(()) => "ok".to_string(),
            Err(e) => e,
        };
        let observed = wait_idle(sd, &units)
            .await
            .map_err(|e| format!("line {}: {e}", step.line))?;
        let mut jobs: Vec<String> = sd
            .jobs
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|(u, _)| units.contains(u))
                    .map(|(u, r)| format!("{u} {r}"))
                    .collect()
            })
            .unwrap_or_default();
        jobs.sort();
        out.push(StepObs {
            op: step.op.to_string(),
            outcome,
            jobs,
            units: observed,
        });
    }
    Ok(out)
}

async fn run_op(sd: &Sd, op: &Op) -> Result<(), String> {
    match op {
        Op::Start(u, m) => call(sd, "StartUnit", &(u, m)).await,
        Op::Stop(u, m) => call(sd, "StopUnit", &(u, m)).await,
        Op::Restart(u, m) => call(sd, "RestartUnit", &(u, m)).await,
        Op::Reload(u, m) => call(sd, "ReloadUnit", &(u, m)).await,
        Op::Kill(u, s) => {
            let sig = signal_number(s).unwrap_or(libc::SIGTERM);
            call(sd, "KillUnit", &(u, "all", sig)).await
        }
        Op::ResetFailed(Some(u)) => call(sd, "ResetFailedUnit", &(u,)).await,
        Op::ResetFailed(None) => call(sd, "ResetFailed", &()).await,
        Op::SleepMs(ms) => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            Ok(())
        }
        Op::WaitIdle => Ok(()),
        Op::Enable(u) => call(sd, "EnableUnitFiles", &(vec![u], false, false)).await,
        Op::Disable(u) => call(sd, "DisableUnitFiles", &(vec![u], false)).await,
        Op::DaemonReload => call(sd, "Reload", &()).await,
    }
}

async fn no_jobs(sd: &Sd) -> Result<bool, String> {
    type JobRow = (
        u32,
        String,
        String,
        String,
        OwnedObjectPath,
        OwnedObjectPath,
    );
    let reply = sd
        .mgr
        .call_method("ListJobs", &())
        .await
        .map_err(|e| format!("ListJobs: {e}"))?;
    let jobs: Vec<JobRow> = reply
        .body()
        .deserialize()
        .map_err(|e| format!("ListJobs reply: {e}"))?;
    Ok(jobs.is_empty())
}

/// Waits until no job is pending and the units' states stay unchanged for [`STABLE`].
async fn wait_idle(sd: &Sd, units: &[String]) -> Result<Vec<UnitObs>, String> {
    let deadline = Instant::now() + STEP_DEADLINE;
    let mut last: Option<Vec<UnitObs>> = None;
    while Instant::now() < deadline {
        if !no_jobs(sd).await? {
            last = None;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let now = observe(sd, units).await?;
        if last.as_ref() == Some(&now) {
            return Ok(now);
        }
        last = Some(now);
        tokio::time::sleep(STABLE).await;
    }
    Err("jobs still pending or states changing after 120 s".into())
}

async fn observe(sd: &Sd, units: &[String]) -> Result<Vec<UnitObs>, String> {
    let mut out = Vec::new();
    for n in units {
        out.push(observe_unit(sd, n).await?);
    }
    Ok(out)
}

async fn prop(sd: &Sd, path: &OwnedObjectPath, iface: &str, name: &str) -> Result<String, String> {
    let reply = sd
        .conn
        .call_method(
            Some(DEST),
            path.as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &(iface, name),
        )
        .await
        .map_err(|e| format!("Get {name}: {e}"))?;
    let v: OwnedValue = reply
        .body()
        .deserialize()
        .map_err(|e| format!("Get {name} reply: {e}"))?;
    String::try_from(v).map_err(|e| format!("{name} is not a string: {e}"))
}

async fn observe_unit(sd: &Sd, name: &str) -> Result<UnitObs, String> {
    let reply = sd
        .mgr
        .call_method("LoadUnit", &(name,))
        .await
        .map_err(|e| format!("LoadUnit {name}: {e}"))?;
    let path: OwnedObjectPath = reply
        .body()
        .deserialize()
        .map_err(|e| format!("LoadUnit reply: {e}"))?;
    let unit = "org.freedesktop.systemd1.Unit";
    let result = if name.ends_with(".service") {
        prop(sd, &path, "org.freedesktop.systemd1.Service", "Result").await?
    } else {
        "-".to_string()
    };
    let file_state = match sd.mgr.call_method("GetUnitFileState", &(name,)).await {
        Ok(reply) => reply
            .body()
            .deserialize::<String>()
            .map_err(|e| format!("GetUnitFileState reply: {e}"))?,
        Err(_) => "-".to_string(),
    };
    Ok(UnitObs {
        file_state: Some(file_state),
        name: name.to_string(),
        load: prop(sd, &path, unit, "LoadState").await?,
        active: prop(sd, &path, unit, "ActiveState").await?,
        sub: prop(sd, &path, unit, "SubState").await?,
        result,
    })
}

/// Leaves no trace of the case: processes killed, units stopped, failures reset, files gone.
async fn cleanup(sd: &Sd, c: &Case) {
    let units = c.recorded_units();
    // A unit stopped while its upholder is still active is started again: repeat until all
    // are down.
    for _ in 0..3 {
        for u in &units {
            let _ = call(sd, "KillUnit", &(u, "all", libc::SIGKILL)).await;
            let _ = call(sd, "StopUnit", &(u, "replace")).await;
        }
        let states = wait_idle(sd, &units).await.unwrap_or_default();
        if states
            .iter()
            .all(|o| o.active == "inactive" || o.active == "failed")
        {
            break;
        }
    }
    for step in &c.steps {
        if let Op::Enable(u) = &step.op {
            let _ = call(sd, "DisableUnitFiles", &(vec![u], false)).await;
        }
    }
    let rels = c.units.iter().chain(&c.files).chain(&c.links);
    let paths: Vec<PathBuf> = rels.map(|(r, _)| Path::new(UNIT_DIR).join(r)).collect();
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    // Directories the case created (drop-in and .wants dirs) go too, if nothing else is left.
    for p in &paths {
        if let Some(parent) = p.parent().filter(|d| *d != Path::new(UNIT_DIR)) {
            let _ = std::fs::remove_dir(parent);
        }
    }
    let _ = call(sd, "Reload", &()).await;
    let _ = wait_idle(sd, &units).await;
    let _ = call(sd, "ResetFailed", &()).await;
}
