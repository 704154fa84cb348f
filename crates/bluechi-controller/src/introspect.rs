//! Introspection data: upstream's interface XML (the contract in `shared/api`, vendored in
//! `introspection/`) plus the standard interfaces and child nodes of each object.

use bluechi_core::introspect::{children_of, document, interfaces};
use bluechi_core::names::*;

use crate::controller::Controller;

const CONTROLLER_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Controller.xml");
const NODE_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Node.xml");
const MONITOR_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Monitor.xml");
const METRICS_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Metrics.xml");
const JOB_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Job.xml");

pub fn xml_for(c: &Controller, path: &str) -> Option<String> {
    let body = if path == CONTROLLER_PATH {
        interfaces(CONTROLLER_XML)
    } else if c.nodes.iter().any(|n| n.path == path) {
        interfaces(NODE_XML)
    } else if c.jobs.by_path(path).is_some() {
        interfaces(JOB_XML)
    } else if c.monitors.index_by_path(path).is_some() {
        interfaces(MONITOR_XML)
    } else if path == crate::metrics::METRICS_PATH && c.metrics_enabled {
        interfaces(METRICS_XML)
    } else {
        ""
    };
    // A path that is neither an object nor on the way to one does not exist.
    let objects = object_paths(c);
    let children = children_of(path, objects.iter().map(String::as_str))?;
    Some(document(body, &children))
}

/// Every object the controller serves on the bus right now.
fn object_paths(c: &Controller) -> Vec<String> {
    let mut v = vec![CONTROLLER_PATH.to_string()];
    v.extend(c.nodes.iter().map(|n| n.path.clone()));
    v.extend(c.jobs.exported_paths());
    v.extend(c.monitors.list.iter().map(|m| m.path.clone()));
    if c.metrics_enabled {
        v.push(crate::metrics::METRICS_PATH.to_string());
    }
    v
}

/// Where the peer link serves `Hello` for bus-style clients (busctl, GLib, dasbus), as a bus
/// daemon would: they call it right after authenticating, and dasbus builds its proxies from
/// introspection, so the method must be introspectable too.
pub const BUS_PATH: &str = "/org/freedesktop/DBus";
pub const BUS_IFACE: &str = "org.freedesktop.DBus";

/// The only `org.freedesktop.DBus` method the peer link has, typed as sd-bus lists it.
const BUS_HELLO_XML: &str = r#"<interface name="org.freedesktop.DBus">
  <method name="Hello">
   <arg type="s" direction="out"/>
  </method>
 </interface>"#;

/// Introspection of the controller's objects on an agent's peer link: the internal
/// Controller interface at its path, `Hello` at the bus path, and their ancestors as plain
/// nodes.
pub fn peer_link_xml(path: &str, internal_xml: &str) -> String {
    let body = match path {
        INTERNAL_CONTROLLER_PATH => interfaces(internal_xml),
        BUS_PATH => BUS_HELLO_XML,
        _ => "",
    };
    let children = children_of(path, [INTERNAL_CONTROLLER_PATH, BUS_PATH]).unwrap_or_default();
    document(body, &children)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_link_paths() {
        let x = peer_link_xml(
            INTERNAL_CONTROLLER_PATH,
            "<node><interface name=\"i.C\"></interface></node>",
        );
        assert!(x.contains("<interface name=\"i.C\">"));
        assert!(peer_link_xml("/org/eclipse", "").contains("<node name=\"bluechi\"/>"));
        assert!(peer_link_xml("/", "").contains("<node name=\"org\"/>"));
        let org = peer_link_xml("/org", "");
        assert!(
            org.contains("<node name=\"eclipse\"/>")
                && org.contains("<node name=\"freedesktop\"/>")
        );
        let bus = peer_link_xml(BUS_PATH, "");
        assert!(bus.contains("<interface name=\"org.freedesktop.DBus\">"));
        assert!(bus.contains("<method name=\"Hello\">"));
        assert!(!peer_link_xml("/elsewhere", "").contains("<node name="));
    }
}
