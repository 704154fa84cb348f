//! Usage texts, byte-identical to upstream's `bluechictl` (general help and `<cmd> --help`).

const HEADER: &str = "bluechictl is a convenience CLI tool to interact with bluechi\n\n";

fn description(text: &str) -> String {
    format!("Description: \n  {text}\n\n")
}

fn usage_line(text: &str) -> String {
    format!("Usage: \n  {text}\n\n")
}

const COMMANDS: &[(&str, &str)] = &[
    ("help: shows this help message", "help"),
    (
        "list-unit-files: returns the list of systemd service files installed on a specific or on all nodes",
        "list-unit-files [nodename] [--filter=glob]",
    ),
    (
        "list-units: returns the list of systemd services running on a specific or on all nodes",
        "list-units [nodename] [--filter=glob]",
    ),
    (
        "start: starts a specific systemd service (or timer, or slice) on a specific node",
        "start nodename unitname",
    ),
    (
        "stop: stop a specific systemd service (or timer, or slice) on a specific node",
        "stop nodename unitname",
    ),
    ("freeze: freeze a specific systemd service on a specific node", "freeze nodename unitname"),
    ("thaw: thaw a frozen systemd service on a specific node", "thaw nodename unitname"),
    (
        "reload: reloads a specific systemd service (or timer, or slice) on a specific node",
        "reload nodename unitname",
    ),
    (
        "restart: restarts a specific systemd service (or timer, or slice) on a specific node",
        "restart nodename unitname",
    ),
    (
        // The trailing space is upstream's.
        "reset-failed: reset failed node on all node or all units on a specific node or specidec units on a node ",
        "reset-failed [nodename] [unit1, unit2 ...]",
    ),
    (
        "kill: kills processes of a specific unit on the given node",
        "kill [nodename] [unit] [--kill-whom=all|main|control] [--signal=<number>]",
    ),
    ("enable: enables the specified systemd files on a specific node", "enable nodename unitfilename..."),
    (
        "disable: disables the specified systemd files on a specific node",
        "disable nodename unitfilename...",
    ),
    ("metrics [enable|disable]: enables/disables metrics reporting", "metrics [enable|disable]"),
    ("metrics listen: listen and print incoming metrics reports", "metrics listen"),
    (
        "monitor: creates a monitor on the given node to observe changes in the specified units",
        "monitor [node] [unit1,unit2,...]",
    ),
    (
        "status: shows the status of a node, or statuses of all nodes, or status of a unit on node",
        "status [nodename [unitname]] [-w/--watch]",
    ),
    ("daemon-reload: reload systemd daemon on a specific node", "daemon-reload nodename"),
    (
        "set-loglevel: change the log level of the bluechi-controller or a connected node",
        "set-loglevel [nodename] [loglevel]",
    ),
    ("get-default: get a default target of connected node", "get-default [nodename]"),
    ("set-default: set a default target of connected node", "set-default [nodename] [target]"),
];

/// The general usage printed by `help`, `-h` and on parse errors.
pub fn general() -> String {
    let mut s = String::from(HEADER);
    s.push_str(&usage_line("bluechictl [command]"));
    s.push_str("Available commands:\n");
    for (desc, usage) in COMMANDS {
        s.push_str(&format!("  - {desc}\n    usage: {usage}\n"));
    }
    s
}

fn help_option() -> &'static str {
    "  --help \t shows this help message\n"
}

/// The text of `bluechictl <cmd> --help`; commands without their own text show the general one.
pub fn for_command(cmd: &str) -> String {
    let mut s = String::from(HEADER);
    match cmd {
        "start" | "stop" | "restart" | "reload" => {
            s += &description("Start/Stop/Restart/Reload a unit on a node");
            s += &usage_line("bluechictl [start|stop|restart|reload] [nodename] [unitname]");
            s += "\nExamples:\n";
            for verb in ["start", "stop", "restart", "reload"] {
                s += &format!("  bluechictl {verb} primary interesting.service\n");
            }
        }
        "freeze" => {
            s += &description("Freeze a unit on a node");
            s += &usage_line("bluechictl freeze [nodename] [unit]");
        }
        "thaw" => {
            s += &description("Thaw a previously frozen unit on a node");
            // Upstream shows the freeze usage line for thaw too.
            s += &usage_line("bluechictl freeze [nodename] [unit]");
        }
        "list-units" => {
            s += &description("Get a list of loaded systemd units");
            s += &usage_line("bluechictl list-units [nodename] [options]");
            s += "  If [nodename] is not given, the systemd units of all nodes are queried.\n\n";
            s += "Available options:\n";
            s += help_option();
            s += "  --filter \t filter the queried systemd units by name using a glob\n";
        }
        "list-unit-files" => {
            s += &description("Get a list of installed systemd unit files");
            s += &usage_line("bluechictl list-unit-files [nodename] [options]");
            s += "  If [nodename] is not given, the systemd unit files of all nodes are queried.\n\n";
            s += "Available options:\n";
            s += help_option();
            s += "  --filter \t filter the queried systemd unit files by name using a glob\n";
        }
        "is-enabled" => {
            s += &description("Check whether unit file is enabled");
            s += &usage_line("bluechictl is-enabled [nodename] [unit]");
        }
        "reset-failed" => {
            s += &description("Reset the failed state of units");
            s += &usage_line("bluechictl reset-failed [nodename] [unit1, unit2, ...]");
            s += "  If [nodename] and unit(s) are not given, the failed state is reset for all units on all nodes.\n";
            s += "  If no unit(s) are given, the failed state is reset for all units on the given node.\n";
        }
        "kill" => {
            s += &description("Kill (i.e. send a signal to) the processes of a unit");
            s += &usage_line("bluechictl kill [nodename] [unit] [options]");
            s += "Available options:\n";
            s += help_option();
            s += "  --kill-whom \t Enum defining which processes of the unit are killed.\n";
            s += "\t\t Needs to be one of [all, main, control]. Default: 'all'\n";
            s += "  --signal \t The signal sent to kill the processes of the unit. Default: '15'\n";
        }
        "monitor" => {
            s += &description("Monitor changes in the BlueChi managed system");
            s += &usage_line("bluechictl monitor [nodename] [unitname]");
            s += "  If [nodename] and [unitname] are not given, changes on all nodes for all units will be monitored.\n";
            s += "  If a wildcard '*' is used for [nodename] and/or [unitname], all nodes and/or units are monitored.\n";
            s += "\nExamples:\n";
            s += "  bluechictl monitor\n";
            s += "  bluechictl monitor primary \\*\n";
            s += "  bluechictl monitor \\* interesting.service\n";
            s += "  bluechictl monitor primary interesting.service\n";
        }
        "metrics" => {
            s += &description("View metrics for start/stop systemd units via BlueChi");
            s += &usage_line("bluechictl metrics [enable|disable|listen]");
            s += "\nExamples:\n";
            s += "  bluechictl metrics enable\n";
            s += "  bluechictl metrics listen\n";
        }
        "enable" => {
            s += &description("Enable a unit on a node");
            s += &usage_line("bluechictl enable [nodename] [unit1, unit2, ...] [options]");
            s += "\nAvailable options:\n";
            s += help_option();
            s += "  --runtime \t if set, the changes don't persist after reboot \n";
            s += "  --force \t if set, symlinks pointing to other units are replaced \n";
            s += "  --no-reload \t if set, no daemon-reload is triggered \n";
        }
        "disable" => {
            s += &description("Disable a unit on a node");
            s += &usage_line("bluechictl disable [nodename] [unit1, unit2, ...] [options]");
            s += "\nAvailable options:\n";
            s += help_option();
            s += "  --runtime \t if set, the changes don't persist after reboot \n";
            s += "  --no-reload \t if set, no daemon-reload is triggered \n";
        }
        "daemon-reload" => {
            s += &description("Reload all units on a node");
            s += &usage_line("bluechictl daemon-reload [nodename]");
        }
        "status" => {
            s += &description("View status for units and nodes of BlueChi");
            s += &usage_line("bluechictl status [nodename] [unitname] [options]");
            s += "  If [nodename] and [unitname] are not given, the status of all nodes will be displayed.\n";
            s += "  If [unitname] is not given, the status of the specific node will be displayed.\n";
            s += "\nAvailable options:\n";
            s += help_option();
            // The trailing space before the newline is upstream's.
            s += "  --watch, -w \t continuously watch the status of the node(s) and unit \n";
        }
        "set-loglevel" => {
            s += &description("Set the LogLevel of BlueChi");
            s += &usage_line("bluechictl set-loglevel [nodename] [loglevel]");
            s += "  If [nodename] is not given, the [loglevel] will be set for the bluechi-controller.\n";
            s += "  [loglevel] has to be one of [DEBUG, INFO, WARN, ERROR].\n";
            s += "\nExamples:\n";
            s += "  bluechictl set-loglevel INFO\n";
            s += "  bluechictl set-loglevel primary DEBUG\n";
        }
        "get-default" => {
            s += &usage_line("bluechictl get-default [nodename] [options]");
            s += "\nAvailable options:\n";
            s += help_option();
        }
        "set-default" => {
            s += &usage_line("bluechictl set-default [nodename] [target] [options]");
            s += "\nAvailable options:\n";
            s += help_option();
        }
        _ => return general(),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_usage_layout() {
        let g = general();
        assert!(g.starts_with(
            "bluechictl is a convenience CLI tool to interact with bluechi\n\nUsage: \n  bluechictl [command]\n\nAvailable commands:\n  - help: shows this help message\n    usage: help\n"
        ));
        assert!(g.contains("specidec units on a node \n    usage: reset-failed"));
        assert!(g.ends_with("    usage: set-default [nodename] [target]\n"));
    }

    #[test]
    fn thaw_reuses_freeze_usage() {
        assert!(for_command("thaw").contains("Usage: \n  bluechictl freeze [nodename] [unit]\n\n"));
        assert_eq!(for_command("version"), general());
    }
}
