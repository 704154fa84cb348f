//! The controller under fleet load: many fake nodes registered, and `Controller.ListUnits`
//! fanning out to all of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bluechi_testkit::poll::{self, Step};
use zbus::Connection;

use crate::cluster::Cluster;
use bluechi_core::msg::ListedUnit;

use crate::fake_agent::FakeAgent;

pub fn node_names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("fake{i:03}")).collect()
}

/// Registers one fake agent per name; returns once the controller reports all of them (and the
/// real `main` node) online.
pub async fn connect_all(
    cluster: &Cluster,
    names: &[String],
    units: Arc<Vec<ListedUnit>>,
) -> Result<Vec<FakeAgent>, String> {
    let address = cluster.controller_address().await?;
    let mut agents = Vec::with_capacity(names.len());
    for name in names {
        agents.push(FakeAgent::connect(&address, name, units.clone()).await?);
    }
    let want = names.len() + 1;
    poll::until(
        "every node to be online",
        Duration::from_secs(15),
        || async {
            match cluster.online_nodes().await {
                Ok(online) if online == want => Step::Done(()),
                Ok(online) => Step::Pending(format!("{online} of {want} nodes online")),
                Err(e) => Step::Fail(e),
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(agents)
}

/// One `Controller.ListUnits` round trip (until the reply is received, not decoded) and the
/// reply itself.
pub async fn list_units(bus: &Connection) -> Result<(Duration, zbus::Message), String> {
    let start = Instant::now();
    let reply = bus
        .call_method(
            Some("org.eclipse.bluechi"),
            "/org/eclipse/bluechi",
            Some("org.eclipse.bluechi.Controller"),
            "ListUnits",
            &(),
        )
        .await
        .map_err(|e| format!("Controller.ListUnits: {e}"))?;
    Ok((start.elapsed(), reply))
}

/// Nodes in a `ListUnits` reply and units over all of them, to prove the fan-out was complete.
pub fn count_units(reply: &zbus::Message) -> Result<(usize, usize), String> {
    let by_node: HashMap<String, Vec<ListedUnit>> = reply
        .body()
        .deserialize()
        .map_err(|e| format!("ListUnits reply: {e}"))?;
    Ok((by_node.len(), by_node.values().map(Vec::len).sum()))
}
