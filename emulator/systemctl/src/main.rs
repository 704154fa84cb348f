//! `systemctl` for nodes running systemd-emulator: a D-Bus client of org.freedesktop.systemd1
//! whose output and exit statuses follow systemd 252's systemctl.

mod args;
mod conn;
mod exit;
mod expand;
mod fmt;
mod jobs;
mod list;
mod names;
mod preset;
mod show;
mod simple;
mod status;
mod unitfiles;

use args::Opts;

const HELP: &str = "systemctl [OPTIONS...] COMMAND ...

Query or send control commands to the system manager.

Commands: list-units list-unit-files start stop restart is-active is-failed is-enabled
          status show enable disable reset-failed daemon-reload

Options: -a --all  -t --type=TYPE  --state=STATE  -p --property=NAME  -P NAME
         --value  --no-legend  --plain  --no-block  --no-pager  -q --quiet
         -n --lines=N  --now  -h --help  --version";

const GLOB_START_WARNING: &str = "Warning: systemctl start called with a glob pattern.
Hint: unit globs expand to loaded units, so start will usually have no effect.
      Passing --all will also load units which are pulled in by other units.
      See systemctl(1) for more details.";

/// Verbs and how many arguments they need at least.
const VERBS: &[(&str, usize)] = &[
    ("list-units", 0),
    ("list-unit-files", 0),
    ("start", 1),
    ("stop", 1),
    ("restart", 1),
    ("is-active", 1),
    ("is-failed", 1),
    ("is-enabled", 1),
    ("status", 0),
    ("show", 0),
    ("enable", 1),
    ("disable", 1),
    ("reset-failed", 0),
    ("daemon-reload", 0),
];

async fn dispatch(o: &Opts, verb: &str, rest: &[String]) -> i32 {
    let m = match conn::connect().await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            return exit::FAILURE;
        }
    };
    // Verbs on units take glob patterns, which expand to loaded units.
    let units = if matches!(
        verb,
        "list-units" | "list-unit-files" | "enable" | "disable"
    ) || rest.iter().all(|a| !expand::is_glob(a))
    {
        rest.to_vec()
    } else {
        match expand::expand(&m, rest).await {
            Ok((units, _)) => {
                if verb == "start" && !o.all && !o.quiet {
                    eprintln!("{GLOB_START_WARNING}");
                }
                units
            }
            Err(e) => {
                eprintln!("Failed to expand names: {}", e.text());
                return exit::FAILURE;
            }
        }
    };
    let rest = units.as_slice();
    match verb {
        "list-units" => list::units(&m, o, rest).await,
        "list-unit-files" => list::unit_files(&m, o, rest).await,
        "start" | "stop" | "restart" => {
            let method = match verb {
                "start" => "StartUnit",
                "stop" => "StopUnit",
                _ => "RestartUnit",
            };
            let units: Vec<String> = rest.iter().map(|u| names::mangle(u)).collect();
            jobs::run(&m, o, method, verb, &units).await
        }
        "is-active" => simple::check_state(&m, o, rest, false).await,
        "is-failed" => simple::check_state(&m, o, rest, true).await,
        "is-enabled" => unitfiles::is_enabled(&m, o, rest).await,
        "status" if rest.is_empty() => {
            eprintln!("status without units is not supported; name the units to show.");
            exit::FAILURE
        }
        "status" => status::run(&m, o, rest).await,
        "show" => show::run(&m, o, rest).await,
        "enable" => unitfiles::change(&m, o, true, rest).await,
        "disable" => unitfiles::change(&m, o, false, rest).await,
        "reset-failed" => simple::reset_failed(&m, rest).await,
        "daemon-reload" => simple::daemon_reload(&m).await,
        _ => exit::FAILURE,
    }
}

fn run(argv: &[String]) -> i32 {
    let o = match args::parse(argv) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}", e.0);
            return exit::FAILURE;
        }
    };
    if o.help {
        println!("{HELP}");
        return exit::SUCCESS;
    }
    if o.version {
        println!(
            "systemd 252 (emulator-systemctl {})",
            env!("CARGO_PKG_VERSION")
        );
        return exit::SUCCESS;
    }
    let (verb, rest) = match o.args.split_first() {
        Some((v, r)) => (v.as_str(), r),
        None => ("list-units", &[][..]),
    };
    let Some((_, min)) = VERBS.iter().find(|(v, _)| *v == verb) else {
        eprintln!("Unknown command verb {verb}.");
        return exit::FAILURE;
    };
    if rest.len() < *min {
        eprintln!("Too few arguments.");
        return exit::FAILURE;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Failed to start runtime: {e}");
            return exit::FAILURE;
        }
    };
    rt.block_on(dispatch(&o, verb, rest))
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = run(&argv);
    std::process::exit(code);
}
