//! Proxy services on the source node (spec §4.3 steps 2, 6, 7, 8).
//!
//! `bluechi-proxy create` calls `CreateProxy` and blocks; the reply is deferred until the
//! controller reports the target active (success) or really inactive/failed (failure).
//! Proxies are served on whatever peer link is current, so they keep working across
//! reconnects (upstream's Q7 defect, fixed without changing the protocol).
//!
//! A restarted agent has lost its proxies while their units stay active; it recovers them
//! from systemd's unit table and announces them again, so the target is started again.

use bluechi_core::msg;
use bluechi_core::names::*;
use zbus::Message;

use crate::agent::{Agent, SdPending};

pub struct Proxy {
    pub id: u32,
    pub local_service: String,
    pub node: String,
    pub unit: String,
    /// The `CreateProxy` call still waiting for its answer.
    pub pending: Option<Message>,
    /// The target was seen loaded (a real `TargetNew`) or up since the proxy was announced.
    /// A removal before that belongs to an earlier incarnation of the target (unloaded by
    /// systemd after the previous proxy's `StopDep`), not to the start under way.
    pub target_seen: bool,
}

/// The proxy a `bluechi-proxy@<node>_<unit>` unit stands for, split as the helper splits its
/// instance (first `_`): `(node, unit)`. `None` for any other unit.
pub fn proxy_of_unit(name: &str) -> Option<(String, String)> {
    let instance = name.strip_prefix("bluechi-proxy@")?;
    if !instance.ends_with(".service") {
        return None;
    }
    match instance.split_once('_') {
        Some((node, unit)) if !node.is_empty() && unit != ".service" && !unit.is_empty() => {
            Some((node.to_string(), unit.to_string()))
        }
        _ => None,
    }
}

impl Proxy {
    pub fn path(&self) -> String {
        proxy_path(self.id)
    }
}

impl Agent {
    pub async fn create_proxy(&mut self, m: Message, local: String, node: String, unit: String) {
        let dup = self
            .proxies
            .iter()
            .any(|p| p.local_service == local && p.node == node && p.unit == unit);
        if dup {
            let text = "Proxy already exists";
            return msg::reply_error(&self.api, &m.header(), ERR_ADDRESS_IN_USE, text).await;
        }
        let id = self.next_proxy_id;
        self.next_proxy_id += 1;
        tracing::info!("Creating proxy {local} for {unit} on node {node}");
        let p = Proxy {
            id,
            local_service: local,
            node,
            unit,
            pending: Some(m),
            target_seen: false,
        };
        let (node, unit, path) = (p.node.clone(), p.unit.clone(), p.path());
        self.proxies.push(p);
        // Not connected: `ProxyNew` goes out after the next registration.
        if let Ok(op) = zvariant::ObjectPath::try_from(path.as_str()) {
            self.emit_to_controller("ProxyNew", &(node.as_str(), unit.as_str(), op))
                .await;
        }
    }

    pub async fn remove_proxy(&mut self, m: &Message, local: &str, node: &str, unit: &str) {
        if let Some(i) = self
            .proxies
            .iter()
            .position(|p| p.local_service == local && p.node == node && p.unit == unit)
        {
            let p = self.proxies.remove(i);
            tracing::info!("Removing proxy {local}");
            if let Some(call) = p.pending {
                msg::reply_error(
                    &self.api,
                    &call.header(),
                    ERR_FAILED,
                    "Proxy service stopped",
                )
                .await;
            }
            self.emit_to_controller("ProxyRemoved", &(node, unit)).await;
        }
        msg::reply(&self.api, &m.header(), &()).await
    }

    /// A `Target*` or `Error` call from the controller on a proxy object.
    pub async fn on_proxy_call(&mut self, path: &str, member: &str, m: &Message) {
        let Some(i) = self.proxies.iter().position(|p| p.path() == path) else {
            return;
        };
        let pending = self.proxies[i].pending.is_some();
        let body = m.body();
        tracing::debug!(
            "Proxy {} (pending: {pending}): {member}{}",
            self.proxies[i].local_service,
            body.deserialize::<zvariant::Structure>()
                .map(|s| s.to_string())
                .unwrap_or_default()
        );
        match member {
            "TargetStateChanged" => {
                let Ok((active, _sub, reason)) = body.deserialize::<(String, String, String)>()
                else {
                    return;
                };
                let down = active == "failed" || active == "inactive";
                if !down {
                    self.proxies[i].target_seen = true;
                }
                if pending && active == "active" {
                    if let Some(call) = self.proxies[i].pending.take() {
                        tracing::info!("Proxy {} is ready", self.proxies[i].local_service);
                        msg::reply(&self.api, &call.header(), &()).await;
                    }
                } else if down && reason == "real" {
                    // Virtual downs (e.g. the target node went offline) are ignored.
                    self.fail_proxy(i, !pending).await;
                }
            }
            "TargetRemoved" => {
                let reason = body
                    .deserialize::<(String,)>()
                    .map(|(r,)| r)
                    .unwrap_or_default();
                // A removal before the target was seen is the end of its previous incarnation.
                if pending && reason == "real" && self.proxies[i].target_seen {
                    self.fail_proxy(i, false).await;
                }
            }
            "TargetNew"
                if body
                    .deserialize::<(String,)>()
                    .is_ok_and(|(r,)| r == "real") =>
            {
                self.proxies[i].target_seen = true;
            }
            "Error" => {
                let text = body
                    .deserialize::<(String,)>()
                    .map(|(t,)| t)
                    .unwrap_or_default();
                tracing::error!("Proxy {} failed: {text}", self.proxies[i].local_service);
                self.fail_proxy(i, !pending).await;
            }
            _ => {}
        }
    }

    /// After a restart: every active `bluechi-proxy@` unit in systemd's table gets its proxy
    /// back, ready (its helper succeeded long ago). Called on each registration, before the
    /// proxies are announced; a unit that already has its proxy is left alone.
    pub fn recover_proxies(&mut self) {
        let mut found: Vec<(String, String, String)> = self
            .units
            .by_path
            .values()
            .filter(|u| u.loaded && u.active.as_deref() == Some("active"))
            .filter_map(|u| proxy_of_unit(&u.name).map(|(n, t)| (u.name.clone(), n, t)))
            .filter(|(local, _, _)| !self.proxies.iter().any(|p| &p.local_service == local))
            .collect();
        found.sort();
        for (local, node, unit) in found {
            tracing::info!("Recovering proxy {local} for {unit} on node {node}");
            let id = self.next_proxy_id;
            self.next_proxy_id += 1;
            self.proxies.push(Proxy {
                id,
                local_service: local,
                node,
                unit,
                pending: None,
                target_seen: true,
            });
        }
    }

    /// Removes a proxy after its target went down: a pending activation fails, a ready proxy
    /// unit is stopped so units bound to it follow.
    async fn fail_proxy(&mut self, i: usize, stop_unit: bool) {
        let p = self.proxies.remove(i);
        if let Some(call) = p.pending {
            let text = "Proxy service failed to start";
            msg::reply_error(&self.api, &call.header(), ERR_ACTIVATION_FAILED, text).await;
        }
        self.emit_to_controller("ProxyRemoved", &(p.node.as_str(), p.unit.as_str()))
            .await;
        if stop_unit {
            let call = msg::call(
                SYSTEMD_BUS_NAME,
                SYSTEMD_PATH,
                SYSTEMD_MANAGER_IFACE,
                "StopUnit",
                &(p.local_service.as_str(), "replace"),
            );
            let what = SdPending::Log {
                what: format!("StopUnit of {}", p.local_service),
            };
            self.call_systemd(call, what).await;
        }
    }

    /// Shutdown: pending activations fail, ready proxy units are stopped, no `ProxyRemoved`.
    pub async fn drop_all_proxies(&mut self) {
        for p in std::mem::take(&mut self.proxies) {
            match p.pending {
                Some(call) => {
                    msg::reply_error(
                        &self.api,
                        &call.header(),
                        ERR_FAILED,
                        "Proxy service stopped",
                    )
                    .await
                }
                None => {
                    let call = msg::call(
                        SYSTEMD_BUS_NAME,
                        SYSTEMD_PATH,
                        SYSTEMD_MANAGER_IFACE,
                        "StopUnit",
                        &(p.local_service.as_str(), "replace"),
                    );
                    if let Ok(c) = call {
                        let _ = self.systemd.send(&c).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_units_split_like_the_helper() {
        let split = |n: &str| proxy_of_unit(n);
        assert_eq!(
            split("bluechi-proxy@worker2_target.service"),
            Some(("worker2".into(), "target.service".into()))
        );
        assert_eq!(
            split("bluechi-proxy@w_a_b.service"),
            Some(("w".into(), "a_b.service".into())),
            "the first underscore separates node and unit"
        );
        assert_eq!(split("bluechi-proxy@.service"), None, "the template");
        assert_eq!(split("bluechi-proxy@_t.service"), None);
        assert_eq!(split("bluechi-proxy@w_.service"), None);
        assert_eq!(split("bluechi-proxy@notarget.service"), None);
        assert_eq!(split("bluechi-dep@target.service"), None);
        assert_eq!(split("source.service"), None);
    }
}
