//! `kill NODE UNIT [--kill-whom=all|main|control] [--signal=N]`.

use super::{CmdResult, Fail};
use crate::client::Client;
use crate::output::err;

const DEFAULT_WHOM: &str = "all";
const DEFAULT_SIGNAL: &str = "15";

/// A Linux signal number 1..=31, accepted like `strtol`: leading whitespace and a sign are
/// fine, anything after the digits is not.
fn parse_signal(s: &str) -> Option<i32> {
    let n: i32 = s
        .trim_start_matches(|c: char| c.is_ascii_whitespace())
        .parse()
        .ok()?;
    (1..=31).contains(&n).then_some(n)
}

pub async fn run(
    client: &Client,
    node: &str,
    unit: &str,
    whom: Option<&str>,
    signal: Option<&str>,
) -> CmdResult {
    let whom = whom.unwrap_or(DEFAULT_WHOM);
    if !["all", "main", "control"].contains(&whom) {
        err(&format!(
            "Value '{whom}' of option --kill-whom is invalid\n"
        ));
        return Err(Fail);
    }
    let signal = signal.unwrap_or(DEFAULT_SIGNAL);
    let Some(sig) = parse_signal(signal) else {
        err(&format!("Value '{signal}' of option --signal is invalid\n"));
        return Err(Fail);
    };
    match client.node_call(node, "KillUnit", &(unit, whom, sig)).await {
        Ok(_) => Ok(()),
        Err(e) => {
            err(&format!(
                "Failed to issue method call for KillUnit: {}\n",
                e.message
            ));
            Err(Fail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_signal;

    #[test]
    fn signal_range() {
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("32"), None);
        assert_eq!(parse_signal("KILL"), None);
        assert_eq!(parse_signal(" +9"), Some(9));
        assert_eq!(parse_signal("9 "), None);
        assert_eq!(parse_signal(""), None);
    }
}
