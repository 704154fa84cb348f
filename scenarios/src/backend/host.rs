//! One node of a running cluster, whatever runs it. Every operation a scenario can ask of a
//! node goes through here; each backend answers it or says it cannot.

use std::path::PathBuf;
use std::time::Duration;

use super::local::{LocalBackground, LocalHost};
use super::podman::{PodmanBackground, PodmanHost};
use super::{
    BackendKind, Background, Daemon, DaemonAction, HostResult, NodeAction, UnitFileChange,
};
use crate::transcript::CommandOutput;

pub enum Host {
    Local(Box<LocalHost>),
    Podman(Box<PodmanHost>),
}

pub(super) enum BackgroundInner {
    Local(LocalBackground),
    Podman(PodmanBackground),
}

impl Host {
    pub fn kind(&self) -> BackendKind {
        match self {
            Host::Local(_) => BackendKind::Local,
            Host::Podman(h) => h.kind(),
        }
    }

    pub fn node(&self) -> &str {
        match self {
            Host::Local(h) => h.node(),
            Host::Podman(h) => h.node(),
        }
    }

    /// The local host, for tests that reach into a local node (its bus, its files).
    pub fn as_local(&self) -> Option<&LocalHost> {
        match self {
            Host::Local(h) => Some(h),
            Host::Podman(_) => None,
        }
    }

    /// Where the node's daemon reads its configuration, as a path on the node.
    pub fn config_path(&self, daemon: Daemon) -> PathBuf {
        match self {
            Host::Local(h) => h.config_path(daemon),
            Host::Podman(h) => h.config_path(daemon),
        }
    }

    pub async fn write_config(&self, daemon: Daemon, text: &str) -> HostResult<()> {
        match self {
            Host::Local(h) => h.write_config(daemon, text),
            Host::Podman(h) => h.write_config(daemon, text).await,
        }
    }

    pub async fn change_unit_file(&self, change: &UnitFileChange) -> HostResult<()> {
        match self {
            Host::Local(h) => h.change_unit_file(change).await,
            Host::Podman(h) => h.change_unit_file(change).await,
        }
    }

    /// Starts, stops, kills or restarts a BlueChi daemon of this node; a started controller
    /// is serving its bus name when this returns.
    pub async fn daemon(&self, daemon: Daemon, action: DaemonAction) -> HostResult<()> {
        match self {
            Host::Local(h) => h.daemon(daemon, action).await,
            Host::Podman(h) => h.daemon(daemon, action).await,
        }
    }

    pub async fn node_action(&self, action: NodeAction) -> HostResult<()> {
        match self {
            Host::Local(h) => h.node_action(action).await,
            Host::Podman(h) => h.node_action(action).await,
        }
    }

    /// Runs `argv` on the node and waits for it (killed after `deadline`).
    pub async fn run(&self, argv: &[String], deadline: Duration) -> HostResult<CommandOutput> {
        match self {
            Host::Local(h) => h.run(argv, deadline).await,
            Host::Podman(h) => h.run(argv, deadline).await,
        }
    }

    /// Starts `argv` on the node in the background; `tag` names its output files.
    pub async fn spawn(&self, argv: &[String], tag: &str) -> HostResult<Background> {
        let inner = match self {
            Host::Local(h) => BackgroundInner::Local(h.spawn(argv, tag).await?),
            Host::Podman(h) => BackgroundInner::Podman(h.spawn(argv, tag).await?),
        };
        Ok(Background { inner })
    }

    /// A unit property from the node's systemd, as display text.
    pub async fn unit_property(&self, unit: &str, property: &str) -> HostResult<String> {
        match self {
            Host::Local(h) => h.unit_property(unit, property).await,
            Host::Podman(h) => h.unit_property(unit, property).await,
        }
    }
}

impl Background {
    /// What the command printed so far.
    pub async fn output_so_far(&self) -> String {
        match &self.inner {
            BackgroundInner::Local(b) => b.output_so_far(),
            BackgroundInner::Podman(b) => b.output_so_far().await,
        }
    }

    /// Waits for the command to exit by itself within `deadline` (it is killed and this fails
    /// otherwise) and returns all it printed.
    pub async fn wait(self, deadline: Duration) -> HostResult<CommandOutput> {
        match self.inner {
            BackgroundInner::Local(b) => b.wait(deadline).await,
            BackgroundInner::Podman(b) => b.wait(deadline).await,
        }
    }

    /// Interrupts the command as Ctrl-C would and returns all it printed.
    pub async fn finish(self, grace: Duration) -> HostResult<CommandOutput> {
        match self.inner {
            BackgroundInner::Local(b) => b.finish(grace).await,
            BackgroundInner::Podman(b) => b.finish(grace).await,
        }
    }
}
