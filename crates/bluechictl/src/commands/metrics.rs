//! `metrics enable|disable|listen`.

use futures_util::StreamExt;
use zbus::{Message, MessageStream};

use super::{CmdResult, Fail};
use crate::client::Client;
use crate::events;
use crate::output::{err, out};
use crate::presence::ControllerWatch;
use crate::signals;

const METRICS_PATH: &str = "/org/eclipse/bluechi/metrics";
const METRICS_IFACE: &str = "org.eclipse.bluechi.Metrics";

pub async fn run(client: &Client, sub: &str) -> CmdResult {
    match sub {
        "enable" => switch(client, "EnableMetrics").await,
        "disable" => switch(client, "DisableMetrics").await,
        "listen" => listen(client).await,
        other => {
            err(&format!("Unknown metrics command: {other}"));
            Err(Fail)
        }
    }
}

async fn switch(client: &Client, method: &str) -> CmdResult {
    match client.controller_call(method, &()).await {
        Ok(_) => {
            out("Done\n");
            Ok(())
        }
        Err(e) => {
            err(&format!("Failed to issue method call: {}\n", e.message));
            Err(Fail)
        }
    }
}

async fn listen(client: &Client) -> CmdResult {
    let mut watch = ControllerWatch::start(client).await?;
    let stream = match signals::controller_rule(METRICS_PATH, METRICS_IFACE, None) {
        Ok(r) => MessageStream::for_match_rule(r, &client.conn, None).await,
        Err(e) => Err(e),
    };
    let mut stream = stream.map_err(|e| {
        err(&format!(
            "Failed to add match rule for metrics signals: {e}\n"
        ));
        Fail
    })?;
    out("Waiting for metrics signals...\n");
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

fn render(m: &Message) -> Option<String> {
    let member = m.header().member()?.to_string();
    let b = m.body();
    match member.as_str() {
        "StartUnitJobMetrics" => {
            let (n, j, u, gross, net): (String, String, String, u64, u64) = b.deserialize().ok()?;
            Some(events::start_unit_job_metrics(&n, &j, &u, gross, net))
        }
        "AgentJobMetrics" => {
            let (n, u, meth, us): (String, String, String, u64) = b.deserialize().ok()?;
            Some(events::agent_job_metrics(&n, &u, &meth, us))
        }
        _ => None,
    }
}
