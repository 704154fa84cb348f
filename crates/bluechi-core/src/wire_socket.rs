//! zbus socket halves for the peer link: SENDER editing (see `wire` for why), bounded queues,
//! and a control handle that can drop the link.
//!
//! zbus reads a byte stream through `ReadHalf::recvmsg`, so the reading wrapper takes whole
//! messages from the socket, rewrites them and hands out the result in whatever pieces zbus
//! asks for. zbus writes one complete message per `send_message` call and awaits it under a
//! lock, so a peer that stops reading would block every sender on the connection — and with
//! it the daemon's event loop. The writing wrapper therefore only queues: a task per link
//! writes the queue out, and a queue that grows past its bound drops the link (the peer has
//! stopped reading). File descriptors travel with the first bytes of their message in both
//! directions, as on the plain socket.

use std::io::{Error, ErrorKind};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
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
    /// Where the current size cap comes from.
    control: LinkControl,
}

impl<R: ReadHalf> StripSender<R> {
    fn new(inner: R, control: LinkControl) -> Self {
        Self {
            inner,
            out: Vec::new(),
            taken: 0,
            fds: Vec::new(),
            inbox: wire::Inbox::with_limit(control.max_message()),
            control,
        }
    }

    /// Reads the next whole message and stores it rewritten; `Ok(false)` at end of stream.
    async fn next_message(&mut self) -> std::io::Result<bool> {
        loop {
            // Read afresh each time: the owner raises the cap when the peer registers, which
            // may happen while this read already waits for the next message.
            self.inbox.set_limit(self.control.max_message());
            let Some(room) = self.inbox.room() else {
                let why = "sent a malformed or oversized message";
                self.control.close(why);
                return Err(Error::new(ErrorKind::InvalidData, why));
            };
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
        let Some(out) = wire::drop_sender(&msg) else {
            let why = "sent a malformed message header";
            self.control.close(why);
            return Err(Error::new(ErrorKind::InvalidData, why));
        };
        self.out = out;
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
/// `sd_bus_set_sender` does, writing directly: for the emulator's private socket, whose zbus
/// handshake runs through this half and whose writes already go through a bounded per-peer
/// queue of its own (`systemd_emulator::io::outq`).
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
        Ok(write_all(&mut self.inner, &bytes, &fds, None).await?)
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

/// Bounds of one peer link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkLimits {
    /// Bytes that may wait unsent. More means the peer stopped reading: the link is dropped.
    /// A single message larger than this still goes out when the queue is empty.
    pub max_queued: usize,
    /// Largest incoming message, until [`LinkControl::set_max_message`] changes it.
    pub max_message: usize,
    /// How long a write may make no progress at all. A peer that lets one hang this long has
    /// stopped reading, even if its queue is short: the link is dropped, so nothing stays
    /// pinned by it (a slow reader that keeps taking bytes is not affected).
    pub write_stall: Duration,
}

impl LinkLimits {
    /// A trusted, registered peer: sd-bus' own message cap (`BUS_MESSAGE_SIZE_MAX`).
    pub const REGISTERED_MAX_MESSAGE: usize = wire::MAX_MESSAGE;
    /// Enough for hours of job and unit signals at any real rate; a peer that leaves this
    /// much unread is not reading at all.
    pub const DEFAULT_MAX_QUEUED: usize = 16 * 1024 * 1024;

    /// Upstream's method-call timeout on the peer link: a write stuck longer is a peer gone.
    pub const DEFAULT_WRITE_STALL: Duration = Duration::from_secs(30);

    /// For a link to a peer we trust as much as sd-bus trusts its peers.
    pub const fn trusted() -> Self {
        Self {
            max_queued: Self::DEFAULT_MAX_QUEUED,
            max_message: Self::REGISTERED_MAX_MESSAGE,
            write_stall: Self::DEFAULT_WRITE_STALL,
        }
    }
}

/// The owner's handle on a wrapped socket: close it from outside (the halves then see the end
/// of the stream, so zbus winds the connection down as if the peer had left), change the
/// incoming size cap, and read how much is queued. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LinkControl(Arc<Control>);

#[derive(Debug)]
struct Control {
    /// What log lines call the peer; the owner may refine it (a node name once registered).
    label: Mutex<String>,
    /// A duplicate of the socket, so `shutdown(2)` reaches it whoever holds the halves (zbus
    /// owns them and offers no way to shut a socket down). One descriptor more per link.
    fd: OwnedFd,
    max_message: AtomicUsize,
    max_queued: usize,
    queued: AtomicUsize,
    closed: AtomicBool,
}

impl LinkControl {
    fn new(fd: OwnedFd, label: String, limits: LinkLimits) -> Self {
        Self(Arc::new(Control {
            label: Mutex::new(label),
            fd,
            max_message: AtomicUsize::new(limits.max_message),
            max_queued: limits.max_queued,
            queued: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }))
    }

    pub fn label(&self) -> String {
        self.0.label.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn set_label(&self, label: impl Into<String>) {
        if let Ok(mut l) = self.0.label.lock() {
            *l = label.into();
        }
    }

    /// Raises or lowers the cap on incoming messages, checked as each one's header arrives.
    pub fn set_max_message(&self, n: usize) {
        self.0.max_message.store(n, Ordering::Relaxed);
    }

    fn max_message(&self) -> usize {
        self.0.max_message.load(Ordering::Relaxed)
    }

    /// Bytes queued for the peer and not yet written to the socket.
    pub fn queued(&self) -> usize {
        self.0.queued.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Relaxed)
    }

    /// Drops the link for misbehaving, logging `why` once (a warning) with the peer's label.
    /// Both directions are shut down: a blocked write fails and the reader sees the end of the
    /// stream.
    pub fn close(&self, why: &str) {
        self.shut(why, true);
    }

    /// Drops a link that already failed (the peer left): the same, logged at debug level.
    fn fail(&self, why: &str) {
        self.shut(why, false);
    }

    fn shut(&self, why: &str, warn: bool) {
        if self.0.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        if warn {
            tracing::warn!("Dropping peer {}: {why}", self.label());
        } else {
            tracing::debug!("Dropping peer {}: {why}", self.label());
        }
        let _ = nix::sys::socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(&self.0.fd),
            nix::sys::socket::Shutdown::Both,
        );
    }

    /// Counts `n` more bytes queued; false (and the link closed) if that overflows the bound.
    fn reserve(&self, n: usize) -> bool {
        let before = self.0.queued.fetch_add(n, Ordering::Relaxed);
        if before > 0 && before.saturating_add(n) > self.0.max_queued {
            self.close(&format!(
                "not reading: {} bytes unsent exceed the outgoing queue limit of {}",
                before.saturating_add(n),
                self.0.max_queued
            ));
            return false;
        }
        true
    }

    fn release(&self, n: usize) {
        self.0.queued.fetch_sub(n, Ordering::Relaxed);
    }
}

/// One message waiting to be written.
struct Outgoing {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
}

/// Write half that queues instead of writing, and stamps SENDER=`stamp` (if any) on every
/// outgoing message, as sd-bus' `sd_bus_set_sender` does.
#[derive(Debug)]
pub struct QueuedWrite {
    /// `None` once closed: the writer task flushes what is queued and closes the socket.
    queue: Option<mpsc::UnboundedSender<Outgoing>>,
    /// Fires when the writer has flushed and closed after `queue` was dropped.
    flushed: Option<oneshot::Receiver<()>>,
    control: LinkControl,
    stamp: Option<String>,
    can_pass_unix_fd: bool,
    /// Asked of the socket once, before its write half moved into the writer task.
    credentials: Result<ConnectionCredentials, String>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outgoing({} bytes)", self.bytes.len())
    }
}

impl QueuedWrite {
    fn enqueue(&mut self, bytes: Vec<u8>, fds: Vec<OwnedFd>) -> std::io::Result<()> {
        let gone = || Error::new(ErrorKind::BrokenPipe, "peer link closed");
        let queue = self.queue.as_ref().ok_or_else(gone)?;
        if self.control.is_closed() {
            return Err(gone());
        }
        let n = bytes.len();
        if !self.control.reserve(n) {
            return Err(Error::new(ErrorKind::WouldBlock, "peer is not reading"));
        }
        queue.send(Outgoing { bytes, fds }).map_err(|_| {
            self.control.release(n);
            gone()
        })
    }
}

/// How long closing a link waits for its queue to go out.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Writes the queue out until every sender is gone, then closes the socket and says so on
/// `flushed`. A write that fails or stalls drops the link (its queued bytes stay counted: the
/// link is closed and refuses more).
async fn drain(
    mut inner: Box<dyn WriteHalf>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    control: LinkControl,
    stall: Duration,
    flushed: oneshot::Sender<()>,
) {
    while let Some(out) = rx.recv().await {
        let n = out.bytes.len();
        let fds: Vec<BorrowedFd<'_>> = out.fds.iter().map(|f| f.as_fd()).collect();
        match write_all(inner.as_mut(), &out.bytes, &fds, Some(stall)).await {
            Ok(()) => control.release(n),
            Err(e) if e.kind() == ErrorKind::TimedOut => {
                return control.close(&format!(
                    "not reading: a write made no progress for {} s",
                    stall.as_secs()
                ))
            }
            Err(e) => return control.fail(&format!("write failed: {e}")),
        }
    }
    let _ = inner.close().await;
    let _ = flushed.send(());
}

/// Writes one whole message; its descriptors go with its first bytes. With `stall`, a single
/// write that makes no progress for that long fails with `TimedOut`: a slow reader that keeps
/// taking bytes is fine however long the message.
async fn write_all<W: WriteHalf + ?Sized>(
    w: &mut W,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    stall: Option<Duration>,
) -> std::io::Result<()> {
    let mut pos = 0;
    while pos < bytes.len() {
        let fds: &[BorrowedFd<'_>] = if pos == 0 { fds } else { &[] };
        let write = w.sendmsg(&bytes[pos..], fds);
        let n = match stall {
            Some(limit) => tokio::time::timeout(limit, write)
                .await
                .map_err(|_| Error::new(ErrorKind::TimedOut, "no progress"))??,
            None => write.await?,
        };
        if n == 0 {
            return Err(Error::new(ErrorKind::WriteZero, "peer stopped reading"));
        }
        pos += n;
    }
    Ok(())
}

#[async_trait::async_trait]
impl WriteHalf for QueuedWrite {
    async fn send_message(&mut self, msg: &Message) -> zbus::Result<()> {
        let data = msg.data();
        // zbus only hands us messages it serialized itself, so stamping cannot fail; if it
        // ever did, the message still goes out, just unstamped.
        let bytes = match &self.stamp {
            Some(name) => wire::set_sender(data, name).unwrap_or_else(|| data.to_vec()),
            None => data.to_vec(),
        };
        let fds = data
            .fds()
            .iter()
            .map(|f| f.as_fd().try_clone_to_owned())
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(self.enqueue(bytes, fds)?)
    }

    async fn sendmsg(&mut self, buffer: &[u8], fds: &[BorrowedFd<'_>]) -> std::io::Result<usize> {
        let fds = fds
            .iter()
            .map(|f| f.try_clone_to_owned())
            .collect::<std::io::Result<Vec<_>>>()?;
        self.enqueue(buffer.to_vec(), fds)?;
        Ok(buffer.len())
    }

    /// Lets the writer flush what is queued and close the socket, waiting for that a short
    /// while, so a daemon that closes its link and exits still delivers its last messages.
    async fn close(&mut self) -> std::io::Result<()> {
        self.queue = None;
        if let Some(flushed) = self.flushed.take() {
            if tokio::time::timeout(CLOSE_FLUSH, flushed).await.is_err() {
                // The peer is not taking the rest: give up on it now rather than at the stall.
                self.control.fail("closed with messages unsent");
            }
        }
        Ok(())
    }

    fn can_pass_unix_fd(&self) -> bool {
        self.can_pass_unix_fd
    }

    async fn peer_credentials(&mut self) -> std::io::Result<ConnectionCredentials> {
        match &self.credentials {
            Ok(c) => Ok(copy_credentials(c)),
            Err(e) => Err(Error::other(e.clone())),
        }
    }
}

/// `ConnectionCredentials` is not `Clone`; the fields a socket can report are copied, except
/// the process fd: holding a pidfd for the life of every link would double its fd cost.
fn copy_credentials(c: &ConnectionCredentials) -> ConnectionCredentials {
    let mut out = ConnectionCredentials::default();
    if let Some(uid) = c.unix_user_id() {
        out = out.set_unix_user_id(uid);
    }
    for gid in c.unix_group_ids().into_iter().flatten() {
        out = out.add_unix_group_id(*gid);
    }
    if let Some(pid) = c.process_id() {
        out = out.set_process_id(pid);
    }
    if let Some(fd) = c
        .process_fd()
        .and_then(|fd| fd.as_fd().try_clone_to_owned().ok())
    {
        out = out.set_process_fd(fd.into());
    }
    if let Some(label) = c.linux_security_label() {
        out = out.set_linux_security_label(label.clone());
    }
    out
}

/// `socket` with SENDER removed from what it receives and, if `stamp` is given, set to it on
/// what it sends; writes queued within `limits`. Must run inside a tokio runtime (the writer
/// is a task). `label` names the peer in log lines.
pub async fn wrap<S: Socket + AsFd>(
    socket: S,
    stamp: Option<&str>,
    label: impl Into<String>,
    limits: LinkLimits,
) -> std::io::Result<(BoxedSplit, LinkControl)> {
    let fd = socket.as_fd().try_clone_to_owned()?;
    let control = LinkControl::new(fd, label.into(), limits);
    let (read, mut write) = socket.split().take();
    let credentials = match write.peer_credentials().await {
        Ok(c) => Ok(copy_credentials(&c)),
        Err(e) => Err(e.to_string()),
    };
    let can_pass_unix_fd = write.can_pass_unix_fd();
    let (tx, rx) = mpsc::unbounded_channel();
    let (flushed_tx, flushed) = oneshot::channel();
    let stall = limits.write_stall;
    tokio::spawn(drain(
        Box::new(write),
        rx,
        control.clone(),
        stall,
        flushed_tx,
    ));
    let read: Box<dyn ReadHalf> = Box::new(StripSender::new(read, control.clone()));
    let write: Box<dyn WriteHalf> = Box::new(QueuedWrite {
        queue: Some(tx),
        flushed: Some(flushed),
        control: control.clone(),
        stamp: stamp.map(str::to_string),
        can_pass_unix_fd,
        credentials,
    });
    Ok((Split::new(read, write), control))
}

#[cfg(test)]
#[path = "wire_socket_tests.rs"]
mod tests;
