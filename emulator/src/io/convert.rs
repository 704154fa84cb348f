//! Engine values to zvariant values.

use crate::engine::Value;
use std::collections::HashMap;
use zvariant::{ObjectPath, OwnedValue};

fn path(p: &str) -> ObjectPath<'static> {
    ObjectPath::try_from(p.to_string())
        .unwrap_or_else(|_| ObjectPath::from_static_str_unchecked("/"))
}

pub fn to_zvalue(v: &Value) -> zvariant::Value<'static> {
    match v {
        Value::Str(s) => zvariant::Value::new(s.clone()),
        Value::Bool(b) => zvariant::Value::new(*b),
        Value::U32(n) => zvariant::Value::new(*n),
        Value::I32(n) => zvariant::Value::new(*n),
        Value::U64(n) => zvariant::Value::new(*n),
        Value::StrList(l) => zvariant::Value::new(l.clone()),
        Value::Bytes(b) => zvariant::Value::new(b.clone()),
        Value::JobRef(id, p) => zvariant::Value::new((*id, path(p))),
        Value::UnitRef(n, p) => zvariant::Value::new((n.clone(), path(p))),
        Value::StrPair(a, b) => zvariant::Value::new((a.clone(), b.clone())),
    }
}

pub fn to_dict(props: &[(String, Value)]) -> HashMap<String, OwnedValue> {
    props
        .iter()
        .filter_map(|(k, v)| {
            OwnedValue::try_from(to_zvalue(v))
                .ok()
                .map(|ov| (k.clone(), ov))
        })
        .collect()
}

pub fn object_path(p: &str) -> zvariant::OwnedObjectPath {
    path(p).into()
}
