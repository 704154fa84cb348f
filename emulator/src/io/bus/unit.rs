//! Unit object methods beyond start/stop, and runtime property changes (SetProperties).

use super::manager::{enqueue_reply, loaded, processes};
use super::state::Daemon;
use super::{bad_args, ok, Reply};
use crate::engine::{Engine, EngineError, Now, Value, ERR_NO_SUCH_UNIT};
use zbus::message::{Header, Message};
use zvariant::OwnedValue;

const ERR_READ_ONLY: &str = "org.freedesktop.DBus.Error.PropertyReadOnly";

/// `SetUnitProperties`/`Unit.SetProperties`: only Description is modelled; anything else is
/// refused with systemd's message for unknown properties.
pub fn set_properties(
    engine: &mut Engine,
    d: &mut Daemon,
    name: &str,
    _runtime: bool,
    props: &[(String, OwnedValue)],
    now: Now,
) -> Result<(), EngineError> {
    let u = engine.load_unit(name, now)?;
    if u.load_state == "not-found" {
        return Err(EngineError::new(
            ERR_NO_SUCH_UNIT,
            format!("Unit {name} not found."),
        ));
    }
    let mut staged = Vec::new();
    for (key, v) in props {
        match (key.as_str(), &**v) {
            ("Description", zvariant::Value::Str(s)) => {
                staged.push((key.clone(), Value::Str(s.to_string())))
            }
            _ => {
                return Err(EngineError::new(
                    ERR_READ_ONLY,
                    format!("Cannot set property {key}, or unknown property."),
                ))
            }
        }
    }
    let entry = d.overrides.entry(name.to_string()).or_default();
    for (k, v) in staged {
        entry.insert(k, v);
    }
    Ok(())
}

/// Unit methods not handled in `bus::unit_object`; `None` if we do not know `member`.
pub fn call(
    engine: &mut Engine,
    d: &mut Daemon,
    msg: &Message,
    hdr: &Header<'_>,
    name: &str,
    member: &str,
    now: Now,
) -> Option<Reply> {
    let body = msg.body();
    Some(match member {
        "EnqueueJob" => (|| {
            let (jt, mode): (String, String) = body.deserialize().map_err(bad_args)?;
            enqueue_reply(engine, hdr, name, &jt, &mode, now)
        })(),
        "SetProperties" => (|| {
            let (runtime, props): (bool, Vec<(String, OwnedValue)>) =
                body.deserialize().map_err(bad_args)?;
            set_properties(engine, d, name, runtime, &props, now)?;
            ok(hdr, &())
        })(),
        "Ref" | "Unref" => ok(hdr, &()),
        "Freeze" => engine.freeze_unit(name, now).and_then(|()| ok(hdr, &())),
        "Thaw" => engine.thaw_unit(name, now).and_then(|()| ok(hdr, &())),
        "GetProcesses" => (|| ok(hdr, &(processes(loaded(engine, name)?),)))(),
        _ => return None,
    })
}
