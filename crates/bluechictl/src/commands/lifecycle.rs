//! `start|stop|restart|reload NODE UNIT`: issue the job and wait for its `JobRemoved`.

use bluechi_core::names::{CONTROLLER_BUS_NAME, CONTROLLER_IFACE, CONTROLLER_PATH};
use futures_util::StreamExt;
use zbus::message::Type;
use zbus::zvariant::OwnedObjectPath;
use zbus::{MatchRule, MessageStream};

use super::{CmdResult, Fail};
use crate::client::{body, Client};
use crate::output::{err, out};
use crate::presence::ControllerWatch;

/// Room for unrelated jobs finishing while we wait, so ours is never pushed out of the queue.
const QUEUE: usize = 4096;

pub async fn run(client: &Client, node: &str, unit: &str, method: &str) -> CmdResult {
    // Watched from before the call: a controller killed mid-job never sends JobRemoved.
    let mut watch = ControllerWatch::start(client).await?;
    // The match is registered before the call so a JobRemoved racing the reply is buffered.
    let mut stream = match job_removed_stream(client).await {
        Ok(s) => s,
        Err(_) => {
            err("Failed to match signal\n");
            return Err(Fail);
        }
    };
    let reply = match client.node_call(node, method, &(unit, "replace")).await {
        Ok(r) => r,
        Err(e) => {
            err(&format!("Failed to issue method call: {}\n", e.message));
            return Err(Fail);
        }
    };
    let job: OwnedObjectPath = match body::<OwnedObjectPath>(&reply) {
        Ok(j) => j,
        Err(_) => {
            err("Failed to parse response message: Invalid argument\n");
            return Err(Fail);
        }
    };
    tokio::select! {
        done = wait_for_job(&mut stream, &job, method) => done,
        fail = watch.fail_when_lost() => Err(fail),
    }
}

/// Prints the result of `job` when its `JobRemoved` arrives.
async fn wait_for_job(
    stream: &mut MessageStream,
    job: &OwnedObjectPath,
    method: &str,
) -> CmdResult {
    while let Some(msg) = stream.next().await {
        let Ok(msg) = msg else { continue };
        match msg
            .body()
            .deserialize::<(u32, OwnedObjectPath, String, String, String)>()
        {
            Ok((_, path, _node, unit, result)) if path == *job => {
                out(&format!(
                    "Unit {unit} {method} operation result: {result}\n"
                ));
                return Ok(());
            }
            Ok(_) => {}
            Err(_) => err("Can't parse job result\n"),
        }
    }
    // The bus went away before the job finished.
    Err(Fail)
}

async fn job_removed_stream(client: &Client) -> zbus::Result<MessageStream> {
    let rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .sender(CONTROLLER_BUS_NAME)?
        .path(CONTROLLER_PATH)?
        .interface(CONTROLLER_IFACE)?
        .member("JobRemoved")?
        .build();
    MessageStream::for_match_rule(rule, &client.conn, Some(QUEUE)).await
}
