//! org.freedesktop.DBus.Properties for every object, driven by the contract XML: each property
//! the XML lists is served with the XML's type; what the engine does not model gets a neutral
//! default (0, "", empty array) so `systemctl show` prints every line as with real systemd.

use super::schema::{own, Interface};
use crate::engine::{EngineError, Value};
use crate::io::convert::to_zvalue;
use std::collections::HashMap;
use std::sync::OnceLock;
use zvariant::{Array, Dict, OwnedValue, Signature, StructureBuilder};

/// What systemd 252 reports for properties we do not model (see the file's header).
const DEFAULTS_TSV: &str = include_str!("../../../introspection/defaults.tsv");

/// (interface, property) → recorded value; lines that do not parse are skipped (a unit test
/// checks that none are).
fn recorded() -> &'static HashMap<(String, String), zvariant::Value<'static>> {
    static R: OnceLock<HashMap<(String, String), zvariant::Value<'static>>> = OnceLock::new();
    R.get_or_init(|| {
        DEFAULTS_TSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(parse_recorded)
            .collect()
    })
}

fn parse_recorded(line: &str) -> Option<((String, String), zvariant::Value<'static>)> {
    use zvariant::Value as V;
    let mut f = line.split('\t');
    let (iface, name, sig, val) = (f.next()?, f.next()?, f.next()?, f.next()?);
    let v = match sig {
        "b" => V::Bool(val.parse().ok()?),
        "y" => V::U8(val.parse().ok()?),
        "n" => V::I16(val.parse().ok()?),
        "q" => V::U16(val.parse().ok()?),
        "i" => V::I32(val.parse().ok()?),
        "u" => V::U32(val.parse().ok()?),
        "x" => V::I64(val.parse().ok()?),
        "t" => V::U64(val.parse().ok()?),
        "d" => V::F64(val.parse().ok()?),
        "s" => V::new(val.to_string()),
        _ => return None,
    };
    Some(((iface.to_string(), name.to_string()), v))
}

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
/// otherwise what systemd reported for it, otherwise the zero value.
fn typed(iface: &str, name: &str, sig: &str, provided: Option<&Value>) -> zvariant::Value<'static> {
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
    if let Some(r) = recorded().get(&(iface.to_string(), name.to_string())) {
        if r.value_signature() == &sig {
            if let Ok(v) = r.try_clone() {
                return v;
            }
        }
    }
    default_value(&sig)
}

fn owned(v: zvariant::Value<'static>) -> Option<OwnedValue> {
    OwnedValue::try_from(v).ok()
}

/// An `a{sv}` that keeps the contract's order, as systemd's GetAll does (systemctl show -p
/// prints in reply order).
#[derive(Debug, Default)]
pub struct Ordered(pub Vec<(String, OwnedValue)>);

impl serde::Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl zvariant::Type for Ordered {
    const SIGNATURE: &'static Signature =
        <HashMap<String, OwnedValue> as zvariant::Type>::SIGNATURE;
}

/// All properties of one interface, typed per the contract, in the contract's order.
pub fn all_of(iface: &Interface, provided: &[(String, Value)]) -> Vec<(String, OwnedValue)> {
    let by_name: HashMap<&str, &Value> = provided.iter().map(|(k, v)| (k.as_str(), v)).collect();
    iface
        .properties
        .iter()
        .filter_map(|p| {
            owned(typed(
                &iface.name,
                &p.name,
                &p.signature,
                by_name.get(p.name.as_str()).copied(),
            ))
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
    owned(typed(iface, name, &p.signature, v)).ok_or_else(unknown)
}

/// `GetAll`: `""` merges every interface of the object.
pub fn get_all(
    ifaces: &[Interface],
    provided: &dyn Fn(&str) -> Vec<(String, Value)>,
    iface: &str,
) -> Result<Ordered, EngineError> {
    if iface.is_empty() {
        let mut all = Vec::new();
        for i in own(ifaces) {
            all.extend(all_of(i, &provided(&i.name)));
        }
        return Ok(Ordered(all));
    }
    match ifaces.iter().find(|i| i.name == iface) {
        Some(i) => Ok(Ordered(all_of(i, &provided(iface)))),
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
        let v = typed("i", "p", "u", Some(&Value::Str("x".into())));
        assert_eq!(v, zvariant::Value::U32(0));
        let v = typed("i", "p", "s", Some(&Value::Str("x".into())));
        assert_eq!(v, zvariant::Value::new("x"));
    }

    #[test]
    fn recorded_defaults_parse_and_match_the_contract() {
        let lines = DEFAULTS_TSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty());
        let s = super::super::schema::schemas();
        for l in lines {
            let ((iface, name), v) = parse_recorded(l).unwrap_or_else(|| panic!("bad line {l:?}"));
            let ifaces = if iface.ends_with(".Manager") {
                &s.manager
            } else {
                &s.service
            };
            let p = super::super::schema::find(ifaces, &iface)
                .and_then(|i| i.properties.iter().find(|p| p.name == name))
                .unwrap_or_else(|| panic!("{iface}.{name} is not in the contract"));
            assert_eq!(
                v.value_signature().to_string(),
                p.signature,
                "{iface}.{name}"
            );
        }
        let v = typed(
            "org.freedesktop.systemd1.Service",
            "MemoryCurrent",
            "t",
            None,
        );
        assert_eq!(v, zvariant::Value::U64(u64::MAX));
    }
}
