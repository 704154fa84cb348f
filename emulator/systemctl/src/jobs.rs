//! start/stop/restart: enqueue jobs and, unless --no-block, wait for them and explain failures.

use crate::args::Opts;
use crate::conn::{CallError, Manager, IFACE_MANAGER};
use crate::exit;
use futures_util::StreamExt;
use zvariant::{OwnedObjectPath, OwnedValue};

/// Why a service failed, by its `Result` property, in systemctl's words.
fn explanation(result: &str) -> Option<&'static str> {
    Some(match result {
        "resources" => "of unavailable resources or another system error",
        "protocol" => "the service did not take the steps required by its unit configuration",
        "timeout" => "a timeout was exceeded",
        "exit-code" => "the control process exited with error code",
        "signal" => "a fatal signal was delivered to the control process",
        "core-dump" => "a fatal signal was delivered causing the control process to dump core",
        "watchdog" => "the service failed to send watchdog ping",
        "start-limit" => "start of the service was attempted too often",
        _ => return None,
    })
}

/// The exit status systemctl derives from a failed job-enqueueing call.
pub fn bus_error_exit(e: &CallError) -> i32 {
    match e.name.as_str() {
        "org.freedesktop.DBus.Error.AccessDenied"
        | "org.freedesktop.systemd1.OnlyByDependency"
        | "org.freedesktop.systemd1.NoIsolation"
        | "org.freedesktop.systemd1.TransactionIsDestructive" => exit::NOPERMISSION,
        "org.freedesktop.systemd1.NoSuchUnit" => exit::NOTINSTALLED,
        "org.freedesktop.systemd1.JobTypeNotApplicable"
        | "org.freedesktop.DBus.Error.NotSupported" => exit::NOTIMPLEMENTED,
        "org.freedesktop.systemd1.LoadFailed" => exit::NOTCONFIGURED,
        _ => exit::FAILURE,
    }
}

/// The error systemctl logs for a job that ended with `result`.
async fn job_failure(m: &Manager, unit: &str, result: &str) -> Option<String> {
    let text = match result {
        "done" | "skipped" => return None,
        "canceled" => format!("Job for {unit} canceled."),
        "timeout" => format!("Job for {unit} timed out."),
        "dependency" => {
            format!("A dependency job for {unit} failed. See 'journalctl -xe' for details.\n")
        }
        "invalid" => format!("{unit} is not active, cannot reload."),
        "assert" => format!("Assertion failed on job for {unit}."),
        "unsupported" => {
            format!("Operation on or unit type of {unit} not supported on this system.")
        }
        "collected" => format!("Queued job for {unit} was garbage collected."),
        "once" => format!("Unit {unit} was started already once and can't be started again."),
        _ if unit.ends_with(".service") => {
            let path = crate::conn::unit_path(unit);
            let svc_result: Option<String> = m
                .call::<_, OwnedValue>(
                    &path,
                    "org.freedesktop.DBus.Properties",
                    "Get",
                    &("org.freedesktop.systemd1.Service", "Result"),
                )
                .await
                .ok()
                .and_then(|v| String::try_from(v).ok());
            let see = format!(
                "See \"systemctl status {unit}\" and \"journalctl -xeu {unit}\" for details."
            );
            match svc_result.as_deref().and_then(explanation) {
                Some(why) => format!("Job for {unit} failed because {why}.\n{see}"),
                None => format!("Job for {unit} failed.\n{see}"),
            }
        }
        _ => "Job failed. See \"journalctl -xe\" for details.".to_string(),
    };
    Some(text)
}

/// Enqueues `method` ("StartUnit", ...) for each unit and waits for the jobs unless --no-block.
pub async fn run(m: &Manager, o: &Opts, method: &str, verb: &str, units: &[String]) -> i32 {
    let mut stream = None;
    if !o.no_block {
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(IFACE_MANAGER)
            .and_then(|b| b.member("JobRemoved"))
            .map(|b| b.build());
        if let Ok(rule) = rule {
            stream = zbus::MessageStream::for_match_rule(rule, &m.conn, None)
                .await
                .ok();
        }
        // Without a subscription systemd does not send job signals to private connections.
        let _: Result<(), _> = m.manager("Subscribe", &()).await;
    }

    let mut code = exit::SUCCESS;
    let mut pending: Vec<(OwnedObjectPath, String)> = Vec::new();
    for unit in units {
        match m
            .manager::<_, OwnedObjectPath>(method, &(unit.as_str(), "replace"))
            .await
        {
            Ok(job) => pending.push((job, unit.clone())),
            Err(e) => {
                eprintln!("Failed to {verb} {unit}: {}", e.text());
                let self_explained = [
                    "org.freedesktop.systemd1.NoSuchUnit",
                    "org.freedesktop.systemd1.UnitMasked",
                    "org.freedesktop.systemd1.JobTypeNotApplicable",
                ];
                if !self_explained.contains(&e.name.as_str()) {
                    eprintln!("See system logs and 'systemctl status {unit}' for details.");
                }
                if code == exit::SUCCESS {
                    code = bus_error_exit(&e);
                }
            }
        }
    }

    let Some(mut stream) = stream else {
        return code;
    };
    let mut done: Vec<(String, String)> = Vec::new();
    while !pending.is_empty() {
        let Some(Ok(msg)) = stream.next().await else {
            eprintln!("Failed to wait for response: connection closed");
            return exit::FAILURE;
        };
        let Ok((_, path, _, result)) = msg
            .body()
            .deserialize::<(u32, OwnedObjectPath, String, String)>()
        else {
            continue;
        };
        if let Some(i) = pending.iter().position(|(p, _)| *p == path) {
            let (_, unit) = pending.swap_remove(i);
            done.push((unit, result));
        }
    }
    for (unit, result) in done {
        if let Some(text) = job_failure(m, &unit, &result).await {
            eprintln!("{text}");
            // A failed job wins over an earlier enqueue error's status, as in systemctl.
            code = exit::FAILURE;
        }
    }
    code
}
