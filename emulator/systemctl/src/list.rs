//! `list-units` and `list-unit-files`: tables with systemctl's legends.

use crate::args::Opts;
use crate::conn::{ListedUnit, Manager};
use crate::preset::Presets;
use crate::{exit, fmt, names};
use std::io::Write;

const UNIT_FILES_HINT: &str = "To show all installed unit files use 'systemctl list-unit-files'.";

fn matches_patterns(patterns: &[String], name: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| fmt::glob(p, name))
}

fn type_ok(o: &Opts, name: &str) -> bool {
    o.types.is_empty() || o.types.iter().any(|t| t == names::unit_type(name))
}

/// systemctl's default view: inactive units without a job only with --all or --state=.
fn shown(o: &Opts, u: &ListedUnit) -> bool {
    if !o.states.is_empty() {
        return o.states.iter().any(|s| *s == u.2 || *s == u.3 || *s == u.4);
    }
    o.all || u.7 > 0 || u.3 != "inactive"
}

pub async fn units(m: &Manager, o: &Opts, patterns: &[String]) -> i32 {
    let list: Vec<ListedUnit> = match m.manager("ListUnits", &()).await {
        Ok((l,)) => l,
        Err(e) => {
            eprintln!("Failed to list units: {}", e.text());
            return exit::FAILURE;
        }
    };
    let mut list: Vec<ListedUnit> = list
        .into_iter()
        .filter(|u| matches_patterns(patterns, &u.0) && type_ok(o, &u.0) && shown(o, u))
        .collect();
    list.sort_by(|a, b| (names::unit_type(&a.0), &a.0).cmp(&(names::unit_type(&b.0), &b.0)));
    let with_job = list.iter().any(|u| u.7 > 0);
    let mut rows = Vec::new();
    if !o.no_legend {
        let mut h = vec!["UNIT", "LOAD", "ACTIVE", "SUB"];
        if with_job {
            h.push("JOB");
        }
        h.push("DESCRIPTION");
        rows.push(h.into_iter().map(String::from).collect::<Vec<_>>());
    }
    for u in &list {
        let mut r = vec![u.0.clone(), u.2.clone(), u.3.clone(), u.4.clone()];
        if with_job {
            r.push(if u.7 > 0 { u.8.clone() } else { String::new() });
        }
        r.push(u.1.clone());
        rows.push(r);
    }
    let mut out = std::io::stdout().lock();
    let offset = usize::from(!o.no_legend);
    for (i, line) in fmt::table(&rows).into_iter().enumerate() {
        let prefix = if o.plain {
            ""
        } else if i >= offset
            && (matches!(
                list[i - offset].2.as_str(),
                "error" | "not-found" | "bad-setting"
            ) || list[i - offset].3 == "failed")
        {
            "● "
        } else {
            "  "
        };
        let _ = writeln!(out, "{prefix}{}", line.trim_end());
    }
    if o.no_legend {
        return exit::SUCCESS;
    }
    if !list.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "LOAD   = Reflects whether the unit definition was properly loaded.\n\
             ACTIVE = The high-level unit activation state, i.e. generalization of SUB.\n\
             SUB    = The low-level unit activation state, values depend on unit type."
        );
        if with_job {
            let _ = writeln!(out, "JOB    = Pending job for the unit.");
        }
    }
    let n = list.len();
    // With only some states asked for, the hints about --all and unit files would mislead.
    if o.all || o.states.iter().any(|s| s == "inactive") {
        let _ = writeln!(out, "{n} loaded units listed.");
        let _ = writeln!(out, "{UNIT_FILES_HINT}");
    } else if o.states.is_empty() {
        let _ = writeln!(
            out,
            "{n} loaded units listed. Pass --all to see loaded but inactive units, too."
        );
        let _ = writeln!(out, "{UNIT_FILES_HINT}");
    } else {
        let _ = writeln!(out, "{n} loaded units listed.");
    }
    exit::SUCCESS
}

pub async fn unit_files(m: &Manager, o: &Opts, patterns: &[String]) -> i32 {
    let list: Vec<(String, String)> = match m.manager("ListUnitFiles", &()).await {
        Ok((l,)) => l,
        Err(e) => {
            eprintln!("Failed to list unit files: {}", e.text());
            return exit::FAILURE;
        }
    };
    let mut files: Vec<(String, String)> = list
        .into_iter()
        .filter_map(|(path, state)| {
            let base = path.rsplit('/').next().unwrap_or(&path).to_string();
            let keep = matches_patterns(patterns, &base)
                && type_ok(o, &base)
                && (o.states.is_empty() || o.states.contains(&state));
            keep.then_some((base, state))
        })
        .collect();
    files.sort();
    let presets = Presets::load();
    let mut rows = Vec::new();
    if !o.no_legend {
        rows.push(vec![
            "UNIT FILE".to_string(),
            "STATE".to_string(),
            "PRESET".to_string(),
        ]);
    }
    for (name, state) in &files {
        let preset = if matches!(state.as_str(), "enabled" | "disabled") {
            presets.query(name)
        } else {
            "-"
        };
        rows.push(vec![name.clone(), state.clone(), preset.to_string()]);
    }
    let mut out = std::io::stdout().lock();
    for line in fmt::table(&rows) {
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if !o.no_legend {
        let _ = writeln!(out, "\n{} unit files listed.", files.len());
    }
    // Like systemctl, an empty listing is a failure (nothing matched).
    if files.is_empty() {
        exit::FAILURE
    } else {
        exit::SUCCESS
    }
}
