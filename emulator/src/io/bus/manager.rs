//! Manager methods beyond start/stop: listing, lookups, unit files, environment and the
//! daemon-level calls (Reload, Exit, Dump).

use super::state::{Daemon, OutSignal};
use super::{bad_args, job_ref_path, ok, Reply, UnitListEntry};
use crate::engine::{
    Engine, EngineError, JobType, Now, Unit, Value, ERR_INVALID_ARGS, ERR_NO_SUCH_JOB,
    ERR_NO_SUCH_UNIT,
};
use crate::io::convert::object_path;
use crate::names::unit_path;
pub use bluechi_core::fnmatch::fnmatch as glob;
use zbus::message::{Header, Message};
use zvariant::OwnedObjectPath;

const ERR_NO_UNIT_FOR_PID: &str = "org.freedesktop.systemd1.NoUnitForPID";
const ERR_NO_UNIT_FOR_INVOCATION: &str = "org.freedesktop.systemd1.NoUnitForInvocationID";
const ERR_NO_SUCH_DYNAMIC_USER: &str = "org.freedesktop.systemd1.NoSuchDynamicUser";

/// One `ListJobs` entry: `(usssoo)` (also what Job.GetAfter/GetBefore list).
pub(super) type JobListEntry = (
    u32,
    String,
    String,
    String,
    OwnedObjectPath,
    OwnedObjectPath,
);
/// One `EnqueueUnitJob` affected-job entry: `(uosos)`.
type AffectedJob = (u32, OwnedObjectPath, String, OwnedObjectPath, String);

/// The unit's description as clients see it (a runtime override wins).
pub fn description(d: &Daemon, u: &Unit) -> String {
    match d.overrides.get(&u.name).and_then(|o| o.get("Description")) {
        Some(Value::Str(s)) => s.clone(),
        _ => u.description(),
    }
}

pub fn list_entry(engine: &Engine, d: &Daemon, u: &Unit) -> UnitListEntry {
    let job = u.job.and_then(|id| engine.job(id));
    (
        u.name.clone(),
        description(d, u),
        u.load_state.to_string(),
        u.active.as_str().to_string(),
        u.sub.to_string(),
        String::new(),
        object_path(&unit_path(&u.name)),
        job.map(|j| j.id).unwrap_or(0),
        job.map(|j| j.job_type.as_str().to_string())
            .unwrap_or_default(),
        job.map(|j| job_ref_path(j.id))
            .unwrap_or_else(|| object_path("/")),
    )
}

fn state_matches(states: &[String], u: &Unit) -> bool {
    states.is_empty()
        || states
            .iter()
            .any(|s| s == u.load_state || s == u.active.as_str() || s == u.sub)
}

fn pattern_matches(patterns: &[String], name: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| glob(p, name))
}

fn job_list(engine: &Engine) -> Vec<JobListEntry> {
    let mut ids: Vec<u32> = engine.units().filter_map(|u| u.job).collect();
    ids.sort_unstable();
    ids.into_iter()
        .filter_map(|id| engine.job(id))
        .map(|j| {
            (
                j.id,
                j.unit.clone(),
                j.job_type.as_str().to_string(),
                j.state.as_str().to_string(),
                job_ref_path(j.id),
                object_path(&unit_path(&j.unit)),
            )
        })
        .collect()
}

fn no_such_unit(name: &str) -> EngineError {
    EngineError::new(ERR_NO_SUCH_UNIT, format!("Unit {name} not loaded."))
}

/// The loaded unit `name`, or systemd's NoSuchUnit error.
pub fn loaded<'a>(engine: &'a Engine, name: &str) -> Result<&'a Unit, EngineError> {
    engine.unit(name).ok_or_else(|| no_such_unit(name))
}

pub fn job_type(s: &str) -> Result<JobType, EngineError> {
    match s {
        "start" => Ok(JobType::Start),
        "stop" => Ok(JobType::Stop),
        "restart" => Ok(JobType::Restart),
        "reload" | "try-restart" | "reload-or-restart" | "reload-or-try-restart" => {
            Err(EngineError::new(
                "org.freedesktop.DBus.Error.NotSupported",
                format!("Job type {s} is not supported by this emulator."),
            ))
        }
        _ => Err(EngineError::new(
            ERR_INVALID_ARGS,
            format!("Job type {s} invalid."),
        )),
    }
}

/// `EnqueueUnitJob`/`Unit.EnqueueJob` reply body.
pub fn enqueue_reply(
    engine: &mut Engine,
    hdr: &Header<'_>,
    name: &str,
    jt: &str,
    mode: &str,
    now: Now,
) -> Reply {
    let jt = job_type(jt)?;
    let id = engine.enqueue(name, jt, mode, now)?;
    let affected: Vec<AffectedJob> = Vec::new();
    ok(
        hdr,
        &(
            id,
            job_ref_path(id),
            name.to_string(),
            object_path(&unit_path(name)),
            jt.as_str().to_string(),
            affected,
        ),
    )
}

/// `(sus)` entries of a unit's processes: cgroup, PID, command line.
pub fn processes(u: &Unit) -> Vec<(String, u32, String)> {
    let cgroup = format!("/system.slice/{}", u.name);
    [u.svc.main, u.svc.control]
        .into_iter()
        .flatten()
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{}/cmdline", p.pid))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .trim_end_matches('\0')
                        .replace('\0', " ")
                })
                .unwrap_or_default();
            (cgroup.clone(), p.pid, cmd)
        })
        .collect()
}

fn dump(engine: &Engine, d: &Daemon, patterns: &[String]) -> String {
    let mut out = String::new();
    for u in engine
        .units()
        .filter(|u| pattern_matches(patterns, &u.name))
    {
        out.push_str(&format!(
            "-> Unit {}:\n\tDescription: {}\n\tLoad State: {}\n\tActive State: {}\n\tSub State: {}\n",
            u.name,
            description(d, u),
            u.load_state,
            u.active.as_str(),
            u.sub
        ));
    }
    out
}

fn env_name(assignment: &str) -> &str {
    assignment.split('=').next().unwrap_or(assignment)
}

fn unset_env(d: &mut Daemon, names: &[String]) {
    d.environment
        .retain(|a| !names.iter().any(|n| n == a || n.as_str() == env_name(a)));
}

fn set_env(d: &mut Daemon, assignments: &[String]) -> Result<(), EngineError> {
    for a in assignments {
        if !a.contains('=') || a.starts_with('=') {
            return Err(EngineError::new(
                ERR_INVALID_ARGS,
                "Invalid environment assignments",
            ));
        }
    }
    for a in assignments {
        let name = env_name(a).to_string();
        d.environment.retain(|x| env_name(x) != name);
        d.environment.push(a.clone());
    }
    Ok(())
}

/// Unit file changes: systemd's `a(sss)`.
type Changes = Vec<(String, String, String)>;

/// Manager methods not handled in `bus::manager`; `None` if we do not know `member`.
pub fn call(
    engine: &mut Engine,
    d: &mut Daemon,
    msg: &Message,
    hdr: &Header<'_>,
    member: &str,
    now: Now,
) -> Option<Reply> {
    let body = msg.body();
    Some(match member {
        "ListUnitsFiltered" => (|| {
            let (states,): (Vec<String>,) = body.deserialize().map_err(bad_args)?;
            let e: &Engine = engine;
            let list: Vec<UnitListEntry> = e
                .units()
                .filter(|u| state_matches(&states, u))
                .map(|u| list_entry(e, d, u))
                .collect();
            ok(hdr, &(list,))
        })(),
        "ListUnitsByPatterns" => (|| {
            let (states, patterns): (Vec<String>, Vec<String>) =
                body.deserialize().map_err(bad_args)?;
            let e: &Engine = engine;
            let list: Vec<UnitListEntry> = e
                .units()
                .filter(|u| state_matches(&states, u) && pattern_matches(&patterns, &u.name))
                .map(|u| list_entry(e, d, u))
                .collect();
            ok(hdr, &(list,))
        })(),
        "ListUnitsByNames" => (|| {
            let (names,): (Vec<String>,) = body.deserialize().map_err(bad_args)?;
            for n in &names {
                engine.load_unit(n, now)?;
            }
            let e: &Engine = engine;
            let list: Vec<UnitListEntry> = names
                .iter()
                .filter_map(|n| e.unit(n))
                .map(|u| list_entry(e, d, u))
                .collect();
            ok(hdr, &(list,))
        })(),
        "ListUnitFilesByPatterns" => (|| {
            let (states, patterns): (Vec<String>, Vec<String>) =
                body.deserialize().map_err(bad_args)?;
            let list: Vec<(String, String)> = engine
                .source()
                .list_files()
                .into_iter()
                .filter(|(path, state)| {
                    let base = path.rsplit('/').next().unwrap_or(path);
                    (states.is_empty() || states.contains(state))
                        && pattern_matches(&patterns, base)
                })
                .collect();
            ok(hdr, &(list,))
        })(),
        "ListJobs" => ok(hdr, &(job_list(engine),)),
        "GetUnitByPID" => (|| {
            let (pid,): (u32,) = body.deserialize().map_err(bad_args)?;
            let u = engine
                .units()
                .find(|u| {
                    [u.svc.main, u.svc.control]
                        .iter()
                        .flatten()
                        .any(|p| p.pid == pid && pid != 0)
                })
                .ok_or_else(|| {
                    EngineError::new(
                        ERR_NO_UNIT_FOR_PID,
                        format!("PID {pid} does not belong to any loaded unit."),
                    )
                })?;
            ok(hdr, &(object_path(&unit_path(&u.name)),))
        })(),
        "GetUnitByInvocationID" => (|| {
            let (id,): (Vec<u8>,) = body.deserialize().map_err(bad_args)?;
            let u = engine
                .units()
                .find(|u| !id.is_empty() && u.invocation_id == id)
                .ok_or_else(|| {
                    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                    EngineError::new(
                        ERR_NO_UNIT_FOR_INVOCATION,
                        format!("No unit with the specified invocation ID {hex} known."),
                    )
                })?;
            ok(hdr, &(object_path(&unit_path(&u.name)),))
        })(),
        "GetUnitByControlGroup" => (|| {
            let (cg,): (String,) = body.deserialize().map_err(bad_args)?;
            let name = cg.strip_prefix("/system.slice/").unwrap_or("");
            let u = engine.unit(name).ok_or_else(|| {
                EngineError::new(
                    ERR_NO_SUCH_UNIT,
                    format!("Control group '{cg}' is not valid or not managed by this instance"),
                )
            })?;
            ok(hdr, &(object_path(&unit_path(&u.name)),))
        })(),
        "StartUnitReplace" => (|| {
            let (_old, name, mode): (String, String, String) =
                body.deserialize().map_err(bad_args)?;
            let id = engine.enqueue(&name, JobType::Start, &mode, now)?;
            ok(hdr, &(job_ref_path(id),))
        })(),
        "StartUnitWithFlags" => (|| {
            let (name, mode, _flags): (String, String, u64) =
                body.deserialize().map_err(bad_args)?;
            let id = engine.enqueue(&name, JobType::Start, &mode, now)?;
            ok(hdr, &(job_ref_path(id),))
        })(),
        "EnqueueUnitJob" => (|| {
            let (name, jt, mode): (String, String, String) =
                body.deserialize().map_err(bad_args)?;
            enqueue_reply(engine, hdr, &name, &jt, &mode, now)
        })(),
        "FreezeUnit" | "ThawUnit" => (|| {
            let (name,): (String,) = body.deserialize().map_err(bad_args)?;
            loaded(engine, &name)?;
            if member == "FreezeUnit" {
                engine.freeze_unit(&name, now)?;
            } else {
                engine.thaw_unit(&name, now)?;
            }
            ok(hdr, &())
        })(),
        "SetUnitProperties" => (|| {
            let (name, runtime, props): (String, bool, Vec<(String, zvariant::OwnedValue)>) =
                body.deserialize().map_err(bad_args)?;
            super::unit::set_properties(engine, d, &name, runtime, &props, now)?;
            ok(hdr, &())
        })(),
        "RefUnit" | "UnrefUnit" => (|| {
            let (name,): (String,) = body.deserialize().map_err(bad_args)?;
            loaded(engine, &name)?;
            ok(hdr, &())
        })(),
        "StartTransientUnit" => (|| {
            let (name, mode, props, _aux): super::transient::Args =
                body.deserialize().map_err(bad_args)?;
            let id = super::transient::start(engine, d, &name, &mode, &props, now)?;
            ok(hdr, &(job_ref_path(id),))
        })(),
        "GetUnitProcesses" => (|| {
            let (name,): (String,) = body.deserialize().map_err(bad_args)?;
            ok(hdr, &(processes(loaded(engine, &name)?),))
        })(),
        "CancelJob" => (|| {
            let (id,): (u32,) = body.deserialize().map_err(bad_args)?;
            engine.cancel_job(id, now)?;
            ok(hdr, &())
        })(),
        "ClearJobs" => {
            for (id, ..) in job_list(engine) {
                // A cancel may already have finished later jobs of the list.
                let _ = engine.cancel_job(id, now);
            }
            ok(hdr, &())
        }
        "GetJobAfter" | "GetJobBefore" => (|| {
            let (id,): (u32,) = body.deserialize().map_err(bad_args)?;
            if engine.job(id).is_none() {
                return Err(EngineError::new(
                    ERR_NO_SUCH_JOB,
                    format!("Job {id} does not exist."),
                ));
            }
            // Job ordering is not tracked per job; no job is reported as waiting on another.
            ok(hdr, &(Vec::<JobListEntry>::new(),))
        })(),
        "SetShowStatus" => ok(hdr, &()),
        "Dump" => ok(hdr, &(dump(engine, d, &[]),)),
        "DumpUnitsMatchingPatterns" => (|| {
            let (patterns,): (Vec<String>,) = body.deserialize().map_err(bad_args)?;
            ok(hdr, &(dump(engine, d, &patterns),))
        })(),
        "Reexecute" => {
            d.pre.push(OutSignal::Reloading(true));
            engine.reload(now);
            d.post.push(OutSignal::Reloading(false));
            ok(hdr, &())
        }
        "Exit" => {
            d.exit_requested = true;
            ok(hdr, &())
        }
        "SetExitCode" => (|| {
            let (code,): (u8,) = body.deserialize().map_err(bad_args)?;
            d.exit_code = code;
            ok(hdr, &())
        })(),
        "SetEnvironment" => (|| {
            let (set,): (Vec<String>,) = body.deserialize().map_err(bad_args)?;
            set_env(d, &set)?;
            ok(hdr, &())
        })(),
        "UnsetEnvironment" => (|| {
            let (unset,): (Vec<String>,) = body.deserialize().map_err(bad_args)?;
            unset_env(d, &unset);
            ok(hdr, &())
        })(),
        "UnsetAndSetEnvironment" => (|| {
            let (unset, set): (Vec<String>, Vec<String>) = body.deserialize().map_err(bad_args)?;
            unset_env(d, &unset);
            set_env(d, &set)?;
            ok(hdr, &())
        })(),
        "EnqueueMarkedJobs" => ok(hdr, &(Vec::<OwnedObjectPath>::new(),)),
        "GetDynamicUsers" => ok(hdr, &(Vec::<(u32, String)>::new(),)),
        "LookupDynamicUserByName" => (|| {
            let (name,): (String,) = body.deserialize().map_err(bad_args)?;
            Err(EngineError::new(
                ERR_NO_SUCH_DYNAMIC_USER,
                format!("Dynamic user {name} does not exist."),
            ))
        })(),
        "LookupDynamicUserByUID" => (|| {
            let (uid,): (u32,) = body.deserialize().map_err(bad_args)?;
            Err(EngineError::new(
                ERR_NO_SUCH_DYNAMIC_USER,
                format!("Dynamic user ID {uid} does not exist."),
            ))
        })(),
        "EnableUnitFiles" | "EnableUnitFilesWithFlags" | "ReenableUnitFiles" => (|| {
            let (files, runtime, force) = match member {
                "EnableUnitFilesWithFlags" => {
                    let (f, flags): (Vec<String>, u64) = body.deserialize().map_err(bad_args)?;
                    (f, flags & 1 != 0, flags & 2 != 0)
                }
                _ => {
                    let (f, r, force): (Vec<String>, bool, bool) =
                        body.deserialize().map_err(bad_args)?;
                    (f, r, force)
                }
            };
            let mut changes: Changes = Vec::new();
            if member == "ReenableUnitFiles" {
                changes.extend(engine.source().disable(&files, runtime)?);
            }
            changes.extend(engine.source().enable(&files, runtime, force)?);
            d.post.push(OutSignal::UnitFilesChanged);
            let carries_install_info = !changes.is_empty();
            ok(hdr, &(carries_install_info, changes))
        })(),
        "DisableUnitFiles" | "DisableUnitFilesWithFlags" => (|| {
            let (files, runtime) = if member == "DisableUnitFiles" {
                let (f, r): (Vec<String>, bool) = body.deserialize().map_err(bad_args)?;
                (f, r)
            } else {
                let (f, flags): (Vec<String>, u64) = body.deserialize().map_err(bad_args)?;
                (f, flags & 1 != 0)
            };
            let changes = engine.source().disable(&files, runtime)?;
            d.post.push(OutSignal::UnitFilesChanged);
            ok(hdr, &(changes,))
        })(),
        "GetDefaultTarget" => (|| ok(hdr, &(engine.source().default_target()?,)))(),
        "SetDefaultTarget" => (|| {
            let (name, force): (String, bool) = body.deserialize().map_err(bad_args)?;
            let changes = engine.source().set_default_target(&name, force)?;
            d.post.push(OutSignal::UnitFilesChanged);
            ok(hdr, &(changes,))
        })(),
        _ => return None,
    })
}

/// Manager properties we model; the rest of the contract gets defaults.
pub fn properties(engine: &Engine, d: &Daemon) -> Vec<(String, Value)> {
    let s = |v: &str| Value::Str(v.to_string());
    let n_jobs = engine.units().filter(|u| u.job.is_some()).count() as u32;
    let n_failed = engine
        .units()
        .filter(|u| u.active == crate::engine::ActiveState::Failed)
        .count() as u32;
    let state = if n_failed > 0 { "degraded" } else { "running" };
    vec![
        ("Version".to_string(), s("252")),
        ("Virtualization".to_string(), s("")),
        ("Architecture".to_string(), s(architecture())),
        ("Tainted".to_string(), s("")),
        ("SystemState".to_string(), s(state)),
        (
            "NNames".to_string(),
            Value::U32(engine.units().count() as u32),
        ),
        ("NFailedUnits".to_string(), Value::U32(n_failed)),
        ("NJobs".to_string(), Value::U32(n_jobs)),
        (
            "Environment".to_string(),
            Value::StrList(d.environment.clone()),
        ),
        ("UnitPath".to_string(), Value::StrList(d.unit_paths.clone())),
        ("LogLevel".to_string(), s("info")),
        ("LogTarget".to_string(), s("console")),
        ("DefaultStandardOutput".to_string(), s("inherit")),
        ("DefaultStandardError".to_string(), s("inherit")),
        (
            "DefaultTimeoutStartUSec".to_string(),
            Value::U64(90_000_000),
        ),
        ("DefaultTimeoutStopUSec".to_string(), Value::U64(90_000_000)),
        ("DefaultRestartUSec".to_string(), Value::U64(100_000)),
        ("ControlGroup".to_string(), s("/")),
    ]
}

/// systemd's architecture names, which differ from Rust's for some targets.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}
