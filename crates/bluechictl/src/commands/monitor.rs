//! `monitor [NODE [UNIT1,UNIT2,...]]`: prints unit events until interrupted.

use bluechi_core::ordered::OrderedDict;
use futures_util::StreamExt;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::{Message, MessageStream};

use super::{CmdResult, Fail};
use crate::client::{body, Client};
use crate::events;
use crate::output::{err, out};
use crate::presence::ControllerWatch;
use crate::signals;

pub const MONITOR_IFACE: &str = "org.eclipse.bluechi.Monitor";

pub async fn run(client: &Client, args: &[String]) -> CmdResult {
    let node = args.first().map_or("*", String::as_str);
    let units = events::split_units(args.get(1));
    let mut watch = ControllerWatch::start(client).await?;
    let path = match client.controller_call("CreateMonitor", &()).await {
        Ok(r) => body::<OwnedObjectPath>(&r).map_err(|e| e.message),
        Err(e) => Err(e.message),
    };
    let path = path.map_err(|e| {
        err(&format!("Failed to create monitor: {e}\n"));
        Fail
    })?;
    out(&format!("Monitor path: {}\n", path.as_str()));
    let mut stream = subscribe_stream(client, path.as_str(), None).await?;
    for u in &units {
        out(&format!("Subscribing to node '{node}' and unit '{u}'\n"));
    }
    if let Err(e) = client
        .call(
            path.as_str(),
            MONITOR_IFACE,
            "SubscribeList",
            &(node, &units),
        )
        .await
    {
        err(&format!("Failed to subscribe to monitor: {}\n", e.message));
        return Err(Fail);
    }
    let events = async {
        while let Some(Ok(m)) = stream.next().await {
            if let Some(text) = render(&m) {
                out(&text);
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

/// The stream of one monitor's signals (all, or one member).
pub async fn subscribe_stream(
    client: &Client,
    path: &str,
    member: Option<&str>,
) -> Result<MessageStream, Fail> {
    let rule = signals::controller_rule(path, MONITOR_IFACE, member);
    let stream = match rule {
        Ok(r) => MessageStream::for_match_rule(r, &client.conn, None).await,
        Err(e) => Err(e),
    };
    stream.map_err(|e| {
        err(&format!("Failed to subscribe to monitor: {e}\n"));
        Fail
    })
}

fn render(m: &Message) -> Option<String> {
    let member = m.header().member()?.to_string();
    let b = m.body();
    match member.as_str() {
        "UnitNew" => {
            let (n, u, r): (String, String, String) = b.deserialize().ok()?;
            Some(events::unit_new(&n, &u, &r))
        }
        "UnitRemoved" => {
            let (n, u, r): (String, String, String) = b.deserialize().ok()?;
            Some(events::unit_removed(&n, &u, &r))
        }
        "UnitStateChanged" => {
            let (n, u, a, s, r): (String, String, String, String, String) = b.deserialize().ok()?;
            Some(events::unit_state_changed(&n, &u, &a, &s, &r))
        }
        "UnitPropertiesChanged" => {
            let (n, u, i, props): (String, String, String, OrderedDict<OwnedValue>) =
                b.deserialize().ok()?;
            let strings: Vec<(String, String)> = props
                .0
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), <&str>::try_from(v).ok()?.to_string())))
                .collect();
            Some(events::unit_properties_changed(&n, &u, &i, &strings))
        }
        _ => None,
    }
}
