//! Cross-node dependencies (spec §4.3, §4.4): a proxy monitor per `ProxyNew`, a subscription
//! on the target unit whose events become `Target*` calls on the source agent's proxy object,
//! and a per-(target node, unit) reference count driving `StartDep`/`StopDep`.
//!
//! A down or removal of the target is checked against the target node's systemd before it
//! reaches the proxy: an event from an earlier incarnation of the target (the previous
//! proxy's `StopDep` still taking effect, the unit unloaded by systemd's garbage collection
//! after our `StartDep` was sent) must not fail a proxy whose start is still under way.

use std::collections::HashMap;

use bluechi_core::msg::{self, ListedUnit};
use bluechi_core::names::*;
use zbus::Message;

use crate::controller::{Controller, Pending};
use crate::peer::UnitEvent;

pub struct ProxyMonitor {
    pub subscription: u32,
    pub source: String,
    pub target: String,
    pub unit: String,
    /// The proxy object on the source agent's peer connection.
    pub path: String,
    /// Real target events seen so far, numbered as they arrive.
    pub arrived: u64,
    /// The number of the newest real event passed to the proxy: a held event whose check comes
    /// back after a newer one went through is out of date and dropped. Virtual events (a node
    /// going offline, the state at subscription) do not count: proxies ignore virtual downs.
    pub last_delivered: u64,
}

#[derive(Default)]
pub struct Proxies {
    pub monitors: Vec<ProxyMonitor>,
    /// Reference counts per (target node, unit).
    pub deps: HashMap<(String, String), u32>,
}

impl Proxies {
    /// The proxy monitor fed by `subscription`, if that subscription is a proxy's.
    pub fn by_subscription(&mut self, subscription: u32) -> Option<&mut ProxyMonitor> {
        self.monitors
            .iter_mut()
            .find(|m| m.subscription == subscription)
    }

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

/// A down event for a proxy, held until the target node's systemd confirms it.
#[derive(Debug)]
pub struct ProxyCheck {
    pub subscription: u32,
    /// The event's arrival number (see `ProxyMonitor::arrived`).
    pub seq: u64,
    pub node: usize,
    pub unit: String,
    pub event: UnitEvent,
}

/// Whether an event reports what systemd did (not a state replayed or made up by us).
fn is_real(ev: &UnitEvent) -> bool {
    match ev {
        UnitEvent::New { reason }
        | UnitEvent::StateChanged { reason, .. }
        | UnitEvent::Removed { reason } => reason == "real",
        UnitEvent::PropertiesChanged { .. } => false,
    }
}

/// Whether an event would take a proxy down: a real `inactive`/`failed` state or a real
/// removal. Virtual events never do (the proxy ignores them), so they need no check.
fn proxy_fatal(ev: &UnitEvent) -> bool {
    match ev {
        UnitEvent::StateChanged { active, reason, .. } => {
            reason == "real" && (active == "inactive" || active == "failed")
        }
        UnitEvent::Removed { reason } => reason == "real",
        _ => false,
    }
}

/// What the target node's systemd says about a unit after a fatal-looking event.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Down with nothing pending (or not loaded at all): the event is true now.
    Down,
    /// Up, in transition, or with a job queued (e.g. the start our `StartDep` asked for):
    /// the event belonged to an earlier incarnation; the next state change will tell.
    Stale,
}

/// `listed`: the unit's (active state, job id) from systemd's `ListUnits`, `None` if not
/// loaded. A queued job keeps a unit loaded, so an absent unit has none.
pub fn verdict(listed: Option<(&str, u32)>) -> Verdict {
    match listed {
        None => Verdict::Down,
        Some((_, job)) if job != 0 => Verdict::Stale,
        Some(("inactive" | "failed", _)) => Verdict::Down,
        Some(_) => Verdict::Stale,
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
            arrived: 0,
            last_delivered: 0,
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
        // Proxies follow state only: property changes are neither passed on nor numbered.
        if matches!(ev, UnitEvent::PropertiesChanged { .. }) {
            return;
        }
        let Some(m) = self.proxies.by_subscription(subscription) else {
            return;
        };
        let seq = is_real(ev).then(|| {
            m.arrived += 1;
            m.arrived
        });
        match seq {
            Some(seq) if proxy_fatal(ev) => {
                self.check_then_deliver(subscription, seq, node, unit, ev)
                    .await
            }
            _ => self.deliver_to_proxy(subscription, seq, ev).await,
        }
    }

    /// Asks the target node's systemd for the unit's state now. The agent handles our calls in
    /// order, so the answer reflects every `StartDep` sent before, and arrives after every
    /// event the agent emitted before it.
    async fn check_then_deliver(
        &mut self,
        subscription: u32,
        seq: u64,
        node: usize,
        unit: &str,
        ev: &UnitEvent,
    ) {
        // `ListUnits`, not a property read: reading a property of an unloaded unit makes
        // systemd load it, and unload it again later, which is one more removal to check.
        let call = msg::call(
            AGENT_BUS_NAME,
            INTERNAL_AGENT_PATH,
            INTERNAL_AGENT_IFACE,
            "ListUnits",
            &(),
        );
        let check = ProxyCheck {
            subscription,
            seq,
            node,
            unit: unit.to_string(),
            event: ev.clone(),
        };
        self.call_agent(node, call, Pending::ProxyCheck(Box::new(check)))
            .await;
    }

    /// The answer to `check_then_deliver`. Without an answer (node gone, error, timeout) the
    /// event goes through as it came, as upstream delivers it.
    pub async fn proxy_check_done(&mut self, check: ProxyCheck, reply: Option<&Message>) {
        let overtaken = self
            .proxies
            .by_subscription(check.subscription)
            .is_none_or(|m| m.last_delivered > check.seq);
        if overtaken {
            // The proxy is gone, or a later event reached it while we asked: this one is old.
            return;
        }
        let listed = reply.and_then(|m| m.body().deserialize::<(Vec<ListedUnit>,)>().ok());
        if let Some((units,)) = listed {
            let state = units
                .iter()
                .find(|u| u.0 == check.unit)
                .map(|u| (u.3.as_str(), u.7));
            if verdict(state) == Verdict::Stale {
                tracing::debug!(
                    "Not passing {:?} of '{}' on '{}' to its proxy: systemd reports {state:?}",
                    check.event,
                    check.unit,
                    self.nodes[check.node].name
                );
                return;
            }
        }
        self.deliver_to_proxy(check.subscription, Some(check.seq), &check.event)
            .await;
    }

    /// Turns a unit event (`seq`: its arrival number if real) into the matching `Target*`
    /// call on the source agent's proxy object.
    async fn deliver_to_proxy(&mut self, subscription: u32, seq: Option<u64>, ev: &UnitEvent) {
        let Some(m) = self.proxies.by_subscription(subscription) else {
            return;
        };
        if let Some(seq) = seq {
            m.last_delivered = m.last_delivered.max(seq);
        }
        let (source, path) = (m.source.clone(), m.path.clone());
        let Some(source) = self.node_index(&source) else {
            return;
        };
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
            // Not passed on: `deliver` returns before.
            UnitEvent::PropertiesChanged { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_downs_and_removals_are_checked() {
        let sc = |active: &str, reason: &str| UnitEvent::StateChanged {
            active: active.into(),
            sub: "dead".into(),
            reason: reason.into(),
        };
        assert!(proxy_fatal(&sc("inactive", "real")));
        assert!(proxy_fatal(&sc("failed", "real")));
        assert!(!proxy_fatal(&sc("inactive", "virtual")));
        assert!(!proxy_fatal(&sc("active", "real")));
        assert!(!proxy_fatal(&sc("deactivating", "real")));
        let removed = |reason: &str| UnitEvent::Removed {
            reason: reason.into(),
        };
        assert!(proxy_fatal(&removed("real")));
        assert!(!proxy_fatal(&removed("virtual")));
        assert!(!proxy_fatal(&UnitEvent::New {
            reason: "real".into()
        }));
    }

    #[test]
    fn a_down_is_true_only_without_a_job_and_not_up() {
        assert_eq!(verdict(None), Verdict::Down, "not loaded: nothing pending");
        assert_eq!(verdict(Some(("inactive", 0))), Verdict::Down);
        assert_eq!(verdict(Some(("failed", 0))), Verdict::Down);
        assert_eq!(
            verdict(Some(("inactive", 17))),
            Verdict::Stale,
            "a start is queued"
        );
        assert_eq!(verdict(Some(("failed", 3))), Verdict::Stale);
        assert_eq!(verdict(Some(("active", 0))), Verdict::Stale, "up again");
        assert_eq!(verdict(Some(("activating", 0))), Verdict::Stale);
        assert_eq!(verdict(Some(("deactivating", 0))), Verdict::Stale);
    }

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
