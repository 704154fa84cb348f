//! `enable NODE UNIT...` and `disable NODE UNIT...`; upstream reports changes on stderr.

use super::{node_simple, CmdResult, Fail};
use crate::args::{OptKey, Parsed};
use crate::client::{body, CallError, Client};
use crate::output::err;

type Changes = Vec<(String, String, String)>;

fn print_changes(changes: &Changes) {
    for (kind, file, dest) in changes {
        match kind.as_str() {
            "symlink" => err(&format!("Created symlink {file} -> {dest}\n")),
            "unlink" => err(&format!("Removed \"{file}\".\n")),
            other => err(&format!("Unknown operation: {other}\n")),
        }
    }
}

fn call_failed(e: &CallError, verb: &str, node: &str) {
    err(&format!("Failed to issue call: {}\n", e.message));
    err(&format!(
        "Failed to {verb} the units on node [{node}] - {}",
        e.strerror()
    ));
}

pub async fn enable(client: &Client, args: &[String], p: &Parsed) -> CmdResult {
    let (node, units) = (&args[0], &args[1..]);
    let reply = match client
        .node_call(
            node,
            "EnableUnitFiles",
            &(units, p.has(OptKey::Runtime), p.has(OptKey::Force)),
        )
        .await
    {
        Ok(r) => body::<(bool, Changes)>(&r),
        Err(e) => Err(e),
    };
    match reply {
        Ok((carries_install_info, changes)) => {
            err(if carries_install_info {
                "The unit files included enablement information\n"
            } else {
                "The unit files did not include any enablement information\n"
            });
            print_changes(&changes);
        }
        Err(e) => {
            call_failed(&e, "enable", node);
            return Err(Fail);
        }
    }
    if p.has(OptKey::NoReload) {
        return Ok(());
    }
    node_simple::daemon_reload(client, node).await
}

pub async fn disable(client: &Client, args: &[String], p: &Parsed) -> CmdResult {
    let (node, units) = (&args[0], &args[1..]);
    let reply = match client
        .node_call(node, "DisableUnitFiles", &(units, false))
        .await
    {
        Ok(r) => body::<Changes>(&r),
        Err(e) => Err(e),
    };
    let mut result = match reply {
        Ok(changes) => {
            print_changes(&changes);
            Ok(())
        }
        Err(e) => {
            call_failed(&e, "disable", node);
            Err(Fail)
        }
    };
    // Upstream still reloads after a failed disable, and the reload decides the exit code.
    if !p.has(OptKey::NoReload) {
        result = node_simple::daemon_reload(client, node).await;
    }
    result
}
