//! The controller's end of an agent's peer link, played by the test: the handshake and the
//! answer to `Register`, so the test then holds the link the agent believes is its controller.

use std::time::Duration;

use bluechi_core::config::TcpOptions;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use zbus::message::Type;
use zbus::{Connection, Message, MessageStream};

/// Runs the handshake on `socket` and answers the agent's `Register`, waiting at most `step`
/// for each message; the error says which stage failed.
pub async fn register(socket: TcpStream, step: Duration) -> Result<MessageStream, String> {
    let (stream, call) = until_register(socket, step).await?;
    Connection::from(&stream)
        .reply(&call.header(), &())
        .await
        .map_err(|e| format!("reply to Register: {e}"))?;
    Ok(stream)
}

/// Runs the handshake on `socket` and reads up to the agent's `Register`, which is returned
/// unanswered: the agent is connected but not registered until the caller replies.
pub async fn until_register(
    socket: TcpStream,
    step: Duration,
) -> Result<(MessageStream, Message), String> {
    // No keepalive: the tests decide when a link is dead.
    let tcp = TcpOptions {
        ip_receive_errors: false,
        keepalive_time: 0,
        keepalive_interval: 0,
        keepalive_count: 0,
    };
    let guid = bluechi_core::link::new_guid();
    let limits = bluechi_core::wire_socket::LinkLimits::trusted();
    let mut stream = bluechi_core::link::accept_tcp(socket, &tcp, &guid, "agent", limits)
        .await
        .map_err(|e| format!("peer-link handshake: {e}"))?
        .stream;
    loop {
        let m = tokio::time::timeout(step, stream.next())
            .await
            .map_err(|_| "the agent never registered".to_string())?
            .ok_or("peer link closed before Register")?
            .map_err(|e| format!("a message: {e}"))?;
        let h = m.header();
        if m.message_type() == Type::MethodCall && h.member().is_some_and(|x| x == "Register") {
            return Ok((stream, m));
        }
    }
}
