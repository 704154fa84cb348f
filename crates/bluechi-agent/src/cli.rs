//! Command line of `bluechi-agent` (spec §6.5) and configuration loading (§6.2).

use std::path::PathBuf;
use std::process::ExitCode;

use bluechi_core::config::ini::Origin;
use bluechi_core::config::{self, AgentConfig, ConfigError, ValueError};
use bluechi_core::daemon::{parse_options, OptSpec};

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

const SPECS: &[OptSpec] = &[
    OptSpec {
        short: 'h',
        long: "help",
        takes_value: false,
    },
    OptSpec {
        short: 'v',
        long: "version",
        takes_value: false,
    },
    OptSpec {
        short: 'c',
        long: "config",
        takes_value: true,
    },
    OptSpec {
        short: 'H',
        long: "host",
        takes_value: true,
    },
    OptSpec {
        short: 'p',
        long: "port",
        takes_value: true,
    },
    OptSpec {
        short: 'a',
        long: "address",
        takes_value: true,
    },
    OptSpec {
        short: 'n',
        long: "name",
        takes_value: true,
    },
    OptSpec {
        short: 'i',
        long: "interval",
        takes_value: true,
    },
    OptSpec {
        short: 'u',
        long: "user",
        takes_value: false,
    },
];

pub fn parse(args: impl Iterator<Item = String>) -> Result<Action, ExitCode> {
    let mut o = Options::default();
    for (flag, value) in parse_options("bluechi-agent", USAGE, SPECS, args)? {
        match flag {
            'h' => {
                print!("{USAGE}");
                return Ok(Action::Exit(ExitCode::SUCCESS));
            }
            'v' => {
                println!("bluechi-agent version {}", bluechi_core::VERSION);
                return Ok(Action::Exit(ExitCode::SUCCESS));
            }
            'c' => o.config_file = value.map(PathBuf::from),
            'H' => o.host = value,
            'p' => o.port = value,
            'a' => o.address = value,
            'n' => o.name = value,
            'i' => o.interval = value,
            _ => o.user = true,
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
    let cfg = AgentConfig::from_store(&store)?;
    // `-a` replaces the configured address for the first attempt, so it must be usable too.
    if let Some(a) = &o.address {
        if let Err(reason) = config::check_controller_address(a) {
            return Err(ConfigError::Value(Box::new(ValueError {
                origin: Origin {
                    file: "--address".to_string(),
                    line: 0,
                },
                section: SECTION.to_string(),
                key: "ControllerAddress".to_string(),
                value: a.clone(),
                reason,
            })));
        }
    }
    Ok(cfg)
}
