//! systemd's private socket, through an in-process relay.
//!
//! On `/run/systemd/private` systemd stamps its well-known name as the SENDER of every message;
//! zbus 5 only accepts unique names there and aborts on anything else. The relay passes the
//! client's bytes through unchanged and drops the SENDER field from what systemd sends back
//! (a peer-to-peer connection has no use for it).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

const FIELD_SENDER: u8 = 7;
/// Refuse messages larger than the D-Bus maximum instead of allocating for them.
const MAX_MESSAGE: usize = 128 * 1024 * 1024;

/// A zbus peer-to-peer connection to the manager listening on `path`.
pub async fn connect(path: &str) -> std::io::Result<zbus::Connection> {
    let upstream = UnixStream::connect(path).await?;
    let (ours, relay_end) = UnixStream::pair()?;
    let (up_read, mut up_write) = upstream.into_split();
    let (relay_read, mut relay_write) = relay_end.into_split();
    tokio::spawn(async move {
        let mut relay_read = relay_read;
        let _ = tokio::io::copy(&mut relay_read, &mut up_write).await;
    });
    tokio::spawn(async move {
        let _ = pump_down(BufReader::new(up_read), &mut relay_write).await;
    });
    zbus::connection::Builder::unix_stream(ours)
        .p2p()
        .build()
        .await
        .map_err(std::io::Error::other)
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Forwards the authentication lines as they are, then each message without its SENDER.
async fn pump_down<R, W>(mut from: BufReader<R>, to: &mut W) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    // Until the first message, the server speaks text lines; a message starts with its
    // endianness byte, which no authentication reply starts with.
    loop {
        let buf = from.fill_buf().await?;
        match buf.first() {
            None => return Ok(()),
            Some(b'l' | b'B') => break,
            Some(_) => {
                let mut line = Vec::new();
                from.read_until(b'\n', &mut line).await?;
                to.write_all(&line).await?;
            }
        }
    }
    loop {
        let mut fixed = [0u8; 16];
        match from.read_exact(&mut fixed).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let le = fixed[0] == b'l';
        let body_len = read_u32(&fixed[4..8], le) as usize;
        let fields_len = read_u32(&fixed[12..16], le) as usize;
        let total = align8(16 + fields_len) + body_len;
        if total > MAX_MESSAGE {
            return Err(bad("message too large"));
        }
        let mut msg = vec![0u8; total];
        msg[..16].copy_from_slice(&fixed);
        from.read_exact(&mut msg[16..]).await?;
        to.write_all(&drop_sender(&msg).ok_or_else(|| bad("malformed message header"))?)
            .await?;
    }
}

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn read_u32(b: &[u8], le: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    }
}

/// The message with the SENDER header field removed; `None` if the header is malformed.
pub fn drop_sender(msg: &[u8]) -> Option<Vec<u8>> {
    let le = *msg.first()? == b'l';
    let fields_len = read_u32(msg.get(12..16)?, le) as usize;
    let fields_end = 16usize.checked_add(fields_len)?;
    let body_start = align8(fields_end);
    let body = msg.get(body_start..)?;
    let mut out = msg.get(..16)?.to_vec();
    let mut pos = 16;
    while pos < fields_end {
        let code = *msg.get(pos)?;
        let sig_len = *msg.get(pos + 1)? as usize;
        let sig = msg.get(pos + 2..pos + 2 + sig_len)?;
        let value = pos + 2 + sig_len + 1;
        let end = match sig {
            b"s" | b"o" => {
                let at = align4(value);
                let len = read_u32(msg.get(at..at + 4)?, le) as usize;
                at + 4 + len + 1
            }
            b"g" => value + 1 + *msg.get(value)? as usize + 1,
            b"u" => align4(value) + 4,
            _ => return None,
        };
        if end > fields_end {
            return None;
        }
        if code != FIELD_SENDER {
            out.resize(align8(out.len()), 0);
            out.extend_from_slice(&msg[pos..end]);
        }
        pos = align8(end);
    }
    let new_len = u32::try_from(out.len() - 16).ok()?;
    let bytes = if le {
        new_len.to_le_bytes()
    } else {
        new_len.to_be_bytes()
    };
    out[12..16].copy_from_slice(&bytes);
    out.resize(align8(out.len()), 0);
    out.extend_from_slice(body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::drop_sender;
    use zbus::message::Message;

    #[test]
    fn sender_is_removed_and_the_rest_kept() {
        let call = Message::method_call("/org/freedesktop/systemd1", "GetUnit")
            .and_then(|b| b.destination("org.freedesktop.systemd1"))
            .and_then(|b| b.build(&("a.service",)))
            .expect("call");
        let reply = Message::method_return(&call.header())
            .and_then(|b| b.sender(":1.4242"))
            .and_then(|b| b.build(&("/org/freedesktop/systemd1/unit/a_2eservice",)))
            .expect("reply");
        let bytes = reply.data().to_vec();
        assert!(bytes.windows(7).any(|w| w == b":1.4242"));
        let out = drop_sender(&bytes).expect("well-formed");
        assert!(!out.windows(7).any(|w| w == b":1.4242"));
        assert!(out.len() < bytes.len());
        let body_len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        assert!(body_len > 0);
        assert_eq!(
            &out[out.len() - body_len..],
            &bytes[bytes.len() - body_len..]
        );
        // Every other field survives: the reply still parses with its destination-free header.
        assert!(out
            .windows(42)
            .any(|w| w == b"/org/freedesktop/systemd1/unit/a_2eservice"));
        assert_eq!(drop_sender(&out).as_deref(), Some(&out[..]));
    }

    #[test]
    fn truncated_headers_are_rejected() {
        assert!(drop_sender(b"l\x02\x01\x01").is_none());
        let mut bogus = vec![b'l', 2, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 200, 0, 0, 0];
        bogus.extend_from_slice(&[7, 1, b's', 0]);
        assert!(drop_sender(&bogus).is_none());
    }
}
