//! systemd's private socket (`/run/systemd/private`): peer-to-peer D-Bus connections that
//! sd-bus clients (systemctl, the BlueChi agent) use without a bus daemon.

use super::runtime::{Event, BUS_NAME};
use std::os::fd::BorrowedFd;
use std::path::Path;
use tokio::net::UnixListener;
use tokio::sync::mpsc::UnboundedSender;
use zbus::connection::socket::{BoxedSplit, ReadHalf, Socket, Split, WriteHalf};
use zbus::message::Type as MsgType;
use zbus::Message;

/// The write half of a private connection: signals leave with systemd's name as sender.
#[derive(Debug)]
struct StampSender(Box<dyn WriteHalf>);

#[async_trait::async_trait]
impl WriteHalf for StampSender {
    async fn send_message(&mut self, msg: &Message) -> zbus::Result<()> {
        let stamped = (msg.message_type() == MsgType::Signal && msg.header().sender().is_none())
            .then(|| super::wire::add_sender(msg.data(), BUS_NAME))
            .flatten();
        let Some(bytes) = stamped else {
            return self.0.send_message(msg).await;
        };
        let mut pos = 0;
        while pos < bytes.len() {
            pos += self.0.sendmsg(&bytes[pos..], &[]).await?;
        }
        Ok(())
    }

    async fn sendmsg(&mut self, buffer: &[u8], fds: &[BorrowedFd<'_>]) -> std::io::Result<usize> {
        self.0.sendmsg(buffer, fds).await
    }

    async fn close(&mut self) -> std::io::Result<()> {
        self.0.close().await
    }

    fn can_pass_unix_fd(&self) -> bool {
        self.0.can_pass_unix_fd()
    }

    async fn peer_credentials(&mut self) -> std::io::Result<zbus::fdo::ConnectionCredentials> {
        self.0.peer_credentials().await
    }
}

fn stamped(stream: tokio::net::UnixStream) -> BoxedSplit {
    let (read, write) = stream.split().take();
    let read: Box<dyn ReadHalf> = Box::new(read);
    let write: Box<dyn WriteHalf> = Box::new(StampSender(Box::new(write)));
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
            let built = match zbus::connection::Builder::socket(stamped(stream))
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
