//! Configuration: upstream's files, drop-in directories, load order and keys (spec §6).
//!
//! Files are merged key by key into a [`Store`] (later files override earlier ones); the typed
//! [`ControllerConfig`] and [`AgentConfig`] are then read from it, so an invalid value is
//! reported with the file, line and key it came from.

mod agent;
mod controller;
pub mod ini;
#[cfg(test)]
mod load_tests;
#[cfg(test)]
mod merge_props;

pub use agent::{check_controller_address, AgentConfig};
pub use controller::{ControllerConfig, NodeSection};

use std::path::{Path, PathBuf};

use ini::{Entry, Origin};

pub const LOG_LEVELS: [&str; 4] = ["DEBUG", "INFO", "WARN", "ERROR"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Parse(#[from] ini::ParseError),
    #[error("Error loading configuration file '{0}': {1}")]
    Io(String, std::io::Error),
    #[error(transparent)]
    Value(Box<ValueError>),
    #[error("{0}")]
    Missing(String),
    #[error(
        "{origin}: section name [{section}] is not valid UTF-8 (D-Bus strings cannot carry it)"
    )]
    SectionNotUtf8 { origin: Origin, section: String },
}

/// Why a value read as text is refused: its bytes are not UTF-8.
const NOT_UTF8: &str = "not valid UTF-8 (D-Bus strings cannot carry it)";

/// A value that does not fit its key, with where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: invalid value '{value}' for key {key} in section [{section}]: {reason}")]
pub struct ValueError {
    pub origin: Origin,
    pub section: String,
    pub key: String,
    pub value: String,
    pub reason: String,
}

/// Merged configuration: the last value of each (section, key) wins.
#[derive(Debug, Default, Clone)]
pub struct Store {
    entries: Vec<Entry>,
}

impl Store {
    pub fn merge(&mut self, new: Vec<Entry>) {
        for e in new {
            match self
                .entries
                .iter_mut()
                .find(|x| x.section == e.section && x.key == e.key)
            {
                Some(old) => *old = e,
                None => self.entries.push(e),
            }
        }
    }

    /// Merges one file's contents; bytes that are not UTF-8 are accepted (see [`ini`]).
    pub fn merge_text(&mut self, file: &str, text: impl AsRef<[u8]>) -> Result<(), ConfigError> {
        self.merge(ini::parse(file, text)?);
        Ok(())
    }

    /// Merges a file; a missing file is ignored only when `optional`.
    pub fn merge_file(&mut self, path: &Path, optional: bool) -> Result<(), ConfigError> {
        // Bytes, not text: like inih, a byte that is not UTF-8 in a comment is no error.
        match std::fs::read(path) {
            Ok(text) => self.merge_text(&path.display().to_string(), text),
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ConfigError::Io(path.display().to_string(), e)),
        }
    }

    /// Merges every `*.conf` in a drop-in directory in alphabetical order; a missing directory
    /// is not an error.
    pub fn merge_dir(&mut self, dir: &Path) -> Result<(), ConfigError> {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".conf"))
            })
            .collect();
        files.sort();
        for f in files {
            self.merge_file(&f, false)?;
        }
        Ok(())
    }

    /// Sets a value that came from the command line or the environment.
    pub fn set(&mut self, section: &str, key: &str, value: &str, source: &str) {
        self.merge(vec![Entry {
            section: section.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            origin: Origin {
                file: source.to_string(),
                line: 0,
            },
            bad_section_line: None,
            bad_value_line: None,
        }]);
    }

    /// The value of a key; an empty value counts as unset, as upstream stores it.
    pub fn get(&self, section: &str, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.section == section && e.key == key && !e.value.is_empty())
    }

    /// [`Store::get`] for a value that is going to be used: one whose bytes are not UTF-8 is
    /// an error naming the line that brought them.
    pub fn value(&self, section: &str, key: &str) -> Result<Option<&Entry>, ConfigError> {
        let Some(e) = self.get(section, key) else {
            return Ok(None);
        };
        match e.bad_value_line {
            None => Ok(Some(e)),
            Some(line) => Err(ConfigError::Value(Box::new(ValueError {
                origin: Origin {
                    file: e.origin.file.clone(),
                    line,
                },
                section: section.to_string(),
                key: key.to_string(),
                value: e.value.clone(),
                reason: NOT_UTF8.to_string(),
            }))),
        }
    }

    /// An error when a section about to be used has a name that is not UTF-8.
    pub fn check_section_name(&self, section: &str) -> Result<(), ConfigError> {
        let bad = self
            .keys_of(section)
            .find_map(|e| Some((e.origin.file.clone(), e.bad_section_line?)));
        match bad {
            None => Ok(()),
            Some((file, line)) => Err(ConfigError::SectionNotUtf8 {
                origin: Origin { file, line },
                section: section.to_string(),
            }),
        }
    }

    pub fn sections(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for e in &self.entries {
            if !v.contains(&e.section.as_str()) {
                v.push(&e.section);
            }
        }
        v
    }

    pub fn keys_of<'a>(&'a self, section: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.section == section)
    }

    /// Applies `BC_LOG_LEVEL`, `BC_LOG_TARGET` and `BC_LOG_IS_QUIET` (non-empty values only).
    pub fn apply_log_env(&mut self, section: &str) {
        self.apply_log_env_from(section, |var| std::env::var(var).ok());
    }

    /// [`Store::apply_log_env`] with the environment supplied by the caller (tests).
    pub fn apply_log_env_from(&mut self, section: &str, env: impl Fn(&str) -> Option<String>) {
        for (var, key) in [
            ("BC_LOG_LEVEL", "LogLevel"),
            ("BC_LOG_TARGET", "LogTarget"),
            ("BC_LOG_IS_QUIET", "LogIsQuiet"),
        ] {
            if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                self.set(section, key, &v, var);
            }
        }
    }

    /// One warning per key of `section` that is not in `known`, naming file:line and key.
    /// Upstream silently ignores such keys; we ignore them too but say so.
    pub fn unknown_keys(&self, section: &str, known: &[&str]) -> Vec<String> {
        self.keys_of(section)
            .filter(|e| !known.contains(&e.key.as_str()))
            .map(|e| {
                format!(
                    "{}: unknown key '{}' in section [{}] ignored",
                    e.origin, e.key, section
                )
            })
            .collect()
    }

    pub fn string(&self, section: &str, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.value(section, key)?.map(|e| e.value.clone()))
    }

    pub fn bool(&self, section: &str, key: &str, default: bool) -> Result<bool, ConfigError> {
        Ok(self
            .value(section, key)?
            .map(|e| parse_bool(&e.value))
            .unwrap_or(default))
    }

    /// An integer in `[min, max]`, parsed like `strtol` that must consume the whole string.
    pub fn int(
        &self,
        section: &str,
        key: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, ConfigError> {
        let Some(e) = self.value(section, key)? else {
            return Ok(default);
        };
        let bad = |reason: &str| {
            ConfigError::Value(Box::new(ValueError {
                origin: e.origin.clone(),
                section: section.to_string(),
                key: key.to_string(),
                value: e.value.clone(),
                reason: reason.to_string(),
            }))
        };
        let n = parse_c_long(&e.value).ok_or_else(|| bad("not an integer"))?;
        if n < min || n > max {
            return Err(bad(&format!("out of range {min}..{max}")));
        }
        Ok(n)
    }
}

/// Upstream's boolean rule: `true`, `t`, `yes`, `y`, `on` (any case) are true, all else false.
pub fn parse_bool(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "t" | "yes" | "y" | "on"
    )
}

/// A base-10 integer the way upstream reads one with `strtol`: leading C whitespace and one
/// sign are allowed, and the digits must run to the end of the string.
pub fn parse_c_long(s: &str) -> Option<i64> {
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    if s.starts_with("+-") || s.starts_with("-+") {
        return None;
    }
    s.parse().ok()
}

/// Splits a comma list with `strtok` semantics: empty items skipped, no trimming.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// Logging settings shared by both daemons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub level: String,
    pub target: String,
    pub is_quiet: bool,
}

impl LogConfig {
    pub fn from_store(store: &Store, section: &str) -> Result<Self, ConfigError> {
        let level = store
            .string(section, "LogLevel")?
            .filter(|l| LOG_LEVELS.contains(&l.as_str()))
            .unwrap_or_else(|| "INFO".to_string());
        let target = store
            .string(section, "LogTarget")?
            .map(|t| t.to_ascii_lowercase())
            .filter(|t| ["journald", "stderr", "stderr-full"].contains(&t.as_str()))
            .unwrap_or_else(|| "journald".to_string());
        Ok(LogConfig {
            level,
            target,
            is_quiet: store.bool(section, "LogIsQuiet", false)?,
        })
    }
}

/// TCP options applied to the peer-link socket on both ends (spec §1.4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOptions {
    pub ip_receive_errors: bool,
    pub keepalive_time: u32,
    pub keepalive_interval: u32,
    pub keepalive_count: u32,
}

impl TcpOptions {
    pub fn from_store(store: &Store, section: &str) -> Result<Self, ConfigError> {
        Ok(TcpOptions {
            ip_receive_errors: store.bool(section, "IPReceiveErrors", true)?,
            keepalive_time: store.int(section, "TCPKeepAliveTime", 1, 0, 32767)? as u32,
            keepalive_interval: store.int(section, "TCPKeepAliveInterval", 1, 0, 32767)? as u32,
            keepalive_count: store.int(section, "TCPKeepAliveCount", 6, 0, 127)? as u32,
        })
    }
}

/// Where a daemon's configuration lives (spec §6.2); tests point these at a temporary tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardPaths {
    /// Shipped defaults, e.g. `/usr/share/bluechi/config/controller.conf`.
    pub default_file: PathBuf,
    /// The administrator's file, e.g. `/etc/bluechi/controller.conf`.
    pub etc_file: PathBuf,
    /// Drop-ins, e.g. `/etc/bluechi/controller.conf.d`.
    pub dropin_dir: PathBuf,
}

impl StandardPaths {
    pub fn new(default_file: &str, etc_file: &str, dropin_dir: &str) -> Self {
        StandardPaths {
            default_file: default_file.into(),
            etc_file: etc_file.into(),
            dropin_dir: dropin_dir.into(),
        }
    }
}

/// Loads the standard files of a daemon in upstream's order (spec §6.2) plus `-c FILE`.
///
/// Deliberate difference: a missing `/usr/share/...` default file is not fatal, so the daemons
/// run from a build tree without installing anything.
pub fn load_standard(
    default_file: &str,
    etc_file: &str,
    dropin_dir: &str,
    section: &str,
    cli_file: Option<&Path>,
) -> Result<Store, ConfigError> {
    load(
        &StandardPaths::new(default_file, etc_file, dropin_dir),
        section,
        cli_file,
        |var| std::env::var(var).ok(),
    )
}

/// [`load_standard`] with explicit paths and environment: defaults file, `/etc` file, drop-ins
/// in alphabetical order, `BC_LOG_*` variables, then the `-c` file (which must exist).
pub fn load(
    paths: &StandardPaths,
    section: &str,
    cli_file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Store, ConfigError> {
    let mut store = Store::default();
    store.merge_file(&paths.default_file, true)?;
    store.merge_file(&paths.etc_file, true)?;
    store.merge_dir(&paths.dropin_dir)?;
    store.apply_log_env_from(section, env);
    if let Some(f) = cli_file {
        store.merge_file(f, false)?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_files_override_key_by_key() {
        let mut s = Store::default();
        s.merge_text("a", "[x]\nA=1\nB=2\n").unwrap();
        s.merge_text("b", "[x]\nB=3\n").unwrap();
        assert_eq!(s.string("x", "A").unwrap().as_deref(), Some("1"));
        assert_eq!(s.string("x", "B").unwrap().as_deref(), Some("3"));
        assert_eq!(s.get("x", "B").unwrap().origin.file, "b");
    }

    #[test]
    fn ints_are_strict_and_errors_name_file_line_key() {
        let mut s = Store::default();
        s.merge_text("/etc/c.conf", "[x]\n\nPort=842O\n").unwrap();
        let e = s.int("x", "Port", 842, 0, 65535).unwrap_err().to_string();
        assert!(e.contains("/etc/c.conf:3"), "{e}");
        assert!(e.contains("Port"), "{e}");
        s.merge_text("b", "[x]\nPort=65538\n").unwrap();
        assert!(s.int("x", "Port", 842, 0, 65535).is_err());
        s.merge_text("b", "[x]\nPort= 77\n").unwrap();
        assert_eq!(s.int("x", "Port", 842, 0, 65535).unwrap(), 77);
    }

    #[test]
    fn integers_parse_like_strtol_consuming_everything() {
        assert_eq!(parse_c_long(" \t-7"), Some(-7));
        assert_eq!(parse_c_long("+7"), Some(7));
        for bad in [
            "",
            " ",
            "7 ",
            "+-7",
            "-+7",
            "0x10",
            "1e3",
            "842O",
            "99999999999999999999",
        ] {
            assert_eq!(parse_c_long(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bools_and_lists() {
        assert!(parse_bool("Yes") && parse_bool("t") && parse_bool("ON"));
        assert!(!parse_bool("1") && !parse_bool("nope"));
        assert_eq!(split_list("a,,b, c"), vec!["a", "b", " c"]);
    }

    #[test]
    fn log_config_defaults_and_validation() {
        let mut s = Store::default();
        s.merge_text("f", "[x]\nLogLevel=debug\nLogTarget=STDERR\n")
            .unwrap();
        let l = LogConfig::from_store(&s, "x").unwrap();
        assert_eq!(l.level, "INFO");
        assert_eq!(l.target, "stderr");
    }
}
