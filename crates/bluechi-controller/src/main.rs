//! `bluechi-controller`: owns `org.eclipse.bluechi` on the system bus and manages the agents
//! that connect over the peer-to-peer link.

mod api;
mod cli;
mod controller;
mod introspect;
mod jobs;
mod listener;
mod nodes;
mod peer;
mod proxy;

use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args().skip(1)) {
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
    // One thread: the controller is an event loop; this keeps it small (upstream ~3.5 MB RSS).
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Failed to start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(controller::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}
