//! Configured nodes: their agent link, liveness data, and the per-unit subscription cache
//! that proxies (and later monitors) read from.

use std::collections::HashMap;

use bluechi_core::clock::{monotonic_us, realtime_us};
use bluechi_core::names::node_path;
use bluechi_core::wire_socket::LinkControl;
use zbus::Connection;

use crate::controller::PeerId;

pub struct Link {
    pub id: PeerId,
    pub conn: Connection,
    /// Bounds the link and can drop it.
    pub control: LinkControl,
}

/// What the controller knows of one unit on one node, for the subscriptions on it (§3.4.2).
#[derive(Debug, Default, Clone)]
pub struct UnitCache {
    pub subscriptions: Vec<u32>,
    pub loaded: bool,
    pub active: Option<String>,
    pub sub: Option<String>,
}

pub struct Node {
    pub name: String,
    pub path: String,
    pub link: Option<Link>,
    pub peer_ip: String,
    pub last_seen_us: u64,
    pub last_seen_monotonic_us: u64,
    pub units: HashMap<String, UnitCache>,
}

impl Node {
    pub fn new(name: &str) -> Self {
        Node {
            name: name.to_string(),
            path: node_path(name),
            link: None,
            peer_ip: String::new(),
            last_seen_us: 0,
            last_seen_monotonic_us: 0,
            units: HashMap::new(),
        }
    }

    pub fn status(&self) -> &'static str {
        if self.link.is_some() {
            "online"
        } else {
            "offline"
        }
    }

    pub fn touch(&mut self) {
        self.last_seen_us = realtime_us();
        self.last_seen_monotonic_us = monotonic_us();
    }
}
