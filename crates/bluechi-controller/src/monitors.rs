//! Public monitors (spec §2.5): their owners, peers and subscriptions, as pure bookkeeping.
//! The bus side (method dispatch, unicast signals) lives in `monitor_api.rs`.

pub const MONITOR_IFACE: &str = "org.eclipse.bluechi.Monitor";
pub const MONITOR_PATH_PREFIX: &str = "/org/eclipse/bluechi/monitor";

/// One `Subscribe`/`SubscribeList`: a node (or `*`) and the units it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: u32,
    pub node: String,
    pub units: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: u32,
    pub name: String,
}

#[derive(Debug)]
pub struct Monitor {
    pub path: String,
    pub owner: String,
    pub subscriptions: Vec<Subscription>,
    pub peers: Vec<Peer>,
}

impl Monitor {
    /// Every bus name a signal of this monitor goes to: the owner, then each peer.
    pub fn recipients(&self) -> Vec<String> {
        std::iter::once(self.owner.clone())
            .chain(self.peers.iter().map(|p| p.name.clone()))
            .collect()
    }
}

pub struct Monitors {
    next_id: u32,
    /// Peer ids are global across monitors, starting at 1 (upstream).
    next_peer: u32,
    pub list: Vec<Monitor>,
}

impl Default for Monitors {
    fn default() -> Self {
        Monitors {
            next_id: 1,
            next_peer: 1,
            list: Vec::new(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum PeerError {
    Invalid,
    Duplicate,
}

impl Monitors {
    pub fn create(&mut self, owner: &str) -> String {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let path = format!("{MONITOR_PATH_PREFIX}/{id}");
        self.list.push(Monitor {
            path: path.clone(),
            owner: owner.to_string(),
            subscriptions: Vec::new(),
            peers: Vec::new(),
        });
        path
    }

    pub fn index_by_path(&self, path: &str) -> Option<usize> {
        self.list.iter().position(|m| m.path == path)
    }

    pub fn by_subscription(&self, sub: u32) -> Option<&Monitor> {
        self.list
            .iter()
            .find(|m| m.subscriptions.iter().any(|s| s.id == sub))
    }

    /// Indexes of the monitors owned by `owner`, for closing them when it leaves the bus.
    pub fn owned_by(&self, owner: &str) -> Vec<usize> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, m)| m.owner == owner)
            .map(|(i, _)| i)
            .collect()
    }

    pub fn add_peer(&mut self, monitor: usize, name: &str) -> Result<u32, PeerError> {
        if !is_unique_name(name) {
            return Err(PeerError::Invalid);
        }
        let m = &self.list[monitor];
        if m.owner == name || m.peers.iter().any(|p| p.name == name) {
            return Err(PeerError::Duplicate);
        }
        let id = self.next_peer;
        self.next_peer = self.next_peer.wrapping_add(1).max(1);
        self.list[monitor].peers.push(Peer {
            id,
            name: name.to_string(),
        });
        Ok(id)
    }

    pub fn remove_peer(&mut self, monitor: usize, id: u32) -> Option<Peer> {
        let peers = &mut self.list[monitor].peers;
        let i = peers.iter().position(|p| p.id == id)?;
        Some(peers.remove(i))
    }
}

/// A unique connection name: `:` then at least two dot-separated elements of
/// `[A-Za-z0-9_-]` (unique names may start elements with digits).
pub fn is_unique_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(':') else {
        return false;
    };
    if name.len() > 255 {
        return false;
    }
    let parts: Vec<&str> = rest.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names() {
        assert!(is_unique_name(":1.42"));
        assert!(is_unique_name(":a.b.c"));
        assert!(!is_unique_name("org.eclipse.bluechi"));
        assert!(!is_unique_name(":1"));
        assert!(!is_unique_name(":1..2"));
        assert!(!is_unique_name(":1.2 "));
        assert!(!is_unique_name(""));
    }

    #[test]
    fn monitor_ids_and_peers() {
        let mut m = Monitors::default();
        assert_eq!(m.create(":1.5"), "/org/eclipse/bluechi/monitor/1");
        assert_eq!(m.create(":1.6"), "/org/eclipse/bluechi/monitor/2");
        assert_eq!(m.add_peer(0, ":1.7"), Ok(1));
        assert_eq!(m.add_peer(1, ":1.7"), Ok(2), "peer ids are global");
        assert_eq!(m.add_peer(0, ":1.7"), Err(PeerError::Duplicate));
        assert_eq!(m.add_peer(0, ":1.5"), Err(PeerError::Duplicate), "owner");
        assert_eq!(m.add_peer(0, "bad"), Err(PeerError::Invalid));
        assert_eq!(m.list[0].recipients(), vec![":1.5", ":1.7"]);
        assert!(m.remove_peer(0, 2).is_none(), "peer 2 belongs to monitor 2");
        assert_eq!(m.remove_peer(0, 1).map(|p| p.name), Some(":1.7".into()));
        assert_eq!(m.owned_by(":1.6"), vec![1]);
        assert_eq!(m.index_by_path("/org/eclipse/bluechi/monitor/2"), Some(1));
    }
}
