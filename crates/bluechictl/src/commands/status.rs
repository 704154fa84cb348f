//! `status [NODE [UNIT...]]`: the node table or the unit table.

use std::collections::HashMap;

use bluechi_core::names::NODE_IFACE;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use super::{CmdResult, Fail};
use crate::client::{body, CallError, Client};
use crate::output::{err, out};
use crate::table::{self, NodeRow, UnitInfo};
use bluechi_core::errno;

pub async fn run(client: &Client, args: &[String], watch: bool) -> CmdResult {
    if watch {
        return match args {
            [] => super::watch::nodes(client, None).await,
            [node] => super::watch::nodes(client, Some(node)).await,
            [node, units @ ..] => super::watch::units(client, node, units).await,
        };
    }
    match args {
        [] => nodes(client, None).await,
        [node] => nodes(client, Some(node)).await,
        [node, units @ ..] => units_table(client, node, units).await,
    }
}

async fn nodes(client: &Client, only: Option<&String>) -> CmdResult {
    let rows = node_rows(client, only).await?;
    let rows: Vec<NodeRow> = rows.into_iter().map(|(_, r)| r).collect();
    out(&table::node_table(&rows));
    Ok(())
}

/// The rows of the node table with each node's object path; errors are already printed.
pub async fn node_rows(
    client: &Client,
    only: Option<&String>,
) -> Result<Vec<(String, NodeRow)>, Fail> {
    let reply = client
        .controller_call("ListNodes", &())
        .await
        .map_err(|e| {
            err(&format!("Failed to list nodes: {}\n", e.message));
            Fail
        })?;
    let list: Vec<(String, OwnedObjectPath, String, String)> = body(&reply).map_err(|_| {
        err("Failed to read node information: Invalid argument\n");
        Fail
    })?;
    let mut rows = Vec::new();
    for (name, path, state, ip) in list {
        if only.is_some_and(|n| *n != name) {
            continue;
        }
        let mut usec = 0;
        if state == "offline" {
            usec = last_seen_usec(client, path.as_str())
                .await
                .map_err(|reason| {
                    err(&format!(
                        "Failed to get last seen property of node {name}: {reason}\n"
                    ));
                    Fail
                })?;
        }
        let last_seen = table::last_seen(&state, usec, format_usec);
        rows.push((
            path.to_string(),
            NodeRow {
                name,
                state,
                ip,
                last_seen,
            },
        ));
    }
    if let (Some(n), true) = (only, rows.is_empty()) {
        err(&format!("Node {n} not found\n"));
        return Err(Fail);
    }
    Ok(rows)
}

pub async fn last_seen_usec(client: &Client, path: &str) -> Result<u64, String> {
    let value = client
        .property(path, NODE_IFACE, "LastSeenTimestamp")
        .await
        .map_err(|e| e.strerror())?;
    u64::try_from(&value).map_err(|_| errno::strerror(libc::ENXIO))
}

pub fn format_usec(usec: u64) -> String {
    let secs = i64::try_from(usec / 1_000_000).unwrap_or(i64::MAX);
    let millis = ((usec % 1_000_000) / 1000) as u32;
    bluechi_core::logging::format_local_time(secs, millis, "%Y-%m-%d %H:%M:%S", true)
}

pub async fn units_table(client: &Client, node: &str, units: &[String]) -> CmdResult {
    let width = table::name_width(units);
    out(&table::unit_header(width));
    for unit in units {
        if let Err(reason) = one_unit(client, node, unit, width).await {
            err(&format!(
                "Failed to get status of unit {unit} on node {node} - {reason}\n"
            ));
            return Err(Fail);
        }
    }
    Ok(())
}

/// Prints one row; on failure returns the strerror text for the final message.
async fn one_unit(client: &Client, node: &str, unit: &str, width: usize) -> Result<(), String> {
    let reply = client
        .node_call(node, "GetUnitProperties", &(unit, ""))
        .await
        .map_err(|e: CallError| {
            err(&format!("Failed to issue call: {}\n", e.message));
            e.strerror()
        })?;
    let props: HashMap<String, OwnedValue> = body(&reply).map_err(|_| {
        err("Failed to open the strings array container: Invalid argument\n");
        errno::strerror(libc::EINVAL)
    })?;
    let info = unit_info(&props).map_err(|member| {
        err("Currently only string types are expected\n");
        err(&format!(
            "Failed to get the value for member {member} - Invalid argument\n"
        ));
        err("Failed to parse the response strings array: (null)\n");
        errno::strerror(libc::EINVAL)
    })?;
    match table::unit_row(&info, width) {
        Some(row) => out(&row),
        None => err(&table::unit_not_found(&info)),
    }
    Ok(())
}

/// Picks the six displayed properties; a non-string one is an error naming the member.
fn unit_info(props: &HashMap<String, OwnedValue>) -> Result<UnitInfo, &'static str> {
    let get = |key: &'static str| -> Result<Option<String>, &'static str> {
        match props.get(key) {
            None => Ok(None),
            Some(v) => match <&str>::try_from(v) {
                Ok("") => Ok(None),
                Ok(s) => Ok(Some(s.to_string())),
                Err(_) => Err(key),
            },
        }
    };
    Ok(UnitInfo {
        id: get("Id")?,
        load_state: get("LoadState")?,
        active_state: get("ActiveState")?,
        freezer_state: get("FreezerState")?,
        sub_state: get("SubState")?,
        unit_file_state: get("UnitFileState")?,
    })
}
