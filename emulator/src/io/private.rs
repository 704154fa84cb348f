//! systemd's private socket (`/run/systemd/private`): peer-to-peer D-Bus connections that
//! sd-bus clients (systemctl, the BlueChi agent) use without a bus daemon.

use super::runtime::{Event, BUS_NAME};
use bluechi_core::wire_socket::StampSender;
use std::path::Path;
use tokio::net::UnixListener;
use tokio::sync::mpsc::UnboundedSender;
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
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    UnixListener::bind(path)
}

/// Accepts connections forever; each one authenticates (EXTERNAL) as a zbus p2p server and
/// is handed to the runtime, which forwards its messages with `Event::Call`.
pub async fn accept_loop(listener: UnixListener, tx: UnboundedSender<Event>, first_id: u64) {
    let mut next_id = first_id;
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("private socket: accept failed: {e}");
                continue;
            }
        };
        let id = next_id;
        next_id += 1;
        let tx = tx.clone();
        // Authentication waits on the peer; a slow client must not block the others.
        tokio::spawn(async move {
            let built = match zbus::connection::Builder::socket(
                // Everything leaves with systemd's name as sender, as sd_bus_set_sender does.
                // Only the write side is wrapped: zbus reads the SASL handshake through the
                // read half, which must stay a plain byte stream.
                stamped(stream),
            )
            .server(zbus::Guid::generate())
            {
                Ok(b) => b.p2p().build().await,
                Err(e) => Err(e),
            };
            match built {
                Ok(conn) => {
                    let stream = zbus::MessageStream::from(&conn);
                    if tx.send(Event::Connected(id, conn)).is_ok() {
                        super::runtime::forward(id, stream, tx);
                    }
                }
                Err(e) => tracing::debug!("private socket: connection setup failed: {e}"),
            }
        });
    }
}
