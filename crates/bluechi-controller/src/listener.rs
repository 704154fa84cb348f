//! Where agents connect: a socket-activated fd, a dual-stack TCP port, a unix socket (§1.3).
//! Each accepted socket completes the SASL handshake in its own task, so a slow or hostile
//! peer never blocks the loop; `admission` bounds how many may be unregistered at once.

use std::future::Future;
use std::os::fd::FromRawFd;
use std::sync::Arc;

use bluechi_core::config::{ControllerConfig, TcpOptions};
use bluechi_core::link::{self, LinkError, PeerLink};
use bluechi_core::wire_socket::LinkLimits;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc::UnboundedSender;

use crate::admission::{self, Admission};
use crate::controller::Event;

/// What an unregistered peer may send and leave unread.
const UNREGISTERED: LinkLimits = LinkLimits {
    max_queued: LinkLimits::DEFAULT_MAX_QUEUED,
    max_message: admission::UNREGISTERED_MAX_MESSAGE,
    write_stall: LinkLimits::DEFAULT_WRITE_STALL,
};

/// Everything an accept loop needs.
#[derive(Clone)]
struct Accepting {
    guid: String,
    tx: UnboundedSender<Event>,
    admission: Arc<Admission>,
}

const UDS_PATH: &str = "/run/bluechi/bluechi.sock";

pub async fn start(
    cfg: &ControllerConfig,
    tx: UnboundedSender<Event>,
    admission: Arc<Admission>,
) -> Result<(), String> {
    let acc = Accepting {
        guid: link::new_guid(),
        tx,
        admission,
    };
    let mut any = false;
    // The unix socket systemd passed us, if any: then it owns UDS_PATH and we must not
    // replace its file (its mode, 0666, lets unprivileged agents in).
    let mut activated_unix: Option<std::path::PathBuf> = None;
    if let Some(fd) = activated_fd() {
        tracing::info!("Waiting for connection requests on configured socket unit...");
        // SAFETY: LISTEN_FDS/LISTEN_PID say fd 3 was passed to this very process.
        let std_sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let unix_addr = nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(fd).ok();
        if let Some(addr) = unix_addr {
            activated_unix = addr.path().map(std::path::Path::to_path_buf);
            let l = std::os::unix::net::UnixListener::from(std_sock);
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            spawn_unix(
                UnixListener::from_std(l).map_err(|e| e.to_string())?,
                acc.clone(),
            );
        } else {
            let l = std::net::TcpListener::from(std_sock);
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            spawn_tcp(
                TcpListener::from_std(l).map_err(|e| e.to_string())?,
                cfg.tcp,
                acc.clone(),
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
        spawn_tcp(l, cfg.tcp, acc.clone());
        any = true;
    }
    if cfg.use_uds {
        if activated_unix.as_deref() == Some(std::path::Path::new(UDS_PATH)) {
            tracing::warn!("Socket {UDS_PATH} already in use by the activated socket");
        } else {
            match bind_uds() {
                Ok(l) => {
                    tracing::info!("Waiting for connection requests on socket {UDS_PATH}...");
                    spawn_unix(l, acc);
                    any = true;
                }
                // Deliberate difference: a missing /run/bluechi is not fatal while TCP works.
                Err(e) => tracing::error!("Failed to listen on socket {UDS_PATH}: {e}"),
            }
        }
    }
    if !any {
        return Err("No connection request handler configured".into());
    }
    Ok(())
}

/// Binds UDS_PATH; a stale file left by an earlier run is removed and the bind tried once more
/// (upstream's order: bind first, unlink only when the path is taken).
fn bind_uds() -> std::io::Result<UnixListener> {
    match UnixListener::bind(UDS_PATH) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let _ = std::fs::remove_file(UDS_PATH);
            UnixListener::bind(UDS_PATH)
        }
        other => other,
    }
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

fn spawn_tcp(l: TcpListener, tcp: TcpOptions, acc: Accepting) {
    tokio::spawn(async move {
        loop {
            let (sock, addr) = match l.accept().await {
                Ok(x) => x,
                Err(e) => {
                    accept_failed(&acc.admission, &e).await;
                    continue;
                }
            };
            let guid = acc.guid.clone();
            // An IPv4 agent on the dual-stack socket shows as itself, not as ::ffff:a.b.c.d.
            let label =
                std::net::SocketAddr::new(addr.ip().to_canonical(), addr.port()).to_string();
            handshake(&acc, addr.ip().to_string(), label.clone(), async move {
                link::accept_tcp(sock, &tcp, &guid, &label, UNREGISTERED).await
            });
        }
    });
}

fn spawn_unix(l: UnixListener, acc: Accepting) {
    tokio::spawn(async move {
        loop {
            let sock = match l.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    accept_failed(&acc.admission, &e).await;
                    continue;
                }
            };
            let guid = acc.guid.clone();
            let label = unix_label(&sock);
            handshake(&acc, String::new(), label.clone(), async move {
                link::accept_unix(sock, &guid, &label, UNREGISTERED).await
            });
        }
    });
}

/// Runs one handshake in its own task, registered with admission so it can be evicted.
fn handshake<F>(acc: &Accepting, peer_ip: String, label: String, accept: F)
where
    F: Future<Output = Result<PeerLink, LinkError>> + Send + 'static,
{
    let id = acc.admission.admit();
    let (tx, admission) = (acc.tx.clone(), acc.admission.clone());
    let task = tokio::spawn(async move {
        match accept.await {
            Ok(PeerLink { stream, control }) => {
                if !admission.authenticated(id, &control) {
                    control.close("evicted during its handshake");
                    return;
                }
                let _ = tx.send(Event::Accepted {
                    id,
                    stream: Box::new(stream),
                    control,
                    peer_ip,
                });
            }
            Err(e) => {
                admission.closed(id);
                match &e {
                    // Said once per interval, with what holds the descriptors.
                    LinkError::Io(io) if admission::is_fd_exhaustion(io) => {
                        admission.out_of_fds(io)
                    }
                    _ => tracing::warn!("Rejected connection from {label}: {e}"),
                }
            }
        }
    });
    acc.admission.handshaking(id, task.abort_handle());
}

/// Names a unix peer by its credentials, the only identity it has.
fn unix_label(sock: &tokio::net::UnixStream) -> String {
    match sock.peer_cred() {
        Ok(c) => format!(
            "unix socket peer (pid {}, uid {})",
            c.pid().unwrap_or(0),
            c.uid()
        ),
        Err(_) => "unix socket peer".into(),
    }
}

/// A failed accept: out of descriptors frees one and logs at most once per interval; anything
/// else is logged. Either way the loop backs off briefly instead of spinning.
async fn accept_failed(admission: &Admission, e: &std::io::Error) {
    if admission::is_fd_exhaustion(e) {
        admission.out_of_fds(e);
    } else {
        tracing::error!("Failed to accept a connection: {e}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}
