//! Socket activation (spec §1.3), the unix-socket peer link, and heartbeats in both directions
//! (§1.6, §1.7), end to end: the test binds the listening socket and passes it to the
//! controller as fd 3, exactly as systemd would. Run `cargo build --workspace --bins` first.

mod listeners_support;
mod robust_support;
mod support_daemons;

use listeners_support::{Activated, Rig};
use robust_support::{poll, runtime};
use zvariant::OwnedValue;

/// Fast heartbeats so liveness decisions happen well inside the polling deadline.
const CONTROLLER_HEARTBEATS: &str = "HeartbeatInterval=200\nNodeHeartbeatThreshold=1000";
const AGENT_HEARTBEATS: &str = "HeartbeatInterval=200";

async fn peer_ip(rig: &Rig) -> Option<String> {
    String::try_from(rig.node_property("PeerIp").await?).ok()
}

async fn last_seen(rig: &Rig) -> Option<u64> {
    let v: OwnedValue = rig.node_property("LastSeenTimestamp").await?;
    u64::try_from(v).ok()
}

#[test]
fn agent_registers_through_an_activated_unix_socket() {
    runtime().block_on(async {
        let mut rig = Rig::start(Activated::Unix, "").await;
        assert_eq!(
            rig.node_status().await.as_deref(),
            Some("offline"),
            "the node is known but not yet connected"
        );
        rig.start_agent("").await;
        rig.wait_node_status("online").await;
        // A unix peer has no IP address.
        assert_eq!(peer_ip(&rig).await.as_deref(), Some(""), "{}", rig.logs());
        assert_eq!(rig.agent_status().await.as_deref(), Some("online"));
        assert!(
            rig.log("bluechi-controller")
                .contains("Waiting for connection requests on configured socket unit..."),
            "{}",
            rig.logs()
        );
    });
}

#[test]
fn agent_registers_through_an_activated_tcp_socket() {
    runtime().block_on(async {
        let mut rig = Rig::start(Activated::Tcp, "").await;
        rig.start_agent("").await;
        rig.wait_node_status("online").await;
        assert_eq!(
            peer_ip(&rig).await.as_deref(),
            Some("127.0.0.1"),
            "{}",
            rig.logs()
        );
    });
}

/// `LISTEN_PID` naming another process means the fds are not ours: with TCP and the unix
/// socket switched off, the controller has nowhere to listen and must say so.
#[test]
fn activation_for_another_pid_is_ignored() {
    let (status, log) = listeners_support::controller_with_foreign_listen_pid()
        .expect("the controller kept running without any listener");
    assert!(!status.success(), "exit status {status}; log:\n{log}");
    assert!(
        log.contains("No connection request handler configured"),
        "log:\n{log}"
    );
}

#[test]
fn frozen_agent_goes_offline_and_comes_back_after_sigcont() {
    runtime().block_on(async {
        let mut rig = Rig::start(Activated::Unix, CONTROLLER_HEARTBEATS).await;
        rig.start_agent(AGENT_HEARTBEATS).await;
        rig.wait_node_status("online").await;
        // Several thresholds pass with the agent heartbeating: it is not dropped while alive.
        let start = std::time::Instant::now();
        poll("three node heartbeat thresholds to pass", || async {
            assert_eq!(
                rig.node_status().await.as_deref(),
                Some("online"),
                "a live agent was dropped:\n{}",
                rig.logs()
            );
            (start.elapsed() > std::time::Duration::from_millis(3000)).then_some(())
        })
        .await;

        rig.signal("bluechi-agent", "STOP");
        rig.wait_node_status("offline").await;
        assert!(
            rig.log("bluechi-controller")
                .contains("Did not receive heartbeat from node 'lis' since '1000'ms"),
            "{}",
            rig.logs()
        );
        rig.signal("bluechi-agent", "CONT");
        rig.wait_node_status("online").await;
        assert_eq!(peer_ip(&rig).await.as_deref(), Some(""));
        rig.wait_agent_status("online").await;
    });
}

#[test]
fn last_seen_timestamp_advances_with_agent_heartbeats() {
    runtime().block_on(async {
        // Controller heartbeats off: only the agent's heartbeats can move the timestamp.
        let mut rig = Rig::start(Activated::Unix, "").await;
        rig.start_agent(AGENT_HEARTBEATS).await;
        rig.wait_node_status("online").await;
        let mut seen = last_seen(&rig).await.expect("LastSeenTimestamp");
        assert!(seen > 0, "an online node was seen at registration");
        for round in 0..3 {
            seen = poll(
                &format!("LastSeenTimestamp to advance (round {round})"),
                || async { last_seen(&rig).await.filter(|&t| t > seen) },
            )
            .await;
        }
    });
}

#[test]
fn frozen_controller_is_dropped_by_the_agent() {
    runtime().block_on(async {
        let mut rig = Rig::start(Activated::Unix, CONTROLLER_HEARTBEATS).await;
        rig.start_agent("HeartbeatInterval=200\nControllerHeartbeatThreshold=1000")
            .await;
        rig.wait_agent_status("online").await;
        // While the controller runs its heartbeats keep the agent online for several
        // thresholds (regression: the heartbeat used to be unbuildable and never sent).
        let start = std::time::Instant::now();
        poll("three controller heartbeat thresholds to pass", || async {
            assert_eq!(
                rig.agent_status().await.as_deref(),
                Some("online"),
                "the agent dropped a live controller:\n{}",
                rig.logs()
            );
            (start.elapsed() > std::time::Duration::from_millis(3000)).then_some(())
        })
        .await;
        assert!(
            !rig.log("bluechi-agent")
                .contains("Did not receive heartbeat from controller"),
            "{}",
            rig.logs()
        );
        rig.signal("bluechi-controller", "STOP");
        rig.wait_agent_status("offline").await;
        assert!(
            rig.log("bluechi-agent")
                .contains("Did not receive heartbeat from controller, disconnecting"),
            "{}",
            rig.logs()
        );
        rig.signal("bluechi-controller", "CONT");
        rig.wait_agent_status("online").await;
        rig.wait_node_status("online").await;
    });
}

/// The controller's Heartbeat reaches a raw agent-side reader stamped with
/// SENDER=org.eclipse.bluechi, as upstream's controller sends it (spec §1.4.2).
#[test]
fn controller_heartbeat_carries_its_well_known_sender() {
    use bluechi_core::{names, sasl, wire};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    runtime().block_on(async {
        let rig = Rig::start(Activated::Unix, CONTROLLER_HEARTBEATS).await;
        let path = rig
            .controller_address
            .strip_prefix("unix:path=")
            .expect("unix address")
            .to_string();
        let mut s = tokio::net::UnixStream::connect(&path)
            .await
            .expect("connect to the controller");
        sasl::client_handshake(&mut s).await.expect("handshake");
        let register = zbus::Message::method_call(names::INTERNAL_CONTROLLER_PATH, "Register")
            .and_then(|b| b.interface(names::INTERNAL_CONTROLLER_IFACE))
            .and_then(|b| b.destination(names::CONTROLLER_BUS_NAME))
            .and_then(|b| b.build(&("lis",)))
            .expect("Register call");
        s.write_all(register.data()).await.expect("send Register");
        let read = async {
            loop {
                let mut msg = vec![0u8; wire::FIXED_HEADER];
                s.read_exact(&mut msg).await.expect("fixed header");
                let total = wire::message_len(&msg).expect("plausible message");
                msg.resize(total, 0);
                s.read_exact(&mut msg[wire::FIXED_HEADER..])
                    .await
                    .expect("message");
                if wire::string_field(&msg, 3).as_deref() == Some("Heartbeat") {
                    return msg;
                }
            }
        };
        let heartbeat = tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .unwrap_or_else(|_| panic!("no Heartbeat from the controller:\n{}", rig.logs()));
        assert_eq!(
            wire::sender(&heartbeat).as_deref(),
            Some("org.eclipse.bluechi"),
            "{}",
            rig.logs()
        );
        assert_eq!(heartbeat[1], 4, "a signal");
    });
}
