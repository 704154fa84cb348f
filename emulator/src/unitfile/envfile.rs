//! EnvironmentFile= contents: `KEY=VALUE` lines, `#`/`;` comments, single and double quotes,
//! backslash escapes and continuation lines, as systemd's `load_env_file` reads them.

use std::collections::HashMap;

/// A parsed file: assignments in order, and `line: message` warnings for skipped lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EnvFile {
    pub vars: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

fn valid_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses the value after `=` (`first`); continuation lines come from `next`, borrowed rather
/// than copied so a long file stays linear. Returns the value and how many lines it used.
fn value(first: &str, next: &[&str]) -> (String, usize) {
    let mut out = String::new();
    let mut used = 1;
    let mut text: String = first.trim_start().to_string();
    let mut quote: Option<char> = None;
    // Length of `out` up to the last character that must survive trailing-space trimming.
    let mut keep = 0;
    loop {
        let mut chars = text.chars().peekable();
        let mut continued = false;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), c) if c == q => {
                    quote = None;
                    keep = out.len();
                }
                (Some('\''), c) => out.push(c),
                (Some(_), '\\') => match chars.next() {
                    Some(n @ ('"' | '\\' | '`' | '$')) => out.push(n),
                    Some(n) => {
                        out.push('\\');
                        out.push(n);
                    }
                    None => continued = true,
                },
                (Some(_), c) => out.push(c),
                (None, '\\') => match chars.next() {
                    Some(n) => {
                        out.push(n);
                        keep = out.len();
                    }
                    None => continued = true,
                },
                (None, c) => {
                    out.push(c);
                    if !c.is_whitespace() {
                        keep = out.len();
                    }
                }
            }
        }
        // An open quote or a trailing backslash continues on the next line.
        if let (true, Some(line)) = (continued || quote.is_some(), next.get(used - 1)) {
            if quote.is_some() && !continued {
                out.push('\n');
            }
            text = line.to_string();
            used += 1;
            continue;
        }
        break;
    }
    if quote.is_none() {
        out.truncate(keep);
    }
    (out, used)
}

/// Parses an environment file's text.
pub fn parse_env_file(text: &str) -> EnvFile {
    let lines: Vec<&str> = text.lines().collect();
    let mut f = EnvFile::default();
    // A reassigned key moves to the end, as in systemd; slots keep that O(1) per assignment.
    let mut slots: Vec<Option<(String, String)>> = Vec::new();
    let mut slot_of: HashMap<String, usize> = HashMap::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        let lineno = i + 1;
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            i += 1;
            continue;
        }
        let Some((key, rest)) = line.split_once('=') else {
            f.warnings
                .push(format!("{lineno}: missing '=', ignoring line"));
            i += 1;
            continue;
        };
        let key = key.trim_end();
        let (val, used) = value(rest, &lines[i + 1..]);
        i += used;
        if valid_name(key) {
            if let Some(old) = slot_of.insert(key.to_string(), slots.len()) {
                slots[old] = None;
            }
            slots.push(Some((key.to_string(), val)));
        } else {
            f.warnings.push(format!(
                "{lineno}: invalid variable name \"{key}\", ignoring"
            ));
        }
    }
    f.vars = slots.into_iter().flatten().collect();
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> Vec<(String, String)> {
        parse_env_file(text).vars
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn plain_comments_and_quotes() {
        let f = parse_env_file(
            "# c\n; c\n\nA=1\n  B = two  \nC=\"x y\"\nD='$no \\n'\nE=a\\ b\n[Unit]\n9X=bad\n",
        );
        assert_eq!(
            f.vars,
            vec![
                kv("A", "1"),
                kv("B", "two"),
                kv("C", "x y"),
                kv("D", "$no \\n"),
                kv("E", "a b")
            ]
        );
        assert_eq!(f.warnings.len(), 2, "{:?}", f.warnings);
        assert!(f.warnings[0].starts_with("9:"), "{:?}", f.warnings);
    }

    #[test]
    fn escapes_continuations_and_overrides() {
        assert_eq!(vars("A=\"q\\\"uote\"\n"), vec![kv("A", "q\"uote")]);
        assert_eq!(
            vars("A=one\\\ntwo\nB=3\n"),
            vec![kv("A", "onetwo"), kv("B", "3")]
        );
        assert_eq!(vars("A=\"multi\nline\"\n"), vec![kv("A", "multi\nline")]);
        assert_eq!(vars("A=1\nA=2\n"), vec![kv("A", "2")]);
        assert_eq!(vars("A=\"kept  \"  \n"), vec![kv("A", "kept  ")]);
        assert_eq!(vars("A=\n"), vec![kv("A", "")]);
    }

    #[test]
    fn reassignment_moves_key_to_the_end() {
        assert_eq!(
            vars("A=1\nB=2\nA=3\nC=4\nB=5\n"),
            vec![kv("A", "3"), kv("C", "4"), kv("B", "5")]
        );
    }

    /// Used to copy every remaining line per assignment (and rescan all keys): quadratic.
    #[test]
    fn two_hundred_thousand_lines_parse_linearly() {
        let mut text = String::new();
        for n in 0..100_000 {
            text.push_str(&format!("K{n}=\"v{n}\\\n"));
            text.push_str("w\"\n");
        }
        text.push_str("K7=last\n");
        let started = std::time::Instant::now();
        let f = parse_env_file(&text);
        println!("envfile: 200k lines parsed in {:?}", started.elapsed());
        assert!(f.warnings.is_empty(), "{:?}", &f.warnings[..1]);
        assert_eq!(f.vars.len(), 100_000);
        assert_eq!(f.vars[0], kv("K0", "v0w"));
        assert_eq!(f.vars[99_998], kv("K99999", "v99999w"));
        assert_eq!(f.vars[99_999], kv("K7", "last"));
    }
}
