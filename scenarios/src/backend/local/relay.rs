//! A TCP relay between one agent and the controller, so that the local backend can cut a node
//! off the network as `podman network disconnect` does: established connections go silent
//! (stalled, not reset) and new ones are refused. Reconnecting lets new connections through,
//! but the old ones stay silent for good: a container comes back with a new address, so
//! nothing sent to the old one arrives again. Peers find out through their heartbeats.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub struct Relay {
    port: u16,
    v6: bool,
    /// The network's generation: odd while cut; a connection carries data only while the
    /// generation is the one it was accepted in.
    net: watch::Sender<u64>,
    /// Why the link is cut: this node is off the network, or the controller's node is.
    cuts: std::sync::Mutex<(bool, bool)>,
    tasks: JoinSet<()>,
}

/// Which end of the link is off the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The agent's node.
    Own,
    /// The controller's node.
    Controller,
}

fn is_up(generation: u64) -> bool {
    generation.is_multiple_of(2)
}

impl Relay {
    /// Listens on one free port of both 127.0.0.1 and ::1 (agents may connect over either;
    /// without IPv6 on this machine, 127.0.0.1 only); forwards to `target`.
    pub async fn start(target: SocketAddr) -> Result<Relay, String> {
        let mut tries = 0;
        let (v4, v6, port) = loop {
            let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .map_err(|e| format!("relay: cannot listen on 127.0.0.1: {e}"))?;
            let port = v4.local_addr().map_err(|e| format!("relay: {e}"))?.port();
            match TcpListener::bind((Ipv6Addr::LOCALHOST, port)).await {
                Ok(v6) => break (v4, Some(v6), port),
                // Someone else has that port on ::1: try another one.
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    if tries == 20 {
                        return Err(format!("relay: cannot listen on [::1]:{port}: {e}"));
                    }
                    tries += 1;
                }
                // No IPv6 here (no ::1, or the family disabled): IPv4 only.
                Err(_) => break (v4, None, port),
            }
        };
        let (net, _) = watch::channel(0);
        let mut relay = Relay {
            port,
            v6: v6.is_some(),
            net,
            cuts: std::sync::Mutex::new((false, false)),
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

    /// Whether agents can reach it over IPv6 too.
    pub fn has_v6(&self) -> bool {
        self.v6
    }

    fn accept_on(&mut self, listener: TcpListener, target: SocketAddr) {
        let net = self.net.subscribe();
        self.tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let generation = *net.borrow();
                if !is_up(generation) {
                    // Cut off: the connection attempt fails.
                    drop(client);
                    continue;
                }
                let net = net.clone();
                conns.spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        pump_both(client, server, net, generation).await;
                    }
                });
            }
        });
    }

    /// Takes `end` off the network (`cut`) or back; the link carries data only while
    /// neither end is cut.
    pub fn set_cut(&self, end: End, cut: bool) {
        let mut cuts = self.cuts.lock().unwrap_or_else(|p| p.into_inner());
        match end {
            End::Own => cuts.0 = cut,
            End::Controller => cuts.1 = cut,
        }
        let up = !cuts.0 && !cuts.1;
        self.net.send_modify(|g| {
            if is_up(*g) != up {
                *g += 1;
            }
        });
    }
}

async fn pump_both(
    client: TcpStream,
    server: TcpStream,
    net: watch::Receiver<u64>,
    generation: u64,
) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::select! {
        _ = pump(cr, sw, net.clone(), generation) => {}
        _ = pump(sr, cw, net, generation) => {}
    }
}

/// Copies until either side closes; from the first cut on, copies nothing, ever (the
/// connection stays open and silent until the relay goes).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut net: watch::Receiver<u64>,
    generation: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = net.wait_for(|g| *g != generation) => break,
        };
        // Bytes read as the cut came in are lost with the connection.
        if *net.borrow() != generation || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // Silent until the relay is dropped (which aborts this task).
    std::future::pending::<()>().await;
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
        tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut b))
            .await
            .ok()?
            .ok()?;
        Some(b)
    }

    #[tokio::test]
    async fn a_cut_silences_old_connections_for_good_and_refuses_new_ones_until_reconnect() {
        let relay = Relay::start(echo_server().await).await.unwrap();
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, relay.port()))
            .await
            .unwrap();
        assert_eq!(
            roundtrip(&mut s, b"one").await.as_deref(),
            Some(&b"one"[..])
        );
        relay.set_cut(End::Own, true);
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
        relay.set_cut(End::Own, false);
        // The old connection stays silent; a new one works.
        assert_eq!(
            roundtrip(&mut s, b"three").await,
            None,
            "an old link came back"
        );
        let mut again = TcpStream::connect((Ipv4Addr::LOCALHOST, relay.port()))
            .await
            .unwrap();
        assert_eq!(
            roundtrip(&mut again, b"four").await.as_deref(),
            Some(&b"four"[..])
        );
    }

    #[tokio::test]
    async fn a_link_is_up_only_while_neither_end_is_cut() {
        let relay = Relay::start(echo_server().await).await.unwrap();
        relay.set_cut(End::Own, true);
        relay.set_cut(End::Controller, true);
        relay.set_cut(End::Controller, false);
        // Still cut at its own end: a new connection is closed at once.
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, relay.port()))
            .await
            .unwrap();
        let mut b = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        relay.set_cut(End::Own, false);
        let mut ok = TcpStream::connect((Ipv4Addr::LOCALHOST, relay.port()))
            .await
            .unwrap();
        assert_eq!(roundtrip(&mut ok, b"up").await.as_deref(), Some(&b"up"[..]));
    }
}
