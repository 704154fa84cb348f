//! The known-disagreement list in `DIRECTIVES.md`: lines of the form
//! `` - `CASE` step N: reason `` (one step) or `` - `CASE`: reason `` (the whole case), under the
//! heading `## Known disagreements`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub case: String,
    /// `None`: every step of the case.
    pub step: Option<usize>,
    pub reason: String,
}

pub fn parse(text: &str) -> Vec<Known> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("## ") {
            inside = line.trim() == "## Known disagreements";
            continue;
        }
        if !inside {
            continue;
        }
        let Some(rest) = line.trim().strip_prefix("- `") else {
            continue;
        };
        let Some((case, rest)) = rest.split_once('`') else {
            continue;
        };
        let (step, reason) = match rest.trim_start().strip_prefix("step ") {
            Some(r) => {
                let (n, reason) = r.split_once(':').unwrap_or((r, ""));
                (n.trim().parse().ok(), reason)
            }
            None => (None, rest.trim_start().trim_start_matches(':')),
        };
        out.push(Known {
            case: case.to_string(),
            step,
            reason: reason.trim().to_string(),
        });
    }
    out
}

pub fn is_known(list: &[Known], case: &str, step: usize) -> bool {
    list.iter()
        .any(|k| k.case == case && k.step.is_none_or(|s| s == step))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_the_known_section() {
        let t =
            "## Other\n- `x` step 1: no\n## Known disagreements\n- `a` step 2: why\n- `b`: all\n";
        let k = parse(t);
        assert_eq!(k.len(), 2);
        assert!(is_known(&k, "a", 2));
        assert!(!is_known(&k, "a", 1));
        assert!(is_known(&k, "b", 7));
        assert!(!is_known(&k, "x", 1));
    }
}
