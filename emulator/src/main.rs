//! `systemd-emulator [--root DIR | --unit-dir DIR ...] [--bus-address ADDR]`

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use systemd_emulator::engine::Engine;
use systemd_emulator::io::runtime::Runtime;
use systemd_emulator::loader::FsSource;

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
    /// D-Bus address to serve on (default: $DBUS_SYSTEM_BUS_ADDRESS / the system bus).
    #[arg(long = "bus-address")]
    bus_address: Option<String>,
}

const BUS_NAME: &str = "org.freedesktop.systemd1";

async fn connect(addr: Option<&str>) -> zbus::Result<zbus::Connection> {
    match addr {
        Some(a) => zbus::connection::Builder::address(a)?.build().await,
        None => zbus::Connection::system().await,
    }
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
    for d in &cli.unit_dirs {
        if !d.is_dir() {
            tracing::warn!("unit directory {} does not exist", d.display());
        }
    }
    // Orphaned grandchildren are re-parented to us so that we reap (and can kill) them.
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        tracing::warn!(
            "prctl(PR_SET_CHILD_SUBREAPER) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    let conn = match connect(cli.bus_address.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("systemd-emulator: cannot connect to the D-Bus bus: {e}");
            return ExitCode::from(1);
        }
    };
    // Subscribe before owning the name so no call is missed.
    let stream = zbus::MessageStream::from(&conn);
    if let Err(e) = conn.request_name(BUS_NAME).await {
        eprintln!("systemd-emulator: cannot acquire the name {BUS_NAME}: {e}");
        return ExitCode::from(1);
    }
    let source = if cli.unit_dirs.is_empty() {
        FsSource::with_root(&cli.root)
    } else {
        FsSource::with_dirs(cli.unit_dirs)
    };
    tracing::info!("serving {BUS_NAME} with units from {:?}", source.dirs());
    let engine = Engine::new(Box::new(source));
    match Runtime::run(conn, engine, stream).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("systemd-emulator: {e}");
            ExitCode::from(1)
        }
    }
}
