//! The INI-like syntax of unit files: sections, `Key=Value`, comments, continuations.

use std::fmt;

/// One `Key=Value` line (after joining continuation lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub section: String,
    pub key: String,
    pub value: String,
    /// 1-based line number where the assignment starts.
    pub line: usize,
    /// Line of the `[Section]` header, where systemd reports an unknown section.
    pub section_line: usize,
}

/// A problem systemd would log and then ignore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// A problem that makes the whole file unloadable (LoadState `error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn is_comment(line: &str) -> bool {
    line.starts_with('#') || line.starts_with(';')
}

/// Splits `text` into assignments. Like systemd, a trailing backslash continues the line
/// (comment lines inside a continuation are skipped), and lines outside any section or without
/// `=` are ignored with a warning.
pub fn parse(text: &str) -> Result<(Vec<Assignment>, Vec<Warning>), ParseError> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut section: Option<(String, usize)> = None;
    let mut pending: Option<(usize, String)> = None;

    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let trimmed = raw.trim();
        let (start, joined) = match pending.take() {
            Some((start, mut acc)) => {
                if is_comment(trimmed) {
                    pending = Some((start, acc));
                    continue;
                }
                acc.push(' ');
                acc.push_str(trimmed);
                (start, acc)
            }
            None => {
                if trimmed.is_empty() || is_comment(trimmed) {
                    continue;
                }
                (lineno, trimmed.to_string())
            }
        };
        if let Some(stripped) = joined.strip_suffix('\\') {
            pending = Some((start, stripped.trim_end().to_string()));
            continue;
        }
        handle_line(&joined, start, &mut section, &mut out, &mut warnings)?;
    }
    if let Some((start, acc)) = pending {
        handle_line(&acc, start, &mut section, &mut out, &mut warnings)?;
    }
    Ok((out, warnings))
}

fn handle_line(
    line: &str,
    lineno: usize,
    section: &mut Option<(String, usize)>,
    out: &mut Vec<Assignment>,
    warnings: &mut Vec<Warning>,
) -> Result<(), ParseError> {
    if let Some(rest) = line.strip_prefix('[') {
        let name = rest.strip_suffix(']').ok_or_else(|| ParseError {
            line: lineno,
            message: format!("Invalid section header '{line}'"),
        })?;
        if name.is_empty() || name.contains(['[', ']']) {
            return Err(ParseError {
                line: lineno,
                message: format!("Invalid section header '{line}'"),
            });
        }
        *section = Some((name.to_string(), lineno));
        return Ok(());
    }
    let Some((sec, section_line)) = section.as_ref() else {
        warnings.push(Warning {
            line: lineno,
            message: "Assignment outside of section. Ignoring.".to_string(),
        });
        return Ok(());
    };
    let Some((key, value)) = line.split_once('=') else {
        warnings.push(Warning {
            line: lineno,
            message: "Missing '=', ignoring line.".to_string(),
        });
        return Ok(());
    };
    let key = key.trim();
    if key.is_empty() {
        warnings.push(Warning {
            line: lineno,
            message: "Empty key, ignoring line.".to_string(),
        });
        return Ok(());
    }
    out.push(Assignment {
        section: sec.clone(),
        key: key.to_string(),
        value: value.trim().to_string(),
        line: lineno,
        section_line: *section_line,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sections_keys_comments() {
        let (a, w) =
            parse("# c\n[Unit]\nDescription = hi there \n; x\n[Service]\nType=oneshot\n").unwrap();
        assert!(w.is_empty());
        assert_eq!(a.len(), 2);
        assert_eq!(
            (
                a[0].section.as_str(),
                a[0].key.as_str(),
                a[0].value.as_str()
            ),
            ("Unit", "Description", "hi there")
        );
        assert_eq!(a[1].line, 6);
    }

    #[test]
    fn continuation_lines_join() {
        let (a, _) =
            parse("[Service]\nExecStart=/bin/echo a \\\n# comment\n  b \\\n c\nType=simple\n")
                .unwrap();
        assert_eq!(a[0].value, "/bin/echo a b c");
        assert_eq!(a[0].line, 2);
        assert_eq!(a[1].key, "Type");
    }

    #[test]
    fn bad_header_is_error_missing_eq_is_warning() {
        let e = parse("[Unit\nA=b\n").unwrap_err();
        assert_eq!(e.line, 1);
        let (a, w) = parse("[Unit]\nnonsense\nA=b\n").unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(w[0].line, 2);
        let (a, w) = parse("A=b\n").unwrap();
        assert!(a.is_empty());
        assert_eq!(w.len(), 1);
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_unitish(s in "(\\[[A-Za-z]{0,5}\\]?|[A-Za-z]{0,4}=?[ a-z\\\\;#\"']{0,8}|\n){0,30}") {
            let _ = parse(&s);
        }
    }
}
