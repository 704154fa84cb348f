//! The command line of `bluechi-is-online` (spec §6.7) with upstream's command table, usage
//! text, messages and exit codes: every usage error exits 1.

use bluechi_core::names::*;

use crate::getopt::{self, Key, Parsed};

/// Upstream's usage text, printed on stdout for help and after parse errors.
pub const USAGE: &str = "\
bluechi-is-online checks and monitors the connection state of BlueChi components

Usage: 
  bluechi-is-online [agent|node|system] [OPTIONS]

Available commands:
  help: \t shows this help message
  version: \t shows the version of bluechi-is-online
  agent: \t on the agent machine check and/or monitor the connection of the agent to the controller
  node [name]: \t on the controller machine check and/or monitor the connection of the given node to the controller
  system: \t on the controller machine check and/or monitor the connection of all nodes to the controller
Available options:
  --monitor: \t\t keeps monitoring as long as [agent|node|system] is online and exits if it detects an offline state.
  --wait: \t\t Wait n milliseconds for [agent|node|system] to get online.
  --switch-timeout: \t Only for [agent]. Wait n milliseconds for after switching controller to get online again.
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
    /// Print [`USAGE`] on stdout and exit 0.
    Help,
    Version,
    Check(Target, Options),
}

/// A usage error: `stderr` is printed as is, then the usage on stdout when `usage`; exit 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stderr: String,
    pub usage: bool,
}

fn fail(stderr: String, usage: bool) -> Failure {
    Failure { stderr, usage }
}

/// (name, min args, max args, accepted options), upstream's table.
const METHODS: &[(&str, usize, usize, &[Key])] = &[
    ("help", 0, 0, &[]),
    ("version", 0, 0, &[]),
    (
        "agent",
        0,
        0,
        &[Key::Monitor, Key::Wait, Key::SwitchTimeout],
    ),
    ("node", 1, 1, &[Key::Monitor, Key::Wait]),
    ("system", 0, 0, &[Key::Monitor, Key::Wait]),
];

/// Parses `argv` (including argv[0]) the way upstream does, in its order of checks.
pub fn parse(argv: &[String], posixly_correct: bool) -> Result<Action, Failure> {
    let p = getopt::parse(argv, posixly_correct).map_err(|e| fail(e, true))?;
    let Some(name) = p.positional.first() else {
        if p.help {
            return Ok(Action::Help);
        }
        return Err(fail("No command given\n".into(), true));
    };
    let Some(&(name, min, max, accepted)) = METHODS.iter().find(|m| m.0 == name) else {
        return Err(fail(format!("Method {name} not found\n"), true));
    };
    if p.help {
        return Ok(Action::Help);
    }
    let args = &p.positional[1..];
    if args.len() < min {
        return Err(fail(
            format!("Too few arguments for method {name}\n"),
            false,
        ));
    }
    if args.len() > max {
        return Err(fail(
            format!("Too many arguments for method {name}\n"),
            false,
        ));
    }
    if let Some((key, _)) = p.options.iter().find(|(k, _)| !accepted.contains(k)) {
        let opt = key.long_name();
        let msg = format!("Unsupported option '{opt}' for method '{name}'\n");
        return Err(fail(msg, false));
    }
    let target = match name {
        "help" => return Ok(Action::Help),
        "version" => return Ok(Action::Version),
        "agent" => Target::Agent,
        "node" => Target::Node(args[0].clone()),
        _ => Target::System,
    };
    Ok(Action::Check(target, options(&p)?))
}

/// `--wait` and `--switch-timeout` are read like `strtol` (whole string, sign allowed); a
/// value ≤ 0 means "off", as upstream only acts on values > 0.
fn options(p: &Parsed) -> Result<Options, Failure> {
    let ms = |key: Key| -> Result<u64, Failure> {
        let Some(v) = p.value(key) else { return Ok(0) };
        match bluechi_core::config::parse_c_long(v) {
            Some(n) => Ok(u64::try_from(n).unwrap_or(0)),
            None => Err(fail(
                format!("Failed to parse --{}: Invalid argument\n", key.long_name()),
                false,
            )),
        }
    };
    Ok(Options {
        wait_ms: ms(Key::Wait)?,
        monitor: p.has(Key::Monitor),
        switch_timeout_ms: ms(Key::SwitchTimeout)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Action, Failure> {
        let argv: Vec<String> = std::iter::once("bluechi-is-online")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        parse(&argv, false)
    }

    fn check(args: &[&str]) -> (Target, Options) {
        match parse_args(args) {
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
        assert_eq!(parse_args(&["help"]), Ok(Action::Help));
        assert_eq!(parse_args(&["version"]), Ok(Action::Version));
        assert_eq!(parse_args(&["agent", "--help"]), Ok(Action::Help));
        assert_eq!(parse_args(&["node", "-h"]), Ok(Action::Help));
        assert_eq!(parse_args(&["-h"]), Ok(Action::Help));
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
            &["--wait", "500", "--mon", "agent", "--switch", "2000"][..],
            &["--wait=500", "--wait=9", "agent", "--s=2000", "--m"][..],
        ] {
            assert_eq!(check(args), (Target::Agent, want.clone()), "{args:?}");
        }
        assert_eq!(check(&["system"]).1, Options::default());
        assert_eq!(check(&["node", "n1", "--wait=-5"]).1, Options::default());
        assert_eq!(check(&["node", "n1", "--wait= +3"]).1.wait_ms, 3);
    }

    #[test]
    fn usage_errors_are_upstreams_and_exit_1() {
        let err = |args: &[&str]| parse_args(args).unwrap_err();
        let with_usage = |s: &str| fail(s.to_string(), true);
        let plain = |s: &str| fail(s.to_string(), false);
        assert_eq!(err(&[]), with_usage("No command given\n"));
        assert_eq!(err(&["nodes"]), with_usage("Method nodes not found\n"));
        assert_eq!(
            err(&["nodes", "-h"]),
            with_usage("Method nodes not found\n")
        );
        assert_eq!(
            err(&["-w", "agent"]),
            with_usage("bluechi-is-online: invalid option -- 'w'\n")
        );
        assert_eq!(err(&["node"]), plain("Too few arguments for method node\n"));
        assert_eq!(
            err(&["agent", "x"]),
            plain("Too many arguments for method agent\n")
        );
        assert_eq!(
            err(&["node", "a", "b"]),
            plain("Too many arguments for method node\n")
        );
        assert_eq!(
            err(&["system", "--switch-timeout=10"]),
            plain("Unsupported option 'switch-timeout' for method 'system'\n")
        );
        assert_eq!(
            err(&["version", "--monitor"]),
            plain("Unsupported option 'monitor' for method 'version'\n")
        );
        assert_eq!(
            err(&["agent", "--wait=soon"]),
            plain("Failed to parse --wait: Invalid argument\n")
        );
        assert_eq!(
            err(&["agent", "--switch-timeout=1s"]),
            plain("Failed to parse --switch-timeout: Invalid argument\n")
        );
    }

    #[test]
    fn usage_text_layout() {
        assert!(USAGE.starts_with(
            "bluechi-is-online checks and monitors the connection state of BlueChi components\n\nUsage: \n  bluechi-is-online [agent|node|system] [OPTIONS]\n\nAvailable commands:\n"
        ));
        assert!(USAGE.contains("\n  --switch-timeout: \t Only for [agent]."));
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
