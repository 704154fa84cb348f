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

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Big enough that writing a whole case before the server runs never blocks.
        const PIPE: usize = 64 * 1024;
        /// A handshake on in-memory pipes finishes in microseconds; this only catches hangs.
        const BOUND: std::time::Duration = std::time::Duration::from_secs(5);

        fn rt() -> tokio::runtime::Runtime {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime")
        }

        /// Runs the server on `input` followed by EOF; `None` means it did not terminate.
        fn run_server(input: &[u8], unix: bool) -> Option<(bool, Vec<u8>)> {
            rt().block_on(async {
                let (mut a, mut b) = duplex(PIPE);
                a.write_all(input).await.ok()?;
                a.shutdown().await.ok()?;
                let done = tokio::time::timeout(BOUND, server_handshake(&mut b, GUID, unix)).await;
                drop(b);
                let mut out = Vec::new();
                a.read_to_end(&mut out).await.ok()?;
                done.ok().map(|r| (r.is_ok(), out))
            })
        }

        /// Handshake lines a client may send, valid or not, so generated sequences reach
        /// every state of the server and not only its first-byte check.
        fn line() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                Just(b"AUTH EXTERNAL".to_vec()),
                Just(b"AUTH EXTERNAL 30".to_vec()),
                Just(b"AUTH ANONYMOUS".to_vec()),
                Just(b"AUTH KERBEROS".to_vec()),
                Just(b"AUTH".to_vec()),
                Just(b"DATA".to_vec()),
                Just(b"DATA 31303030".to_vec()),
                Just(b"NEGOTIATE_UNIX_FD".to_vec()),
                Just(b"CANCEL".to_vec()),
                Just(b"ERROR".to_vec()),
                Just(b"BEGIN".to_vec()),
                Just(Vec::new()),
                proptest::collection::vec(any::<u8>(), 0..40),
            ]
        }

        fn transcript() -> impl Strategy<Value = Vec<u8>> {
            (
                any::<bool>(),
                proptest::collection::vec((line(), any::<bool>()), 0..40),
            )
                .prop_map(|(nul, lines)| {
                    let mut out = Vec::new();
                    if nul {
                        out.push(0);
                    }
                    for (l, crlf) in lines {
                        out.extend_from_slice(&l);
                        out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                    }
                    out
                })
        }

        /// The ways a well-behaved client authenticates (sd-bus, GLib, dbus-daemon clients).
        fn valid_client() -> impl Strategy<Value = (Vec<&'static str>, bool)> {
            let auth = prop_oneof![
                Just(vec!["AUTH EXTERNAL", "DATA"]),
                Just(vec!["AUTH EXTERNAL 31303030"]),
                Just(vec!["AUTH ANONYMOUS", "DATA"]),
                Just(vec!["AUTH ANONYMOUS 74657374"]),
                Just(vec!["AUTH KERBEROS", "AUTH EXTERNAL", "DATA"]),
                Just(vec!["AUTH EXTERNAL", "CANCEL", "AUTH EXTERNAL", "DATA"]),
            ];
            (auth, any::<bool>(), any::<bool>()).prop_map(|(mut lines, fd, unix)| {
                if fd {
                    lines.push("NEGOTIATE_UNIX_FD");
                }
                lines.push("BEGIN");
                (lines, unix)
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn server_survives_arbitrary_bytes(
                input in proptest::collection::vec(any::<u8>(), 0..2048),
                unix in any::<bool>(),
            ) {
                prop_assert!(run_server(&input, unix).is_some(), "server hung");
            }

            #[test]
            fn server_survives_arbitrary_line_sequences(input in transcript(), unix in any::<bool>()) {
                let (ok, out) = run_server(&input, unix).expect("server hung");
                // Success needs an explicit BEGIN: end of input alone never authenticates.
                if ok {
                    prop_assert!(input.windows(5).any(|w| w == b"BEGIN"));
                }
                // Every reply the server wrote is a whole protocol line.
                let out = String::from_utf8(out).expect("replies are ASCII");
                prop_assert!(out.is_empty() || out.ends_with("\r\n"), "{:?}", out);
            }

            #[test]
            fn valid_clients_authenticate_and_keep_their_first_message(
                (lines, unix) in valid_client(),
                payload in proptest::collection::vec(any::<u8>(), 1..256),
            ) {
                let mut input = vec![0u8];
                for l in &lines {
                    input.extend_from_slice(l.as_bytes());
                    input.extend_from_slice(b"\r\n");
                }
                input.extend_from_slice(&payload);
                let (ok, rest, out) = rt().block_on(async {
                    let (mut a, mut b) = duplex(PIPE);
                    a.write_all(&input).await.expect("write");
                    a.shutdown().await.expect("shutdown");
                    let ok = server_handshake(&mut b, GUID, unix).await.is_ok();
                    let mut rest = Vec::new();
                    b.read_to_end(&mut rest).await.expect("rest");
                    drop(b);
                    let mut out = Vec::new();
                    a.read_to_end(&mut out).await.expect("replies");
                    (ok, rest, String::from_utf8_lossy(&out).into_owned())
                });
                prop_assert!(ok, "{:?} refused: {}", lines, out);
                prop_assert_eq!(rest, payload);
                let ok_line = format!("OK {GUID}\r\n");
                prop_assert!(out.contains(&ok_line), "{}", out);
                let fd = if unix { "AGREE_UNIX_FD\r\n" } else { "ERROR\r\n" };
                prop_assert_eq!(lines.contains(&"NEGOTIATE_UNIX_FD"), out.ends_with(fd), "{}", out);
            }

            #[test]
            fn client_agrees_with_server_on_any_guid(guid in "[0-9a-f]{32}", unix in any::<bool>()) {
                let (client, server) = rt().block_on(async {
                    let (mut a, mut b) = duplex(PIPE);
                    let g = guid.clone();
                    let server = tokio::spawn(async move {
                        server_handshake(&mut b, &g, unix).await.is_ok()
                    });
                    let client = client_handshake(&mut a).await.ok();
                    (client, server.await.unwrap_or(false))
                });
                prop_assert!(server);
                prop_assert_eq!(client, Some(guid));
            }

            #[test]
            fn client_survives_arbitrary_server_replies(
                reply in proptest::collection::vec(any::<u8>(), 0..512),
            ) {
                let got = rt().block_on(async {
                    let (mut a, mut b) = duplex(PIPE);
                    b.write_all(&reply).await.ok()?;
                    drop(b);
                    tokio::time::timeout(BOUND, client_handshake(&mut a)).await.ok()
                });
                let got = got.expect("client hung");
                if let Ok(guid) = got {
                    prop_assert!(reply.windows(3).any(|w| w == b"OK "));
                    prop_assert_eq!(guid.len(), 32);
                }
            }
        }
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
