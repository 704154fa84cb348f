//! `bluechi-is-online`: exits 0 if the agent, a node or the whole system is online, 1 if not
//! (spec §6.7); can wait for online or keep monitoring until offline.

mod bus;
mod cli;
mod getopt;
mod state;

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let posixly_correct = std::env::var_os("POSIXLY_CORRECT").is_some();
    let (target, opts) = match cli::parse(&argv, posixly_correct) {
        Ok(cli::Action::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(cli::Action::Version) => {
            println!("bluechi-is-online version {}", bluechi_core::VERSION);
            return ExitCode::SUCCESS;
        }
        Ok(cli::Action::Check(t, o)) => (t, o),
        Err(f) => {
            eprint!("{}", f.stderr);
            if f.usage {
                print!("{}", cli::USAGE);
            }
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bluechi-is-online: cannot start the event loop: {e}");
            return ExitCode::from(1);
        }
    };
    let bus_name = target.bus_name();
    match runtime.block_on(bus::run(target, opts)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("{bus_name} is offline");
            ExitCode::from(1)
        }
        Err(bus::RunError::Connect(reason)) => {
            eprintln!("Failed to connect to api bus: {reason}");
            eprintln!("Failed to open bus: {reason}");
            ExitCode::FAILURE
        }
        Err(bus::RunError::Other(e)) => {
            eprintln!("{e}");
            eprintln!("{bus_name} is offline");
            ExitCode::FAILURE
        }
    }
}
