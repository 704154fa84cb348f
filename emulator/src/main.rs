//! `systemd-emulator [--root DIR | --unit-dir DIR ...] [--bus-address ADDR | --no-bus]
//!  [--system | --user] [--private-socket PATH] [--runtime-dir DIR]`

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use systemd_emulator::engine::Engine;
use systemd_emulator::io::bus::Daemon;
use systemd_emulator::io::private;
use systemd_emulator::io::runtime::{Endpoints, Runtime, BUS_NAME};
use systemd_emulator::loader::{FsSource, UserDirs};

#[derive(Parser, Debug)]
#[command(
    name = "systemd-emulator",
    about = "A fake systemd serving org.freedesktop.systemd1"
)]
struct Cli {
    /// Directory with unit files; may be repeated, searched in order (instead of the search path).
    #[arg(long = "unit-dir")]
    unit_dirs: Vec<PathBuf>,
    /// Root for systemd's unit search path (/etc/systemd/system, /run/systemd/system, ...).
    #[arg(long = "root", default_value = "/", conflicts_with = "unit_dirs")]
    root: PathBuf,
    /// D-Bus address to serve on (default: the system bus, or the session bus with --user).
    #[arg(long = "bus-address", conflicts_with = "no_bus")]
    bus_address: Option<String>,
    /// Serve only on the private socket (needs --private-socket or --system).
    #[arg(long = "no-bus")]
    no_bus: bool,
    /// Act as the system manager (implied as PID 1): private socket and runtime directory
    /// default to /run/systemd, and a missing bus is not fatal.
    #[arg(long, conflicts_with = "user")]
    system: bool,
    /// Act as a user manager (`systemd --user`): serve on the session bus, load units from the
    /// user search path ($XDG_CONFIG_HOME/systemd/user, /etc/systemd/user, ...), keep runtime
    /// state and the private socket under $XDG_RUNTIME_DIR/systemd.
    #[arg(long)]
    user: bool,
    /// Path of the peer-to-peer socket (systemd: /run/systemd/private).
    #[arg(long = "private-socket")]
    private_socket: Option<PathBuf>,
    /// Runtime directory (systemd's /run/systemd): transient units go to DIR/transient, and with
    /// --unit-dir runtime enablements to DIR/system (DIR/user with --user), searched after the
    /// unit directories.
    #[arg(long = "runtime-dir")]
    runtime_dir: Option<PathBuf>,
}

async fn connect(
    addr: Option<&str>,
    user: bool,
) -> zbus::Result<(zbus::Connection, zbus::MessageStream)> {
    let conn = match addr {
        Some(a) => zbus::connection::Builder::address(a)?.build().await?,
        None if user => zbus::Connection::session().await?,
        None => zbus::Connection::system().await?,
    };
    // Subscribe before owning the name so no call is missed.
    let stream = zbus::MessageStream::from(&conn);
    bluechi_core::msg::request_name(&conn, BUS_NAME, 0)
        .await
        .map_err(|e| zbus::Error::Failure(format!("Failed to acquire bus name {BUS_NAME}: {e}")))?;
    Ok((conn, stream))
}

/// An absolute path from the environment variable `k`.
fn env_dir(k: &str) -> Option<PathBuf> {
    std::env::var_os(k)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// The user manager's directories from the XDG environment, with systemd's defaults; its
/// runtime directory is filled in once known.
fn user_dirs() -> Result<UserDirs, String> {
    let home = env_dir("HOME").ok_or("--user needs $HOME (an absolute path)")?;
    Ok(UserDirs {
        config_home: env_dir("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config")),
        data_home: env_dir("XDG_DATA_HOME").unwrap_or_else(|| home.join(".local/share")),
        runtime: None,
    })
}

fn fail(msg: String) -> ExitCode {
    eprintln!("systemd-emulator: {msg}");
    ExitCode::from(1)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,zbus=error")),
        )
        .init();
    let cli = Cli::parse();
    // systemd runs with a high descriptor limit of its own; every unit's pipes, sockets and
    // private connections count against ours.
    bluechi_core::daemon::raise_fd_limit();
    // As PID 1 we are the system manager, unless told to be a user manager.
    let system = cli.system || (std::process::id() == 1 && !cli.user);
    for d in &cli.unit_dirs {
        if !d.is_dir() {
            tracing::warn!("unit directory {} does not exist", d.display());
        }
    }
    // Orphaned grandchildren are re-parented to us so that we reap (and can kill) them; as
    // PID 1 every orphan of the system already is.
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        tracing::warn!(
            "prctl(PR_SET_CHILD_SUBREAPER) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    // sd_booted() checks this directory; systemctl refuses to work without it.
    if system {
        if let Err(e) = std::fs::create_dir_all("/run/systemd/system") {
            tracing::warn!("cannot create /run/systemd/system: {e}");
        }
    }
    // The user search path needs $HOME; explicit --unit-dir directories do not.
    let mut user_dirs = match (cli.user && cli.unit_dirs.is_empty())
        .then(user_dirs)
        .transpose()
    {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let user_runtime = cli.user.then(|| env_dir("XDG_RUNTIME_DIR")).flatten();
    let runtime_dir = cli.runtime_dir.clone().unwrap_or_else(|| {
        if system {
            PathBuf::from("/run/systemd")
        } else if let Some(run) = &user_runtime {
            run.join("systemd")
        } else {
            std::env::temp_dir().join(format!("systemd-emulator.{}", std::process::id()))
        }
    });
    // Our own per-process default directory is ours to remove at exit (and with it runtime
    // enablements, as a reboot clears /run); a given one (or the user's runtime directory) is
    // not.
    let owns_runtime_dir =
        cli.runtime_dir.is_none() && !system && user_runtime.is_none() && !runtime_dir.exists();
    // A user manager searches its runtime directory like systemd --user does
    // $XDG_RUNTIME_DIR/systemd, wherever it is.
    if let Some(u) = user_dirs.as_mut() {
        u.runtime = Some(runtime_dir.clone());
    }
    // systemd --user listens on $XDG_RUNTIME_DIR/systemd/private, but on a desktop the real
    // user manager is there already: taking its socket would break `systemctl --user`. Nothing
    // of ours needs it (the agent talks to a user manager on the session bus), so a user
    // manager serves one only when --private-socket names it.
    let default_private = system.then(|| PathBuf::from("/run/systemd/private"));
    let private_path = cli.private_socket.clone().or(default_private);
    if let Some(parent) = private_path.as_ref().and_then(|p| p.parent()) {
        if let Err(e) = std::fs::create_dir_all(parent) {
            return fail(format!("cannot create {}: {e}", parent.display()));
        }
    }
    if cli.no_bus && private_path.is_none() {
        return fail("--no-bus needs --private-socket or --system".to_string());
    }
    let private = match &private_path {
        Some(p) => match private::bind(p) {
            Ok(l) => Some(l),
            Err(e) => return fail(format!("cannot listen on {}: {e}", p.display())),
        },
        None => None,
    };
    let bus = if cli.no_bus {
        None
    } else {
        match connect(cli.bus_address.as_deref(), cli.user).await {
            Ok(b) => Some(b),
            Err(e) if system && private.is_some() => {
                tracing::warn!("no D-Bus bus ({e}); serving only the private socket");
                None
            }
            Err(e) => return fail(format!("cannot serve {BUS_NAME} on the D-Bus bus: {e}")),
        }
    };
    // Transient units and runtime enablements live in the runtime directory, as in systemd's
    // /run/systemd (or $XDG_RUNTIME_DIR/systemd); the system search path keeps them under
    // ROOT/run/systemd where systemd has them. With explicit directories the runtime ones are
    // searched after them.
    let (source, transient) = match (cli.unit_dirs.is_empty(), &user_dirs) {
        (true, Some(user)) => (
            FsSource::with_user_root(&cli.root, user),
            runtime_dir.join("transient"),
        ),
        (true, None) => (
            FsSource::with_root(&cli.root),
            cli.root.join("run/systemd/transient"),
        ),
        (false, _) => (
            FsSource::with_dirs(&cli.unit_dirs, &runtime_dir, cli.user),
            runtime_dir.join("transient"),
        ),
    };
    let unit_paths: Vec<String> = source
        .dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    tracing::info!("serving {BUS_NAME} with units from {unit_paths:?}");
    let daemon = Daemon {
        transient_dir: Some(transient),
        unit_paths,
        system,
        ..Daemon::default()
    };
    let engine = Engine::new(Box::new(source));
    let result = Runtime::run(Endpoints { bus, private }, engine, daemon).await;
    if let Some(p) = &private_path {
        let _ = std::fs::remove_file(p);
    }
    if owns_runtime_dir {
        if let Err(e) = std::fs::remove_dir_all(&runtime_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", runtime_dir.display());
            }
        }
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(e.to_string()),
    }
}
