//! Runs a parsed scenario against a backend: one step after another, each reported with its
//! start time and duration; `$` outputs go into the transcript.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::syntax::{Condition, Scenario, Step, StepKind, Value};
use crate::transcript::{self, Transcript};

pub const COMMAND_DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);
pub const LOG_TAIL_LINES: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Parse(#[from] crate::syntax::ParseError),
    #[error("setup failed: {0}")]
    Setup(String),
    #[error("{pos}: {message}")]
    Step {
        pos: crate::syntax::Pos,
        message: String,
    },
    #[error("{0}")]
    Snapshot(String),
}

impl RunError {
    /// 2 for mistakes in the scenario file (user errors), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Parse(_) => 2,
            _ => 1,
        }
    }
}

/// Shows each step as it happens; the timestamps make a failure's timeline readable.
pub struct Progress {
    start: Instant,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            start: Instant::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn line(&self, at: Duration, what: &str, took: Duration) {
        println!(
            "[{:>6.3}s] {what} ({} ms)",
            at.as_secs_f64(),
            took.as_millis()
        );
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

fn describe(step: &Step, controller: &str) -> String {
    match &step.kind {
        StepKind::Command { text, .. } => format!("{controller}$ {text}"),
        StepKind::Wait {
            node,
            unit,
            cond,
            within,
        } => format!("wait {node} {unit} {cond} within {}", fmt_duration(*within)),
        StepKind::Hold {
            node,
            unit,
            cond,
            duration,
        } => format!("hold {node} {unit} {cond} for {}", fmt_duration(*duration)),
        StepKind::Record {
            node,
            unit,
            property,
            var,
        } => format!("record {node} {unit} {property} as {var}"),
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Evaluates a condition once: whether it holds, and what was seen (for messages).
async fn evaluate<B: Backend>(
    backend: &B,
    node: &str,
    unit: &str,
    cond: &Condition,
    vars: &HashMap<String, String>,
) -> Result<(bool, String), String> {
    let resolve = |v: &Value| -> Result<String, String> {
        match v {
            Value::Literal(s) => Ok(s.clone()),
            Value::Var(name) => vars
                .get(name)
                .cloned()
                .ok_or_else(|| format!("variable ${name} is not set")),
        }
    };
    match cond {
        Condition::State { active, sub } => {
            let a = backend.unit_property(node, unit, "ActiveState").await?;
            let s = backend.unit_property(node, unit, "SubState").await?;
            let holds = a == *active && s == *sub;
            Ok((holds, format!("{a}/{s}")))
        }
        Condition::Equals { property, value } => {
            let want = resolve(value)?;
            let got = backend.unit_property(node, unit, property).await?;
            Ok((got == want, format!("{property}={got}")))
        }
        Condition::NotEquals { property, value } => {
            let want = resolve(value)?;
            let got = backend.unit_property(node, unit, property).await?;
            Ok((got != want, format!("{property}={got}")))
        }
    }
}

async fn wait<B: Backend>(
    backend: &B,
    node: &str,
    unit: &str,
    cond: &Condition,
    within: Duration,
    vars: &HashMap<String, String>,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let last = match evaluate(backend, node, unit, cond, vars).await {
            Ok((true, _)) => return Ok(()),
            Ok((false, seen)) => seen,
            Err(e) => format!("error: {e}"),
        };
        if start.elapsed() >= within {
            return Err(format!(
                "timed out after {:.1}s waiting for {node} {unit} {cond}; last seen: {last}",
                within.as_secs_f64()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn hold<B: Backend>(
    backend: &B,
    node: &str,
    unit: &str,
    cond: &Condition,
    duration: Duration,
    vars: &HashMap<String, String>,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let broken = match evaluate(backend, node, unit, cond, vars).await {
            Ok((true, _)) => None,
            Ok((false, seen)) => Some(seen),
            Err(e) => Some(format!("error: {e}")),
        };
        if let Some(seen) = broken {
            return Err(format!(
                "{node} {unit} {cond} stopped holding after {:.3}s; seen: {seen}",
                start.elapsed().as_secs_f64()
            ));
        }
        if start.elapsed() >= duration {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs every step; returns the transcript. The backend must already be started.
pub async fn run_steps<B: Backend>(
    backend: &B,
    scenario: &Scenario,
    progress: &Progress,
) -> Result<Transcript, RunError> {
    let mut transcript = Transcript::default();
    let mut vars: HashMap<String, String> = HashMap::new();
    for step in &scenario.steps {
        let at = progress.elapsed();
        let started = Instant::now();
        let fail = |message: String| RunError::Step {
            pos: step.pos.clone(),
            message: format!("{}: {message}", describe(step, &scenario.controller)),
        };
        match &step.kind {
            StepKind::Command { text, argv } => {
                let out = backend
                    .run_command(argv, COMMAND_DEADLINE)
                    .await
                    .map_err(fail)?;
                let rendered = transcript::render_step(text, &out, &scenario.redactions);
                progress.line(at, &describe(step, &scenario.controller), started.elapsed());
                // Show what goes into the transcript, minus the `$` line just printed.
                print!("{}", rendered.split_once('\n').map_or("", |(_, rest)| rest));
                transcript.push(rendered);
                continue;
            }
            StepKind::Wait {
                node,
                unit,
                cond,
                within,
            } => wait(backend, node, unit, cond, *within, &vars)
                .await
                .map_err(fail)?,
            StepKind::Hold {
                node,
                unit,
                cond,
                duration,
            } => hold(backend, node, unit, cond, *duration, &vars)
                .await
                .map_err(fail)?,
            StepKind::Record {
                node,
                unit,
                property,
                var,
            } => {
                let value = backend
                    .unit_property(node, unit, property)
                    .await
                    .map_err(fail)?;
                vars.insert(var.clone(), value);
            }
        }
        progress.line(at, &describe(step, &scenario.controller), started.elapsed());
    }
    Ok(transcript)
}

/// Prints the tail of every daemon log, so a failure comes with what the cluster was doing.
pub fn print_timeline<B: Backend>(backend: &B) {
    for (name, tail) in backend.log_tails(LOG_TAIL_LINES) {
        eprintln!("----- last {LOG_TAIL_LINES} lines of {name} -----");
        eprintln!("{tail}");
    }
}
