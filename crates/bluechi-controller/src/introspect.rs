//! Introspection data: upstream's interface XML (the contract in `shared/api`, vendored in
//! `introspection/`) plus the standard interfaces and child nodes of each object.

use bluechi_core::names::*;

use crate::controller::Controller;

const CONTROLLER_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Controller.xml");
const NODE_XML: &str = include_str!("../introspection/org.eclipse.bluechi.Node.xml");
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
    if path == CONTROLLER_PATH {
        return Some(document(
            interfaces(CONTROLLER_XML),
            &["node".into(), "job".into()],
        ));
    }
    if c.nodes.iter().any(|n| n.path == path) {
        return Some(document(interfaces(NODE_XML), &[]));
    }
    if c.jobs.by_path(path).is_some() {
        return Some(document(interfaces(JOB_XML), &[]));
    }
    let prefix = format!("{path}/");
    let mut children: Vec<String> = c
        .nodes
        .iter()
        .map(|n| n.path.clone())
        .chain(["/org/eclipse/bluechi/job".to_string()])
        .filter_map(|p| {
            p.strip_prefix(&prefix)
                .map(|r| r.split('/').next().unwrap_or("").to_string())
        })
        .collect();
    children.dedup();
    if children.is_empty() && !CONTROLLER_PATH.starts_with(&prefix) {
        return None;
    }
    if CONTROLLER_PATH.starts_with(&prefix) {
        let next = CONTROLLER_PATH[prefix.len()..]
            .split('/')
            .next()
            .unwrap_or("");
        children = vec![next.to_string()];
    }
    Some(document("", &children))
}
