//! D-Bus method dispatch by (path, interface, member), without zbus' ObjectServer, because
//! unit objects appear on demand.

mod manager;
pub mod props;
pub mod schema;
pub mod state;
mod transient;
mod unit;
pub mod unsupported;

use super::convert::object_path;
use crate::engine::props::{job_props, IFACE_JOB, IFACE_SERVICE, IFACE_TARGET, IFACE_UNIT};
use crate::engine::{Engine, EngineError, JobType, Now, Request, Value, ERR_INVALID_ARGS};
use crate::names::{bus_label_unescape, job_path, unit_path, JOB_PATH_PREFIX, UNIT_PATH_PREFIX};
use schema::{schemas, Interface, XML_JOB, XML_MANAGER, XML_SERVICE, XML_TARGET};
use serde::Serialize;
pub use state::{Daemon, OutSignal};
use zbus::message::{Header, Message};
use zvariant::{DynamicType, OwnedObjectPath};

pub const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
pub const IFACE_MANAGER: &str = "org.freedesktop.systemd1.Manager";
const IFACE_PROPS: &str = "org.freedesktop.DBus.Properties";
const IFACE_PEER: &str = "org.freedesktop.DBus.Peer";
const IFACE_INTROSPECT: &str = "org.freedesktop.DBus.Introspectable";

const XML_EMPTY: &str =
    "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n\
\"https://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n</node>\n";

type Reply = Result<Message, EngineError>;
type PropList = Vec<(String, Value)>;
/// One `ListUnits` entry: `(ssssssouso)`.
type UnitListEntry = bluechi_core::msg::ListedUnit;

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

/// UnknownMethod, or NotSupported with the reason for a contract method we leave out.
fn unknown_or_unsupported(member: &str, iface: &str, default_iface: &str) -> EngineError {
    let i = if iface.is_empty() {
        default_iface
    } else {
        iface
    };
    unsupported::error(i, member).unwrap_or_else(|| unknown_method(member, i))
}

/// Builds the error reply for `e`.
pub fn error_reply(hdr: &Header<'_>, e: &EngineError) -> zbus::Result<Message> {
    Message::error(hdr, e.name)?.build(&(e.message.as_str(),))
}

/// Handles one method call; the engine may queue actions that the caller runs after replying.
pub fn dispatch(engine: &mut Engine, d: &mut Daemon, msg: &Message, now: Now) -> Reply {
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
        return manager(engine, d, msg, &hdr, &iface, &member, now);
    }
    if let Some(label) = path.strip_prefix(UNIT_PATH_PREFIX) {
        let name = bus_label_unescape(label).ok_or_else(|| unknown_object(&path))?;
        // Any access loads the unit on demand, as systemd does.
        engine.load_unit(&name, now).map_err(|_| {
            EngineError::new(
                ERR_INVALID_ARGS,
                format!("Unit name {name} is neither a valid invocation ID nor unit name."),
            )
        })?;
        return unit_object(engine, d, msg, &hdr, &name, &iface, &member, now);
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

/// Properties.Get/GetAll/Set on an object with the contract interfaces `ifaces`; `provided`
/// gives what we model for one interface.
fn props_reply(
    hdr: &Header<'_>,
    msg: &Message,
    ifaces: &[Interface],
    provided: &dyn Fn(&str) -> PropList,
    member: &str,
) -> Reply {
    match member {
        "Get" => {
            let (iface, name): (String, String) = msg.body().deserialize().map_err(bad_args)?;
            ok(hdr, &(props::get(ifaces, provided, &iface, &name)?,))
        }
        "GetAll" => {
            let (iface,): (String,) = msg.body().deserialize().map_err(bad_args)?;
            ok(hdr, &(props::get_all(ifaces, provided, &iface)?,))
        }
        "Set" => {
            let (iface, name, _): (String, String, zvariant::OwnedValue) =
                msg.body().deserialize().map_err(bad_args)?;
            Err(props::set(ifaces, &iface, &name))
        }
        _ => Err(unknown_method(member, IFACE_PROPS)),
    }
}

/// What we model of a unit's properties on `iface`, with runtime overrides applied.
fn unit_provided(engine: &Engine, d: &Daemon, name: &str, iface: &str) -> PropList {
    let mut props = engine.unit_properties(name, iface).unwrap_or_default();
    if iface == IFACE_UNIT {
        let transient = d.transient.contains(name);
        props.retain(|(k, _)| k != "Transient" && !(transient && k == "UnitFileState"));
        props.push(("Transient".to_string(), Value::Bool(transient)));
        if transient {
            props.push((
                "UnitFileState".to_string(),
                Value::Str("transient".to_string()),
            ));
        }
        if let Some(o) = d.overrides.get(name) {
            props.retain(|(k, _)| !o.contains_key(k));
            props.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    props
}

fn unit_ifaces(name: &str) -> &'static [Interface] {
    let s = schemas();
    if name.ends_with(".service") {
        &s.service
    } else if name.ends_with(".target") {
        &s.target
    } else {
        &s.other
    }
}

fn job_ref_path(id: u32) -> OwnedObjectPath {
    object_path(&job_path(id))
}

fn manager(
    engine: &mut Engine,
    d: &mut Daemon,
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
        let (e, dd): (&Engine, &Daemon) = (engine, d);
        let provided = |i: &str| {
            if i == IFACE_MANAGER {
                manager::properties(e, dd)
            } else {
                Vec::new()
            }
        };
        return props_reply(hdr, msg, &schemas().manager, &provided, member);
    }
    if !(iface == IFACE_MANAGER || iface.is_empty()) {
        return Err(unknown_method(member, iface));
    }
    match member {
        "Subscribe" | "Unsubscribe" => {
            let sender = hdr.sender().map(|s| s.to_string());
            d.subscribe(sender.as_deref(), member == "Subscribe")?;
            ok(hdr, &())
        }
        "ListUnits" => {
            let list: Vec<UnitListEntry> = engine
                .units()
                .map(|u| manager::list_entry(engine, d, u))
                .collect();
            ok(hdr, &(list,))
        }
        "ListUnitFiles" => ok(hdr, &(engine.source().list_files(),)),
        "GetUnitFileState" => {
            let (name,): (String,) = msg.body().deserialize().map_err(bad_args)?;
            let state = engine.source().file_state(&name).ok_or_else(|| {
                EngineError::new(
                    "org.freedesktop.DBus.Error.FileNotFound",
                    "No such file or directory",
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
            d.pre.push(OutSignal::Reloading(true));
            engine.reload(now);
            d.post.push(OutSignal::Reloading(false));
            ok(hdr, &())
        }
        _ => manager::call(engine, d, msg, hdr, member, now)
            .unwrap_or_else(|| Err(unknown_or_unsupported(member, iface, IFACE_MANAGER))),
    }
}

#[allow(clippy::too_many_arguments)]
fn unit_object(
    engine: &mut Engine,
    d: &mut Daemon,
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
        let (e, dd): (&Engine, &Daemon) = (engine, d);
        let provided = |i: &str| unit_provided(e, dd, name, i);
        return props_reply(hdr, msg, unit_ifaces(name), &provided, member);
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
        _ => unit::call(engine, d, msg, hdr, name, member, now)
            .unwrap_or_else(|| Err(unknown_or_unsupported(member, iface, IFACE_UNIT))),
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
        let provided = |i: &str| {
            if i == IFACE_JOB {
                e.job(id).map(job_props).unwrap_or_default()
            } else {
                Vec::new()
            }
        };
        return props_reply(hdr, msg, &schemas().job, &provided, member);
    }
    match (iface, member) {
        (IFACE_JOB | "", "Cancel") => {
            engine.cancel_job(id, now)?;
            ok(hdr, &())
        }
        // Job ordering is not tracked per job; no job is reported as waiting on another.
        (IFACE_JOB | "", "GetAfter" | "GetBefore") => {
            ok(hdr, &(Vec::<manager::JobListEntry>::new(),))
        }
        _ => Err(unknown_method(member, iface)),
    }
}
