//! `[bluechi-agent]` keys (spec §6.4).

use super::{ConfigError, LogConfig, Store, TcpOptions};

pub const SECTION: &str = "bluechi-agent";

/// The keys the agent reads from its own section (spec §6.4).
pub const KEYS: &[&str] = &[
    "NodeName",
    "ControllerHost",
    "ControllerPort",
    "ControllerAddress",
    "HeartbeatInterval",
    "ControllerHeartbeatThreshold",
    "ConnectionRetryCountUntilQuiet",
    "LogLevel",
    "LogTarget",
    "LogIsQuiet",
    "IPReceiveErrors",
    "TCPKeepAliveTime",
    "TCPKeepAliveInterval",
    "TCPKeepAliveCount",
];

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    pub controller_host: String,
    pub controller_port: u16,
    pub controller_address: Option<String>,
    pub heartbeat_interval_ms: i64,
    pub controller_heartbeat_threshold_ms: i64,
    pub retry_count_until_quiet: i64,
    pub log: LogConfig,
    pub tcp: TcpOptions,
    /// Keys that were ignored, as `file:line: ...` texts for the daemon to log as warnings.
    pub warnings: Vec<String>,
}

impl AgentConfig {
    pub fn from_store(store: &Store) -> Result<Self, ConfigError> {
        let node_name = match store.string(SECTION, "NodeName") {
            Some(n) => n,
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty())
                .ok_or_else(|| ConfigError::Missing("No agent name specified".into()))?,
        };
        Ok(AgentConfig {
            node_name,
            controller_host: store
                .string(SECTION, "ControllerHost")
                .unwrap_or_else(|| "127.0.0.1".to_string()),
            controller_port: store.int(SECTION, "ControllerPort", 842, 0, 65535)? as u16,
            controller_address: store.string(SECTION, "ControllerAddress"),
            heartbeat_interval_ms: store.int(
                SECTION,
                "HeartbeatInterval",
                2000,
                i64::MIN,
                i64::MAX,
            )?,
            controller_heartbeat_threshold_ms: store.int(
                SECTION,
                "ControllerHeartbeatThreshold",
                0,
                i64::MIN,
                i64::MAX,
            )?,
            retry_count_until_quiet: store.int(
                SECTION,
                "ConnectionRetryCountUntilQuiet",
                10,
                i64::MIN,
                i64::MAX,
            )?,
            log: LogConfig::from_store(store, SECTION),
            tcp: TcpOptions::from_store(store, SECTION)?,
            warnings: store.unknown_keys(SECTION, KEYS),
        })
    }

    /// The sd-bus address of the controller: `ControllerAddress`, else `tcp:host=..,port=..`.
    pub fn controller_address(&self) -> String {
        match &self.controller_address {
            Some(a) => a.clone(),
            None => format!(
                "tcp:host={},port={}",
                self.controller_host, self.controller_port
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_from_host_and_port() {
        let mut s = Store::default();
        s.merge_text(
            "f",
            "[bluechi-agent]\nNodeName=w1\nControllerHost=::1\nControllerPort=9\n",
        )
        .unwrap();
        let a = AgentConfig::from_store(&s).unwrap();
        assert_eq!(a.node_name, "w1");
        assert_eq!(a.controller_address(), "tcp:host=::1,port=9");
        assert_eq!(a.heartbeat_interval_ms, 2000);
        assert!(a.warnings.is_empty());
        s.merge_text(
            "/etc/bluechi/agent.conf.d/x.conf",
            "[bluechi-agent]\n\nNodename=x\n",
        )
        .unwrap();
        assert_eq!(
            AgentConfig::from_store(&s).unwrap().warnings,
            vec!["/etc/bluechi/agent.conf.d/x.conf:3: unknown key 'Nodename' in section [bluechi-agent] ignored"]
        );
        s.set(SECTION, "ControllerAddress", "unix:path=/x", "cli");
        assert_eq!(
            AgentConfig::from_store(&s).unwrap().controller_address(),
            "unix:path=/x"
        );
    }
}
