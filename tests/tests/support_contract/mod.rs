//! Parsing D-Bus introspection XML into comparable interface descriptions, and comparing our
//! daemons' interfaces with the contract (`tests/contract/*.xml`, copied from `shared/api`).
#![allow(dead_code)]

pub mod lone_agent;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub name: String,
    pub ty: String,
    /// `in`/`out` for methods (D-Bus default `in`); always `out` for signals.
    pub direction: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub ty: String,
    pub access: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub methods: BTreeMap<String, Vec<Arg>>,
    pub signals: BTreeMap<String, Vec<Arg>>,
    pub properties: BTreeMap<String, Property>,
}

/// An introspected object: its interfaces by name and its child node names.
#[derive(Debug, Clone, Default)]
pub struct Object {
    pub interfaces: BTreeMap<String, Interface>,
    pub children: Vec<String>,
}

fn attr(node: roxmltree::Node<'_, '_>, name: &str, what: &str) -> Result<String, String> {
    node.attribute(name).map(str::to_string).ok_or_else(|| {
        format!(
            "<{}> without '{name}' attribute in {what}",
            node.tag_name().name()
        )
    })
}

fn args(
    member: roxmltree::Node<'_, '_>,
    default_dir: &str,
    what: &str,
) -> Result<Vec<Arg>, String> {
    member
        .children()
        .filter(|c| c.has_tag_name("arg"))
        .map(|a| {
            Ok(Arg {
                name: a.attribute("name").unwrap_or("").to_string(),
                ty: attr(a, "type", what)?,
                direction: if default_dir == "out" {
                    "out".to_string()
                } else {
                    a.attribute("direction").unwrap_or(default_dir).to_string()
                },
            })
        })
        .collect()
}

/// Parses one introspection document. `what` names it in errors.
pub fn parse(xml: &str, what: &str) -> Result<Object, String> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, opts)
        .map_err(|e| format!("{what}: invalid XML: {e}"))?;
    let root = doc.root_element();
    if !root.has_tag_name("node") {
        return Err(format!(
            "{what}: root element is <{}>, not <node>",
            root.tag_name().name()
        ));
    }
    let mut obj = Object::default();
    for el in root.children().filter(|c| c.is_element()) {
        if el.has_tag_name("node") {
            obj.children.push(attr(el, "name", what)?);
            continue;
        }
        if !el.has_tag_name("interface") {
            continue;
        }
        let iface_name = attr(el, "name", what)?;
        let mut iface = Interface::default();
        for m in el.children().filter(|c| c.is_element()) {
            let ctx = format!("{what} {iface_name}");
            match m.tag_name().name() {
                "method" => {
                    iface
                        .methods
                        .insert(attr(m, "name", &ctx)?, args(m, "in", &ctx)?);
                }
                "signal" => {
                    iface
                        .signals
                        .insert(attr(m, "name", &ctx)?, args(m, "out", &ctx)?);
                }
                "property" => {
                    let p = Property {
                        ty: attr(m, "type", &ctx)?,
                        access: attr(m, "access", &ctx)?,
                    };
                    iface.properties.insert(attr(m, "name", &ctx)?, p);
                }
                _ => {}
            }
        }
        if obj.interfaces.insert(iface_name.clone(), iface).is_some() {
            return Err(format!("{what}: interface {iface_name} appears twice"));
        }
    }
    Ok(obj)
}

fn show_args(args: &[Arg]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|a| format!("{} {}:{}", a.direction, a.name, a.ty))
        .collect();
    format!("({})", parts.join(", "))
}

fn compare_members(
    kind: &str,
    iface: &str,
    ours: &BTreeMap<String, Vec<Arg>>,
    contract: &BTreeMap<String, Vec<Arg>>,
    out: &mut Vec<String>,
) {
    for (name, want) in contract {
        match ours.get(name) {
            None => out.push(format!("{iface}: {kind} {name} is missing")),
            Some(have) if have != want => out.push(format!(
                "{iface}: {kind} {name} has arguments {} but the contract says {}",
                show_args(have),
                show_args(want)
            )),
            Some(_) => {}
        }
    }
    for name in ours.keys().filter(|n| !contract.contains_key(*n)) {
        out.push(format!("{iface}: {kind} {name} is not in the contract"));
    }
}

/// Every difference between our interface and the contract's, one readable line each; empty
/// when they match.
pub fn compare(name: &str, ours: &Interface, contract: &Interface) -> Vec<String> {
    let mut out = Vec::new();
    compare_members("method", name, &ours.methods, &contract.methods, &mut out);
    compare_members("signal", name, &ours.signals, &contract.signals, &mut out);
    for (p, want) in &contract.properties {
        match ours.properties.get(p) {
            None => out.push(format!("{name}: property {p} is missing")),
            Some(have) if have != want => out.push(format!(
                "{name}: property {p} is {} ({}) but the contract says {} ({})",
                have.ty, have.access, want.ty, want.access
            )),
            Some(_) => {}
        }
    }
    for p in ours
        .properties
        .keys()
        .filter(|p| !contract.properties.contains_key(*p))
    {
        out.push(format!("{name}: property {p} is not in the contract"));
    }
    out
}

pub fn contract_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contract")
}

/// All interfaces of the contract, by name, from every `*.xml` in `tests/contract/`.
pub fn load_contract() -> BTreeMap<String, Interface> {
    let dir = contract_dir();
    let mut all = BTreeMap::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|e| e != "xml") {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let obj = parse(&text, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"));
        all.extend(obj.interfaces);
    }
    all
}

/// The interfaces sd-bus adds to every object; present in ours, absent from the contract.
pub const STANDARD: [&str; 3] = [
    "org.freedesktop.DBus.Peer",
    "org.freedesktop.DBus.Introspectable",
    "org.freedesktop.DBus.Properties",
];

/// Checks one introspected object: it must carry exactly `expected` (plus the standard
/// interfaces), each identical to the contract. Returns the problems found.
pub fn check_object(
    path: &str,
    xml: &str,
    expected: &[&str],
    contract: &BTreeMap<String, Interface>,
) -> Vec<String> {
    let obj = match parse(xml, path) {
        Ok(o) => o,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    for s in STANDARD {
        if !obj.interfaces.contains_key(s) {
            problems.push(format!("{path}: standard interface {s} is missing"));
        }
    }
    for name in expected {
        let Some(want) = contract.get(*name) else {
            problems.push(format!("{path}: {name} is not in tests/contract/"));
            continue;
        };
        match obj.interfaces.get(*name) {
            None => problems.push(format!("{path}: interface {name} is missing")),
            Some(have) => problems.extend(
                compare(name, have, want)
                    .into_iter()
                    .map(|p| format!("{path}: {p}")),
            ),
        }
    }
    for name in obj.interfaces.keys() {
        if !STANDARD.contains(&name.as_str()) && !expected.contains(&name.as_str()) {
            problems.push(format!("{path}: unexpected interface {name}"));
        }
    }
    problems
}
