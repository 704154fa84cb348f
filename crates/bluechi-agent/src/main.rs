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
    let args = match bluechi_core::daemon::args() {
        Ok(args) => args,
        Err(code) => return code,
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
    let scope = if opts.user {
        agent::Scope::User
    } else {
        agent::Scope::System
    };
    bluechi_core::logging::init(&cfg.log);
    // Unknown keys are ignored like upstream does, but said out loud.
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    bluechi_core::daemon::run(agent::run(cfg, opts.address, scope))
}
