//! The one-call verbs: is-active, reset-failed, daemon-reload.

use crate::args::Opts;
use crate::conn::{unit_path, Manager};
use crate::{exit, names};
use zvariant::OwnedValue;

pub async fn is_active(m: &Manager, o: &Opts, units: &[String]) -> i32 {
    let mut active = false;
    for unit in units {
        let unit = names::mangle(unit);
        let state: String = m
            .call::<_, OwnedValue>(
                &unit_path(&unit),
                "org.freedesktop.DBus.Properties",
                "Get",
                &("org.freedesktop.systemd1.Unit", "ActiveState"),
            )
            .await
            .ok()
            .and_then(|v| String::try_from(v).ok())
            // A unit the manager cannot even load is reported as not running, as systemctl does.
            .unwrap_or_else(|| "inactive".to_string());
        if !o.quiet {
            println!("{state}");
        }
        active |= matches!(state.as_str(), "active" | "reloading");
    }
    if active {
        exit::SUCCESS
    } else {
        exit::NOT_RUNNING
    }
}

pub async fn reset_failed(m: &Manager, units: &[String]) -> i32 {
    if units.is_empty() {
        return match m.manager::<_, ()>("ResetFailed", &()).await {
            Ok(()) => exit::SUCCESS,
            Err(e) => {
                eprintln!("Failed to reset failed state: {}", e.text());
                exit::FAILURE
            }
        };
    }
    let mut code = exit::SUCCESS;
    for unit in units {
        let unit = names::mangle(unit);
        if let Err(e) = m
            .manager::<_, ()>("ResetFailedUnit", &(unit.as_str(),))
            .await
        {
            eprintln!("Failed to reset failed state of unit {unit}: {}", e.text());
            code = exit::FAILURE;
        }
    }
    code
}

pub async fn daemon_reload(m: &Manager) -> i32 {
    match m.manager::<_, ()>("Reload", &()).await {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            eprintln!("Failed to reload daemon: {}", e.text());
            exit::FAILURE
        }
    }
}
