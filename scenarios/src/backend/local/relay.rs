//! A TCP relay between one agent and the controller, so that the local backend can cut a node
//! off the network like a container losing its network: while cut, established connections
//! carry nothing (they stall, they are not reset) and new ones are refused; reconnecting lets
//! the stalled ones flow again.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub struct Relay {
    port: u16,
    up: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Relay {
    /// Listens on a free port of 127.0.0.1 and, when it can get the same port, ::1 (agents may
    /// connect over either); forwards to `target`.
    pub async fn start(target: SocketAddr) -> Result<Relay, String> {
        let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| format!("relay: cannot listen: {e}"))?;
        let port = v4.local_addr().map_err(|e| format!("relay: {e}"))?.port();
        let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, port)).await.ok();
        let (up, _) = watch::channel(true);
        let mut relay = Relay {
            port,
            up,
            tasks: JoinSet::new(),
        };
        relay.accept_on(v4, target);
        if let Some(v6) = v6 {
            relay.accept_on(v6, target);
        }
        Ok(relay)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn accept_on(&mut self, listener: TcpListener, target: SocketAddr) {
        let up = self.up.subscribe();
        self.tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                if !*up.borrow() {
                    // Cut off: the connection attempt fails.
                    drop(client);
                    continue;
                }
                let up = up.clone();
                conns.spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        pump_both(client, server, up).await;
                    }
                });
            }
        });
    }

    /// Cuts (`false`) or restores (`true`) the node's network.
    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

async fn pump_both(client: TcpStream, server: TcpStream, up: watch::Receiver<bool>) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::select! {
        _ = pump(cr, sw, up.clone()) => {}
        _ = pump(sr, cw, up) => {}
    }
}

/// Copies until either side closes, holding the bytes back while the network is cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut up: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if up.wait_for(|u| *u).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Bytes read just before a cut are held until the network is back.
        if up.wait_for(|u| *u).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 64];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> Option<Vec<u8>> {
        s.write_all(msg).await.ok()?;
        let mut b = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut b))
            .await
            .ok()?
            .ok()?;
        Some(b)
    }

    #[tokio::test]
    async fn cut_stalls_established_and_refuses_new_connections() {
        let relay = Relay::start(echo_server().await).await.unwrap();
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, relay.port()))
            .await
            .unwrap();
        assert_eq!(
            roundtrip(&mut s, b"one").await.as_deref(),
            Some(&b"one"[..])
        );
        relay.set_up(false);
        assert_eq!(
            roundtrip(&mut s, b"two").await,
            None,
            "a cut link carried data"
        );
        // A new connection is closed at once.
        let mut fresh = TcpStream::connect((Ipv4Addr::LOCALHOST, relay.port()))
            .await
            .unwrap();
        let mut b = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), fresh.read(&mut b)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        relay.set_up(true);
        // What was held back arrives, and the link works again.
        let mut held = [0u8; 3];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut held))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&held, b"two");
        assert_eq!(
            roundtrip(&mut s, b"three").await.as_deref(),
            Some(&b"three"[..])
        );
    }
}
