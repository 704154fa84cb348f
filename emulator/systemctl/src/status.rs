//! `systemctl status UNIT...`: the header and the Loaded/Active/Process/Main PID lines. The
//! journal, cgroup tree and resource lines are not shown (the emulator has neither).

use crate::args::Opts;
use crate::conn::{Manager, Props};
use crate::{exit, fmt, names};
use std::io::Write;
use zvariant::Value;

/// One line of an Exec* property: `(sasbttttuii)`.
struct ExecRun {
    argv: Vec<String>,
    pid: u32,
    code: i32,
    status: i32,
}

fn exec_runs(props: &Props, name: &str) -> Vec<ExecRun> {
    let Some(Value::Array(a)) = props.get(name).map(|v| &**v) else {
        return Vec::new();
    };
    a.iter()
        .filter_map(|item| {
            let Value::Structure(s) = item else {
                return None;
            };
            match s.fields() {
                [_, Value::Array(argv), _, _, _, _, _, Value::U32(pid), Value::I32(code), Value::I32(status)] => {
                    Some(ExecRun {
                        argv: argv
                            .iter()
                            .filter_map(|x| match x {
                                Value::Str(s) => Some(s.to_string()),
                                _ => None,
                            })
                            .collect(),
                        pid: *pid,
                        code: *code,
                        status: *status,
                    })
                }
                _ => None,
            }
        })
        .collect()
}

fn comm(pid: u64) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// The processes of a cgroup, found where cgroup v2 or v1's name=systemd hierarchy mounts it.
fn cgroup_pids(cg: &str) -> Option<Vec<u64>> {
    [
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup",
    ]
    .iter()
    .find_map(|base| std::fs::read_to_string(format!("{base}{cg}/cgroup.procs")).ok())
    .map(|text| {
        let mut pids: Vec<u64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        pids.sort_unstable();
        pids
    })
}

fn cmdline(pid: u64) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
    let text = text.trim_end();
    if text.is_empty() {
        comm(pid).map(|c| format!("[{c}]")).unwrap_or_default()
    } else {
        text.to_string()
    }
}

fn print_cgroup(out: &mut impl Write, cg: &str) {
    let Some(pids) = cgroup_pids(cg) else {
        return;
    };
    let _ = writeln!(out, "{:>11}: {cg}", "CGroup");
    for (i, pid) in pids.iter().enumerate() {
        let branch = if i + 1 == pids.len() {
            "└─"
        } else {
            "├─"
        };
        let _ = writeln!(out, "{:13}{branch}{pid} {}", "", cmdline(*pid));
    }
}

fn now_usec() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn symbol(active: &str) -> &'static str {
    match active {
        "failed" | "error" => "×",
        "inactive" | "maintenance" => "○",
        _ => "●",
    }
}

fn loaded_line(p: &Props) -> String {
    let load = p.str("LoadState");
    let mut path = p.str("FragmentPath");
    if path.is_empty() {
        path = p.str("SourcePath");
    }
    let state = p.str("UnitFileState");
    let preset = p.str("UnitFilePreset");
    if path.is_empty() {
        return load;
    }
    // systemctl only names the preset where it could change something.
    let preset_matters = matches!(state.as_str(), "enabled" | "disabled");
    match (state.is_empty(), preset.is_empty() || !preset_matters) {
        (true, _) => format!("{load} ({path})"),
        (false, true) => format!("{load} ({path}; {state})"),
        (false, false) => format!("{load} ({path}; {state}; preset: {preset})"),
    }
}

fn active_line(p: &Props) -> String {
    let active = p.str("ActiveState");
    let sub = p.str("SubState");
    let mut line = active.clone();
    if !sub.is_empty() && sub != active {
        line.push_str(&format!(" ({sub})"));
    }
    let result = p.str("Result");
    if !result.is_empty() && result != "success" {
        line.push_str(&format!(" (Result: {result})"));
    }
    let since = match active.as_str() {
        "active" | "reloading" => p.u64("ActiveEnterTimestamp"),
        "inactive" | "failed" => p.u64("InactiveEnterTimestamp"),
        "activating" => p.u64("InactiveExitTimestamp"),
        _ => p.u64("ActiveExitTimestamp"),
    };
    if since > 0 {
        line.push_str(&format!(
            " since {}; {}",
            fmt::timestamp(since),
            fmt::relative(since, now_usec())
        ));
    }
    line
}

fn print_unit(out: &mut impl Write, p: &Props) {
    let id = p.str("Id");
    let desc = p.str("Description");
    let active = p.str("ActiveState");
    let _ = if desc.is_empty() || desc == id {
        writeln!(out, "{} {id}", symbol(&active))
    } else {
        writeln!(out, "{} {id} - {desc}", symbol(&active))
    };
    let _ = writeln!(out, "{:>11}: {}", "Loaded", loaded_line(p));
    let _ = writeln!(out, "{:>11}: {}", "Active", active_line(p));
    for prop in [
        "ExecStartPre",
        "ExecStart",
        "ExecStartPost",
        "ExecStop",
        "ExecStopPost",
    ] {
        for run in exec_runs(p, prop).iter().filter(|r| r.code != 0) {
            let _ = writeln!(
                out,
                "    Process: {} {prop}={} ({})",
                run.pid,
                run.argv.join(" "),
                fmt::exit_info(run.code, run.status)
            );
        }
    }
    let main = p.u64("MainPID");
    let (pid, running) = if main > 0 {
        (main, true)
    } else {
        (p.u64("ExecMainPID"), false)
    };
    if pid > 0 {
        let detail = if running {
            comm(pid).map(|c| format!(" ({c})")).unwrap_or_default()
        } else if p.i32("ExecMainCode") > 0 {
            format!(
                " ({})",
                fmt::exit_info(p.i32("ExecMainCode"), p.i32("ExecMainStatus"))
            )
        } else {
            String::new()
        };
        let _ = writeln!(out, "   Main PID: {pid}{detail}");
    }
    let cg = p.str("ControlGroup");
    if !cg.is_empty() {
        print_cgroup(out, &cg);
    }
}

pub async fn run(m: &Manager, _o: &Opts, units: &[String]) -> i32 {
    let mut out = std::io::stdout().lock();
    let mut code = exit::SUCCESS;
    let mut first = true;
    for unit in units {
        let unit = names::mangle(unit);
        let p = match m.unit_props(&unit).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("Failed to get properties: {}", e.text());
                code = exit::FAILURE;
                continue;
            }
        };
        if p.str("LoadState") == "not-found" && p.str("ActiveState") == "inactive" {
            let _ = out.flush();
            eprintln!("Unit {unit} could not be found.");
            if code == exit::SUCCESS {
                code = exit::STATUS_UNKNOWN;
            }
            continue;
        }
        if !first {
            let _ = writeln!(out);
        }
        first = false;
        print_unit(&mut out, &p);
        let active = p.str("ActiveState");
        if !matches!(active.as_str(), "active" | "reloading") && code == exit::SUCCESS {
            code = exit::NOT_RUNNING;
        }
    }
    code
}
