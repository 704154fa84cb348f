//! Bus names, object paths, interfaces and error names of the BlueChi D-Bus contract
//! (`shared/api/*.xml`), plus sd-bus' object-path escaping.

pub const CONTROLLER_BUS_NAME: &str = "org.eclipse.bluechi";
pub const AGENT_BUS_NAME: &str = "org.eclipse.bluechi.Agent";

pub const CONTROLLER_PATH: &str = "/org/eclipse/bluechi";
pub const AGENT_PATH: &str = "/org/eclipse/bluechi";
pub const NODE_PATH_PREFIX: &str = "/org/eclipse/bluechi/node";
pub const JOB_PATH_PREFIX: &str = "/org/eclipse/bluechi/job";
pub const INTERNAL_CONTROLLER_PATH: &str = "/org/eclipse/bluechi/internal";
pub const INTERNAL_AGENT_PATH: &str = "/org/eclipse/bluechi/internal/agent";
pub const INTERNAL_PROXY_PATH_PREFIX: &str = "/org/eclipse/bluechi/internal/proxy";
/// Where the agent emits `AgentJobMetrics` while metrics are enabled.
pub const INTERNAL_METRICS_PATH: &str = "/org/eclipse/bluechi/internal/agent/metrics";

pub const CONTROLLER_IFACE: &str = "org.eclipse.bluechi.Controller";
pub const NODE_IFACE: &str = "org.eclipse.bluechi.Node";
pub const JOB_IFACE: &str = "org.eclipse.bluechi.Job";
pub const AGENT_IFACE: &str = "org.eclipse.bluechi.Agent";
pub const INTERNAL_CONTROLLER_IFACE: &str = "org.eclipse.bluechi.internal.Controller";
pub const INTERNAL_AGENT_IFACE: &str = "org.eclipse.bluechi.internal.Agent";
pub const INTERNAL_PROXY_IFACE: &str = "org.eclipse.bluechi.internal.Proxy";
pub const INTERNAL_METRICS_IFACE: &str = "org.eclipse.bluechi.internal.Agent.Metrics";

pub const PROPERTIES_IFACE: &str = "org.freedesktop.DBus.Properties";
pub const INTROSPECTABLE_IFACE: &str = "org.freedesktop.DBus.Introspectable";
pub const PEER_IFACE: &str = "org.freedesktop.DBus.Peer";

pub const SYSTEMD_BUS_NAME: &str = "org.freedesktop.systemd1";
pub const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
pub const SYSTEMD_MANAGER_IFACE: &str = "org.freedesktop.systemd1.Manager";
pub const SYSTEMD_UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
pub const SYSTEMD_JOB_IFACE: &str = "org.freedesktop.systemd1.Job";
pub const SYSTEMD_UNIT_PATH_PREFIX: &str = "/org/freedesktop/systemd1/unit";
pub const SYSTEMD_JOB_PATH_PREFIX: &str = "/org/freedesktop/systemd1/job";

pub const ERR_FAILED: &str = "org.freedesktop.DBus.Error.Failed";
pub const ERR_INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";
pub const ERR_UNKNOWN_OBJECT: &str = "org.freedesktop.DBus.Error.UnknownObject";
pub const ERR_UNKNOWN_METHOD: &str = "org.freedesktop.DBus.Error.UnknownMethod";
pub const ERR_UNKNOWN_PROPERTY: &str = "org.freedesktop.DBus.Error.UnknownProperty";
pub const ERR_SERVICE_UNKNOWN: &str = "org.freedesktop.DBus.Error.ServiceUnknown";
pub const ERR_ADDRESS_IN_USE: &str = "org.freedesktop.DBus.Error.AddressInUse";
pub const ERR_OFFLINE: &str = "org.eclipse.bluechi.Offline";
pub const ERR_ACTIVATION_FAILED: &str = "org.eclipse.bluechi.ActivationFailed";

/// Escapes one object-path component the way sd-bus (`sd_bus_path_encode`) and systemd do:
/// every byte outside `[A-Za-z0-9]`, and a digit in first position, becomes `_xx`; the empty
/// string becomes `_`. Clients compute node paths with this locally, so it must be exact.
pub fn escape_path_component(s: &str) -> String {
    if s.is_empty() {
        return "_".to_string();
    }
    let mut out = String::with_capacity(s.len() * 3);
    for (i, b) in s.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (b.is_ascii_digit() && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

pub fn node_path(node: &str) -> String {
    format!("{NODE_PATH_PREFIX}/{}", escape_path_component(node))
}

pub fn job_path(id: u32) -> String {
    format!("{JOB_PATH_PREFIX}/{id}")
}

pub fn systemd_unit_path(unit: &str) -> String {
    format!("{SYSTEMD_UNIT_PATH_PREFIX}/{}", escape_path_component(unit))
}

pub fn proxy_path(id: u32) -> String {
    format!("{INTERNAL_PROXY_PATH_PREFIX}/{id}")
}

/// The template instance that makes systemd start `unit` on the target node of a proxy.
pub fn dep_unit_name(unit: &str) -> String {
    format!("bluechi-dep@{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_sd_bus() {
        assert_eq!(escape_path_component("node-foo"), "node_2dfoo");
        assert_eq!(escape_path_component("1node"), "_31node");
        assert_eq!(escape_path_component("simple.service"), "simple_2eservice");
        assert_eq!(
            escape_path_component("bluechi-dep@x.service"),
            "bluechi_2ddep_40x_2eservice"
        );
        assert_eq!(escape_path_component(""), "_");
        assert_eq!(escape_path_component("worker2"), "worker2");
    }

    #[test]
    fn paths() {
        assert_eq!(node_path("main"), "/org/eclipse/bluechi/node/main");
        assert_eq!(job_path(7), "/org/eclipse/bluechi/job/7");
        assert_eq!(
            systemd_unit_path("target.service"),
            "/org/freedesktop/systemd1/unit/target_2eservice"
        );
    }
}
