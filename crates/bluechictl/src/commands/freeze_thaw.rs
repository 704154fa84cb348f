//! `freeze|thaw NODE UNIT`.

use super::{CmdResult, Fail};
use crate::client::Client;
use crate::output::{err, out};

pub async fn run(client: &Client, node: &str, unit: &str, method: &str, verb: &str) -> CmdResult {
    match client.node_call(node, method, &(unit,)).await {
        Ok(_) => {
            out(&format!("Unit {unit} {verb} operation done\n"));
            Ok(())
        }
        Err(e) => {
            err(&format!("Failed to issue method call: {}\n", e.message));
            Err(Fail)
        }
    }
}
