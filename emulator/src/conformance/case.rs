//! The `.case` format:
//!
//! ```text
//! # free comment
//! watch other.service          (extra unit to record besides the defined ones)
//! --- a.service                (a unit file follows, verbatim, until the next `---`)
//! [Service]
//! ExecStart=/bin/sleep 1000
//! --- a.service.d/10-x.conf    (any other file below /etc/systemd/system, e.g. a drop-in)
//! [Service]
//! Environment=X=1
//! --- link t.target.wants/a.service -> a.service   (symlink; a bare name means that unit file)
//! --- mask b.service           (symlink to /dev/null; b.service is recorded)
//! --- steps
//! start a.service [mode]
//! stop a.service [mode]
//! restart a.service [mode]
//! reload a.service [mode]     (ReloadUnit)
//! kill a.service SIGNAL        (KillUnit whom=all, signal name without SIG, e.g. TERM)
//! reset-failed [a.service]
//! sleep-ms 1500                (only where the unit's own timing needs it)
//! wait-idle
//! enable a.service             (EnableUnitFiles, not runtime, no force)
//! disable a.service            (DisableUnitFiles, not runtime)
//! daemon-reload
//! ```
//!
//! After every step the runner waits until no job is pending and states are stable, then
//! records every case unit.

use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Start(String, String),
    Stop(String, String),
    Restart(String, String),
    /// `ReloadUnit`.
    Reload(String, String),
    Kill(String, String),
    ResetFailed(Option<String>),
    SleepMs(u64),
    WaitIdle,
    Enable(String),
    Disable(String),
    DaemonReload,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub line: usize,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub name: String,
    /// (unit name, file text), in file order.
    pub units: Vec<(String, String)>,
    /// Other files below the unit directory: (relative path, text).
    pub files: Vec<(String, String)>,
    /// Symlinks below the unit directory: (relative path, target).
    pub links: Vec<(String, String)>,
    pub watch: Vec<String>,
    pub steps: Vec<Step>,
}

impl Case {
    /// Every unit whose state is recorded: defined units (templates cannot be loaded), then
    /// watched ones.
    pub fn recorded_units(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .units
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| {
                crate::names::UnitName::parse(n).is_some_and(|p| p.instance.as_deref() != Some(""))
            })
            .collect();
        for w in &self.watch {
            if !out.contains(w) {
                out.push(w.clone());
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct CaseError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Start(u, m) => write!(f, "start {u} {m}"),
            Op::Stop(u, m) => write!(f, "stop {u} {m}"),
            Op::Restart(u, m) => write!(f, "restart {u} {m}"),
            Op::Reload(u, m) => write!(f, "reload {u} {m}"),
            Op::Kill(u, s) => write!(f, "kill {u} {s}"),
            Op::ResetFailed(Some(u)) => write!(f, "reset-failed {u}"),
            Op::ResetFailed(None) => write!(f, "reset-failed"),
            Op::SleepMs(n) => write!(f, "sleep-ms {n}"),
            Op::WaitIdle => write!(f, "wait-idle"),
            Op::Enable(u) => write!(f, "enable {u}"),
            Op::Disable(u) => write!(f, "disable {u}"),
            Op::DaemonReload => write!(f, "daemon-reload"),
        }
    }
}

/// Signal names the format accepts, with their Linux numbers.
pub const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("TERM", libc::SIGTERM),
];

pub fn signal_number(name: &str) -> Option<i32> {
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

pub fn load(path: &Path) -> Result<Case, CaseError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| CaseError {
        file: file.clone(),
        line: 0,
        message: format!("cannot read: {e}"),
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&name, &file, &text)
}

enum Section {
    Header,
    Unit(usize),
    File(usize),
    Steps,
}

/// A relative path below the unit directory: no `..`, no leading `/`.
fn valid_rel(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

pub fn parse(name: &str, file: &str, text: &str) -> Result<Case, CaseError> {
    let err = |line: usize, message: String| CaseError {
        file: file.to_string(),
        line,
        message,
    };
    let mut case = Case {
        name: name.to_string(),
        units: Vec::new(),
        files: Vec::new(),
        links: Vec::new(),
        watch: Vec::new(),
        steps: Vec::new(),
    };
    let mut section = Section::Header;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if let Some(rest) = raw.strip_prefix("---") {
            let what = rest.trim();
            let words: Vec<&str> = what.split_whitespace().collect();
            if what == "steps" {
                section = Section::Steps;
            } else if let ["link", rel, "->", target] = words.as_slice() {
                if !valid_rel(rel) {
                    return Err(err(line, format!("invalid link path {rel:?}")));
                }
                case.links.push((rel.to_string(), target.to_string()));
                section = Section::Header;
            } else if let ["mask", u] = words.as_slice() {
                if crate::names::UnitName::parse(u).is_none() {
                    return Err(err(line, format!("invalid unit name {u:?}")));
                }
                case.links.push((u.to_string(), "/dev/null".to_string()));
                if !case.watch.iter().any(|w| w == u) {
                    case.watch.push(u.to_string());
                }
                section = Section::Header;
            } else if what.contains('/') {
                if !valid_rel(what) || case.files.iter().any(|(n, _)| n == what) {
                    return Err(err(line, format!("invalid or repeated file path {what:?}")));
                }
                case.files.push((what.to_string(), String::new()));
                section = Section::File(case.files.len() - 1);
            } else if crate::names::UnitName::parse(what).is_some() {
                if case.units.iter().any(|(n, _)| n == what) {
                    return Err(err(line, format!("unit {what} defined twice")));
                }
                case.units.push((what.to_string(), String::new()));
                section = Section::Unit(case.units.len() - 1);
            } else {
                return Err(err(
                    line,
                    format!(
                        "`---` needs a unit name, a path, `link`, `mask` or `steps`, got {what:?}"
                    ),
                ));
            }
            continue;
        }
        match section {
            Section::Unit(idx) => {
                if let Some((_, body)) = case.units.get_mut(idx) {
                    body.push_str(raw);
                    body.push('\n');
                }
            }
            Section::File(idx) => {
                if let Some((_, body)) = case.files.get_mut(idx) {
                    body.push_str(raw);
                    body.push('\n');
                }
            }
            Section::Header => {
                let t = raw.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                match t.split_whitespace().collect::<Vec<_>>().as_slice() {
                    ["watch", u] if crate::names::UnitName::parse(u).is_some() => {
                        case.watch.push(u.to_string())
                    }
                    _ => {
                        return Err(err(
                            line,
                            format!("expected `watch UNIT` or `---`, got {t:?}"),
                        ))
                    }
                }
            }
            Section::Steps => {
                let t = raw.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                let op = parse_op(t).map_err(|m| err(line, m))?;
                case.steps.push(Step { line, op });
            }
        }
    }
    if case.units.is_empty() && case.links.is_empty() && case.watch.is_empty() {
        return Err(err(0, "no units defined (`--- NAME`)".to_string()));
    }
    if case.steps.is_empty() {
        return Err(err(0, "no steps (`--- steps`)".to_string()));
    }
    Ok(case)
}

fn parse_op(t: &str) -> Result<Op, String> {
    let words: Vec<&str> = t.split_whitespace().collect();
    let unit = |u: &str| -> Result<String, String> {
        crate::names::UnitName::parse(u)
            .map(|_| u.to_string())
            .ok_or_else(|| format!("invalid unit name {u:?}"))
    };
    let mode = |m: Option<&&str>| -> Result<String, String> {
        let m = m.copied().unwrap_or("replace");
        match m {
            "replace"
            | "fail"
            | "isolate"
            | "ignore-dependencies"
            | "ignore-requirements"
            | "replace-irreversibly"
            | "flush" => Ok(m.to_string()),
            _ => Err(format!(
                "job mode {m:?} not supported (replace, fail, isolate, ignore-dependencies, \
                 ignore-requirements, replace-irreversibly, flush)"
            )),
        }
    };
    match words.as_slice() {
        ["start", u, rest @ ..] if rest.len() <= 1 => Ok(Op::Start(unit(u)?, mode(rest.first())?)),
        ["stop", u, rest @ ..] if rest.len() <= 1 => Ok(Op::Stop(unit(u)?, mode(rest.first())?)),
        ["restart", u, rest @ ..] if rest.len() <= 1 => {
            Ok(Op::Restart(unit(u)?, mode(rest.first())?))
        }
        ["reload", u, rest @ ..] if rest.len() <= 1 => {
            Ok(Op::Reload(unit(u)?, mode(rest.first())?))
        }
        ["kill", u, sig] => {
            let s = sig.trim_start_matches("SIG");
            signal_number(s).ok_or_else(|| format!("unknown signal {sig:?}"))?;
            Ok(Op::Kill(unit(u)?, s.to_string()))
        }
        ["reset-failed"] => Ok(Op::ResetFailed(None)),
        ["reset-failed", u] => Ok(Op::ResetFailed(Some(unit(u)?))),
        ["sleep-ms", n] => n
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= 60_000)
            .map(Op::SleepMs)
            .ok_or_else(|| format!("sleep-ms needs milliseconds up to 60000, got {n:?}")),
        ["wait-idle"] => Ok(Op::WaitIdle),
        ["enable", u] => Ok(Op::Enable(unit(u)?)),
        ["disable", u] => Ok(Op::Disable(unit(u)?)),
        ["daemon-reload"] => Ok(Op::DaemonReload),
        _ => Err(format!("unknown step {t:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_steps() {
        let c = parse(
            "x",
            "x.case",
            "# hi\nwatch b.service\n--- a.service\n[Service]\nExecStart=/bin/true\n--- steps\nstart a.service\nkill a.service SIGTERM\nsleep-ms 10\n",
        )
        .unwrap();
        assert_eq!(c.units[0].0, "a.service");
        assert_eq!(c.units[0].1, "[Service]\nExecStart=/bin/true\n");
        assert_eq!(c.recorded_units(), vec!["a.service", "b.service"]);
        assert_eq!(
            c.steps[0].op,
            Op::Start("a.service".into(), "replace".into())
        );
        assert_eq!(c.steps[1].op, Op::Kill("a.service".into(), "TERM".into()));
        assert_eq!(c.steps[2].line, 9);
    }

    #[test]
    fn parses_files_links_masks_and_install_ops() {
        let c = parse(
            "x",
            "x.case",
            "--- a.service\n[Service]\nExecStart=/bin/true\n--- a.service.d/10-x.conf\n[Unit]\nDescription=x\n--- link t.target.wants/a.service -> a.service\n--- mask b.service\n--- steps\nenable a.service\ndaemon-reload\ndisable a.service\n",
        )
        .unwrap();
        assert_eq!(
            c.files,
            vec![(
                "a.service.d/10-x.conf".into(),
                "[Unit]\nDescription=x\n".into()
            )]
        );
        assert_eq!(
            c.links,
            vec![
                ("t.target.wants/a.service".into(), "a.service".into()),
                ("b.service".into(), "/dev/null".into())
            ]
        );
        assert_eq!(c.recorded_units(), vec!["a.service", "b.service"]);
        assert_eq!(c.steps[0].op, Op::Enable("a.service".into()));
        assert_eq!(c.steps[1].op, Op::DaemonReload);
        assert_eq!(c.steps[2].op.to_string(), "disable a.service");
        let e = parse("x", "x.case", "--- ../evil.conf\n--- steps\nwait-idle\n").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse("x", "x.case", "--- a.service\n--- steps\nfrobnicate a\n").unwrap_err();
        assert_eq!(e.to_string(), "x.case:3: unknown step \"frobnicate a\"");
        let e = parse("x", "x.case", "--- a.service\n--- steps\nsleep-ms soon\n").unwrap_err();
        assert_eq!(e.line, 3);
    }
}
