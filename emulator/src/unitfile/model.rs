//! Turning parsed assignments into a typed unit definition, with systemd's validation.

use super::cmdline::{parse_exec, split_words, Command};
use super::parser::parse;
use super::specifier::SpecifierContext;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    Simple,
    Exec,
    Oneshot,
    Notify,
    Forking,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Simple => "simple",
            ServiceType::Exec => "exec",
            ServiceType::Oneshot => "oneshot",
            ServiceType::Notify => "notify",
            ServiceType::Forking => "forking",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillMode {
    ControlGroup,
    Mixed,
    Process,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    OnSuccess,
    OnFailure,
    OnAbnormal,
    OnWatchdog,
    OnAbort,
    Always,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnSuccess => "on-success",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::OnAbnormal => "on-abnormal",
            RestartPolicy::OnWatchdog => "on-watchdog",
            RestartPolicy::OnAbort => "on-abort",
            RestartPolicy::Always => "always",
        }
    }
}

/// Who may send sd_notify messages (NotifyAccess=).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyAccess {
    None,
    Main,
    Exec,
    All,
}

impl NotifyAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyAccess::None => "none",
            NotifyAccess::Main => "main",
            NotifyAccess::Exec => "exec",
            NotifyAccess::All => "all",
        }
    }
}

pub type ExecCommand = Command;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDef {
    pub service_type: ServiceType,
    pub exec_start_pre: Vec<ExecCommand>,
    pub exec_start: Vec<ExecCommand>,
    pub exec_start_post: Vec<ExecCommand>,
    pub exec_stop: Vec<ExecCommand>,
    pub exec_stop_post: Vec<ExecCommand>,
    pub exec_reload: Vec<ExecCommand>,
    pub remain_after_exit: bool,
    pub kill_mode: KillMode,
    pub success_exit_status: Vec<i32>,
    pub success_signals: Vec<i32>,
    pub restart: RestartPolicy,
    pub restart_sec_us: u64,
    /// RestartPreventExitStatus= / RestartForceExitStatus=: (exit codes, signals).
    pub restart_prevent: (Vec<i32>, Vec<i32>),
    pub restart_force: (Vec<i32>, Vec<i32>),
    pub kill_signal: i32,
    /// RestartKillSignal=: `None` means KillSignal=.
    pub restart_kill_signal: Option<i32>,
    pub send_sigkill: bool,
    pub timeout_stop_us: u64,
    /// `u64::MAX` for `infinity`; `None` for the default (see [`ServiceDef::start_timeout_us`]).
    pub timeout_start_us: Option<u64>,
    /// `None` until set: the default depends on Type= (see [`ServiceDef::notify_access`]).
    pub notify_access_set: Option<NotifyAccess>,
    pub pid_file: Option<String>,
    pub environment: Vec<(String, String)>,
    /// EnvironmentFile=: (absolute path, `-`: ignore if missing).
    pub environment_files: Vec<(String, bool)>,
    /// WorkingDirectory=: (absolute path or `~`, `-`: ignore if missing).
    pub working_directory: Option<(String, bool)>,
    pub unset_environment: Vec<String>,
}

impl ServiceDef {
    /// The start timeout: 90 s by default, none for Type=oneshot (as systemd does).
    pub fn start_timeout_us(&self) -> u64 {
        match self.timeout_start_us {
            Some(us) => us,
            None if self.service_type == ServiceType::Oneshot => u64::MAX,
            None => 90_000_000,
        }
    }

    /// systemd defaults NotifyAccess= to `main` for Type=notify and `none` otherwise.
    pub fn notify_access(&self) -> NotifyAccess {
        match self.notify_access_set {
            Some(a) => a,
            None if self.service_type == ServiceType::Notify => NotifyAccess::Main,
            None => NotifyAccess::None,
        }
    }
}

impl Default for ServiceDef {
    fn default() -> Self {
        ServiceDef {
            service_type: ServiceType::Simple,
            exec_start_pre: Vec::new(),
            exec_start: Vec::new(),
            exec_start_post: Vec::new(),
            exec_stop: Vec::new(),
            exec_stop_post: Vec::new(),
            exec_reload: Vec::new(),
            remain_after_exit: false,
            kill_mode: KillMode::ControlGroup,
            success_exit_status: Vec::new(),
            success_signals: Vec::new(),
            restart: RestartPolicy::No,
            restart_sec_us: 100_000,
            restart_prevent: (Vec::new(), Vec::new()),
            restart_force: (Vec::new(), Vec::new()),
            kill_signal: libc::SIGTERM,
            restart_kill_signal: None,
            send_sigkill: true,
            timeout_stop_us: 90_000_000,
            timeout_start_us: None,
            notify_access_set: None,
            pid_file: None,
            environment: Vec::new(),
            environment_files: Vec::new(),
            working_directory: None,
            unset_environment: Vec::new(),
        }
    }
}

// Unit definitions are few and long-lived; boxing would only add indirection at every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitKind {
    Service(ServiceDef),
    Target,
    Socket(super::socket::SocketDef),
    /// Types the emulator does not run (socket, timer, ...): they only carry dependencies.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deps {
    pub requires: Vec<String>,
    pub requisite: Vec<String>,
    pub wants: Vec<String>,
    pub binds_to: Vec<String>,
    pub upholds: Vec<String>,
    pub conflicts: Vec<String>,
    pub after: Vec<String>,
    pub before: Vec<String>,
    pub part_of: Vec<String>,
    pub on_failure: Vec<String>,
    pub on_success: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitDef {
    pub name: String,
    pub description: String,
    pub fragment_path: String,
    pub deps: Deps,
    pub stop_when_unneeded: bool,
    pub refuse_manual_start: bool,
    pub refuse_manual_stop: bool,
    /// `DefaultDependencies=` (targets then order themselves after what they pull in).
    pub default_dependencies: bool,
    pub allow_isolate: bool,
    pub ignore_on_isolate: bool,
    /// OnFailureJobMode=/OnSuccessJobMode=: how OnFailure=/OnSuccess= units are enqueued.
    pub on_failure_job_mode: crate::engine::JobMode,
    pub on_success_job_mode: crate::engine::JobMode,
    pub has_install: bool,
    /// Every name of the unit (`Names`): its id first, then aliases.
    pub names: Vec<String>,
    /// Drop-in files applied after the fragment, in the order they were applied.
    pub drop_in_paths: Vec<String>,
    /// StartLimitIntervalSec= (0 disables the limit) and StartLimitBurst=.
    pub start_limit_interval_us: u64,
    pub start_limit_burst: u32,
    pub kind: UnitKind,
}

/// Why a unit file could not be loaded, mapped to systemd's LoadState.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    /// `bad-setting` or `error`.
    pub load_state: &'static str,
    /// D-Bus error name for `LoadError`.
    pub error_name: &'static str,
    pub message: String,
}

#[derive(Debug)]
pub struct BuildOutcome {
    pub result: Result<UnitDef, LoadFailure>,
    /// Already formatted `file:line: message` lines, like systemd logs them.
    pub warnings: Vec<String>,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// Parses systemd time spans like `90`, `5s`, `100ms`, `1h 30min`, `2.5d`, `infinity` into µs.
/// A bare number is seconds. Sums that overflow `u64` are rejected (systemd answers `ERANGE`),
/// and so is anything negative or without digits.
pub fn parse_timespan_us(v: &str) -> Option<u64> {
    let v = v.trim();
    if v == "infinity" {
        return Some(u64::MAX);
    }
    if v.is_empty() {
        return None;
    }
    // Nanoseconds in u128 so that no product of a u64-sized number and a unit can overflow.
    let mut total_ns: u128 = 0;
    let mut rest = v;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_digits, after) = rest.split_at(int_end);
        let (frac_digits, after) = match after.strip_prefix('.') {
            Some(a) => {
                let end = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(end)
            }
            None => ("", after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return None;
        }
        let after = after.trim_start();
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == '.')
            .unwrap_or(after.len());
        let mult = timespan_unit_ns(&after[..unit_end])?;
        total_ns = total_ns.checked_add(timespan_part_ns(int_digits, frac_digits, mult)?)?;
        rest = after[unit_end..].trim_start();
    }
    u64::try_from(total_ns / 1000).ok()
}

/// Timeout*Sec= values: systemd 252 reads 0 as "no timeout", not as an instant failure.
fn parse_service_timeout_us(v: &str) -> Option<u64> {
    parse_timespan_us(v).map(|us| if us == 0 { u64::MAX } else { us })
}

/// Nanoseconds per unit; a missing unit means seconds. systemd 252 rejects `ns` in unit-file
/// time spans ("Failed to parse ... 5000ns"), so it is not accepted here either.
fn timespan_unit_ns(unit: &str) -> Option<u128> {
    const SEC: u128 = 1_000_000_000;
    const DAY: u128 = 86_400 * SEC;
    Some(match unit {
        "us" | "usec" | "µs" | "μs" => 1_000,
        "ms" | "msec" => 1_000_000,
        "" | "s" | "sec" | "second" | "seconds" => SEC,
        "m" | "min" | "minute" | "minutes" => 60 * SEC,
        "h" | "hr" | "hour" | "hours" => 3_600 * SEC,
        "d" | "day" | "days" => DAY,
        "w" | "week" | "weeks" => 7 * DAY,
        // 365.25/12 days (≈30.44) and 365.25 days, as systemd defines them.
        "M" | "month" | "months" => 2_629_800 * SEC,
        "y" | "year" | "years" => 31_557_600 * SEC,
        _ => return None,
    })
}

/// `int.frac` times `mult` ns; `None` when the integer part alone exceeds what a u64 µs can hold.
fn timespan_part_ns(int_digits: &str, frac_digits: &str, mult: u128) -> Option<u128> {
    let int: u128 = if int_digits.is_empty() {
        0
    } else {
        int_digits.parse::<u64>().ok()?.into()
    };
    let mut part = int.checked_mul(mult)?;
    // Digits past the 18th cannot change a nanosecond count of any unit below a year by a whole ns.
    let mut scale = mult;
    for d in frac_digits.bytes().take(18) {
        scale /= 10;
        part += u128::from(d - b'0') * scale;
        if scale == 0 {
            break;
        }
    }
    Some(part)
}

fn signal_number(name: &str) -> Option<i32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&full)
        .ok()
        .map(|s| s as i32)
}

struct Builder<'a> {
    path: &'a str,
    spec: SpecifierContext,
    warnings: Vec<String>,
}

impl Builder<'_> {
    fn warn(&mut self, line: usize, msg: String) {
        self.warnings
            .push(format!("{}:{}: {}", self.path, line, msg));
    }

    /// Appends whitespace-separated unit names; an empty value resets the list.
    fn dep_list(&mut self, list: &mut Vec<String>, value: &str, line: usize, key: &str) {
        if value.is_empty() {
            list.clear();
            return;
        }
        let expanded = match self.spec.expand(value) {
            Ok(v) => v,
            Err(e) => {
                self.warn(
                    line,
                    format!("Failed to resolve unit specifiers in {key}={value}: {e}, ignoring."),
                );
                return;
            }
        };
        for word in expanded.split_whitespace() {
            if crate::names::UnitName::parse(word).is_some() {
                if !list.iter().any(|x| x == word) {
                    list.push(word.to_string());
                }
            } else {
                self.warn(
                    line,
                    format!("Failed to add dependency on {word}, ignoring: Invalid argument"),
                );
            }
        }
    }

    /// KillSignal=-style values: a signal name (with or without SIG) or number.
    fn signal(&mut self, target: &mut i32, value: &str, line: usize, key: &str) {
        let n = value
            .parse::<i32>()
            .ok()
            .filter(|n| nix::sys::signal::Signal::try_from(*n).is_ok())
            .or_else(|| signal_number(value));
        match n {
            Some(n) => *target = n,
            None => self.warn(
                line,
                format!("Failed to parse signal, ignoring: {key}={value}"),
            ),
        }
    }

    /// RestartPreventExitStatus=-style lists of exit codes (0..=255) and signal names; an
    /// empty value resets the list.
    fn exit_status_set(
        &mut self,
        target: &mut (Vec<i32>, Vec<i32>),
        value: &str,
        line: usize,
        key: &str,
    ) {
        if value.is_empty() {
            *target = (Vec::new(), Vec::new());
        }
        for w in value.split_whitespace() {
            match w.parse::<i32>() {
                Ok(n) if (0..=255).contains(&n) => target.0.push(n),
                _ => match signal_number(w) {
                    Some(s) => target.1.push(s),
                    None => self.warn(line, format!("Failed to parse {key} value, ignoring: {w}")),
                },
            }
        }
    }

    fn boolean(&mut self, target: &mut bool, value: &str, line: usize, key: &str) {
        match parse_bool(value) {
            Some(b) => *target = b,
            None => self.warn(
                line,
                format!("Failed to parse boolean value, ignoring: {key}={value}"),
            ),
        }
    }

    fn job_mode(&mut self, target: &mut crate::engine::JobMode, value: &str, line: usize) {
        match crate::engine::JobMode::parse(value) {
            Some(m) => *target = m,
            None => self.warn(line, format!("Failed to parse job mode, ignoring: {value}")),
        }
    }

    fn exec(
        &mut self,
        list: &mut Vec<ExecCommand>,
        value: &str,
        line: usize,
        key: &str,
    ) -> Result<(), LoadFailure> {
        if value.is_empty() {
            list.clear();
            return Ok(());
        }
        let expanded = self
            .spec
            .expand(value)
            .map_err(|e| bad_setting(self.path, line, key, &e))?;
        let cmds = parse_exec(&expanded).map_err(|e| bad_setting(self.path, line, key, &e))?;
        list.extend(cmds);
        Ok(())
    }
}

fn bad_setting(path: &str, line: usize, key: &str, msg: &str) -> LoadFailure {
    LoadFailure {
        load_state: "bad-setting",
        error_name: "org.freedesktop.systemd1.BadUnitSetting",
        message: format!("{path}:{line}: Invalid {key}= setting: {msg}"),
    }
}

/// Builds a unit definition named `name` from the file `path` with contents `text`.
pub fn build(name: &str, path: &str, text: &str) -> BuildOutcome {
    build_files(name, &[(path.to_string(), text.to_string())])
}

/// Builds a unit definition from its fragment (`files[0]`) followed by its drop-ins, applied in
/// order so that later assignments override or (when empty) reset earlier ones.
pub fn build_files(name: &str, files: &[(String, String)]) -> BuildOutcome {
    let path = files.first().map(|(p, _)| p.as_str()).unwrap_or("");
    let mut b = Builder {
        path,
        spec: SpecifierContext::new(name),
        warnings: Vec::new(),
    };
    let result = build_inner(name, files, &mut b);
    BuildOutcome {
        result,
        warnings: b.warnings,
    }
}

/// Known `[Install]` keys; they only matter to enable/disable, not to loading.
const INSTALL_KEYS: &[&str] = &[
    "WantedBy",
    "RequiredBy",
    "UpheldBy",
    "Alias",
    "Also",
    "DefaultInstance",
];

fn build_inner<'a>(
    name: &str,
    files: &'a [(String, String)],
    b: &mut Builder<'a>,
) -> Result<UnitDef, LoadFailure> {
    let path = b.path;
    let mut assignments = Vec::new();
    for (fpath, text) in files {
        b.path = fpath;
        // systemd logs where the file broke and reports EBADMSG as the load error.
        let (list, warnings) = parse(text).map_err(|e| {
            b.warn(e.line, e.message.clone());
            LoadFailure {
                load_state: "error",
                error_name: "org.freedesktop.DBus.Error.InconsistentMessage",
                message: format!("Unit {name} failed to load properly, please adjust/correct and reload service manager: Bad message"),
            }
        })?;
        for w in warnings {
            b.warn(w.line, w.message);
        }
        assignments.extend(list.into_iter().map(|a| (fpath.as_str(), a)));
    }
    b.path = path;
    let suffix = name.rsplit_once('.').map(|(_, s)| s).unwrap_or("");
    let is_service = suffix == "service";
    let is_socket = suffix == "socket";
    let mut sock = super::socket::SocketDef::new(name);
    let mut def = UnitDef {
        name: name.to_string(),
        description: String::new(),
        fragment_path: path.to_string(),
        deps: Deps::default(),
        stop_when_unneeded: false,
        refuse_manual_start: false,
        refuse_manual_stop: false,
        default_dependencies: true,
        allow_isolate: false,
        ignore_on_isolate: false,
        on_failure_job_mode: crate::engine::JobMode::Replace,
        on_success_job_mode: crate::engine::JobMode::Replace,
        has_install: false,
        names: vec![name.to_string()],
        drop_in_paths: files.iter().skip(1).map(|(p, _)| p.clone()).collect(),
        start_limit_interval_us: 10_000_000,
        start_limit_burst: 5,
        kind: UnitKind::Other,
    };
    let mut svc = ServiceDef::default();
    let mut type_line = 0;
    // systemd reports an unknown section once, at its header.
    let mut unknown_sections: Vec<(&str, usize)> = Vec::new();
    for (fpath, a) in &assignments {
        b.path = fpath;
        let (v, line, key) = (a.value.as_str(), a.line, a.key.as_str());
        match (a.section.as_str(), key) {
            ("Unit", "Description") => {
                def.description = b.spec.expand(v).unwrap_or_else(|_| v.to_string());
            }
            ("Unit", "Requires") => b.dep_list(&mut def.deps.requires, v, line, key),
            ("Unit", "Requisite") => b.dep_list(&mut def.deps.requisite, v, line, key),
            ("Unit", "Wants") => b.dep_list(&mut def.deps.wants, v, line, key),
            ("Unit", "BindsTo") => b.dep_list(&mut def.deps.binds_to, v, line, key),
            ("Unit", "Upholds") => b.dep_list(&mut def.deps.upholds, v, line, key),
            ("Unit", "Conflicts") => b.dep_list(&mut def.deps.conflicts, v, line, key),
            ("Unit", "After") => b.dep_list(&mut def.deps.after, v, line, key),
            ("Unit", "Before") => b.dep_list(&mut def.deps.before, v, line, key),
            ("Unit", "PartOf") => b.dep_list(&mut def.deps.part_of, v, line, key),
            ("Unit", "OnFailure") => b.dep_list(&mut def.deps.on_failure, v, line, key),
            ("Unit", "OnSuccess") => b.dep_list(&mut def.deps.on_success, v, line, key),
            ("Unit", "StopWhenUnneeded") => b.boolean(&mut def.stop_when_unneeded, v, line, key),
            ("Unit", "RefuseManualStart") => b.boolean(&mut def.refuse_manual_start, v, line, key),
            ("Unit", "RefuseManualStop") => b.boolean(&mut def.refuse_manual_stop, v, line, key),
            ("Unit", "DefaultDependencies") => {
                b.boolean(&mut def.default_dependencies, v, line, key)
            }
            ("Unit", "AllowIsolate") => b.boolean(&mut def.allow_isolate, v, line, key),
            ("Unit", "IgnoreOnIsolate") => b.boolean(&mut def.ignore_on_isolate, v, line, key),
            ("Unit", "OnFailureJobMode") => b.job_mode(&mut def.on_failure_job_mode, v, line),
            ("Unit", "OnSuccessJobMode") => b.job_mode(&mut def.on_success_job_mode, v, line),
            ("Unit", "Documentation") => {}
            ("Install", k) if INSTALL_KEYS.contains(&k) => def.has_install = true,
            (sec, _) if sec.starts_with("X-") => {}
            (sec @ "Service", _) if !is_service => {
                if !unknown_sections.contains(&(*fpath, a.section_line)) {
                    unknown_sections.push((fpath, a.section_line));
                    b.warn(
                        a.section_line,
                        format!("Unknown section '{sec}'. Ignoring."),
                    );
                }
            }
            ("Socket", k) if is_socket => socket_key(b, &mut sock, k, v, line)?,
            ("Service", "Type") => {
                type_line = line;
                svc.service_type = match v {
                    "simple" => ServiceType::Simple,
                    "exec" => ServiceType::Exec,
                    "oneshot" => ServiceType::Oneshot,
                    "notify" => ServiceType::Notify,
                    "forking" => ServiceType::Forking,
                    _ => {
                        b.warn(line, format!("Failed to parse service type, ignoring: {v}"));
                        svc.service_type
                    }
                }
            }
            ("Service", "ExecStartPre") => b.exec(&mut svc.exec_start_pre, v, line, key)?,
            ("Service", "ExecStart") => b.exec(&mut svc.exec_start, v, line, key)?,
            ("Service", "ExecStartPost") => b.exec(&mut svc.exec_start_post, v, line, key)?,
            ("Service", "ExecStop") => b.exec(&mut svc.exec_stop, v, line, key)?,
            ("Service", "ExecStopPost") => b.exec(&mut svc.exec_stop_post, v, line, key)?,
            ("Service", "KillSignal") => b.signal(&mut svc.kill_signal, v, line, key),
            ("Service", "RestartKillSignal") => {
                let mut sig = svc.restart_kill_signal.unwrap_or(svc.kill_signal);
                b.signal(&mut sig, v, line, key);
                svc.restart_kill_signal = Some(sig);
            }
            ("Service", "SendSIGKILL") => b.boolean(&mut svc.send_sigkill, v, line, key),
            ("Service", "RestartPreventExitStatus") => {
                b.exit_status_set(&mut svc.restart_prevent, v, line, key)
            }
            ("Service", "RestartForceExitStatus") => {
                b.exit_status_set(&mut svc.restart_force, v, line, key)
            }
            ("Service", "ExecReload") => b.exec(&mut svc.exec_reload, v, line, key)?,
            ("Service", "RemainAfterExit") => b.boolean(&mut svc.remain_after_exit, v, line, key),
            ("Service", "KillMode") => {
                svc.kill_mode = match v {
                    "control-group" => KillMode::ControlGroup,
                    "mixed" => KillMode::Mixed,
                    "process" => KillMode::Process,
                    "none" => KillMode::None,
                    _ => {
                        b.warn(line, format!("Failed to parse kill mode, ignoring: {v}"));
                        svc.kill_mode
                    }
                }
            }
            ("Service", "SuccessExitStatus") => {
                if v.is_empty() {
                    svc.success_exit_status.clear();
                    svc.success_signals.clear();
                }
                for w in v.split_whitespace() {
                    if let Ok(n) = w.parse::<i32>() {
                        if (0..=255).contains(&n) {
                            svc.success_exit_status.push(n);
                            continue;
                        }
                    }
                    match signal_number(w) {
                        Some(s) => svc.success_signals.push(s),
                        None => b.warn(line, format!("Failed to parse {key} value, ignoring: {w}")),
                    }
                }
            }
            ("Service", "Restart") => {
                svc.restart = match v {
                    "no" => RestartPolicy::No,
                    "on-success" => RestartPolicy::OnSuccess,
                    "on-failure" => RestartPolicy::OnFailure,
                    "on-abnormal" => RestartPolicy::OnAbnormal,
                    "on-watchdog" => RestartPolicy::OnWatchdog,
                    "on-abort" => RestartPolicy::OnAbort,
                    "always" => RestartPolicy::Always,
                    _ => {
                        b.warn(
                            line,
                            format!("Failed to parse service restart specifier, ignoring: {v}"),
                        );
                        svc.restart
                    }
                }
            }
            ("Service", "RestartSec") => match parse_timespan_us(v) {
                Some(us) => svc.restart_sec_us = us,
                None => b.warn(line, format!("Failed to parse {key}, ignoring: {v}")),
            },
            ("Service", "TimeoutStopSec") => match parse_service_timeout_us(v) {
                Some(us) => svc.timeout_stop_us = us,
                None => b.warn(line, format!("Failed to parse {key}, ignoring: {v}")),
            },
            ("Service", "TimeoutStartSec") => match parse_service_timeout_us(v) {
                Some(us) => svc.timeout_start_us = Some(us),
                None => b.warn(line, format!("Failed to parse {key}, ignoring: {v}")),
            },
            ("Service", "TimeoutSec") => match parse_service_timeout_us(v) {
                Some(us) => {
                    svc.timeout_start_us = Some(us);
                    svc.timeout_stop_us = us;
                }
                None => b.warn(line, format!("Failed to parse {key}, ignoring: {v}")),
            },
            ("Service", "NotifyAccess") => {
                svc.notify_access_set = match v {
                    "none" => Some(NotifyAccess::None),
                    "main" => Some(NotifyAccess::Main),
                    "exec" => Some(NotifyAccess::Exec),
                    "all" => Some(NotifyAccess::All),
                    "" => None,
                    _ => {
                        b.warn(line, format!("Failed to parse {key}, ignoring: {v}"));
                        svc.notify_access_set
                    }
                }
            }
            ("Service", "PIDFile") => {
                svc.pid_file = match b.spec.expand(v) {
                    Ok(p) if p.is_empty() => None,
                    Ok(p) if p.starts_with('/') => Some(p),
                    Ok(p) => Some(format!("/run/{p}")),
                    Err(e) => {
                        b.warn(line, format!("Failed to resolve {key}={v}: {e}, ignoring."));
                        svc.pid_file.take()
                    }
                }
            }
            ("Unit", "StartLimitIntervalSec") | ("Service", "StartLimitInterval") => {
                match parse_timespan_us(v) {
                    Some(us) => def.start_limit_interval_us = us,
                    None => b.warn(line, format!("Failed to parse {key}, ignoring: {v}")),
                }
            }
            ("Unit", "StartLimitBurst") | ("Service", "StartLimitBurst") => match v.parse() {
                Ok(n) => def.start_limit_burst = n,
                Err(_) => b.warn(line, format!("Failed to parse {key}, ignoring: {v}")),
            },
            ("Service", "EnvironmentFile") => {
                if v.is_empty() {
                    svc.environment_files.clear();
                }
                match b.spec.expand(v) {
                    Ok(e) if e.is_empty() => {}
                    Ok(e) => {
                        let (path, optional) = match e.strip_prefix('-') {
                            Some(p) => (p.to_string(), true),
                            None => (e, false),
                        };
                        if path.starts_with('/') {
                            svc.environment_files.push((path, optional));
                        } else {
                            b.warn(line, format!("Path '{path}' is not absolute, ignoring."));
                        }
                    }
                    Err(e) => b.warn(line, format!("Failed to resolve {key}={v}: {e}, ignoring.")),
                }
            }
            ("Service", "WorkingDirectory") => match b.spec.expand(v) {
                Ok(e) if e.is_empty() => svc.working_directory = None,
                Ok(e) => {
                    let (path, optional) = match e.strip_prefix('-') {
                        Some(p) => (p.to_string(), true),
                        None => (e, false),
                    };
                    if path.starts_with('/') || path == "~" {
                        svc.working_directory = Some((path, optional));
                    } else {
                        b.warn(line, format!("Path '{path}' is not absolute, ignoring."));
                    }
                }
                Err(e) => b.warn(line, format!("Failed to resolve {key}={v}: {e}, ignoring.")),
            },
            ("Service", "UnsetEnvironment") => {
                if v.is_empty() {
                    svc.unset_environment.clear();
                }
                match split_words(v) {
                    Ok(words) => svc.unset_environment.extend(words),
                    Err(e) => b.warn(line, format!("Invalid {key}= value, ignoring: {e}")),
                }
            }
            ("Service", "Environment") => {
                if v.is_empty() {
                    svc.environment.clear();
                }
                let expanded = b.spec.expand(v).unwrap_or_else(|_| v.to_string());
                match split_words(&expanded) {
                    Ok(words) => {
                        for w in words {
                            match w.split_once('=') {
                                Some((k, val)) if !k.is_empty() => {
                                    svc.environment.push((k.to_string(), val.to_string()))
                                }
                                _ => b.warn(
                                    line,
                                    format!("Invalid environment assignment, ignoring: {w}"),
                                ),
                            }
                        }
                    }
                    Err(e) => b.warn(
                        line,
                        format!("Invalid environment assignments, ignoring: {e}"),
                    ),
                }
            }
            (sec @ ("Unit" | "Service" | "Install"), _) => {
                b.warn(
                    line,
                    format!("Unknown key '{key}' in section [{sec}], ignoring."),
                );
            }
            (sec, _) => {
                if !unknown_sections.contains(&(*fpath, a.section_line)) {
                    unknown_sections.push((fpath, a.section_line));
                    b.warn(
                        a.section_line,
                        format!("Unknown section '{sec}'. Ignoring."),
                    );
                }
            }
        }
    }
    b.path = path;
    validate_isolate_handlers(path, &def)?;
    if is_service {
        validate_service(path, &svc, type_line)?;
        def.kind = UnitKind::Service(svc);
    } else if suffix == "target" {
        def.kind = UnitKind::Target;
    } else if is_socket {
        validate_socket(path, &mut def, sock)?;
    }
    Ok(def)
}

/// One `[Socket]` assignment.
fn socket_key(
    b: &mut Builder,
    sock: &mut super::socket::SocketDef,
    key: &str,
    v: &str,
    line: usize,
) -> Result<(), LoadFailure> {
    use super::socket::{parse_mode, SocketType};
    let listen = match key {
        "ListenStream" => Some(SocketType::Stream),
        "ListenDatagram" => Some(SocketType::Datagram),
        _ => None,
    };
    if let Some(t) = listen {
        let expanded = b.spec.expand(v).unwrap_or_else(|_| v.to_string());
        if let Err(e) = sock.add_listen(t, &expanded) {
            b.warn(
                line,
                format!("Failed to parse address value in '{key}={v}', ignoring: {e}"),
            );
        }
        return Ok(());
    }
    match key {
        "Service" => {
            let name = b.spec.expand(v).unwrap_or_else(|_| v.to_string());
            if !name.ends_with(".service") || crate::names::UnitName::parse(&name).is_none() {
                return Err(bad_setting(b.path, line, key, "not a service unit name"));
            }
            sock.service = name;
        }
        "SocketMode" => match parse_mode(v) {
            Some(m) => sock.socket_mode = m,
            None => b.warn(
                line,
                format!("Failed to parse mode value '{v}' in {key}=, ignoring."),
            ),
        },
        "RemoveOnStop" => b.boolean(&mut sock.remove_on_stop, v, line, key),
        "Accept" => b.boolean(&mut sock.accept, v, line, key),
        _ => b.warn(
            line,
            format!("Unsupported key '{key}' in section [Socket], ignoring."),
        ),
    }
    Ok(())
}

/// A socket needs something to listen on; it is ordered before the service it triggers, as
/// systemd's implicit dependency.
fn validate_socket(
    path: &str,
    def: &mut UnitDef,
    sock: super::socket::SocketDef,
) -> Result<(), LoadFailure> {
    let fail = |msg: &str| LoadFailure {
        load_state: "bad-setting",
        error_name: "org.freedesktop.systemd1.BadUnitSetting",
        message: format!("{path}: {msg}"),
    };
    if sock.listen.is_empty() {
        return Err(fail("Unit has no Listen setting (ListenStream=, ListenDatagram=, ListenFIFO=, ...). Refusing."));
    }
    if sock.accept {
        return Err(fail(
            "Accept=yes (a service instance per connection) is not supported by the emulator. Refusing.",
        ));
    }
    if !def.deps.before.contains(&sock.service) {
        def.deps.before.push(sock.service.clone());
    }
    def.kind = UnitKind::Socket(sock);
    Ok(())
}

/// systemd's unit_verify: an isolating handler must be the only one, since each isolate
/// would stop the others.
fn validate_isolate_handlers(path: &str, def: &UnitDef) -> Result<(), LoadFailure> {
    let checks = [
        ("OnFailure", def.on_failure_job_mode, &def.deps.on_failure),
        ("OnSuccess", def.on_success_job_mode, &def.deps.on_success),
    ];
    for (key, mode, handlers) in checks {
        if mode == crate::engine::JobMode::Isolate && handlers.len() > 1 {
            return Err(LoadFailure {
                load_state: "bad-setting",
                error_name: "org.freedesktop.systemd1.BadUnitSetting",
                message: format!(
                    "{path}: More than one {key}= dependencies specified but {key}JobMode=isolate set. Refusing."
                ),
            });
        }
    }
    Ok(())
}

fn validate_service(path: &str, svc: &ServiceDef, type_line: usize) -> Result<(), LoadFailure> {
    let fail = |msg: &str| LoadFailure {
        load_state: "bad-setting",
        error_name: "org.freedesktop.systemd1.BadUnitSetting",
        message: format!("{path}: {msg}"),
    };
    if svc.exec_start.is_empty()
        && !(svc.service_type == ServiceType::Oneshot && svc.remain_after_exit)
    {
        if svc.exec_stop.is_empty() {
            return Err(fail(
                "Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing.",
            ));
        }
        return Err(fail(
            "Service has no ExecStart= setting, which is only allowed for Type=oneshot services with RemainAfterExit=yes. Refusing.",
        ));
    }
    if svc.service_type != ServiceType::Oneshot && svc.exec_start.len() > 1 {
        let _ = type_line;
        return Err(fail("Service has more than one ExecStart= setting, which is only allowed for Type=oneshot services. Refusing."));
    }
    if svc.service_type == ServiceType::Oneshot
        && svc.restart != RestartPolicy::No
        && svc.restart != RestartPolicy::OnFailure
    {
        return Err(fail("Service has Restart= set to either always or on-success, which isn't allowed for Type=oneshot services. Refusing."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn build_never_panics(body in "(\\[(Unit|Service|Install)\\]\n|(Type|ExecStart|ExecStop|Requires|SuccessExitStatus|Environment|TimeoutStopSec|RemainAfterExit)=[ -~]{0,12}\n){0,12}") {
            let _ = build("x@y.service", "/p", &body);
        }

        #[test]
        fn timespan_never_panics(v in "[0-9. a-zA-Zµ]{0,40}") {
            let _ = parse_timespan_us(&v);
        }

        #[test]
        fn timespan_huge_numbers_never_panic(n in any::<u64>(), m in any::<u64>(), unit in "(us|ms|s|min|h|d|w|M|y|)") {
            let _ = parse_timespan_us(&format!("{n}.{m}{unit} {n}{unit} {m}y"));
        }
    }

    #[test]
    fn timespan_units_and_overflow() {
        const S: u64 = 1_000_000;
        assert_eq!(parse_timespan_us("1h 30min"), Some(5_400 * S));
        assert_eq!(parse_timespan_us("1h30min"), Some(5_400 * S));
        assert_eq!(parse_timespan_us("2000ns"), None);
        assert_eq!(parse_timespan_us("7usec 3us"), Some(10));
        assert_eq!(parse_timespan_us("1.5s"), Some(1_500_000));
        assert_eq!(parse_timespan_us("2 seconds"), Some(2 * S));
        assert_eq!(parse_timespan_us("1m 1min 1minute 2minutes"), Some(300 * S));
        assert_eq!(parse_timespan_us("1hr 1hour"), Some(7_200 * S));
        assert_eq!(parse_timespan_us("2d 1day 1days"), Some(4 * 86_400 * S));
        assert_eq!(parse_timespan_us("1w 1week 1weeks"), Some(3 * 604_800 * S));
        assert_eq!(parse_timespan_us("1M"), Some(2_629_800 * S));
        assert_eq!(parse_timespan_us("1month 1months"), Some(2 * 2_629_800 * S));
        assert_eq!(
            parse_timespan_us("1y 1year 1years"),
            Some(3 * 31_557_600 * S)
        );
        assert_eq!(parse_timespan_us("0.5d"), Some(43_200 * S));
        assert_eq!(parse_timespan_us("infinity"), Some(u64::MAX));
        assert_eq!(parse_timespan_us("-5s"), None);
        assert_eq!(parse_timespan_us("5x"), None);
        assert_eq!(parse_timespan_us("."), None);
        assert_eq!(parse_timespan_us("s"), None);
        assert_eq!(parse_timespan_us("18446744073709551615y"), None);
        assert_eq!(parse_timespan_us("99999999999999999999"), None);
        assert_eq!(parse_timespan_us("600000y"), None);
    }

    #[test]
    fn zero_timeouts_mean_no_timeout() {
        for (key, start, stop) in [
            ("TimeoutSec", true, true),
            ("TimeoutStartSec", true, false),
            ("TimeoutStopSec", false, true),
        ] {
            let (d, w) = ok(
                "a.service",
                &format!("[Service]\nExecStart=/bin/true\n{key}=0\n"),
            );
            assert!(w.is_empty(), "{w:?}");
            let UnitKind::Service(s) = d.kind else {
                panic!("not a service")
            };
            assert_eq!(s.timeout_start_us == Some(u64::MAX), start, "{key}");
            assert_eq!(s.timeout_stop_us == u64::MAX, stop, "{key}");
        }
        let (d, _) = ok(
            "a.service",
            "[Service]\nExecStart=/bin/true\nTimeoutSec=0s 0ms\n",
        );
        let UnitKind::Service(s) = d.kind else {
            panic!("not a service")
        };
        assert_eq!(s.start_timeout_us(), u64::MAX);
    }

    fn ok(name: &str, text: &str) -> (UnitDef, Vec<String>) {
        let o = build(name, "/u/x", text);
        (o.result.unwrap(), o.warnings)
    }

    #[test]
    fn dep_template_instance() {
        let (d, w) = ok(
            "bluechi-dep@target.service",
            "[Unit]\nBindsTo=%i.service\nAfter=%i.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStop=true\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(d.deps.binds_to, vec!["target.service"]);
        assert_eq!(d.deps.after, vec!["target.service"]);
        match d.kind {
            UnitKind::Service(s) => {
                assert_eq!(s.service_type, ServiceType::Oneshot);
                assert!(s.exec_start.is_empty());
                assert_eq!(s.exec_stop[0].argv, vec!["true"]);
            }
            _ => panic!("not a service"),
        }
    }

    #[test]
    fn lists_append_and_reset() {
        let (d, _) = ok("a.service", "[Unit]\nWants=a.service b.service\nWants=c.service\nAfter=x.service\nAfter=\nAfter=y.service\n[Service]\nExecStart=/bin/true\n");
        assert_eq!(d.deps.wants, vec!["a.service", "b.service", "c.service"]);
        assert_eq!(d.deps.after, vec!["y.service"]);
    }

    #[test]
    fn part_of_handlers_and_refuse_flags() {
        let (d, w) = ok("a.service", "[Unit]\nPartOf=b.service\nOnFailure=f.service\nOnSuccess=s.service\nRefuseManualStart=yes\nRefuseManualStop=true\n[Service]\nExecStart=/bin/true\n");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(d.deps.part_of, vec!["b.service"]);
        assert_eq!(d.deps.on_failure, vec!["f.service"]);
        assert_eq!(d.deps.on_success, vec!["s.service"]);
        assert!(d.refuse_manual_start && d.refuse_manual_stop);
        let (_, w) = ok(
            "a.service",
            "[Unit]\nRefuseManualStart=maybe\n[Service]\nExecStart=/bin/true\n",
        );
        assert!(
            w.iter()
                .any(|l| l.contains(":2:") && l.contains("RefuseManualStart")),
            "{w:?}"
        );
    }

    #[test]
    fn unknown_key_warns_with_location() {
        let (_, w) = ok(
            "a.service",
            "[Unit]\nFrobnicate=1\n[Service]\nExecStart=/bin/true\n",
        );
        assert_eq!(
            w,
            vec!["/u/x:2: Unknown key 'Frobnicate' in section [Unit], ignoring."]
        );
    }

    #[test]
    fn unknown_sections_warn_once_at_header_x_sections_silently() {
        let (_, w) = ok(
            "a.service",
            "[Unit]\n[Frob]\nA=1\nB=2\n[X-Mine]\nC=3\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=a.target\nNope=1\n",
        );
        assert_eq!(
            w,
            vec![
                "/u/x:2: Unknown section 'Frob'. Ignoring.",
                "/u/x:11: Unknown key 'Nope' in section [Install], ignoring.",
            ]
        );
    }

    #[test]
    fn dropins_override_and_reset_with_their_own_locations() {
        let files = vec![
            (
                "/f/a.service".to_string(),
                "[Unit]\nWants=x.service\n[Service]\nType=oneshot\nExecStart=/bin/false\n".to_string(),
            ),
            (
                "/f/a.service.d/1.conf".to_string(),
                "[Unit]\nWants=\nWants=y.service\n[Service]\nExecStart=\nExecStart=/bin/true\nBogus=1\n".to_string(),
            ),
        ];
        let o = build_files("a.service", &files);
        let d = o.result.unwrap();
        assert_eq!(d.deps.wants, vec!["y.service"]);
        assert_eq!(d.drop_in_paths, vec!["/f/a.service.d/1.conf"]);
        assert_eq!(d.fragment_path, "/f/a.service");
        let UnitKind::Service(s) = d.kind else {
            panic!()
        };
        assert_eq!(s.exec_start.len(), 1);
        assert_eq!(s.exec_start[0].argv, vec!["/bin/true"]);
        assert_eq!(
            o.warnings,
            vec!["/f/a.service.d/1.conf:7: Unknown key 'Bogus' in section [Service], ignoring."]
        );
    }

    #[test]
    fn success_exit_status_signals() {
        let (d, _) = ok(
            "a.service",
            "[Service]\nExecStart=/bin/true\nSuccessExitStatus=3 SIGTERM HUP\n",
        );
        let UnitKind::Service(s) = d.kind else {
            panic!()
        };
        assert_eq!(s.success_exit_status, vec![3]);
        assert_eq!(s.success_signals, vec![libc::SIGTERM, libc::SIGHUP]);
    }

    #[test]
    fn missing_execstart_is_bad_setting() {
        let o = build("a.service", "/u/a.service", "[Service]\nType=simple\n");
        let e = o.result.unwrap_err();
        assert_eq!(e.load_state, "bad-setting");
        assert!(e.message.contains("no ExecStart"));
        let o = build("a.service", "/u/a.service", "[Service\n");
        assert_eq!(
            o.warnings,
            vec!["/u/a.service:1: Invalid section header '[Service'"]
        );
        let e = o.result.unwrap_err();
        assert_eq!(e.load_state, "error");
        assert_eq!(
            e.error_name,
            "org.freedesktop.DBus.Error.InconsistentMessage"
        );
        assert_eq!(e.message, "Unit a.service failed to load properly, please adjust/correct and reload service manager: Bad message");
    }

    #[test]
    fn install_and_timespans() {
        let (d, _) = ok("a.target", "[Install]\nWantedBy=multi-user.target\n");
        assert!(d.has_install);
        assert_eq!(d.kind, UnitKind::Target);
        assert_eq!(parse_timespan_us("1min 30s"), Some(90_000_000));
        assert_eq!(parse_timespan_us("100ms"), Some(100_000));
        assert_eq!(parse_timespan_us("abc"), None);
    }

    #[test]
    fn post_commands_kill_signals_and_restart_sets() {
        let (d, w) = ok(
            "a.service",
            "[Service]\nExecStart=/bin/true\nExecStartPost=-/bin/post\nExecStopPost=/bin/clean\n\
KillSignal=SIGINT\nRestartKillSignal=9\nSendSIGKILL=no\nRestart=on-abnormal\n\
RestartPreventExitStatus=3 SIGHUP\nRestartForceExitStatus=4\nRestartForceExitStatus=\n",
        );
        assert!(w.is_empty(), "{w:?}");
        let UnitKind::Service(s) = d.kind else {
            panic!("not a service");
        };
        assert_eq!(s.exec_start_post[0].argv, vec!["/bin/post"]);
        assert!(s.exec_start_post[0].ignore_failure);
        assert_eq!(s.exec_stop_post[0].argv, vec!["/bin/clean"]);
        assert_eq!(s.kill_signal, libc::SIGINT);
        assert_eq!(s.restart_kill_signal, Some(libc::SIGKILL));
        assert!(!s.send_sigkill);
        assert_eq!(s.restart, RestartPolicy::OnAbnormal);
        assert_eq!(s.restart_prevent, (vec![3], vec![libc::SIGHUP]));
        assert_eq!(s.restart_force, (vec![], vec![]));
        let (_, w) = ok(
            "a.service",
            "[Service]\nExecStart=/bin/true\nKillSignal=SIGNOPE\nRestartForceExitStatus=999\n",
        );
        assert!(
            w.iter()
                .any(|l| l.contains(":3:") && l.contains("KillSignal=SIGNOPE")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|l| l.contains(":4:") && l.contains("RestartForceExitStatus")),
            "{w:?}"
        );
    }
}
