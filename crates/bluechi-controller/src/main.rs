//! `bluechi-controller`: owns `org.eclipse.bluechi` on the system bus and manages the agents
//! that connect over the peer-to-peer link.

mod admission;
mod api;
mod cli;
mod controller;
mod fleet;
mod introspect;
mod jobs;
mod listener;
mod metrics;
mod monitor_api;
mod monitors;
mod nodes;
mod peer;
mod proxy;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match bluechi_core::daemon::args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let opts = match cli::parse(args.into_iter()) {
        Ok(cli::Action::Run(o)) => o,
        Ok(cli::Action::Exit(code)) => return code,
        Err(code) => return code,
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
    bluechi_core::daemon::run(controller::run(cfg))
}
