//! Commands that make one call and print nothing on success: `daemon-reload`, `set-loglevel`.

use super::{CmdResult, Fail};
use crate::client::{CallError, Client};
use crate::output::err;

fn report(r: Result<zbus::message::Message, CallError>) -> CmdResult {
    r.map(|_| ()).map_err(|e| {
        err(&format!("Failed to issue method call: {}\n", e.message));
        Fail
    })
}

pub async fn daemon_reload(client: &Client, node: &str) -> CmdResult {
    report(client.node_call(node, "Reload", &()).await)
}

pub async fn set_loglevel(client: &Client, args: &[String]) -> CmdResult {
    match args {
        [level] => report(
            client
                .controller_call("SetLogLevel", &(level.as_str(),))
                .await,
        ),
        [node, level, ..] => report(
            client
                .node_call(node, "SetLogLevel", &(level.as_str(),))
                .await,
        ),
        [] => Err(Fail),
    }
}
