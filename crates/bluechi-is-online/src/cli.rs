//! Command line of `bluechi-is-online` (spec §6.7). Parsed by hand: the commands are bare words
//! (`help`, `version`) next to options, which a derive parser would turn into surprises.

use bluechi_core::names::*;

pub const USAGE: &str = "\
Usage: bluechi-is-online COMMAND [OPTIONS]

Commands:
  agent            is the agent on this node connected to its controller?
  node NAME        is node NAME connected to the controller?
  system           are all nodes connected to the controller (status \"up\")?
  help             print this text
  version          print the version

Options:
  -w, --wait=MS            wait up to MS milliseconds for the target to come online
  -m, --monitor            keep running while online; exit when it goes offline
  -s, --switch-timeout=MS  (agent) after a controller switch, tolerate one offline state
                           for up to MS milliseconds
  -h, --help               print this text

Exit status: 0 online, 1 offline, 2 usage error.
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Agent,
    Node(String),
    System,
}

impl Target {
    pub fn bus_name(&self) -> &'static str {
        match self {
            Target::Agent => AGENT_BUS_NAME,
            Target::Node(_) | Target::System => CONTROLLER_BUS_NAME,
        }
    }

    pub fn path(&self) -> String {
        match self {
            Target::Agent => AGENT_PATH.to_string(),
            Target::Node(n) => node_path(n),
            Target::System => CONTROLLER_PATH.to_string(),
        }
    }

    pub fn interface(&self) -> &'static str {
        match self {
            Target::Agent => AGENT_IFACE,
            Target::Node(_) => NODE_IFACE,
            Target::System => CONTROLLER_IFACE,
        }
    }

    /// Whether `status` counts as online; a degraded system does not.
    pub fn is_online_status(&self, status: &str) -> bool {
        match self {
            Target::Agent | Target::Node(_) => status == "online",
            Target::System => status == "up",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    pub wait_ms: u64,
    pub monitor: bool,
    pub switch_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Help,
    Version,
    Check(Target, Options),
}

/// Parses the arguments after the program name. The error is the message for stderr.
pub fn parse<I, S>(args: I) -> Result<Action, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut words = Vec::new();
    let mut opts = Options::default();
    let mut switch_given = false;
    let mut it = args.into_iter().map(Into::into);
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Action::Help);
        }
        if let Some((name, inline)) = option_parts(&arg) {
            match name {
                "monitor" => {
                    if inline.is_some() {
                        return Err("option --monitor takes no value".into());
                    }
                    opts.monitor = true;
                }
                "wait" | "switch-timeout" => {
                    let value = match inline {
                        Some(v) => v.to_string(),
                        None => it
                            .next()
                            .ok_or_else(|| format!("option --{name} needs a value"))?,
                    };
                    let ms = parse_ms(name, &value)?;
                    if name == "wait" {
                        opts.wait_ms = ms;
                    } else {
                        opts.switch_timeout_ms = ms;
                        switch_given = true;
                    }
                }
                _ => return Err(format!("unknown option '{arg}'")),
            }
            continue;
        }
        words.push(arg);
    }
    let action = match words.first().map(String::as_str) {
        None => return Err("no command given".into()),
        Some("help") => Action::Help,
        Some("version") => Action::Version,
        Some("agent") => Action::Check(Target::Agent, opts.clone()),
        Some("system") => Action::Check(Target::System, opts.clone()),
        Some("node") => match words.get(1) {
            Some(n) if !n.is_empty() => Action::Check(Target::Node(n.clone()), opts.clone()),
            _ => return Err("command 'node' needs a node name".into()),
        },
        Some(other) => return Err(format!("unknown command '{other}'")),
    };
    let expected_words = if matches!(action, Action::Check(Target::Node(_), _)) {
        2
    } else {
        1
    };
    if let Some(extra) = words.get(expected_words) {
        return Err(format!("unexpected argument '{extra}'"));
    }
    if switch_given && !matches!(action, Action::Check(Target::Agent, _)) {
        return Err("option --switch-timeout is only valid with the 'agent' command".into());
    }
    Ok(action)
}

/// Splits `--name[=value]` and the short forms `-w`/`-m`/`-s` (value in the next argument or
/// attached, as in `-w500`). `None` for anything that is not an option.
fn option_parts(arg: &str) -> Option<(&str, Option<&str>)> {
    if let Some(long) = arg.strip_prefix("--") {
        return Some(match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        });
    }
    let short = arg.strip_prefix('-')?;
    let mut chars = short.chars();
    let name = match chars.next()? {
        'w' => "wait",
        'm' => "monitor",
        's' => "switch-timeout",
        _ => short,
    };
    let rest = chars.as_str();
    Some((name, (!rest.is_empty()).then_some(rest)))
}

fn parse_ms(option: &str, value: &str) -> Result<u64, String> {
    value.parse::<u64>().map_err(|_| {
        format!("invalid value '{value}' for --{option}: expected milliseconds (a non-negative integer)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str]) -> (Target, Options) {
        match parse(args.iter().copied()) {
            Ok(Action::Check(t, o)) => (t, o),
            other => panic!("{args:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn commands() {
        assert_eq!(check(&["agent"]).0, Target::Agent);
        assert_eq!(check(&["system"]).0, Target::System);
        assert_eq!(
            check(&["node", "worker1"]).0,
            Target::Node("worker1".into())
        );
        assert_eq!(parse(["help"]), Ok(Action::Help));
        assert_eq!(parse(["version"]), Ok(Action::Version));
        assert_eq!(parse(["agent", "--help"]), Ok(Action::Help));
        assert_eq!(parse(["-h"]), Ok(Action::Help));
    }

    #[test]
    fn options_in_every_spelling() {
        let want = Options {
            wait_ms: 500,
            monitor: true,
            switch_timeout_ms: 2000,
        };
        for args in [
            &["agent", "--wait=500", "--monitor", "--switch-timeout=2000"][..],
            &["--wait", "500", "-m", "agent", "-s", "2000"][..],
            &["-w500", "agent", "-s2000", "--monitor"][..],
        ] {
            assert_eq!(check(args), (Target::Agent, want.clone()), "{args:?}");
        }
        assert_eq!(check(&["system"]).1, Options::default());
        assert_eq!(
            check(&["node", "n1", "--wait=0"]).1,
            Options::default(),
            "an explicit 0 means no waiting"
        );
    }

    #[test]
    fn usage_errors_name_the_problem() {
        let err = |args: &[&str]| parse(args.iter().copied()).unwrap_err();
        assert_eq!(err(&[]), "no command given");
        assert_eq!(err(&["nodes"]), "unknown command 'nodes'");
        assert_eq!(err(&["node"]), "command 'node' needs a node name");
        assert_eq!(err(&["agent", "extra"]), "unexpected argument 'extra'");
        assert_eq!(err(&["node", "a", "b"]), "unexpected argument 'b'");
        assert!(err(&["agent", "--wait=soon"]).contains("invalid value 'soon' for --wait"));
        assert!(err(&["agent", "--wait=-1"]).contains("invalid value '-1'"));
        assert_eq!(err(&["agent", "--wait"]), "option --wait needs a value");
        assert_eq!(
            err(&["agent", "--monitor=yes"]),
            "option --monitor takes no value"
        );
        assert_eq!(err(&["agent", "--verbose"]), "unknown option '--verbose'");
        assert_eq!(
            err(&["system", "--switch-timeout=10"]),
            "option --switch-timeout is only valid with the 'agent' command"
        );
    }

    #[test]
    fn targets_map_to_the_contract() {
        let n = Target::Node("node-foo".into());
        assert_eq!(n.bus_name(), "org.eclipse.bluechi");
        assert_eq!(n.path(), "/org/eclipse/bluechi/node/node_2dfoo");
        assert_eq!(n.interface(), "org.eclipse.bluechi.Node");
        assert_eq!(Target::Agent.bus_name(), "org.eclipse.bluechi.Agent");
        assert_eq!(Target::Agent.interface(), "org.eclipse.bluechi.Agent");
        assert_eq!(Target::System.path(), "/org/eclipse/bluechi");
        assert!(Target::System.is_online_status("up"));
        assert!(!Target::System.is_online_status("degraded"));
        assert!(!Target::System.is_online_status("online"));
        assert!(Target::Agent.is_online_status("online"));
        assert!(!n.is_online_status("offline"));
    }
}
