//! D-Bus method dispatch by (path, interface, member), without zbus' ObjectServer, because
//! unit objects appear on demand.

use super::convert::{object_path, to_dict, to_zvalue};
use crate::engine::props::{job_props, IFACE_JOB, IFACE_SERVICE, IFACE_TARGET, IFACE_UNIT};
use crate::engine::{Engine, EngineError, JobType, Now, Request, Value, ERR_INVALID_ARGS};
use crate::names::{bus_label_unescape, job_path, unit_path, JOB_PATH_PREFIX, UNIT_PATH_PREFIX};
use serde::Serialize;
use zbus::message::{Header, Message};
use zvariant::{DynamicType, OwnedObjectPath};

pub const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
pub const IFACE_MANAGER: &str = "org.freedesktop.systemd1.Manager";
const IFACE_PROPS: &str = "org.freedesktop.DBus.Properties";
const IFACE_PEER: &str = "org.freedesktop.DBus.Peer";
const IFACE_INTROSPECT: &str = "org.freedesktop.DBus.Introspectable";

const XML_MANAGER: &str = include_str!("../../introspection/manager.xml");
const XML_SERVICE: &str = include_str!("../../introspection/unit-service.xml");
const XML_TARGET: &str = include_str!("../../introspection/unit-target.xml");
const XML_JOB: &str = include_str!("../../introspection/job.xml");
const XML_EMPTY: &str =
    "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n\
\"https://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n</node>\n";

type Reply = Result<Message, EngineError>;
type PropList = Vec<(String, Value)>;
/// One `ListUnits` entry: `(ssssssouso)`.
type UnitListEntry = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

fn ok<B: Serialize + DynamicType>(hdr: &Header<'_>, body: &B) -> Reply {
    Message::method_return(hdr)
        .and_then(|b| b.build(body))
        .map_err(|e| EngineError::new("org.freedesktop.DBus.Error.Failed", e.to_string()))
}

fn bad_args(e: impl std::fmt::Display) -> EngineError {
    EngineError::new(ERR_INVALID_ARGS, format!("Invalid arguments: {e}"))
}

fn unknown_method(member: &str, iface: &str) -> EngineError {
    EngineError::new(
        "org.freedesktop.DBus.Error.UnknownMethod",
        format!("Unknown method {member} or interface {iface}."),
    )
}

fn unknown_object(path: &str) -> EngineError {
    EngineError::new(
        "org.freedesktop.DBus.Error.UnknownObject",
        format!("Unknown object '{path}'."),
    )
}

fn unknown_property(iface: &str, name: &str) -> EngineError {
    EngineError::new(
        "org.freedesktop.DBus.Error.UnknownProperty",
        format!("Unknown property or interface {iface}.{name}."),
    )
}

/// Builds the error reply for `e`.
pub fn error_reply(hdr: &Header<'_>, e: &EngineError) -> zbus::Result<Message> {
    Message::error(hdr, e.name)?.build(&(e.message.as_str(),))
}

/// Handles one method call; the engine may queue actions that the caller runs after replying.
pub fn dispatch(engine: &mut Engine, msg: &Message, now: Now) -> Reply {
    let hdr = msg.header();
    let path = hdr
        .path()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let iface = hdr
        .interface()
        .map(|i| i.as_str().to_string())
        .unwrap_or_default();
    let member = hdr
        .member()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();

    match (iface.as_str(), member.as_str()) {
        (IFACE_PEER, "Ping") => return ok(&hdr, &()),
        (IFACE_PEER, "GetMachineId") => {
            let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
            return ok(&hdr, &(id.trim().to_string(),));
        }
        _ => {}
    }

    if path == MANAGER_PATH {
        return manager(engine, msg, &hdr, &iface, &member, now);
    }
    if let Some(label) = path.strip_prefix(UNIT_PATH_PREFIX) {
        let name = bus_label_unescape(label).ok_or_else(|| unknown_object(&path))?;
        // Any access loads the unit on demand, as systemd does.
        engine
            .load_unit(&name, now)
            .map_err(|_| unknown_object(&path))?;
        return unit_object(engine, msg, &hdr, &name, &iface, &member, now);
    }
    if let Some(id) = path.strip_prefix(JOB_PATH_PREFIX) {
        let id: u32 = id.parse().map_err(|_| unknown_object(&path))?;
        if engine.job(id).is_none() {
            return Err(unknown_object(&path));
        }
        return job_object(engine, msg, &hdr, id, &iface, &member, now);
    }
    if iface == IFACE_INTROSPECT && member == "Introspect" {
        let known = ["/", "/org", "/org/freedesktop"];
        if known.contains(&path.as_str())
            || path == MANAGER_PATH.to_string() + "/unit"
            || path == MANAGER_PATH.to_string() + "/job"
        {
            return ok(&hdr, &(XML_EMPTY,));
        }
    }
    Err(unknown_object(&path))
}

fn props_reply(
    hdr: &Header<'_>,
    msg: &Message,
    all: &dyn Fn(&str) -> Option<PropList>,
    member: &str,
) -> Reply {
    match member {
        "Get" => {
            let (iface, name): (String, String) = msg.body().deserialize().map_err(bad_args)?;
            let props = all(&iface).ok_or_else(|| unknown_property(&iface, &name))?;
            let v = props
                .iter()
                .find(|(k, _)| *k == name)
                .ok_or_else(|| unknown_property(&iface, &name))?;
            ok(hdr, &(to_zvalue(&v.1),))
        }
        "GetAll" => {
            let (iface,): (String,) = msg.body().deserialize().map_err(bad_args)?;
            let props = all(&iface).ok_or_else(|| {
                EngineError::new(
                    "org.freedesktop.DBus.Error.UnknownInterface",
                    format!("Unknown interface {iface}."),
                )
            })?;
            ok(hdr, &(to_dict(&props),))
        }
        "Set" => Err(EngineError::new(
            "org.freedesktop.DBus.Error.PropertyReadOnly",
            "Property is read-only.",
        )),
        _ => Err(unknown_method(member, IFACE_PROPS)),
    }
}

fn manager_props(engine: &Engine, iface: &str) -> Option<PropList> {
    if !(iface == IFACE_MANAGER || iface.is_empty()) {
        return None;
    }
    let s = |v: &str| Value::Str(v.to_string());
    Some(vec![
        ("Version".to_string(), s("252")),
        ("Features".to_string(), s("")),
        ("Virtualization".to_string(), s("")),
        ("Architecture".to_string(), s(std::env::consts::ARCH)),
        ("SystemState".to_string(), s("running")),
        (
            "NNames".to_string(),
            Value::U32(engine.units().count() as u32),
        ),
        (
            "NJobs".to_string(),
            Value::U32(engine.units().filter(|u| u.job.is_some()).count() as u32),
        ),
        ("DefaultStandardOutput".to_string(), s("inherit")),
    ])
}

fn job_ref_path(id: u32) -> OwnedObjectPath {
    object_path(&job_path(id))
}

fn manager(
    engine: &mut Engine,
    msg: &Message,
    hdr: &Header<'_>,
    iface: &str,
    member: &str,
    now: Now,
) -> Reply {
    if iface == IFACE_INTROSPECT && member == "Introspect" {
        return ok(hdr, &(XML_MANAGER,));
    }
    if iface == IFACE_PROPS {
        let e: &Engine = engine;
        return props_reply(hdr, msg, &|i| manager_props(e, i), member);
    }
    if !(iface == IFACE_MANAGER || iface.is_empty()) {
        return Err(unknown_method(member, iface));
    }
    match member {
        "Subscribe" | "Unsubscribe" => ok(hdr, &()),
        "ListUnits" => {
            let list: Vec<UnitListEntry> = engine
                .units()
                .map(|u| {
                    let job = u.job.and_then(|id| engine.job(id));
                    (
                        u.name.clone(),
                        u.description(),
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
                })
                .collect();
            ok(hdr, &(list,))
        }
        "ListUnitFiles" => ok(hdr, &(engine.source().list_files(),)),
        "GetUnitFileState" => {
            let (name,): (String,) = msg.body().deserialize().map_err(bad_args)?;
            let state = engine.source().file_state(&name).ok_or_else(|| {
                EngineError::new(
                    "org.freedesktop.DBus.Error.FileNotFound",
                    format!("Unit file {name} does not exist."),
                )
            })?;
            ok(hdr, &(state,))
        }
        "GetUnit" => {
            let (name,): (String,) = msg.body().deserialize().map_err(bad_args)?;
            if engine.unit(&name).is_none() {
                return Err(EngineError::new(
                    crate::engine::ERR_NO_SUCH_UNIT,
                    format!("Unit {name} not loaded."),
                ));
            }
            ok(hdr, &(object_path(&unit_path(&name)),))
        }
        "LoadUnit" => {
            let (name,): (String,) = msg.body().deserialize().map_err(bad_args)?;
            engine.load_unit(&name, now)?;
            ok(hdr, &(object_path(&unit_path(&name)),))
        }
        "GetJob" => {
            let (id,): (u32,) = msg.body().deserialize().map_err(bad_args)?;
            if engine.job(id).is_none() {
                return Err(EngineError::new(
                    crate::engine::ERR_NO_SUCH_JOB,
                    format!("Job {id} does not exist."),
                ));
            }
            ok(hdr, &(job_ref_path(id),))
        }
        "StartUnit" | "StopUnit" | "RestartUnit" => {
            let (name, mode): (String, String) = msg.body().deserialize().map_err(bad_args)?;
            let jt = match member {
                "StartUnit" => JobType::Start,
                "StopUnit" => JobType::Stop,
                _ => JobType::Restart,
            };
            let id = engine.enqueue(&name, jt, &mode, now)?;
            ok(hdr, &(job_ref_path(id),))
        }
        "ReloadUnit" | "TryRestartUnit" | "ReloadOrRestartUnit" | "ReloadOrTryRestartUnit" => {
            let (name, mode): (String, String) = msg.body().deserialize().map_err(bad_args)?;
            let req = request(member.trim_end_matches("Unit"));
            let id = engine.enqueue_request(&name, req, &mode, now)?;
            ok(hdr, &(job_ref_path(id),))
        }
        "ResetFailed" => {
            engine.reset_failed(None, now)?;
            ok(hdr, &())
        }
        "ResetFailedUnit" => {
            let (name,): (String,) = msg.body().deserialize().map_err(bad_args)?;
            engine.reset_failed(Some(&name), now)?;
            ok(hdr, &())
        }
        "KillUnit" => {
            let (name, whom, signal): (String, String, i32) =
                msg.body().deserialize().map_err(bad_args)?;
            engine.kill_unit(&name, &whom, signal)?;
            ok(hdr, &())
        }
        "Reload" => {
            engine.reload(now);
            ok(hdr, &())
        }
        _ => Err(unknown_method(member, iface)),
    }
}

fn unit_object(
    engine: &mut Engine,
    msg: &Message,
    hdr: &Header<'_>,
    name: &str,
    iface: &str,
    member: &str,
    now: Now,
) -> Reply {
    if iface == IFACE_INTROSPECT && member == "Introspect" {
        let xml = if name.ends_with(".service") {
            XML_SERVICE
        } else if name.ends_with(".target") {
            XML_TARGET
        } else {
            XML_EMPTY
        };
        return ok(hdr, &(xml,));
    }
    if iface == IFACE_PROPS {
        let e: &Engine = engine;
        return props_reply(hdr, msg, &|i| e.unit_properties(name, i), member);
    }
    let known = iface.is_empty()
        || iface == IFACE_UNIT
        || (iface == IFACE_SERVICE && name.ends_with(".service"))
        || (iface == IFACE_TARGET && name.ends_with(".target"));
    if !known {
        return Err(unknown_method(member, iface));
    }
    match member {
        "Start" | "Stop" | "Restart" => {
            let (mode,): (String,) = msg.body().deserialize().map_err(bad_args)?;
            let jt = match member {
                "Start" => JobType::Start,
                "Stop" => JobType::Stop,
                _ => JobType::Restart,
            };
            let id = engine.enqueue(name, jt, &mode, now)?;
            ok(hdr, &(job_ref_path(id),))
        }
        "Reload" | "TryRestart" | "ReloadOrRestart" | "ReloadOrTryRestart" => {
            let (mode,): (String,) = msg.body().deserialize().map_err(bad_args)?;
            let id = engine.enqueue_request(name, request(member), &mode, now)?;
            ok(hdr, &(job_ref_path(id),))
        }
        "ResetFailed" => {
            engine.reset_failed(Some(name), now)?;
            ok(hdr, &())
        }
        "Kill" => {
            let (whom, signal): (String, i32) = msg.body().deserialize().map_err(bad_args)?;
            engine.kill_unit(name, &whom, signal)?;
            ok(hdr, &())
        }
        _ => Err(unknown_method(member, iface)),
    }
}

/// The job request behind a method name without its `Unit` suffix.
fn request(method: &str) -> Request {
    match method {
        "Reload" => Request::Reload,
        "TryRestart" => Request::TryRestart,
        "ReloadOrRestart" => Request::ReloadOrRestart,
        _ => Request::ReloadOrTryRestart,
    }
}

fn job_object(
    engine: &mut Engine,
    msg: &Message,
    hdr: &Header<'_>,
    id: u32,
    iface: &str,
    member: &str,
    now: Now,
) -> Reply {
    if iface == IFACE_INTROSPECT && member == "Introspect" {
        return ok(hdr, &(XML_JOB,));
    }
    if iface == IFACE_PROPS {
        let e: &Engine = engine;
        let all = |i: &str| {
            if i == IFACE_JOB || i.is_empty() {
                e.job(id).map(job_props)
            } else {
                None
            }
        };
        return props_reply(hdr, msg, &all, member);
    }
    match (iface, member) {
        (IFACE_JOB | "", "Cancel") => {
            engine.cancel_job(id, now)?;
            ok(hdr, &())
        }
        _ => Err(unknown_method(member, iface)),
    }
}
