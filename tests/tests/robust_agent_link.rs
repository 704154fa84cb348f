//! The agent against a hostile controller: we accept its peer link and send random calls and
//! signals (members of the internal interfaces or made up, bodies of random signatures), then
//! sometimes drop the link. The agent must stay alive, keep answering on its bus, and
//! reconnect. Run `cargo build --workspace --bins` first.

mod robust_support;
mod support_daemons;

use std::time::Duration;

use futures_util::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use robust_support::fuzz::{self, Msg};
use robust_support::lone::LoneAgent;
use zbus::message::Type;
use zbus::Connection;

const PROMPT: Duration = Duration::from_secs(5);

fn case() -> impl Strategy<Value = (Vec<Msg>, bool)> {
    (
        proptest::collection::vec(fuzz::msg(fuzz::internal_members()), 1..24),
        proptest::bool::weighted(0.3),
    )
}

/// Counts the agent's replies to our calls, so a case only ends once every call that wants
/// an answer got one (or the link ended): an agent that swallowed a call would hang here.
async fn send_and_collect(stream: &mut zbus::MessageStream, msgs: &[Msg]) -> Result<(), String> {
    let conn = Connection::from(&*stream);
    let mut expected = Vec::new();
    for m in msgs {
        let Some(wire) = m.build() else { continue };
        // StartDep/StopDep are one-way by protocol (upstream never answers them either).
        let one_way = m.path == "/org/eclipse/bluechi/internal/agent"
            && m.iface == "org.eclipse.bluechi.internal.Agent"
            && (m.member == "StartDep" || m.member == "StopDep");
        if wire.message_type() == Type::MethodCall && !m.no_reply && !one_way {
            expected.push(wire.primary_header().serial_num().get());
        }
        conn.send(&wire).await.map_err(|e| format!("send: {e}"))?;
    }
    let deadline = tokio::time::Instant::now() + robust_support::DEADLINE;
    while !expected.is_empty() {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let m = match next {
            Err(_) => return Err(format!("no reply to calls {expected:?}")),
            Ok(None) => return Ok(()),
            Ok(Some(Err(_))) => continue,
            Ok(Some(Ok(m))) => m,
        };
        if let Some(s) = m.header().reply_serial() {
            expected.retain(|&e| e != s.get());
        }
    }
    Ok(())
}

#[test]
fn agent_survives_a_hostile_controller() {
    let rt = robust_support::runtime();
    let agent = rt.block_on(LoneAgent::start());
    // The link survives from case to case unless a case drops it.
    let stream = std::sync::Mutex::new(Some(rt.block_on(agent.accept())));
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
    let result = runner.run(&case(), |(msgs, drop_link)| {
        rt.block_on(async {
            let kept = stream.lock().ok().and_then(|mut g| g.take());
            let mut s = match kept {
                Some(s) => s,
                None => agent.accept().await,
            };
            let sent = send_and_collect(&mut s, &msgs).await;
            prop_assert!(sent.is_ok(), "{:?}", sent);
            prop_assert!(agent.alive(), "agent died");
            let status = agent.status_within(PROMPT).await;
            prop_assert!(status.is_ok(), "{:?}", status);
            if !drop_link {
                if let Ok(mut g) = stream.lock() {
                    *g = Some(s);
                }
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        eprintln!("--- agent log\n{}", agent.log());
        panic!("{e}");
    }
    // After all of it the agent still registers and calls still work.
    rt.block_on(async {
        let kept = stream.lock().ok().and_then(|mut g| g.take());
        let s = match kept {
            Some(s) => s,
            None => agent.accept().await,
        };
        let conn = Connection::from(&s);
        let r = conn
            .call_method(
                None::<&str>,
                "/",
                Some("org.freedesktop.DBus.Peer"),
                "Ping",
                &(),
            )
            .await;
        assert!(r.is_ok(), "{r:?}");
        robust_support::poll("agent online", || async {
            (agent.status_within(PROMPT).await.ok()? == "online").then_some(())
        })
        .await;
    });
}
