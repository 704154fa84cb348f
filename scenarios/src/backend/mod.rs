//! Where a scenario's cluster runs. Two layers:
//!
//! - the backend-neutral part: the *cluster plan* (`plan`: configs rendered once, which unit
//!   files go to which node) and the cluster (`cluster`: the start order, the "every node
//!   online" check, typed faults);
//! - the *host* of each node (`Host`), one enum over the backends: write or remove a file,
//!   start/stop/kill a daemon, pause or cut off the node, run a command there, read a unit
//!   property, logs, teardown. What a backend cannot do is `HostError::Unsupported`, never a
//!   silent pass.
//!
//! `Cluster` puts the two together; the runner and the tests only talk to it. Nothing here
//! assumes the nodes share one machine: a node is reached only through its host, and the
//! controller only through the address the backend gives the plan.

mod cluster;
mod host;
pub mod local;
pub mod plan;
pub mod podman;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use cluster::Cluster;
pub use host::Host;

/// Which kind of host runs the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendKind {
    /// Local processes: a private dbus-daemon, the emulator and the daemons per node.
    Local,
    /// One Podman container per node, our emulator as PID 1.
    PodmanEmulator,
    /// One Podman container per node, real systemd 252 as PID 1.
    PodmanSystemd,
}

impl BackendKind {
    pub const ALL: [BackendKind; 3] = [
        BackendKind::Local,
        BackendKind::PodmanEmulator,
        BackendKind::PodmanSystemd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::PodmanEmulator => "podman-emulator",
            BackendKind::PodmanSystemd => "podman-systemd",
        }
    }

    /// `local`, `podman-emulator`, `podman-systemd`, or `all` (every kind).
    pub fn parse_list(s: &str) -> Result<Vec<BackendKind>, String> {
        if s == "all" {
            return Ok(Self::ALL.to_vec());
        }
        Self::ALL
            .iter()
            .find(|k| k.name() == s)
            .map(|k| vec![*k])
            .ok_or_else(|| {
                format!("unknown backend '{s}' (local, podman-emulator, podman-systemd or all)")
            })
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What every backend needs from its caller.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// Directory holding the BlueChi binaries and the emulator (and its `systemctl`).
    pub bin_dir: PathBuf,
    /// Directory holding the agent's shipped `bluechi-proxy@.service` / `bluechi-dep@.service`.
    pub units_dir: PathBuf,
    /// Keep the run directory after teardown.
    pub keep: bool,
    /// Deadline for each readiness check during startup.
    pub ready_timeout: Duration,
}

impl BackendOptions {
    /// The binaries in `bin_dir`, the shipped units of this tree, the default readiness
    /// deadline, the run directory removed at the end.
    pub fn new(bin_dir: impl Into<PathBuf>) -> Self {
        BackendOptions {
            bin_dir: bin_dir.into(),
            units_dir: crate::paths::shipped_units_dir(),
            keep: false,
            ready_timeout: local::DEFAULT_READY_TIMEOUT,
        }
    }
}

/// Why a host operation did not happen. Callers must tell "this backend cannot" apart from
/// "it tried and failed": a scenario step that a backend cannot do is reported, not passed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("not possible on the {backend} backend: {what}")]
    Unsupported { backend: BackendKind, what: String },
    #[error("{0}")]
    Failed(String),
}

impl From<String> for HostError {
    fn from(s: String) -> Self {
        HostError::Failed(s)
    }
}

impl From<HostError> for String {
    fn from(e: HostError) -> Self {
        e.to_string()
    }
}

pub type HostResult<T> = Result<T, HostError>;

/// The BlueChi daemons a node may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Daemon {
    Controller,
    Agent,
}

impl Daemon {
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Controller => "controller",
            Daemon::Agent => "agent",
        }
    }

    /// The program, which is also the service's name without `.service`.
    pub fn program(self) -> &'static str {
        match self {
            Daemon::Controller => "bluechi-controller",
            Daemon::Agent => "bluechi-agent",
        }
    }
}

/// What a scenario does to a daemon. Daemons run as their units would (`Restart=on-abnormal`):
/// after `kill` (SIGKILL) the service manager starts them again, after `stop` it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonAction {
    Start,
    Stop,
    Kill,
    Restart,
}

impl DaemonAction {
    pub fn name(self) -> &'static str {
        match self {
            DaemonAction::Start => "start",
            DaemonAction::Stop => "stop",
            DaemonAction::Kill => "kill",
            DaemonAction::Restart => "restart",
        }
    }
}

/// What a scenario does to a whole node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeAction {
    /// Freeze every process of the node (SIGSTOP / `podman pause`).
    Pause,
    Resume,
    /// Cut the node off the network: its established connections stall, new ones fail.
    Disconnect,
    Reconnect,
}

impl NodeAction {
    pub fn name(self) -> &'static str {
        match self {
            NodeAction::Pause => "pause",
            NodeAction::Resume => "resume",
            NodeAction::Disconnect => "disconnect",
            NodeAction::Reconnect => "reconnect",
        }
    }
}

/// A fault a scenario injects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Daemon {
        node: String,
        daemon: Daemon,
        action: DaemonAction,
    },
    Node {
        node: String,
        action: NodeAction,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Daemon {
                node,
                daemon: Daemon::Controller,
                action,
            } => write!(f, "{} controller (on {node})", action.name()),
            Fault::Daemon {
                node,
                daemon,
                action,
            } => write!(f, "{} {} {node}", action.name(), daemon.name()),
            Fault::Node { node, action } => write!(f, "{} {node}", action.name()),
        }
    }
}

/// A change to a node's unit files while the scenario runs. `name` is a unit file name or a
/// drop-in (`target.service.d/10-x.conf`), relative to the node's unit directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitFileChange {
    Write {
        name: String,
        text: String,
    },
    Remove {
        name: String,
    },
    /// A link to /dev/null, as `systemctl mask` makes (in the configuration directory).
    Mask {
        name: String,
    },
}

/// A command started in the background on a node; its output is read when it ends.
pub struct Background {
    inner: host::BackgroundInner,
}
