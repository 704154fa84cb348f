//! fnmatch(3) without flags, as systemd applies unit-name patterns (`ListUnitsByPatterns`,
//! `systemctl list-units PATTERN`): `*`, `?`, `[...]` classes with `!`/`^` negation and ranges,
//! and `\` escaping the next character. Patterns arrive over the bus, so matching is iterative
//! (no recursion depth tied to the pattern) and O(pattern × text) at worst.

/// What one pattern element at `pi` does with character `c`: (matched, next pattern index).
fn step(p: &[char], pi: usize, c: char) -> (bool, usize) {
    match p[pi] {
        '?' => (true, pi + 1),
        '[' => match class(p, pi) {
            Some((hit, next)) => (hit(c), next),
            None => (c == '[', pi + 1),
        },
        '\\' if pi + 1 < p.len() => (c == p[pi + 1], pi + 2),
        x => (c == x, pi + 1),
    }
}

/// The class starting at `p[open] == '['`: a membership test and the index after `]`, or
/// `None` if it is not closed (then `[` is literal).
fn class(p: &[char], open: usize) -> Option<(impl Fn(char) -> bool + '_, usize)> {
    let mut i = open + 1;
    let neg = matches!(p.get(i), Some('!' | '^'));
    if neg {
        i += 1;
    }
    let start = i;
    // A `]` right at the start is a member, not the end.
    let close = (start + 1..p.len()).find(|&j| p[j] == ']')?;
    let members = &p[start..close];
    let test = move |c: char| {
        let mut hit = false;
        let mut k = 0;
        while k < members.len() {
            if k + 2 < members.len() && members[k + 1] == '-' {
                hit |= members[k] <= c && c <= members[k + 2];
                k += 3;
            } else {
                hit |= members[k] == c;
                k += 1;
            }
        }
        hit != neg
    };
    Some((test, close + 1))
}

/// Whether `text` matches `pattern` as a whole.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // The last `*` seen and the text position it is currently taken to end at: on a mismatch
    // the star swallows one more character. One star of backtracking suffices because a later
    // star can always absorb what an earlier one would have.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi + 1, ti));
            pi += 1;
            continue;
        }
        if pi < p.len() {
            let (ok, next) = step(&p, pi, t[ti]);
            if ok {
                pi = next;
                ti += 1;
                continue;
            }
        }
        match star {
            Some((after, at)) => {
                pi = after;
                ti = at + 1;
                star = Some((after, at + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::fnmatch;
    use proptest::prelude::*;

    /// Straightforward recursive definition, for comparison on small inputs.
    fn reference(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|i| reference(&p[1..], &t[i..])),
            Some(_) => {
                let Some(&c) = t.first() else { return false };
                let (ok, next) = super::step(p, 0, c);
                ok && reference(&p[next..], &t[1..])
            }
        }
    }

    #[test]
    fn like_fnmatch() {
        assert!(fnmatch("*.service", "a.service"));
        assert!(!fnmatch("*.service", "a.target"));
        assert!(fnmatch("ss?d.*", "sshd.service"));
        assert!(fnmatch("[ab]x.service", "bx.service"));
        assert!(!fnmatch("[!ab]x.service", "bx.service"));
        assert!(!fnmatch("t-[!a-c]*", "t-b.service"));
        assert!(fnmatch("t-[a-c]?.service", "t-bx.service"));
        assert!(fnmatch("[]]x", "]x"));
        assert!(fnmatch("[x", "[x"));
        assert!(fnmatch("a\\*", "a*"));
        assert!(!fnmatch("a\\*", "ab"));
        assert!(fnmatch("", ""));
        assert!(!fnmatch("a", ""));
        assert!(fnmatch("**", ""));
    }

    #[test]
    fn hostile_patterns_stay_cheap() {
        let p = "*a".repeat(20_000) + "b";
        let t = "a".repeat(20_000);
        assert!(!fnmatch(&p, &t));
        assert!(fnmatch(&"*".repeat(1_000_000), "x"));
    }

    proptest! {
        #[test]
        fn agrees_with_the_recursive_definition(
            p in "[ab*?\\[\\]!-]{0,8}",
            t in "[ab\\]-]{0,8}",
        ) {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            prop_assert_eq!(fnmatch(&p, &t), reference(&pc, &tc), "{:?} {:?}", p, t);
        }
    }
}
