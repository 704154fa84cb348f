//! Command-line parsing with the observable behaviour of glibc `getopt_long` for the option
//! set upstream uses (short string `hfw`), including argument permutation, unique-prefix
//! abbreviation of long options and glibc's exact diagnostics.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptKey {
    Help,
    Filter,
    Force,
    Runtime,
    NoReload,
    Watch,
    KillWhom,
    Signal,
}

impl OptKey {
    /// The long name upstream reports in `Unsupported option` errors.
    pub fn long_name(self) -> &'static str {
        LONG_OPTS
            .iter()
            .find(|(_, _, k)| *k == self)
            .map(|(n, _, _)| *n)
            .unwrap_or("")
    }
}

/// (long name, takes a required argument, key), in upstream's table order.
const LONG_OPTS: &[(&str, bool, OptKey)] = &[
    ("help", false, OptKey::Help),
    ("filter", true, OptKey::Filter),
    ("force", false, OptKey::Force),
    ("runtime", false, OptKey::Runtime),
    ("no-reload", false, OptKey::NoReload),
    ("watch", false, OptKey::Watch),
    ("kill-whom", true, OptKey::KillWhom),
    ("signal", true, OptKey::Signal),
];

fn short_opt(c: char) -> Option<OptKey> {
    match c {
        'h' => Some(OptKey::Help),
        'f' => Some(OptKey::Force),
        'w' => Some(OptKey::Watch),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opt {
    pub key: OptKey,
    pub value: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub help: bool,
    /// Every option except `--help`, in the order given.
    pub options: Vec<Opt>,
    pub command: Option<String>,
    pub args: Vec<String>,
}

impl Parsed {
    /// The value of the first occurrence of an option (upstream's lookup order).
    pub fn value(&self, key: OptKey) -> Option<&str> {
        self.options
            .iter()
            .find(|o| o.key == key)
            .and_then(|o| o.value.as_deref())
    }

    pub fn has(&self, key: OptKey) -> bool {
        self.options.iter().any(|o| o.key == key)
    }
}

/// A getopt diagnostic, already formatted as glibc prints it (with trailing newline).
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

/// Parses `argv` (including argv[0]).
pub fn parse(argv: &[String]) -> Result<Parsed, ParseError> {
    let prog = argv.first().map(String::as_str).unwrap_or("bluechictl");
    let posix = std::env::var_os("POSIXLY_CORRECT").is_some();
    let mut parsed = Parsed::default();
    let mut positional: Vec<String> = Vec::new();
    let mut i = 1;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "--" {
            positional.extend(argv[i..].iter().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (key, value) = parse_long(prog, body, argv, &mut i)?;
            push(&mut parsed, key, value);
        } else if arg.len() > 1 && arg.starts_with('-') {
            for c in arg[1..].chars() {
                match short_opt(c) {
                    Some(key) => push(&mut parsed, key, None),
                    None => return Err(ParseError(format!("{prog}: invalid option -- '{c}'\n"))),
                }
            }
        } else {
            positional.push(arg.clone());
            if posix {
                positional.extend(argv[i..].iter().cloned());
                break;
            }
        }
    }
    let mut rest = positional.into_iter();
    parsed.command = rest.next();
    parsed.args = rest.collect();
    Ok(parsed)
}

fn push(parsed: &mut Parsed, key: OptKey, value: Option<String>) {
    if key == OptKey::Help {
        parsed.help = true;
    } else {
        parsed.options.push(Opt { key, value });
    }
}

fn parse_long(
    prog: &str,
    body: &str,
    argv: &[String],
    next: &mut usize,
) -> Result<(OptKey, Option<String>), ParseError> {
    let (name, inline) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (body, None),
    };
    let found = match LONG_OPTS.iter().find(|(n, _, _)| *n == name) {
        Some(exact) => exact,
        None => {
            let candidates: Vec<_> = LONG_OPTS
                .iter()
                .filter(|(n, _, _)| n.starts_with(name))
                .collect();
            match candidates.as_slice() {
                [one] => *one,
                [] => {
                    return Err(ParseError(format!(
                        "{prog}: unrecognized option '--{body}'\n"
                    )))
                }
                many => {
                    let list: String = many.iter().map(|(n, _, _)| format!(" '--{n}'")).collect();
                    return Err(ParseError(format!(
                        "{prog}: option '--{body}' is ambiguous; possibilities:{list}\n"
                    )));
                }
            }
        }
    };
    let (full, takes_arg, key) = *found;
    if takes_arg {
        if let Some(v) = inline {
            return Ok((key, Some(v)));
        }
        if let Some(v) = argv.get(*next) {
            *next += 1;
            return Ok((key, Some(v.clone())));
        }
        return Err(ParseError(format!(
            "{prog}: option '--{full}' requires an argument\n"
        )));
    }
    if inline.is_some() {
        return Err(ParseError(format!(
            "{prog}: option '--{full}' doesn't allow an argument\n"
        )));
    }
    Ok((key, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(list: &[&str]) -> Vec<String> {
        std::iter::once("bluechictl")
            .chain(list.iter().copied())
            .map(String::from)
            .collect()
    }

    #[test]
    fn options_may_follow_the_command() {
        let p = parse(&argv(&["status", "node", "-w", "unit"])).unwrap();
        assert_eq!(p.command.as_deref(), Some("status"));
        assert_eq!(p.args, vec!["node", "unit"]);
        assert!(p.has(OptKey::Watch));
    }

    #[test]
    fn long_options_with_values_and_abbreviations() {
        let p = parse(&argv(&[
            "list-units",
            "--filter=*.service",
            "--kill",
            "main",
        ]))
        .unwrap();
        assert_eq!(p.value(OptKey::Filter), Some("*.service"));
        assert_eq!(p.value(OptKey::KillWhom), Some("main"));
        let p = parse(&argv(&["--filter", "x", "list-units"])).unwrap();
        assert_eq!(p.value(OptKey::Filter), Some("x"));
        assert_eq!(p.args, Vec::<String>::new());
    }

    #[test]
    fn help_and_combined_short_flags() {
        let p = parse(&argv(&["-hfw"])).unwrap();
        assert!(p.help);
        assert!(p.has(OptKey::Force) && p.has(OptKey::Watch));
        assert_eq!(p.command, None);
    }

    #[test]
    fn double_dash_ends_options() {
        let p = parse(&argv(&["start", "--", "-n", "--x"])).unwrap();
        assert_eq!(p.args, vec!["-n", "--x"]);
    }

    #[test]
    fn glibc_diagnostics() {
        assert_eq!(
            parse(&argv(&["-x"])).unwrap_err().0,
            "bluechictl: invalid option -- 'x'\n"
        );
        assert_eq!(
            parse(&argv(&["--bogus=1"])).unwrap_err().0,
            "bluechictl: unrecognized option '--bogus=1'\n"
        );
        assert_eq!(
            parse(&argv(&["list-units", "--filter"])).unwrap_err().0,
            "bluechictl: option '--filter' requires an argument\n"
        );
        assert_eq!(
            parse(&argv(&["--force=1"])).unwrap_err().0,
            "bluechictl: option '--force' doesn't allow an argument\n"
        );
        assert_eq!(
            parse(&argv(&["--f"])).unwrap_err().0,
            "bluechictl: option '--f' is ambiguous; possibilities: '--filter' '--force'\n"
        );
    }

    #[test]
    fn long_names_for_error_messages() {
        assert_eq!(OptKey::Force.long_name(), "force");
        assert_eq!(OptKey::Watch.long_name(), "watch");
        assert_eq!(OptKey::NoReload.long_name(), "no-reload");
    }
}
