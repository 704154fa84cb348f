//! The SASL handshake of the peer link, in the dialect sd-bus speaks (spec §1.4.2).
//!
//! zbus' p2p server accepts one mechanism and checks EXTERNAL uids against socket credentials
//! that TCP does not have, so both ends run this handshake themselves and hand the
//! authenticated socket to zbus afterwards. The functions read byte by byte and never consume
//! anything after `BEGIN\r\n`: sd-bus may pipeline its first message right behind it.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest handshake line accepted; sd-bus' own lines are a few dozen bytes.
const MAX_LINE: usize = 16 * 1024;
/// Upper bound on handshake lines, so a peer cannot keep a connection in auth forever.
const MAX_LINES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SaslError {
    #[error("I/O error during authentication: {0}")]
    Io(#[from] std::io::Error),
    #[error("authentication protocol error: {0}")]
    Protocol(String),
}

async fn read_line<S: AsyncRead + Unpin>(s: &mut S) -> Result<String, SaslError> {
    let mut buf = Vec::with_capacity(64);
    loop {
        let b = s.read_u8().await?;
        if b == b'\n' {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return String::from_utf8(buf)
                .map_err(|_| SaslError::Protocol("non-UTF-8 handshake line".into()));
        }
        if buf.len() >= MAX_LINE {
            return Err(SaslError::Protocol("handshake line too long".into()));
        }
        buf.push(b);
    }
}

/// Server side. `guid` is 32 lowercase hex digits; `unix` says whether fd passing may be agreed.
pub async fn server_handshake<S>(s: &mut S, guid: &str, unix: bool) -> Result<(), SaslError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if s.read_u8().await? != 0 {
        return Err(SaslError::Protocol("expected a NUL byte first".into()));
    }
    let ok = format!("OK {guid}\r\n");
    let mut waiting_for_data = false;
    for _ in 0..MAX_LINES {
        let line = read_line(s).await?;
        let mut words = line.split(' ');
        let cmd = words.next().unwrap_or("");
        let reply: String = match cmd {
            "AUTH" => match (words.next(), words.next()) {
                (Some("EXTERNAL"), None) | (Some("ANONYMOUS"), None) => {
                    waiting_for_data = true;
                    "DATA\r\n".into()
                }
                // Any uid is accepted: there are no credentials to check over TCP.
                (Some("EXTERNAL"), Some(_)) | (Some("ANONYMOUS"), Some(_)) => ok.clone(),
                _ => "REJECTED EXTERNAL ANONYMOUS\r\n".into(),
            },
            "DATA" if waiting_for_data => {
                waiting_for_data = false;
                ok.clone()
            }
            "NEGOTIATE_UNIX_FD" if unix => "AGREE_UNIX_FD\r\n".into(),
            "NEGOTIATE_UNIX_FD" => "ERROR\r\n".into(),
            "BEGIN" => {
                s.flush().await?;
                return Ok(());
            }
            "CANCEL" | "ERROR" => {
                waiting_for_data = false;
                "REJECTED EXTERNAL ANONYMOUS\r\n".into()
            }
            _ => "ERROR\r\n".into(),
        };
        s.write_all(reply.as_bytes()).await?;
    }
    Err(SaslError::Protocol("too many handshake lines".into()))
}

/// Client side, as sd-bus sends it: EXTERNAL without initial response, pipelined with `BEGIN`.
/// Returns the server's GUID.
pub async fn client_handshake<S>(s: &mut S) -> Result<String, SaslError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    s.write_all(b"\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n").await?;
    s.flush().await?;
    let mut line = read_line(s).await?;
    if line == "DATA" || line.starts_with("DATA ") {
        line = read_line(s).await?;
    }
    match line.strip_prefix("OK ") {
        Some(guid) if guid.len() == 32 && guid.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(guid.to_string())
        }
        _ => Err(SaslError::Protocol(format!(
            "server refused authentication: {line}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    const GUID: &str = "0123456789abcdef0123456789abcdef";

    async fn server_transcript(client_bytes: &[u8], unix: bool) -> (bool, String) {
        let (mut a, mut b) = duplex(4096);
        a.write_all(client_bytes).await.unwrap();
        // End of input: a truncated handshake must fail, not wait forever.
        a.shutdown().await.unwrap();
        let ok = server_handshake(&mut b, GUID, unix).await.is_ok();
        drop(b);
        let mut out = Vec::new();
        a.read_to_end(&mut out).await.unwrap();
        (ok, String::from_utf8(out).unwrap())
    }

    #[tokio::test]
    async fn sd_bus_pipelined_external_over_tcp() {
        let (ok, out) = server_transcript(b"\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n", false).await;
        assert!(ok);
        assert_eq!(out, format!("DATA\r\nOK {GUID}\r\n"));
    }

    #[tokio::test]
    async fn unix_fd_negotiation_and_uid_any() {
        let (ok, out) = server_transcript(
            b"\0AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n",
            true,
        )
        .await;
        assert!(ok);
        assert_eq!(out, format!("OK {GUID}\r\nAGREE_UNIX_FD\r\n"));
        let (_, out) = server_transcript(
            b"\0AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n",
            false,
        )
        .await;
        assert!(out.ends_with("ERROR\r\n"), "{out}");
    }

    #[tokio::test]
    async fn unknown_mechanism_rejected() {
        let (ok, out) = server_transcript(b"\0AUTH KERBEROS\r\nBEGIN\r\n", false).await;
        assert!(ok);
        assert_eq!(out, "REJECTED EXTERNAL ANONYMOUS\r\n");
    }

    #[tokio::test]
    async fn garbage_is_an_error_not_a_panic() {
        let (ok, _) = server_transcript(b"xyz", false).await;
        assert!(!ok);
        let (ok, _) = server_transcript(b"\0AUTH", false).await;
        assert!(!ok);
    }

    #[tokio::test]
    async fn client_and_server_agree_and_nothing_after_begin_is_consumed() {
        let (mut a, mut b) = duplex(4096);
        let server = tokio::spawn(async move {
            server_handshake(&mut b, GUID, false).await.unwrap();
            let mut rest = [0u8; 3];
            b.read_exact(&mut rest).await.unwrap();
            rest
        });
        let guid = client_handshake(&mut a).await.unwrap();
        a.write_all(b"msg").await.unwrap();
        assert_eq!(guid, GUID);
        assert_eq!(&server.await.unwrap(), b"msg");
    }
}
