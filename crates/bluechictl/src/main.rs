//! `bluechictl`: command-line client of the BlueChi controller.

mod args;
mod client;
mod commands;
mod events;
mod glob;
mod output;
mod presence;
mod signals;
mod table;
mod usage;

use std::process::ExitCode;

use output::{err, out};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let parsed = match args::parse(&argv) {
        Ok(p) => p,
        Err(e) => {
            err(&e.0);
            out(&usage::general());
            return ExitCode::FAILURE;
        }
    };
    let Some(name) = parsed.command.clone() else {
        if parsed.help {
            out(&usage::general());
            return ExitCode::SUCCESS;
        }
        err("No command given\n");
        out(&usage::general());
        return ExitCode::FAILURE;
    };
    let Some(method) = commands::lookup(&name) else {
        err(&format!("Method {name} not found\n"));
        out(&usage::general());
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            err(&format!("Failed to create event loop: {e}\n"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Upstream opens the bus before validating arguments, so even `help` needs it.
        let client = match client::connect().await {
            Ok(c) => c,
            Err(reason) => {
                err(&format!("Failed to connect to api bus: {reason}\n"));
                return ExitCode::FAILURE;
            }
        };
        match commands::execute(method, &parsed, &client).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(commands::Fail) => ExitCode::FAILURE,
        }
    })
}
