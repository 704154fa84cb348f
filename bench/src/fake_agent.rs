//! A light agent for load on the controller: it speaks the real peer link (SASL handshake,
//! `Register`, `Heartbeat`) and answers `ListUnits` with synthetic units, but has no bus and
//! no systemd behind it, so a hundred of them fit in this one process.

use bluechi_core::msg::ListedUnit;
use std::sync::Arc;
use std::time::Duration;

use bluechi_core::config::TcpOptions;
use bluechi_core::names::*;
use bluechi_core::{link, msg};
use futures_util::StreamExt;
use tokio::task::JoinHandle;
use zbus::message::Type;
use zbus::{Connection, Message};
use zvariant::OwnedObjectPath;

/// Upstream's default agent `HeartbeatInterval`.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// `count` running services named like a real node's, with their escaped object paths.
pub fn synthetic_units(count: usize) -> Result<Vec<ListedUnit>, String> {
    let root = OwnedObjectPath::try_from("/").map_err(|e| e.to_string())?;
    (0..count)
        .map(|i| {
            let name = format!("synthetic-{i:04}.service");
            let path = format!(
                "{SYSTEMD_UNIT_PATH_PREFIX}/{}",
                bluechi_testkit::escape::escape_unit_name(&name)
            );
            let path = OwnedObjectPath::try_from(path).map_err(|e| e.to_string())?;
            Ok((
                name,
                format!("Synthetic service {i}"),
                "loaded".to_string(),
                "active".to_string(),
                "running".to_string(),
                String::new(),
                path,
                0,
                String::new(),
                root.clone(),
            ))
        })
        .collect()
}

/// A connected, registered fake agent; dropping it closes its link.
pub struct FakeAgent {
    task: JoinHandle<()>,
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tcp_options() -> TcpOptions {
    TcpOptions {
        ip_receive_errors: true,
        keepalive_time: 1,
        keepalive_interval: 1,
        keepalive_count: 6,
    }
}

impl FakeAgent {
    /// Connects to `address` and registers as `name`; returns once the controller accepted.
    pub async fn connect(
        address: &str,
        name: &str,
        units: Arc<Vec<ListedUnit>>,
    ) -> Result<FakeAgent, String> {
        let stream = link::connect(address, &tcp_options())
            .await
            .map_err(|e| format!("{name}: cannot connect to {address}: {e}"))?;
        let conn = Connection::from(&stream);
        // Serve before registering: the stream must be drained for the Register reply to flow.
        let task = tokio::spawn(serve(stream, conn.clone(), units));
        let agent = FakeAgent { task };
        conn.call_method(
            Some(CONTROLLER_BUS_NAME),
            INTERNAL_CONTROLLER_PATH,
            Some(INTERNAL_CONTROLLER_IFACE),
            "Register",
            &(name,),
        )
        .await
        .map_err(|e| format!("{name}: Register refused: {e}"))?;
        Ok(agent)
    }
}

async fn serve(mut stream: zbus::MessageStream, conn: Connection, units: Arc<Vec<ListedUnit>>) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            m = stream.next() => match m {
                Some(Ok(m)) if m.message_type() == Type::MethodCall => {
                    answer(&conn, &m, &units).await;
                }
                Some(_) => {}
                None => return,
            },
            _ = beat.tick() => {
                let signal = Message::signal(INTERNAL_AGENT_PATH, INTERNAL_AGENT_IFACE, "Heartbeat")
                    .and_then(|b| b.build(&()));
                msg::send(&conn, signal).await;
            }
        }
    }
}

/// `ListUnits` gets the synthetic units, `ListUnitFiles` none; every other call (Subscribe,
/// Ping, proxy notifications) is acknowledged, which is all the controller needs from an idle
/// node.
async fn answer(conn: &Connection, m: &Message, units: &Arc<Vec<ListedUnit>>) {
    let hdr = m.header();
    let r = msg::route(m);
    match (r.iface.as_str(), r.member.as_str()) {
        (INTERNAL_AGENT_IFACE, "ListUnits") => msg::reply(conn, &hdr, units.as_ref()).await,
        (INTERNAL_AGENT_IFACE, "ListUnitFiles") => {
            let none: Vec<(String, String)> = Vec::new();
            msg::reply(conn, &hdr, &none).await
        }
        _ => msg::reply(conn, &hdr, &()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_units_are_distinct_and_valid() {
        let u = synthetic_units(3).unwrap();
        assert_eq!(u.len(), 3);
        assert_eq!(u[2].0, "synthetic-0002.service");
        assert_eq!(
            u[0].6.as_str(),
            "/org/freedesktop/systemd1/unit/synthetic_2d0000_2eservice"
        );
        assert_ne!(u[0].6, u[1].6);
    }

    /// A stand-in controller on the server side of the real handshake: the fake agent must
    /// register, beat, and answer `ListUnits` with its units.
    #[tokio::test]
    async fn registers_beats_and_lists_units() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let controller = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let limits = bluechi_core::wire_socket::LinkLimits::trusted();
            let mut stream = link::accept_tcp(sock, &tcp_options(), &link::new_guid(), "t", limits)
                .await
                .unwrap()
                .stream;
            let conn = Connection::from(&stream);
            let (mut registered, mut beat) = (None, false);
            while registered.is_none() || !beat {
                let m = tokio::time::timeout(Duration::from_secs(10), stream.next())
                    .await
                    .expect("agent went quiet")
                    .expect("link closed")
                    .unwrap();
                let r = msg::route(&m);
                match (m.message_type(), r.member.as_str()) {
                    (Type::MethodCall, "Register") => {
                        let (name,): (String,) = m.body().deserialize().unwrap();
                        msg::reply(&conn, &m.header(), &()).await;
                        registered = Some(name);
                    }
                    (Type::Signal, "Heartbeat") => beat = true,
                    _ => {}
                }
            }
            let reply = conn
                .call_method(
                    Some(AGENT_BUS_NAME),
                    INTERNAL_AGENT_PATH,
                    Some(INTERNAL_AGENT_IFACE),
                    "ListUnits",
                    &(),
                )
                .await
                .unwrap();
            let units: Vec<ListedUnit> = reply.body().deserialize().unwrap();
            (registered, units)
        });
        let address = format!("tcp:host=127.0.0.1,port={port}");
        let units = Arc::new(synthetic_units(3).unwrap());
        let _agent = FakeAgent::connect(&address, "fake007", units.clone())
            .await
            .unwrap();
        let (name, listed) = tokio::time::timeout(Duration::from_secs(20), controller)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(name.as_deref(), Some("fake007"));
        assert_eq!(listed, *units);
    }
}
