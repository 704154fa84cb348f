//! The contract audit: every method, property and signal of systemd 252's introspection
//! (introspection/*.xml) is served with the contract's signature, except the short
//! `unsupported` list, which answers NotSupported with a reason.

mod support;

use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use support::*;
use systemd_emulator::io::bus::props::default_value;
use systemd_emulator::io::bus::schema::{self, own, schemas, Interface};
use systemd_emulator::io::bus::unsupported;
use zbus::message::Type as MsgType;
use zvariant::{OwnedObjectPath, OwnedValue, Signature, StructureBuilder};

/// Contract signals we never emit, with the reason.
const NOT_EMITTED: &[(&str, &str)] = &[
    ("StartupFinished", "no boot to finish"),
    (
        "UnitFilesChanged",
        "only after a successful enable/disable; the UnitSource stubs refuse (loader work)",
    ),
];

const UNITS: &[(&str, &str)] = &[
    (
        "slow.service",
        "[Service]\nType=oneshot\nExecStart=/bin/sleep 30\n",
    ),
    ("quick.service", "[Service]\nExecStart=/bin/sleep 30\n"),
    ("t.target", "[Unit]\nDescription=T\n"),
];

/// A method call whose body is the zero value of `sig` (each argument's default).
async fn call_with_defaults(
    conn: &zbus::Connection,
    path: &str,
    iface: &str,
    member: &str,
    sig: &str,
) -> zbus::Result<zbus::Message> {
    if sig.is_empty() {
        return call_msg(conn, path, iface, member, &()).await;
    }
    let parsed = Signature::try_from(format!("({sig})").as_str()).expect("contract signature");
    let Signature::Structure(fields) = &parsed else {
        panic!("not a structure: {sig}");
    };
    let body = fields
        .iter()
        .fold(StructureBuilder::new(), |b, f| {
            b.append_field(default_value(f))
        })
        .build()
        .expect("structure");
    call_msg(conn, path, iface, member, &body).await
}

/// Calls every method of `ifaces` on `path` (`last` goes last: it has side effects) and
/// returns the problems found.
async fn audit_methods(
    conn: &zbus::Connection,
    path: &str,
    ifaces: &[Interface],
    skip: &[&str],
    last: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut calls: Vec<(&Interface, &schema::Member)> = ifaces
        .iter()
        .flat_map(|i| i.methods.iter().map(move |m| (i, m)))
        .filter(|(_, m)| !skip.contains(&m.name.as_str()))
        .collect();
    calls.sort_by_key(|(_, m)| last.contains(&m.name.as_str()));
    for (iface, m) in calls {
        let r = call_with_defaults(conn, path, &iface.name, &m.name, &m.input).await;
        let listed = unsupported::reason(&iface.name, &m.name).is_some();
        match r {
            Ok(reply) => {
                let got = reply.body().signature().to_string_no_parens();
                if got != m.output {
                    problems.push(format!(
                        "{path} {}.{}: reply signature {got:?}, contract {:?}",
                        iface.name, m.name, m.output
                    ));
                }
            }
            Err(zbus::Error::MethodError(name, msg, _)) => {
                let msg = msg.unwrap_or_default();
                if name.as_str() == "org.freedesktop.DBus.Error.UnknownMethod" {
                    problems.push(format!("{path} {}.{}: UnknownMethod", iface.name, m.name));
                } else if msg.starts_with("Invalid arguments:") {
                    problems.push(format!(
                        "{path} {}.{}: arguments {:?} not accepted: {msg}",
                        iface.name, m.name, m.input
                    ));
                } else if listed
                    != (name.as_str() == "org.freedesktop.DBus.Error.NotSupported"
                        && msg.contains("not supported by systemd-emulator"))
                {
                    problems.push(format!(
                        "{path} {}.{}: unsupported list says {listed}, got {name}: {msg}",
                        iface.name, m.name
                    ));
                }
            }
            Err(e) => problems.push(format!("{path} {}.{}: {e}", iface.name, m.name)),
        }
    }
    problems
}

/// GetAll("") and GetAll(iface) serve every contract property with the contract type.
async fn audit_properties(
    conn: &zbus::Connection,
    path: &str,
    ifaces: &[Interface],
) -> Vec<String> {
    let mut problems = Vec::new();
    let all: HashMap<String, OwnedValue> = call(conn, path, IFACE_PROPS, "GetAll", &("",))
        .await
        .unwrap_or_else(|e| panic!("GetAll(\"\") on {path}: {e}"));
    for i in own(ifaces) {
        let one: HashMap<String, OwnedValue> =
            call(conn, path, IFACE_PROPS, "GetAll", &(i.name.as_str(),))
                .await
                .unwrap_or_else(|e| panic!("GetAll({}) on {path}: {e}", i.name));
        for p in &i.properties {
            for (which, dict) in [("GetAll(\"\")", &all), ("GetAll(iface)", &one)] {
                match dict.get(&p.name) {
                    None => problems.push(format!("{path} {which}: {}.{} missing", i.name, p.name)),
                    Some(v) if v.value_signature().to_string() != p.signature => {
                        problems.push(format!(
                            "{path} {which}: {}.{} has type {}, contract {}",
                            i.name,
                            p.name,
                            v.value_signature(),
                            p.signature
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        if let Some(p) = i.properties.first() {
            let v = get_prop(conn, path, &i.name, &p.name).await;
            assert_eq!(
                v.value_signature().to_string(),
                p.signature,
                "Get {}",
                p.name
            );
        }
    }
    problems
}

#[tokio::test(flavor = "current_thread")]
async fn contract_audit() {
    let s = setup(UNITS, &[]).await;
    let conn = &s.conn;
    let rule = zbus::MatchRule::builder()
        .msg_type(MsgType::Signal)
        .sender(DEST)
        .expect("sender")
        .build();
    let mut signals = zbus::MessageStream::for_match_rule(rule, conn, Some(1000))
        .await
        .expect("signal stream");
    let _: () = call(conn, MANAGER, IFACE_MANAGER, "Subscribe", &())
        .await
        .expect("Subscribe");

    // Objects to audit: a running job, a service, a target.
    let job: OwnedObjectPath = call(
        conn,
        MANAGER,
        IFACE_MANAGER,
        "StartUnit",
        &("slow.service", "replace"),
    )
    .await
    .expect("StartUnit");
    let svc: OwnedObjectPath = call(
        conn,
        MANAGER,
        IFACE_MANAGER,
        "LoadUnit",
        &("quick.service",),
    )
    .await
    .expect("LoadUnit");
    let tgt: OwnedObjectPath = call(conn, MANAGER, IFACE_MANAGER, "LoadUnit", &("t.target",))
        .await
        .expect("LoadUnit");
    let sch = schemas();

    // Introspection is the contract, byte for byte.
    for (path, xml) in [
        (MANAGER, schema::XML_MANAGER),
        (svc.as_str(), schema::XML_SERVICE),
        (tgt.as_str(), schema::XML_TARGET),
        (job.as_str(), schema::XML_JOB),
    ] {
        let got: String = call(
            conn,
            path,
            "org.freedesktop.DBus.Introspectable",
            "Introspect",
            &(),
        )
        .await
        .expect("Introspect");
        assert_eq!(got, xml, "Introspect {path}");
    }

    let mut problems = Vec::new();
    problems.extend(audit_properties(conn, MANAGER, &sch.manager).await);
    problems.extend(audit_properties(conn, svc.as_str(), &sch.service).await);
    problems.extend(audit_properties(conn, tgt.as_str(), &sch.target).await);
    problems.extend(audit_properties(conn, job.as_str(), &sch.job).await);
    problems.extend(audit_methods(conn, job.as_str(), &sch.job, &[], &["Cancel"]).await);
    problems.extend(audit_methods(conn, svc.as_str(), &sch.service, &[], &[]).await);
    problems.extend(audit_methods(conn, tgt.as_str(), &sch.target, &[], &[]).await);
    problems.extend(audit_methods(conn, MANAGER, &sch.manager, &["Exit"], &["Unsubscribe"]).await);
    assert!(
        problems.is_empty(),
        "contract problems:\n{}",
        problems.join("\n")
    );
    // The audit ended with Unsubscribe.
    let _: () = call(conn, MANAGER, IFACE_MANAGER, "Subscribe", &())
        .await
        .expect("Subscribe again");

    // Let a unit go away so that UnitRemoved is seen too.
    let _: OwnedObjectPath = call(
        conn,
        MANAGER,
        IFACE_MANAGER,
        "StopUnit",
        &("slow.service", "replace"),
    )
    .await
    .expect("StopUnit");

    let manager = schema::find(&sch.manager, IFACE_MANAGER).expect("Manager interface");
    let contract: BTreeMap<&str, &str> = manager
        .signals
        .iter()
        .map(|m| (m.name.as_str(), m.input.as_str()))
        .collect();
    let wanted: BTreeSet<&str> = contract
        .keys()
        .copied()
        .filter(|n| !NOT_EMITTED.iter().any(|(x, _)| x == n))
        .collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let collect = async {
        while let Some(Ok(m)) = signals.next().await {
            let h = m.header();
            let member = h.member().map(|x| x.to_string()).unwrap_or_default();
            let sig = m.body().signature().to_string_no_parens();
            if h.interface().map(|i| i.as_str()) == Some(IFACE_MANAGER) {
                let want = contract.get(member.as_str()).copied();
                assert_eq!(want, Some(sig.as_str()), "signal {member} signature");
                seen.insert(member);
            } else {
                assert_eq!(member, "PropertiesChanged");
                assert_eq!(sig, "sa{sv}as", "PropertiesChanged signature");
                seen.insert(member);
            }
            if wanted.iter().all(|w| seen.contains(*w)) {
                return;
            }
        }
    };
    let done = tokio::time::timeout(DEADLINE, collect).await;
    assert!(
        done.is_ok(),
        "signals never seen: {:?}",
        wanted
            .iter()
            .filter(|w| !seen.contains(**w))
            .collect::<Vec<_>>()
    );

    // Exit last: it shuts the emulator down in order.
    let _: () = call(conn, MANAGER, IFACE_MANAGER, "Exit", &())
        .await
        .expect("Exit");
    let mut emu = s.emulator;
    let status = wait_exit(&mut emu, "after Manager.Exit").await;
    assert!(status.success(), "emulator exit status {status}");
}
