//! The controller's side of the peer link: registration, agent signals, replies to our calls,
//! disconnects and heartbeats (spec §1.5, §1.6, §2.8, §2.9).

use std::sync::Arc;

use bluechi_core::msg::{self, Route};
use bluechi_core::names::*;
use bluechi_core::ordered::OrderedDict;
use bluechi_core::wire_socket::LinkControl;
use bluechi_core::wire_socket::LinkLimits;
use zbus::message::Type;
use zbus::{Connection, Message};
use zvariant::OwnedValue;

use crate::controller::{Anonymous, Controller, Event, PeerId, Pending};
use crate::introspect::{BUS_IFACE, BUS_PATH};
use bluechi_core::clock::monotonic_us;

use crate::nodes::Link;

const INTERNAL_CONTROLLER_XML: &str =
    include_str!("../introspection/org.eclipse.bluechi.internal.Controller.xml");

/// A unit event from an agent, as the subscription machinery consumes it.
#[derive(Debug, Clone, PartialEq)]
pub enum UnitEvent {
    New {
        reason: String,
    },
    StateChanged {
        active: String,
        sub: String,
        reason: String,
    },
    Removed {
        reason: String,
    },
    /// Shared because one agent signal fans out to many subscriptions.
    PropertiesChanged {
        iface: String,
        props: Arc<Vec<(String, OwnedValue)>>,
    },
}

impl Controller {
    pub fn on_accepted(
        &mut self,
        id: PeerId,
        stream: zbus::MessageStream,
        control: LinkControl,
        peer_ip: String,
    ) {
        let conn = Connection::from(&stream);
        let tx = self.tx.clone();
        msg::spawn_peer_forwarder(stream, tx, move |m| Event::Peer(id, m));
        self.anonymous.insert(
            id,
            Anonymous {
                conn,
                control,
                peer_ip,
            },
        );
    }

    pub async fn on_peer_message(&mut self, id: PeerId, m: Message) {
        let r = msg::route(&m);
        match r.kind {
            Type::MethodReturn | Type::Error => self.on_agent_reply(id, m).await,
            Type::MethodCall => self.on_peer_call(id, &r, m).await,
            Type::Signal => {
                if let Some(node) = self.node_by_peer(id) {
                    if r.path == INTERNAL_AGENT_PATH && r.iface == INTERNAL_AGENT_IFACE {
                        self.on_agent_signal(node, &r.member, &m).await;
                    } else if r.path == INTERNAL_METRICS_PATH && r.iface == INTERNAL_METRICS_IFACE {
                        self.on_agent_metrics(node, &r.member, &m).await;
                    }
                }
            }
        }
    }

    async fn on_peer_call(&mut self, id: PeerId, r: &Route, m: Message) {
        let conn = match (self.anonymous.get(&id), self.node_by_peer(id)) {
            (Some(a), _) => a.conn.clone(),
            (None, Some(n)) => match &self.nodes[n].link {
                Some(l) => l.conn.clone(),
                None => return,
            },
            _ => return,
        };
        let hdr = m.header();
        match (r.path.as_str(), r.iface.as_str(), r.member.as_str()) {
            // Lets bus-style clients (busctl --address, GLib) talk to the peer endpoint.
            (BUS_PATH, BUS_IFACE, "Hello") => msg::reply(&conn, &hdr, &(":1.0",)).await,
            (INTERNAL_CONTROLLER_PATH, INTERNAL_CONTROLLER_IFACE, "Register")
                if self.anonymous.contains_key(&id) =>
            {
                let name = match m.body().deserialize::<(String,)>() {
                    Ok((n,)) => n,
                    Err(_) => {
                        msg::reply_error(&conn, &hdr, ERR_INVALID_ARGS, "Invalid arguments").await;
                        return;
                    }
                };
                self.register(id, &conn, &m, &name).await;
            }
            (_, "org.freedesktop.DBus.Peer", "Ping") => msg::reply(&conn, &hdr, &()).await,
            (p, INTROSPECTABLE_IFACE, "Introspect") => {
                msg::reply(
                    &conn,
                    &hdr,
                    &(crate::introspect::peer_link_xml(p, INTERNAL_CONTROLLER_XML),),
                )
                .await
            }
            (p, _, _) if p != INTERNAL_CONTROLLER_PATH && p != BUS_PATH => {
                msg::reply_error(
                    &conn,
                    &hdr,
                    ERR_UNKNOWN_OBJECT,
                    &format!("Unknown object '{p}'."),
                )
                .await
            }
            (_, iface, member) => {
                let text = format!("Unknown method {member} or interface {iface}.");
                msg::reply_error(&conn, &hdr, ERR_UNKNOWN_METHOD, &text).await
            }
        }
    }

    async fn register(&mut self, id: PeerId, conn: &Connection, call: &Message, name: &str) {
        let hdr = call.header();
        let Some(node) = self.node_index(name) else {
            msg::reply_error(conn, &hdr, ERR_SERVICE_UNKNOWN, "Unexpected node name").await;
            return;
        };
        if self.nodes[node].link.is_some() {
            msg::reply_error(
                conn,
                &hdr,
                ERR_ADDRESS_IN_USE,
                "The node is already connected",
            )
            .await;
            return;
        }
        let Some(anon) = self.anonymous.remove(&id) else {
            return;
        };
        // Dropped meanwhile (evicted or past its deadline): its stream is ending.
        if anon.control.is_closed() || !self.admission.registered(id) {
            return;
        }
        let prev_online = self.online_count();
        // A named node is trusted with sd-bus' message cap and no registration deadline.
        anon.control
            .set_max_message(LinkLimits::REGISTERED_MAX_MESSAGE);
        let label = match anon.peer_ip.as_str() {
            "" => format!("node '{name}'"),
            ip => format!("node '{name}' ({ip})"),
        };
        anon.control.set_label(label);
        let n = &mut self.nodes[node];
        n.link = Some(Link {
            id,
            conn: anon.conn,
            control: anon.control,
        });
        n.peer_ip = anon.peer_ip;
        n.touch();
        tracing::info!("Registered managed node from fd {id} as '{name}'");
        let path = n.path.clone();
        self.emit_properties_changed(&path, NODE_IFACE, "Status", "online")
            .await;
        // Re-establish what the node must know before answering, in upstream's order (spec
        // §1.5 step 2): subscriptions, outstanding proxy deps, metrics. The agent answers a
        // `Subscribe` on the link that asked even before it sees this reply, so the virtual
        // events of these subscriptions are not lost.
        let units: Vec<String> = self.nodes[node]
            .units
            .iter()
            .filter(|(_, u)| !u.subscriptions.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for unit in units {
            self.send_agent_oneway(
                node,
                INTERNAL_AGENT_PATH,
                INTERNAL_AGENT_IFACE,
                "Subscribe",
                &(unit.as_str(),),
            )
            .await;
        }
        for unit in self.proxies.deps_on(name) {
            self.send_agent_oneway(
                node,
                INTERNAL_AGENT_PATH,
                INTERNAL_AGENT_IFACE,
                "StartDep",
                &(unit.as_str(),),
            )
            .await;
        }
        if self.metrics_enabled {
            self.send_agent_oneway(
                node,
                INTERNAL_AGENT_PATH,
                INTERNAL_AGENT_IFACE,
                "EnableMetrics",
                &(),
            )
            .await;
        }
        self.maybe_emit_status(prev_online).await;
        msg::reply(conn, &hdr, &()).await;
    }

    /// Upstream's emission rule: signal transitions into and out of `up` and `down` only.
    pub async fn maybe_emit_status(&self, prev: usize) {
        let now = self.online_count();
        let total = self.nodes.len();
        if prev == 0 || prev == total || now == total || now == 0 {
            self.emit_controller_status().await;
        }
    }

    async fn on_agent_reply(&mut self, id: PeerId, m: Message) {
        let Some(serial) = msg::reply_serial(&m) else {
            return;
        };
        let Some(p) = self.pending.remove(&(id, serial)) else {
            return;
        };
        match p.what {
            Pending::Forward { caller } => msg::forward_reply(&self.bus, &caller, &m).await,
            Pending::JobStart { job_id, caller } => {
                if m.message_type() == Type::Error {
                    self.jobs.remove(job_id);
                    msg::forward_reply(&self.bus, &caller, &m).await;
                } else {
                    self.export_job(job_id, &caller).await;
                }
            }
            Pending::Fanout { token, node } => {
                let outcome = match msg::error_of(&m) {
                    Some((_, text)) => Err(text),
                    None => Ok(m),
                };
                self.fanout_part(token, &node, outcome).await;
            }
            Pending::MetricsProp {
                token,
                active_enter,
            } => {
                let ok = (m.message_type() != Type::Error).then_some(&m);
                self.metrics_prop(token, active_enter, ok).await;
            }
            Pending::LogLevel { caller } => self.log_level_done(caller, &m).await,
            Pending::ProxyCheck(check) => {
                let ok = (m.message_type() != Type::Error).then_some(&m);
                self.proxy_check_done(*check, ok).await;
            }
        }
    }

    async fn on_agent_signal(&mut self, node: usize, member: &str, m: &Message) {
        let body = m.body();
        match member {
            "Heartbeat" => self.nodes[node].touch(),
            "JobDone" => {
                if let Ok((id, result)) = body.deserialize::<(u32, String)>() {
                    if self.job_belongs_to(id, node) {
                        self.on_job_done(id, &result).await;
                    }
                }
            }
            "JobStateChanged" => {
                if let Ok((id, state)) = body.deserialize::<(u32, String)>() {
                    if self.job_belongs_to(id, node) {
                        self.on_job_state(id, &state).await;
                    }
                }
            }
            "UnitNew" => {
                if let Ok((unit, reason)) = body.deserialize::<(String, String)>() {
                    self.on_unit_event(node, &unit, UnitEvent::New { reason })
                        .await;
                }
            }
            "UnitStateChanged" => {
                if let Ok((unit, active, sub, reason)) =
                    body.deserialize::<(String, String, String, String)>()
                {
                    let ev = UnitEvent::StateChanged {
                        active,
                        sub,
                        reason,
                    };
                    self.on_unit_event(node, &unit, ev).await;
                }
            }
            "UnitRemoved" => {
                if let Ok((unit,)) = body.deserialize::<(String,)>() {
                    let ev = UnitEvent::Removed {
                        reason: "real".into(),
                    };
                    self.on_unit_event(node, &unit, ev).await;
                }
            }
            "ProxyNew" => {
                if let Ok((target, unit, path)) =
                    body.deserialize::<(String, String, zvariant::OwnedObjectPath)>()
                {
                    self.on_proxy_new(node, &target, &unit, path.as_str()).await;
                }
            }
            "ProxyRemoved" => {
                if let Ok((target, unit)) = body.deserialize::<(String, String)>() {
                    self.on_proxy_removed(node, &target, &unit).await;
                }
            }
            "UnitPropertiesChanged" => {
                if let Ok((unit, iface, props)) =
                    body.deserialize::<(String, String, OrderedDict<OwnedValue>)>()
                {
                    let ev = UnitEvent::PropertiesChanged {
                        iface,
                        props: Arc::new(props.0),
                    };
                    self.on_unit_event(node, &unit, ev).await;
                }
            }
            _ => {}
        }
    }

    /// A node may only report on its own jobs: ids are global, and a confused or hostile agent
    /// must not end another node's job.
    fn job_belongs_to(&self, id: u32, node: usize) -> bool {
        self.jobs
            .get(id)
            .is_some_and(|j| j.node == self.nodes[node].name)
    }

    /// Updates the unit cache and fans the event out to subscriptions on that unit or `*`.
    pub async fn on_unit_event(&mut self, node: usize, unit: &str, ev: UnitEvent) {
        let subs: Vec<u32> = {
            let n = &mut self.nodes[node];
            let entry = n.units.entry(unit.to_string()).or_default();
            match &ev {
                // The `*` pseudo-unit counts as running while the node is connected, so a
                // disconnect reports it inactive/agent-offline.
                UnitEvent::New { .. } if unit == "*" => {
                    entry.loaded = true;
                    entry.active = Some("active".into());
                    entry.sub = Some("running".into());
                }
                UnitEvent::New { .. } => entry.loaded = true,
                UnitEvent::StateChanged { active, sub, .. } => {
                    entry.loaded = true;
                    entry.active = Some(active.clone());
                    entry.sub = Some(sub.clone());
                }
                UnitEvent::Removed { .. } => entry.loaded = false,
                UnitEvent::PropertiesChanged { .. } => {}
            }
            let mut subs = entry.subscriptions.clone();
            if unit != "*" {
                if let Some(w) = n.units.get("*") {
                    subs.extend(w.subscriptions.iter().copied());
                }
            }
            // Once per subscription object, even when it matches by name and by `*`.
            subs.sort_unstable();
            subs.dedup();
            // An entry nobody subscribes to need not be cached.
            if n.units
                .get(unit)
                .is_some_and(|e| e.subscriptions.is_empty())
            {
                n.units.remove(unit);
            }
            subs
        };
        for sub in subs {
            self.deliver(sub, node, unit, &ev).await;
        }
    }

    pub async fn on_peer_closed(&mut self, id: PeerId) {
        self.anonymous.remove(&id);
        self.admission.closed(id);
        let Some(node) = self.node_by_peer(id) else {
            return;
        };
        self.disconnect_node(node).await;
    }

    /// Spec §1.5 "Disconnect of a named node".
    pub async fn disconnect_node(&mut self, node: usize) {
        let name = self.nodes[node].name.clone();
        // Virtual events for everything subscribers believed loaded.
        let loaded: Vec<(String, Option<String>)> = self.nodes[node]
            .units
            .iter()
            .filter(|(_, u)| u.loaded)
            .map(|(k, u)| (k.clone(), u.active.clone()))
            .collect();
        for (unit, active) in loaded {
            if active.as_deref().is_some_and(|a| a != "inactive") {
                let ev = UnitEvent::StateChanged {
                    active: "inactive".into(),
                    sub: "agent-offline".into(),
                    reason: "virtual".into(),
                };
                self.on_unit_event(node, &unit, ev).await;
            }
            let ev = UnitEvent::Removed {
                reason: "virtual".into(),
            };
            self.on_unit_event(node, &unit, ev).await;
        }
        self.remove_proxies_of(node).await;
        let id = self.nodes[node].link.as_ref().map(|l| l.id);
        // Calls in flight to this node will never be answered.
        if let Some(id) = id {
            let keys: Vec<_> = self.pending.keys().filter(|k| k.0 == id).copied().collect();
            for k in keys {
                if let Some(p) = self.pending.remove(&k) {
                    self.fail_pending(p.what, ERR_FAILED, "Request cancelled")
                        .await;
                }
            }
        }
        // Upstream drops the node's jobs silently (Q1), leaving waiting clients hanging
        // forever. Deliberate difference, same wire protocol: report them as failed.
        for job in self.jobs.drop_node(&name) {
            if job.exported {
                self.emit_job_removed(job.id, &job.path(), &job.node, &job.unit, "failed")
                    .await;
            }
        }
        let prev = self.online_count();
        let n = &mut self.nodes[node];
        n.link = None;
        n.peer_ip.clear();
        let path = n.path.clone();
        tracing::info!("Node '{name}' disconnected");
        self.emit_properties_changed(&path, NODE_IFACE, "Status", "offline")
            .await;
        self.maybe_emit_status(prev).await;
    }

    pub async fn heartbeat_tick(&mut self) {
        if self.cfg.heartbeat_interval_ms <= 0 {
            return;
        }
        let threshold = self.cfg.node_heartbeat_threshold_ms;
        let now = monotonic_us();
        for node in 0..self.nodes.len() {
            let Some(link) = &self.nodes[node].link else {
                continue;
            };
            let last = self.nodes[node].last_seen_monotonic_us;
            if threshold > 0 && now > last && (now - last) / 1000 > threshold as u64 {
                tracing::info!(
                    "Did not receive heartbeat from node '{}' since '{}'ms. Disconnecting it...",
                    self.nodes[node].name,
                    threshold
                );
                let control = link.control.clone();
                self.disconnect_node(node).await;
                control.close("no heartbeat");
                continue;
            }
            let m = zbus::Message::signal(
                INTERNAL_CONTROLLER_PATH,
                INTERNAL_CONTROLLER_IFACE,
                "Heartbeat",
            )
            // The link's write half stamps SENDER=org.eclipse.bluechi (zbus cannot).
            .and_then(|b| b.build(&()));
            msg::send(&link.conn, m).await;
        }
    }
}
