//! sd_notify sockets: one abstract unix datagram socket per spawned process that may notify,
//! so a message is tied to its unit even when the sender (e.g. `systemd-notify`) has already
//! exited; SCM_CREDENTIALS tells the sender's PID for NotifyAccess=main/exec.

use nix::sys::socket::{
    bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr, UnixCredentials,
};
use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// systemd accepts notifications up to this size.
const MAX_MESSAGE: usize = 4096;

/// A notification: the token of the process tree it came from, the sender PID and the text.
pub type Note = (u64, u32, String);

pub struct NotifySockets {
    tx: mpsc::UnboundedSender<Note>,
    tasks: HashMap<u64, JoinHandle<()>>,
}

impl NotifySockets {
    pub fn new(tx: mpsc::UnboundedSender<Note>) -> Self {
        NotifySockets {
            tx,
            tasks: HashMap::new(),
        }
    }

    /// Binds a socket for `token` and returns the NOTIFY_SOCKET value (`@name`).
    pub fn open(&mut self, token: u64) -> std::io::Result<String> {
        let name = format!("bluechi-emulator/{}/notify/{token}", std::process::id());
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        bind(fd.as_raw_fd(), &UnixAddr::new_abstract(name.as_bytes())?)?;
        setsockopt(&fd, sockopt::PassCred, &true)?;
        let sock = tokio::net::UnixDatagram::from_std(fd.into())?;
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            loop {
                match receive(&sock).await {
                    Ok(Some((pid, msg))) => {
                        if tx.send((token, pid, msg)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!("notify socket for token {token}: {e}");
                        return;
                    }
                }
            }
        });
        if let Some(old) = self.tasks.insert(token, task) {
            old.abort();
        }
        Ok(format!("@{name}"))
    }

    /// Closes the sockets of tokens that no longer have processes.
    pub fn retain(&mut self, alive: impl Fn(u64) -> bool) {
        self.tasks.retain(|t, task| {
            let keep = alive(*t);
            if !keep {
                task.abort();
            }
            keep
        });
    }
}

/// One datagram; `None` for messages without credentials or not UTF-8 (dropped like systemd).
async fn receive(sock: &tokio::net::UnixDatagram) -> std::io::Result<Option<(u32, String)>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (len, pid) = sock
        .async_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut cmsg = nix::cmsg_space!(UnixCredentials);
            let msg = recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(std::io::Error::from)?;
            let mut pid = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmCredentials(cred) = c {
                        pid = u32::try_from(cred.pid()).ok();
                    }
                }
            }
            Ok((msg.bytes, pid))
        })
        .await?;
    let Some(pid) = pid else {
        tracing::warn!("notification without sender credentials, ignoring");
        return Ok(None);
    };
    match std::str::from_utf8(&buf[..len]) {
        Ok(s) => Ok(Some((pid, s.to_string()))),
        Err(_) => {
            tracing::warn!("notification from PID {pid} is not UTF-8, ignoring");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn receives_message_with_sender_pid() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut socks = NotifySockets::new(tx);
        let addr = socks.open(7).expect("bind notify socket");
        let name = addr.strip_prefix('@').expect("abstract address");
        let client = std::os::unix::net::UnixDatagram::unbound().expect("client socket");
        let to = <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name.as_bytes())
            .expect("abstract address");
        client
            .send_to_addr(b"READY=1\nSTATUS=up", &to)
            .expect("send");
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("notification within 5 s");
        assert_eq!(
            got,
            Some((7, std::process::id(), "READY=1\nSTATUS=up".to_string()))
        );
        socks.retain(|_| false);
        assert!(socks.tasks.is_empty());
    }
}
