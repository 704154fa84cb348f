//! `bluechi-proxy [-u|--user] [-h|--help] [-v|--version] create|remove NODE_UNIT`.

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Help,
    Version,
    Run {
        user: bool,
        method: &'static str,
        node_unit: String,
    },
}

/// Argument errors, formatted as upstream prints them (stderr), and whether usage follows.
#[derive(Debug, PartialEq, Eq)]
pub struct ArgError {
    pub message: String,
    pub with_usage: bool,
}

pub fn usage(prog: &str) -> String {
    format!(
        "Usage: {prog} \n\
         \t[-h help]\t\t Print this help message.\n\
         \t<operation>\t\t Required. Operation to perform. Must be one of [create,remove].\n\
         \t<node>_<service>\t Required. Input the name of the node the required service is supposed to run on.\n\
         \t<[-v version]\t Print current version of bluechi-proxy\n"
    )
}

fn bad_option(diag: String) -> ArgError {
    // getopt's diagnostic, then upstream's own line for the '?' it got back.
    ArgError {
        message: format!("{diag}Unsupported option ?\n"),
        with_usage: true,
    }
}

pub fn parse(argv: &[String]) -> Result<Action, ArgError> {
    let prog = argv.first().map(String::as_str).unwrap_or("bluechi-proxy");
    let mut user = false;
    let mut positional = Vec::new();
    let mut iter = argv.iter().skip(1);
    while let Some(arg) = iter.next() {
        if arg == "--" {
            positional.extend(iter.by_ref().cloned());
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or("");
            let hits: Vec<&str> = ["user", "help", "version"]
                .into_iter()
                .filter(|o| o.starts_with(name) && !name.is_empty())
                .collect();
            match hits.as_slice() {
                ["help"] => return Ok(Action::Help),
                ["version"] => return Ok(Action::Version),
                ["user"] => user = true,
                _ => {
                    return Err(bad_option(format!(
                        "{prog}: unrecognized option '--{long}'\n"
                    )))
                }
            }
        } else if arg.len() > 1 && arg.starts_with('-') {
            for c in arg[1..].chars() {
                match c {
                    'h' => return Ok(Action::Help),
                    'v' => return Ok(Action::Version),
                    'u' => user = true,
                    _ => return Err(bad_option(format!("{prog}: invalid option -- '{c}'\n"))),
                }
            }
        } else {
            positional.push(arg.clone());
        }
    }
    let (Some(op), Some(node_unit)) = (positional.first(), positional.get(1)) else {
        return Err(ArgError {
            message: "Not enough arguments specified\n".into(),
            with_usage: false,
        });
    };
    let method = if op.eq_ignore_ascii_case("create") {
        "CreateProxy"
    } else if op.eq_ignore_ascii_case("remove") {
        "RemoveProxy"
    } else {
        return Err(ArgError {
            message: format!("Unsupported command {op}\n"),
            with_usage: false,
        });
    };
    Ok(Action::Run {
        user,
        method,
        node_unit: node_unit.clone(),
    })
}

/// Splits `NODE_UNIT` at the first `_`. Upstream prints a complaint for a malformed name but
/// carries on with empty strings, so this returns the message alongside.
pub fn split_node_unit(arg: &str) -> (String, String, Option<String>) {
    match arg.split_once('_') {
        Some(("", _)) => (
            String::new(),
            String::new(),
            Some(format!("No underscore in unit name '{arg}'\n")),
        ),
        None => (
            String::new(),
            String::new(),
            Some(format!("No underscore in unit name '{arg}'\n")),
        ),
        Some((_, "")) => (
            String::new(),
            String::new(),
            Some(format!("No service specified in unit name '{arg}'\n")),
        ),
        Some((node, unit)) => (node.to_string(), unit.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(list: &[&str]) -> Vec<String> {
        std::iter::once("bluechi-proxy")
            .chain(list.iter().copied())
            .map(String::from)
            .collect()
    }

    #[test]
    fn create_and_remove_case_insensitive() {
        assert_eq!(
            parse(&argv(&["CREATE", "worker2_target.service"])),
            Ok(Action::Run {
                user: false,
                method: "CreateProxy",
                node_unit: "worker2_target.service".into()
            })
        );
        assert_eq!(
            parse(&argv(&["remove", "-u", "a_b.service"])),
            Ok(Action::Run {
                user: true,
                method: "RemoveProxy",
                node_unit: "a_b.service".into()
            })
        );
    }

    #[test]
    fn argument_errors() {
        assert_eq!(
            parse(&argv(&["create"])).unwrap_err().message,
            "Not enough arguments specified\n"
        );
        assert_eq!(
            parse(&argv(&["frob", "a_b"])).unwrap_err().message,
            "Unsupported command frob\n"
        );
        let e = parse(&argv(&["-x", "create", "a_b"])).unwrap_err();
        assert_eq!(
            e.message,
            "bluechi-proxy: invalid option -- 'x'\nUnsupported option ?\n"
        );
        assert!(e.with_usage);
        assert_eq!(parse(&argv(&["--help"])), Ok(Action::Help));
        assert_eq!(parse(&argv(&["-v", "create", "a_b"])), Ok(Action::Version));
    }

    #[test]
    fn splits_at_first_underscore() {
        assert_eq!(
            split_node_unit("worker2_my_target.service"),
            ("worker2".into(), "my_target.service".into(), None)
        );
        assert_eq!(
            split_node_unit("_x.service").2.as_deref(),
            Some("No underscore in unit name '_x.service'\n")
        );
        assert_eq!(
            split_node_unit("x.service").2.as_deref(),
            Some("No underscore in unit name 'x.service'\n")
        );
        assert_eq!(
            split_node_unit("node_").2.as_deref(),
            Some("No service specified in unit name 'node_'\n")
        );
    }
}
