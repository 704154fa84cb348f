//! Command line of `bluechi-controller` (spec §6.5) and configuration loading (§6.2).

use std::path::PathBuf;
use std::process::ExitCode;

use bluechi_core::config::{self, ControllerConfig};

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

pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Action, ExitCode> {
    let mut o = Options {
        config_file: None,
        port: None,
    };
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, ExitCode> {
            inline.clone().or_else(|| args.next()).ok_or_else(|| {
                eprintln!("bluechi-controller: option requires an argument -- '{name}'");
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
                println!("bluechi-controller version {}", bluechi_core::VERSION);
                return Ok(Action::Exit(ExitCode::SUCCESS));
            }
            "-c" | "--config" => o.config_file = Some(PathBuf::from(value("c")?)),
            "-p" | "--port" => o.port = Some(value("p")?),
            other => {
                eprintln!("bluechi-controller: unrecognized option '{other}'");
                print!("{USAGE}");
                return Err(ExitCode::from(1));
            }
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
