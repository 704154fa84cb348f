//! `list-units [NODE] [--filter=GLOB]`.

use bluechi_core::msg::ListedUnit;
use bluechi_core::ordered::OrderedDict;

use super::{CmdResult, Fail};
use crate::client::{body, Client};
use crate::glob;
use crate::output::{err, out};
use crate::table;

pub async fn run(client: &Client, node: Option<&String>, filter: Option<&str>) -> CmdResult {
    let per_node: Vec<(String, Vec<ListedUnit>)> = match node {
        Some(n) => {
            let units = match client.node_call(n, "ListUnits", &()).await {
                Ok(r) => body::<Vec<ListedUnit>>(&r),
                Err(e) => Err(e),
            };
            match units {
                Ok(u) => vec![(n.clone(), u)],
                Err(e) => return failed(&e.message),
            }
        }
        None => {
            let all = match client.controller_call("ListUnits", &()).await {
                Ok(r) => body::<OrderedDict<Vec<ListedUnit>>>(&r),
                Err(e) => Err(e),
            };
            match all {
                Ok(dict) => dict.0,
                Err(e) => return failed(&e.message),
            }
        }
    };
    let rows: Vec<Vec<String>> = per_node
        .into_iter()
        .flat_map(|(node, units)| {
            units
                .into_iter()
                .map(move |u| vec![node.clone(), u.0, u.3, u.4])
        })
        .collect();
    out(&table::padded_table(
        &["NODE", "ID", "ACTIVE", "SUB"],
        &[4, 2, 6, 3],
        &rows,
        |r| filter.is_none_or(|g| glob::matches(&r[1], g)),
    ));
    Ok(())
}

fn failed(message: &str) -> CmdResult {
    err(&format!("Failed to issue method call: {message}\n"));
    Err(Fail)
}
