//! org.freedesktop.DBus.Properties for every object, driven by the contract XML: each property
//! the XML lists is served with the XML's type; what the engine does not model gets a neutral
//! default (0, "", empty array) so `systemctl show` prints every line as with real systemd.

use super::schema::{own, Interface};
use crate::engine::{EngineError, Value};
use crate::io::convert::to_zvalue;
use std::collections::HashMap;
use zvariant::{Array, Dict, OwnedValue, Signature, StructureBuilder};

pub const ERR_UNKNOWN_PROPERTY: &str = "org.freedesktop.DBus.Error.UnknownProperty";
pub const ERR_UNKNOWN_INTERFACE: &str = "org.freedesktop.DBus.Error.UnknownInterface";
pub const ERR_READ_ONLY: &str = "org.freedesktop.DBus.Error.PropertyReadOnly";

/// The value D-Bus clients get for a property nobody models.
pub fn default_value(sig: &Signature) -> zvariant::Value<'static> {
    use zvariant::Value as V;
    match sig {
        Signature::U8 => V::U8(0),
        Signature::Bool => V::Bool(false),
        Signature::I16 => V::I16(0),
        Signature::U16 => V::U16(0),
        Signature::I32 => V::I32(0),
        Signature::U32 => V::U32(0),
        Signature::I64 => V::I64(0),
        Signature::U64 => V::U64(0),
        Signature::F64 => V::F64(0.0),
        Signature::ObjectPath => {
            V::ObjectPath(zvariant::ObjectPath::from_static_str_unchecked("/"))
        }
        Signature::Signature => V::Signature(Signature::Unit),
        Signature::Variant => V::Value(Box::new(V::new(""))),
        Signature::Array(child) => V::Array(Array::new(child)),
        Signature::Dict { key, value } => V::Dict(Dict::new(key, value)),
        Signature::Structure(fields) => {
            let b = fields.iter().fold(StructureBuilder::new(), |b, f| {
                b.append_field(default_value(f))
            });
            b.build().map(V::Structure).unwrap_or_else(|_| V::new(""))
        }
        _ => V::new(""),
    }
}

/// The value of `name` typed as the contract says: the provided one if its type matches,
/// otherwise the default.
fn typed(sig: &str, provided: Option<&Value>) -> zvariant::Value<'static> {
    let Ok(sig) = Signature::try_from(sig) else {
        return zvariant::Value::new("");
    };
    if let Some(v) = provided {
        let z = to_zvalue(v);
        if z.value_signature() == &sig {
            return z;
        }
        tracing::debug!("property value {v:?} does not have the contract type {sig}");
    }
    default_value(&sig)
}

fn owned(v: zvariant::Value<'static>) -> Option<OwnedValue> {
    OwnedValue::try_from(v).ok()
}

/// All properties of one interface, typed per the contract.
pub fn all_of(iface: &Interface, provided: &[(String, Value)]) -> HashMap<String, OwnedValue> {
    let by_name: HashMap<&str, &Value> = provided.iter().map(|(k, v)| (k.as_str(), v)).collect();
    iface
        .properties
        .iter()
        .filter_map(|p| {
            owned(typed(&p.signature, by_name.get(p.name.as_str()).copied()))
                .map(|v| (p.name.clone(), v))
        })
        .collect()
}

/// `Get`: `ifaces` are the object's interfaces, `provided(iface)` what we model for one.
pub fn get(
    ifaces: &[Interface],
    provided: &dyn Fn(&str) -> Vec<(String, Value)>,
    iface: &str,
    name: &str,
) -> Result<OwnedValue, EngineError> {
    let unknown = || {
        EngineError::new(
            ERR_UNKNOWN_PROPERTY,
            format!("Unknown interface {iface} or property {name}."),
        )
    };
    let i = own(ifaces).find(|i| i.name == iface).ok_or_else(unknown)?;
    let p = i
        .properties
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(unknown)?;
    let values = provided(iface);
    let v = values.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    owned(typed(&p.signature, v)).ok_or_else(unknown)
}

/// `GetAll`: `""` merges every interface of the object.
pub fn get_all(
    ifaces: &[Interface],
    provided: &dyn Fn(&str) -> Vec<(String, Value)>,
    iface: &str,
) -> Result<HashMap<String, OwnedValue>, EngineError> {
    if iface.is_empty() {
        let mut all = HashMap::new();
        for i in own(ifaces) {
            all.extend(all_of(i, &provided(&i.name)));
        }
        return Ok(all);
    }
    match ifaces.iter().find(|i| i.name == iface) {
        Some(i) => Ok(all_of(i, &provided(iface))),
        None => Err(EngineError::new(
            ERR_UNKNOWN_INTERFACE,
            format!("Unknown interface '{iface}'."),
        )),
    }
}

/// `Set`: nothing is writable here; the error depends on whether the property exists.
pub fn set(ifaces: &[Interface], iface: &str, name: &str) -> EngineError {
    let exists = own(ifaces)
        .filter(|i| i.name == iface)
        .any(|i| i.properties.iter().any(|p| p.name == name));
    if exists {
        EngineError::new(ERR_READ_ONLY, format!("Property '{name}' is not writable."))
    } else {
        EngineError::new(
            ERR_UNKNOWN_PROPERTY,
            format!("Unknown interface {iface} or property {name}."),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_the_requested_type() {
        for s in [
            "s",
            "t",
            "b",
            "(uo)",
            "a(sasbttttuii)",
            "a{sv}",
            "ay",
            "o",
            "(ss)",
            "v",
        ] {
            let sig = Signature::try_from(s).expect("valid signature");
            assert_eq!(default_value(&sig).value_signature(), &sig, "{s}");
        }
    }

    #[test]
    fn mistyped_value_falls_back_to_default() {
        let v = typed("u", Some(&Value::Str("x".into())));
        assert_eq!(v, zvariant::Value::U32(0));
        let v = typed("s", Some(&Value::Str("x".into())));
        assert_eq!(v, zvariant::Value::new("x"));
    }
}
