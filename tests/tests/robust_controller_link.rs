//! The controller against a hostile peer: wrong calls, wrong signatures, garbage bytes,
//! disconnects in the middle of a `Register` or while a job waits on the peer, and random
//! message sequences (proptest). After every case the controller process must be alive and
//! answer `ListNodes` on its bus promptly. Run `cargo build --workspace --bins` first.

mod robust_support;
mod support_daemons;

use std::time::{Duration, Instant};

use bluechi_core::config::TcpOptions;
use bluechi_core::{link, sasl};
use futures_util::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use robust_support::fuzz::{self, Msg};
use robust_support::*;
use scenario_runner::backend::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zbus::message::Type;
use zbus::{Connection, Message};

const SCENARIO: &str = "\
nodes: main
controller: main

controller.conf:
    [bluechi-controller]
    AllowedNodeNames=main,ghost

unit main slow.service:
    [Service]
    Type=oneshot
    ExecStart=/bin/sleep 1
";

/// The allowed node no agent runs for: the fake peer registers under this name.
const GHOST: &str = "ghost";
/// A stalled event loop shows as a `ListNodes` slower than this.
const PROMPT: Duration = Duration::from_secs(5);
const NO_OPTS: TcpOptions = TcpOptions {
    ip_receive_errors: false,
    keepalive_time: 0,
    keepalive_interval: 0,
    keepalive_count: 0,
};

struct Ctx {
    backend: Cluster,
    bus: Connection,
    pid: i32,
    port: u16,
}

impl Ctx {
    /// The invariant every case ends with.
    async fn assert_healthy(&self, after: &str) {
        assert!(is_alive(self.pid), "controller died after {after}");
        if let Err(e) = list_nodes_within(&self.bus, PROMPT).await {
            dump_logs(&self.backend);
            panic!("after {after}: {e}");
        }
    }

    async fn wait_ghost_offline(&self, after: &str) {
        poll(&format!("ghost offline after {after}"), || async {
            (node_status(&self.bus, GHOST).await.as_deref() == Some("offline")).then_some(())
        })
        .await
    }

    /// A peer link as an agent opens it; its stream is returned so nothing sent is missed.
    async fn link(&self) -> zbus::MessageStream {
        link::connect(&format!("tcp:host=127.0.0.1,port={}", self.port), &NO_OPTS)
            .await
            .expect("peer link")
    }

    /// An authenticated raw socket whose incoming bytes are drained in the background, so
    /// the controller's replies never back up while we write.
    async fn raw(&self) -> (tokio::net::tcp::OwnedWriteHalf, tokio::task::JoinHandle<()>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect");
        sasl::client_handshake(&mut s).await.expect("handshake");
        let (mut r, w) = s.into_split();
        let drain = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while matches!(r.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        (w, drain)
    }

    async fn node_path(&self, node: &str) -> String {
        let reply = self
            .bus
            .call_method(
                Some("org.eclipse.bluechi"),
                "/org/eclipse/bluechi",
                Some("org.eclipse.bluechi.Controller"),
                "GetNode",
                &(node,),
            )
            .await
            .expect("GetNode");
        let (p,): (zvariant::OwnedObjectPath,) = reply.body().deserialize().expect("node path");
        p.to_string()
    }

    /// Starts a public `StartUnit` on `node` in the background; its result (reply or error
    /// text) comes out of the handle.
    async fn public_start(&self, node: &str, unit: &str) -> tokio::task::JoinHandle<String> {
        let path = self.node_path(node).await;
        let bus = self.bus.clone();
        let unit = unit.to_string();
        tokio::spawn(async move {
            let r = bus
                .call_method(
                    Some("org.eclipse.bluechi"),
                    path.as_str(),
                    Some("org.eclipse.bluechi.Node"),
                    "StartUnit",
                    &(unit.as_str(), "replace"),
                )
                .await;
            match r {
                Ok(m) => format!("ok {:?}", m.body().signature()),
                Err(e) => format!("error {e}"),
            }
        })
    }
}

fn error_name(r: zbus::Result<Message>) -> String {
    match r {
        Err(zbus::Error::MethodError(name, _, _)) => name.to_string(),
        other => format!("not an error: {other:?}"),
    }
}

async fn wrong_calls_get_clear_errors(ctx: &Ctx) {
    let stream = ctx.link().await;
    let conn = Connection::from(&stream);
    let call = |path: &'static str, iface: &'static str, member: &'static str| {
        let conn = conn.clone();
        async move {
            conn.call_method(None::<&str>, path, Some(iface), member, &())
                .await
        }
    };
    assert_eq!(
        error_name(call("/nowhere", "a.b", "X").await),
        "org.freedesktop.DBus.Error.UnknownObject"
    );
    assert_eq!(
        error_name(
            call(
                "/org/eclipse/bluechi/internal",
                "org.eclipse.bluechi.internal.Controller",
                "Nope"
            )
            .await
        ),
        "org.freedesktop.DBus.Error.UnknownMethod"
    );
    let register = |body: u32| {
        let conn = conn.clone();
        async move {
            conn.call_method(
                None::<&str>,
                "/org/eclipse/bluechi/internal",
                Some("org.eclipse.bluechi.internal.Controller"),
                "Register",
                &(body,),
            )
            .await
        }
    };
    assert_eq!(
        error_name(register(7).await),
        "org.freedesktop.DBus.Error.InvalidArgs"
    );
    let r = conn
        .call_method(
            None::<&str>,
            "/org/eclipse/bluechi/internal",
            Some("org.eclipse.bluechi.internal.Controller"),
            "Register",
            &("no-such-node",),
        )
        .await;
    assert_eq!(error_name(r), "org.freedesktop.DBus.Error.ServiceUnknown");
    // Signals from an unregistered peer are ignored, not fatal.
    for member in fuzz::internal_members() {
        let m = Message::signal(
            "/org/eclipse/bluechi/internal/agent",
            "org.eclipse.bluechi.internal.Agent",
            member.as_str(),
        )
        .and_then(|b| b.build(&(1u32, "x")))
        .expect("signal");
        conn.send(&m).await.expect("send");
    }
    let r = conn
        .call_method(
            None::<&str>,
            "/",
            Some("org.freedesktop.DBus.Peer"),
            "Ping",
            &(),
        )
        .await;
    assert!(r.is_ok(), "the link still works: {r:?}");
    drop(conn);
    drop(stream);
    ctx.assert_healthy("wrong calls").await;
}

async fn garbage_after_handshake(ctx: &Ctx) {
    for garbage in [
        b"this is not D-Bus\r\n".to_vec(),
        vec![0u8; 4096],
        vec![b'l', 1, 0, 1, 0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0],
        (0..=255u8).cycle().take(10_000).collect(),
    ] {
        let (mut w, drain) = ctx.raw().await;
        let _ = w.write_all(&garbage).await;
        let _ = w.shutdown().await;
        drop(w);
        drain.abort();
        ctx.assert_healthy("garbage after the handshake").await;
    }
}

async fn disconnect_mid_register(ctx: &Ctx) {
    let m = Message::method_call("/org/eclipse/bluechi/internal", "Register")
        .and_then(|b| b.interface("org.eclipse.bluechi.internal.Controller"))
        .and_then(|b| b.build(&(GHOST,)))
        .expect("Register");
    let bytes = m.data().to_vec();
    // Half a message, then the whole one followed by an immediate close.
    for cut in [bytes.len() / 2, bytes.len()] {
        let (mut w, drain) = ctx.raw().await;
        let _ = w.write_all(&bytes[..cut]).await;
        drop(w);
        drain.abort();
        ctx.assert_healthy("a disconnect during Register").await;
        ctx.wait_ghost_offline("a disconnect during Register").await;
    }
    // The name is free again: nothing of the dead link lingers.
    let stream = ctx.link().await;
    let conn = Connection::from(&stream);
    let r = conn
        .call_method(
            None::<&str>,
            "/org/eclipse/bluechi/internal",
            Some("org.eclipse.bluechi.internal.Controller"),
            "Register",
            &(GHOST,),
        )
        .await;
    assert!(r.is_ok(), "re-register after aborted ones: {r:?}");
    drop(conn);
    drop(stream);
    ctx.wait_ghost_offline("closing a registered link").await;
}

/// Registers as the ghost node and returns the link (with its stream, to see calls).
async fn register_ghost(ctx: &Ctx) -> zbus::MessageStream {
    let stream = ctx.link().await;
    let conn = Connection::from(&stream);
    conn.call_method(
        None::<&str>,
        "/org/eclipse/bluechi/internal",
        Some("org.eclipse.bluechi.internal.Controller"),
        "Register",
        &(GHOST,),
    )
    .await
    .expect("Register as ghost");
    stream
}

async fn next_call(stream: &mut zbus::MessageStream, member: &str) -> Message {
    let start = Instant::now();
    loop {
        let left = DEADLINE.saturating_sub(start.elapsed());
        let m = tokio::time::timeout(left, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no {member} call arrived"))
            .expect("link closed")
            .expect("message");
        if m.message_type() == Type::MethodCall && m.header().member().is_some_and(|x| x == member)
        {
            return m;
        }
    }
}

async fn disconnect_while_job_pending(ctx: &Ctx) {
    // The agent never answers the call: the public caller gets an error once the link drops.
    let mut stream = register_ghost(ctx).await;
    let caller = ctx.public_start(GHOST, "a.service").await;
    next_call(&mut stream, "StartUnit").await;
    drop(stream);
    let r = tokio::time::timeout(DEADLINE, caller)
        .await
        .expect("public StartUnit still hangs after the node left")
        .expect("caller task");
    assert!(r.starts_with("error"), "{r}");
    ctx.wait_ghost_offline("a disconnect with a call pending")
        .await;

    // The agent accepted the job and vanishes before JobDone: JobRemoved says "failed".
    let removed = job_removed_stream(&ctx.bus).await;
    let mut stream = register_ghost(ctx).await;
    let conn = Connection::from(&stream);
    let caller = ctx.public_start(GHOST, "b.service").await;
    let call = next_call(&mut stream, "StartUnit").await;
    conn.reply(&call.header(), &()).await.expect("reply");
    let r = tokio::time::timeout(DEADLINE, caller)
        .await
        .expect("public StartUnit reply")
        .expect("caller task");
    assert!(r.starts_with("ok"), "{r}");
    drop(conn);
    drop(stream);
    let (unit, result) = wait_job_removed(removed, GHOST).await;
    assert_eq!((unit.as_str(), result.as_str()), ("b.service", "failed"));
    ctx.assert_healthy("a disconnect with a job running").await;
}

/// Job ids are global: a peer must not be able to end another node's job with a forged
/// `JobDone` (or move its state with `JobStateChanged`).
async fn foreign_job_done_is_ignored(ctx: &Ctx) {
    let removed = job_removed_stream(&ctx.bus).await;
    let caller = ctx.public_start("main", "slow.service").await;
    let r = tokio::time::timeout(DEADLINE, caller)
        .await
        .expect("public StartUnit reply")
        .expect("caller task");
    assert!(r.starts_with("ok"), "{r}");
    let stream = register_ghost(ctx).await;
    let conn = Connection::from(&stream);
    // Every id a recent job could have: the forgery must hit the real one.
    for id in 1u32..=64 {
        conn.emit_signal(
            None::<&str>,
            "/org/eclipse/bluechi/internal/agent",
            "org.eclipse.bluechi.internal.Agent",
            "JobDone",
            &(id, "forged"),
        )
        .await
        .expect("send forged JobDone");
    }
    let (unit, result) = wait_job_removed(removed, "main").await;
    assert_eq!((unit.as_str(), result.as_str()), ("slow.service", "done"));
    drop(conn);
    drop(stream);
    ctx.wait_ghost_offline("forging JobDone").await;
}

async fn job_removed_stream(bus: &Connection) -> zbus::MessageStream {
    let rule = zbus::MatchRule::builder()
        .msg_type(Type::Signal)
        .interface("org.eclipse.bluechi.Controller")
        .expect("iface")
        .member("JobRemoved")
        .expect("member")
        .build();
    zbus::MessageStream::for_match_rule(rule, bus, Some(256))
        .await
        .expect("JobRemoved match")
}

async fn wait_job_removed(mut s: zbus::MessageStream, node: &str) -> (String, String) {
    let start = Instant::now();
    loop {
        let left = DEADLINE.saturating_sub(start.elapsed());
        let m = tokio::time::timeout(left, s.next())
            .await
            .unwrap_or_else(|_| panic!("no JobRemoved for {node}"))
            .expect("bus closed")
            .expect("message");
        type Removed = (u32, zvariant::OwnedObjectPath, String, String, String);
        if let Ok((_, _, n, unit, result)) = m.body().deserialize::<Removed>() {
            if n == node {
                return (unit, result);
            }
        }
    }
}

/// One generated case: what the hostile peer does on one connection.
#[derive(Debug, Clone)]
enum Step {
    Send(Msg),
    Garbage(Vec<u8>),
    /// Half of a valid message: the connection ends inside it.
    Truncated(Msg),
    /// A public `StartUnit` on the ghost node that the peer never answers.
    PublicStart,
}

fn steps() -> impl Strategy<Value = (bool, Vec<Step>)> {
    let members = fuzz::internal_members();
    let step = prop_oneof![
        12 => fuzz::msg(members.clone()).prop_map(Step::Send),
        1 => proptest::collection::vec(any::<u8>(), 1..256).prop_map(Step::Garbage),
        1 => fuzz::msg(members).prop_map(Step::Truncated),
        1 => Just(Step::PublicStart),
    ];
    (any::<bool>(), proptest::collection::vec(step, 1..24))
}

async fn run_case(ctx: &Ctx, register: bool, steps: &[Step]) {
    let (mut w, drain) = ctx.raw().await;
    if register {
        let m = Message::method_call("/org/eclipse/bluechi/internal", "Register")
            .and_then(|b| b.interface("org.eclipse.bluechi.internal.Controller"))
            .and_then(|b| b.build(&(GHOST,)))
            .expect("Register");
        let _ = w.write_all(&m.data()[..]).await;
        // PublicStart needs the node online; with a dead link it fails fast, also fine.
        poll("ghost online", || async {
            (node_status(&ctx.bus, GHOST).await.as_deref() == Some("online")).then_some(())
        })
        .await;
    }
    let mut callers = Vec::new();
    for step in steps {
        match step {
            Step::Send(m) => {
                if let Some(m) = m.build() {
                    let _ = w.write_all(&m.data()[..]).await;
                }
            }
            Step::Garbage(b) => {
                let _ = w.write_all(b).await;
                break;
            }
            Step::Truncated(m) => {
                if let Some(m) = m.build() {
                    let d = &m.data()[..];
                    let _ = w.write_all(&d[..d.len() / 2]).await;
                }
                break;
            }
            Step::PublicStart => callers.push(ctx.public_start(GHOST, "fuzz.service").await),
        }
    }
    drop(w);
    drain.abort();
    let what = format!("{steps:?}");
    ctx.assert_healthy(&what).await;
    ctx.wait_ghost_offline(&what).await;
    for c in callers {
        let r = tokio::time::timeout(DEADLINE, c).await;
        assert!(r.is_ok(), "a public call hangs after {what}");
    }
}

#[test]
fn controller_survives_hostile_peers() {
    let rt = runtime();
    let ctx = rt.block_on(async {
        let backend = cluster("robust-controller-link", SCENARIO).await;
        let bus = node_bus(&backend, "main").await;
        let pid = daemon_pid(&backend, "bluechi-controller", None).expect("controller pid");
        let port = controller_port(&backend);
        Ctx {
            backend,
            bus,
            pid,
            port,
        }
    });
    rt.block_on(async {
        wrong_calls_get_clear_errors(&ctx).await;
        garbage_after_handshake(&ctx).await;
        disconnect_mid_register(&ctx).await;
        disconnect_while_job_pending(&ctx).await;
        foreign_job_done_is_ignored(&ctx).await;
    });
    let cases = std::env::var("ROBUST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        // Each shrink step may wait out a deadline; a bounded search keeps failures fast.
        max_shrink_iters: std::env::var("ROBUST_SHRINK")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(32),
        ..Config::default()
    });
    let result = runner.run(&steps(), |(register, steps)| {
        rt.block_on(run_case(&ctx, register, &steps));
        Ok(())
    });
    if let Err(e) = result {
        dump_logs(&ctx.backend);
        panic!("{e}");
    }
    // The real agent was never disturbed by any of it.
    rt.block_on(async {
        assert_eq!(
            node_status(&ctx.bus, "main").await.as_deref(),
            Some("online")
        );
    });
}
