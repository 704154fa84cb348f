//! `bluechi-agent`: one per node. Talks to the node's systemd, holds the peer link to the
//! controller, and serves `org.eclipse.bluechi.Agent` (proxies) on the node's bus.

mod agent;
mod api;
mod cli;
mod internal;
mod introspect;
mod link;
mod proxy;
mod systemd;

use std::process::ExitCode;

fn main() -> ExitCode {
    // `std::env::args` would panic on an argument that is not UTF-8.
    let args = std::env::args_os().skip(1).map(|a| a.into_string());
    let args = match args.collect::<Result<Vec<String>, _>>() {
        Ok(args) => args,
        Err(bad) => {
            eprintln!("Invalid argument {bad:?}: not valid UTF-8");
            return ExitCode::from(1);
        }
    };
    let opts = match cli::parse(args.into_iter()) {
        Ok(cli::Action::Run(o)) => o,
        Ok(cli::Action::Exit(code)) | Err(code) => return code,
    };
    let cfg = match cli::load_config(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    bluechi_core::logging::init(&cfg.log);
    // Unknown keys are ignored like upstream does, but said out loud.
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    bluechi_core::daemon::run(agent::run(cfg, opts.address))
}
