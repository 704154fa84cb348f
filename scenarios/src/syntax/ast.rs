//! The parsed form of a scenario file.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::backend::{Daemon, DaemonAction, Fault, NodeAction, UnitFileChange};

/// A position in a scenario file, for error messages (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub name: String,
    pub nodes: Vec<String>,
    pub controller: String,
    /// Nodes not expected online when the cluster is up (`offline:`).
    pub offline: Vec<String>,
    /// Extra controller configuration, appended to the runner's own.
    pub controller_conf: String,
    /// Extra agent configuration per node, in the order given.
    pub agent_confs: Vec<(String, String)>,
    pub units: Vec<UnitFile>,
    pub steps: Vec<Step>,
    pub redactions: Vec<Redaction>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    pub node: String,
    pub name: String,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Redaction {
    pub regex: regex::Regex,
    pub replacement: String,
}

impl PartialEq for Redaction {
    fn eq(&self, other: &Self) -> bool {
        self.regex.as_str() == other.regex.as_str() && self.replacement == other.replacement
    }
}
impl Eq for Redaction {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub pos: Pos,
    pub kind: StepKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// `$ CMD ARGS...` on the controller node, or `on NODE $ CMD ARGS...`. `text` is the
    /// statement as written (what the transcript shows).
    Command {
        node: Option<String>,
        text: String,
        argv: Vec<String>,
    },
    /// `capture NAME [on NODE] [ready "TEXT"] $ CMD...`: starts a streaming command (monitor,
    /// `status -w`); waits until its output contains TEXT if given.
    Capture {
        name: String,
        node: Option<String>,
        ready: Option<String>,
        text: String,
        argv: Vec<String>,
    },
    /// `end NAME`: interrupts the capture (as Ctrl-C would); `await NAME [within DUR]`: waits
    /// for it to exit by itself (`within` unset). Its output goes into the transcript here.
    EndCapture {
        name: String,
        within: Option<Duration>,
    },
    /// `expect NAME "TEXT" [N times] [within DUR]`: waits until a running capture has printed
    /// TEXT at least N times (default once).
    Expect {
        name: String,
        text: String,
        times: usize,
        within: Duration,
    },
    /// `stop agent NODE`, `kill controller`, `pause NODE`, `disconnect NODE`, ...
    Fault(Fault),
    /// `write NODE NAME:` + block, `remove NODE NAME`, `mask NODE NAME` while running.
    UnitFile {
        node: String,
        change: UnitFileChange,
    },
    Wait {
        node: String,
        unit: String,
        cond: Condition,
        within: Duration,
    },
    Hold {
        node: String,
        unit: String,
        cond: Condition,
        duration: Duration,
    },
    Record {
        node: String,
        unit: String,
        property: String,
        var: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Literal(String),
    Var(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `ACTIVE/SUB`: ActiveState and SubState.
    State {
        active: String,
        sub: String,
    },
    Equals {
        property: String,
        value: Value,
    },
    NotEquals {
        property: String,
        value: Value,
    },
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Literal(s) => f.write_str(s),
            Value::Var(v) => write!(f, "${v}"),
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::State { active, sub } => write!(f, "{active}/{sub}"),
            Condition::Equals { property, value } => write!(f, "{property}={value}"),
            Condition::NotEquals { property, value } => write!(f, "{property}!={value}"),
        }
    }
}

/// Programs a step may run on a node.
pub const PROGRAMS: [&str; 6] = [
    "bluechictl",
    "bluechi-is-online",
    "systemctl",
    "busctl",
    "dbus-send",
    "ss",
];
