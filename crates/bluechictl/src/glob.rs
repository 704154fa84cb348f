//! Glob matching with the subset upstream supports: `*` (any run, also empty) and `?`
//! (exactly one character); case-sensitive and anchored at both ends.

pub fn matches(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Iterative backtracking over the last `*` keeps this linear-ish and stack-free.
    let (mut ti, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn star_and_question_mark() {
        assert!(matches("graphical.target", "*target"));
        assert!(matches("target", "*target"));
        assert!(!matches("target.service", "*target"));
        assert!(matches("a.service", "?.service"));
        assert!(!matches("ab.service", "?.service"));
        assert!(matches("", "*"));
        assert!(!matches("x", ""));
        assert!(matches("abcabc", "a*c*c"));
        assert!(!matches("Target", "target"));
    }
}
