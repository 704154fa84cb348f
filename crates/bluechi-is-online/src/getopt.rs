//! The observable behaviour of glibc `getopt_long` for upstream's option table (short string
//! `h`; long `--help`, `--monitor`, `--wait=<v>`, `--switch-timeout=<v>`): argument
//! permutation, unique-prefix abbreviation, `--` and glibc's exact diagnostics.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Help,
    Monitor,
    Wait,
    SwitchTimeout,
}

/// (long name, takes a required argument, key), in upstream's table order.
const LONG: &[(&str, bool, Key)] = &[
    ("help", false, Key::Help),
    ("monitor", false, Key::Monitor),
    ("wait", true, Key::Wait),
    ("switch-timeout", true, Key::SwitchTimeout),
];

impl Key {
    pub fn long_name(self) -> &'static str {
        LONG.iter()
            .find(|(_, _, k)| *k == self)
            .map_or("", |(n, _, _)| n)
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub help: bool,
    /// Every option except help, in the order given, with its value.
    pub options: Vec<(Key, Option<String>)>,
    pub positional: Vec<String>,
}

impl Parsed {
    /// The first occurrence's value, as upstream's lookup returns it.
    pub fn value(&self, key: Key) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn has(&self, key: Key) -> bool {
        self.options.iter().any(|(k, _)| *k == key)
    }
}

/// Parses `argv` (including argv[0]); the error is glibc's message with its newline.
pub fn parse(argv: &[String], posixly_correct: bool) -> Result<Parsed, String> {
    let prog = argv.first().map_or("bluechi-is-online", String::as_str);
    let mut parsed = Parsed::default();
    let mut i = 1;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "--" {
            parsed.positional.extend(argv[i..].iter().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (key, value) = long(prog, body, argv, &mut i)?;
            push(&mut parsed, key, value);
        } else if arg.len() > 1 && arg.starts_with('-') {
            for c in arg[1..].chars() {
                if c != 'h' {
                    return Err(format!("{prog}: invalid option -- '{c}'\n"));
                }
                parsed.help = true;
            }
        } else {
            parsed.positional.push(arg.clone());
            if posixly_correct {
                parsed.positional.extend(argv[i..].iter().cloned());
                break;
            }
        }
    }
    Ok(parsed)
}

fn push(parsed: &mut Parsed, key: Key, value: Option<String>) {
    if key == Key::Help {
        parsed.help = true;
    } else {
        parsed.options.push((key, value));
    }
}

fn long(
    prog: &str,
    body: &str,
    argv: &[String],
    next: &mut usize,
) -> Result<(Key, Option<String>), String> {
    let (name, inline) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (body, None),
    };
    let (full, takes_arg, key) = match LONG.iter().find(|(n, _, _)| *n == name) {
        Some(exact) => *exact,
        None => {
            let found: Vec<_> = LONG
                .iter()
                .filter(|(n, _, _)| n.starts_with(name))
                .collect();
            match found.as_slice() {
                [one] => **one,
                [] => return Err(format!("{prog}: unrecognized option '--{body}'\n")),
                many => {
                    let list: String = many.iter().map(|(n, _, _)| format!(" '--{n}'")).collect();
                    return Err(format!(
                        "{prog}: option '--{body}' is ambiguous; possibilities:{list}\n"
                    ));
                }
            }
        }
    };
    if !takes_arg {
        if inline.is_some() {
            return Err(format!(
                "{prog}: option '--{full}' doesn't allow an argument\n"
            ));
        }
        return Ok((key, None));
    }
    if let Some(v) = inline {
        return Ok((key, Some(v)));
    }
    match argv.get(*next) {
        Some(v) => {
            *next += 1;
            Ok((key, Some(v.clone())))
        }
        None => Err(format!("{prog}: option '--{full}' requires an argument\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(list: &[&str]) -> Vec<String> {
        std::iter::once("bluechi-is-online")
            .chain(list.iter().copied())
            .map(String::from)
            .collect()
    }

    #[test]
    fn permutation_values_and_prefixes() {
        let p = parse(&argv(&["--wait", "500", "agent", "--mon", "--s=7"]), false).unwrap();
        assert_eq!(p.positional, vec!["agent"]);
        assert_eq!(p.value(Key::Wait), Some("500"));
        assert_eq!(p.value(Key::SwitchTimeout), Some("7"));
        assert!(p.has(Key::Monitor) && !p.help);
        let p = parse(&argv(&["node", "--", "--wait"]), false).unwrap();
        assert_eq!(p.positional, vec!["node", "--wait"]);
        let p = parse(&argv(&["agent", "--wait=1"]), true).unwrap();
        assert_eq!(p.positional, vec!["agent", "--wait=1"]);
    }

    #[test]
    fn glibc_diagnostics() {
        let err = |a: &[&str]| parse(&argv(a), false).unwrap_err();
        assert_eq!(err(&["-w"]), "bluechi-is-online: invalid option -- 'w'\n");
        assert_eq!(
            err(&["--verbose"]),
            "bluechi-is-online: unrecognized option '--verbose'\n"
        );
        assert_eq!(
            err(&["agent", "--wait"]),
            "bluechi-is-online: option '--wait' requires an argument\n"
        );
        assert_eq!(
            err(&["--monitor=yes"]),
            "bluechi-is-online: option '--monitor' doesn't allow an argument\n"
        );
        assert!(parse(&argv(&["-hh"]), false).unwrap().help);
    }
}
