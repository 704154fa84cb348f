//! The controller's state and its single event loop.
//!
//! Invariant: the loop never awaits a reply. Every call to an agent is sent raw and registered
//! in `pending` under (peer, serial); its reply comes back through the same per-connection
//! stream as the agent's signals, so a job's method reply is always handled before the
//! `JobDone` the agent sends after it (upstream relies on the same in-order processing).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bluechi_core::config::ControllerConfig;
use bluechi_core::msg;
use bluechi_core::names::*;
use bluechi_core::wire_socket::LinkControl;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use zbus::{Connection, Message};

use crate::admission::{Admission, MAX_UNREGISTERED};
use crate::fleet::Fanout;
use crate::jobs::Jobs;
use crate::metrics::StartMetric;
use crate::monitors::Monitors;
use crate::nodes::Node;
use crate::proxy::Proxies;

pub type PeerId = u64;

/// Everything the loop reacts to.
pub enum Event {
    /// A message on the public bus, or `None` when the bus connection closed.
    Bus(Option<msg::Inbound>),
    /// A connection that finished the SASL handshake: its peer id (from admission), message
    /// stream and control handle.
    Accepted {
        id: PeerId,
        stream: Box<zbus::MessageStream>,
        control: LinkControl,
        peer_ip: String,
    },
    /// A message from an agent connection, or `None` when it closed.
    Peer(PeerId, Option<msg::Inbound>),
    Tick,
    Shutdown,
}

/// What to do with the reply to a call we sent to an agent.
pub enum Pending {
    /// Pass-through: forward the reply verbatim to the public caller.
    Forward { caller: Message },
    /// A lifecycle job's agent call: on success export the job and answer the caller.
    JobStart { job_id: u32, caller: Message },
    /// One node's part of a fleet `ListUnits`/`ListUnitFiles`.
    Fanout { token: u32, node: String },
    /// One of the two unit timestamps a `StartUnitJobMetrics` needs.
    MetricsProp { token: u32, active_enter: bool },
    /// `Node.SetLogLevel`: the caller waits for the agent unless it was already answered (Q2).
    LogLevel { caller: Option<Message> },
    /// A proxy's target reported down: systemd's `ListUnits` on that node confirms it.
    ProxyCheck(Box<crate::proxy::ProxyCheck>),
}

pub struct PendingCall {
    pub since: Instant,
    pub what: Pending,
}

/// A connection that has not registered a node name yet.
pub struct Anonymous {
    pub conn: Connection,
    pub control: LinkControl,
    pub peer_ip: String,
}

pub struct Controller {
    pub bus: Connection,
    pub cfg: ControllerConfig,
    pub tx: UnboundedSender<Event>,
    pub nodes: Vec<Node>,
    pub anonymous: HashMap<PeerId, Anonymous>,
    /// Peer ids, the cap on unregistered connections and the registration deadline.
    pub admission: Arc<Admission>,
    pub pending: HashMap<(PeerId, u32), PendingCall>,
    pub jobs: Jobs,
    pub proxies: Proxies,
    /// Global subscription ids; upstream's first one is 2.
    pub next_subscription: u32,
    pub monitors: Monitors,
    pub metrics_enabled: bool,
    /// Fleet requests and start metrics waiting for agent replies, by token.
    pub fanouts: HashMap<u32, Fanout>,
    pub start_metrics: HashMap<u32, StartMetric>,
    pub next_token: u32,
}

/// Upstream's method-call timeout on the peer link.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may stay unregistered when heartbeats do not set the deadline.
const REGISTRATION_DEADLINE: Duration = Duration::from_secs(30);

pub async fn run(cfg: ControllerConfig) -> Result<(), String> {
    tracing::info!("Starting bluechi-controller {}", bluechi_core::VERSION);
    bluechi_core::daemon::raise_fd_limit();
    let (tx, mut rx) = unbounded_channel();
    let nodes = cfg.node_names.iter().map(|n| Node::new(n)).collect();
    let admission = Admission::new(MAX_UNREGISTERED);
    // Listeners first: a port already in use must fail before the bus name is taken.
    crate::listener::start(&cfg, tx.clone(), admission.clone()).await?;
    let bus = zbus::connection::Builder::system()
        .map_err(|e| format!("Failed to connect to the system bus: {e}"))?
        .build()
        .await
        .map_err(|e| format!("Failed to connect to the system bus: {e}"))?;
    msg::spawn_forwarder(&bus, tx.clone(), Event::Bus);
    // Replace-existing semantics, but never allow ourselves to be replaced. Requested after
    // the forwarder runs: a call arriving the moment the name is ours waits in the queue.
    msg::request_name(
        &bus,
        CONTROLLER_BUS_NAME,
        msg::NAME_REPLACE_EXISTING | msg::NAME_DO_NOT_QUEUE,
    )
    .await
    .map_err(|e| format!("Failed to acquire bus name {CONTROLLER_BUS_NAME}: {e}"))?;
    watch_name_owners(&bus).await?;
    spawn_signal_and_tick(tx.clone(), &cfg);
    if cfg.heartbeat_interval_ms <= 0 {
        tracing::warn!(
            "Heartbeat disabled since configured interval '{}' is <=0",
            cfg.heartbeat_interval_ms
        );
    }
    let mut c = Controller {
        bus,
        cfg,
        tx,
        nodes,
        anonymous: HashMap::new(),
        admission,
        pending: HashMap::new(),
        jobs: Jobs::default(),
        proxies: Proxies::default(),
        next_subscription: 2,
        monitors: Monitors::default(),
        metrics_enabled: false,
        fanouts: HashMap::new(),
        start_metrics: HashMap::new(),
        next_token: 1,
    };
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Bus(Some(m)) => c.on_bus_message(m.into_message()).await,
            Event::Bus(None) => return Err("Lost the connection to the system bus".into()),
            Event::Accepted {
                id,
                stream,
                control,
                peer_ip,
            } => c.on_accepted(id, *stream, control, peer_ip),
            Event::Peer(id, Some(m)) => c.on_peer_message(id, m.into_message()).await,
            Event::Peer(id, None) => c.on_peer_closed(id).await,
            Event::Tick => c.on_tick().await,
            Event::Shutdown => break,
        }
    }
    c.shutdown().await;
    Ok(())
}

/// Monitors die with their owner, so the loop must see every `NameOwnerChanged`. Set up
/// before the loop starts, so awaiting the bus daemon's reply here stalls nothing.
async fn watch_name_owners(bus: &Connection) -> Result<(), String> {
    let rule = "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',\
                interface='org.freedesktop.DBus',member='NameOwnerChanged'";
    bus.call_method(
        Some("org.freedesktop.DBus"),
        "/org/freedesktop/DBus",
        Some("org.freedesktop.DBus"),
        "AddMatch",
        &(rule,),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("Failed to add the NameOwnerChanged match rule: {e}"))
}

fn spawn_signal_and_tick(tx: UnboundedSender<Event>, cfg: &ControllerConfig) {
    bluechi_core::daemon::shutdown_on_signals(tx.clone(), Event::Shutdown);
    // The tick expires stuck calls and, when enabled, drives controller heartbeats.
    let period = if cfg.heartbeat_interval_ms > 0 {
        Duration::from_millis(cfg.heartbeat_interval_ms as u64).min(Duration::from_secs(1))
    } else {
        Duration::from_secs(1)
    };
    bluechi_core::daemon::tick_every(tx, period, || Event::Tick);
}

impl Controller {
    /// A fresh token for bookkeeping that spans several agent replies.
    pub fn next_token(&mut self) -> u32 {
        let t = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(1);
        t
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    pub fn node_by_peer(&self, id: PeerId) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.link.as_ref().is_some_and(|l| l.id == id))
    }

    pub fn online_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.link.is_some()).count()
    }

    /// Controller `Status`: `down` with no node online, `up` with all, else `degraded`.
    pub fn status(&self) -> &'static str {
        let online = self.online_count();
        if online == 0 {
            "down"
        } else if online == self.nodes.len() {
            "up"
        } else {
            "degraded"
        }
    }

    /// Sends a call to a node's agent and remembers what to do with its reply.
    pub async fn call_agent(&mut self, node: usize, call: zbus::Result<Message>, what: Pending) {
        let Some(link) = self.nodes[node].link.as_ref() else {
            self.fail_pending(what, ERR_OFFLINE, "Node is offline")
                .await;
            return;
        };
        let (id, conn) = (link.id, link.conn.clone());
        match call {
            Ok(m) => {
                let serial = msg::serial(&m);
                match conn.send(&m).await {
                    Ok(()) => {
                        self.pending.insert(
                            (id, serial),
                            PendingCall {
                                since: Instant::now(),
                                what,
                            },
                        );
                    }
                    Err(e) => {
                        let text = format!("Failed to create an agent request: {e}");
                        self.fail_pending(what, ERR_FAILED, &text).await
                    }
                }
            }
            Err(e) => {
                let text = format!("Failed to create an agent request: {e}");
                self.fail_pending(what, ERR_FAILED, &text).await
            }
        }
    }

    /// Answers the public caller of a call that will not get an agent reply.
    pub async fn fail_pending(&mut self, what: Pending, name: &str, text: &str) {
        let caller = match what {
            Pending::Forward { caller } => caller,
            Pending::JobStart { job_id, caller } => {
                self.jobs.remove(job_id);
                caller
            }
            Pending::Fanout { token, node } => {
                return self.fanout_part(token, &node, Err(text.to_string())).await;
            }
            Pending::MetricsProp {
                token,
                active_enter,
            } => return self.metrics_prop(token, active_enter, None).await,
            Pending::ProxyCheck(check) => return self.proxy_check_done(*check, None).await,
            // Answered already (Q2): nobody waits.
            Pending::LogLevel { caller: None } => return,
            Pending::LogLevel {
                caller: Some(caller),
            } => caller,
        };
        msg::reply_error(&self.bus, &caller.header(), name, text).await;
    }

    /// Sends a call that expects no reply to a node's agent, if it is online.
    pub async fn send_agent_oneway<B>(
        &self,
        node: usize,
        path: &str,
        iface: &str,
        member: &str,
        body: &B,
    ) where
        B: serde::Serialize + zvariant::DynamicType,
    {
        if let Some(link) = &self.nodes[node].link {
            msg::send(
                &link.conn,
                msg::oneway_call(AGENT_BUS_NAME, path, iface, member, body),
            )
            .await;
        }
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        let expired: Vec<(PeerId, u32)> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) > CALL_TIMEOUT)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(p) = self.pending.remove(&k) {
                self.fail_pending(
                    p.what,
                    "org.freedesktop.DBus.Error.NoReply",
                    "Method call timed out",
                )
                .await;
            }
        }
        self.admission.expire(self.registration_deadline());
        self.heartbeat_tick().await;
    }

    /// A connection must register within the node heartbeat threshold, like a node must send
    /// heartbeats: an agent registers right after its handshake, so only a peer that never
    /// means to register is cut off.
    fn registration_deadline(&self) -> Duration {
        match u64::try_from(self.cfg.node_heartbeat_threshold_ms) {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => REGISTRATION_DEADLINE,
        }
    }

    async fn shutdown(&mut self) {
        tracing::info!("Shutting down bluechi-controller");
        for (id, path, node, unit) in self.jobs.drain_all() {
            self.emit_job_removed(id, &path, &node, &unit, "cancelled due to shutdown")
                .await;
        }
        let pending: Vec<PendingCall> = self.pending.drain().map(|(_, p)| p).collect();
        for p in pending {
            self.fail_pending(p.what, ERR_FAILED, "Request cancelled")
                .await;
        }
        let any_online = self.online_count() > 0;
        for n in &mut self.nodes {
            n.link = None;
        }
        if any_online {
            self.emit_controller_status().await;
        }
    }

    pub async fn emit_controller_status(&self) {
        self.emit_properties_changed(CONTROLLER_PATH, CONTROLLER_IFACE, "Status", self.status())
            .await;
    }

    pub async fn emit_properties_changed(&self, path: &str, iface: &str, key: &str, value: &str) {
        let mut changed: HashMap<&str, zvariant::Value<'_>> = HashMap::new();
        changed.insert(key, zvariant::Value::from(value));
        let invalidated: Vec<&str> = Vec::new();
        if let Err(e) = self
            .bus
            .emit_signal(
                None::<&str>,
                path,
                PROPERTIES_IFACE,
                "PropertiesChanged",
                &(iface, changed, invalidated),
            )
            .await
        {
            tracing::debug!("failed to emit PropertiesChanged: {e}");
        }
    }

    pub async fn emit_job_removed(
        &self,
        id: u32,
        path: &str,
        node: &str,
        unit: &str,
        result: &str,
    ) {
        let path = zvariant::ObjectPath::try_from(path).ok();
        if let Some(p) = path {
            if let Err(e) = self
                .bus
                .emit_signal(
                    None::<&str>,
                    CONTROLLER_PATH,
                    CONTROLLER_IFACE,
                    "JobRemoved",
                    &(id, p, node, unit, result),
                )
                .await
            {
                tracing::debug!("failed to emit JobRemoved: {e}");
            }
        }
    }
}
