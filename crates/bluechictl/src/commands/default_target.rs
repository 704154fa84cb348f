//! `get-default NODE` and `set-default NODE TARGET`.

use super::{CmdResult, Fail};
use crate::client::{body, Client};
use crate::glob;
use crate::output::{err, out};

pub async fn get(client: &Client, node: &str) -> CmdResult {
    let target = match client.node_call(node, "GetDefaultTarget", &()).await {
        Ok(reply) => body::<String>(&reply),
        Err(e) => Err(e),
    };
    match target {
        Ok(t) => {
            out(&format!("{t}\n"));
            Ok(())
        }
        Err(e) => {
            err(&format!("Failed to issue method call: {}\n", e.message));
            Err(Fail)
        }
    }
}

pub async fn set(client: &Client, node: &str, target: &str) -> CmdResult {
    if !glob::matches(target, "*target") {
        // Upstream reports this but still exits 0.
        err(&format!("Error: Unit '{target}' is not a target unit\n"));
        return Ok(());
    }
    let changes = match client
        .node_call(node, "SetDefaultTarget", &(target, true))
        .await
    {
        Ok(reply) => body::<Vec<(String, String, String)>>(&reply),
        Err(e) => Err(e),
    };
    match changes {
        Ok(list) => {
            let mut s = String::from("[");
            for (kind, file, dest) in list {
                s.push_str(&format!("({kind} {file} {dest}),"));
            }
            s.push_str("]\n");
            out(&s);
            Ok(())
        }
        Err(e) => {
            err(&format!("Failed to issue method call: {}\n", e.message));
            Err(Fail)
        }
    }
}
