//! Which connections hold resources, and for how long before they register.
//!
//! Every accepted socket gets a peer id here. Until it registers a node name it counts as
//! unregistered: first while its SASL handshake runs (a task we can abort), then as an
//! anonymous peer link (a [`LinkControl`] we can close). Unregistered connections are capped;
//! at the cap the oldest one is dropped to make room, so a flood of idle connections delays a
//! real agent by one reconnect at most instead of locking it out. The listener tasks and the
//! event loop share this table, hence the mutex; nothing awaits while holding it.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bluechi_core::wire_socket::LinkControl;
use tokio::task::AbortHandle;

use crate::controller::PeerId;

/// Unregistered connections (handshaking or anonymous) allowed at once.
pub const MAX_UNREGISTERED: usize = 64;
/// Largest message an unregistered peer may send: `Register`, `Hello`, `Ping` and
/// `Introspect` calls are a few hundred bytes. Registered nodes get sd-bus' cap.
pub const UNREGISTERED_MAX_MESSAGE: usize = 64 * 1024;
/// How often fd exhaustion is logged at most.
const EXHAUSTION_LOG_INTERVAL: Duration = Duration::from_secs(10);

enum Waiting {
    Handshake(Option<AbortHandle>),
    Anonymous {
        control: LinkControl,
        since: Instant,
    },
}

#[derive(Default)]
struct Table {
    next_id: PeerId,
    /// Ordered by id, which is also age: the first entry is the oldest.
    waiting: BTreeMap<PeerId, Waiting>,
    /// Connections that registered a node, until they close.
    registered: HashSet<PeerId>,
    last_exhaustion_log: Option<Instant>,
}

/// Counts for a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    pub handshaking: usize,
    pub anonymous: usize,
    pub registered: usize,
}

pub struct Admission {
    table: Mutex<Table>,
    cap: usize,
}

impl Admission {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            table: Mutex::new(Table {
                next_id: 1,
                ..Table::default()
            }),
            cap: cap.max(1),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table inconsistent (every update
        // is a single map operation), so a poisoned lock is used as it is.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection starts its handshake: its id, after dropping the oldest unregistered
    /// connection if the cap is reached.
    pub fn admit(&self) -> PeerId {
        let mut t = self.table();
        if t.waiting.len() >= self.cap {
            evict_oldest(&mut t, "too many unregistered connections");
        }
        let id = t.next_id;
        t.next_id += 1;
        t.waiting.insert(id, Waiting::Handshake(None));
        id
    }

    /// The handshake task of `id`, so eviction can abort it.
    pub fn handshaking(&self, id: PeerId, task: AbortHandle) {
        if let Some(Waiting::Handshake(slot)) = self.table().waiting.get_mut(&id) {
            *slot = Some(task);
        }
    }

    /// `id` finished its handshake and is an anonymous peer link now. False if it was
    /// evicted meanwhile (the caller then drops the link).
    pub fn authenticated(&self, id: PeerId, control: &LinkControl) -> bool {
        let mut t = self.table();
        match t.waiting.get_mut(&id) {
            Some(w) => {
                *w = Waiting::Anonymous {
                    control: control.clone(),
                    since: Instant::now(),
                };
                true
            }
            None => false,
        }
    }

    /// `id` registers a node name: it no longer counts against the cap. False if it was
    /// dropped meanwhile (evicted, or past its deadline): it must not register then.
    pub fn registered(&self, id: PeerId) -> bool {
        let mut t = self.table();
        let waiting = t.waiting.remove(&id).is_some();
        if waiting {
            t.registered.insert(id);
        }
        waiting
    }

    /// `id` is gone: a failed handshake or a closed link, registered or not.
    pub fn closed(&self, id: PeerId) {
        let mut t = self.table();
        t.waiting.remove(&id);
        t.registered.remove(&id);
    }

    /// Closes anonymous links older than `deadline`; returns how many.
    pub fn expire(&self, deadline: Duration) -> usize {
        let mut t = self.table();
        let now = Instant::now();
        let late: Vec<PeerId> = t
            .waiting
            .iter()
            .filter_map(|(id, w)| match w {
                Waiting::Anonymous { since, .. } if now.duration_since(*since) > deadline => {
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        for id in &late {
            if let Some(Waiting::Anonymous { control, .. }) = t.waiting.remove(id) {
                control.close(&format!(
                    "did not register within {} ms",
                    deadline.as_millis()
                ));
            }
        }
        late.len()
    }

    #[cfg(test)]
    fn census(&self) -> Census {
        self.table().census()
    }

    /// Accept failed for lack of file descriptors: frees one by dropping the oldest
    /// unregistered connection, and says (at most once per interval) what holds the fds.
    pub fn out_of_fds(&self, error: &std::io::Error) {
        let mut t = self.table();
        let now = Instant::now();
        let due = t
            .last_exhaustion_log
            .is_none_or(|last| now.duration_since(last) >= EXHAUSTION_LOG_INTERVAL);
        // Counted before the eviction below: what held the descriptors when accept failed.
        let census = due.then(|| t.census());
        evict_oldest(&mut t, "out of file descriptors");
        if let Some(census) = census {
            t.last_exhaustion_log = Some(now);
            // Reading /proc and logging need not hold up the accept loops.
            drop(t);
            tracing::error!(
                "Failed to accept a connection: {error}; {} file descriptors open (limit {}): \
                 {} registered nodes, {} unregistered peer links, {} handshakes in progress",
                open_fds().map_or_else(|| "?".into(), |n| n.to_string()),
                bluechi_core::daemon::fd_limit().map_or_else(|| "?".into(), |n| n.to_string()),
                census.registered,
                census.anonymous,
                census.handshaking,
            );
        }
    }
}

impl Table {
    fn census(&self) -> Census {
        let handshaking = self
            .waiting
            .values()
            .filter(|w| matches!(w, Waiting::Handshake(_)))
            .count();
        Census {
            handshaking,
            anonymous: self.waiting.len() - handshaking,
            registered: self.registered.len(),
        }
    }
}

fn evict_oldest(t: &mut Table, why: &str) {
    let Some((_, w)) = t.waiting.pop_first() else {
        return;
    };
    match w {
        Waiting::Handshake(task) => {
            tracing::warn!("Dropping a connection still in its handshake: {why}");
            if let Some(task) = task {
                task.abort();
            }
        }
        Waiting::Anonymous { control, .. } => control.close(why),
    }
}

/// Descriptors this process has open.
fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// Whether an accept error means the process or system ran out of descriptors.
pub fn is_fd_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluechi_core::wire_socket::{wrap, LinkLimits};
    use tokio::io::AsyncReadExt;

    /// An anonymous link for the table, and the peer's end to watch it from.
    async fn link() -> (LinkControl, tokio::net::UnixStream) {
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let (_split, control) = wrap(ours, None, "peer", LinkLimits::trusted())
            .await
            .unwrap();
        (control, theirs)
    }

    async fn closed_for_peer(mut s: tokio::net::UnixStream) -> bool {
        let mut buf = [0u8; 8];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
            Ok(Ok(0))
        )
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_unregistered_connection_makes_room() {
        let a = Admission::new(2);
        let (first, first_peer) = link().await;
        let id1 = a.admit();
        assert!(a.authenticated(id1, &first));
        let id2 = a.admit();
        let id3 = a.admit();
        assert!(id1 < id2 && id2 < id3);
        assert!(first.is_closed(), "the oldest was not dropped");
        assert!(closed_for_peer(first_peer).await);
        assert_eq!(a.census().handshaking, 2);
        // An evicted handshake that completes anyway is refused.
        let id4 = a.admit();
        let (late, _peer) = link().await;
        assert!(!a.authenticated(id2, &late), "id2 was evicted by id4");
        assert!(a.authenticated(id4, &late));
        assert!(!a.registered(id2), "an evicted connection cannot register");
    }

    #[test]
    fn registration_moves_a_peer_out_of_the_cap() {
        let a = Admission::new(4);
        let id = a.admit();
        assert!(a.registered(id));
        assert!(!a.registered(id), "registers once");
        let zero = Census {
            handshaking: 0,
            anonymous: 0,
            registered: 0,
        };
        assert_eq!(
            a.census(),
            Census {
                registered: 1,
                ..zero
            }
        );
        a.closed(id);
        assert_eq!(a.census(), zero);
        // A failed handshake only leaves the waiting set.
        let id = a.admit();
        a.closed(id);
        assert_eq!(a.census(), zero);
    }

    #[tokio::test]
    async fn anonymous_links_past_the_deadline_are_closed() {
        let a = Admission::new(8);
        let (old, old_peer) = link().await;
        let id = a.admit();
        a.authenticated(id, &old);
        let handshaking = a.admit();
        assert_eq!(a.expire(Duration::from_secs(60)), 0);
        assert_eq!(a.expire(Duration::ZERO), 1);
        assert!(closed_for_peer(old_peer).await);
        // A handshake has its own timeout; registration deadlines start after it.
        assert_eq!(a.census().handshaking, 1);
        a.closed(handshaking);
    }
}
