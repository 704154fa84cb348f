//! EnvironmentFile= contents: `KEY=VALUE` lines, `#`/`;` comments, single and double quotes,
//! backslash escapes and continuation lines, as systemd's `load_env_file` reads them.

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

/// Parses the value after `=`; returns it and how many input lines it used (continuations).
fn value(lines: &[&str]) -> (String, usize) {
    let mut out = String::new();
    let mut used = 1;
    let mut text: String = lines
        .first()
        .copied()
        .unwrap_or("")
        .trim_start()
        .to_string();
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
        if (continued || quote.is_some()) && used < lines.len() {
            if quote.is_some() && !continued {
                out.push('\n');
            }
            text = lines[used].to_string();
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
        let mut tail: Vec<&str> = vec![rest];
        tail.extend_from_slice(&lines[i + 1..]);
        let (val, used) = value(&tail);
        i += used;
        if valid_name(key) {
            f.vars.retain(|(k, _)| k != key);
            f.vars.push((key.to_string(), val));
        } else {
            f.warnings.push(format!(
                "{lineno}: invalid variable name \"{key}\", ignoring"
            ));
        }
    }
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
}
