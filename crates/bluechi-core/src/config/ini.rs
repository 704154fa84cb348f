//! INI parsing with the semantics upstream gets from inih as it configures it: `name=value` or
//! `name: value`, `;`/`#` comment lines, ` ;` inline comments, continuation lines (leading
//! whitespace) appended without a separator, and a key repeated in one file concatenated.
//!
//! Files are read as bytes, like inih does: bytes that are not UTF-8 are fine in comments,
//! blank lines and everything the daemons ignore. Section names and values that are not UTF-8
//! are kept (escaped as `\xNN`) with the line they came from, so reading one is an error that
//! names file, line and key (D-Bus strings cannot carry them).

use std::fmt;

/// Longest line inih accepts (its buffer is 520 bytes including the terminator).
const MAX_LINE: usize = 519;

/// Where a value came from, so errors can name the file, line and key. Line 0 means the value
/// came from the command line or the environment (`file` then names the option or variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Section, key and value as text; bytes that are not UTF-8 appear as `\xNN`.
    pub section: String,
    pub key: String,
    pub value: String,
    pub origin: Origin,
    /// The header line of a section whose name is not UTF-8.
    pub bad_section_line: Option<usize>,
    /// The first line that added bytes that are not UTF-8 to the value.
    pub bad_value_line: Option<usize>,
}

/// A syntax error. The first line is upstream's message byte for byte; the second says what
/// was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Error parsing configuration file '{file}' on line {line}\n{file}:{line}: {reason}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// C `isspace` in the "C" locale, which is what inih strips and skips.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn c_trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| is_c_space(c)).count();
    &s[n..]
}

fn c_trim_end(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|&&c| is_c_space(c)).count();
    &s[..s.len() - n]
}

/// Byte offset of the first byte of `s` that is in `stops`, or of an inline comment (`;`
/// directly after whitespace *within `s`*), or `s.len()`. inih scans this way, so a `;` at the
/// very start of a value is part of the value.
fn find_stop_or_comment(s: &[u8], stops: &[u8]) -> usize {
    let mut was_space = false;
    for (i, &c) in s.iter().enumerate() {
        if stops.contains(&c) || (was_space && c == b';') {
            return i;
        }
        was_space = is_c_space(c);
    }
    s.len()
}

/// Cuts an inline comment off a value and strips trailing whitespace.
fn value_part(s: &[u8]) -> &[u8] {
    c_trim_end(&s[..find_stop_or_comment(s, b"")])
}

/// The bytes as text, and whether they were UTF-8; other bytes are shown as `\xNN`.
pub fn text_of(bytes: &[u8]) -> (String, bool) {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return (s.to_string(), true);
    }
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    (out, false)
}

/// One file's lines without the UTF-8 byte-order mark; `\n` ends a line (a trailing `\r` is
/// whitespace, which the parser strips anyway).
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
    let mut parts: Vec<&[u8]> = text.split(|&c| c == b'\n').collect();
    // A final newline does not start another line.
    if parts.last().is_some_and(|l| l.is_empty()) {
        parts.pop();
    }
    parts.into_iter()
}

/// Parses one file's bytes into entries in file order. Repeated keys in the same section are
/// concatenated into the first entry, as upstream's handler does.
pub fn parse(file: &str, text: impl AsRef<[u8]>) -> Result<Vec<Entry>, ParseError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut section = String::new();
    let mut bad_section_line = None;
    // Index into `entries` of the key that a continuation line extends; cleared only by a
    // section header (blank and comment lines keep it, as in inih).
    let mut prev: Option<usize> = None;
    for (idx, raw) in lines(text.as_ref()).enumerate() {
        let lineno = idx + 1;
        let err = |reason: String| ParseError {
            file: file.to_string(),
            line: lineno,
            reason,
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE {
            return Err(err(format!(
                "line is {} bytes long, the limit is {MAX_LINE}",
                raw.len()
            )));
        }
        let line = c_trim_start(c_trim_end(raw));
        let indented = line.len() < c_trim_end(raw).len();
        if line.is_empty() || line.starts_with(b";") || line.starts_with(b"#") {
            continue;
        }
        if let (true, Some(i)) = (indented, prev) {
            let (more, ok) = text_of(value_part(line));
            let e = &mut entries[i];
            e.value.push_str(&more);
            if !ok && e.bad_value_line.is_none() {
                e.bad_value_line = Some(lineno);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix(b"[") {
            let end = find_stop_or_comment(rest, b"]");
            if !rest[end..].starts_with(b"]") {
                return Err(err("section header not closed with ']'".to_string()));
            }
            // inih keeps the name exactly as written between the brackets.
            let (name, ok) = text_of(&rest[..end]);
            section = name;
            bad_section_line = (!ok).then_some(lineno);
            prev = None;
            continue;
        }
        let sep = find_stop_or_comment(line, b"=:");
        let (key, _) = text_of(c_trim_end(&line[..sep]));
        if !line[sep..].starts_with(b"=") && !line[sep..].starts_with(b":") {
            return Err(err(format!(
                "expected '=' (or ':') after key '{key}', or a '[section]' header"
            )));
        }
        // The comment scan starts right after the separator, before leading blanks are
        // skipped, so `Key= ;x` is empty while `Key=;x` is ";x".
        let (value, ok) = text_of(c_trim_start(value_part(&line[sep + 1..])));
        if key.is_empty() {
            let sep = char::from(line[sep]);
            return Err(err(format!("missing key name before '{sep}'")));
        }
        let bad_value_line = (!ok).then_some(lineno);
        if let Some(i) = entries
            .iter()
            .position(|e| e.section == section && e.key == key)
        {
            let e = &mut entries[i];
            e.value.push_str(&value);
            e.bad_value_line = e.bad_value_line.or(bad_value_line);
            prev = Some(i);
        } else {
            entries.push(Entry {
                section: section.clone(),
                key,
                value,
                origin: Origin {
                    file: file.to_string(),
                    line: lineno,
                },
                bad_section_line,
                bad_value_line,
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
    fn syntax_errors_say_what_is_wrong() {
        let reason = |text: &str| parse("/etc/x.conf", text).unwrap_err().reason;
        assert_eq!(
            reason("[s]\nFoo\n"),
            "expected '=' (or ':') after key 'Foo', or a '[section]' header"
        );
        assert_eq!(reason("[s ; c]\n"), "section header not closed with ']'");
        assert_eq!(reason("[s]\n = v\n"), "missing key name before '='");
        assert_eq!(reason("[s]\n: v\n"), "missing key name before ':'");
        assert_eq!(
            reason(&format!("[s]\nK={}\n", "v".repeat(600))),
            "line is 602 bytes long, the limit is 519"
        );
        // Upstream's text stays the first line; the reason follows with file:line.
        assert_eq!(
            parse("/etc/x.conf", "[s]\nFoo\n").unwrap_err().to_string(),
            "Error parsing configuration file '/etc/x.conf' on line 2\n\
             /etc/x.conf:2: expected '=' (or ':') after key 'Foo', or a '[section]' header"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_with_their_line() {
        let text: &[u8] = b"# caf\xe9\n; \xff\xfe\n[s]\nA=ok ; r\xe9sum\xe9\nB=x\xffy\n\
            C=a,\n  b\xff\n[t\xff]\nD=1\n[s]\nK\xe9y=v\n";
        let e = parse("f", text).unwrap();
        // Section, key, value, bad section line, bad value line.
        type Row<'a> = (&'a str, &'a str, &'a str, Option<usize>, Option<usize>);
        let got: Vec<Row> = e
            .iter()
            .map(|e| {
                (
                    e.section.as_str(),
                    e.key.as_str(),
                    e.value.as_str(),
                    e.bad_section_line,
                    e.bad_value_line,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("s", "A", "ok", None, None),
                ("s", "B", "x\\xffy", None, Some(5)),
                ("s", "C", "a,b\\xff", None, Some(7)),
                ("t\\xff", "D", "1", Some(8), None),
                ("s", "K\\xe9y", "v", None, None),
            ]
        );
    }

    #[test]
    fn a_bom_and_crlf_line_ends_are_accepted() {
        let e = parse("f", b"\xef\xbb\xbf[s]\r\nA = 1\r\n").unwrap();
        assert_eq!(kv(&e), vec![("s".into(), "A".into(), "1".into())]);
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
        fn never_panics_on_bytes(b in prop::collection::vec(any::<u8>(), 0..2000)) {
            let _ = parse("f", &b);
        }

        #[test]
        fn values_round_trip(key in "[A-Za-z][A-Za-z0-9]{0,20}", value in "[A-Za-z0-9,._/-]{0,40}") {
            let e = parse("f", format!("[s]\n{key}={value}\n")).unwrap();
            prop_assert_eq!(&e[0].value, &value);
        }
    }
}
