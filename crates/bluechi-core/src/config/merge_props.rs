//! Property test of the merge semantics over generated config files: within one file a repeated
//! key and continuation lines concatenate; across files the later file wins per key.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::Store;

/// One generated line, in abstract form.
#[derive(Debug, Clone)]
enum Line {
    Section(usize),
    Key {
        key: usize,
        value: String,
        sep: &'static str,
        pad: &'static str,
        comment: &'static str,
    },
    Continuation {
        indent: &'static str,
        value: String,
        comment: &'static str,
    },
    Comment(&'static str),
    Blank,
}

const SECTIONS: &[&str] = &["bluechi-controller", "node a", "x"];
const KEYS: &[&str] = &["A", "B", "ControllerPort", "Key.With-Dots"];

fn value() -> impl Strategy<Value = String> {
    // No whitespace, `;` or `#` (those would change the line's meaning); `=` and `:` may
    // appear inside a value.
    "[a-z0-9,._/=:-]{0,8}"
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        (0..SECTIONS.len()).prop_map(Line::Section),
        (
            0..KEYS.len(),
            value(),
            prop_oneof![Just("="), Just(":")],
            prop_oneof![Just(""), Just(" "), Just("\t")],
            prop_oneof![Just(""), Just(" ; note"), Just("\t;x=1")],
        )
            .prop_map(|(key, value, sep, pad, comment)| Line::Key {
                key,
                value,
                sep,
                pad,
                comment
            }),
        (
            prop_oneof![Just(" "), Just("\t"), Just("    ")],
            "[a-z0-9,._/=:-]{1,8}",
            prop_oneof![Just(""), Just(" ; more")],
        )
            .prop_map(|(indent, value, comment)| Line::Continuation {
                indent,
                value,
                comment
            }),
        prop_oneof![Just("# hash"), Just("; semi"), Just("  # indented")].prop_map(Line::Comment),
        Just(Line::Blank),
    ]
}

type Model = BTreeMap<(String, String), String>;

/// Renders a file and computes what it should mean on its own.
fn render(lines: &[Line]) -> (String, Model) {
    let mut text = String::new();
    let mut model = Model::new();
    let mut section = String::new();
    let mut prev: Option<(String, String)> = None;
    for l in lines {
        match l {
            Line::Section(i) => {
                section = SECTIONS[*i].to_string();
                prev = None;
                text += &format!("[{section}]\n");
            }
            Line::Key {
                key,
                value,
                sep,
                pad,
                comment,
            } => {
                let k = (section.clone(), KEYS[*key].to_string());
                model.entry(k.clone()).or_default().push_str(value);
                prev = Some(k);
                text += &format!("{}{pad}{sep}{pad}{value}{comment}\n", KEYS[*key]);
            }
            Line::Continuation {
                indent,
                value,
                comment,
            } => {
                // Without a key to continue, an indented line would be a syntax error.
                if let Some(k) = &prev {
                    model.entry(k.clone()).or_default().push_str(value);
                    text += &format!("{indent}{value}{comment}\n");
                }
            }
            Line::Comment(c) => text += &format!("{c}\n"),
            Line::Blank => text += "\n",
        }
    }
    (text, model)
}

proptest! {
    #[test]
    fn later_files_win_per_key_and_repeats_concatenate(
        files in prop::collection::vec(prop::collection::vec(line(), 0..14), 1..4)
    ) {
        let mut store = Store::default();
        let mut expected = Model::new();
        for (n, lines) in files.iter().enumerate() {
            let (text, model) = render(lines);
            store.merge_text(&format!("f{n}"), &text).map_err(|e| {
                TestCaseError::fail(format!("{e} ({}): {text:?}", e_reason(&e)))
            })?;
            expected.extend(model);
        }
        for sec in SECTIONS.iter().copied().chain([""]) {
            for key in KEYS {
                let want = expected
                    .get(&(sec.to_string(), key.to_string()))
                    .filter(|v| !v.is_empty())
                    .cloned();
                prop_assert_eq!(store.string(sec, key).unwrap(), want, "[{}] {}", sec, key);
            }
        }
    }

    #[test]
    fn never_panics_on_arbitrary_text(s in "\\PC*") {
        let mut store = Store::default();
        let _ = store.merge_text("f", &s);
    }
}

fn e_reason(e: &super::ConfigError) -> String {
    match e {
        super::ConfigError::Parse(p) => p.reason.clone(),
        other => other.to_string(),
    }
}
