//! Command line of `bluechi-controller` (spec §6.5) and configuration loading (§6.2).

use std::path::PathBuf;
use std::process::ExitCode;

use bluechi_core::config::{self, ControllerConfig};
use bluechi_core::daemon::{parse_options, OptSpec};

pub struct Options {
    pub config_file: Option<PathBuf>,
    pub port: Option<String>,
}

pub enum Action {
    Run(Options),
    Exit(ExitCode),
}

const USAGE: &str = "Usage: bluechi-controller [OPTION...]\n\
  -h, --help\t\tPrint this help message\n\
  -p, --port\t\tThe port the controller listens on\n\
  -c, --config\t\tPath to the configuration file\n\
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
        short: 'p',
        long: "port",
        takes_value: true,
    },
];

pub fn parse(args: impl Iterator<Item = String>) -> Result<Action, ExitCode> {
    let mut o = Options {
        config_file: None,
        port: None,
    };
    for (flag, value) in parse_options("bluechi-controller", USAGE, SPECS, args)? {
        match flag {
            'h' => {
                print!("{USAGE}");
                return Ok(Action::Exit(ExitCode::SUCCESS));
            }
            'v' => {
                println!("bluechi-controller version {}", bluechi_core::VERSION);
                return Ok(Action::Exit(ExitCode::SUCCESS));
            }
            'c' => o.config_file = value.map(PathBuf::from),
            _ => o.port = value,
        }
    }
    Ok(Action::Run(o))
}

pub fn load_config(o: &Options) -> Result<ControllerConfig, config::ConfigError> {
    let mut store = config::load_standard(
        "/usr/share/bluechi/config/controller.conf",
        "/etc/bluechi/controller.conf",
        "/etc/bluechi/controller.conf.d",
        "bluechi-controller",
        o.config_file.as_deref(),
    )?;
    if let Some(p) = &o.port {
        store.set("bluechi-controller", "ControllerPort", p, "--port");
    }
    ControllerConfig::from_store(&store)
}
