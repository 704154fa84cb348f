//! Introspection of the agent's objects: the public one on the node bus and those it serves to
//! the controller on the peer link. The interface text is the contract's XML (vendored in
//! `introspection/`), so what we advertise is exactly what upstream clients were built against.

use bluechi_core::introspect::{children_of, document, interfaces};
use bluechi_core::msg;
use bluechi_core::names::*;
use zbus::{Connection, Message};

use crate::agent::Agent;

const AGENT_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Agent.xml");
const INTERNAL_AGENT_XML: &str =
    include_str!("../introspection/org.eclipse.bluechi.internal.Agent.xml");
const INTERNAL_METRICS_XML: &str =
    include_str!("../introspection/org.eclipse.bluechi.internal.Agent.Metrics.xml");
const INTERNAL_PROXY_XML: &str =
    include_str!("../introspection/org.eclipse.bluechi.internal.Proxy.xml");

/// The document for `path` on the node bus; `None` for paths we serve nothing under.
pub fn public_xml(path: &str) -> Option<String> {
    let children = children_of(path, [AGENT_PATH])?;
    let body = if path == AGENT_PATH {
        interfaces(AGENT_XML)
    } else {
        ""
    };
    Some(document(body, &children))
}

/// The document for `path` on the peer link, given the objects currently exported there.
pub fn peer_xml(path: &str, metrics_enabled: bool, proxy_paths: &[String]) -> Option<String> {
    let mut objects: Vec<&str> = vec![INTERNAL_AGENT_PATH];
    if metrics_enabled {
        objects.push(INTERNAL_METRICS_PATH);
    }
    objects.extend(proxy_paths.iter().map(String::as_str));
    let children = children_of(path, objects.iter().copied())?;
    let body = if path == INTERNAL_AGENT_PATH {
        interfaces(INTERNAL_AGENT_XML)
    } else if path == INTERNAL_METRICS_PATH && metrics_enabled {
        interfaces(INTERNAL_METRICS_XML)
    } else if proxy_paths.iter().any(|p| p == path) {
        interfaces(INTERNAL_PROXY_XML)
    } else {
        ""
    };
    Some(document(body, &children))
}

/// Answers an `Introspect` call with `xml`, or `UnknownObject` as sd-bus does.
pub async fn reply(conn: &Connection, m: &Message, path: &str, xml: Option<String>) {
    let hdr = m.header();
    match xml {
        Some(x) => msg::reply(conn, &hdr, &(x,)).await,
        None => {
            let text = format!("Unknown object '{path}'.");
            msg::reply_error(conn, &hdr, ERR_UNKNOWN_OBJECT, &text).await
        }
    }
}

impl Agent {
    pub fn peer_introspection(&self, path: &str) -> Option<String> {
        let proxies: Vec<String> = self.proxies.iter().map(|p| p.path()).collect();
        peer_xml(path, self.metrics_enabled, &proxies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_object_carries_the_agent_interface() {
        let x = public_xml(AGENT_PATH).unwrap();
        assert!(x.contains("<interface name=\"org.eclipse.bluechi.Agent\">"));
        assert!(x.contains("<method name=\"CreateProxy\">"));
        assert!(x.contains("org.freedesktop.DBus.Introspectable"));
        assert!(
            !x.contains("SPDX"),
            "licence comment leaked into the answer"
        );
    }

    #[test]
    fn public_ancestors_list_their_child_and_strangers_are_unknown() {
        let root = public_xml("/").unwrap();
        assert!(root.contains("<node name=\"org\"/>"));
        assert!(!root.contains("org.eclipse.bluechi.Agent\""));
        assert!(public_xml("/org/eclipse")
            .unwrap()
            .contains("<node name=\"bluechi\"/>"));
        assert_eq!(public_xml("/org/eclipse/bluechi/node"), None);
    }

    #[test]
    fn peer_objects_follow_what_is_exported() {
        let proxies = vec![proxy_path(1), proxy_path(3)];
        let agent = peer_xml(INTERNAL_AGENT_PATH, false, &proxies).unwrap();
        assert!(agent.contains("<interface name=\"org.eclipse.bluechi.internal.Agent\">"));
        assert!(!agent.contains("<node name=\"metrics\"/>"));
        assert_eq!(peer_xml(INTERNAL_METRICS_PATH, false, &proxies), None);

        let agent = peer_xml(INTERNAL_AGENT_PATH, true, &proxies).unwrap();
        assert!(agent.contains("<node name=\"metrics\"/>"));
        let metrics = peer_xml(INTERNAL_METRICS_PATH, true, &proxies).unwrap();
        assert!(metrics.contains("org.eclipse.bluechi.internal.Agent.Metrics"));

        let parent = peer_xml(INTERNAL_PROXY_PATH_PREFIX, false, &proxies).unwrap();
        assert!(parent.contains("<node name=\"1\"/>") && parent.contains("<node name=\"3\"/>"));
        let p = peer_xml(&proxy_path(3), false, &proxies).unwrap();
        assert!(p.contains("<method name=\"TargetStateChanged\">"));
        assert_eq!(peer_xml(&proxy_path(2), false, &proxies), None);
    }
}
