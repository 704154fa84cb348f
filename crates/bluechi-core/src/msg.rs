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

/// One element of systemd's `ListUnits` (`(ssssssouso)`): name, description, load state,
/// active state, sub state, following, unit path, job id, job type, job path. The agent,
/// the controller's fleet reply and bluechictl all carry it unchanged.
pub type ListedUnit = (
    String,
    String,
    String,
    String,
    String,
    String,
    zvariant::OwnedObjectPath,
    u32,
    String,
    zvariant::OwnedObjectPath,
);

/// How many messages of one peer link may wait in a daemon's event queue. Past that the
/// forwarder stops reading the link, so a peer sending faster than the daemon handles is held
/// back by its own socket (zbus' queue, then the kernel's buffers, then TCP flow control)
/// instead of growing the daemon's memory.
pub const INBOUND_CREDITS: usize = 64;

/// A message on its way to a daemon's event loop. From a peer link it holds one of the link's
/// [`INBOUND_CREDITS`] until the loop takes it out.
#[derive(Debug)]
pub struct Inbound {
    msg: Message,
    _credit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Inbound {
    /// The message; its connection may queue another in its place.
    pub fn into_message(self) -> Message {
        self.msg
    }
}

/// Spawns a task that forwards every message of `conn`, a bus or systemd connection, as
/// `wrap(Some(msg))`, then `wrap(None)` once the connection is closed. It stops when the
/// receiver is gone. Unbounded on purpose: the daemons await replies on these connections
/// while starting up (`RequestName`, systemd's `ListUnits` after `Subscribe`), and a forwarder
/// that stopped reading would keep those replies unread; the bus daemon and systemd are
/// trusted to pace what they send.
pub fn spawn_forwarder<E, F>(conn: &Connection, tx: UnboundedSender<E>, wrap: F)
where
    E: Send + 'static,
    F: Fn(Option<Inbound>) -> E + Send + 'static,
{
    forward(MessageStream::from(conn), tx, wrap, None)
}

/// Like [`spawn_forwarder`] for a peer link's stream (created together with its connection),
/// bounded by [`INBOUND_CREDITS`]. Nothing may await a reply on such a link.
pub fn spawn_peer_forwarder<E, F>(stream: MessageStream, tx: UnboundedSender<E>, wrap: F)
where
    E: Send + 'static,
    F: Fn(Option<Inbound>) -> E + Send + 'static,
{
    let credits = std::sync::Arc::new(tokio::sync::Semaphore::new(INBOUND_CREDITS));
    forward(stream, tx, wrap, Some(credits))
}

fn forward<E, F>(
    mut stream: MessageStream,
    tx: UnboundedSender<E>,
    wrap: F,
    credits: Option<std::sync::Arc<tokio::sync::Semaphore>>,
) where
    E: Send + 'static,
    F: Fn(Option<Inbound>) -> E + Send + 'static,
{
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            // A message that fails to parse is dropped; it cannot be answered anyway.
            let Ok(msg) = item else { continue };
            let credit = match &credits {
                Some(c) => match c.clone().acquire_owned().await {
                    Ok(permit) => Some(permit),
                    Err(_) => return,
                },
                None => None,
            };
            let inbound = Inbound {
                msg,
                _credit: credit,
            };
            if tx.send(wrap(Some(inbound))).is_err() {
                return;
            }
        }
        let _ = tx.send(wrap(None));
    });
}

/// `RequestName` flag: take the name from its current owner if it allows replacement.
pub const NAME_REPLACE_EXISTING: u32 = 0x2;
/// `RequestName` flag: fail instead of waiting in the queue.
pub const NAME_DO_NOT_QUEUE: u32 = 0x4;

/// Requests `name` on the bus with `flags`, as a plain `org.freedesktop.DBus.RequestName`.
/// The daemons serve their objects by hand from the moment their forwarder runs, so calls
/// arriving right after the name is ours are queued, not lost; zbus' own `request_name`
/// would warn that they may be lost, because it only knows its own object server.
/// Errors say why in the bus daemon's words, or that the name is owned by someone else.
pub async fn request_name(conn: &Connection, name: &str, flags: u32) -> Result<(), String> {
    let reply = conn
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "RequestName",
            &(name, flags),
        )
        .await
        .map_err(|e| e.to_string())?;
    let (code,): (u32,) = reply.body().deserialize().map_err(|e| e.to_string())?;
    match code {
        // Primary owner, or already the owner.
        1 | 4 => Ok(()),
        2 => Err("queued behind its current owner".into()),
        _ => Err("it is owned by another process".into()),
    }
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

/// Builds a method call to `path`/`iface`/`member` carrying the body of `from` unchanged
/// (same signature, bytes and byte order): the pass-through of upstream's controller and agent.
pub fn call_with_body_of(
    from: &Message,
    destination: &str,
    path: &str,
    iface: &str,
    member: &str,
) -> zbus::Result<Message> {
    let body = from.body();
    let bytes: Vec<u8> = body.data().to_vec();
    let b = Message::method_call(path, member)?
        .interface(iface)?
        .destination(destination)?
        .endian(from.primary_header().endian_sig().into());
    // SAFETY: `bytes` is the complete body of `from`, valid for its signature and byte order,
    // which the new message keeps; `from` carried no file descriptors we pass on.
    unsafe { b.build_raw_body(&bytes, body.signature().clone(), vec![]) }
}

/// Replies to `call` with the outcome carried by `reply` (a method return or an error message
/// from the next hop): body bytes and error name are copied verbatim, so systemd's errors reach
/// bluechictl unchanged.
pub async fn forward_reply(conn: &Connection, call: &Message, reply: &Message) {
    let hdr = call.header();
    let rh = reply.header();
    let builder = match (reply.message_type(), rh.error_name()) {
        (Type::Error, Some(name)) => Message::error(&hdr, name.to_owned()),
        _ => Message::method_return(&hdr),
    };
    let body = reply.body();
    let bytes: Vec<u8> = body.data().to_vec();
    let out = builder.and_then(|b| {
        // SAFETY: as in `call_with_body_of`: the body is copied with its signature and order.
        unsafe {
            b.endian(reply.primary_header().endian_sig().into())
                .build_raw_body(&bytes, body.signature().clone(), vec![])
        }
    });
    match out {
        Ok(m) => {
            if let Err(e) = conn.send(&m).await {
                tracing::debug!("failed to forward reply: {e}");
            }
        }
        Err(e) => reply_error(conn, &hdr, crate::names::ERR_FAILED, &e.to_string()).await,
    }
}

fn call_builder<'a>(
    destination: &'a str,
    path: &'a str,
    iface: &'a str,
    member: &'a str,
) -> zbus::Result<zbus::message::Builder<'a>> {
    Message::method_call(path, member)?
        .interface(iface)?
        .destination(destination)
}

/// A method call that expects no reply (upstream's fire-and-forget calls on the peer link).
pub fn oneway_call<B>(
    destination: &str,
    path: &str,
    iface: &str,
    member: &str,
    body: &B,
) -> zbus::Result<Message>
where
    B: serde::Serialize + zvariant::DynamicType,
{
    call_builder(destination, path, iface, member)?
        .with_flags(zbus::message::Flags::NoReplyExpected)?
        .build(body)
}

/// A method call whose reply the caller will match by serial number.
pub fn call<B>(
    destination: &str,
    path: &str,
    iface: &str,
    member: &str,
    body: &B,
) -> zbus::Result<Message>
where
    B: serde::Serialize + zvariant::DynamicType,
{
    call_builder(destination, path, iface, member)?.build(body)
}

/// The serial a reply to `msg` will carry in its `REPLY_SERIAL` field.
pub fn serial(msg: &Message) -> u32 {
    msg.primary_header().serial_num().get()
}

/// For a method return or error, the serial of the call it answers.
pub fn reply_serial(msg: &Message) -> Option<u32> {
    msg.header().reply_serial().map(|s| s.get())
}

/// The error name and first string argument of an error message.
pub fn error_of(msg: &Message) -> Option<(String, String)> {
    if msg.message_type() != Type::Error {
        return None;
    }
    let name = msg.header().error_name()?.to_string();
    let text = msg
        .body()
        .deserialize::<(String,)>()
        .map(|(t,)| t)
        .unwrap_or_default();
    Some((name, text))
}

/// Sends a message; failures mean the peer is gone, which its stream end will report.
pub async fn send(conn: &Connection, msg: zbus::Result<Message>) {
    match msg {
        Ok(m) => {
            if let Err(e) = conn.send(&m).await {
                tracing::debug!("failed to send message: {e}");
            }
        }
        Err(e) => tracing::error!("failed to build message: {e}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer link's forwarder hands the loop at most `INBOUND_CREDITS` messages it has not
    /// taken out; the rest wait unread and follow as the loop catches up.
    #[tokio::test]
    async fn peer_forwarder_stops_at_its_credits() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let guid = zbus::Guid::generate();
        let ours = zbus::connection::Builder::unix_stream(a)
            .server(guid)
            .unwrap()
            .p2p()
            .build_message_stream();
        let theirs = zbus::connection::Builder::unix_stream(b).p2p().build();
        let (ours, theirs) = tokio::join!(ours, theirs);
        let (ours, theirs) = (ours.unwrap(), theirs.unwrap());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        spawn_peer_forwarder(ours, tx, |m| m);
        let total = INBOUND_CREDITS * 3;
        for i in 0..total {
            theirs
                .emit_signal(None::<&str>, "/x", "a.b.C", "N", &(i as u32,))
                .await
                .unwrap();
        }
        let limit = std::time::Duration::from_secs(10);
        let mut held = Vec::new();
        while held.len() < INBOUND_CREDITS {
            let m = tokio::time::timeout(limit, rx.recv())
                .await
                .expect("stalled");
            held.push(m.flatten().expect("a message"));
        }
        // Nothing more while every credit is held (a bounded look, not a wait for state).
        let more = tokio::time::timeout(std::time::Duration::from_millis(200), rx.recv()).await;
        assert!(more.is_err(), "a message past the credits was forwarded");
        drop(held);
        let mut rest = 0;
        while rest < total - INBOUND_CREDITS {
            let m = tokio::time::timeout(limit, rx.recv())
                .await
                .expect("stalled");
            m.flatten().expect("a message").into_message();
            rest += 1;
        }
    }
}
