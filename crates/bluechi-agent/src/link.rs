//! The agent's side of the peer link: connect, register, heartbeat, reconnect (spec §1.7).

use bluechi_core::clock::{monotonic_us, realtime_us};
use bluechi_core::config::AgentConfig;
use bluechi_core::msg;
use bluechi_core::names::*;
use zbus::message::Type;
use zbus::{Connection, Message};

use crate::agent::{Agent, Event};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Disconnected,
    Connecting,
    Connected,
    Retry,
}

pub struct LinkState {
    pub state: ConnState,
    /// Incremented for every connection attempt; events of older links are ignored.
    pub gen: u64,
    pub conn: Option<Connection>,
    pub register_serial: Option<u32>,
    pub retries: i64,
    /// The address of the current attempt: `-a/--address` for the first one only.
    pub address: String,
    pub last_seen_us: u64,
    pub last_seen_monotonic_us: u64,
    pub disconnect_us: u64,
    pub disconnect_monotonic_us: u64,
}

impl LinkState {
    pub fn new(cfg: &AgentConfig, first_address: Option<String>) -> Self {
        LinkState {
            state: ConnState::Disconnected,
            gen: 0,
            conn: None,
            register_serial: None,
            retries: 0,
            address: first_address.unwrap_or_else(|| cfg.controller_address()),
            last_seen_us: 0,
            last_seen_monotonic_us: 0,
            disconnect_us: 0,
            disconnect_monotonic_us: 0,
        }
    }

    pub fn conn_of(&self, gen: u64) -> Option<Connection> {
        (gen == self.gen).then(|| self.conn.clone()).flatten()
    }

    pub fn registered_conn(&self) -> Option<Connection> {
        (self.state == ConnState::Connected)
            .then(|| self.conn.clone())
            .flatten()
    }

    pub fn status(&self) -> &'static str {
        if self.state == ConnState::Connected {
            "online"
        } else {
            "offline"
        }
    }

    pub async fn close(&mut self) {
        self.gen += 1;
        self.state = ConnState::Disconnected;
        self.register_serial = None;
        if let Some(c) = self.conn.take() {
            let _ = c.close().await;
        }
    }
}

impl Agent {
    /// Starts a connection attempt in the background; the result comes back as an event.
    /// Every link starts with no subscriptions: this is the one way to a new link (start-up,
    /// retry, disconnect, heartbeat timeout, `SwitchController`), so the controller's renewed
    /// `Subscribe`s are answered as first ones.
    pub fn connect(&mut self) {
        self.units.clear_subscriptions();
        self.link.gen += 1;
        self.link.state = ConnState::Connecting;
        self.link.register_serial = None;
        let gen = self.link.gen;
        let addr = self.link.address.clone();
        let tcp = self.cfg.tcp;
        let tx = self.tx.clone();
        tracing::info!("Connecting to controller on {addr}");
        tokio::spawn(async move {
            let r = bluechi_core::link::connect(&addr, &tcp)
                .await
                .map(Box::new)
                .map_err(|e| e.to_string());
            let _ = tx.send(Event::Connected(gen, r));
        });
    }

    async fn reconnect(&mut self) {
        if let Some(c) = self.link.conn.take() {
            let _ = c.close().await;
        }
        // Reconnects always use the configuration, never `-a` (upstream's Q3 behaviour).
        let addr = self.cfg.controller_address();
        if addr != self.link.address {
            self.link.address = addr.clone();
            self.emit_api_property("ControllerAddress", addr.as_str().into())
                .await;
        }
        self.connect();
    }

    pub async fn on_connected(&mut self, gen: u64, r: Result<Box<zbus::MessageStream>, String>) {
        if gen != self.link.gen {
            if let Ok(s) = r {
                let _ = Connection::from(*s).close().await;
            }
            return;
        }
        let stream = match r {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("Failed to connect to controller: {e}");
                self.link.state = ConnState::Retry;
                return;
            }
        };
        let conn = Connection::from(&*stream);
        let tx = self.tx.clone();
        msg::spawn_peer_forwarder(*stream, tx, move |m| Event::Peer(gen, m));
        let name = self.cfg.node_name.clone();
        let call = msg::call(
            CONTROLLER_BUS_NAME,
            INTERNAL_CONTROLLER_PATH,
            INTERNAL_CONTROLLER_IFACE,
            "Register",
            &(name.as_str(),),
        );
        match call {
            Ok(m) => {
                self.link.register_serial = Some(msg::serial(&m));
                if let Err(e) = conn.send(&m).await {
                    tracing::warn!("Failed to register: {e}");
                    self.link.state = ConnState::Retry;
                }
            }
            Err(e) => tracing::error!("Failed to build Register call: {e}"),
        }
        self.link.conn = Some(conn);
    }

    pub async fn on_peer_event(&mut self, gen: u64, m: Option<Message>) {
        if gen != self.link.gen {
            return;
        }
        let Some(m) = m else {
            return self.on_disconnected().await;
        };
        match m.message_type() {
            Type::MethodReturn | Type::Error => {
                if msg::reply_serial(&m).is_some()
                    && msg::reply_serial(&m) == self.link.register_serial
                {
                    self.link.register_serial = None;
                    self.on_register_reply(&m).await;
                }
            }
            Type::MethodCall => self.on_controller_call(gen, m).await,
            Type::Signal => {
                let r = msg::route(&m);
                if r.path == INTERNAL_CONTROLLER_PATH && r.member == "Heartbeat" {
                    self.link.last_seen_us = realtime_us();
                    self.link.last_seen_monotonic_us = monotonic_us();
                }
            }
        }
    }

    async fn on_register_reply(&mut self, m: &Message) {
        if let Some((_, text)) = msg::error_of(m) {
            // Upstream stays CONNECTING; the next tick turns that into a retry.
            tracing::error!("Registering as '{}' failed: {text}", self.cfg.node_name);
            return;
        }
        self.link.state = ConnState::Connected;
        self.link.retries = 0;
        self.link.last_seen_us = realtime_us();
        self.link.last_seen_monotonic_us = monotonic_us();
        self.link.disconnect_us = 0;
        self.link.disconnect_monotonic_us = 0;
        bluechi_core::logging::set_quiet(self.cfg.log.is_quiet);
        tracing::info!("Connected to controller as '{}'", self.cfg.node_name);
        self.emit_api_property("Status", "online".into()).await;
        // Proxies outlive links and agent restarts: recover those of active proxy units, then
        // announce them all again (they are served on every link, Q7 fix).
        self.recover_proxies();
        let live: Vec<(String, String, String)> = self
            .proxies
            .iter()
            .map(|p| (p.node.clone(), p.unit.clone(), p.path()))
            .collect();
        for (node, unit, path) in live {
            if let Ok(p) = zvariant::ObjectPath::try_from(path.as_str()) {
                self.emit_to_controller("ProxyNew", &(node.as_str(), unit.as_str(), p))
                    .await;
            }
        }
    }

    async fn on_disconnected(&mut self) {
        let was = self.link.state;
        self.link.conn = None;
        if was == ConnState::Connected {
            tracing::info!("Disconnected from controller");
            self.link.state = ConnState::Retry;
            self.link.disconnect_us = realtime_us();
            self.link.disconnect_monotonic_us = monotonic_us();
            self.emit_api_property("Status", "offline".into()).await;
            self.reconnect().await;
        } else {
            self.link.state = ConnState::Retry;
        }
    }

    /// `SwitchController(s address)` on the public API (spec §2.7): the new address becomes
    /// the configured one (so later reconnects keep using it) and the link is re-established.
    pub async fn switch_controller(&mut self, m: &Message, address: String) {
        let hdr = m.header();
        if address == self.link.address {
            let text = "Failed to switch controller because already connected to the controller";
            return msg::reply_error(&self.api, &hdr, ERR_FAILED, text).await;
        }
        tracing::info!("Switching controller to {address}");
        self.cfg.controller_address = Some(address.clone());
        self.link.address = address.clone();
        msg::reply(&self.api, &hdr, &()).await;
        self.emit_api_property("ControllerAddress", address.as_str().into())
            .await;
        if let Some(c) = self.link.conn.take() {
            let _ = c.close().await;
        }
        if self.link.state == ConnState::Connected {
            self.link.disconnect_us = realtime_us();
            self.link.disconnect_monotonic_us = monotonic_us();
            self.emit_api_property("Status", "offline".into()).await;
        }
        // A new generation: whatever the old link or a pending attempt still reports is stale.
        self.connect();
    }

    pub async fn on_tick(&mut self) {
        match self.link.state {
            ConnState::Connected => {
                let threshold = self.cfg.controller_heartbeat_threshold_ms;
                let now = monotonic_us();
                let last = self.link.last_seen_monotonic_us;
                if threshold > 0 && now > last && (now - last) / 1000 > threshold as u64 {
                    tracing::info!("Did not receive heartbeat from controller, disconnecting");
                    return self.on_disconnected().await;
                }
                self.emit_to_controller("Heartbeat", &()).await;
            }
            ConnState::Connecting => {
                tracing::info!("Agent connection attempt failed, retrying");
                self.link.state = ConnState::Retry;
                self.retry().await;
            }
            ConnState::Retry => self.retry().await,
            ConnState::Disconnected => {}
        }
    }

    async fn retry(&mut self) {
        self.link.retries += 1;
        if self.link.retries == self.cfg.retry_count_until_quiet {
            tracing::info!(
                "Quieting down logs after connection retry failed {}x...",
                self.link.retries
            );
            bluechi_core::logging::set_quiet(true);
        }
        tracing::info!(
            "Trying to connect to controller (try {})",
            self.link.retries
        );
        self.reconnect().await;
    }
}
