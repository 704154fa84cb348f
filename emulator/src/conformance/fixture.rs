//! What one runner observed after each step, and its committed text form:
//!
//! ```text
//! step 1 start a.service replace
//! outcome ok
//! job a.service done
//! unit a.service loaded active running success disabled
//! ```
//!
//! The last field of a unit line, UnitFileState from `GetUnitFileState` (`-` when there is no
//! file), is optional: fixtures recorded before it existed leave it out.
//!
//! Job lines are sorted: systemd's JobRemoved order among independent jobs is not stable.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitObs {
    pub name: String,
    pub load: String,
    pub active: String,
    pub sub: String,
    /// Service `Result`, `-` for other unit types.
    pub result: String,
    /// UnitFileState, when recorded.
    pub file_state: Option<String>,
}

impl UnitObs {
    /// Equal states; the file state only counts when both sides have one.
    fn agrees(&self, o: &UnitObs) -> bool {
        (
            self.load.as_str(),
            self.active.as_str(),
            self.sub.as_str(),
            self.result.as_str(),
        ) == (
            o.load.as_str(),
            o.active.as_str(),
            o.sub.as_str(),
            o.result.as_str(),
        ) && match (&self.file_state, &o.file_state) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }

    fn show(&self) -> String {
        let mut s = format!("{} {} {} {}", self.load, self.active, self.sub, self.result);
        if let Some(f) = &self.file_state {
            s.push(' ');
            s.push_str(f);
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepObs {
    pub op: String,
    /// `ok` or the D-Bus error name the operation returned.
    pub outcome: String,
    /// `unit result` for every JobRemoved of a case unit during the step, sorted.
    pub jobs: Vec<String>,
    pub units: Vec<UnitObs>,
}

impl StepObs {
    /// Human-readable differences to `other` (empty when they agree).
    pub fn diff(&self, other: &StepObs) -> Vec<String> {
        let mut out = Vec::new();
        if self.outcome != other.outcome {
            out.push(format!("outcome {} vs {}", self.outcome, other.outcome));
        }
        if self.jobs != other.jobs {
            out.push(format!("jobs {:?} vs {:?}", self.jobs, other.jobs));
        }
        for u in &self.units {
            match other.units.iter().find(|o| o.name == u.name) {
                Some(o) if o.agrees(u) => {}
                Some(o) => out.push(format!("{}: {} vs {}", u.name, u.show(), o.show())),
                None => out.push(format!("{}: missing", u.name)),
            }
        }
        out
    }
}

pub fn render(case: &str, steps: &[StepObs]) -> String {
    let mut s = format!("# conformance fixture for {case}: recorded from real systemd 252\n");
    for (i, st) in steps.iter().enumerate() {
        let _ = writeln!(s, "step {} {}", i + 1, st.op);
        let _ = writeln!(s, "outcome {}", st.outcome);
        for j in &st.jobs {
            let _ = writeln!(s, "job {j}");
        }
        for u in &st.units {
            let _ = writeln!(s, "unit {} {}", u.name, u.show());
        }
    }
    s
}

pub fn parse(file: &str, text: &str) -> Result<Vec<StepObs>, String> {
    let mut steps: Vec<StepObs> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = |m: &str| format!("{file}:{}: {m}", i + 1);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        if key == "step" {
            let (_, op) = rest
                .split_once(' ')
                .ok_or_else(|| at("step needs a number and op"))?;
            steps.push(StepObs {
                op: op.to_string(),
                outcome: String::new(),
                jobs: Vec::new(),
                units: Vec::new(),
            });
            continue;
        }
        let cur = steps
            .last_mut()
            .ok_or_else(|| at("line before the first step"))?;
        match key {
            "outcome" => cur.outcome = rest.to_string(),
            "job" => cur.jobs.push(rest.to_string()),
            "unit" => match rest.split(' ').collect::<Vec<_>>().as_slice() {
                [name, load, active, sub, result, file_state @ ..] if file_state.len() <= 1 => {
                    cur.units.push(UnitObs {
                        name: name.to_string(),
                        load: load.to_string(),
                        active: active.to_string(),
                        sub: sub.to_string(),
                        result: result.to_string(),
                        file_state: file_state.first().map(|f| f.to_string()),
                    })
                }
                _ => return Err(at("unit needs: name load active sub result [file-state]")),
            },
            _ => return Err(at(&format!("unknown key {key:?}"))),
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let st = StepObs {
            op: "start a.service replace".into(),
            outcome: "ok".into(),
            jobs: vec!["a.service done".into()],
            units: vec![UnitObs {
                name: "a.service".into(),
                load: "loaded".into(),
                active: "active".into(),
                sub: "running".into(),
                result: "success".into(),
                file_state: Some("static".into()),
            }],
        };
        let text = render("c", std::slice::from_ref(&st));
        assert_eq!(parse("f", &text).unwrap(), vec![st.clone()]);
        let mut other = st.clone();
        other.units[0].sub = "exited".into();
        assert_eq!(st.diff(&other).len(), 1);
        let mut old = st.clone();
        old.units[0].file_state = None;
        assert!(st.diff(&old).is_empty());
        old.units[0].file_state = Some("enabled".into());
        assert_eq!(st.diff(&old).len(), 1);
        assert!(parse("f", "job x done\n").unwrap_err().starts_with("f:1:"));
    }
}
