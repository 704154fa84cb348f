//! Runs a case against the pure engine with fake processes and a simulated clock, producing
//! the same observations the recorder takes from real systemd.
//!
//! Fake programs (by argv): `true`, `false`, `sleep N|infinity`, and `sh -c SCRIPT` where the
//! script is `;`-separated `sleep N`, `exit N`, `true`, `false` and `trap '' SIG...` (ignore).
//! Anything else exits 203 like a failed exec.

use super::case::{signal_number, Case, Op};
use super::fixture::{StepObs, UnitObs};
use crate::engine::{Action, Engine, Exit, JobType, Now};
use crate::loader::MapSource;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// After the last job finishes, events due within this window still count as part of the step
/// (the recorder waits for states to be stable for about as long).
const SETTLE_US: u64 = 500_000;
/// A step whose jobs never finish within this much simulated time is reported as stuck.
const STEP_LIMIT_US: u64 = 600_000_000;
/// The recorder's observations load every case unit; systemd garbage-collects the unreferenced
/// inactive ones again before the next call (KillUnit and ResetFailedUnit then answer
/// NoSuchUnit), so the engine's collection timer runs out before each step.
const BEFORE_STEP_MS: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Exit { token: u64, code: i32 },
    Timer(u64),
}

/// What a fake program does when started.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Behaviour {
    run_us: Option<u64>,
    code: i32,
    ignored: BTreeSet<i32>,
}

fn secs_to_us(s: &str) -> Option<u64> {
    if s == "infinity" {
        return None;
    }
    s.parse::<f64>().ok().map(|f| (f * 1_000_000.0) as u64)
}

fn behaviour(argv: &[String]) -> Behaviour {
    let prog = argv
        .first()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .unwrap_or("");
    let mut b = Behaviour {
        run_us: Some(0),
        code: 0,
        ignored: BTreeSet::new(),
    };
    match prog {
        "true" => {}
        "false" => b.code = 1,
        "sleep" => b.run_us = argv.get(1).and_then(|s| secs_to_us(s)),
        "sh" if argv.get(1).map(String::as_str) == Some("-c") => {
            let script = argv.get(2).map(String::as_str).unwrap_or("");
            for cmd in script.split(';').map(str::trim).filter(|c| !c.is_empty()) {
                let w: Vec<&str> = cmd.split_whitespace().collect();
                match w.as_slice() {
                    ["sleep", s] => {
                        b.run_us = match (b.run_us, secs_to_us(s)) {
                            (Some(a), Some(d)) => Some(a + d),
                            _ => None,
                        }
                    }
                    ["exit", n] => {
                        b.code = n.parse().unwrap_or(2);
                        break;
                    }
                    ["true"] => b.code = 0,
                    ["false"] => b.code = 1,
                    ["trap", "''", sigs @ ..] | ["trap", "\"\"", sigs @ ..] => b
                        .ignored
                        .extend(sigs.iter().filter_map(|s| signal_number(s))),
                    _ => b.code = 127,
                }
            }
        }
        _ => b.code = 203,
    }
    b
}

struct Harness {
    engine: Engine,
    now: Now,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    /// Live fake processes and the signals they ignore.
    live: BTreeMap<u64, BTreeSet<i32>>,
    units: Vec<String>,
    jobs: Vec<String>,
    trace: Vec<JobEvent>,
}

/// A job appearing or going away, for any unit: what invariant checks look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEvent {
    New {
        id: u32,
        unit: String,
    },
    Removed {
        id: u32,
        unit: String,
        result: String,
    },
}

impl Harness {
    fn schedule(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    fn pump(&mut self) {
        loop {
            let acts = self.engine.take_actions();
            if acts.is_empty() {
                return;
            }
            for a in acts {
                self.act(a);
            }
        }
    }

    fn act(&mut self, a: Action) {
        let now = self.now.monotonic_us;
        match a {
            Action::Spawn { token, argv, .. } => {
                let b = behaviour(&argv);
                self.live.insert(token, b.ignored.clone());
                self.engine
                    .process_started(token, 1000 + token as u32, self.now);
                if let Some(d) = b.run_us {
                    self.schedule(
                        now + d,
                        Event::Exit {
                            token,
                            code: b.code,
                        },
                    );
                }
            }
            Action::Kill { tokens, signal, .. } => {
                for t in tokens {
                    let dies = self.live.get(&t).is_some_and(|ign| {
                        signal == libc::SIGKILL
                            || (!ign.contains(&signal) && signal != libc::SIGCONT && signal != 0)
                    });
                    if dies {
                        self.schedule(
                            now,
                            Event::Exit {
                                token: t,
                                code: -signal,
                            },
                        );
                    }
                }
            }
            Action::SetTimer { id, delay_us } => {
                self.schedule(now.saturating_add(delay_us), Event::Timer(id))
            }
            Action::JobNew { id, unit, .. } => self.trace.push(JobEvent::New { id, unit }),
            Action::JobRemoved {
                id, unit, result, ..
            } => {
                if self.units.contains(&unit) {
                    self.jobs.push(format!("{unit} {}", result.as_str()));
                }
                let result = result.as_str().to_string();
                self.trace.push(JobEvent::Removed { id, unit, result });
            }
            _ => {}
        }
    }

    fn deliver(&mut self, at: u64, ev: Event) {
        let d = at.saturating_sub(self.now.monotonic_us);
        self.now.monotonic_us += d;
        self.now.realtime_us += d;
        match ev {
            Event::Exit { token, code } => {
                if self.live.remove(&token).is_some() {
                    let exit = if code < 0 {
                        Exit::Signal(-code)
                    } else {
                        Exit::Code(code)
                    };
                    self.engine.process_exited(token, exit, self.now);
                }
            }
            Event::Timer(id) => self.engine.timer_fired(id, self.now),
        }
        self.pump();
    }

    fn pop_until(&mut self, limit: u64) -> bool {
        match self.queue.peek() {
            Some(Reverse((at, _, _))) if *at <= limit => {}
            _ => return false,
        }
        if let Some(Reverse((at, _, ev))) = self.queue.pop() {
            self.deliver(at, ev);
        }
        true
    }

    /// Runs events until no job is pending and nothing is due within the settle window.
    fn wait_idle(&mut self) -> Result<(), String> {
        let start = self.now.monotonic_us;
        loop {
            self.pump();
            if self.now.monotonic_us - start > STEP_LIMIT_US {
                return Err("jobs still pending after 600 s of simulated time".into());
            }
            if self.engine.has_jobs() {
                if !self.pop_until(u64::MAX) {
                    return Err(format!(
                        "jobs pending but nothing left to happen: {}",
                        self.pending_jobs()
                    ));
                }
            } else if !self.pop_until(self.now.monotonic_us + SETTLE_US) {
                return Ok(());
            }
        }
    }

    /// `unit job-type/job-state (active/sub)` of every unit with a job, for stuck-step errors.
    fn pending_jobs(&self) -> String {
        let e = &self.engine;
        e.units()
            .filter_map(|u| {
                let j = e.job(u.job?)?;
                Some(format!(
                    "{} {:?}/{:?} ({}/{})",
                    u.name,
                    j.job_type,
                    j.state,
                    u.active.as_str(),
                    u.sub
                ))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn sleep(&mut self, ms: u64) {
        let until = self.now.monotonic_us + ms * 1000;
        while self.pop_until(until) {}
        let d = until.saturating_sub(self.now.monotonic_us);
        self.now.monotonic_us += d;
        self.now.realtime_us += d;
    }

    fn run_op(&mut self, op: &Op) -> String {
        let now = self.now;
        let r = match op {
            Op::Start(u, m) => self.engine.enqueue(u, JobType::Start, m, now).map(|_| ()),
            Op::Stop(u, m) => self.engine.enqueue(u, JobType::Stop, m, now).map(|_| ()),
            Op::Restart(u, m) => self.engine.enqueue(u, JobType::Restart, m, now).map(|_| ()),
            Op::Kill(u, s) => {
                let sig = signal_number(s).unwrap_or(libc::SIGTERM);
                self.engine.kill_unit(u, "all", sig)
            }
            Op::ResetFailed(u) => self.engine.reset_failed(u.as_deref(), now),
            Op::SleepMs(ms) => {
                self.sleep(*ms);
                Ok(())
            }
            Op::WaitIdle => Ok(()),
        };
        match r {
            Ok(()) => "ok".to_string(),
            Err(e) => e.name.to_string(),
        }
    }

    fn observe(&mut self) -> Vec<UnitObs> {
        let names = self.units.clone();
        names
            .iter()
            .map(|n| match self.engine.load_unit(n, self.now) {
                Ok(u) => UnitObs {
                    name: n.clone(),
                    load: u.load_state.to_string(),
                    active: u.active.as_str().to_string(),
                    sub: u.sub.to_string(),
                    result: if n.ends_with(".service") {
                        u.svc.result.to_string()
                    } else {
                        "-".to_string()
                    },
                },
                Err(e) => UnitObs {
                    name: n.clone(),
                    load: format!("error:{}", e.name),
                    active: "-".into(),
                    sub: "-".into(),
                    result: "-".into(),
                },
            })
            .collect()
    }
}

/// Replays `case` on a fresh engine; one observation per step.
pub fn run(case: &Case) -> Result<Vec<StepObs>, String> {
    Ok(run_traced(case)?.into_iter().map(|(o, _)| o).collect())
}

/// Like [`run`], with every job event of each step.
pub fn run_traced(case: &Case) -> Result<Vec<(StepObs, Vec<JobEvent>)>, String> {
    let mut src = MapSource::default();
    for (n, t) in &case.units {
        src = src.with(n, t);
    }
    let mut h = Harness {
        engine: Engine::new(Box::new(src)),
        now: Now {
            realtime_us: 1_700_000_000_000_000,
            monotonic_us: 1_000_000,
        },
        seq: 0,
        queue: BinaryHeap::new(),
        live: BTreeMap::new(),
        units: case.recorded_units(),
        jobs: Vec::new(),
        trace: Vec::new(),
    };
    let mut out = Vec::new();
    for step in &case.steps {
        h.sleep(BEFORE_STEP_MS);
        h.jobs.clear();
        let outcome = h.run_op(&step.op);
        h.wait_idle()
            .map_err(|e| format!("{}: line {}: {e}", case.name, step.line))?;
        let units = h.observe();
        h.pump();
        let mut jobs = std::mem::take(&mut h.jobs);
        jobs.sort();
        let trace = std::mem::take(&mut h.trace);
        out.push((
            StepObs {
                op: step.op.to_string(),
                outcome,
                jobs,
                units,
            },
            trace,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_programs() {
        let v = |s: &[&str]| behaviour(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["/bin/false"]).code, 1);
        assert_eq!(v(&["/bin/sleep", "2"]).run_us, Some(2_000_000));
        assert_eq!(v(&["/bin/sleep", "infinity"]).run_us, None);
        let b = v(&["/bin/sh", "-c", "trap '' TERM; sleep 1; exit 3"]);
        assert_eq!((b.run_us, b.code), (Some(1_000_000), 3));
        assert!(b.ignored.contains(&libc::SIGTERM));
        assert_eq!(v(&["/nonexistent"]).code, 203);
    }
}
