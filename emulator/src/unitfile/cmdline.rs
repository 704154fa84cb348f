//! Splitting `ExecStart=`-style command lines the way systemd does.

/// One command with its systemd prefix flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub argv: Vec<String>,
    /// `-` prefix: a non-zero exit is not a failure.
    pub ignore_failure: bool,
}

/// Splits a value into words: whitespace separates, single/double quotes group, backslash
/// escapes (`\n`, `\t`, `\\`, `\"`, `\'`, `\xNN`). An unterminated quote is an error.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                in_word = true;
                match chars.next() {
                    Some('n') => cur.push('\n'),
                    Some('t') => cur.push('\t'),
                    Some('x') => {
                        let h: String = chars.by_ref().take(2).collect();
                        let v = u8::from_str_radix(&h, 16)
                            .map_err(|_| format!("invalid escape '\\x{h}'"))?;
                        cur.push(v as char);
                    }
                    Some(o) => cur.push(o),
                    None => return Err("trailing backslash".to_string()),
                }
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                in_word = true;
                quote = Some(c);
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err("unbalanced quotes".to_string());
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Parses an `ExecStart=` value into commands (a lone `;` separates several commands).
pub fn parse_exec(value: &str) -> Result<Vec<Command>, String> {
    let words = split_words(value)?;
    let mut out = Vec::new();
    for group in words.split(|w| w == ";") {
        if group.is_empty() {
            continue;
        }
        let mut first = group[0].as_str();
        let mut ignore_failure = false;
        while let Some(c) = first.chars().next() {
            match c {
                '-' => ignore_failure = true,
                '@' | ':' | '+' | '!' | '|' => {}
                _ => break,
            }
            first = &first[1..];
        }
        if first.is_empty() {
            return Err("empty executable name".to_string());
        }
        let mut argv = vec![first.to_string()];
        argv.extend(group[1..].iter().cloned());
        out.push(Command {
            argv,
            ignore_failure,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quotes_and_prefixes() {
        let c = parse_exec("-/bin/sh -c 'echo a b' \"x y\"").unwrap();
        assert_eq!(c.len(), 1);
        assert!(c[0].ignore_failure);
        assert_eq!(c[0].argv, vec!["/bin/sh", "-c", "echo a b", "x y"]);
    }

    #[test]
    fn semicolon_separates() {
        let c = parse_exec("true ; false").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].argv, vec!["false"]);
    }

    #[test]
    fn unbalanced_is_error() {
        assert!(parse_exec("/bin/echo 'x").is_err());
        assert!(parse_exec("-").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_exec(&s);
        }
    }
}
