//! The interfaces, methods, properties and signals of systemd 252's introspection XML, which is
//! our contract: property tables and the audit test are driven by it.

use std::sync::OnceLock;

pub const XML_MANAGER: &str = include_str!("../../../introspection/manager.xml");
pub const XML_SERVICE: &str = include_str!("../../../introspection/unit-service.xml");
pub const XML_TARGET: &str = include_str!("../../../introspection/unit-target.xml");
pub const XML_JOB: &str = include_str!("../../../introspection/job.xml");

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// Concatenated argument signatures (`in` for methods; all for signals).
    pub input: String,
    pub output: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    pub signature: String,
    pub writable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub methods: Vec<Member>,
    pub signals: Vec<Member>,
    pub properties: Vec<Property>,
}

fn attr(tag: &str, key: &str) -> Option<String> {
    let needle = format!("{key}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(tag[start..start + len].to_string())
}

/// Parses the subset of introspection XML systemd emits: one tag per line-ish, no nesting
/// beyond node/interface/member/arg. Unknown tags are skipped.
pub fn parse(xml: &str) -> Vec<Interface> {
    let mut out: Vec<Interface> = Vec::new();
    // Which list the current <arg> tags belong to: (is_signal).
    let mut current: Option<bool> = None;
    for raw in xml.split('<').skip(1) {
        let tag = raw.split('>').next().unwrap_or("");
        let name = attr(tag, "name").unwrap_or_default();
        let Some(iface) = (if tag.starts_with("interface ") {
            out.push(Interface {
                name,
                ..Interface::default()
            });
            current = None;
            continue;
        } else {
            out.last_mut()
        }) else {
            continue;
        };
        if tag.starts_with("method ") {
            iface.methods.push(Member {
                name,
                ..Member::default()
            });
            current = Some(false);
        } else if tag.starts_with("signal ") {
            iface.signals.push(Member {
                name,
                ..Member::default()
            });
            current = Some(true);
        } else if tag.starts_with("property ") {
            iface.properties.push(Property {
                name,
                signature: attr(tag, "type").unwrap_or_default(),
                writable: attr(tag, "access").is_some_and(|a| a.contains("write")),
            });
        } else if tag.starts_with("arg ") {
            let ty = attr(tag, "type").unwrap_or_default();
            let member = match current {
                Some(true) => iface.signals.last_mut(),
                Some(false) => iface.methods.last_mut(),
                None => None,
            };
            if let Some(m) = member {
                if attr(tag, "direction").as_deref() == Some("out") {
                    m.output.push_str(&ty);
                } else {
                    m.input.push_str(&ty);
                }
            }
        } else if tag.starts_with("/method") || tag.starts_with("/signal") {
            current = None;
        }
    }
    out
}

/// The parsed contract of each object kind.
pub struct Schemas {
    pub manager: Vec<Interface>,
    pub service: Vec<Interface>,
    pub target: Vec<Interface>,
    pub job: Vec<Interface>,
    /// Units of other types: the Unit interface only.
    pub other: Vec<Interface>,
}

pub fn schemas() -> &'static Schemas {
    static S: OnceLock<Schemas> = OnceLock::new();
    S.get_or_init(|| {
        let service = parse(XML_SERVICE);
        let other = service
            .iter()
            .filter(|i| i.name != "org.freedesktop.systemd1.Service")
            .cloned()
            .collect();
        Schemas {
            manager: parse(XML_MANAGER),
            target: parse(XML_TARGET),
            job: parse(XML_JOB),
            service,
            other,
        }
    })
}

/// The interface named `name` in `ifaces`.
pub fn find<'a>(ifaces: &'a [Interface], name: &str) -> Option<&'a Interface> {
    ifaces.iter().find(|i| i.name == name)
}

/// The systemd interfaces (not the org.freedesktop.DBus.* ones) of an object.
pub fn own(ifaces: &[Interface]) -> impl Iterator<Item = &Interface> {
    ifaces
        .iter()
        .filter(|i| i.name.starts_with("org.freedesktop.systemd1."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_contract_parses() {
        let s = schemas();
        let m = find(&s.manager, "org.freedesktop.systemd1.Manager").expect("Manager");
        let start = m
            .methods
            .iter()
            .find(|x| x.name == "StartUnit")
            .expect("StartUnit");
        assert_eq!((start.input.as_str(), start.output.as_str()), ("ss", "o"));
        let removed = m
            .signals
            .iter()
            .find(|x| x.name == "JobRemoved")
            .expect("JobRemoved");
        assert_eq!(removed.input, "uoss");
        assert!(m
            .properties
            .iter()
            .any(|p| p.name == "Version" && p.signature == "s"));
        assert!(m
            .properties
            .iter()
            .any(|p| p.name == "LogLevel" && p.writable));
        let svc = find(&s.service, "org.freedesktop.systemd1.Service").expect("Service");
        assert!(svc.properties.len() > 200);
    }
}
