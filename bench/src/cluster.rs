//! A local cluster for measuring: the scenario runner's local backend (private bus, emulator,
//! agent, controller on node `main`) plus what a benchmark needs from it that a scenario does
//! not: a bus connection of our own, the daemons' pids and the controller's peer address.

use std::path::{Path, PathBuf};

use scenario_runner::backend::local::sweep;
use scenario_runner::backend::{BackendKind, BackendOptions, Cluster as RunnerCluster};
use scenario_runner::dbus;
use scenario_runner::syntax::{Scenario, UnitFile};
use zbus::Connection;

pub const NODE: &str = "main";

pub struct Cluster {
    backend: RunnerCluster,
    bin_dir: PathBuf,
    /// The `main` node's bus: the controller's public API and the emulator are both on it.
    pub bus: Connection,
    address: String,
}

/// What to bring up besides the `main` node.
pub struct Spec {
    /// Further node names the controller must accept (for fake agents).
    pub extra_nodes: Vec<String>,
    pub units: Vec<UnitFile>,
    /// Keep the run directory (configs, daemon logs) after teardown.
    pub keep: bool,
}

/// Logging at upstream's default level: the runner's DEBUG would put a log write on every hop
/// of the path being measured. Extra nodes get `[node X] Allowed=true` sections because a
/// hundred names overflow the 519-byte line limit of `AllowedNodeNames`.
fn scenario(spec: Spec) -> Scenario {
    let mut conf = format!("[bluechi-controller]\nLogLevel=INFO\nAllowedNodeNames={NODE}\n");
    for node in &spec.extra_nodes {
        conf.push_str(&format!("\n[node {node}]\nAllowed=true\n"));
    }
    Scenario {
        name: "bench".into(),
        nodes: vec![NODE.into()],
        controller: NODE.into(),
        controller_conf: conf,
        agent_confs: vec![(NODE.into(), "[bluechi-agent]\nLogLevel=INFO\n".into())],
        units: spec.units,
        steps: Vec::new(),
        redactions: Vec::new(),
        offline: Vec::new(),
    }
}

impl Cluster {
    pub async fn start(bin_dir: &Path, spec: Spec) -> Result<Cluster, String> {
        let mut backend = RunnerCluster::new(
            BackendKind::Local,
            &BackendOptions {
                keep: spec.keep,
                ..BackendOptions::new(bin_dir)
            },
        )?;
        backend.start(&scenario(spec)).await?;
        // The backend keeps its bus addresses private; its layout puts each node's socket here.
        let socket = backend.work_dir().join(NODE).join("bus.sock");
        let address = format!("unix:path={}", socket.display());
        let bus = dbus::connect(&address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        Ok(Cluster {
            backend,
            bin_dir: bin_dir.to_path_buf(),
            bus,
            address,
        })
    }

    /// The D-Bus address of the `main` node's bus, for tools run against it.
    pub fn bus_address(&self) -> &str {
        &self.address
    }

    /// The pid of this run's daemon running `program` (e.g. `bluechi-controller`).
    pub fn pid_of(&self, program: &str) -> Result<i32, String> {
        let marked = sweep::marked_processes(self.backend.run_id());
        let found = crate::rss::pids_running(&marked, &self.bin_dir.join(program));
        match found.as_slice() {
            [pid] => Ok(*pid),
            [] => Err(format!("no {program} of run {}", self.backend.run_id())),
            many => Err(format!("several {program} processes: {many:?}")),
        }
    }

    /// Where agents reach the controller, as the real agent was told (its public
    /// `ControllerAddress` property), so fake agents need not know the backend's config files.
    pub async fn controller_address(&self) -> Result<String, String> {
        let reply = self
            .bus
            .call_method(
                Some("org.eclipse.bluechi.Agent"),
                "/org/eclipse/bluechi",
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &("org.eclipse.bluechi.Agent", "ControllerAddress"),
            )
            .await
            .map_err(|e| format!("cannot read the agent's ControllerAddress: {e}"))?;
        let value: zvariant::OwnedValue = reply
            .body()
            .deserialize()
            .map_err(|e| format!("ControllerAddress: {e}"))?;
        String::try_from(value).map_err(|e| format!("ControllerAddress is not a string: {e}"))
    }

    /// How many nodes the controller reports online.
    pub async fn online_nodes(&self) -> Result<usize, String> {
        let nodes = dbus::list_nodes(&self.bus)
            .await
            .map_err(|e| format!("ListNodes: {e}"))?;
        Ok(nodes.iter().filter(|(_, s)| s == "online").count())
    }

    pub fn teardown(mut self) {
        self.backend.teardown();
    }
}
