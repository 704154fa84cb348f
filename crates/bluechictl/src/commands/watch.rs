//! `status -w`: the node table or the unit table, redrawn on every change (spec §5.4.1/§5.4.2).

use bluechi_core::names::{NODE_IFACE, PROPERTIES_IFACE};
use bluechi_core::ordered::OrderedDict;
use futures_util::stream::{select_all, StreamExt};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::{Message, MessageStream};

use super::monitor::{subscribe_stream, MONITOR_IFACE};
use super::status::{format_usec, last_seen_usec, node_rows, units_table};
use super::{CmdResult, Fail};
use crate::client::{body, Client};
use crate::events::CLEAR_SCREEN;
use crate::output::{err, out};
use crate::presence::ControllerWatch;
use crate::signals;
use crate::table::{self, NodeRow};

pub async fn nodes(client: &Client, only: Option<&String>) -> CmdResult {
    let mut watch = ControllerWatch::start(client).await?;
    let mut rows = node_rows(client, only).await?;
    let mut streams = Vec::new();
    for (path, _) in &rows {
        let rule = signals::controller_rule(path, PROPERTIES_IFACE, Some("PropertiesChanged"));
        let stream = match rule {
            Ok(r) => MessageStream::for_match_rule(r, &client.conn, None).await,
            Err(e) => Err(e),
        };
        match stream {
            Ok(s) => streams.push(s),
            Err(e) => {
                err(&format!("Failed to add match rule for node status: {e}\n"));
                return Err(Fail);
            }
        }
    }
    redraw_nodes(&rows);
    let mut all = select_all(streams);
    let events = async {
        while let Some(Ok(m)) = all.next().await {
            if on_node_change(client, &mut rows, &m).await {
                redraw_nodes(&rows);
            }
        }
    };
    tokio::select! {
        _ = events => {}
        _ = signals::until_terminated() => {}
        fail = watch.fail_when_lost() => return Err(fail),
    }
    Ok(())
}

fn redraw_nodes(rows: &[(String, NodeRow)]) {
    let plain: Vec<NodeRow> = rows.iter().map(|(_, r)| r.clone()).collect();
    out(&format!("{CLEAR_SCREEN}{}", table::node_table(&plain)));
}

/// The first changed key must be `Status` (upstream reads only that one); true to redraw.
async fn on_node_change(client: &Client, rows: &mut [(String, NodeRow)], m: &Message) -> bool {
    let path = m.header().path().map(|p| p.to_string()).unwrap_or_default();
    let Ok((iface, changed, _)): Result<(String, OrderedDict<OwnedValue>, Vec<String>), _> =
        m.body().deserialize()
    else {
        return false;
    };
    if iface != NODE_IFACE {
        return false;
    }
    let status = match changed.0.first() {
        Some((k, v)) if k == "Status" => <&str>::try_from(v).ok().map(str::to_string),
        _ => None,
    };
    let Some(status) = status else {
        err("Received connection status change signal with missing 'Status' key.");
        return false;
    };
    let Some((_, row)) = rows.iter_mut().find(|(p, _)| *p == path) else {
        return false;
    };
    // Like upstream: without the timestamp the change is reported and not drawn.
    let usec = match last_seen_usec(client, &path).await {
        Ok(u) => u,
        Err(reason) => {
            err(&format!(
                "Failed to get last seen property of node {}: {reason}\n",
                row.name
            ));
            return false;
        }
    };
    let ip = client
        .property(&path, NODE_IFACE, "PeerIp")
        .await
        .ok()
        .and_then(|v| <&str>::try_from(&v).ok().map(str::to_string))
        .unwrap_or_default();
    row.last_seen = table::last_seen(&status, usec, format_usec);
    row.state = status;
    row.ip = ip;
    true
}

pub async fn units(client: &Client, node: &str, units: &[String]) -> CmdResult {
    let mut watch = ControllerWatch::start(client).await?;
    units_table(client, node, units).await?;
    let mut streams = Vec::new();
    for unit in units {
        let path = match client.controller_call("CreateMonitor", &()).await {
            Ok(r) => body::<OwnedObjectPath>(&r).map_err(|e| e.message),
            Err(e) => Err(e.message),
        };
        let path = path.map_err(|e| {
            err(&format!("Failed to create monitor: {e}\n"));
            Fail
        })?;
        streams.push(subscribe_stream(client, path.as_str(), Some("UnitStateChanged")).await?);
        if let Err(e) = client
            .call(
                path.as_str(),
                MONITOR_IFACE,
                "Subscribe",
                &(node, unit.as_str()),
            )
            .await
        {
            err(&format!("Failed to subscribe to monitor: {}\n", e.message));
            return Err(Fail);
        }
    }
    let mut all = select_all(streams);
    let events = async {
        while let Some(Ok(_)) = all.next().await {
            out(CLEAR_SCREEN);
            // A failed redraw has printed its error; keep watching for the next change.
            let _ = units_table(client, node, units).await;
        }
    };
    tokio::select! {
        _ = events => {}
        _ = signals::until_terminated() => {}
        fail = watch.fail_when_lost() => return Err(fail),
    }
    Ok(())
}
