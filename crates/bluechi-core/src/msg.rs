//! Raw message plumbing shared by the daemons.
//!
//! The daemons do not use zbus' object server: they need objects that appear on demand,
//! sd-bus' exact error texts, verbatim forwarding of remote errors, and strict per-connection
//! ordering of replies and signals. Each connection's incoming messages are drained by a
//! forwarder task into the daemon's event channel, so the connection never stalls even while
//! the daemon awaits a call on it.

use std::collections::HashMap;

use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use zbus::message::{Header, Type};
use zbus::{Connection, Message, MessageStream};
use zvariant::OwnedValue;

/// `a{sv}` as used for properties.
pub type PropMap = HashMap<String, OwnedValue>;

/// Spawns a task that forwards every message of `conn` as `wrap(Some(msg))`, then
/// `wrap(None)` once the connection is closed. It stops when the receiver is gone.
pub fn spawn_forwarder<E, F>(conn: &Connection, tx: UnboundedSender<E>, wrap: F)
where
    E: Send + 'static,
    F: Fn(Option<Message>) -> E + Send + 'static,
{
    let mut stream = MessageStream::from(conn);
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            // A message that fails to parse is dropped; it cannot be answered anyway.
            if let Ok(msg) = item {
                if tx.send(wrap(Some(msg))).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(wrap(None));
    });
}

/// The routing triple of a method call or signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub kind: Type,
    pub path: String,
    pub iface: String,
    pub member: String,
}

pub fn route(msg: &Message) -> Route {
    let h = msg.header();
    Route {
        kind: msg.message_type(),
        path: h.path().map(|p| p.to_string()).unwrap_or_default(),
        iface: h.interface().map(|i| i.to_string()).unwrap_or_default(),
        member: h.member().map(|m| m.to_string()).unwrap_or_default(),
    }
}

/// Replies with an error; send failures mean the caller is gone and are ignored.
pub async fn reply_error(conn: &Connection, hdr: &Header<'_>, name: &str, text: &str) {
    if let Err(e) = conn.reply_error(hdr, name, &(text,)).await {
        tracing::debug!("failed to send error reply: {e}");
    }
}

/// Replies with a body; send failures mean the caller is gone and are ignored.
pub async fn reply<B>(conn: &Connection, hdr: &Header<'_>, body: &B)
where
    B: serde::Serialize + zvariant::DynamicType,
{
    if let Err(e) = conn.reply(hdr, body).await {
        tracing::debug!("failed to send reply: {e}");
    }
}

/// Forwards the result of a remote call to the original caller: the reply body untouched on
/// success, the error name and message verbatim on failure (systemd's errors must reach
/// bluechictl unchanged).
pub async fn forward_result(
    conn: &Connection,
    hdr: &Header<'_>,
    result: Result<Message, zbus::Error>,
) {
    match result {
        Ok(reply) => {
            let body = reply.body();
            let sig = body.signature().clone();
            let bytes: Vec<u8> = body.data().to_vec();
            let out = zbus::message::Message::method_return(hdr).and_then(|b| {
                // SAFETY of the format: `bytes` is a complete body of signature `sig`, in the
                // byte order of the reply, which we keep by copying the endianness.
                unsafe {
                    b.endian(reply.primary_header().endian_sig().into())
                        .build_raw_body(&bytes, sig, vec![])
                }
            });
            match out {
                Ok(m) => {
                    if let Err(e) = conn.send(&m).await {
                        tracing::debug!("failed to forward reply: {e}");
                    }
                }
                Err(e) => reply_error(conn, hdr, crate::names::ERR_FAILED, &e.to_string()).await,
            }
        }
        Err(e) => {
            let (name, text) = error_parts(&e);
            reply_error(conn, hdr, &name, &text).await
        }
    }
}

/// The D-Bus error name and message of a failed call, or `Failed` with a description.
pub fn error_parts(e: &zbus::Error) -> (String, String) {
    match e {
        zbus::Error::MethodError(name, text, _) => {
            (name.to_string(), text.clone().unwrap_or_default())
        }
        zbus::Error::FDO(fdo) => {
            let name = zbus::DBusError::name(fdo.as_ref()).to_string();
            let text = zbus::DBusError::description(fdo.as_ref())
                .unwrap_or_default()
                .to_string();
            (name, text)
        }
        other => (crate::names::ERR_FAILED.to_string(), other.to_string()),
    }
}

/// Reads a string property out of a property map.
pub fn prop_str(map: &PropMap, key: &str) -> Option<String> {
    map.get(key)
        .and_then(|v| <&str>::try_from(v).ok().map(str::to_string))
}
