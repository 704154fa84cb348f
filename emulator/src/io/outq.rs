//! A private connection's outgoing queue: its own writer task, so a peer that stops reading
//! stalls only itself, never the event loop.

use std::cell::Cell;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use zbus::{Connection, Message};

/// Messages queued for one peer before it counts as stuck and is dropped.
pub const QUEUE_LEN: usize = 1024;

pub struct PrivateOut {
    tx: mpsc::Sender<Message>,
    writer: JoinHandle<()>,
    conn: Connection,
    dead: Cell<bool>,
}

impl PrivateOut {
    pub fn new(id: u64, conn: Connection) -> PrivateOut {
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE_LEN);
        let c = conn.clone();
        let writer = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if let Err(e) = c.send(&m).await {
                    tracing::debug!("private connection {id}: send failed: {e}");
                }
            }
        });
        PrivateOut {
            tx,
            writer,
            conn,
            dead: Cell::new(false),
        }
    }

    /// Queues `m`; a full queue disconnects the peer (it has not read for a long time).
    pub fn push(&self, id: u64, m: Message) {
        if self.dead.get() {
            return;
        }
        match self.tx.try_send(m) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(
                    "private connection {id}: peer does not read ({QUEUE_LEN} messages queued), disconnecting"
                );
                self.disconnect();
            }
            Err(TrySendError::Closed(_)) => self.dead.set(true),
        }
    }

    /// True once the peer was dropped; the runtime then forgets it.
    pub fn is_dead(&self) -> bool {
        self.dead.get()
    }

    fn disconnect(&self) {
        self.dead.set(true);
        // The writer may be stuck in a write to the peer, holding the socket's write lock.
        self.writer.abort();
        let conn = self.conn.clone();
        tokio::spawn(async move {
            let _ = conn.close().await;
        });
    }
}

impl Drop for PrivateOut {
    fn drop(&mut self) {
        self.writer.abort();
    }
}
