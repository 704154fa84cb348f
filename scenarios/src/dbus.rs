//! The few D-Bus calls the runner makes: unit properties from a node's systemd, name ownership,
//! and the controller's node list.

use zbus::Connection;
use zvariant::{OwnedObjectPath, OwnedValue, Value};

pub const SYSTEMD: &str = "org.freedesktop.systemd1";
pub const BLUECHI: &str = "org.eclipse.bluechi";

pub async fn connect(address: &str) -> zbus::Result<Connection> {
    zbus::connection::Builder::address(address)?.build().await
}

/// Unit object paths, escaped as systemd does (the shared test kit's).
pub use bluechi_testkit::escape::{escape_unit_name, unit_path};

/// The text a property value is compared as: strings as-is, numbers in decimal, booleans yes/no.
pub fn display_value(value: &Value<'_>) -> String {
    match value {
        Value::Value(inner) => display_value(inner),
        Value::Str(s) => s.to_string(),
        Value::ObjectPath(p) => p.to_string(),
        Value::Signature(s) => s.to_string(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        Value::U8(n) => n.to_string(),
        Value::I16(n) => n.to_string(),
        Value::U16(n) => n.to_string(),
        Value::I32(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F64(n) => n.to_string(),
        Value::Array(a) => a.iter().map(display_value).collect::<Vec<_>>().join(" "),
        other => format!("{other:?}"),
    }
}

async fn get_property(
    conn: &Connection,
    path: &str,
    interface: &str,
    property: &str,
) -> zbus::Result<String> {
    let reply = conn
        .call_method(
            Some(SYSTEMD),
            path,
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &(interface, property),
        )
        .await?;
    let value: OwnedValue = reply.body().deserialize()?;
    Ok(display_value(&value))
}

/// Reads a unit property, trying the Unit interface first and then Service, since a scenario
/// author should not need to know which interface holds e.g. `MainPID`.
pub async fn unit_property(
    conn: &Connection,
    unit: &str,
    property: &str,
) -> Result<String, String> {
    let path = unit_path(unit);
    match get_property(conn, &path, "org.freedesktop.systemd1.Unit", property).await {
        Ok(v) => Ok(v),
        Err(unit_err) => {
            get_property(conn, &path, "org.freedesktop.systemd1.Service", property)
                .await
                .map_err(|service_err| {
                    format!("cannot read {property} of {unit}: Unit interface: {unit_err}; Service interface: {service_err}")
                })
        }
    }
}

pub async fn name_has_owner(conn: &Connection, name: &str) -> zbus::Result<bool> {
    let reply = conn
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "NameHasOwner",
            &(name,),
        )
        .await?;
    reply.body().deserialize()
}

/// `(name, status)` of every node the controller knows.
pub async fn list_nodes(conn: &Connection) -> zbus::Result<Vec<(String, String)>> {
    let reply = conn
        .call_method(
            Some(BLUECHI),
            "/org/eclipse/bluechi",
            Some("org.eclipse.bluechi.Controller"),
            "ListNodes",
            &(),
        )
        .await?;
    let nodes: Vec<(String, OwnedObjectPath, String, String)> = reply.body().deserialize()?;
    Ok(nodes.into_iter().map(|(n, _, s, _)| (n, s)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_display_as_text() {
        assert_eq!(display_value(&Value::from(true)), "yes");
        assert_eq!(display_value(&Value::from(false)), "no");
        assert_eq!(display_value(&Value::from(42u32)), "42");
        assert_eq!(display_value(&Value::from(-3i32)), "-3");
        assert_eq!(display_value(&Value::from("active")), "active");
        assert_eq!(
            display_value(&Value::Value(Box::new(Value::from(7u64)))),
            "7"
        );
    }
}
