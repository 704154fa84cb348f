//! INI parsing with the semantics upstream gets from inih as it configures it: `name=value` or
//! `name: value`, `;`/`#` comment lines, ` ;` inline comments, continuation lines (leading
//! whitespace) appended without a separator, and a key repeated in one file concatenated.

use std::fmt;

/// Longest line inih accepts (its buffer is 520 bytes including the terminator).
const MAX_LINE: usize = 519;

/// Where a value came from, so errors can name the file, line and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub section: String,
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

/// A syntax error. The message is upstream's, byte for byte; `reason` says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Error parsing configuration file '{file}' on line {line}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// C `isspace` in the "C" locale, which is what inih strips and skips.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn c_trim_start(s: &str) -> &str {
    s.trim_start_matches(is_c_space)
}

fn c_trim_end(s: &str) -> &str {
    s.trim_end_matches(is_c_space)
}

/// Byte offset of the first char of `s` that is in `stops`, or of an inline comment (`;`
/// directly after whitespace *within `s`*), or `s.len()`. inih scans this way, so a `;` at the
/// very start of a value is part of the value.
fn find_stop_or_comment(s: &str, stops: &str) -> usize {
    let mut was_space = false;
    for (i, c) in s.char_indices() {
        if stops.contains(c) || (was_space && c == ';') {
            return i;
        }
        was_space = is_c_space(c);
    }
    s.len()
}

/// Cuts an inline comment off a value and strips trailing whitespace.
fn value_part(s: &str) -> &str {
    c_trim_end(&s[..find_stop_or_comment(s, "")])
}

/// Parses one file's text into entries in file order. Repeated keys in the same section are
/// concatenated into the first entry, as upstream's handler does.
pub fn parse(file: &str, text: &str) -> Result<Vec<Entry>, ParseError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut section = String::new();
    // Index into `entries` of the key that a continuation line extends; cleared only by a
    // section header (blank and comment lines keep it, as in inih).
    let mut prev: Option<usize> = None;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let err = |reason: &str| ParseError {
            file: file.to_string(),
            line: lineno,
            reason: reason.to_string(),
        };
        if raw.len() > MAX_LINE {
            return Err(err("line too long"));
        }
        let line = c_trim_start(c_trim_end(raw));
        let indented = line.len() < c_trim_end(raw).len();
        if line.is_empty() || line.starts_with([';', '#']) {
            continue;
        }
        if let (true, Some(i)) = (indented, prev) {
            let more = value_part(line);
            entries[i].value.push_str(more);
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let end = find_stop_or_comment(rest, "]");
            if !rest[end..].starts_with(']') {
                return Err(err("expected ']' to close the section name"));
            }
            // inih keeps the name exactly as written between the brackets.
            section = rest[..end].to_string();
            prev = None;
            continue;
        }
        let sep = find_stop_or_comment(line, "=:");
        if !line[sep..].starts_with(['=', ':']) {
            return Err(err("expected 'name=value' or '[section]'"));
        }
        let key = c_trim_end(&line[..sep]);
        // The comment scan starts right after the separator, before leading blanks are
        // skipped, so `Key= ;x` is empty while `Key=;x` is ";x".
        let value = c_trim_start(value_part(&line[sep + 1..]));
        if key.is_empty() {
            return Err(err("missing key name before '='"));
        }
        if let Some(i) = entries
            .iter()
            .position(|e| e.section == section && e.key == key)
        {
            entries[i].value.push_str(value);
            prev = Some(i);
        } else {
            entries.push(Entry {
                section: section.clone(),
                key: key.to_string(),
                value: value.to_string(),
                origin: Origin {
                    file: file.to_string(),
                    line: lineno,
                },
            });
            prev = Some(entries.len() - 1);
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kv(e: &[Entry]) -> Vec<(String, String, String)> {
        e.iter()
            .map(|e| (e.section.clone(), e.key.clone(), e.value.clone()))
            .collect()
    }

    #[test]
    fn sections_keys_and_comments() {
        let e = parse(
            "f",
            "# c\n[bluechi-controller]\nControllerPort = 842 ; port\nLogLevel: DEBUG\n\n[node a]\nAllowed=yes\n",
        )
        .unwrap();
        assert_eq!(
            kv(&e),
            vec![
                (
                    "bluechi-controller".into(),
                    "ControllerPort".into(),
                    "842".into()
                ),
                (
                    "bluechi-controller".into(),
                    "LogLevel".into(),
                    "DEBUG".into()
                ),
                ("node a".into(), "Allowed".into(), "yes".into()),
            ]
        );
        assert_eq!(e[2].origin.line, 7);
    }

    #[test]
    fn continuation_and_repeats_concatenate() {
        let e = parse("f", "[s]\nAllowedNodeNames=a,\n  b,\nAllowedNodeNames=c\n").unwrap();
        assert_eq!(e[0].value, "a,b,c");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse("/etc/x.conf", "[s]\nfoo\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err
            .to_string()
            .starts_with("Error parsing configuration file '/etc/x.conf' on line 2"));
        assert_eq!(parse("f", "[s\n").unwrap_err().line, 1);
        assert_eq!(parse("f", "=v\n").unwrap_err().line, 1);
    }

    #[test]
    fn inline_comments_follow_inih_exactly() {
        let e = parse("f", "[ s ]\nA= ;c\nB=;c\nC=x;y ;z\n").unwrap();
        assert_eq!(e[0].section, " s ");
        let values: Vec<&str> = e.iter().map(|e| e.value.as_str()).collect();
        assert_eq!(values, vec!["", ";c", "x;y"]);
        // A blank or comment line does not end a multi-line value.
        let e = parse("f", "[s]\nA=a,\n\n# c\n  b ; c\n").unwrap();
        assert_eq!(e[0].value, "a,b");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse("f", &s);
        }

        #[test]
        fn values_round_trip(key in "[A-Za-z][A-Za-z0-9]{0,20}", value in "[A-Za-z0-9,._/-]{0,40}") {
            let e = parse("f", &format!("[s]\n{key}={value}\n")).unwrap();
            prop_assert_eq!(&e[0].value, &value);
        }
    }
}
