//! Command line of `bluechi-agent` (spec §6.5) and configuration loading (§6.2).

use std::path::PathBuf;
use std::process::ExitCode;

use bluechi_core::config::{self, AgentConfig};

const SECTION: &str = "bluechi-agent";

#[derive(Default)]
pub struct Options {
    pub config_file: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<String>,
    /// Used for the first connection only (upstream's Q3 behaviour).
    pub address: Option<String>,
    pub name: Option<String>,
    pub interval: Option<String>,
    pub user: bool,
}

pub enum Action {
    Run(Options),
    Exit(ExitCode),
}

const USAGE: &str = "Usage: bluechi-agent [OPTION...]\n\
  -h, --help\t\tPrint this help message\n\
  -H, --host\t\tThe host of the controller\n\
  -p, --port\t\tThe port of the controller\n\
  -a, --address\t\tThe full sd-bus address of the controller\n\
  -n, --name\t\tThe name of this node\n\
  -i, --interval\t\tThe heartbeat interval in milliseconds\n\
  -c, --config\t\tPath to the configuration file\n\
  -u, --user\t\tConnect to the user bus and user systemd\n\
  -v, --version\t\tPrint the version\n";

pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Action, ExitCode> {
    let mut o = Options::default();
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, ExitCode> {
            inline.clone().or_else(|| args.next()).ok_or_else(|| {
                eprintln!("bluechi-agent: option requires an argument -- '{name}'");
                print!("{USAGE}");
                ExitCode::from(1)
            })
        };
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(Action::Exit(ExitCode::SUCCESS));
            }
            "-v" | "--version" => {
                println!("bluechi-agent version {}", bluechi_core::VERSION);
                return Ok(Action::Exit(ExitCode::SUCCESS));
            }
            "-c" | "--config" => o.config_file = Some(PathBuf::from(value("c")?)),
            "-H" | "--host" => o.host = Some(value("H")?),
            "-p" | "--port" => o.port = Some(value("p")?),
            "-a" | "--address" => o.address = Some(value("a")?),
            "-n" | "--name" => o.name = Some(value("n")?),
            "-i" | "--interval" => o.interval = Some(value("i")?),
            "-u" | "--user" => o.user = true,
            other => {
                eprintln!("bluechi-agent: unrecognized option '{other}'");
                print!("{USAGE}");
                return Err(ExitCode::from(1));
            }
        }
    }
    Ok(Action::Run(o))
}

pub fn load_config(o: &Options) -> Result<AgentConfig, config::ConfigError> {
    let mut store = config::load_standard(
        "/usr/share/bluechi-agent/config/agent.conf",
        "/etc/bluechi/agent.conf",
        "/etc/bluechi/agent.conf.d",
        SECTION,
        o.config_file.as_deref(),
    )?;
    for (key, v, src) in [
        ("ControllerHost", &o.host, "--host"),
        ("ControllerPort", &o.port, "--port"),
        ("NodeName", &o.name, "--name"),
        ("HeartbeatInterval", &o.interval, "--interval"),
    ] {
        if let Some(v) = v {
            store.set(SECTION, key, v, src);
        }
    }
    AgentConfig::from_store(&store)
}
