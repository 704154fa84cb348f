//! Random unit graphs for the differential conformance suite: `generate(seed)` builds a case of
//! 3–6 units with random dependency kinds, service types and exit codes, plus 2–6 operations.
//!
//! The graphs are shaped so that real systemd settles to a state that does not depend on when
//! the recorder samples it:
//! - dependencies that pull in, check or start other units (Requires, Wants, Requisite, BindsTo,
//!   Upholds, OnFailure) only point to units later in the list, so no chain of starts and
//!   failures can loop; Conflicts= and PartOf= point either way;
//! - ordering (After=/Before=) follows one fixed rank: later units first, targets last, which
//!   agrees with the implicit After= a target gets on its dependencies and lets Requires=,
//!   Requisite= and BindsTo= always come with After= (without it systemd's outcome depends on
//!   its run queue);
//! - a service only ends on its own within 0.2 s of starting, inside the recorder's 0.4 s
//!   stability window, and no two simple/exec services do (see [`avoid_spawn_races`]);
//! - Restart=on-failure is only set on services that never end by themselves, so it only acts
//!   after a kill, and restarts within 0.1 s, again inside the window (a longer RestartSec= would
//!   leave start jobs of the auto-restarting unit waiting for the timer, which systemd does);
//! - an upheld unit never ends on its own, requires nothing and is in no Conflicts= pair, since
//!   systemd would restart it forever;
//! - no unit can be started more than five times, below systemd's default start limit.

use super::case::{Case, Op, Step};
use std::fmt::Write as _;

/// SplitMix64: tiny, seedable, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dep {
    Requires,
    Wants,
    Requisite,
    BindsTo,
    PartOf,
    Conflicts,
    Upholds,
    OnFailure,
}

impl Dep {
    fn key(self) -> &'static str {
        match self {
            Dep::Requires => "Requires",
            Dep::Wants => "Wants",
            Dep::Requisite => "Requisite",
            Dep::BindsTo => "BindsTo",
            Dep::PartOf => "PartOf",
            Dep::Conflicts => "Conflicts",
            Dep::Upholds => "Upholds",
            Dep::OnFailure => "OnFailure",
        }
    }
}

/// Kinds that start nothing, allowed towards earlier units.
const BACKWARD: &[Dep] = &[Dep::PartOf, Dep::Conflicts];
const FORWARD: &[Dep] = &[
    Dep::Requires,
    Dep::Wants,
    Dep::Requisite,
    Dep::BindsTo,
    Dep::PartOf,
    Dep::Conflicts,
    Dep::Upholds,
    Dep::OnFailure,
];

#[derive(Debug, Clone)]
struct Svc {
    ty: &'static str,
    exec: String,
    remain: bool,
    restart: bool,
}

#[derive(Debug, Clone)]
struct Unit {
    name: String,
    svc: Option<Svc>,
    deps: Vec<(Dep, usize)>,
    after: Vec<usize>,
    before: Vec<usize>,
    stop_when_unneeded: bool,
}

const LETTERS: &[u8] = b"abcdef";

fn program(rng: &mut Rng, ty: &str) -> String {
    let code = rng.pick(&[0, 1, 3]);
    let quick = rng.chance(1, 2);
    if ty == "oneshot" {
        return match rng.below(4) {
            0 => "/bin/true".to_string(),
            1 => "/bin/false".to_string(),
            _ if quick => format!("/bin/sh -c \"exit {code}\""),
            _ => format!("/bin/sh -c \"sleep 0.2; exit {code}\""),
        };
    }
    // A simple/exec service that exits at once races its dependents' jobs in real systemd.
    if rng.chance(3, 5) {
        "/bin/sleep infinity".to_string()
    } else {
        format!("/bin/sh -c \"sleep 0.2; exit {code}\"")
    }
}

fn units(rng: &mut Rng) -> Vec<Unit> {
    let n = 3 + rng.below(4);
    let targets = if rng.chance(1, 3) { 1 } else { 0 };
    let mut out: Vec<Unit> = (0..n)
        .map(|i| {
            let letter = LETTERS[i] as char;
            let svc = (i >= targets).then(|| {
                let ty = rng.pick(&["simple", "simple", "oneshot", "oneshot", "exec"]);
                Svc {
                    ty,
                    exec: program(rng, ty),
                    remain: rng.chance(1, 3),
                    restart: rng.chance(1, 4),
                }
            });
            let suffix = if svc.is_some() { "service" } else { "target" };
            Unit {
                name: format!("{letter}.{suffix}"),
                svc,
                deps: Vec::new(),
                after: Vec::new(),
                before: Vec::new(),
                stop_when_unneeded: rng.chance(1, 6),
            }
        })
        .collect();
    // Rank for ordering: services in reverse list order (what a unit pulls in comes first),
    // then targets, also in reverse, matching the implicit After= a target gets on its deps.
    let rank = |i: usize| if i >= targets { n - i } else { 2 * n - i };
    for (i, u) in out.iter_mut().enumerate() {
        for j in 0..n {
            if j > i && rng.chance(1, 4) {
                let dep = rng.pick(FORWARD);
                u.deps.push((dep, j));
            } else if j < i && rng.chance(1, 8) {
                let dep = rng.pick(BACKWARD);
                u.deps.push((dep, j));
            }
        }
    }
    keep_upheld_running(&mut out);
    avoid_spawn_races(&mut out);
    for i in 0..n {
        for j in i + 1..n {
            if !rng.chance(1, 3) {
                continue;
            }
            let (first, later) = if rank(i) < rank(j) { (i, j) } else { (j, i) };
            if rng.chance(1, 2) {
                out[later].after.push(first);
            } else {
                out[first].before.push(later);
            }
        }
    }
    // Without After= the requisite check, or the required or bound unit failing, races the
    // unit's own start inside systemd (its documentation says to combine them): the outcome
    // depends on its run queue order and on how far the spawn got.
    for u in out.iter_mut() {
        let requisites: Vec<usize> = u
            .deps
            .iter()
            .filter(|(d, _)| matches!(d, Dep::Requires | Dep::Requisite | Dep::BindsTo))
            .map(|(_, j)| *j)
            .collect();
        for j in requisites {
            if !u.after.contains(&j) {
                u.after.push(j);
            }
        }
    }
    out
}

/// Upholds= restarts its unit whenever it is inactive: a unit that ends by itself, is stopped by
/// a conflict or fails with a requirement would be restarted in a loop until the start limit,
/// at a rate that depends on timing.
fn keep_upheld_running(units: &mut [Unit]) {
    let upheld: Vec<usize> = units
        .iter()
        .flat_map(|u| u.deps.iter())
        .filter(|(d, _)| *d == Dep::Upholds)
        .map(|(_, j)| *j)
        .collect();
    for &j in &upheld {
        if let Some(svc) = units[j].svc.as_mut() {
            if svc.ty == "oneshot" {
                svc.remain = true;
                svc.exec = "/bin/true".to_string();
            } else {
                svc.exec = "/bin/sleep infinity".to_string();
            }
        }
    }
    for (i, u) in units.iter_mut().enumerate() {
        let up = upheld.contains(&i);
        u.deps.retain(|(d, j)| match d {
            Dep::Conflicts => !(up || upheld.contains(j)),
            Dep::Requisite | Dep::BindsTo => !up,
            _ => true,
        });
        if up {
            // A failing requirement would take the upheld unit down every time.
            for (d, _) in u.deps.iter_mut() {
                if *d == Dep::Requires {
                    *d = Dep::Wants;
                }
            }
            u.stop_when_unneeded = false;
        }
    }
}

/// Two services ending on their own at the same moment race each other, and a stop that
/// reaches a service while systemd is still spawning it can be lost (Result=timeout after
/// TimeoutStopSec=): at most one simple/exec service ends by itself, and StopWhenUnneeded=
/// services are oneshots, which are only stopped once their start job is over.
fn avoid_spawn_races(units: &mut [Unit]) {
    let mut self_ending = false;
    for u in units.iter_mut() {
        let swu = u.stop_when_unneeded;
        let Some(svc) = u.svc.as_mut() else {
            continue;
        };
        if swu && svc.ty != "oneshot" {
            svc.ty = "oneshot";
            svc.remain = true;
            if svc.exec.contains("sleep infinity") {
                svc.exec = "/bin/true".to_string();
            }
        }
        if svc.ty != "oneshot" && !svc.exec.contains("sleep infinity") {
            if self_ending {
                svc.exec = "/bin/sleep infinity".to_string();
            }
            self_ending = true;
        }
    }
}

fn unit_text(units: &[Unit], u: &Unit) -> String {
    let mut s = String::from("[Unit]\n");
    let name = |j: usize| units[j].name.as_str();
    for (d, j) in &u.deps {
        let _ = writeln!(s, "{}={}", d.key(), name(*j));
    }
    for j in &u.after {
        let _ = writeln!(s, "After={}", name(*j));
    }
    for j in &u.before {
        let _ = writeln!(s, "Before={}", name(*j));
    }
    if u.stop_when_unneeded {
        s.push_str("StopWhenUnneeded=yes\n");
    }
    if let Some(svc) = &u.svc {
        let _ = writeln!(s, "[Service]\nType={}\nExecStart={}", svc.ty, svc.exec);
        if svc.remain {
            s.push_str("RemainAfterExit=yes\n");
        }
        if svc.restart && svc.exec.contains("sleep infinity") {
            s.push_str("Restart=on-failure\nRestartSec=100ms\n");
        }
    }
    s
}

fn steps(rng: &mut Rng, units: &[Unit]) -> Vec<Op> {
    let count = 2 + rng.below(5);
    let services: Vec<&str> = units
        .iter()
        .filter(|u| u.svc.is_some())
        .map(|u| u.name.as_str())
        .collect();
    let any = |rng: &mut Rng| units[rng.below(units.len())].name.clone();
    let mode = |rng: &mut Rng| if rng.chance(1, 4) { "fail" } else { "replace" }.to_string();
    let mut ops = vec![Op::Start(any(rng), "replace".to_string())];
    while ops.len() < count {
        let op = match rng.below(11) {
            0..=2 => Op::Start(any(rng), mode(rng)),
            3..=4 => Op::Stop(any(rng), mode(rng)),
            5..=6 => Op::Restart(any(rng), mode(rng)),
            7..=8 if !services.is_empty() => Op::Kill(
                rng.pick(&services).to_string(),
                rng.pick(&["TERM", "KILL"]).to_string(),
            ),
            7..=9 => Op::SleepMs(1500),
            _ if rng.chance(1, 2) => Op::ResetFailed(None),
            _ => Op::ResetFailed(Some(any(rng))),
        };
        ops.push(op);
    }
    // Any other step may start a unit (directly, or by Upholds= after a stop or kill); systemd
    // refuses the sixth start within 10 s.
    let may_start = |op: &Op| !matches!(op, Op::SleepMs(_) | Op::ResetFailed(_));
    if ops.iter().filter(|o| may_start(o)).count() > 5 {
        if let Some(last) = ops.last_mut() {
            *last = Op::ResetFailed(None);
        }
    }
    ops
}

/// The case for `seed`, named `gen-<seed>`; the same seed always gives the same case.
pub fn generate(seed: u64) -> Case {
    let mut rng = Rng(seed);
    let us = units(&mut rng);
    let ops = steps(&mut rng, &us);
    let mut case = Case {
        name: format!("gen-{seed}"),
        units: us
            .iter()
            .map(|u| (u.name.clone(), unit_text(&us, u)))
            .collect(),
        files: Vec::new(),
        links: Vec::new(),
        watch: Vec::new(),
        steps: ops.into_iter().map(|op| Step { line: 0, op }).collect(),
    };
    // Line numbers as in the rendered file, so that errors point into gen-<seed>.case.
    let first = render(&case)
        .lines()
        .position(|l| l == "--- steps")
        .map_or(0, |p| p + 2);
    for (i, s) in case.steps.iter_mut().enumerate() {
        s.line = first + i;
    }
    case
}

/// The `.case` text of `case`; [`super::case::parse`] reads it back to the same case.
pub fn render(case: &Case) -> String {
    let mut s = format!(
        "# {}: random unit graph from conformance::generate (`just conformance-generate`).\n",
        case.name
    );
    for w in &case.watch {
        let _ = writeln!(s, "watch {w}");
    }
    for (name, text) in &case.units {
        let _ = writeln!(s, "--- {name}");
        s.push_str(text);
        if !text.is_empty() && !text.ends_with('\n') {
            s.push('\n');
        }
    }
    s.push_str("--- steps\n");
    for st in &case.steps {
        let _ = writeln!(s, "{}", st.op);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::case::parse;
    use super::*;

    #[test]
    fn rendered_cases_parse_back_to_the_same_case() {
        for seed in 0..300 {
            let c = generate(seed);
            let text = render(&c);
            let back = parse(&c.name, "gen.case", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, c, "seed {seed}:\n{text}");
        }
    }

    #[test]
    fn same_seed_same_case_and_shapes_stay_in_bounds() {
        assert_eq!(generate(7), generate(7));
        assert_ne!(render(&generate(7)), render(&generate(8)));
        for seed in 0..300 {
            let c = generate(seed);
            assert!((3..=6).contains(&c.units.len()), "seed {seed}");
            assert!((2..=6).contains(&c.steps.len()), "seed {seed}");
        }
    }

    #[test]
    fn upheld_units_never_end_by_themselves() {
        for seed in 0..300 {
            let c = generate(seed);
            for (_, text) in &c.units {
                for l in text.lines() {
                    let Some(u) = l.strip_prefix("Upholds=") else {
                        continue;
                    };
                    let (_, t) = c.units.iter().find(|(n, _)| n == u).expect("upheld unit");
                    assert!(
                        t.contains("sleep infinity") || t.contains("RemainAfterExit=yes"),
                        "seed {seed}: {u}:\n{t}"
                    );
                    assert!(!t.contains("/bin/false") && !t.contains("exit "), "{t}");
                }
            }
        }
    }
}
