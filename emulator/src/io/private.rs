//! systemd's private socket (`/run/systemd/private`): peer-to-peer D-Bus connections that
//! sd-bus clients (systemctl, the BlueChi agent) use without a bus daemon.

use super::runtime::{Event, BUS_NAME};
use bluechi_core::wire_socket::StampSender;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::mpsc::Sender;
use tokio::sync::Semaphore;
use zbus::connection::socket::{BoxedSplit, ReadHalf, Socket, Split, WriteHalf};

fn stamped(stream: tokio::net::UnixStream) -> BoxedSplit {
    let (read, write) = stream.split().take();
    let read: Box<dyn ReadHalf> = Box::new(read);
    let write: Box<dyn WriteHalf> = Box::new(StampSender::new(write, BUS_NAME));
    Split::new(read, write)
}

/// Binds the socket, replacing a stale one left by an earlier run.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A stale file is replaced; a live manager's socket is not ours to take.
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "a running manager is listening there",
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    UnixListener::bind(path)
}

/// How long a peer may take to authenticate before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are refused so that peers cannot exhaust our fds.
pub const MAX_CONNECTIONS: usize = 256;
/// Pause after a failed accept() (e.g. EMFILE), which would otherwise fail again at once.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How often a repeating accept problem is logged at most.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Says a repeating problem once per interval, with how often it happened meanwhile: a
/// descriptor shortage fails every accept, ten times a second.
#[derive(Default)]
struct Throttle {
    last: Option<tokio::time::Instant>,
    count: u64,
}

impl Throttle {
    fn warn(&mut self, line: impl FnOnce(u64) -> String) {
        self.count += 1;
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_none_or(|l| now.duration_since(l) >= WARN_INTERVAL)
        {
            tracing::warn!("{}", line(self.count));
            self.last = Some(now);
            self.count = 0;
        }
    }
}

/// Accepts connections forever; each one authenticates (EXTERNAL) as a zbus p2p server and
/// is handed to the runtime, which forwards its messages with `Event::Call`.
pub async fn accept_loop(listener: UnixListener, tx: Sender<Event>, first_id: u64) {
    let mut next_id = first_id;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (mut accept_errors, mut refusals) = (Throttle::default(), Throttle::default());
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                accept_errors
                    .warn(|n| format!("private socket: accept failed: {e} ({n} since last said)"));
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refusals.warn(|n| {
                format!(
                    "private socket: {MAX_CONNECTIONS} connections open, refusing more \
                     ({n} since last said)"
                )
            });
            continue;
        };
        let id = next_id;
        next_id += 1;
        let tx = tx.clone();
        // Authentication waits on the peer; a slow client must not block the others.
        tokio::spawn(async move {
            let build = async {
                // Everything leaves with systemd's name as sender, as sd_bus_set_sender does.
                // Only the write side is wrapped: zbus reads the SASL handshake through the
                // read half, which must stay a plain byte stream.
                zbus::connection::Builder::socket(stamped(stream))
                    .server(zbus::Guid::generate())?
                    .p2p()
                    .build()
                    .await
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, build).await {
                Ok(Ok(conn)) => {
                    let stream = zbus::MessageStream::from(&conn);
                    if tx.send(Event::Connected(id, conn)).await.is_ok() {
                        // The slot is held until the peer's stream ends.
                        let _ = super::runtime::forward(id, stream, tx).await;
                    }
                }
                Ok(Err(e)) => tracing::debug!("private socket: connection setup failed: {e}"),
                Err(_) => tracing::debug!("private socket: peer did not authenticate in time"),
            }
            drop(slot);
        });
    }
}
