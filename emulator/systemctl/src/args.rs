//! Command line parsing by hand: systemctl uses getopt, which permutes options and verbs freely
//! and has its own error wording, neither of which clap reproduces.

/// Everything the verbs need from the command line.
#[derive(Debug, Default, Clone)]
pub struct Opts {
    pub all: bool,
    pub types: Vec<String>,
    pub states: Vec<String>,
    pub properties: Vec<String>,
    pub value: bool,
    pub no_legend: bool,
    pub plain: bool,
    pub no_block: bool,
    pub quiet: bool,
    pub now: bool,
    pub lines: Option<u32>,
    pub help: bool,
    pub version: bool,
    /// The verb followed by its arguments.
    pub args: Vec<String>,
}

/// A usage error, printed as is (getopt's wording) with exit status 1.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

/// Options that take no value and are only accepted for compatibility.
const IGNORED_FLAGS: &[&str] = &[
    "no-pager",
    "no-ask-password",
    "system",
    "full",
    "no-reload",
    "force",
];

fn split_list(v: &str, into: &mut Vec<String>) {
    into.extend(
        v.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string()),
    );
}

impl Opts {
    fn set_long(&mut self, name: &str, value: Option<String>) -> Result<(), UsageError> {
        let need = |v: Option<String>| {
            v.ok_or_else(|| {
                UsageError(format!("systemctl: option '--{name}' requires an argument"))
            })
        };
        match name {
            "all" => self.all = true,
            "value" => self.value = true,
            "no-legend" => self.no_legend = true,
            "plain" => self.plain = true,
            "no-block" => self.no_block = true,
            "quiet" => self.quiet = true,
            "now" => self.now = true,
            "help" => self.help = true,
            "version" => self.version = true,
            "type" => split_list(&need(value)?, &mut self.types),
            "state" => split_list(&need(value)?, &mut self.states),
            "property" => split_list(&need(value)?, &mut self.properties),
            "lines" => {
                let v = need(value)?;
                self.lines = Some(
                    v.parse()
                        .map_err(|_| UsageError(format!("Failed to parse lines '{v}'")))?,
                );
            }
            n if IGNORED_FLAGS.contains(&n) => {}
            _ => {
                return Err(UsageError(format!(
                    "systemctl: unrecognized option '--{name}'"
                )))
            }
        }
        Ok(())
    }

    fn takes_value(long: &str) -> bool {
        matches!(long, "type" | "state" | "property" | "lines")
    }
}

fn short_to_long(c: char) -> Option<&'static str> {
    Some(match c {
        'a' => "all",
        't' => "type",
        'p' => "property",
        'q' => "quiet",
        'n' => "lines",
        'h' => "help",
        'l' => "full",
        'f' => "force",
        'P' => "property",
        _ => return None,
    })
}

/// Parses `argv` without the program name.
pub fn parse(argv: &[String]) -> Result<Opts, UsageError> {
    let mut o = Opts::default();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            o.args.extend(it.by_ref().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let value = if inline.is_none() && Opts::takes_value(name) {
                it.next().cloned()
            } else {
                inline
            };
            o.set_long(name, value)?;
            continue;
        }
        let Some(shorts) = a.strip_prefix('-').filter(|s| !s.is_empty()) else {
            o.args.push(a.clone());
            continue;
        };
        for (i, c) in shorts.char_indices() {
            let long = short_to_long(c)
                .ok_or_else(|| UsageError(format!("systemctl: invalid option -- '{c}'")))?;
            if !Opts::takes_value(long) {
                o.set_long(long, None)?;
                continue;
            }
            let rest = &shorts[i + c.len_utf8()..];
            let value = if rest.is_empty() {
                it.next().cloned().ok_or_else(|| {
                    UsageError(format!("systemctl: option requires an argument -- '{c}'"))
                })?
            } else {
                rest.to_string()
            };
            o.set_long(long, Some(value))?;
            // -P is -p plus --value.
            if c == 'P' {
                o.value = true;
            }
            break;
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Opts, UsageError> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn options_anywhere_and_all_spellings() {
        let o = p("show a.service -p ActiveState,SubState --property=Id -pResult --value").unwrap();
        assert_eq!(o.args, ["show", "a.service"]);
        assert_eq!(o.properties, ["ActiveState", "SubState", "Id", "Result"]);
        assert!(o.value);
        let o = p("-n0 status x").unwrap();
        assert_eq!(o.lines, Some(0));
        let o = p("-P Result show x").unwrap();
        assert!(o.value);
        assert_eq!(o.properties, ["Result"]);
        let o = p("list-units --type service --state=failed,active -aq").unwrap();
        assert_eq!(o.types, ["service"]);
        assert_eq!(o.states, ["failed", "active"]);
        assert!(o.all && o.quiet);
    }

    #[test]
    fn getopt_errors() {
        assert_eq!(
            p("--bogus").unwrap_err().0,
            "systemctl: unrecognized option '--bogus'"
        );
        assert_eq!(p("-z").unwrap_err().0, "systemctl: invalid option -- 'z'");
        assert_eq!(
            p("show -p").unwrap_err().0,
            "systemctl: option requires an argument -- 'p'"
        );
    }
}
