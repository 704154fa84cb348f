//! `reset-failed [NODE [UNIT...]]`.

use zbus::zvariant::OwnedObjectPath;

use super::{CmdResult, Fail};
use crate::client::{body, Client};
use crate::output::{err, out};

pub async fn run(client: &Client, args: &[String]) -> CmdResult {
    match args {
        [] => all_nodes(client).await,
        [node] => node_only(client, node).await,
        [node, units @ ..] => some_units(client, node, units).await,
    }
}

async fn node_only(client: &Client, node: &str) -> CmdResult {
    client
        .node_call(node, "ResetFailed", &())
        .await
        .map(|_| ())
        .map_err(|e| {
            err(&format!(
                "Couldn't reset failed state of all units on node '{node}': {}\n",
                e.message
            ));
            Fail
        })
}

async fn all_nodes(client: &Client) -> CmdResult {
    let reply = client
        .controller_call("ListNodes", &())
        .await
        .map_err(|e| {
            err(&format!("Failed to issue method call: {}\n", e.message));
            Fail
        })?;
    let nodes: Vec<(String, OwnedObjectPath, String, String)> = body(&reply).map_err(|_| {
        err("Failed to read node information: Invalid argument\n");
        Fail
    })?;
    // Upstream's exit code reflects only the last node.
    let mut last = Ok(());
    for (name, ..) in nodes {
        last = node_only(client, &name).await;
    }
    last
}

async fn some_units(client: &Client, node: &str, units: &[String]) -> CmdResult {
    for (i, unit) in units.iter().enumerate() {
        out(&format!("{} {unit}\n", i + 1));
        if let Err(e) = client
            .node_call(node, "ResetFailedUnit", &(unit.as_str(),))
            .await
        {
            err(&format!("Failed to issue method call: {}\n", e.message));
            return Err(Fail);
        }
    }
    Ok(())
}
