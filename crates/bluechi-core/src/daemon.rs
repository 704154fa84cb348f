//! What both daemons do the same way: option parsing in getopt style, a single-threaded
//! runtime, and turning SIGTERM/SIGINT into a shutdown event.

use std::future::Future;
use std::process::ExitCode;

use tokio::sync::mpsc::UnboundedSender;

/// One option a daemon accepts: short letter, long name, whether it takes a value.
pub struct OptSpec {
    pub short: char,
    pub long: &'static str,
    pub takes_value: bool,
}

/// Parses `-x VALUE`, `-xVALUE`, `--long VALUE` and `--long=VALUE` into (letter, value).
/// Unknown options and missing values print a getopt-style message and the usage, and give
/// exit code 1.
pub fn parse_options(
    prog: &str,
    usage: &str,
    specs: &[OptSpec],
    args: impl IntoIterator<Item = String>,
) -> Result<Vec<(char, Option<String>)>, ExitCode> {
    let fail = |msg: String| {
        eprintln!("{prog}: {msg}");
        print!("{usage}");
        ExitCode::from(1)
    };
    let mut out = Vec::new();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let (spec, inline) = if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            match specs.iter().find(|s| s.long == name) {
                Some(s) => (s, inline),
                None => return Err(fail(format!("unrecognized option '{a}'"))),
            }
        } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            let c = short.chars().next().unwrap_or('-');
            let rest = &short[c.len_utf8()..];
            match specs.iter().find(|s| s.short == c) {
                Some(s) => (s, (!rest.is_empty()).then(|| rest.to_string())),
                None => return Err(fail(format!("invalid option -- '{c}'"))),
            }
        } else {
            return Err(fail(format!("unexpected argument '{a}'")));
        };
        let value = if spec.takes_value {
            match inline.or_else(|| args.next()) {
                Some(v) => Some(v),
                None => {
                    return Err(fail(format!(
                        "option requires an argument -- '{}'",
                        spec.short
                    )))
                }
            }
        } else {
            None
        };
        out.push((spec.short, value));
    }
    Ok(out)
}

/// Runs a daemon's main future on a current-thread runtime: the daemons are event loops, and
/// one thread keeps them small. Errors are logged and give exit code 1.
pub fn run<F>(main: F) -> ExitCode
where
    F: Future<Output = Result<(), String>>,
{
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Failed to start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// The command-line arguments after the program name. An argument that is not UTF-8 (which
/// `std::env::args` would panic on) is reported on stderr and gives exit code 1.
pub fn args() -> Result<Vec<String>, ExitCode> {
    std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect::<Result<Vec<String>, _>>()
        .map_err(|bad| {
            eprintln!("Invalid argument {bad:?}: not valid UTF-8");
            ExitCode::from(1)
        })
}

/// Raises the soft limit on open files to the hard limit, as systemd's services expect to do
/// themselves: every peer link is a descriptor, and a fleet outgrows a 1024 soft limit long
/// before the hard limit. The outcome is logged.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let raised = getrlimit(Resource::RLIMIT_NOFILE).and_then(|(soft, hard)| {
        if soft < hard {
            setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        }
        Ok(hard.max(soft))
    });
    match raised {
        Ok(n) => tracing::debug!("Open file limit: {n}"),
        Err(e) => tracing::warn!("Failed to raise the open file limit: {e}"),
    }
}

/// The soft limit on open files in force.
pub fn fd_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Sends `event` once SIGTERM or SIGINT arrives.
pub fn shutdown_on_signals<E: Send + 'static>(tx: UnboundedSender<E>, event: E) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("Failed to install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(event);
    });
}

/// Sends `event()` every `period` until the receiver is gone.
pub fn tick_every<E, F>(tx: UnboundedSender<E>, period: std::time::Duration, event: F)
where
    E: Send + 'static,
    F: Fn() -> E + Send + 'static,
{
    tokio::spawn(async move {
        let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            iv.tick().await;
            if tx.send(event()).is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptSpec] = &[
        OptSpec {
            short: 'c',
            long: "config",
            takes_value: true,
        },
        OptSpec {
            short: 'u',
            long: "user",
            takes_value: false,
        },
    ];

    fn parse(args: &[&str]) -> Result<Vec<(char, Option<String>)>, ExitCode> {
        parse_options("d", "", SPECS, args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn all_value_forms() {
        let v = parse(&[
            "-c",
            "a",
            "-cb",
            "--config",
            "c",
            "--config=d",
            "-u",
            "--user",
        ])
        .unwrap();
        let values: Vec<_> = v.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(
            values,
            vec![
                Some("a".into()),
                Some("b".into()),
                Some("c".into()),
                Some("d".into()),
                None,
                None
            ]
        );
        assert_eq!(v[4].0, 'u');
    }

    #[test]
    fn errors() {
        assert!(parse(&["-x"]).is_err());
        assert!(parse(&["--nope"]).is_err());
        assert!(parse(&["-c"]).is_err());
        assert!(parse(&["stray"]).is_err());
    }
}
