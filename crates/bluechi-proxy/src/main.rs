//! `bluechi-proxy`: helper run by `bluechi-proxy@.service` to ask the local agent to create or
//! remove a proxy for a unit on another node.

mod args;

use std::io::Write;
use std::process::ExitCode;

use bluechi_core::names::{AGENT_BUS_NAME, AGENT_IFACE, AGENT_PATH, ERR_ACTIVATION_FAILED};

fn err(s: &str) {
    let _ = std::io::stderr().write_all(s.as_bytes());
}

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let prog = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "bluechi-proxy".into());
    let (user, method, node_unit) = match args::parse(&argv) {
        Ok(args::Action::Help) => {
            out(&args::usage(&prog));
            return ExitCode::SUCCESS;
        }
        Ok(args::Action::Version) => {
            out(&format!(
                "bluechi-proxy version {}\n",
                bluechi_core::VERSION
            ));
            return ExitCode::SUCCESS;
        }
        Ok(args::Action::Run {
            user,
            method,
            node_unit,
        }) => (user, method, node_unit),
        Err(e) => {
            err(&e.message);
            if e.with_usage {
                out(&args::usage(&prog));
            }
            return ExitCode::FAILURE;
        }
    };
    let (node, unit, complaint) = args::split_node_unit(&node_unit);
    if let Some(c) = complaint {
        err(&c);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            err(&format!("Failed to create event loop: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(call(user, method, &node_unit, &node, &unit))
}

async fn call(user: bool, method: &str, node_unit: &str, node: &str, unit: &str) -> ExitCode {
    let builder = if user {
        zbus::connection::Builder::session()
    } else {
        zbus::connection::Builder::system()
    };
    // No method timeout is configured on purpose: zbus' default is to wait forever, and
    // CreateProxy only returns once the remote unit is active, however long that takes.
    let conn = match builder {
        Ok(b) => b.build().await,
        Err(e) => Err(e),
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            err(&format!("Failed to connect to bus: {e}\n"));
            err("Failed to create api bus\n");
            return ExitCode::FAILURE;
        }
    };
    // The local service name is the proxy unit's own name (`bluechi-proxy@node_unit.service`).
    let local = format!("bluechi-proxy@{node_unit}");
    let reply = conn
        .call_method(
            Some(AGENT_BUS_NAME),
            AGENT_PATH,
            Some(AGENT_IFACE),
            method,
            &(local.as_str(), node, unit),
        )
        .await;
    match reply {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let (name, message) = bluechi_core::msg::error_parts(&e);
            if name == ERR_ACTIVATION_FAILED {
                err(&format!(
                    "Failed to activate {local} (on {node}): {message}\n"
                ));
            } else {
                err(&format!("Failed to call {method}: {message}\n"));
            }
            ExitCode::FAILURE
        }
    }
}
