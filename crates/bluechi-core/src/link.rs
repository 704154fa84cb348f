//! The agent ↔ controller peer link: sd-bus style addresses, TCP options, the custom SASL
//! handshake, and the zbus peer-to-peer connection built on the authenticated socket.
//!
//! Both ends drop the SENDER header field from what they receive (upstream's controller stamps
//! its well-known name there, which zbus cannot parse), and the controller end stamps
//! `SENDER=org.eclipse.bluechi` on what it sends, as upstream does.

use std::os::fd::AsFd;
use std::time::Duration;

use tokio::net::{TcpStream, UnixStream};
use zbus::connection::Builder;
use zbus::MessageStream;

use crate::config::TcpOptions;
use crate::names::CONTROLLER_BUS_NAME;
use crate::sasl;
use crate::wire_socket::{wrap, LinkControl, LinkLimits};

/// Upstream's method-call timeout on the peer link (`BC_DEFAULT_DBUS_TIMEOUT`).
pub const PEER_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A peer that has not finished authenticating by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("invalid controller address '{0}'")]
    Address(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sasl(#[from] sasl::SaslError),
    #[error("authentication timed out")]
    Timeout,
    #[error("D-Bus: {0}")]
    Bus(#[from] zbus::Error),
}

/// A parsed peer address: the subset of sd-bus address syntax BlueChi uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddress {
    Tcp { host: String, port: u16 },
    Unix { path: String },
}

impl PeerAddress {
    pub fn parse(s: &str) -> Result<Self, LinkError> {
        let bad = || LinkError::Address(s.to_string());
        let (transport, rest) = s.split_once(':').ok_or_else(bad)?;
        let mut host = None;
        let mut port = None;
        let mut path = None;
        for kv in rest.split(',') {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            match k {
                "host" => host = Some(v.to_string()),
                "port" => port = Some(v.parse::<u16>().map_err(|_| bad())?),
                "path" => path = Some(v.to_string()),
                _ => {}
            }
        }
        match transport {
            "tcp" => Ok(PeerAddress::Tcp {
                host: host.ok_or_else(bad)?,
                port: port.ok_or_else(bad)?,
            }),
            "unix" => Ok(PeerAddress::Unix {
                path: path.ok_or_else(bad)?,
            }),
            _ => Err(bad()),
        }
    }
}

/// Applies keepalive, `TCP_NODELAY` and `IP_RECVERR` as both upstream ends do (spec §1.4.4).
pub fn apply_tcp_options(stream: &TcpStream, o: &TcpOptions) -> std::io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    stream.set_nodelay(true)?;
    let fd = stream.as_fd();
    setsockopt(&fd, sockopt::KeepAlive, &true).map_err(std::io::Error::from)?;
    if o.keepalive_time > 0 {
        setsockopt(&fd, sockopt::TcpKeepIdle, &o.keepalive_time).map_err(std::io::Error::from)?;
    }
    if o.keepalive_interval > 0 {
        setsockopt(&fd, sockopt::TcpKeepInterval, &o.keepalive_interval)
            .map_err(std::io::Error::from)?;
    }
    if o.keepalive_count > 0 {
        setsockopt(&fd, sockopt::TcpKeepCount, &o.keepalive_count).map_err(std::io::Error::from)?;
    }
    if o.ip_receive_errors {
        // Best effort: the option exists per address family and may be refused.
        let _ = setsockopt(&fd, sockopt::Ipv4RecvErr, &true);
        let _ = setsockopt(&fd, sockopt::Ipv6RecvErr, &true);
    }
    Ok(())
}

/// An accepted peer link: its message stream (created with the connection, so nothing the
/// peer pipelines behind the handshake is missed; `Connection::from(&stream)` gives the
/// connection) and the handle that bounds and can drop it.
pub struct PeerLink {
    pub stream: MessageStream,
    pub control: LinkControl,
}

/// Connects to the controller as a client. Returns the connection's message stream, which
/// exists from the start so nothing the peer sends can be missed (`Connection::from(&stream)`
/// gives the connection). The controller is trusted with sd-bus' message cap; if it stops
/// reading, the link drops instead of blocking the agent.
pub async fn connect(address: &str, tcp: &TcpOptions) -> Result<MessageStream, LinkError> {
    let label = format!("controller at {address}");
    let limits = LinkLimits::trusted();
    match PeerAddress::parse(address)? {
        PeerAddress::Tcp { host, port } => {
            let mut stream = TcpStream::connect((host.as_str(), port)).await?;
            apply_tcp_options(&stream, tcp)?;
            let guid = handshake_client(&mut stream).await?;
            let (split, _) = wrap(stream, None, label, limits).await?;
            build(Builder::authenticated_socket(split, guid.as_str())?).await
        }
        PeerAddress::Unix { path } => {
            let mut stream = UnixStream::connect(&path).await?;
            let guid = handshake_client(&mut stream).await?;
            let (split, _) = wrap(stream, None, label, limits).await?;
            build(Builder::authenticated_socket(split, guid.as_str())?).await
        }
    }
}

async fn handshake_client<S>(s: &mut S) -> Result<String, LinkError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(HANDSHAKE_TIMEOUT, sasl::client_handshake(s))
        .await
        .map_err(|_| LinkError::Timeout)?
        .map_err(Into::into)
}

/// Accepts an agent on an already-accepted TCP socket (server side of the handshake).
/// `limits` bound the link until the owner changes them (see [`LinkControl`]).
pub async fn accept_tcp(
    mut stream: TcpStream,
    tcp: &TcpOptions,
    guid: &str,
    label: &str,
    limits: LinkLimits,
) -> Result<PeerLink, LinkError> {
    apply_tcp_options(&stream, tcp)?;
    tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        sasl::server_handshake(&mut stream, guid, false),
    )
    .await
    .map_err(|_| LinkError::Timeout)??;
    accepted(stream, guid, label, limits).await
}

/// Accepts an agent on an already-accepted unix socket.
pub async fn accept_unix(
    mut stream: UnixStream,
    guid: &str,
    label: &str,
    limits: LinkLimits,
) -> Result<PeerLink, LinkError> {
    tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        sasl::server_handshake(&mut stream, guid, true),
    )
    .await
    .map_err(|_| LinkError::Timeout)??;
    accepted(stream, guid, label, limits).await
}

async fn accepted<S>(
    stream: S,
    guid: &str,
    label: &str,
    limits: LinkLimits,
) -> Result<PeerLink, LinkError>
where
    S: zbus::connection::socket::Socket + AsFd,
{
    let (split, control) = wrap(stream, Some(CONTROLLER_BUS_NAME), label, limits).await?;
    let stream = build(Builder::authenticated_socket(split, guid)?).await?;
    Ok(PeerLink { stream, control })
}

/// Builds the connection together with its message stream: a stream created afterwards could
/// miss a message the peer pipelined right behind the handshake (an agent's `Register`).
async fn build(b: Builder<'_>) -> Result<MessageStream, LinkError> {
    Ok(b.p2p()
        .method_timeout(PEER_CALL_TIMEOUT)
        .build_message_stream()
        .await?)
}

/// A fresh random server GUID (32 lowercase hex digits).
pub fn new_guid() -> String {
    zbus::Guid::generate().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            PeerAddress::parse("tcp:host=::1,port=842").unwrap(),
            PeerAddress::Tcp {
                host: "::1".into(),
                port: 842
            }
        );
        assert_eq!(
            PeerAddress::parse("unix:path=/run/bluechi/bluechi.sock").unwrap(),
            PeerAddress::Unix {
                path: "/run/bluechi/bluechi.sock".into()
            }
        );
        assert!(PeerAddress::parse("tcp:host=x").is_err());
        assert!(PeerAddress::parse("tcp:host=x,port=99999").is_err());
        assert!(PeerAddress::parse("nonsense").is_err());
    }

    mod props {
        use super::*;
        use futures_util::StreamExt;
        use proptest::prelude::*;
        use tokio::io::AsyncWriteExt;

        /// Only catches hangs: every case below finishes in milliseconds.
        const BOUND: Duration = Duration::from_secs(10);

        const NO_OPTS: TcpOptions = TcpOptions {
            ip_receive_errors: false,
            keepalive_time: 0,
            keepalive_interval: 0,
            keepalive_count: 0,
        };

        fn rt() -> tokio::runtime::Runtime {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
        }

        /// Plays a peer that sends `bytes` raw over TCP and then closes; the accepting side
        /// must finish (handshake error, or a stream that ends) without hanging. Returns
        /// whether the handshake succeeded and how many messages were parsed after it.
        fn accept_raw(bytes: Vec<u8>) -> Option<(bool, usize)> {
            rt().block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok()?;
                let port = listener.local_addr().ok()?.port();
                let writer = tokio::spawn(async move {
                    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
                        let _ = s.write_all(&bytes).await;
                        let _ = s.shutdown().await;
                        // Keep reading so the server's replies never block it.
                        let mut sink = Vec::new();
                        let _ = tokio::io::AsyncReadExt::read_to_end(&mut s, &mut sink).await;
                    }
                });
                let (sock, _) = listener.accept().await.ok()?;
                let outcome = tokio::time::timeout(BOUND, async {
                    match accept_tcp(sock, &NO_OPTS, &new_guid(), "fuzz", LinkLimits::trusted())
                        .await
                    {
                        Err(_) => (false, 0),
                        Ok(PeerLink { mut stream, .. }) => {
                            let mut parsed = 0;
                            while let Some(item) = stream.next().await {
                                if item.is_ok() {
                                    parsed += 1;
                                }
                            }
                            (true, parsed)
                        }
                    }
                })
                .await
                .ok();
                writer.abort();
                outcome
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            #[test]
            fn address_parser_never_panics(s in ".{0,64}") {
                let _ = PeerAddress::parse(&s);
            }

            #[test]
            fn tcp_addresses_round_trip(host in "[a-z0-9.:]{1,20}", port in any::<u16>()) {
                let parsed = PeerAddress::parse(&format!("tcp:host={host},port={port}"));
                prop_assert_eq!(parsed.ok(), Some(PeerAddress::Tcp { host, port }));
            }

            #[test]
            fn garbage_before_authentication_ends_cleanly(
                bytes in proptest::collection::vec(any::<u8>(), 0..1024),
            ) {
                let (ok, _) = accept_raw(bytes.clone()).expect("accepting side hung");
                prop_assert!(!ok || bytes.windows(5).any(|w| w == b"BEGIN"));
            }

            #[test]
            fn garbage_after_authentication_ends_the_stream(
                bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            ) {
                let mut all = b"\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n".to_vec();
                all.extend_from_slice(&bytes);
                let (ok, _) = accept_raw(all).expect("peer link hung on garbage");
                prop_assert!(ok, "a valid handshake was refused");
            }
        }
    }

    #[tokio::test]
    async fn client_and_server_talk_over_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let opts = TcpOptions {
            ip_receive_errors: true,
            keepalive_time: 1,
            keepalive_interval: 1,
            keepalive_count: 6,
        };
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let guid = new_guid();
            let PeerLink { mut stream, .. } =
                accept_tcp(s, &opts, &guid, "test", LinkLimits::trusted())
                    .await
                    .unwrap();
            // Regression: a message the client sends right after the handshake must be kept
            // even when the server looks at its stream only later.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let conn = zbus::Connection::from(&stream);
            use futures_util::StreamExt;
            let msg = stream.next().await.unwrap().unwrap();
            let member = msg.header().member().map(|m| m.to_string());
            conn.reply(&msg.header(), &("pong",)).await.unwrap();
            member
        });
        let client = zbus::Connection::from(
            connect(&format!("tcp:host=127.0.0.1,port={port}"), &opts)
                .await
                .unwrap(),
        );
        let reply = client
            .call_method(None::<&str>, "/x", Some("a.b"), "Ping", &())
            .await
            .unwrap();
        let (s,): (String,) = reply.body().deserialize().unwrap();
        assert_eq!(s, "pong");
        assert_eq!(server.await.unwrap().as_deref(), Some("Ping"));
    }
}
