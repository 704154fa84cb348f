//! zbus socket halves that edit the SENDER header field on the way (see `wire` for why).
//!
//! zbus reads a byte stream through `ReadHalf::recvmsg`, so the reading wrapper takes whole
//! messages from the socket, rewrites them and hands out the result in whatever pieces zbus
//! asks for. zbus writes one complete message per `send_message` call, which the writing
//! wrapper rewrites as a whole. File descriptors travel with the first bytes of their message
//! in both directions, as on the plain socket.

use std::io::{Error, ErrorKind};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use zbus::connection::socket::{BoxedSplit, ReadHalf, Socket, Split, WriteHalf};
use zbus::fdo::ConnectionCredentials;
use zbus::Message;

use crate::wire;

/// Read half that removes the SENDER field from every incoming message.
#[derive(Debug)]
pub struct StripSender<R> {
    inner: R,
    /// The rewritten message being handed out, and how much of it zbus has taken.
    out: Vec<u8>,
    taken: usize,
    /// Descriptors of that message, given to zbus with its first bytes.
    fds: Vec<OwnedFd>,
    /// The next message, as far as it has arrived.
    inbox: wire::Inbox,
}

impl<R: ReadHalf> StripSender<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            out: Vec::new(),
            taken: 0,
            fds: Vec::new(),
            inbox: wire::Inbox::default(),
        }
    }

    /// Reads the next whole message and stores it rewritten; `Ok(false)` at end of stream.
    async fn next_message(&mut self) -> std::io::Result<bool> {
        loop {
            let room = self.inbox.room().ok_or_else(|| {
                Error::new(ErrorKind::InvalidData, "malformed or oversized message")
            })?;
            if room.is_empty() {
                break;
            }
            let (n, fds) = self.inner.recvmsg(room).await?;
            self.fds.extend(fds);
            if n == 0 {
                if self.inbox.is_empty() {
                    return Ok(false);
                }
                return Err(Error::new(ErrorKind::UnexpectedEof, "message cut off"));
            }
            self.inbox.advance(n);
        }
        let msg = self.inbox.take();
        self.out = wire::drop_sender(&msg)
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, "malformed message header"))?;
        self.taken = 0;
        Ok(true)
    }
}

#[async_trait::async_trait]
impl<R: ReadHalf> ReadHalf for StripSender<R> {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
        if buf.is_empty() {
            return Ok((0, Vec::new()));
        }
        if self.taken >= self.out.len() && !self.next_message().await? {
            return Ok((0, Vec::new()));
        }
        let n = buf.len().min(self.out.len() - self.taken);
        buf[..n].copy_from_slice(&self.out[self.taken..self.taken + n]);
        self.taken += n;
        Ok((n, std::mem::take(&mut self.fds)))
    }

    fn can_pass_unix_fd(&self) -> bool {
        self.inner.can_pass_unix_fd()
    }

    async fn peer_credentials(&mut self) -> std::io::Result<ConnectionCredentials> {
        self.inner.peer_credentials().await
    }
}

/// Write half that stamps SENDER=`name` on every outgoing message, as sd-bus'
/// `sd_bus_set_sender` does.
#[derive(Debug)]
pub struct StampSender<W> {
    inner: W,
    name: String,
}

impl<W: WriteHalf> StampSender<W> {
    pub fn new(inner: W, name: impl Into<String>) -> Self {
        Self {
            inner,
            name: name.into(),
        }
    }
}

#[async_trait::async_trait]
impl<W: WriteHalf> WriteHalf for StampSender<W> {
    async fn send_message(&mut self, msg: &Message) -> zbus::Result<()> {
        let data = msg.data();
        // zbus only hands us messages it serialized itself, so this cannot fail; if it ever
        // did, the message still goes out, just unstamped.
        let Some(bytes) = wire::set_sender(data, &self.name) else {
            return self.inner.send_message(msg).await;
        };
        let fds: Vec<BorrowedFd<'_>> = data.fds().iter().map(|f| f.as_fd()).collect();
        let mut pos = 0;
        while pos < bytes.len() {
            let fds: &[BorrowedFd<'_>] = if pos == 0 { &fds } else { &[] };
            let n = self.inner.sendmsg(&bytes[pos..], fds).await?;
            if n == 0 {
                return Err(Error::new(ErrorKind::WriteZero, "peer stopped reading").into());
            }
            pos += n;
        }
        Ok(())
    }

    async fn sendmsg(&mut self, buffer: &[u8], fds: &[BorrowedFd<'_>]) -> std::io::Result<usize> {
        self.inner.sendmsg(buffer, fds).await
    }

    async fn close(&mut self) -> std::io::Result<()> {
        self.inner.close().await
    }

    fn can_pass_unix_fd(&self) -> bool {
        self.inner.can_pass_unix_fd()
    }

    async fn peer_credentials(&mut self) -> std::io::Result<ConnectionCredentials> {
        self.inner.peer_credentials().await
    }
}

/// `socket` with SENDER removed from what it receives and, if `stamp` is given, set to it on
/// what it sends.
pub fn wrap<S: Socket>(socket: S, stamp: Option<&str>) -> BoxedSplit {
    let (read, write) = socket.split().take();
    let read: Box<dyn ReadHalf> = Box::new(StripSender::new(read));
    let write: Box<dyn WriteHalf> = match stamp {
        Some(name) => Box::new(StampSender::new(write, name)),
        None => Box::new(write),
    };
    Split::new(read, write)
}

#[cfg(test)]
#[path = "wire_socket_tests.rs"]
mod tests;
