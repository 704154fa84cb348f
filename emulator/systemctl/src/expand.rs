//! Unit arguments to unit names: plain names are mangled, glob patterns expand to the loaded
//! units they match (systemctl never expands them against unit files).

use crate::conn::{CallError, ListedUnit, Manager};
use crate::{fmt, names};

pub fn is_glob(arg: &str) -> bool {
    arg.contains(['*', '?', '['])
}

/// The unit names `args` stand for, and whether any of them was a pattern.
pub async fn expand(m: &Manager, args: &[String]) -> Result<(Vec<String>, bool), CallError> {
    let (globs, plain): (Vec<&String>, Vec<&String>) = args.iter().partition(|a| is_glob(a));
    let mut out: Vec<String> = plain.iter().map(|a| names::mangle(a)).collect();
    if globs.is_empty() {
        return Ok((out, false));
    }
    let (list,): (Vec<ListedUnit>,) = m.manager("ListUnits", &()).await?;
    let mut matched: Vec<String> = list
        .into_iter()
        .map(|u| u.0)
        .filter(|name| globs.iter().any(|g| fmt::glob(g, name)))
        .collect();
    matched.sort_by(|a, b| (names::unit_type(a), a).cmp(&(names::unit_type(b), b)));
    for name in matched {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok((out, true))
}
