//! The bus side of public monitors: `CreateMonitor`, the `Monitor` methods, unicast event
//! signals (to the owner and each peer, never broadcast) and closing monitors whose owner left.

use bluechi_core::msg::{self, Route};
use bluechi_core::names::*;
use bluechi_core::ordered::OrderedDict;
use zbus::Message;
use zvariant::{OwnedObjectPath, Value};

use crate::controller::Controller;
use crate::monitors::{PeerError, Subscription, MONITOR_IFACE};
use crate::peer::UnitEvent;

impl Controller {
    pub async fn create_monitor(&mut self, m: &Message) {
        let hdr = m.header();
        let Some(owner) = hdr.sender().map(|s| s.to_string()) else {
            return msg::reply_error(&self.bus, &hdr, ERR_INVALID_ARGS, "Missing sender").await;
        };
        let path = self.monitors.create(&owner);
        match OwnedObjectPath::try_from(path) {
            Ok(p) => msg::reply(&self.bus, &hdr, &(p,)).await,
            Err(e) => msg::reply_error(&self.bus, &hdr, ERR_FAILED, &e.to_string()).await,
        }
    }

    pub async fn on_monitor_call(&mut self, idx: usize, r: &Route, m: Message) {
        let hdr = m.header();
        if r.iface != MONITOR_IFACE {
            let text = format!("Unknown method {} or interface {}.", r.member, r.iface);
            return msg::reply_error(&self.bus, &hdr, ERR_UNKNOWN_METHOD, &text).await;
        }
        let body = m.body();
        let bad_args = "Invalid arguments";
        match r.member.as_str() {
            "Subscribe" => match body.deserialize::<(String, String)>() {
                Ok((node, unit)) => {
                    let id = self.add_subscription(idx, &node, vec![unit]).await;
                    msg::reply(&self.bus, &hdr, &(id,)).await
                }
                Err(_) => msg::reply_error(&self.bus, &hdr, ERR_INVALID_ARGS, bad_args).await,
            },
            "SubscribeList" => match body.deserialize::<(String, Vec<String>)>() {
                Ok((node, units)) => {
                    let id = self.add_subscription(idx, &node, units).await;
                    msg::reply(&self.bus, &hdr, &(id,)).await
                }
                Err(_) => msg::reply_error(&self.bus, &hdr, ERR_INVALID_ARGS, bad_args).await,
            },
            "Unsubscribe" => match body.deserialize::<(u32,)>() {
                Ok((id,)) => {
                    let subs = &mut self.monitors.list[idx].subscriptions;
                    match subs.iter().position(|s| s.id == id) {
                        Some(i) => {
                            let s = subs.remove(i);
                            self.detach_subscription(&s).await;
                            msg::reply(&self.bus, &hdr, &()).await
                        }
                        None => {
                            let text = format!("Subscription '{id}' not found");
                            msg::reply_error(&self.bus, &hdr, ERR_FAILED, &text).await
                        }
                    }
                }
                Err(_) => msg::reply_error(&self.bus, &hdr, ERR_INVALID_ARGS, bad_args).await,
            },
            "AddPeer" => match body.deserialize::<(String,)>() {
                Ok((name,)) => match self.monitors.add_peer(idx, &name) {
                    Ok(id) => msg::reply(&self.bus, &hdr, &(id,)).await,
                    Err(PeerError::Invalid) => {
                        let text = format!("Peer name '{name}' is not a valid bus name");
                        msg::reply_error(&self.bus, &hdr, ERR_INVALID_ARGS, &text).await
                    }
                    Err(PeerError::Duplicate) => {
                        let text = format!("Peer name '{name}' has already been added");
                        msg::reply_error(&self.bus, &hdr, ERR_INVALID_ARGS, &text).await
                    }
                },
                Err(_) => msg::reply_error(&self.bus, &hdr, ERR_INVALID_ARGS, bad_args).await,
            },
            "RemovePeer" => match body.deserialize::<(u32, String)>() {
                Ok((id, reason)) => match self.monitors.remove_peer(idx, id) {
                    Some(peer) => {
                        let path = self.monitors.list[idx].path.clone();
                        self.unicast(&path, &peer.name, "PeerRemoved", &(reason.as_str(),))
                            .await;
                        msg::reply(&self.bus, &hdr, &()).await
                    }
                    None => {
                        let text = format!("Peer with ID '{id}' not found.");
                        msg::reply_error(&self.bus, &hdr, ERR_FAILED, &text).await
                    }
                },
                Err(_) => msg::reply_error(&self.bus, &hdr, ERR_INVALID_ARGS, bad_args).await,
            },
            "Close" => {
                self.close_monitor(idx).await;
                msg::reply(&self.bus, &hdr, &()).await
            }
            _ => {
                let text = format!("Unknown method {} or interface {}.", r.member, r.iface);
                msg::reply_error(&self.bus, &hdr, ERR_UNKNOWN_METHOD, &text).await
            }
        }
    }

    /// The nodes a subscription's node field selects: all for `*`, none for unknown names.
    fn subscription_targets(&self, node: &str) -> Vec<usize> {
        if node == "*" {
            return (0..self.nodes.len()).collect();
        }
        match self.node_index(node) {
            Some(i) => vec![i],
            None => {
                tracing::warn!("Monitor subscription for unknown node '{node}'");
                Vec::new()
            }
        }
    }

    async fn add_subscription(&mut self, idx: usize, node: &str, units: Vec<String>) -> u32 {
        let id = self.next_subscription;
        self.next_subscription = self.next_subscription.wrapping_add(1).max(2);
        // Registered first, so the cache's virtual events find their monitor.
        self.monitors.list[idx].subscriptions.push(Subscription {
            id,
            node: node.to_string(),
            units: units.clone(),
        });
        for t in self.subscription_targets(node) {
            for unit in &units {
                self.subscribe(t, unit, id).await;
            }
        }
        id
    }

    async fn detach_subscription(&mut self, s: &Subscription) {
        for t in self.subscription_targets(&s.node) {
            for unit in &s.units {
                self.unsubscribe(t, unit, s.id).await;
            }
        }
    }

    pub async fn close_monitor(&mut self, idx: usize) {
        let m = self.monitors.list.remove(idx);
        for s in &m.subscriptions {
            self.detach_subscription(s).await;
        }
        for p in &m.peers {
            self.unicast(&m.path, &p.name, "PeerRemoved", &("monitor closed",))
                .await;
        }
    }

    /// `NameOwnerChanged(name, old, "")`: a connection left the bus; its monitors die with it.
    pub async fn on_name_owner_changed(&mut self, m: &Message) {
        let Ok((name, _old, new)) = m.body().deserialize::<(String, String, String)>() else {
            return;
        };
        if !new.is_empty() {
            return;
        }
        while let Some(&i) = self.monitors.owned_by(&name).first() {
            tracing::debug!(
                "Closing monitor {} of departed owner {name}",
                self.monitors.list[i].path
            );
            self.close_monitor(i).await;
        }
    }

    /// Sends one Monitor signal to one destination.
    async fn unicast<B>(&self, path: &str, dest: &str, member: &str, body: &B)
    where
        B: serde::Serialize + zvariant::DynamicType,
    {
        let m = Message::signal(path, MONITOR_IFACE, member)
            .and_then(|b| b.destination(dest))
            .and_then(|b| b.build(body));
        msg::send(&self.bus, m).await;
    }

    /// Delivers a unit event to the monitor owning `subscription`, if any; false otherwise.
    pub async fn deliver_to_monitor(
        &self,
        subscription: u32,
        node: usize,
        unit: &str,
        ev: &UnitEvent,
    ) -> bool {
        let Some(mon) = self.monitors.by_subscription(subscription) else {
            return false;
        };
        let node = self.nodes[node].name.as_str();
        for dest in mon.recipients() {
            let p = mon.path.as_str();
            match ev {
                UnitEvent::New { reason } => {
                    self.unicast(p, &dest, "UnitNew", &(node, unit, reason.as_str()))
                        .await
                }
                UnitEvent::StateChanged {
                    active,
                    sub,
                    reason,
                } => {
                    let body = (node, unit, active.as_str(), sub.as_str(), reason.as_str());
                    self.unicast(p, &dest, "UnitStateChanged", &body).await
                }
                UnitEvent::Removed { reason } => {
                    self.unicast(p, &dest, "UnitRemoved", &(node, unit, reason.as_str()))
                        .await
                }
                UnitEvent::PropertiesChanged { iface, props } => {
                    let map: OrderedDict<&Value<'static>> =
                        OrderedDict(props.iter().map(|(k, v)| (k.clone(), &**v)).collect());
                    let body = (node, unit, iface.as_str(), map);
                    self.unicast(p, &dest, "UnitPropertiesChanged", &body).await
                }
            }
        }
        true
    }
}
