//! `is-enabled NODE UNIT`: prints the unit file state; exit 0 only for enabled-like states.

use super::{CmdResult, Fail};
use crate::client::{body, Client};
use crate::output::{err, out};

const ENABLED: &[&str] = &[
    "enabled",
    "enabled-runtime",
    "static",
    "alias",
    "indirect",
    "generated",
];

pub async fn run(client: &Client, node: &str, unit: &str) -> CmdResult {
    let state = match client.node_call(node, "GetUnitFileState", &(unit,)).await {
        Ok(reply) => body::<String>(&reply),
        Err(e) => Err(e),
    };
    match state {
        Ok(state) => {
            out(&format!("{state}\n"));
            if ENABLED.contains(&state.as_str()) {
                Ok(())
            } else {
                Err(Fail)
            }
        }
        Err(e) => {
            err(&format!("Failed to issue method call: {}\n", e.message));
            Err(Fail)
        }
    }
}
