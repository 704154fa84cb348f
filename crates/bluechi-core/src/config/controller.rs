//! `[bluechi-controller]` and `[node NAME]` keys (spec §6.3).

use super::{split_list, ConfigError, LogConfig, Store, TcpOptions};

pub const SECTION: &str = "bluechi-controller";

/// The keys the controller reads from its own section (spec §6.3).
pub const KEYS: &[&str] = &[
    "ControllerPort",
    "UseTCP",
    "UseUDS",
    "AllowedNodeNames",
    "HeartbeatInterval",
    "NodeHeartbeatThreshold",
    "LogLevel",
    "LogTarget",
    "LogIsQuiet",
    "IPReceiveErrors",
    "TCPKeepAliveTime",
    "TCPKeepAliveInterval",
    "TCPKeepAliveCount",
];

/// The keys of a `[node NAME]` section.
pub const NODE_KEYS: &[&str] = &["Allowed", "RequiredSelinuxContext", "AllowDependenciesOn"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSection {
    pub required_selinux_context: Option<String>,
    /// Target nodes this node may create proxies for; empty denies every proxy.
    pub allow_dependencies_on: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub port: u16,
    pub use_tcp: bool,
    pub use_uds: bool,
    /// Configured node names in ListNodes order.
    pub node_names: Vec<String>,
    pub nodes: Vec<(String, NodeSection)>,
    pub heartbeat_interval_ms: i64,
    pub node_heartbeat_threshold_ms: i64,
    pub log: LogConfig,
    pub tcp: TcpOptions,
    /// Keys that were ignored, as `file:line: ...` texts for the daemon to log as warnings.
    pub warnings: Vec<String>,
}

impl ControllerConfig {
    pub fn from_store(store: &Store) -> Result<Self, ConfigError> {
        let mut node_names = store
            .string(SECTION, "AllowedNodeNames")?
            .map(|s| split_list(&s))
            .unwrap_or_default();
        let mut node_sections: Vec<&str> = store
            .sections()
            .into_iter()
            .filter(|s| s.starts_with("node "))
            .collect();
        // Upstream walks the sections in strcmp order when adding `Allowed=true` nodes.
        node_sections.sort();
        let mut warnings = store.unknown_keys(SECTION, KEYS);
        for sec in &node_sections {
            warnings.extend(store.unknown_keys(sec, NODE_KEYS));
        }
        let mut nodes = Vec::new();
        for sec in node_sections {
            let name = &sec["node ".len()..];
            let known = node_names.iter().any(|n| n == name);
            if !known && !store.bool(sec, "Allowed", false)? {
                continue;
            }
            // Only now is the section's name used (as a node name on the bus).
            store.check_section_name(sec)?;
            if !known {
                node_names.push(name.to_string());
            }
            nodes.push((
                name.to_string(),
                NodeSection {
                    required_selinux_context: store.string(sec, "RequiredSelinuxContext")?,
                    allow_dependencies_on: store
                        .string(sec, "AllowDependenciesOn")?
                        .map(|s| split_list(&s))
                        .unwrap_or_default(),
                },
            ));
        }
        Ok(ControllerConfig {
            // Port 0 would make the kernel pick a port no agent knows.
            port: store.int(SECTION, "ControllerPort", 842, 1, 65535)? as u16,
            use_tcp: store.bool(SECTION, "UseTCP", true)?,
            use_uds: store.bool(SECTION, "UseUDS", true)?,
            node_names,
            nodes,
            heartbeat_interval_ms: store.int(
                SECTION,
                "HeartbeatInterval",
                0,
                i64::MIN,
                i64::MAX,
            )?,
            node_heartbeat_threshold_ms: store.int(
                SECTION,
                "NodeHeartbeatThreshold",
                6000,
                i64::MIN,
                i64::MAX,
            )?,
            log: LogConfig::from_store(store, SECTION)?,
            tcp: TcpOptions::from_store(store, SECTION)?,
            warnings,
        })
    }

    pub fn node_section(&self, name: &str) -> Option<&NodeSection> {
        self.nodes.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_from_list_and_allowed_sections() {
        let mut s = Store::default();
        s.merge_text(
            "f",
            "[bluechi-controller]\nAllowedNodeNames=main,worker1\nControllerPort=2020\n\
             [node worker1]\nAllowDependenciesOn=main,worker2\n\
             [node zed]\nAllowed=true\n[node ghost]\nAllowDependenciesOn=main\n",
        )
        .unwrap();
        let c = ControllerConfig::from_store(&s).unwrap();
        assert_eq!(c.port, 2020);
        assert_eq!(c.node_names, vec!["main", "worker1", "zed"]);
        assert_eq!(
            c.node_section("worker1").unwrap().allow_dependencies_on,
            vec!["main", "worker2"]
        );
        assert!(c.node_section("ghost").is_none());
        assert!(c.node_section("main").is_none());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn unknown_keys_are_warnings_naming_file_line_and_key() {
        let mut s = Store::default();
        s.merge_text(
            "/etc/bluechi/controller.conf",
            "[bluechi-controller]\nControllerPort=1\nControlerPort=2\n[node a]\nAllowed=yes\nAlowed=no\n[other]\nWhatever=1\n",
        )
        .unwrap();
        let c = ControllerConfig::from_store(&s).unwrap();
        assert_eq!(c.port, 1);
        assert_eq!(
            c.warnings,
            vec![
                "/etc/bluechi/controller.conf:3: unknown key 'ControlerPort' in section [bluechi-controller] ignored",
                "/etc/bluechi/controller.conf:6: unknown key 'Alowed' in section [node a] ignored",
            ]
        );
    }

    #[test]
    fn controller_port_zero_is_refused_naming_file_line_and_key() {
        let mut s = Store::default();
        s.merge_text(
            "/etc/bluechi/controller.conf",
            "[bluechi-controller]\nControllerPort=0\n",
        )
        .unwrap();
        let e = ControllerConfig::from_store(&s).unwrap_err().to_string();
        assert_eq!(
            e,
            "/etc/bluechi/controller.conf:2: invalid value '0' for key ControllerPort in section \
             [bluechi-controller]: out of range 1..65535"
        );
        s.set(SECTION, "ControllerPort", "0", "--port");
        let e = ControllerConfig::from_store(&s).unwrap_err().to_string();
        assert!(e.starts_with("--port: invalid value '0'"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = ControllerConfig::from_store(&Store::default()).unwrap();
        assert_eq!(c.port, 842);
        assert!(c.use_tcp && c.use_uds);
        assert_eq!(c.heartbeat_interval_ms, 0);
        assert_eq!(c.node_heartbeat_threshold_ms, 6000);
        assert_eq!(c.log.level, "INFO");
        assert_eq!(c.log.target, "journald");
    }
}
