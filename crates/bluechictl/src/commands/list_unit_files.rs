//! `list-unit-files [NODE] [--filter=GLOB]`.

use bluechi_core::ordered::OrderedDict;

use super::{CmdResult, Fail};
use crate::client::{body, Client};
use crate::glob;
use crate::output::{err, out};
use crate::table;

pub async fn run(client: &Client, node: Option<&String>, filter: Option<&str>) -> CmdResult {
    let per_node: Vec<(String, Vec<(String, String)>)> = match node {
        Some(n) => {
            let files = match client.node_call(n, "ListUnitFiles", &()).await {
                Ok(r) => body::<Vec<(String, String)>>(&r),
                Err(e) => Err(e),
            };
            match files {
                Ok(f) => vec![(n.clone(), f)],
                Err(e) => return failed(&e.message),
            }
        }
        None => {
            let all = match client.controller_call("ListUnitFiles", &()).await {
                Ok(r) => body::<OrderedDict<Vec<(String, String)>>>(&r),
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
        .flat_map(|(node, files)| {
            files
                .into_iter()
                .map(move |(path, state)| vec![node.clone(), path, state])
        })
        .collect();
    out(&table::padded_table(
        &["NODE", "PATH", "IS-ENABLED"],
        &[4, 4, 10],
        &rows,
        |r| filter.is_none_or(|g| glob::matches(&r[1], g)),
    ));
    Ok(())
}

fn failed(message: &str) -> CmdResult {
    err(&format!("Failed to issue method call: {message}\n"));
    Err(Fail)
}
