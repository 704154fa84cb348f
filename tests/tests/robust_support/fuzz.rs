//! Strategies for hostile peer-link traffic: method calls and signals whose members come from
//! the internal interfaces (so handlers are reached) or are made up, with bodies of random
//! signatures; raw garbage; both byte orders.

use std::collections::HashMap;

use proptest::prelude::*;
use zbus::message::Flags;
use zbus::Message;
use zvariant::Endian;
use zvariant::{ObjectPath, Value};

const INTERNAL_XML: &[&str] = &[
    include_str!("../../../crates/bluechi-controller/introspection/org.eclipse.bluechi.internal.Controller.xml"),
    include_str!("../../../crates/bluechi-agent/introspection/org.eclipse.bluechi.internal.Agent.xml"),
    include_str!("../../../crates/bluechi-agent/introspection/org.eclipse.bluechi.internal.Agent.Metrics.xml"),
    include_str!("../../../crates/bluechi-agent/introspection/org.eclipse.bluechi.internal.Proxy.xml"),
];

/// Every method and signal name of the internal interfaces.
pub fn internal_members() -> Vec<String> {
    let mut names = Vec::new();
    for xml in INTERNAL_XML {
        for tag in ["<method name=\"", "<signal name=\""] {
            for part in xml.split(tag).skip(1) {
                if let Some((name, _)) = part.split_once('"') {
                    names.push(name.to_string());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

const PATHS: &[&str] = &[
    "/org/eclipse/bluechi/internal",
    "/org/eclipse/bluechi/internal/agent",
    "/org/eclipse/bluechi/internal/agent/metrics",
    "/org/eclipse/bluechi/internal/proxy/1",
    "/org/eclipse/bluechi",
    "/org/freedesktop/DBus",
    "/",
];

const IFACES: &[&str] = &[
    "org.eclipse.bluechi.internal.Controller",
    "org.eclipse.bluechi.internal.Agent",
    "org.eclipse.bluechi.internal.Agent.Metrics",
    "org.eclipse.bluechi.internal.Proxy",
    "org.freedesktop.DBus.Introspectable",
    "org.freedesktop.DBus.Peer",
    "org.freedesktop.DBus.Properties",
    "org.freedesktop.DBus",
];

/// Bodies of assorted signatures, including the ones the handlers expect.
#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    S(String),
    Ss(String, String),
    Ssss(String, String, String, String),
    Us(u32, String),
    U(u32),
    Sso(String, String, String),
    SsDict(String, String, Vec<(String, String)>),
    Sst(String, String, u64),
    Bytes(Vec<u8>),
    Bx(bool, i64),
    Variant(u32),
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("ghost".to_string()),
        Just("main".to_string()),
        Just("*".to_string()),
        Just("x.service".to_string()),
        Just("replace".to_string()),
        "[ -~]{0,24}",
        "\\PC{0,12}",
    ]
}

fn ids() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 1u32..8, any::<u32>()]
}

pub fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::Empty),
        text().prop_map(Body::S),
        (text(), text()).prop_map(|(a, b)| Body::Ss(a, b)),
        (text(), text(), text(), text()).prop_map(|(a, b, c, d)| Body::Ssss(a, b, c, d)),
        (ids(), text()).prop_map(|(a, b)| Body::Us(a, b)),
        ids().prop_map(Body::U),
        (text(), text(), "(/[a-z0-9_]{1,8}){1,4}").prop_map(|(a, b, c)| Body::Sso(a, b, c)),
        (
            text(),
            text(),
            proptest::collection::vec(("[A-Za-z]{1,12}", text()), 0..4)
        )
            .prop_map(|(a, b, c)| Body::SsDict(a, b, c)),
        (text(), text(), any::<u64>()).prop_map(|(a, b, c)| Body::Sst(a, b, c)),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Body::Bytes),
        (any::<bool>(), any::<i64>()).prop_map(|(a, b)| Body::Bx(a, b)),
        ids().prop_map(Body::Variant),
    ]
}

#[derive(Debug, Clone)]
pub struct Msg {
    pub signal: bool,
    pub no_reply: bool,
    pub big_endian: bool,
    pub path: String,
    pub iface: String,
    pub member: String,
    pub body: Body,
}

pub fn msg(members: Vec<String>) -> impl Strategy<Value = Msg> {
    let member = prop_oneof![
        4 => proptest::sample::select(members),
        1 => "[A-Z][A-Za-z0-9_]{0,16}",
    ];
    let path = prop_oneof![
        4 => proptest::sample::select(PATHS).prop_map(str::to_string),
        1 => "(/[a-z0-9_]{1,8}){1,4}",
    ];
    let iface = prop_oneof![
        4 => proptest::sample::select(IFACES).prop_map(str::to_string),
        1 => "[a-z]{1,6}\\.[A-Z][a-z]{0,6}",
    ];
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        path,
        iface,
        member,
        body(),
    )
        .prop_map(
            |(signal, no_reply, big_endian, path, iface, member, body)| Msg {
                signal,
                no_reply,
                big_endian,
                path,
                iface,
                member,
                body,
            },
        )
}

impl Msg {
    /// The wire message; `None` only if the generated names are not valid D-Bus names.
    pub fn build(&self) -> Option<Message> {
        let endian = if self.big_endian {
            Endian::Big
        } else {
            Endian::Little
        };
        let b = if self.signal {
            Message::signal(
                self.path.as_str(),
                self.iface.as_str(),
                self.member.as_str(),
            )
            .ok()?
        } else {
            let b = Message::method_call(self.path.as_str(), self.member.as_str())
                .ok()?
                .interface(self.iface.as_str())
                .ok()?;
            if self.no_reply {
                b.with_flags(Flags::NoReplyExpected).ok()?
            } else {
                b
            }
        };
        let b = b.endian(endian);
        let m = match &self.body {
            Body::Empty => b.build(&()),
            Body::S(a) => b.build(&(a,)),
            Body::Ss(a, c) => b.build(&(a, c)),
            Body::Ssss(a, c, d, e) => b.build(&(a, c, d, e)),
            Body::Us(a, c) => b.build(&(a, c)),
            Body::U(a) => b.build(&(a,)),
            Body::Sso(a, c, p) => b.build(&(a, c, ObjectPath::try_from(p.as_str()).ok()?)),
            Body::SsDict(a, c, d) => {
                let dict: HashMap<&str, Value<'_>> = d
                    .iter()
                    .map(|(k, v)| (k.as_str(), Value::from(v.as_str())))
                    .collect();
                b.build(&(a, c, dict))
            }
            Body::Sst(a, c, t) => b.build(&(a, c, t)),
            Body::Bytes(v) => b.build(&(v,)),
            Body::Bx(a, c) => b.build(&(a, c)),
            Body::Variant(u) => b.build(&(Value::from(*u),)),
        };
        m.ok()
    }
}
