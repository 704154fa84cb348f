//! The one-call verbs: is-active, is-failed, reset-failed, daemon-reload.

use crate::args::Opts;
use crate::conn::{unit_path, Manager};
use crate::{exit, names};
use zvariant::OwnedValue;

/// `is-active` (`failed == false`) or `is-failed`: print each state, succeed if any matches.
pub async fn check_state(m: &Manager, o: &Opts, units: &[String], failed: bool) -> i32 {
    let mut hit = false;
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
        hit |= if failed {
            state == "failed"
        } else {
            matches!(state.as_str(), "active" | "reloading")
        };
    }
    match (hit, failed) {
        (true, _) => exit::SUCCESS,
        (false, true) => exit::FAILURE,
        (false, false) => exit::NOT_RUNNING,
    }
}

pub async fn reset_failed(m: &Manager, units: &[String]) -> i32 {
    if units.is_empty() {
        return match m.manager::<_, ()>("ResetFailed", &()).await {
            Ok(()) => exit::SUCCESS,
            Err(e) => {
                eprintln!("Failed to execute operation: {}", e.text());
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
            eprintln!("Reload daemon failed: {}", e.text());
            exit::FAILURE
        }
    }
}
