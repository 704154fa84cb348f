//! `bluechi-agent`: one per node. Talks to the node's systemd, holds the peer link to the
//! controller, and serves `org.eclipse.bluechi.Agent` (proxies) on the node's bus.

mod agent;
mod api;
mod cli;
mod internal;
mod link;
mod proxy;
mod systemd;

use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args().skip(1)) {
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
    // One thread: the agent is an event loop; this keeps it small (upstream ~3.6 MB RSS).
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
    match rt.block_on(agent::run(cfg, opts.address)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}
