//! Manager methods over D-Bus: lookups, listings, errors as systemd names them, transient
//! units, and the Reloading signal.

mod support;

use futures_util::StreamExt;
use std::collections::HashMap;
use support::*;
use zbus::message::Type as MsgType;
use zvariant::{OwnedObjectPath, OwnedValue};

type ListedUnit = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

/// EnqueueUnitJob's reply: `(uososa(uosos))`.
type EnqueuedJob = (
    u32,
    OwnedObjectPath,
    String,
    OwnedObjectPath,
    String,
    Vec<(u32, OwnedObjectPath, String, OwnedObjectPath, String)>,
);

const UNITS: &[(&str, &str)] = &[
    (
        "web.service",
        "[Unit]\nDescription=Web\n[Service]\nExecStart=/bin/sleep 30\n",
    ),
    ("db.service", "[Service]\nExecStart=/bin/sleep 30\n"),
    ("app.target", "[Unit]\nDescription=App\n"),
];

async fn mcall<B, R>(conn: &zbus::Connection, method: &str, body: &B) -> zbus::Result<R>
where
    B: serde::Serialize + zvariant::DynamicType,
    R: for<'d> serde::Deserialize<'d> + zvariant::Type,
{
    call(conn, MANAGER, IFACE_MANAGER, method, body).await
}

#[tokio::test(flavor = "current_thread")]
async fn errors_are_named_as_systemd_names_them() {
    let s = setup(UNITS, &[]).await;
    let c = &s.conn;
    // ((got name, got message), (systemd's name, systemd's message))
    type Case<'a> = ((String, String), (&'a str, &'a str));
    let cases: Vec<Case> = vec![
        (
            method_error(mcall::<_, OwnedObjectPath>(c, "GetUnit", &("nope.service",)).await),
            (
                "org.freedesktop.systemd1.NoSuchUnit",
                "Unit nope.service not loaded.",
            ),
        ),
        (
            method_error(mcall::<_, OwnedObjectPath>(c, "GetUnitByPID", &(99999u32,)).await),
            (
                "org.freedesktop.systemd1.NoUnitForPID",
                "PID 99999 does not belong to any loaded unit.",
            ),
        ),
        (
            method_error(mcall::<_, OwnedObjectPath>(c, "GetJob", &(999u32,)).await),
            (
                "org.freedesktop.systemd1.NoSuchJob",
                "Job 999 does not exist.",
            ),
        ),
        (
            method_error(mcall::<_, ()>(c, "FreezeUnit", &("nope.service",)).await),
            (
                "org.freedesktop.systemd1.NoSuchUnit",
                "Unit nope.service not loaded.",
            ),
        ),
        (
            method_error(mcall::<_, String>(c, "GetUnitFileState", &("nope.service",)).await),
            (
                "org.freedesktop.DBus.Error.FileNotFound",
                "No such file or directory",
            ),
        ),
        (
            method_error(mcall::<_, ()>(c, "Nope", &()).await),
            (
                "org.freedesktop.DBus.Error.UnknownMethod",
                "Unknown method Nope or interface org.freedesktop.systemd1.Manager.",
            ),
        ),
        (
            method_error(
                call::<_, OwnedValue>(c, MANAGER, IFACE_PROPS, "Get", &(IFACE_MANAGER, "Nope"))
                    .await,
            ),
            (
                "org.freedesktop.DBus.Error.UnknownProperty",
                "Unknown interface org.freedesktop.systemd1.Manager or property Nope.",
            ),
        ),
        (
            method_error(
                call::<_, HashMap<String, OwnedValue>>(
                    c,
                    MANAGER,
                    IFACE_PROPS,
                    "GetAll",
                    &("org.freedesktop.systemd1.Nope",),
                )
                .await,
            ),
            (
                "org.freedesktop.DBus.Error.UnknownInterface",
                "Unknown interface 'org.freedesktop.systemd1.Nope'.",
            ),
        ),
        (
            method_error(
                call::<_, ()>(
                    c,
                    MANAGER,
                    IFACE_PROPS,
                    "Set",
                    &(IFACE_MANAGER, "Version", zvariant::Value::new("1")),
                )
                .await,
            ),
            (
                "org.freedesktop.DBus.Error.PropertyReadOnly",
                "Property 'Version' is not writable.",
            ),
        ),
        (
            method_error(
                mcall::<_, OwnedObjectPath>(c, "StartUnit", &("web.service", "bogus")).await,
            ),
            (
                "org.freedesktop.DBus.Error.InvalidArgs",
                "Job mode bogus is invalid.",
            ),
        ),
    ];
    for (got, (name, msg)) in cases {
        assert_eq!((got.0.as_str(), got.1.as_str()), (name, msg));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn listings_and_lookups() {
    let s = setup(UNITS, &[]).await;
    let c = &s.conn;
    let _: OwnedObjectPath = mcall(c, "StartUnit", &("web.service", "replace"))
        .await
        .expect("StartUnit");
    let _: OwnedObjectPath = mcall(c, "LoadUnit", &("app.target",))
        .await
        .expect("LoadUnit");
    let web = "/org/freedesktop/systemd1/unit/web_2eservice";
    wait_until("web active", || async {
        let v = get_prop(c, web, "org.freedesktop.systemd1.Unit", "ActiveState").await;
        String::try_from(v).is_ok_and(|s| s == "active")
    })
    .await;

    let by_pattern: Vec<ListedUnit> = mcall(
        c,
        "ListUnitsByPatterns",
        &(vec!["active"], vec!["w*.service"]),
    )
    .await
    .expect("ListUnitsByPatterns");
    let names: Vec<&str> = by_pattern.iter().map(|u| u.0.as_str()).collect();
    assert_eq!(names, ["web.service"]);
    assert_eq!(by_pattern[0].1, "Web");

    let filtered: Vec<ListedUnit> = mcall(c, "ListUnitsFiltered", &(vec!["inactive"],))
        .await
        .expect("ListUnitsFiltered");
    assert!(filtered.iter().any(|u| u.0 == "app.target"));
    assert!(!filtered.iter().any(|u| u.0 == "web.service"));

    let by_names: Vec<ListedUnit> = mcall(
        c,
        "ListUnitsByNames",
        &(vec!["web.service", "nope.service"],),
    )
    .await
    .expect("ListUnitsByNames");
    let states: Vec<(&str, &str)> = by_names
        .iter()
        .map(|u| (u.0.as_str(), u.2.as_str()))
        .collect();
    assert_eq!(
        states,
        [("web.service", "loaded"), ("nope.service", "not-found")]
    );

    let files: Vec<(String, String)> = mcall(
        c,
        "ListUnitFilesByPatterns",
        &(Vec::<String>::new(), vec!["*.target"]),
    )
    .await
    .expect("ListUnitFilesByPatterns");
    assert_eq!(files.len(), 1);
    assert!(files[0].0.ends_with("/app.target"), "{files:?}");

    let pid = u32::try_from(get_prop(c, web, "org.freedesktop.systemd1.Service", "MainPID").await)
        .expect("MainPID u32");
    assert!(pid > 0);
    let by_pid: OwnedObjectPath = mcall(c, "GetUnitByPID", &(pid,))
        .await
        .expect("GetUnitByPID");
    assert_eq!(by_pid.as_str(), web);
    let procs: Vec<(String, u32, String)> = mcall(c, "GetUnitProcesses", &("web.service",))
        .await
        .expect("GetUnitProcesses");
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0].1, pid);
    assert!(procs[0].2.contains("sleep"), "{procs:?}");

    let (id, job, unit, _unit_path, jt, _affected): EnqueuedJob =
        mcall(c, "EnqueueUnitJob", &("db.service", "start", "replace"))
            .await
            .expect("EnqueueUnitJob");
    assert_eq!((unit.as_str(), jt.as_str()), ("db.service", "start"));
    assert_eq!(job.as_str(), format!("/org/freedesktop/systemd1/job/{id}"));

    let _: () = mcall(c, "SetEnvironment", &(vec!["A=1", "B=2"],))
        .await
        .expect("SetEnvironment");
    let _: () = mcall(c, "UnsetEnvironment", &(vec!["A"],))
        .await
        .expect("UnsetEnvironment");
    let env = Vec::<String>::try_from(get_prop(c, MANAGER, IFACE_MANAGER, "Environment").await)
        .expect("Environment as");
    assert_eq!(env, ["B=2"]);

    let _: () = mcall(
        c,
        "SetUnitProperties",
        &(
            "web.service",
            true,
            vec![("Description", zvariant::Value::new("Changed"))],
        ),
    )
    .await
    .expect("SetUnitProperties");
    let d =
        String::try_from(get_prop(c, web, "org.freedesktop.systemd1.Unit", "Description").await)
            .expect("Description s");
    assert_eq!(d, "Changed");
    let (name, msg) = method_error(
        mcall::<_, ()>(
            c,
            "SetUnitProperties",
            &(
                "web.service",
                true,
                vec![("Bogus", zvariant::Value::new(1u32))],
            ),
        )
        .await,
    );
    assert_eq!(name, "org.freedesktop.DBus.Error.PropertyReadOnly");
    assert_eq!(msg, "Cannot set property Bogus, or unknown property.");
}

#[tokio::test(flavor = "current_thread")]
async fn transient_unit_runs_and_is_collected() {
    let s = setup(UNITS, &[]).await;
    let c = &s.conn;
    let rule = zbus::MatchRule::builder()
        .msg_type(MsgType::Signal)
        .sender(DEST)
        .expect("sender")
        .interface(IFACE_MANAGER)
        .expect("interface")
        .build();
    let mut signals = zbus::MessageStream::for_match_rule(rule, c, Some(1000))
        .await
        .expect("signal stream");
    let _: () = mcall(c, "Subscribe", &()).await.expect("Subscribe");
    let exec = vec![(
        "/bin/sleep".to_string(),
        vec!["sleep".to_string(), "30".to_string()],
        false,
    )];
    let props: Vec<(&str, zvariant::Value)> = vec![
        ("Description", zvariant::Value::new("hello")),
        ("ExecStart", zvariant::Value::new(exec)),
    ];
    let aux: Vec<(String, Vec<(String, zvariant::Value)>)> = Vec::new();
    let _job: OwnedObjectPath = mcall(
        c,
        "StartTransientUnit",
        &("run-x.service", "fail", &props, &aux),
    )
    .await
    .expect("StartTransientUnit");
    let file = s.dir.path().join("run/transient/run-x.service");
    let text = std::fs::read_to_string(&file).expect("transient unit file written");
    assert!(text.contains("Description=hello"), "{text}");
    let path = "/org/freedesktop/systemd1/unit/run_2dx_2eservice";
    assert_eq!(
        bool::try_from(get_prop(c, path, "org.freedesktop.systemd1.Unit", "Transient").await),
        Ok(true)
    );
    assert_eq!(
        String::try_from(get_prop(c, path, "org.freedesktop.systemd1.Unit", "UnitFileState").await)
            .as_deref(),
        Ok("transient")
    );
    wait_until("transient active", || async {
        let v = get_prop(c, path, "org.freedesktop.systemd1.Unit", "ActiveState").await;
        String::try_from(v).is_ok_and(|s| s == "active")
    })
    .await;
    let (name, msg) = method_error(
        mcall::<_, OwnedObjectPath>(
            c,
            "StartTransientUnit",
            &("run-x.service", "fail", &props, &aux),
        )
        .await,
    );
    assert_eq!(name, "org.freedesktop.systemd1.UnitExists");
    assert_eq!(
        msg,
        "Unit run-x.service was already loaded or has a fragment file."
    );

    let _: OwnedObjectPath = mcall(c, "StopUnit", &("run-x.service", "replace"))
        .await
        .expect("StopUnit");
    let removed = async {
        while let Some(Ok(m)) = signals.next().await {
            let h = m.header();
            if h.member().is_some_and(|x| x.as_str() == "UnitRemoved") {
                let (id, _): (String, OwnedObjectPath) =
                    m.body().deserialize().expect("UnitRemoved");
                if id == "run-x.service" {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, removed)
        .await
        .expect("UnitRemoved for the transient unit");
    wait_until("transient file removed", || async { !file.exists() }).await;
}

#[tokio::test(flavor = "current_thread")]
async fn reload_is_wrapped_in_reloading_signals() {
    let s = setup(UNITS, &[]).await;
    let c = &s.conn;
    let rule = zbus::MatchRule::builder()
        .msg_type(MsgType::Signal)
        .sender(DEST)
        .expect("sender")
        .member("Reloading")
        .expect("member")
        .build();
    let mut signals = zbus::MessageStream::for_match_rule(rule, c, Some(100))
        .await
        .expect("signal stream");
    let _: () = mcall(c, "Subscribe", &()).await.expect("Subscribe");
    let _: () = mcall(c, "Reload", &()).await.expect("Reload");
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = tokio::time::timeout(DEADLINE, signals.next())
            .await
            .expect("Reloading signal")
            .expect("stream open")
            .expect("message");
        let (b,): (bool,) = m.body().deserialize().expect("Reloading(b)");
        got.push(b);
    }
    assert_eq!(got, [true, false]);
}

#[tokio::test(flavor = "current_thread")]
async fn bus_signals_only_while_subscribed() {
    let s = setup(UNITS, &[]).await;
    let c = &s.conn;
    let rule = zbus::MatchRule::builder()
        .msg_type(MsgType::Signal)
        .sender(DEST)
        .expect("sender")
        .member("JobRemoved")
        .expect("member")
        .build();
    let mut signals = zbus::MessageStream::for_match_rule(rule, c, Some(100))
        .await
        .expect("signal stream");
    // Unsubscribed: the first job's JobRemoved is not sent; the second one's is.
    let j: OwnedObjectPath = mcall(c, "StartUnit", &("app.target", "replace"))
        .await
        .expect("StartUnit");
    let id1 = job_id(&j);
    wait_until("first job done", || async {
        mcall::<_, OwnedObjectPath>(c, "GetJob", &(id1,))
            .await
            .is_err()
    })
    .await;
    let _: () = mcall(c, "Subscribe", &()).await.expect("Subscribe");
    let (name, msg) = method_error(mcall::<_, ()>(c, "Subscribe", &()).await);
    assert_eq!(
        (name.as_str(), msg.as_str()),
        (
            "org.freedesktop.systemd1.AlreadySubscribed",
            "Client is already subscribed."
        )
    );
    let j: OwnedObjectPath = mcall(c, "StopUnit", &("app.target", "replace"))
        .await
        .expect("StopUnit");
    assert_eq!(next_removed(&mut signals).await, job_id(&j));
    let _: () = mcall(c, "Unsubscribe", &()).await.expect("Unsubscribe");
    let (name, _) = method_error(mcall::<_, ()>(c, "Unsubscribe", &()).await);
    assert_eq!(name, "org.freedesktop.systemd1.NotSubscribed");
}

/// The id of the next JobRemoved on `signals`.
async fn next_removed(signals: &mut zbus::MessageStream) -> u32 {
    let m = tokio::time::timeout(DEADLINE, signals.next())
        .await
        .expect("JobRemoved within the deadline")
        .expect("stream open")
        .expect("message");
    let (id, ..): (u32, OwnedObjectPath, String, String) =
        m.body().deserialize().expect("JobRemoved body");
    id
}

fn job_id(p: &OwnedObjectPath) -> u32 {
    p.as_str()
        .rsplit('/')
        .next()
        .and_then(|x| x.parse().ok())
        .expect("job path ends in its id")
}
