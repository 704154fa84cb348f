//! Where agents connect: a socket-activated fd, a dual-stack TCP port, a unix socket (§1.3).
//! Each accepted socket completes the SASL handshake in its own task, so a slow or hostile
//! peer never blocks the loop.

use std::os::fd::FromRawFd;

use bluechi_core::config::{ControllerConfig, TcpOptions};
use bluechi_core::link;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc::UnboundedSender;

use crate::controller::Event;

const UDS_PATH: &str = "/run/bluechi/bluechi.sock";

pub async fn start(cfg: &ControllerConfig, tx: UnboundedSender<Event>) -> Result<(), String> {
    let guid = link::new_guid();
    let mut any = false;
    if let Some(fd) = activated_fd() {
        tracing::info!("Waiting for connection requests on configured socket unit...");
        // SAFETY: LISTEN_FDS/LISTEN_PID say fd 3 was passed to this very process.
        let std_sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let is_unix = nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(fd).is_ok();
        if is_unix {
            let l = std::os::unix::net::UnixListener::from(std_sock);
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            spawn_unix(
                UnixListener::from_std(l).map_err(|e| e.to_string())?,
                guid.clone(),
                tx.clone(),
            );
        } else {
            let l = std::net::TcpListener::from(std_sock);
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            spawn_tcp(
                TcpListener::from_std(l).map_err(|e| e.to_string())?,
                cfg.tcp,
                guid.clone(),
                tx.clone(),
            );
        }
        any = true;
    }
    if cfg.use_tcp {
        let l = match TcpListener::bind(("::", cfg.port)).await {
            Ok(l) => l,
            // No IPv6 in this kernel: fall back to IPv4 only, as upstream does.
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                TcpListener::bind(("0.0.0.0", cfg.port))
                    .await
                    .map_err(|e| format!("Failed to listen on port {}: {e}", cfg.port))?
            }
            Err(e) if any && e.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::warn!("Port {} already in use by the activated socket", cfg.port);
                return Ok(());
            }
            Err(e) => return Err(format!("Failed to listen on port {}: {e}", cfg.port)),
        };
        tracing::info!("Waiting for connection requests on port {}...", cfg.port);
        spawn_tcp(l, cfg.tcp, guid.clone(), tx.clone());
        any = true;
    }
    if cfg.use_uds {
        let _ = std::fs::remove_file(UDS_PATH);
        match UnixListener::bind(UDS_PATH) {
            Ok(l) => {
                tracing::info!("Waiting for connection requests on socket {UDS_PATH}...");
                spawn_unix(l, guid, tx);
                any = true;
            }
            // Deliberate difference: a missing /run/bluechi is not fatal while TCP works.
            Err(e) => tracing::error!("Failed to listen on socket {UDS_PATH}: {e}"),
        }
    }
    if !any {
        return Err("No connection request handler configured".into());
    }
    Ok(())
}

/// fd 3 when systemd-style socket activation passed exactly one socket to us.
fn activated_fd() -> Option<i32> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    if pid != std::process::id() {
        return None;
    }
    let n: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    (n == 1).then_some(3)
}

fn spawn_tcp(l: TcpListener, tcp: TcpOptions, guid: String, tx: UnboundedSender<Event>) {
    tokio::spawn(async move {
        loop {
            let (sock, addr) = match l.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!("Failed to accept a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (guid, tx) = (guid.clone(), tx.clone());
            tokio::spawn(async move {
                match link::accept_tcp(sock, &tcp, &guid).await {
                    Ok(stream) => {
                        let _ = tx.send(Event::Accepted {
                            stream: Box::new(stream),
                            peer_ip: addr.ip().to_string(),
                        });
                    }
                    Err(e) => tracing::warn!("Rejected connection from {addr}: {e}"),
                }
            });
        }
    });
}

fn spawn_unix(l: UnixListener, guid: String, tx: UnboundedSender<Event>) {
    tokio::spawn(async move {
        loop {
            let sock = match l.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::error!("Failed to accept a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (guid, tx) = (guid.clone(), tx.clone());
            tokio::spawn(async move {
                match link::accept_unix(sock, &guid).await {
                    Ok(stream) => {
                        let _ = tx.send(Event::Accepted {
                            stream: Box::new(stream),
                            peer_ip: String::new(),
                        });
                    }
                    Err(e) => tracing::warn!("Rejected unix connection: {e}"),
                }
            });
        }
    });
}
