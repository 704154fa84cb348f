//! D-Bus property values of units and jobs, shared by Get/GetAll and change signals.

use super::types::{Job, Value};
use super::unit::{Stamp, Unit};
use crate::names::{job_path, unit_path};
use std::collections::BTreeMap;

pub const IFACE_UNIT: &str = "org.freedesktop.systemd1.Unit";
pub const IFACE_SERVICE: &str = "org.freedesktop.systemd1.Service";
pub const IFACE_TARGET: &str = "org.freedesktop.systemd1.Target";
pub const IFACE_JOB: &str = "org.freedesktop.systemd1.Job";

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

fn stamps(out: &mut Vec<(String, Value)>, name: &str, st: Stamp) {
    out.push((format!("{name}Timestamp"), Value::U64(st.realtime)));
    out.push((
        format!("{name}TimestampMonotonic"),
        Value::U64(st.monotonic),
    ));
}

fn job_ref(u: &Unit) -> Value {
    match u.job {
        Some(id) => Value::JobRef(id, job_path(id)),
        None => Value::JobRef(0, "/".to_string()),
    }
}

/// The Unit properties that change with state; sent in every Unit PropertiesChanged.
pub fn unit_changed_props(u: &Unit, _jobs: &BTreeMap<u32, Job>) -> Vec<(String, Value)> {
    let mut out = vec![
        ("ActiveState".to_string(), s(u.active.as_str())),
        ("SubState".to_string(), s(u.sub)),
        ("LoadState".to_string(), s(u.load_state)),
        ("FreezerState".to_string(), s(freezer_state(u))),
        ("Job".to_string(), job_ref(u)),
    ];
    stamps(&mut out, "ActiveEnter", u.ts.active_enter);
    stamps(&mut out, "ActiveExit", u.ts.active_exit);
    stamps(&mut out, "InactiveEnter", u.ts.inactive_enter);
    stamps(&mut out, "InactiveExit", u.ts.inactive_exit);
    out.push((
        "InvocationID".to_string(),
        Value::Bytes(u.invocation_id.clone()),
    ));
    out
}

pub fn unit_props(u: &Unit, jobs: &BTreeMap<u32, Job>) -> Vec<(String, Value)> {
    let d = u.deps();
    let mut out = vec![
        ("Id".to_string(), s(&u.name)),
        (
            "Names".to_string(),
            Value::StrList(
                u.def
                    .as_ref()
                    .map(|d| d.names.clone())
                    .unwrap_or_else(|| vec![u.name.clone()]),
            ),
        ),
        ("Following".to_string(), s("")),
        ("Description".to_string(), s(&u.description())),
        ("UnitFileState".to_string(), s(&u.unit_file_state)),
        ("UnitFilePreset".to_string(), s(&u.unit_file_preset)),
        ("FragmentPath".to_string(), s(&u.fragment_path)),
        ("SourcePath".to_string(), s("")),
        (
            "DropInPaths".to_string(),
            Value::StrList(
                u.def
                    .as_ref()
                    .map(|d| d.drop_in_paths.clone())
                    .unwrap_or_default(),
            ),
        ),
        ("Requires".to_string(), Value::StrList(d.requires.clone())),
        ("Requisite".to_string(), Value::StrList(d.requisite.clone())),
        ("Wants".to_string(), Value::StrList(d.wants.clone())),
        ("BindsTo".to_string(), Value::StrList(d.binds_to.clone())),
        ("Upholds".to_string(), Value::StrList(d.upholds.clone())),
        ("Conflicts".to_string(), Value::StrList(d.conflicts.clone())),
        ("After".to_string(), Value::StrList(d.after.clone())),
        ("Before".to_string(), Value::StrList(d.before.clone())),
        (
            "StopWhenUnneeded".to_string(),
            Value::Bool(u.stop_when_unneeded()),
        ),
        (
            "CanStart".to_string(),
            Value::Bool(u.load_state == "loaded"),
        ),
        ("CanStop".to_string(), Value::Bool(u.load_state == "loaded")),
        (
            "CanIsolate".to_string(),
            Value::Bool(u.load_state == "loaded" && u.allow_isolate()),
        ),
        ("AllowIsolate".to_string(), Value::Bool(u.allow_isolate())),
        (
            "IgnoreOnIsolate".to_string(),
            Value::Bool(u.ignore_on_isolate()),
        ),
        (
            "OnFailureJobMode".to_string(),
            Value::Str(u.handler_job_mode(false).as_str().to_string()),
        ),
        (
            "OnSuccessJobMode".to_string(),
            Value::Str(u.handler_job_mode(true).as_str().to_string()),
        ),
        (
            "CanReload".to_string(),
            Value::Bool(u.service_def().is_some_and(|s| !s.exec_reload.is_empty())),
        ),
        // Services can be frozen (SIGSTOP on their process groups, see engine/freezer.rs).
        ("CanFreeze".to_string(), Value::Bool(u.is_service())),
        ("Transient".to_string(), Value::Bool(false)),
    ];
    let (en, em) = u.load_error.clone().unwrap_or_default();
    out.push(("LoadError".to_string(), Value::StrPair(en, em)));
    out.extend(unit_changed_props(u, jobs));
    out
}

fn service_type(u: &Unit) -> &'static str {
    u.service_def()
        .map(|s| s.service_type.as_str())
        .unwrap_or("simple")
}

pub fn freezer_state(u: &Unit) -> &'static str {
    if u.frozen {
        "frozen"
    } else {
        "running"
    }
}

/// Service properties sent when the main process or result changes.
pub fn service_changed_props(u: &Unit) -> Vec<(String, Value)> {
    let main_pid = u.svc.main.map(|p| p.pid).unwrap_or(0);
    let control_pid = u.svc.control.map(|p| p.pid).unwrap_or(0);
    // The cgroup systemd would report; empty while no process runs, as with systemd.
    let cgroup = if main_pid != 0 || control_pid != 0 {
        format!("/system.slice/{}", u.name)
    } else {
        String::new()
    };
    let mut out = vec![
        ("ControlGroup".to_string(), s(&cgroup)),
        ("Result".to_string(), s(u.svc.result)),
        ("MainPID".to_string(), Value::U32(main_pid)),
        ("ControlPID".to_string(), Value::U32(control_pid)),
        ("ExecMainPID".to_string(), Value::U32(u.svc.exec_main_pid)),
        ("ExecMainCode".to_string(), Value::I32(u.svc.exec_main_code)),
        (
            "ExecMainStatus".to_string(),
            Value::I32(u.svc.exec_main_status),
        ),
        ("NRestarts".to_string(), Value::U32(u.svc.n_restarts)),
        (
            "StatusText".to_string(),
            Value::Str(u.svc.status_text.clone()),
        ),
        ("StatusErrno".to_string(), Value::I32(u.svc.status_errno)),
        ("ReloadResult".to_string(), s(u.svc.reload_result)),
    ];
    stamps(&mut out, "ExecMainStart", u.svc.exec_main_start);
    stamps(&mut out, "ExecMainExit", u.svc.exec_main_exit);
    out
}

pub fn service_props(u: &Unit) -> Vec<(String, Value)> {
    let def = u.service_def();
    let restart = def.map(|d| d.restart.as_str()).unwrap_or("no");
    let kill_mode = match def.map(|d| d.kill_mode) {
        Some(crate::unitfile::KillMode::Mixed) => "mixed",
        Some(crate::unitfile::KillMode::Process) => "process",
        Some(crate::unitfile::KillMode::None) => "none",
        _ => "control-group",
    };
    let mut out = vec![
        ("Type".to_string(), s(service_type(u))),
        ("Restart".to_string(), s(restart)),
        (
            "RemainAfterExit".to_string(),
            Value::Bool(def.is_some_and(|d| d.remain_after_exit)),
        ),
        ("KillMode".to_string(), s(kill_mode)),
        (
            "KillSignal".to_string(),
            Value::I32(def.map(|d| d.kill_signal).unwrap_or(libc::SIGTERM)),
        ),
        (
            "RestartKillSignal".to_string(),
            Value::I32(
                def.map(|d| d.restart_kill_signal.unwrap_or(d.kill_signal))
                    .unwrap_or(libc::SIGTERM),
            ),
        ),
        (
            "SendSIGKILL".to_string(),
            Value::Bool(def.is_none_or(|d| d.send_sigkill)),
        ),
        (
            "RestartUSec".to_string(),
            Value::U64(def.map(|d| d.restart_sec_us).unwrap_or(100_000)),
        ),
        (
            "TimeoutStopUSec".to_string(),
            Value::U64(def.map(|d| d.timeout_stop_us).unwrap_or(90_000_000)),
        ),
        (
            "TimeoutStartUSec".to_string(),
            Value::U64(def.map(|d| d.start_timeout_us()).unwrap_or(90_000_000)),
        ),
        (
            "NotifyAccess".to_string(),
            s(def.map(|d| d.notify_access().as_str()).unwrap_or("none")),
        ),
        (
            "PIDFile".to_string(),
            Value::Str(def.and_then(|d| d.pid_file.clone()).unwrap_or_default()),
        ),
        (
            "Environment".to_string(),
            Value::StrList(
                def.map(|d| {
                    d.environment
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect()
                })
                .unwrap_or_default(),
            ),
        ),
    ];
    out.extend(service_changed_props(u));
    out
}

/// All properties of `iface` on a unit object; `""` merges every interface the unit has.
pub fn properties_for(
    u: &Unit,
    jobs: &BTreeMap<u32, Job>,
    iface: &str,
) -> Option<Vec<(String, Value)>> {
    match iface {
        IFACE_UNIT => Some(unit_props(u, jobs)),
        IFACE_SERVICE if u.is_service() => Some(service_props(u)),
        IFACE_TARGET if u.name.ends_with(".target") => Some(Vec::new()),
        "" => {
            let mut all = unit_props(u, jobs);
            if u.is_service() {
                all.extend(service_props(u));
            }
            Some(all)
        }
        _ => None,
    }
}

pub fn job_props(j: &Job) -> Vec<(String, Value)> {
    vec![
        ("Id".to_string(), Value::U32(j.id)),
        (
            "Unit".to_string(),
            Value::UnitRef(j.unit.clone(), unit_path(&j.unit)),
        ),
        ("JobType".to_string(), s(j.job_type.as_str())),
        ("State".to_string(), s(j.state.as_str())),
    ]
}

impl super::Engine {
    pub fn unit_properties(&self, name: &str, iface: &str) -> Option<Vec<(String, Value)>> {
        self.units
            .get(name)
            .and_then(|u| properties_for(u, &self.jobs, iface))
    }
}
