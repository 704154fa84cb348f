//! Parser for scenario files. Every error names file:line:col, what was expected and what was
//! found, because scenario authors read these messages, not the code.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ast::{
    Condition, Daemon, DaemonAction, Fault, NodeAction, Pos, Redaction, Scenario, Step, StepKind,
    UnitFile, UnitFileChange, Value, PROGRAMS,
};
use super::words::{split, Word};

pub const BLOCK_INDENT: &str = "    ";
const DEFAULT_WAIT: Duration = Duration::from_secs(10);
const DEFAULT_AWAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: expected {expected}, found {found}")]
pub struct ParseError {
    pub pos: Pos,
    pub expected: String,
    pub found: String,
}

/// Reads and parses a scenario file. I/O errors are reported as a parse error at 1:1 so the
/// caller has a single "user error" path.
pub fn parse_file(path: &Path) -> Result<Scenario, ParseError> {
    let text = std::fs::read_to_string(path).map_err(|e| ParseError {
        pos: Pos {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
        },
        expected: "a readable UTF-8 scenario file".into(),
        found: format!("error: {e}"),
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_str(&name, path, &text)
}

pub fn parse_str(name: &str, file: &Path, text: &str) -> Result<Scenario, ParseError> {
    Parser {
        file: file.to_path_buf(),
        lines: text.lines().collect(),
        next: 0,
        scenario: Scenario {
            name: name.to_string(),
            nodes: Vec::new(),
            controller: String::new(),
            offline: Vec::new(),
            controller_conf: String::new(),
            agent_confs: Vec::new(),
            units: Vec::new(),
            steps: Vec::new(),
            redactions: Vec::new(),
        },
        seen_nodes: false,
        seen_controller: false,
        seen_controller_conf: false,
        seen_offline: false,
        vars: HashSet::new(),
        captures: BTreeMap::new(),
    }
    .run()
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn found_word(w: Option<&Word>) -> String {
    w.map_or_else(|| "end of line".to_string(), |w| quote(&w.text))
}

struct Parser<'a> {
    file: PathBuf,
    lines: Vec<&'a str>,
    /// Index of the next line to read.
    next: usize,
    scenario: Scenario,
    seen_nodes: bool,
    seen_controller: bool,
    seen_controller_conf: bool,
    seen_offline: bool,
    vars: HashSet<String>,
    /// Captures started and not ended yet, with the line that started them.
    captures: BTreeMap<String, usize>,
}

/// One statement line being parsed: its words and where the line ends (for "end of line" errors).
struct Line {
    number: usize,
    words: Vec<Word>,
    end_col: usize,
}

impl Parser<'_> {
    fn pos(&self, line: usize, col: usize) -> Pos {
        Pos {
            file: self.file.clone(),
            line,
            col,
        }
    }

    fn err(&self, line: usize, col: usize, expected: &str, found: String) -> ParseError {
        ParseError {
            pos: self.pos(line, col),
            expected: expected.to_string(),
            found,
        }
    }

    /// Error about word `idx` of `line` (or the end of the line if it is missing).
    fn err_at(&self, line: &Line, idx: usize, expected: &str) -> ParseError {
        let word = line.words.get(idx);
        let col = word.map_or(line.end_col, |w| w.col);
        self.err(line.number, col, expected, found_word(word))
    }

    fn run(mut self) -> Result<Scenario, ParseError> {
        while self.next < self.lines.len() {
            let number = self.next + 1;
            let raw = self.lines[self.next];
            self.next += 1;
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') && raw.len() == trimmed.len() {
                continue;
            }
            if raw.len() != trimmed.len() {
                return Err(self.err(
                    number,
                    1,
                    "a statement starting at column 1",
                    "indentation outside a block".into(),
                ));
            }
            self.statement(number, raw)?;
        }
        let eof = self.lines.len() + 1;
        if let Some((name, line)) = self.captures.iter().next() {
            return Err(self.err(
                eof,
                1,
                &format!("`end {name}` for the capture started on line {line}"),
                "end of file".into(),
            ));
        }
        if !self.seen_nodes {
            return Err(self.err(eof, 1, "a `nodes:` line", "end of file".into()));
        }
        if !self.seen_controller {
            return Err(self.err(eof, 1, "a `controller:` line", "end of file".into()));
        }
        Ok(self.scenario)
    }

    fn statement(&mut self, number: usize, raw: &str) -> Result<(), ParseError> {
        if raw.starts_with('$') {
            let (command, argv) = self.command_part(number, raw, 1)?;
            let text = format!("$ {command}");
            return self.push(
                number,
                StepKind::Command {
                    node: None,
                    text,
                    argv,
                },
            );
        }
        let words = split(raw, 1).map_err(|e| {
            self.err(
                number,
                e.col,
                "a closing double quote",
                "end of line".into(),
            )
        })?;
        let line = Line {
            number,
            end_col: raw.chars().count() + 1,
            words,
        };
        let first = line.words.first().map(|w| w.text.as_str()).unwrap_or("");
        match first {
            "nodes:" => self.nodes(&line),
            "controller:" => self.controller(&line),
            "controller.conf:" => self.controller_conf(&line),
            "agent.conf" => self.agent_conf(&line),
            "unit" => self.unit(&line),
            "wait" => self.wait_or_hold(&line, false),
            "hold" => self.wait_or_hold(&line, true),
            "record" => self.record(&line),
            "redact" => self.redact(&line),
            "offline:" => self.offline(&line),
            "on" => self.on_node(&line, raw),
            "capture" => self.capture(&line, raw),
            "end" | "await" => self.end_capture(&line),
            "expect" => self.expect_output(&line),
            "start" | "stop" | "kill" | "restart" => self.daemon_fault(&line),
            "pause" | "resume" | "disconnect" | "reconnect" => self.node_fault(&line),
            "write" => self.write_unit(&line),
            "remove" | "mask" => self.remove_or_mask(&line),
            _ => Err(self.err_at(
                &line,
                0,
                "a statement (nodes:, controller:, offline:, controller.conf:, agent.conf, unit, \
                 $, on, capture, end, await, expect, wait, hold, record, redact, start, stop, kill, restart, \
                 pause, resume, disconnect, reconnect, write, remove, mask)",
            )),
        }
    }

    fn push(&mut self, number: usize, kind: StepKind) -> Result<(), ParseError> {
        self.scenario.steps.push(Step {
            pos: self.pos(number, 1),
            kind,
        });
        Ok(())
    }

    /// Index of the word `$` that starts the command part of `line`.
    fn dollar(&self, line: &Line, from: usize, expected: &str) -> Result<usize, ParseError> {
        match line.words.get(from) {
            Some(w) if w.text == "$" && !w.quoted => Ok(from),
            _ => Err(self.err_at(line, from, expected)),
        }
    }

    /// `on NODE $ CMD...`
    fn on_node(&mut self, line: &Line, raw: &str) -> Result<(), ParseError> {
        let node = self.node_name(line, 1)?;
        let idx = self.dollar(line, 2, "`$` and a command")?;
        let col = line.words[idx].col;
        let (_, argv) = self.command_part(line.number, raw, col)?;
        let text = raw.trim().to_string();
        self.push(
            line.number,
            StepKind::Command {
                node: Some(node),
                text,
                argv,
            },
        )
    }

    /// `capture NAME [on NODE] [ready "TEXT"] $ CMD...`
    fn capture(&mut self, line: &Line, raw: &str) -> Result<(), ParseError> {
        let name = match line.words.get(1) {
            Some(w) if is_identifier(&w.text) => w.text.clone(),
            _ => return Err(self.err_at(line, 1, "a capture name (letters, digits, '_')")),
        };
        if self.captures.contains_key(&name) {
            return Err(self.err_at(line, 1, "a capture name not in use (`end` it first)"));
        }
        let mut idx = 2;
        let mut node = None;
        if line
            .words
            .get(idx)
            .is_some_and(|w| w.text == "on" && !w.quoted)
        {
            node = Some(self.node_name(line, idx + 1)?);
            idx += 2;
        }
        let mut ready = None;
        if line
            .words
            .get(idx)
            .is_some_and(|w| w.text == "ready" && !w.quoted)
        {
            match line.words.get(idx + 1) {
                Some(w) if w.quoted && !w.text.is_empty() => ready = Some(w.text.clone()),
                _ => return Err(self.err_at(line, idx + 1, "a double-quoted text to wait for")),
            }
            idx += 2;
        }
        let idx = self.dollar(
            line,
            idx,
            "`on NODE`, `ready \"TEXT\"` or `$` and a command",
        )?;
        let col = line.words[idx].col;
        let (command, argv) = self.command_part(line.number, raw, col)?;
        let text = match &node {
            Some(n) => format!("on {n} $ {command}"),
            None => format!("$ {command}"),
        };
        self.captures.insert(name.clone(), line.number);
        self.push(
            line.number,
            StepKind::Capture {
                name,
                node,
                ready,
                text,
                argv,
            },
        )
    }

    /// `end NAME` or `await NAME [within DURATION]`.
    fn end_capture(&mut self, line: &Line) -> Result<(), ParseError> {
        let name = match line.words.get(1) {
            Some(w) if self.captures.contains_key(&w.text) => w.text.clone(),
            _ => return Err(self.err_at(line, 1, "the name of a running capture")),
        };
        let within = if line.words[0].text == "await" {
            match line.words.get(2) {
                None => Some(DEFAULT_AWAIT),
                Some(w) if w.text == "within" => {
                    let d = self.duration(line, 3)?;
                    self.expect_end(line, 4)?;
                    Some(d)
                }
                _ => return Err(self.err_at(line, 2, "`within DURATION` or end of line")),
            }
        } else {
            self.expect_end(line, 2)?;
            None
        };
        self.captures.remove(&name);
        self.push(line.number, StepKind::EndCapture { name, within })
    }

    /// `expect NAME "TEXT" [N times] [within DURATION]`
    fn expect_output(&mut self, line: &Line) -> Result<(), ParseError> {
        let name = match line.words.get(1) {
            Some(w) if self.captures.contains_key(&w.text) => w.text.clone(),
            _ => return Err(self.err_at(line, 1, "the name of a running capture")),
        };
        let text = match line.words.get(2) {
            Some(w) if w.quoted && !w.text.is_empty() => w.text.clone(),
            _ => return Err(self.err_at(line, 2, "a double-quoted text to wait for")),
        };
        let mut idx = 3;
        let mut times = 1;
        if line.words.get(idx + 1).is_some_and(|w| w.text == "times") {
            times = match line.words[idx].text.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => return Err(self.err_at(line, idx, "a count of at least 1")),
            };
            idx += 2;
        }
        let within = match line.words.get(idx) {
            None => DEFAULT_WAIT,
            Some(w) if w.text == "within" => {
                let d = self.duration(line, idx + 1)?;
                self.expect_end(line, idx + 2)?;
                d
            }
            _ => return Err(self.err_at(line, idx, "`N times`, `within DURATION` or end of line")),
        };
        self.push(
            line.number,
            StepKind::Expect {
                name,
                text,
                times,
                within,
            },
        )
    }

    fn offline(&mut self, line: &Line) -> Result<(), ParseError> {
        if self.seen_offline {
            return Err(self.err_at(line, 0, "a single `offline:` line"));
        }
        if line.words.len() < 2 {
            return Err(self.err_at(line, 1, "at least one node name"));
        }
        for i in 1..line.words.len() {
            let node = self.node_name(line, i)?;
            if self.scenario.offline.contains(&node) {
                return Err(self.err_at(line, i, "a node not listed before"));
            }
            self.scenario.offline.push(node);
        }
        self.seen_offline = true;
        Ok(())
    }

    /// `start|stop|kill|restart agent NODE` or `... controller`.
    fn daemon_fault(&mut self, line: &Line) -> Result<(), ParseError> {
        let action = match line.words[0].text.as_str() {
            "start" => DaemonAction::Start,
            "stop" => DaemonAction::Stop,
            "kill" => DaemonAction::Kill,
            _ => DaemonAction::Restart,
        };
        let (daemon, node, end) = match line.words.get(1).map(|w| w.text.as_str()) {
            Some("agent") => (Daemon::Agent, self.node_name(line, 2)?, 3),
            Some("controller") => {
                if !self.seen_controller {
                    return Err(self.err_at(line, 1, "a `controller:` line before this"));
                }
                (Daemon::Controller, self.scenario.controller.clone(), 2)
            }
            _ => return Err(self.err_at(line, 1, "`agent NODE` or `controller`")),
        };
        self.expect_end(line, end)?;
        self.push(
            line.number,
            StepKind::Fault(Fault::Daemon {
                node,
                daemon,
                action,
            }),
        )
    }

    /// `pause|resume|disconnect|reconnect NODE`.
    fn node_fault(&mut self, line: &Line) -> Result<(), ParseError> {
        let action = match line.words[0].text.as_str() {
            "pause" => NodeAction::Pause,
            "resume" => NodeAction::Resume,
            "disconnect" => NodeAction::Disconnect,
            _ => NodeAction::Reconnect,
        };
        let node = self.node_name(line, 1)?;
        self.expect_end(line, 2)?;
        self.push(line.number, StepKind::Fault(Fault::Node { node, action }))
    }

    /// `write NODE NAME:` + block: adds or replaces a unit file or drop-in while running.
    fn write_unit(&mut self, line: &Line) -> Result<(), ParseError> {
        let node = self.node_name(line, 1)?;
        let name = self.unit_file_name(line, 2)?;
        self.ends_with_colon(line, 2)?;
        let text = self.block()?;
        self.push(
            line.number,
            StepKind::UnitFile {
                node,
                change: UnitFileChange::Write { name, text },
            },
        )
    }

    /// `remove NODE NAME`, `mask NODE NAME`.
    fn remove_or_mask(&mut self, line: &Line) -> Result<(), ParseError> {
        let node = self.node_name(line, 1)?;
        let name = self.unit_file_name(line, 2)?;
        self.expect_end(line, 3)?;
        let change = if line.words[0].text == "mask" {
            if name.contains('/') {
                return Err(self.err_at(line, 2, "a unit name (drop-ins cannot be masked)"));
            }
            UnitFileChange::Mask { name }
        } else {
            UnitFileChange::Remove { name }
        };
        self.push(line.number, StepKind::UnitFile { node, change })
    }

    fn expect_end(&self, line: &Line, idx: usize) -> Result<(), ParseError> {
        match line.words.get(idx) {
            None => Ok(()),
            Some(_) => Err(self.err_at(line, idx, "end of line")),
        }
    }

    /// Reads the indented block following the current line. Blank lines inside are kept;
    /// trailing blank lines belong to no one and are dropped.
    fn block(&mut self) -> Result<String, ParseError> {
        let mut body: Vec<&str> = Vec::new();
        while self.next < self.lines.len() {
            let raw = self.lines[self.next];
            if raw.trim().is_empty() {
                body.push("");
            } else if let Some(stripped) = raw.strip_prefix(BLOCK_INDENT) {
                body.push(stripped);
            } else {
                break;
            }
            self.next += 1;
        }
        while body.last() == Some(&"") {
            body.pop();
        }
        if body.is_empty() {
            let (line, found) = match self.lines.get(self.next) {
                Some(l) => (self.next + 1, quote(l)),
                None => (self.next + 1, "end of file".to_string()),
            };
            return Err(self.err(line, 1, "a block indented by 4 spaces", found));
        }
        let mut text = body.join("\n");
        text.push('\n');
        Ok(text)
    }

    fn node_name(&self, line: &Line, idx: usize) -> Result<String, ParseError> {
        let Some(word) = line.words.get(idx) else {
            return Err(self.err_at(line, idx, "a node name"));
        };
        let name = block_name(line, idx, &word.text);
        if !self.seen_nodes {
            return Err(self.err_at(line, idx, "a `nodes:` line before any use of a node"));
        }
        if !self.scenario.nodes.iter().any(|n| n == name) {
            let expected = format!("a node from `nodes:` ({})", self.scenario.nodes.join(", "));
            return Err(self.err_at(line, idx, &expected));
        }
        Ok(name.to_string())
    }

    fn unit_name(&self, line: &Line, idx: usize) -> Result<String, ParseError> {
        let Some(word) = line.words.get(idx) else {
            return Err(self.err_at(line, idx, "a unit name"));
        };
        let name = block_name(line, idx, &word.text);
        if !is_unit_name(name) {
            return Err(self.err_at(line, idx, "a unit name like source.service"));
        }
        Ok(name.to_string())
    }

    /// A unit name, or a drop-in of one: `target.service.d/10-x.conf`.
    fn unit_file_name(&self, line: &Line, idx: usize) -> Result<String, ParseError> {
        let Some(word) = line.words.get(idx) else {
            return Err(self.err_at(line, idx, "a unit name or drop-in"));
        };
        let name = block_name(line, idx, &word.text);
        let valid = match name.split_once('/') {
            None => is_unit_name(name),
            Some((dir, file)) => {
                dir.strip_suffix(".d").is_some_and(is_unit_name)
                    && file.ends_with(".conf")
                    && file.len() > ".conf".len()
                    && !file.contains('/')
                    && file
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
            }
        };
        if !valid {
            return Err(self.err_at(
                line,
                idx,
                "a unit name like source.service or a drop-in like source.service.d/10-x.conf",
            ));
        }
        Ok(name.to_string())
    }

    fn nodes(&mut self, line: &Line) -> Result<(), ParseError> {
        if self.seen_nodes {
            return Err(self.err_at(line, 0, "a single `nodes:` line"));
        }
        if line.words.len() < 2 {
            return Err(self.err_at(line, 1, "at least one node name"));
        }
        for (i, w) in line.words.iter().enumerate().skip(1) {
            let ok = !w.text.is_empty()
                && w.text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !ok {
                return Err(self.err_at(line, i, "a node name (letters, digits, '-', '.')"));
            }
            if self.scenario.nodes.contains(&w.text) {
                return Err(self.err_at(line, i, "a node name not listed before"));
            }
            self.scenario.nodes.push(w.text.clone());
        }
        self.seen_nodes = true;
        Ok(())
    }

    fn controller(&mut self, line: &Line) -> Result<(), ParseError> {
        if self.seen_controller {
            return Err(self.err_at(line, 0, "a single `controller:` line"));
        }
        self.scenario.controller = self.node_name(line, 1)?;
        self.expect_end(line, 2)?;
        self.seen_controller = true;
        Ok(())
    }

    fn controller_conf(&mut self, line: &Line) -> Result<(), ParseError> {
        if self.seen_controller_conf {
            return Err(self.err_at(line, 0, "a single `controller.conf:` block"));
        }
        self.expect_end(line, 1)?;
        self.scenario.controller_conf = self.block()?;
        self.seen_controller_conf = true;
        Ok(())
    }

    fn ends_with_colon(&self, line: &Line, idx: usize) -> Result<(), ParseError> {
        match line.words.get(idx) {
            Some(w) if w.text.ends_with(':') => self.expect_end(line, idx + 1),
            _ => Err(self.err_at(line, idx, "':' at the end of the line, opening a block")),
        }
    }

    fn agent_conf(&mut self, line: &Line) -> Result<(), ParseError> {
        let node = self.node_name(line, 1)?;
        self.ends_with_colon(line, 1)?;
        if self.scenario.agent_confs.iter().any(|(n, _)| *n == node) {
            return Err(self.err_at(line, 1, "a node without an earlier `agent.conf` block"));
        }
        let text = self.block()?;
        self.scenario.agent_confs.push((node, text));
        Ok(())
    }

    fn unit(&mut self, line: &Line) -> Result<(), ParseError> {
        let node = self.node_name(line, 1)?;
        let name = self.unit_file_name(line, 2)?;
        self.ends_with_colon(line, 2)?;
        if self
            .scenario
            .units
            .iter()
            .any(|u| u.node == node && u.name == name)
        {
            return Err(self.err_at(line, 2, "a unit not defined earlier on this node"));
        }
        let text = self.block()?;
        self.scenario.units.push(UnitFile { node, name, text });
        Ok(())
    }

    /// The command after the `$` at column `dollar_col` (1-based, in characters): the text as
    /// written (without `$`) and its words.
    fn command_part(
        &self,
        number: usize,
        raw: &str,
        dollar_col: usize,
    ) -> Result<(String, Vec<String>), ParseError> {
        let rest: String = raw.chars().skip(dollar_col).collect();
        if !rest.starts_with(' ') {
            return Err(self.err(
                number,
                dollar_col + 1,
                "a space after '$'",
                found_word_str(&rest),
            ));
        }
        let words = split(&rest, dollar_col + 1).map_err(|e| {
            self.err(
                number,
                e.col,
                "a closing double quote",
                "end of line".into(),
            )
        })?;
        let Some(program) = words.first() else {
            return Err(self.err(
                number,
                dollar_col + 1,
                "a command after '$'",
                "end of line".into(),
            ));
        };
        if !PROGRAMS.contains(&program.text.as_str()) {
            return Err(self.err(
                number,
                program.col,
                "bluechictl, bluechi-is-online, systemctl, busctl, dbus-send or ss",
                quote(&program.text),
            ));
        }
        Ok((
            rest.trim().to_string(),
            words.into_iter().map(|w| w.text).collect(),
        ))
    }

    /// A condition is one word (`active/exited`, `MainPID!=$pid`) or three (`MainPID != $pid`).
    /// Returns it and the index of the word after it.
    fn condition(&self, line: &Line, idx: usize) -> Result<(Condition, usize), ParseError> {
        let expected = "a condition: ACTIVE/SUB, Prop=VALUE or Prop!=VALUE";
        let Some(word) = line.words.get(idx) else {
            return Err(self.err_at(line, idx, expected));
        };
        let spaced_op = line
            .words
            .get(idx + 1)
            .filter(|w| !w.quoted && (w.text == "=" || w.text == "!="));
        if let Some(op) = spaced_op {
            if !is_identifier(&word.text) {
                return Err(self.err_at(line, idx, "a property name like MainPID"));
            }
            let Some(value_word) = line.words.get(idx + 2) else {
                return Err(self.err_at(line, idx + 2, "a value after the operator"));
            };
            let value = self.value(line.number, value_word, value_word.col, &value_word.text)?;
            let cond = make_condition(&word.text, value, op.text == "!=");
            return Ok((cond, idx + 3));
        }
        let text = word.text.as_str();
        let (property, value, negated) = if let Some((p, v)) = text.split_once("!=") {
            (p, v, true)
        } else if let Some((p, v)) = text.split_once('=') {
            (p, v, false)
        } else if let Some((active, sub)) = text.split_once('/') {
            let state_ok =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !state_ok(active) || !state_ok(sub) {
                return Err(self.err_at(line, idx, "ACTIVE/SUB like active/exited"));
            }
            let cond = Condition::State {
                active: active.to_string(),
                sub: sub.to_string(),
            };
            return Ok((cond, idx + 1));
        } else {
            return Err(self.err_at(line, idx, expected));
        };
        if !is_identifier(property) {
            return Err(self.err_at(line, idx, "a property name like MainPID before '=' or '!='"));
        }
        let value_col = word.col + property.chars().count() + if negated { 2 } else { 1 };
        let value = self.value(line.number, word, value_col, value)?;
        Ok((make_condition(property, value, negated), idx + 1))
    }

    /// A literal, or `$var` naming a variable recorded earlier (unless the word was quoted).
    fn value(&self, line: usize, word: &Word, col: usize, text: &str) -> Result<Value, ParseError> {
        match text.strip_prefix('$') {
            Some(var) if !word.quoted => {
                if !self.vars.contains(var) {
                    return Err(self.err(
                        line,
                        col,
                        "a variable set earlier by `record ... as NAME`",
                        quote(text),
                    ));
                }
                Ok(Value::Var(var.to_string()))
            }
            _ => Ok(Value::Literal(text.to_string())),
        }
    }

    fn duration(&self, line: &Line, idx: usize) -> Result<Duration, ParseError> {
        let expected = "a duration like 10s, 1.5s or 500ms";
        let Some(word) = line.words.get(idx) else {
            return Err(self.err_at(line, idx, expected));
        };
        parse_duration(&word.text).ok_or_else(|| self.err_at(line, idx, expected))
    }

    fn wait_or_hold(&mut self, line: &Line, hold: bool) -> Result<(), ParseError> {
        let node = self.node_name(line, 1)?;
        let unit = self.unit_name(line, 2)?;
        let (cond, next) = self.condition(line, 3)?;
        let keyword = if hold { "for" } else { "within" };
        let duration = match line.words.get(next) {
            None if !hold => DEFAULT_WAIT,
            Some(w) if w.text == keyword => {
                let d = self.duration(line, next + 1)?;
                self.expect_end(line, next + 2)?;
                d
            }
            _ => {
                let expected = if hold {
                    "`for DURATION`"
                } else {
                    "`within DURATION` or end of line"
                };
                return Err(self.err_at(line, next, expected));
            }
        };
        let kind = if hold {
            StepKind::Hold {
                node,
                unit,
                cond,
                duration,
            }
        } else {
            StepKind::Wait {
                node,
                unit,
                cond,
                within: duration,
            }
        };
        self.scenario.steps.push(Step {
            pos: self.pos(line.number, 1),
            kind,
        });
        Ok(())
    }

    fn record(&mut self, line: &Line) -> Result<(), ParseError> {
        let node = self.node_name(line, 1)?;
        let unit = self.unit_name(line, 2)?;
        let property = match line.words.get(3) {
            Some(w) if is_identifier(&w.text) => w.text.clone(),
            _ => return Err(self.err_at(line, 3, "a property name like MainPID")),
        };
        match line.words.get(4) {
            Some(w) if w.text == "as" => {}
            _ => return Err(self.err_at(line, 4, "`as`")),
        }
        let var = match line.words.get(5) {
            Some(w) if is_identifier(&w.text) => w.text.clone(),
            _ => return Err(self.err_at(line, 5, "a variable name (letters, digits, '_')")),
        };
        self.expect_end(line, 6)?;
        self.vars.insert(var.clone());
        self.scenario.steps.push(Step {
            pos: self.pos(line.number, 1),
            kind: StepKind::Record {
                node,
                unit,
                property,
                var,
            },
        });
        Ok(())
    }

    fn redact(&mut self, line: &Line) -> Result<(), ParseError> {
        let quoted = |idx: usize, what: &str| -> Result<String, ParseError> {
            match line.words.get(idx) {
                Some(w) if w.quoted => Ok(w.text.clone()),
                _ => Err(self.err_at(line, idx, what)),
            }
        };
        let pattern = quoted(1, "a double-quoted regex")?;
        let replacement = quoted(2, "a double-quoted replacement")?;
        self.expect_end(line, 3)?;
        let regex = regex::Regex::new(&pattern).map_err(|e| {
            let first_line = e.to_string();
            let msg = first_line
                .lines()
                .last()
                .unwrap_or("invalid regex")
                .trim()
                .to_string();
            self.err(
                line.number,
                line.words[1].col,
                "a valid regex",
                format!("{} ({msg})", quote(&pattern)),
            )
        })?;
        self.scenario
            .redactions
            .push(Redaction { regex, replacement });
        Ok(())
    }
}

fn found_word_str(rest: &str) -> String {
    match rest.chars().next() {
        None => "end of line".into(),
        Some(c) => quote(&c.to_string()),
    }
}

fn make_condition(property: &str, value: Value, negated: bool) -> Condition {
    let property = property.to_string();
    if negated {
        Condition::NotEquals { property, value }
    } else {
        Condition::Equals { property, value }
    }
}

/// A name as written; the last word of a block statement (`agent.conf NODE:`, `unit NODE NAME:`,
/// `write NODE NAME:`) carries the block's `:`, which is not part of the name. Anywhere else a
/// trailing `:` stays and makes the name invalid.
fn block_name<'a>(line: &Line, idx: usize, text: &'a str) -> &'a str {
    let opens_block = matches!(
        line.words.first().map(|w| w.text.as_str()),
        Some("agent.conf" | "unit" | "write")
    );
    if opens_block && idx + 1 == line.words.len() {
        text.strip_suffix(':').unwrap_or(text)
    } else {
        text
    }
}

fn is_unit_name(name: &str) -> bool {
    name.contains('.')
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `10s`, `1.5s`, `500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (number, millis) = if let Some(n) = s.strip_suffix("ms") {
        (n, true)
    } else {
        (s.strip_suffix('s')?, false)
    };
    let valid = !number.is_empty()
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.matches('.').count() <= 1;
    if !valid {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let secs = if millis { value / 1000.0 } else { value };
    // Longer than a day is certainly a typo, and keeps Duration arithmetic far from overflow.
    if secs > 86_400.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}
