//! Runs a case against the pure engine with fake processes and a simulated clock, producing
//! the same observations the recorder takes from real systemd.
//!
//! Fake programs (by argv): `true`, `false`, `sleep N|infinity`, and `sh -c SCRIPT` where the
//! script is `;`-separated `sleep N`, `exit N`, `true`, `false`, `trap '' SIG...` (ignore),
//! `systemd-notify --ready|KEY=VALUE...` (sent from a child, so not the main PID) and one
//! trailing `CMD &` (a background child that outlives the shell, for Type=forking).
//! `test`/`[` with `=`, `!=`, `-n`, `-z` see the spawn's environment (EnvironmentFile= files
//! are the case's unit files under /etc/systemd/system) and `$PWD` (WorkingDirectory=).
//! Anything else fails to exec (exit 203).

use super::case::{signal_number, Case, Op};
use super::fixture::{StepObs, UnitObs};
use crate::engine::{expand_argv, Action, Engine, ExecContext, Exit, JobType, Now, Request};
use crate::loader::MapSource;
use crate::unitfile::envfile::parse_env_file;
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
    Exit {
        token: u64,
        code: i32,
    },
    Timer(u64),
    /// The `index`th entry of [`Harness::notes`].
    Notify(usize),
}

/// What a fake program does when started.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Behaviour {
    run_us: Option<u64>,
    code: i32,
    ignored: BTreeSet<i32>,
    /// The program does not exist: the spawn itself fails.
    exec_fails: bool,
    /// (offset, message) of `systemd-notify` calls.
    notify: Vec<(u64, String)>,
    /// A background child: when it ends (offset from the spawn; `None` never).
    background: Option<Option<u64>>,
}

/// `systemd-notify` arguments as the message it sends.
fn notify_message(args: &[&str]) -> String {
    args.iter()
        .map(|a| if *a == "--ready" { "READY=1" } else { a })
        .collect::<Vec<_>>()
        .join("\n")
}

fn secs_to_us(s: &str) -> Option<u64> {
    if s == "infinity" {
        return None;
    }
    s.parse::<f64>().ok().map(|f| (f * 1_000_000.0) as u64)
}

/// Directories that exist for WorkingDirectory= in the fake system.
const DIRS: &[&str] = &["/", "/tmp", "/root", "/etc", "/run", "/var", "/usr"];

/// Shell words of `cmd`: quotes removed, `$VAR`/`${VAR}` expanded outside single quotes.
fn sh_words(cmd: &str, env: &[(String, String)]) -> Vec<String> {
    let lookup = |n: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.get_or_insert_with(String::new).push(c),
            (_, '$') => {
                let braced = chars.peek() == Some(&'{');
                if braced {
                    chars.next();
                }
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' {
                        name.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if braced && chars.peek() == Some(&'}') {
                    chars.next();
                }
                let val = lookup(&name);
                // Unquoted, an empty expansion is no word at all.
                if quote.is_some() || !val.is_empty() {
                    cur.get_or_insert_with(String::new).push_str(&val);
                }
            }
            (_, c) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(cur);
    words
}

/// `test`/`[` expressions; exit code 0 (true), 1 (false) or 2 (unsupported).
fn eval_test(args: &[String]) -> i32 {
    let r = match args {
        [a] => !a.is_empty(),
        [op, a] if op == "-n" => !a.is_empty(),
        [op, a] if op == "-z" => a.is_empty(),
        [a, op, b] if op == "=" || op == "==" => a == b,
        [a, op, b] if op == "!=" => a != b,
        _ => return 2,
    };
    i32::from(!r)
}

#[cfg(test)]
fn behaviour(argv: &[String]) -> Behaviour {
    behaviour_in(argv, &[])
}

/// A fake program run with environment `env` (including `PWD`).
fn behaviour_in(argv: &[String], env: &[(String, String)]) -> Behaviour {
    let prog = argv
        .first()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .unwrap_or("");
    let mut b = Behaviour {
        run_us: Some(0),
        code: 0,
        ignored: BTreeSet::new(),
        exec_fails: false,
        notify: Vec::new(),
        background: None,
    };
    match prog {
        "true" => {}
        "false" => b.code = 1,
        "sleep" => b.run_us = argv.get(1).and_then(|s| secs_to_us(s)),
        "sh" if argv.get(1).map(String::as_str) == Some("-c") => {
            let script = argv.get(2).map(String::as_str).unwrap_or("");
            for cmd in script.split(';').map(str::trim).filter(|c| !c.is_empty()) {
                if let Some(bg) = cmd.strip_suffix('&') {
                    let child = behaviour_in(&sh_words(bg, env), env);
                    let at = b.run_us.unwrap_or(0);
                    b.background = Some(child.run_us.map(|d| at + d));
                    continue;
                }
                let words = sh_words(cmd, env);
                let w: Vec<&str> = words.iter().map(String::as_str).collect();
                match w.as_slice() {
                    ["test", args @ ..] => b.code = eval_test(&words[1..1 + args.len()]),
                    ["[", .., "]"] => b.code = eval_test(&words[1..words.len() - 1]),
                    ["systemd-notify", args @ ..] => {
                        if let Some(at) = b.run_us {
                            b.notify.push((at, notify_message(args)));
                        }
                    }
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
                    ["trap", "", sigs @ ..] => b
                        .ignored
                        .extend(sigs.iter().filter_map(|s| signal_number(s))),
                    _ => b.code = 127,
                }
            }
        }
        _ => {
            b.code = 203;
            b.exec_fails = true;
        }
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
    /// (token, message) of scheduled notifications.
    notes: Vec<(u64, String)>,
    /// Background children by the token of the shell that started them: (end, ignored).
    background: BTreeMap<u64, (Option<u64>, BTreeSet<i32>)>,
    /// The case's unit files by name, readable as environment files.
    files: BTreeMap<String, String>,
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

type Env = Vec<(String, String)>;

/// Why a fake spawn does not run.
enum Refusal {
    /// A missing EnvironmentFile=: no process at all (result `resources`).
    Resources(String),
    /// A missing WorkingDirectory=: the child fails before exec.
    Chdir(String),
}

impl Harness {
    /// The fake IO layer's [`crate::io::procs::prepare`]: environment files come from the
    /// case's unit files, directories from [`DIRS`].
    fn prepare(
        &self,
        argv: &[String],
        env: &[(String, String)],
        ctx: &ExecContext,
    ) -> Result<(Vec<String>, Env), Refusal> {
        let mut from_files = Vec::new();
        for (path, optional) in &ctx.env_files {
            let text = path
                .strip_prefix("/etc/systemd/system/")
                .and_then(|n| self.files.get(n));
            match text {
                Some(t) => from_files.extend(parse_env_file(t).vars),
                None if *optional => {}
                None => return Err(Refusal::Resources(format!("{path}: No such file"))),
            }
        }
        let mut env = ctx.merge(env, &from_files);
        let argv = if ctx.env_files.is_empty() {
            argv.to_vec()
        } else {
            expand_argv(argv, &env)
        };
        let pwd = match &ctx.working_directory {
            None => "/".to_string(),
            Some((d, optional)) => {
                let d = if d == "~" { "/root" } else { d.as_str() };
                match (DIRS.contains(&d), optional) {
                    (true, _) => d.to_string(),
                    (false, true) => "/".to_string(),
                    (false, false) => {
                        return Err(Refusal::Chdir(format!(
                            "chdir {d}: No such file or directory"
                        )))
                    }
                }
            }
        };
        env.push(("PWD".to_string(), pwd));
        Ok((argv, env))
    }

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
            Action::Spawn {
                token,
                argv,
                env,
                ctx,
                ..
            } => {
                let (argv, env) = match self.prepare(&argv, &env, &ctx) {
                    Ok(p) => p,
                    Err(Refusal::Resources(e)) => {
                        self.engine.spawn_refused(token, &e, self.now);
                        return;
                    }
                    Err(Refusal::Chdir(e)) => {
                        self.engine.spawn_failed(token, &e, self.now);
                        return;
                    }
                };
                let b = behaviour_in(&argv, &env);
                if b.exec_fails {
                    self.engine
                        .spawn_failed(token, "No such file or directory", self.now);
                    return;
                }
                self.live.insert(token, b.ignored.clone());
                self.engine
                    .process_started(token, 1000 + token as u32, self.now);
                for (at, msg) in b.notify {
                    self.notes.push((token, msg));
                    self.schedule(now + at, Event::Notify(self.notes.len() - 1));
                }
                if let Some(end) = b.background {
                    self.background
                        .insert(token, (end.map(|e| now + e), b.ignored.clone()));
                }
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
            Action::FindMainPid { token, .. } => {
                let child = self
                    .background
                    .remove(&token)
                    .filter(|(end, _)| end.is_none_or(|e| e > now));
                match child {
                    Some((end, ignored)) => {
                        self.live.insert(token, ignored);
                        self.engine
                            .main_pid_found(token, Some(2000 + token as u32), self.now);
                        if let Some(e) = end {
                            self.schedule(e, Event::Exit { token, code: 0 });
                        }
                    }
                    None => self.engine.main_pid_found(token, None, self.now),
                }
            }
            // Binding always succeeds here: the recorded cases use free addresses.
            Action::SocketListen { unit, .. } => self.engine.socket_bound(&unit, Ok(()), self.now),
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
            Event::Notify(i) => {
                if let Some((token, msg)) = self.notes.get(i).cloned() {
                    if self.live.contains_key(&token) {
                        // Sent by a child of the process, so never from the main PID.
                        self.engine.notify(token, 3000 + i as u32, &msg, self.now);
                    }
                }
            }
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
            Op::Reload(u, m) => self
                .engine
                .enqueue_request(u, Request::Reload, m, now)
                .map(|_| ()),
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
            Op::Enable(u) => self
                .engine
                .source()
                .enable(std::slice::from_ref(u), false, false)
                .map(|_| ()),
            Op::Disable(u) => self
                .engine
                .source()
                .disable(std::slice::from_ref(u), false)
                .map(|_| ()),
            Op::DaemonReload => {
                self.engine.reload(now);
                Ok(())
            }
        };
        match r {
            Ok(()) => "ok".to_string(),
            Err(e) => e.name.to_string(),
        }
    }

    fn observe(&mut self) -> Vec<UnitObs> {
        let names = self.units.clone();
        let mut out = Vec::new();
        for n in &names {
            // Like GetUnitFileState: from the files, `-` when there is none.
            let fs = self.engine.source().file_state(n);
            let file_state = Some(fs.unwrap_or_else(|| "-".into()));
            out.push(match self.engine.load_unit(n, self.now) {
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
                    file_state,
                },
                Err(e) => UnitObs {
                    name: n.clone(),
                    load: format!("error:{}", e.name),
                    active: "-".into(),
                    sub: "-".into(),
                    result: "-".into(),
                    file_state,
                },
            });
        }
        out
    }
}

/// Replays `case` on a fresh engine; one observation per step.
pub fn run(case: &Case) -> Result<Vec<StepObs>, String> {
    Ok(run_traced(case)?.into_iter().map(|(o, _)| o).collect())
}

/// Like [`run`], with every job event of each step.
pub fn run_traced(case: &Case) -> Result<Vec<(StepObs, Vec<JobEvent>)>, String> {
    let mut src = MapSource::default();
    for (n, t) in case.units.iter().chain(&case.files) {
        src = src.with(n, t);
    }
    for (l, t) in &case.links {
        src = src.with_link(l, t);
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
        notes: Vec::new(),
        background: BTreeMap::new(),
        files: case.units.iter().cloned().collect(),
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
        assert!(v(&["/nonexistent"]).exec_fails);
        let n = v(&[
            "/bin/sh",
            "-c",
            "sleep 1; systemd-notify --ready STATUS=up; sleep 5",
        ]);
        assert_eq!(
            n.notify,
            vec![(1_000_000, "READY=1\nSTATUS=up".to_string())]
        );
        assert_eq!(n.run_us, Some(6_000_000));
        let f = v(&["/bin/sh", "-c", "sleep 1; sleep 2 &"]);
        assert_eq!(
            (f.run_us, f.background),
            (Some(1_000_000), Some(Some(3_000_000)))
        );
        assert_eq!(
            v(&["/bin/sh", "-c", "sleep infinity &"]).background,
            Some(None)
        );
        let env = vec![
            ("FOO".to_string(), "a b".to_string()),
            ("PWD".to_string(), "/tmp".to_string()),
        ];
        let t =
            |script: &str| behaviour_in(&["/bin/sh".into(), "-c".into(), script.into()], &env).code;
        assert_eq!(t(r#"test "$FOO" = "a b""#), 0);
        assert_eq!(t(r#"test "${FOO}" != 'a b'"#), 1);
        assert_eq!(t(r#"[ "$PWD" = /tmp ]"#), 0);
        assert_eq!(t(r#"[ -z "$MISSING" ]"#), 0);
        assert_eq!(
            t("test -n $MISSING"),
            0,
            "unquoted empty word vanishes: `test -n` is true"
        );
        assert_eq!(t(r#"test "$FOO" = a"#), 1);
    }
}
