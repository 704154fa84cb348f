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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Error parsing configuration file '{file}' on line {line}: {reason}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// Parses one file's text into entries in file order. Repeated keys in the same section are
/// concatenated into the first entry, as upstream's handler does.
pub fn parse(file: &str, text: &str) -> Result<Vec<Entry>, ParseError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut section = String::new();
    // Index into `entries` of the key that a continuation line would extend.
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
        let starts_with_ws = raw.starts_with([' ', '\t']);
        let line = strip_inline_comment(raw.trim());
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if starts_with_ws {
            if let Some(i) = prev {
                entries[i].value.push_str(line);
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(err("expected ']' to close the section name"));
            };
            section = rest[..end].trim().to_string();
            prev = None;
            continue;
        }
        let Some(sep) = line.find(['=', ':']) else {
            return Err(err("expected 'name=value' or '[section]'"));
        };
        let key = line[..sep].trim();
        let value = line[sep + 1..].trim();
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

/// inih treats `;` preceded by whitespace as the start of an inline comment.
fn strip_inline_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for i in 1..bytes.len() {
        if bytes[i] == b';' && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            return line[..i].trim_end();
        }
    }
    line
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
