//! The API-bus connection and the call helpers every command uses.

use bluechi_core::names::{
    CONTROLLER_BUS_NAME, CONTROLLER_IFACE, CONTROLLER_PATH, NODE_IFACE, PROPERTIES_IFACE,
};
use serde::Serialize;
use zbus::message::Message;
use zbus::zvariant::{DynamicType, OwnedValue};
use zbus::Connection;

use bluechi_core::errno;

/// A failed D-Bus call: error name and message as sent by the peer.
#[derive(Debug, Clone)]
pub struct CallError {
    pub name: String,
    pub message: String,
}

impl CallError {
    /// `strerror` of the errno sd-bus would map this error to.
    pub fn strerror(&self) -> String {
        errno::strerror_of(&self.name)
    }
}

impl From<zbus::Error> for CallError {
    fn from(e: zbus::Error) -> Self {
        let (name, message) = bluechi_core::msg::error_parts(&e);
        CallError { name, message }
    }
}

pub struct Client {
    pub conn: Connection,
}

/// Connects to the system bus; the error is `strerror` text as upstream prints it.
pub async fn connect() -> Result<Client, String> {
    // sd-bus' default method timeout, so a wedged controller does not hang plain calls.
    let builder = match zbus::connection::Builder::system() {
        Ok(b) => b.method_timeout(std::time::Duration::from_secs(25)),
        Err(e) => return Err(connect_error(&e)),
    };
    builder
        .build()
        .await
        .map(|conn| Client { conn })
        .map_err(|e| connect_error(&e))
}

fn connect_error(e: &zbus::Error) -> String {
    let code = match e {
        zbus::Error::InputOutput(io) | zbus::Error::Connection(io, _) => {
            io.raw_os_error().unwrap_or(libc::EIO)
        }
        zbus::Error::Address(_) => libc::EINVAL,
        zbus::Error::Handshake(_) => libc::EACCES,
        _ => libc::EIO,
    };
    errno::strerror(code)
}

impl Client {
    pub async fn call<B>(
        &self,
        path: &str,
        iface: &str,
        method: &str,
        body: &B,
    ) -> Result<Message, CallError>
    where
        B: Serialize + DynamicType,
    {
        Ok(self
            .conn
            .call_method(Some(CONTROLLER_BUS_NAME), path, Some(iface), method, body)
            .await?)
    }

    /// Calls `org.eclipse.bluechi.Node.<method>` on the node's (locally computed) path.
    pub async fn node_call<B>(
        &self,
        node: &str,
        method: &str,
        body: &B,
    ) -> Result<Message, CallError>
    where
        B: Serialize + DynamicType,
    {
        let path = bluechi_core::names::node_path(node);
        self.call(&path, NODE_IFACE, method, body).await
    }

    pub async fn controller_call<B>(&self, method: &str, body: &B) -> Result<Message, CallError>
    where
        B: Serialize + DynamicType,
    {
        self.call(CONTROLLER_PATH, CONTROLLER_IFACE, method, body)
            .await
    }

    /// Reads one property of an object of the controller.
    pub async fn property(
        &self,
        path: &str,
        iface: &str,
        name: &str,
    ) -> Result<OwnedValue, CallError> {
        let reply = self
            .call(path, PROPERTIES_IFACE, "Get", &(iface, name))
            .await?;
        let value: OwnedValue = reply.body().deserialize().map_err(CallError::from)?;
        Ok(value)
    }
}

/// Deserializes a reply body, turning a signature mismatch into a call error.
pub fn body<T>(msg: &Message) -> Result<T, CallError>
where
    T: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
{
    msg.body().deserialize::<T>().map_err(CallError::from)
}
