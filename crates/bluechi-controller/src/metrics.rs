//! Metrics (spec §2.6, §3.5): the on/off switch, re-broadcast of agent job metrics, and the
//! controller's own `StartUnitJobMetrics`, whose two unit timestamps are fetched with async
//! `GetUnitProperty` calls through `pending`.

use bluechi_core::msg;
use bluechi_core::names::*;
use zbus::Message;
use zvariant::OwnedValue;

use crate::controller::{Controller, Pending};

pub const METRICS_PATH: &str = "/org/eclipse/bluechi/metrics";
pub const METRICS_IFACE: &str = "org.eclipse.bluechi.Metrics";
const ERR_INCONSISTENT: &str = "org.freedesktop.DBus.Error.InconsistentMessage";

/// A finished start job waiting for `InactiveExit`/`ActiveEnter` timestamps.
pub struct StartMetric {
    pub node: String,
    pub job_path: String,
    pub unit: String,
    pub measured_us: u64,
    pub inactive_exit: Option<u64>,
    pub active_enter: Option<u64>,
}

impl StartMetric {
    /// Net start time once both timestamps are in (saturating, as clocks may disagree).
    pub fn net_us(&self) -> Option<u64> {
        Some(self.active_enter?.saturating_sub(self.inactive_exit?))
    }
}

impl Controller {
    pub async fn set_metrics(&mut self, m: &Message, enable: bool) {
        let hdr = m.header();
        if self.metrics_enabled == enable {
            let text = if enable {
                "Metrics already enabled"
            } else {
                "Metrics already disabled"
            };
            return msg::reply_error(&self.bus, &hdr, ERR_INCONSISTENT, text).await;
        }
        self.metrics_enabled = enable;
        let member = if enable {
            "EnableMetrics"
        } else {
            "DisableMetrics"
        };
        for node in 0..self.nodes.len() {
            self.send_agent_oneway(node, INTERNAL_AGENT_PATH, INTERNAL_AGENT_IFACE, member, &())
                .await;
        }
        if !enable {
            self.start_metrics.clear();
        }
        msg::reply(&self.bus, &hdr, &()).await
    }

    async fn emit_metric<B>(&self, member: &str, body: &B)
    where
        B: serde::Serialize + zvariant::DynamicType,
    {
        if let Err(e) = self
            .bus
            .emit_signal(None::<&str>, METRICS_PATH, METRICS_IFACE, member, body)
            .await
        {
            tracing::debug!("failed to emit {member}: {e}");
        }
    }

    /// The agent's internal `AgentJobMetrics(unit, method, µs)`, re-broadcast with the node.
    pub async fn on_agent_metrics(&mut self, node: usize, member: &str, m: &Message) {
        if !self.metrics_enabled || member != "AgentJobMetrics" {
            return;
        }
        if let Ok((unit, method, us)) = m.body().deserialize::<(String, String, u64)>() {
            let name = self.nodes[node].name.clone();
            self.emit_metric("AgentJobMetrics", &(name, unit, method, us))
                .await;
        }
    }

    /// A start job finished while metrics are on: ask the agent for the unit's timestamps.
    pub async fn start_job_metric(&mut self, node: &str, job_path: &str, unit: &str, us: u64) {
        let Some(n) = self.node_index(node) else {
            return;
        };
        let token = self.next_token();
        self.start_metrics.insert(
            token,
            StartMetric {
                node: node.to_string(),
                job_path: job_path.to_string(),
                unit: unit.to_string(),
                measured_us: us,
                inactive_exit: None,
                active_enter: None,
            },
        );
        for (prop, active_enter) in [
            ("InactiveExitTimestampMonotonic", false),
            ("ActiveEnterTimestampMonotonic", true),
        ] {
            let call = msg::call(
                AGENT_BUS_NAME,
                INTERNAL_AGENT_PATH,
                INTERNAL_AGENT_IFACE,
                "GetUnitProperty",
                &(unit, SYSTEMD_UNIT_IFACE, prop),
            );
            let what = Pending::MetricsProp {
                token,
                active_enter,
            };
            self.call_agent(n, call, what).await;
        }
    }

    /// One timestamp reply; emits the signal when both are in, drops the metric on error.
    pub async fn metrics_prop(&mut self, token: u32, active_enter: bool, reply: Option<&Message>) {
        let value = reply.and_then(|m| {
            let (v,): (OwnedValue,) = m.body().deserialize().ok()?;
            u64::try_from(&v).ok()
        });
        let Some(value) = value else {
            if self.start_metrics.remove(&token).is_some() {
                tracing::error!("Failed to get unit timestamps for start job metrics");
            }
            return;
        };
        let Some(sm) = self.start_metrics.get_mut(&token) else {
            return;
        };
        if active_enter {
            sm.active_enter = Some(value);
        } else {
            sm.inactive_exit = Some(value);
        }
        let Some(net) = sm.net_us() else {
            return;
        };
        let Some(sm) = self.start_metrics.remove(&token) else {
            return;
        };
        if self.metrics_enabled {
            let body = (sm.node, sm.job_path, sm.unit, sm.measured_us, net);
            self.emit_metric("StartUnitJobMetrics", &body).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_time_needs_both_timestamps() {
        let mut m = StartMetric {
            node: "n".into(),
            job_path: "/j".into(),
            unit: "u".into(),
            measured_us: 5,
            inactive_exit: Some(100),
            active_enter: None,
        };
        assert_eq!(m.net_us(), None);
        m.active_enter = Some(350);
        assert_eq!(m.net_us(), Some(250));
        m.inactive_exit = Some(400);
        assert_eq!(m.net_us(), Some(0), "never negative");
    }
}
