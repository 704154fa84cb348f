//! The command table (names, argument counts, accepted options) and dispatch.

mod default_target;
mod enable_disable;
mod freeze_thaw;
mod is_enabled;
mod kill;
mod lifecycle;
mod list_unit_files;
mod list_units;
mod metrics;
mod monitor;
mod node_simple;
mod reset_failed;
mod status;
mod watch;

use crate::args::{OptKey, Parsed};
use crate::client::Client;
use crate::output::{err, out};
use crate::usage;

/// The command failed; its messages are already printed and the exit code is 1.
#[derive(Debug)]
pub struct Fail;

pub type CmdResult = Result<(), Fail>;

pub struct Method {
    pub name: &'static str,
    min_args: usize,
    /// `None` = any number.
    max_args: Option<usize>,
    options: &'static [OptKey],
}

const fn m(
    name: &'static str,
    min: usize,
    max: Option<usize>,
    options: &'static [OptKey],
) -> Method {
    Method {
        name,
        min_args: min,
        max_args: max,
        options,
    }
}

const METHODS: &[Method] = &[
    m("help", 0, Some(0), &[]),
    m("list-unit-files", 0, Some(1), &[OptKey::Filter]),
    m("is-enabled", 2, Some(2), &[]),
    m("list-units", 0, Some(1), &[OptKey::Filter]),
    m("start", 2, Some(2), &[]),
    m("stop", 2, Some(2), &[]),
    m("freeze", 2, Some(2), &[]),
    m("thaw", 2, Some(2), &[]),
    m("restart", 2, Some(2), &[]),
    m("reload", 2, Some(2), &[]),
    m("reset-failed", 0, None, &[]),
    m("kill", 2, Some(2), &[OptKey::KillWhom, OptKey::Signal]),
    m("monitor", 0, Some(2), &[]),
    m("metrics", 1, Some(1), &[]),
    m(
        "enable",
        2,
        None,
        &[OptKey::Force, OptKey::Runtime, OptKey::NoReload],
    ),
    m("disable", 2, None, &[OptKey::NoReload]),
    m("daemon-reload", 1, Some(1), &[]),
    m("status", 0, None, &[OptKey::Watch]),
    m("set-loglevel", 1, Some(2), &[]),
    m("get-default", 1, Some(1), &[]),
    m("set-default", 2, Some(2), &[]),
    m("version", 0, Some(0), &[]),
];

pub fn lookup(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

/// Validates the invocation against the table: the argument and option errors upstream
/// reports (in its order), or `None` when the command may run.
pub fn validate(method: &Method, p: &Parsed) -> Option<String> {
    if p.args.len() < method.min_args {
        return Some(format!("Too few arguments for method {}\n", method.name));
    }
    if method.max_args.is_some_and(|max| p.args.len() > max) {
        return Some(format!("Too many arguments for method {}\n", method.name));
    }
    p.options
        .iter()
        .find(|o| !method.options.contains(&o.key))
        .map(|o| {
            format!(
                "Unsupported option '{}' for method '{}'\n",
                o.key.long_name(),
                method.name
            )
        })
}

/// Runs a validated command (or prints its usage for `--help`).
pub async fn execute(method: &Method, p: &Parsed, client: &Client) -> CmdResult {
    if p.help {
        out(&usage::for_command(method.name));
        return Ok(());
    }
    if let Some(msg) = validate(method, p) {
        err(&msg);
        return Err(Fail);
    }
    let a = &p.args;
    match method.name {
        "help" => {
            out(&usage::general());
            Ok(())
        }
        "version" => {
            out(&format!("bluechictl version {}\n", bluechi_core::VERSION));
            Ok(())
        }
        "start" => lifecycle::run(client, &a[0], &a[1], "StartUnit").await,
        "stop" => lifecycle::run(client, &a[0], &a[1], "StopUnit").await,
        "restart" => lifecycle::run(client, &a[0], &a[1], "RestartUnit").await,
        "reload" => lifecycle::run(client, &a[0], &a[1], "ReloadUnit").await,
        "status" => status::run(client, a, p.has(OptKey::Watch)).await,
        "freeze" => freeze_thaw::run(client, &a[0], &a[1], "FreezeUnit", "freeze").await,
        "thaw" => freeze_thaw::run(client, &a[0], &a[1], "ThawUnit", "thaw").await,
        "daemon-reload" => node_simple::daemon_reload(client, &a[0]).await,
        "set-loglevel" => node_simple::set_loglevel(client, a).await,
        "is-enabled" => is_enabled::run(client, &a[0], &a[1]).await,
        "get-default" => default_target::get(client, &a[0]).await,
        "set-default" => default_target::set(client, &a[0], &a[1]).await,
        "kill" => {
            kill::run(
                client,
                &a[0],
                &a[1],
                p.value(OptKey::KillWhom),
                p.value(OptKey::Signal),
            )
            .await
        }
        "reset-failed" => reset_failed::run(client, a).await,
        "enable" => enable_disable::enable(client, a, p).await,
        "disable" => enable_disable::disable(client, a, p).await,
        "monitor" => monitor::run(client, a).await,
        "metrics" => metrics::run(client, &a[0]).await,
        "list-units" => list_units::run(client, a.first(), p.value(OptKey::Filter)).await,
        "list-unit-files" => list_unit_files::run(client, a.first(), p.value(OptKey::Filter)).await,
        other => {
            err(&format!("Method {other} not implemented\n"));
            Err(Fail)
        }
    }
}
