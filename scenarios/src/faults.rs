//! Peers that misbehave on purpose against a controller's peer port: the hostile clients the
//! robustness tests and the benchmark throw at a cluster. Each one speaks just enough of the
//! protocol (the SASL handshake, raw D-Bus frames) to reach the code it attacks.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bluechi_testkit::poll;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Opens a TCP connection to the peer port and completes the SASL handshake; nothing else.
pub async fn authenticated(port: u16) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect to port {port}: {e}"))?;
    bluechi_core::sasl::client_handshake(&mut s)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    Ok(s)
}

/// The bytes of one `Introspect` call on `/`: the cheapest call an unregistered peer may
/// make, answered with a reply many times its size.
pub fn introspect_call() -> Result<Vec<u8>, String> {
    let m = zbus::Message::method_call("/", "Introspect")
        .and_then(|b| b.interface("org.freedesktop.DBus.Introspectable"))
        .and_then(|b| b.build(&()))
        .map_err(|e| e.to_string())?;
    Ok(m.data().to_vec())
}

/// A fixed header announcing a body of `body_len` bytes (little endian, a method call with
/// no header fields): what a peer sends to make us reserve memory for a message.
pub fn header_announcing(body_len: u32) -> Vec<u8> {
    let mut h = vec![b'l', 1, 0, 1];
    h.extend_from_slice(&body_len.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h
}

/// What a [`silent_flood`] achieved.
#[derive(Debug, Clone, Copy)]
pub struct Flood {
    /// Calls written completely before the flood stopped.
    pub calls: usize,
    /// Whether the controller cut the connection (rather than the flood running out).
    pub dropped: bool,
}

/// Writes up to `calls` `Introspect` calls on an authenticated connection and never reads a
/// reply: a client that stopped reading. Stops early when the controller drops the link or
/// when `limit` passes (a controller that stops reading stalls the writes).
pub async fn silent_flood(port: u16, calls: usize, limit: Duration) -> Result<Flood, String> {
    let mut s = authenticated(port).await?;
    let call = introspect_call()?;
    // A thousand calls per write: fast enough to outrun any reader, small enough to count.
    let batch: Vec<u8> = call.repeat(1000);
    let start = Instant::now();
    let mut written = 0;
    while written < calls {
        let left = limit.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, s.write_all(&batch)).await {
            Ok(Ok(())) => written += 1000,
            Ok(Err(_)) => {
                return Ok(Flood {
                    calls: written,
                    dropped: true,
                })
            }
            Err(_) => break,
        }
    }
    let dropped = wait_hangup(&s, limit.saturating_sub(start.elapsed())).await;
    Ok(Flood {
        calls: written,
        dropped,
    })
}

/// Whether the other end shuts the connection down within `limit`, seen without reading
/// (unread replies may still wait in our receive buffer): POLLRDHUP, POLLHUP or POLLERR.
pub async fn wait_hangup(s: &TcpStream, limit: Duration) -> bool {
    poll::until("the peer to hang up", limit, || {
        std::future::ready(hung_up(s))
    })
    .await
    .is_ok()
}

fn hung_up(s: &TcpStream) -> bool {
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd for a descriptor `s` keeps open; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}
