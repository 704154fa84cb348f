//! Building `org.freedesktop.DBus.Introspectable.Introspect` answers from the contract's
//! interface XML: the standard interfaces every object has (sd-bus adds them implicitly), the
//! object's own `<interface>` elements, and its child nodes.

/// Peer, Introspectable and Properties, as sd-bus lists them for every object.
pub const STANDARD_INTERFACES: &str = r#" <interface name="org.freedesktop.DBus.Peer">
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

/// The `<interface>` element(s) of a contract XML file, without its doctype, comments outside
/// the interfaces and root `<node>`. A text without interfaces yields "".
pub fn interfaces(xml: &str) -> &str {
    match (xml.find("<interface"), xml.rfind("</interface>")) {
        (Some(start), Some(end)) if end >= start => &xml[start..end + "</interface>".len()],
        _ => "",
    }
}

/// A complete introspection document: standard interfaces, `body` (interface elements, may be
/// empty for pure parent nodes) and one `<node name=.../>` per child.
pub fn document(body: &str, children: &[String]) -> String {
    let mut s = String::from(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n\
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n",
    );
    s.push_str(STANDARD_INTERFACES);
    if !body.is_empty() {
        s.push_str(body);
        s.push('\n');
    }
    for c in children {
        s.push_str(" <node name=\"");
        s.push_str(c);
        s.push_str("\"/>\n");
    }
    s.push_str("</node>\n");
    s
}

/// The direct children of `path` among `objects` (absolute object paths), sorted and without
/// duplicates. `None` when `path` is neither an object nor an ancestor of one, so the caller
/// can answer `UnknownObject` as sd-bus does.
pub fn children_of<'a>(
    path: &str,
    objects: impl IntoIterator<Item = &'a str>,
) -> Option<Vec<String>> {
    let prefix = if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    };
    let mut known = false;
    let mut children = Vec::new();
    for o in objects {
        if o == path {
            known = true;
        } else if let Some(rest) = o.strip_prefix(&prefix) {
            known = true;
            if let Some(first) = rest.split('/').next().filter(|c| !c.is_empty()) {
                children.push(first.to_string());
            }
        }
    }
    children.sort();
    children.dedup();
    known.then_some(children)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_cut_out_the_elements() {
        let xml = "<!DOCTYPE x>\n<!-- c -->\n<node>\n <interface name=\"a\"/>\n \
                   <interface name=\"b\">\n </interface>\n</node>\n";
        assert_eq!(
            interfaces(xml),
            "<interface name=\"a\"/>\n <interface name=\"b\">\n </interface>"
        );
        assert_eq!(interfaces("<node/>"), "");
    }

    #[test]
    fn document_lists_children_after_interfaces() {
        let d = document("<interface name=\"x\"/>", &["a".into(), "b".into()]);
        assert!(d.starts_with("<!DOCTYPE node"));
        assert!(d.contains("org.freedesktop.DBus.Peer"));
        let x = d.find("<interface name=\"x\"/>").unwrap();
        let a = d.find("<node name=\"a\"/>").unwrap();
        assert!(x < a && d.ends_with("<node name=\"b\"/>\n</node>\n"));
    }

    #[test]
    fn children_of_ancestors_objects_and_unknown_paths() {
        let objs = [
            "/org/eclipse/bluechi/internal/agent",
            "/org/eclipse/bluechi/internal/proxy/1",
            "/org/eclipse/bluechi/internal/proxy/2",
        ];
        assert_eq!(children_of("/", objs).unwrap(), vec!["org"]);
        assert_eq!(
            children_of("/org/eclipse/bluechi/internal", objs).unwrap(),
            vec!["agent", "proxy"]
        );
        assert_eq!(
            children_of("/org/eclipse/bluechi/internal/agent", objs).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(children_of("/org/eclipse/bluechi/intern", objs), None);
        assert_eq!(children_of("/org/eclipse/bluechi/job", objs), None);
    }
}
