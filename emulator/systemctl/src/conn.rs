//! The connection to the service manager and typed calls on it.

use bluechi_core::sd_private::{self, PRIVATE_SOCKET};
use std::collections::HashMap;
use zbus::Connection;
use zvariant::OwnedValue;

pub const DEST: &str = "org.freedesktop.systemd1";
pub const MANAGER: &str = "/org/freedesktop/systemd1";
pub const IFACE_MANAGER: &str = "org.freedesktop.systemd1.Manager";
const DEFAULT_SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";

/// One `ListUnits` entry: name, description, load, active and sub state, followed unit, object
/// path, job id, job type, job path.
pub use bluechi_core::msg::ListedUnit;

/// A failed call: the D-Bus error name (empty for transport errors) and its message.
#[derive(Debug, Clone)]
pub struct CallError {
    pub name: String,
    pub message: String,
}

impl CallError {
    fn from_zbus(e: zbus::Error) -> Self {
        match e {
            zbus::Error::MethodError(name, msg, _) => CallError {
                name: name.to_string(),
                message: msg.unwrap_or_default(),
            },
            other => CallError {
                name: String::new(),
                message: other.to_string(),
            },
        }
    }

    /// What systemctl prints for this error: errno-like errors read as strerror does.
    pub fn text(&self) -> String {
        match self.name.as_str() {
            "org.freedesktop.DBus.Error.FileNotFound" => "No such file or directory".to_string(),
            // sd-bus replaces the bus daemon's verbose denial with this.
            "org.freedesktop.DBus.Error.AccessDenied" => "Access denied".to_string(),
            _ if self.message.is_empty() => self.name.clone(),
            _ => self.message.clone(),
        }
    }
}

/// `a{sv}` in the order the server sent it: `systemctl show` prints properties in that order.
#[derive(Debug, Default)]
pub struct Props(pub Vec<(String, OwnedValue)>);

impl Props {
    pub fn get(&self, name: &str) -> Option<&OwnedValue> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn str(&self, name: &str) -> String {
        match self.get(name).map(|v| &**v) {
            Some(zvariant::Value::Str(s)) => s.to_string(),
            _ => String::new(),
        }
    }

    pub fn u64(&self, name: &str) -> u64 {
        match self.get(name).map(|v| &**v) {
            Some(zvariant::Value::U64(n)) => *n,
            Some(zvariant::Value::U32(n)) => u64::from(*n),
            _ => 0,
        }
    }

    pub fn i32(&self, name: &str) -> i32 {
        match self.get(name).map(|v| &**v) {
            Some(zvariant::Value::I32(n)) => *n,
            _ => 0,
        }
    }
}

impl zvariant::Type for Props {
    const SIGNATURE: &'static zvariant::Signature =
        <HashMap<String, OwnedValue> as zvariant::Type>::SIGNATURE;
}

impl<'de> serde::Deserialize<'de> for Props {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Props;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a{sv}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Props, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = a.next_entry::<String, OwnedValue>()? {
                    out.push(kv);
                }
                Ok(Props(out))
            }
        }
        d.deserialize_map(V)
    }
}

pub struct Manager {
    pub conn: Connection,
}

/// Connects as systemctl does: root prefers systemd's private socket, everyone else (and root
/// when it is missing or refuses us) uses the system bus.
pub async fn connect() -> Result<Manager, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root && std::path::Path::new(PRIVATE_SOCKET).exists() {
        if let Ok(conn) = sd_private::connect(PRIVATE_SOCKET).await {
            return Ok(Manager { conn });
        }
    }
    let addr = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| DEFAULT_SYSTEM_BUS.to_string());
    let conn = async {
        zbus::connection::Builder::address(addr.as_str())?
            .build()
            .await
    }
    .await
    .map_err(|e| format!("Failed to connect to bus: {}", errno_text(&e.to_string())))?;
    Ok(Manager { conn })
}

impl Manager {
    pub async fn call<B, R>(
        &self,
        path: &str,
        iface: &str,
        method: &str,
        body: &B,
    ) -> Result<R, CallError>
    where
        B: serde::Serialize + zvariant::DynamicType,
        R: for<'d> serde::Deserialize<'d> + zvariant::Type,
    {
        let reply = self
            .conn
            .call_method(Some(DEST), path, Some(iface), method, body)
            .await
            .map_err(CallError::from_zbus)?;
        reply.body().deserialize::<R>().map_err(|e| CallError {
            name: String::new(),
            message: format!("Bad reply to {method}: {e}"),
        })
    }

    pub async fn manager<B, R>(&self, method: &str, body: &B) -> Result<R, CallError>
    where
        B: serde::Serialize + zvariant::DynamicType,
        R: for<'d> serde::Deserialize<'d> + zvariant::Type,
    {
        self.call(MANAGER, IFACE_MANAGER, method, body).await
    }

    /// All properties of a unit, from every interface it has.
    pub async fn unit_props(&self, name: &str) -> Result<Props, CallError> {
        let path = unit_path(name);
        self.call(
            path.as_str(),
            "org.freedesktop.DBus.Properties",
            "GetAll",
            &("",),
        )
        .await
    }
}

/// The strerror part of an IO error's text ("...: No such file or directory (os error 2)"),
/// which is all systemctl prints.
fn errno_text(text: &str) -> &str {
    let last = text.rsplit(": ").next().unwrap_or(text);
    match last.rfind(" (os error ") {
        Some(i) => &last[..i],
        None => last,
    }
}

/// systemd's object path for a unit: bus-label escaping of the name.
pub fn unit_path(name: &str) -> String {
    let mut out = String::from("/org/freedesktop/systemd1/unit/");
    if name.is_empty() {
        out.push('_');
        return out;
    }
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn errno_text_is_the_strerror_part() {
        assert_eq!(
            super::errno_text("Failed to connect to `x`: No such file or directory (os error 2)"),
            "No such file or directory"
        );
        assert_eq!(super::errno_text("plain"), "plain");
    }

    #[test]
    fn unit_path_escapes_like_systemd() {
        assert_eq!(
            super::unit_path("t-tmpl@a.service"),
            "/org/freedesktop/systemd1/unit/t_2dtmpl_40a_2eservice"
        );
        assert_eq!(
            super::unit_path("1x.service"),
            "/org/freedesktop/systemd1/unit/_31x_2eservice"
        );
    }
}
