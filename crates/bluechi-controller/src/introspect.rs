//! Introspection data: upstream's interface XML (the contract in `shared/api`, vendored in
//! `introspection/`) plus the standard interfaces and child nodes of each object.

use bluechi_core::names::*;

use crate::controller::Controller;

const CONTROLLER_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Controller.xml");
const NODE_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Node.xml");
const MONITOR_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Monitor.xml");
const METRICS_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Metrics.xml");
const JOB_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Job.xml");

const STANDARD: &str = r#" <interface name="org.freedesktop.DBus.Peer">
  <method name="Ping"/>
  <method name="GetMachineId">
   <arg type="s" name="machine_uuid" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Introspectable">
  <method name="Introspect">
   <arg name="xml_data" type="s" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Properties">
  <method name="Get">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="out" type="v"/>
  </method>
  <method name="GetAll">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="props" direction="out" type="a{sv}"/>
  </method>
  <method name="Set">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="in" type="v"/>
  </method>
  <signal name="PropertiesChanged">
   <arg type="s" name="interface_name"/>
   <arg type="a{sv}" name="changed_properties"/>
   <arg type="as" name="invalidated_properties"/>
  </signal>
 </interface>
"#;

/// The `<interface>` element(s) of a vendored XML file.
fn interfaces(xml: &str) -> &str {
    let start = xml.find("<interface").unwrap_or(0);
    let end = xml
        .rfind("</interface>")
        .map(|i| i + "</interface>".len())
        .unwrap_or(xml.len());
    &xml[start..end]
}

fn document(body: &str, children: &[String]) -> String {
    let mut s = String::from(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n\
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n",
    );
    s.push_str(STANDARD);
    s.push_str(body);
    s.push('\n');
    for c in children {
        s.push_str(&format!(" <node name=\"{c}\"/>\n"));
    }
    s.push_str("</node>\n");
    s
}

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
    let children = children_of(&object_paths(c), path);
    // A path that is neither an object nor on the way to one does not exist.
    if body.is_empty() && children.is_empty() {
        return None;
    }
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

/// The distinct next path components below `path` leading to any of `objects`, in order.
fn children_of(objects: &[String], path: &str) -> Vec<String> {
    let prefix = if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    };
    let mut children: Vec<String> = Vec::new();
    for o in objects {
        if let Some(first) = o.strip_prefix(&prefix).and_then(|r| r.split('/').next()) {
            if !first.is_empty() && !children.iter().any(|c| c == first) {
                children.push(first.to_string());
            }
        }
    }
    children
}

/// Introspection of the controller's objects on an agent's peer link: the internal
/// Controller interface at its path, and the path's ancestors as plain nodes.
pub fn peer_link_xml(path: &str, internal_xml: &str) -> String {
    if path == INTERNAL_CONTROLLER_PATH {
        return document(interfaces(internal_xml), &[]);
    }
    let prefix = if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    };
    let children: Vec<String> = INTERNAL_CONTROLLER_PATH
        .strip_prefix(&prefix)
        .and_then(|r| r.split('/').next())
        .map(|c| vec![c.to_string()])
        .unwrap_or_default();
    document("", &children)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_lead_to_objects_only() {
        let objects = vec![
            "/org/eclipse/bluechi".to_string(),
            "/org/eclipse/bluechi/node/main".to_string(),
            "/org/eclipse/bluechi/node/w1".to_string(),
        ];
        assert_eq!(children_of(&objects, "/"), vec!["org"]);
        assert_eq!(children_of(&objects, "/org/eclipse"), vec!["bluechi"]);
        assert_eq!(children_of(&objects, "/org/eclipse/bluechi"), vec!["node"]);
        assert_eq!(
            children_of(&objects, "/org/eclipse/bluechi/node"),
            vec!["main", "w1"]
        );
        assert!(children_of(&objects, "/org/eclipse/bluechi/job").is_empty());
    }

    #[test]
    fn peer_link_paths() {
        let x = peer_link_xml(
            INTERNAL_CONTROLLER_PATH,
            "<node><interface name=\"i.C\"></interface></node>",
        );
        assert!(x.contains("<interface name=\"i.C\">"));
        assert!(peer_link_xml("/org/eclipse", "").contains("<node name=\"bluechi\"/>"));
        assert!(peer_link_xml("/", "").contains("<node name=\"org\"/>"));
        assert!(!peer_link_xml("/elsewhere", "").contains("<node name="));
    }
}
