//! Unit file state verbs: is-enabled, enable, disable.

use crate::args::Opts;
use crate::conn::Manager;
use crate::{exit, names};

const NO_INSTALL_INFO: &str = "\
The unit files have no installation config (WantedBy=, RequiredBy=, Also=,
Alias= settings in the [Install] section, and DefaultInstance= for template
units). This means they are not meant to be enabled using systemctl.
 
Possible reasons for having this kind of units are:
• A unit may be statically enabled by being symlinked from another unit's
  .wants/ or .requires/ directory.
• A unit's purpose may be to act as a helper for some other unit which has
  a requirement dependency on it.
• A unit may be started when needed via activation (socket, path, timer,
  D-Bus, udev, scripted systemctl call, ...).
• In case of template units, the unit is meant to be enabled with some
  instance name specified.";

/// States for which `is-enabled` succeeds.
fn counts_as_enabled(state: &str) -> bool {
    matches!(
        state,
        "enabled" | "enabled-runtime" | "static" | "alias" | "indirect" | "generated" | "transient"
    )
}

pub async fn is_enabled(m: &Manager, o: &Opts, units: &[String]) -> i32 {
    let mut enabled = false;
    for unit in units {
        let unit = names::mangle(unit);
        match m
            .manager::<_, (String,)>("GetUnitFileState", &(unit.as_str(),))
            .await
        {
            Ok((state,)) => {
                if !o.quiet {
                    println!("{state}");
                }
                enabled |= counts_as_enabled(&state);
            }
            Err(e) => {
                eprintln!("Failed to get unit file state for {unit}: {}", e.text());
                return exit::FAILURE;
            }
        }
    }
    if enabled {
        exit::SUCCESS
    } else {
        exit::FAILURE
    }
}

fn print_changes(o: &Opts, changes: &[(String, String, String)]) {
    if o.quiet {
        return;
    }
    for (kind, file, source) in changes {
        match kind.as_str() {
            "symlink" => eprintln!("Created symlink {file} \u{2192} {source}."),
            "unlink" => eprintln!("Removed \"{file}\"."),
            _ => {}
        }
    }
}

/// `enable`/`disable`, then a daemon reload, then with --now the matching start/stop.
pub async fn change(m: &Manager, o: &Opts, enable: bool, units: &[String]) -> i32 {
    let units: Vec<String> = units.iter().map(|u| names::mangle(u)).collect();
    let result = if enable {
        m.manager::<_, (bool, Vec<(String, String, String)>)>(
            "EnableUnitFiles",
            &(&units, false, false),
        )
        .await
    } else {
        m.manager::<_, (Vec<(String, String, String)>,)>("DisableUnitFiles", &(&units, false))
            .await
            .map(|(c,)| (true, c))
    };
    let (install_info, changes) = match result {
        Ok(r) => r,
        Err(e) => {
            let verb = if enable { "enable" } else { "disable" };
            eprintln!("Failed to {verb} unit: {}", e.text());
            return exit::FAILURE;
        }
    };
    print_changes(o, &changes);
    if !install_info && !o.quiet {
        eprintln!("{NO_INSTALL_INFO}");
    }
    if let Err(e) = m.manager::<_, ()>("Reload", &()).await {
        eprintln!("Reload daemon failed: {}", e.text());
        return exit::FAILURE;
    }
    if o.now {
        let (method, verb) = if enable {
            ("StartUnit", "start")
        } else {
            ("StopUnit", "stop")
        };
        return crate::jobs::run(m, o, method, verb, &units).await;
    }
    exit::SUCCESS
}
