//! The backend-neutral half of a run: what every node gets, rendered once from the scenario.
//! A backend only says where things go (paths, addresses); what they say is decided here, so
//! every backend runs the same cluster.

use std::collections::BTreeMap;

use crate::syntax::{Scenario, UnitFile};

/// The placeholder a scenario's config text may use for the port agents connect to.
pub const PORT_PLACEHOLDER: &str = "${ControllerPort}";
/// The placeholder for an IPv6 address of the controller's node that agents can reach.
pub const IPV6_PLACEHOLDER: &str = "${ControllerIPv6}";
/// The placeholder for the host name (or address) agents reach the controller at.
pub const HOST_PLACEHOLDER: &str = "${ControllerHost}";

/// Where a node's agent reaches the controller (a relay's address on the local backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// The same over IPv6 (`::1` locally, the controller container's address on Podman).
    pub ipv6: String,
}

impl Endpoint {
    /// `text` with the controller placeholders replaced by this endpoint (agent configs and the
    /// commands run on the endpoint's node).
    pub fn fill(&self, text: &str) -> String {
        text.replace(PORT_PLACEHOLDER, &self.port.to_string())
            .replace(IPV6_PLACEHOLDER, &self.ipv6)
            .replace(HOST_PLACEHOLDER, &self.host)
    }
}

#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// Every node, in the scenario's order; each runs an agent.
    pub nodes: Vec<String>,
    /// The node that also runs the controller.
    pub controller: String,
    /// Nodes not expected online when the cluster is up (refused or kept out on purpose).
    pub offline: Vec<String>,
    controller_text: String,
    agent_texts: BTreeMap<String, String>,
    units: Vec<UnitFile>,
}

impl ClusterPlan {
    pub fn new(s: &Scenario) -> Self {
        ClusterPlan {
            nodes: s.nodes.clone(),
            controller: s.controller.clone(),
            offline: s.offline.clone(),
            controller_text: s.controller_conf.clone(),
            agent_texts: s.agent_confs.iter().cloned().collect(),
            units: s.units.clone(),
        }
    }

    /// The controller's configuration: the runner's keys (`backend_keys` adds the backend's
    /// own, e.g. `UseUDS=false`), then the scenario's text, which may re-open the section.
    pub fn controller_config(&self, port: u16, backend_keys: &str) -> String {
        let text = self
            .controller_text
            .replace(PORT_PLACEHOLDER, &port.to_string());
        format!(
            "[bluechi-controller]\nControllerPort={port}\n{backend_keys}LogTarget=stderr\nLogLevel=DEBUG\n\n{text}"
        )
    }

    /// A node's agent configuration. `ControllerAddress=` in the scenario's text overrides host
    /// and port (upstream's rule), e.g. `tcp:host=::1,port=${ControllerPort}` for IPv6.
    pub fn agent_config(&self, node: &str, endpoint: &Endpoint) -> String {
        let text = self
            .agent_texts
            .get(node)
            .map(|t| endpoint.fill(t))
            .unwrap_or_default();
        format!(
            "[bluechi-agent]\nNodeName={node}\nControllerHost={}\nControllerPort={}\nLogTarget=stderr\nLogLevel=DEBUG\n\n{text}",
            endpoint.host, endpoint.port
        )
    }

    /// The scenario's unit files (and drop-ins) for one node.
    pub fn units_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a UnitFile> + 'a {
        self.units.iter().filter(move |u| u.node == node)
    }

    /// The nodes that must be online before the first step.
    pub fn awaited(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| !self.offline.contains(n))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan(text: &str) -> ClusterPlan {
        ClusterPlan::new(&crate::syntax::parse_str("t", Path::new("t"), text).unwrap())
    }

    #[test]
    fn configs_hold_runner_keys_then_scenario_text() {
        let p = plan(
            "nodes: a w1\ncontroller: a\ncontroller.conf:\n    [node a]\n    X=1\n\
             agent.conf w1:\n    ControllerAddress=tcp:host=${ControllerIPv6},port=${ControllerPort}\n",
        );
        let c = p.controller_config(1234, "UseUDS=false\n");
        assert!(c.starts_with("[bluechi-controller]\nControllerPort=1234\nUseUDS=false\n"));
        assert!(c.ends_with("[node a]\nX=1\n"), "{c}");
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: 99,
            ipv6: "::1".into(),
        };
        let a6 = p.agent_config("w1", &endpoint);
        assert!(
            a6.contains("ControllerAddress=tcp:host=::1,port=99\n"),
            "{a6}"
        );
        let a = p.agent_config("a", &endpoint);
        assert!(a.contains("NodeName=a\nControllerHost=127.0.0.1\nControllerPort=99\n"));
    }

    #[test]
    fn offline_nodes_are_not_awaited() {
        let p = plan("nodes: a b c\ncontroller: a\noffline: c\n");
        assert_eq!(p.awaited(), vec!["a".to_string(), "b".to_string()]);
    }
}
