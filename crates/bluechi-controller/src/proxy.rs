//! Cross-node dependencies (spec §4.3, §4.4): a proxy monitor per `ProxyNew`, a subscription
//! on the target unit whose events become `Target*` calls on the source agent's proxy object,
//! and a per-(target node, unit) reference count driving `StartDep`/`StopDep`.

use std::collections::HashMap;

use bluechi_core::names::*;

use crate::controller::Controller;
use crate::peer::UnitEvent;

pub struct ProxyMonitor {
    pub subscription: u32,
    pub source: String,
    pub target: String,
    pub unit: String,
    /// The proxy object on the source agent's peer connection.
    pub path: String,
}

#[derive(Default)]
pub struct Proxies {
    pub monitors: Vec<ProxyMonitor>,
    /// Reference counts per (target node, unit).
    pub deps: HashMap<(String, String), u32>,
}

impl Proxies {
    /// Units with outstanding dependencies on `node`, re-sent as `StartDep` when it registers.
    pub fn deps_on(&self, node: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .deps
            .iter()
            .filter(|((n, _), c)| n == node && **c > 0)
            .map(|((_, u), _)| u.clone())
            .collect();
        v.sort();
        v
    }

    /// Adds one reference; every increment sends a `StartDep` (a target stopped meanwhile is
    /// started again), so the caller always sends one.
    pub fn add_dep(&mut self, node: &str, unit: &str) {
        *self
            .deps
            .entry((node.to_string(), unit.to_string()))
            .or_insert(0) += 1;
    }

    /// Drops one reference; true when it reached zero and `StopDep` is due.
    pub fn remove_dep(&mut self, node: &str, unit: &str) -> bool {
        let key = (node.to_string(), unit.to_string());
        match self.deps.get_mut(&key) {
            Some(c) if *c > 1 => {
                *c -= 1;
                false
            }
            Some(_) => {
                self.deps.remove(&key);
                true
            }
            None => false,
        }
    }
}

impl Controller {
    pub async fn on_proxy_new(&mut self, source: usize, target: &str, unit: &str, path: &str) {
        let source_name = self.nodes[source].name.clone();
        let allowed = self
            .cfg
            .node_section(&source_name)
            .is_some_and(|s| s.allow_dependencies_on.iter().any(|n| n == target));
        let error = match self.node_index(target) {
            None => Some("No such node"),
            Some(_) if !allowed => Some("Proxy on node not allowed"),
            Some(_) => None,
        };
        // A subscription id is consumed either way, as upstream creates the monitor first.
        let subscription = self.next_subscription;
        self.next_subscription += 1;
        if let Some(text) = error {
            tracing::error!(
                "Proxy from '{source_name}' to '{target}' for '{unit}' refused: {text}"
            );
            self.send_agent_oneway(source, path, INTERNAL_PROXY_IFACE, "Error", &(text,))
                .await;
            return;
        }
        if let Some(i) = self.find_proxy(&source_name, target, unit) {
            tracing::warn!(
                "Replacing existing proxy monitor for '{source_name}' -> '{target}' '{unit}'"
            );
            self.drop_proxy_monitor(i).await;
        }
        let Some(t) = self.node_index(target) else {
            return;
        };
        self.proxies.add_dep(target, unit);
        self.send_agent_oneway(
            t,
            INTERNAL_AGENT_PATH,
            INTERNAL_AGENT_IFACE,
            "StartDep",
            &(unit,),
        )
        .await;
        self.proxies.monitors.push(ProxyMonitor {
            subscription,
            source: source_name,
            target: target.to_string(),
            unit: unit.to_string(),
            path: path.to_string(),
        });
        self.subscribe(t, unit, subscription).await;
    }

    pub async fn on_proxy_removed(&mut self, source: usize, target: &str, unit: &str) {
        let source_name = self.nodes[source].name.clone();
        match self.find_proxy(&source_name, target, unit) {
            Some(i) => self.drop_proxy_monitor(i).await,
            None => tracing::error!("Got ProxyRemoved for unknown monitor"),
        }
    }

    /// Removes every proxy monitor whose source is `node` (it disconnected).
    pub async fn remove_proxies_of(&mut self, node: usize) {
        let name = self.nodes[node].name.clone();
        while let Some(i) = self.proxies.monitors.iter().position(|m| m.source == name) {
            self.drop_proxy_monitor(i).await;
        }
    }

    fn find_proxy(&self, source: &str, target: &str, unit: &str) -> Option<usize> {
        self.proxies
            .monitors
            .iter()
            .position(|m| m.source == source && m.target == target && m.unit == unit)
    }

    async fn drop_proxy_monitor(&mut self, i: usize) {
        let m = self.proxies.monitors.remove(i);
        let Some(t) = self.node_index(&m.target) else {
            return;
        };
        self.unsubscribe(t, &m.unit, m.subscription).await;
        if self.proxies.remove_dep(&m.target, &m.unit) {
            self.send_agent_oneway(
                t,
                INTERNAL_AGENT_PATH,
                INTERNAL_AGENT_IFACE,
                "StopDep",
                &(m.unit.as_str(),),
            )
            .await;
        }
    }

    /// Adds a subscription on `unit` of node `t`: the first one subscribes the agent; a unit
    /// already known loaded gets virtual events for this subscription only.
    pub async fn subscribe(&mut self, t: usize, unit: &str, subscription: u32) {
        let entry = self.nodes[t].units.entry(unit.to_string()).or_default();
        entry.subscriptions.push(subscription);
        let first = entry.subscriptions.len() == 1;
        let cached = entry.clone();
        if first {
            self.send_agent_oneway(
                t,
                INTERNAL_AGENT_PATH,
                INTERNAL_AGENT_IFACE,
                "Subscribe",
                &(unit,),
            )
            .await;
        }
        if cached.loaded {
            let ev = UnitEvent::New {
                reason: "virtual".into(),
            };
            self.deliver(subscription, t, unit, &ev).await;
            if let Some(active) = cached.active {
                let ev = UnitEvent::StateChanged {
                    active,
                    sub: cached.sub.unwrap_or_else(|| "invalid".into()),
                    reason: "virtual".into(),
                };
                self.deliver(subscription, t, unit, &ev).await;
            }
        }
    }

    pub async fn unsubscribe(&mut self, t: usize, unit: &str, subscription: u32) {
        let Some(entry) = self.nodes[t].units.get_mut(unit) else {
            return;
        };
        entry.subscriptions.retain(|s| *s != subscription);
        if entry.subscriptions.is_empty() {
            self.nodes[t].units.remove(unit);
            self.send_agent_oneway(
                t,
                INTERNAL_AGENT_PATH,
                INTERNAL_AGENT_IFACE,
                "Unsubscribe",
                &(unit,),
            )
            .await;
        }
    }

    /// Delivers a unit event to one subscription's consumer.
    pub async fn deliver(&mut self, subscription: u32, node: usize, unit: &str, ev: &UnitEvent) {
        if self.deliver_to_monitor(subscription, node, unit, ev).await {
            return;
        }
        let Some(m) = self
            .proxies
            .monitors
            .iter()
            .find(|m| m.subscription == subscription)
        else {
            return;
        };
        let Some(source) = self.node_index(&m.source) else {
            return;
        };
        let path = m.path.clone();
        match ev {
            UnitEvent::New { reason } => {
                self.send_agent_oneway(
                    source,
                    &path,
                    INTERNAL_PROXY_IFACE,
                    "TargetNew",
                    &(reason.as_str(),),
                )
                .await
            }
            UnitEvent::StateChanged {
                active,
                sub,
                reason,
            } => {
                self.send_agent_oneway(
                    source,
                    &path,
                    INTERNAL_PROXY_IFACE,
                    "TargetStateChanged",
                    &(active.as_str(), sub.as_str(), reason.as_str()),
                )
                .await
            }
            UnitEvent::Removed { reason } => {
                self.send_agent_oneway(
                    source,
                    &path,
                    INTERNAL_PROXY_IFACE,
                    "TargetRemoved",
                    &(reason.as_str(),),
                )
                .await
            }
            // Proxies follow state only.
            UnitEvent::PropertiesChanged { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refcount_stops_only_at_zero() {
        let mut p = Proxies::default();
        p.add_dep("w2", "t.service");
        p.add_dep("w2", "t.service");
        assert!(!p.remove_dep("w2", "t.service"));
        assert_eq!(p.deps_on("w2"), vec!["t.service"]);
        assert!(p.remove_dep("w2", "t.service"));
        assert!(p.deps_on("w2").is_empty());
        assert!(
            !p.remove_dep("w2", "t.service"),
            "unknown dependency is a no-op"
        );
    }
}
