//! Runs a parsed scenario against a backend: one step after another, each reported with its
//! start time and duration; `$` outputs go into the transcript.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::backend::{Background, Cluster, UnitFileChange};
use crate::syntax::{Condition, Scenario, Step, StepKind, Value};
use crate::transcript::{self, Transcript};

pub const COMMAND_DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);
/// How long one property read may take in a `hold` or `record` (a frozen node never answers).
const PROBE_DEADLINE: Duration = Duration::from_secs(10);
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
        StepKind::Command {
            node: None, text, ..
        } => format!("{controller}{text}"),
        StepKind::Command { text, .. } => text.clone(),
        StepKind::Capture { name, text, .. } => format!("capture {name}: {text}"),
        StepKind::EndCapture { name, within: None } => format!("end {name}"),
        StepKind::EndCapture {
            name,
            within: Some(d),
        } => format!("await {name} within {}", fmt_duration(*d)),
        StepKind::Expect {
            name,
            text,
            times,
            within,
        } => format!(
            "expect {name} {text:?} {times} times within {}",
            fmt_duration(*within)
        ),
        StepKind::Fault(f) => f.to_string(),
        StepKind::UnitFile { node, change } => match change {
            UnitFileChange::Write { name, .. } => format!("write {node} {name}"),
            UnitFileChange::Remove { name } => format!("remove {node} {name}"),
            UnitFileChange::Mask { name } => format!("mask {node} {name}"),
        },
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
async fn evaluate(
    backend: &Cluster,
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

async fn wait(
    backend: &Cluster,
    node: &str,
    unit: &str,
    cond: &Condition,
    within: Duration,
    vars: &HashMap<String, String>,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        // A frozen node may never answer: one probe gets what is left of the deadline.
        let left = within.saturating_sub(start.elapsed()).max(POLL);
        let last = match tokio::time::timeout(left, evaluate(backend, node, unit, cond, vars)).await
        {
            Ok(Ok((true, _))) => return Ok(()),
            Ok(Ok((false, seen))) => seen,
            Ok(Err(e)) => format!("error: {e}"),
            Err(_) => "no answer from the node".to_string(),
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

async fn hold(
    backend: &Cluster,
    node: &str,
    unit: &str,
    cond: &Condition,
    duration: Duration,
    vars: &HashMap<String, String>,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let probe = tokio::time::timeout(PROBE_DEADLINE, evaluate(backend, node, unit, cond, vars));
        let broken = match probe.await {
            Ok(Ok((true, _))) => None,
            Ok(Ok((false, seen))) => Some(seen),
            Ok(Err(e)) => Some(format!("error: {e}")),
            Err(_) => Some("no answer from the node".to_string()),
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

/// How long `capture ... ready "TEXT"` waits for TEXT.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How long an ended capture may take to exit after SIGINT before it is killed.
const CAPTURE_GRACE: Duration = Duration::from_secs(5);

/// A capture that is running: its header for the transcript.
struct Running {
    header: String,
    bg: Background,
}

/// Runs every step. The transcript so far comes back with the first failure too, so it can
/// be compared with the snapshot.
pub async fn run_steps(
    backend: &Cluster,
    scenario: &Scenario,
    progress: &Progress,
) -> (Transcript, Result<(), RunError>) {
    let mut transcript = Transcript::default();
    let mut vars: HashMap<String, String> = HashMap::new();
    let mut captures: HashMap<String, Running> = HashMap::new();
    for step in &scenario.steps {
        let at = progress.elapsed();
        let started = Instant::now();
        let controller = scenario.controller.clone();
        let fail = |message: String| RunError::Step {
            pos: step.pos.clone(),
            message: format!("{}: {message}", describe(step, &controller)),
        };
        let result = run_step(backend, scenario, step, &mut vars, &mut captures).await;
        match result {
            Ok(Some(rendered)) => {
                progress.line(at, &describe(step, &controller), started.elapsed());
                // Show what goes into the transcript, minus the header line just printed.
                print!("{}", rendered.split_once('\n').map_or("", |(_, rest)| rest));
                transcript.push(rendered);
            }
            Ok(None) => progress.line(at, &describe(step, &controller), started.elapsed()),
            Err(e) => return (transcript, Err(fail(e))),
        }
    }
    (transcript, Ok(()))
}

/// Runs one step; returns what it adds to the transcript, if anything.
async fn run_step(
    backend: &Cluster,
    scenario: &Scenario,
    step: &Step,
    vars: &mut HashMap<String, String>,
    captures: &mut HashMap<String, Running>,
) -> Result<Option<String>, String> {
    let node_or_controller =
        |node: &Option<String>| node.clone().unwrap_or_else(|| scenario.controller.clone());
    match &step.kind {
        StepKind::Command { node, text, argv } => {
            let out = backend
                .run(&node_or_controller(node), argv, COMMAND_DEADLINE)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(Some(transcript::render_step(
                text,
                &out,
                &scenario.redactions,
            )));
        }
        StepKind::Capture {
            name,
            node,
            ready,
            text,
            argv,
        } => {
            let host = backend
                .host(&node_or_controller(node))
                .map_err(|e| e.to_string())?;
            let argv = backend.resolve(&node_or_controller(node), argv);
            let bg = host.spawn(&argv, name).await.map_err(|e| e.to_string())?;
            if let Some(ready) = ready {
                let start = Instant::now();
                while !bg.output_so_far().await.contains(ready.as_str()) {
                    if start.elapsed() >= READY_DEADLINE {
                        let seen = bg.output_so_far().await;
                        let _ = bg.finish(CAPTURE_GRACE).await;
                        return Err(format!(
                            "{ready:?} did not appear within {:.0}s; output so far:\n{seen}",
                            READY_DEADLINE.as_secs_f64()
                        ));
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
            captures.insert(
                name.clone(),
                Running {
                    header: format!("capture {name}: {text}"),
                    bg,
                },
            );
        }
        StepKind::EndCapture { name, within } => {
            let running = captures
                .remove(name)
                .ok_or_else(|| format!("capture {name} is not running"))?;
            let out = match within {
                None => running.bg.finish(CAPTURE_GRACE).await,
                Some(d) => running.bg.wait(*d).await,
            }
            .map_err(|e| e.to_string())?;
            return Ok(Some(transcript::render_step(
                &running.header,
                &out,
                &scenario.redactions,
            )));
        }
        StepKind::Expect {
            name,
            text,
            times,
            within,
        } => {
            let running = captures
                .get(name)
                .ok_or_else(|| format!("capture {name} is not running"))?;
            let start = Instant::now();
            loop {
                let out = running.bg.output_so_far().await;
                if out.matches(text.as_str()).count() >= *times {
                    break;
                }
                if start.elapsed() >= *within {
                    return Err(format!(
                        "{text:?} did not appear {times} time(s) within {:.1}s; output so far:\n{out}",
                        within.as_secs_f64()
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        }
        StepKind::Fault(fault) => backend.fault(fault).await.map_err(|e| e.to_string())?,
        StepKind::UnitFile { node, change } => backend
            .change_unit_file(node, change)
            .await
            .map_err(|e| e.to_string())?,
        StepKind::Wait {
            node,
            unit,
            cond,
            within,
        } => wait(backend, node, unit, cond, *within, vars).await?,
        StepKind::Hold {
            node,
            unit,
            cond,
            duration,
        } => hold(backend, node, unit, cond, *duration, vars).await?,
        StepKind::Record {
            node,
            unit,
            property,
            var,
        } => {
            let value =
                tokio::time::timeout(PROBE_DEADLINE, backend.unit_property(node, unit, property))
                    .await
                    .map_err(|_| {
                        format!("no answer from {node} within {}s", PROBE_DEADLINE.as_secs())
                    })?
                    .map_err(|e| e.to_string())?;
            vars.insert(var.clone(), value);
        }
    }
    Ok(None)
}

/// Prints the tail of every daemon log, so a failure comes with what the cluster was doing.
pub fn print_timeline(backend: &Cluster) {
    for (name, tail) in backend.log_tails(LOG_TAIL_LINES) {
        eprintln!("----- last {LOG_TAIL_LINES} lines of {name} -----");
        eprintln!("{tail}");
    }
}
