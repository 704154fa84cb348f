//! systemd's private socket (`/run/systemd/private`), through an in-process relay.
//!
//! Root talks to systemd over its private socket: it works before the system bus is up and it
//! is what upstream's agent and systemctl use. On that socket systemd stamps its well-known
//! name `org.freedesktop.systemd1` as the SENDER of every message, but zbus 5 accepts only
//! unique names in that field and panics on anything else (seen against systemd 252). The
//! relay passes our bytes to systemd unchanged and drops the SENDER field from what systemd
//! sends back: a peer-to-peer connection has exactly one peer, so the field carries nothing.
//!
//! Known limit: file descriptors are not relayed. Neither the agent nor systemctl calls the
//! few manager methods that pass them.

use std::io::{Error, ErrorKind};
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Where systemd listens for root's direct connections.
pub const PRIVATE_SOCKET: &str = "/run/systemd/private";

// Re-exported: this module's callers used to find them here.
use crate::wire::Inbox;
#[cfg(test)]
use crate::wire::{align8, read_u32, FIELD_SENDER};
pub use crate::wire::{drop_sender, message_len, MAX_MESSAGE};
/// Authentication replies are short ("OK <32 hex digits>"); a longer line is not systemd.
const MAX_AUTH_LINE: u64 = 1024;

/// A zbus peer-to-peer connection to the systemd manager listening on `path`.
pub async fn connect(path: impl AsRef<Path>) -> std::io::Result<zbus::Connection> {
    let upstream = UnixStream::connect(path).await?;
    let (ours, relay_end) = UnixStream::pair()?;
    tokio::spawn(relay(upstream, relay_end));
    zbus::connection::Builder::unix_stream(ours)
        .p2p()
        .build()
        .await
        .map_err(Error::other)
}

/// Runs both directions until either ends; dropping both sockets then closes the other side
/// too, so neither zbus nor systemd is left with a half-dead connection.
async fn relay(upstream: UnixStream, client: UnixStream) {
    let (up_read, mut up_write) = upstream.into_split();
    let (mut client_read, mut client_write) = client.into_split();
    let result = tokio::select! {
        r = tokio::io::copy(&mut client_read, &mut up_write) => r.map(|_| ()),
        r = pump_down(BufReader::new(up_read), &mut client_write) => r,
    };
    if let Err(e) = result {
        tracing::debug!("systemd private socket relay closed: {e}");
    }
}

fn bad(what: &str) -> Error {
    Error::new(ErrorKind::InvalidData, what.to_string())
}

/// Forwards the authentication lines as they are, then each message without its SENDER.
async fn pump_down<R, W>(mut from: BufReader<R>, to: &mut W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Until the first message the server speaks text lines; a message starts with its
    // endianness byte, which no authentication reply starts with.
    loop {
        let buf = from.fill_buf().await?;
        match buf.first() {
            None => return Ok(()),
            Some(b'l' | b'B') => break,
            Some(_) => {
                let mut line = Vec::new();
                (&mut from)
                    .take(MAX_AUTH_LINE)
                    .read_until(b'\n', &mut line)
                    .await?;
                if line.last() != Some(&b'\n') {
                    return Err(bad("authentication line too long or cut off"));
                }
                to.write_all(&line).await?;
            }
        }
    }
    let mut inbox = Inbox::default();
    loop {
        loop {
            let room = inbox
                .room()
                .ok_or_else(|| bad("malformed or oversized message"))?;
            if room.is_empty() {
                break;
            }
            let n = from.read(room).await?;
            if n == 0 {
                if inbox.is_empty() {
                    return Ok(());
                }
                return Err(Error::new(ErrorKind::UnexpectedEof, "message cut off"));
            }
            inbox.advance(n);
        }
        let msg = inbox.take();
        let out = drop_sender(&msg).ok_or_else(|| bad("malformed message header"))?;
        to.write_all(&out).await?;
    }
}

#[cfg(test)]
#[path = "sd_private_tests.rs"]
mod tests;
