//! A running cluster: the plan, the host of every node and what they share. Startup order and
//! the "every node online" check live here, once for every backend.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::local::LocalRun;
use super::plan::{ClusterPlan, Endpoint};
use super::podman::PodmanRun;
use super::{
    BackendKind, BackendOptions, Daemon, DaemonAction, Fault, Host, HostError, HostResult,
    NodeAction, UnitFileChange,
};
use crate::syntax::Scenario;
use crate::transcript::{CommandOutput, Exit};

const POLL: Duration = Duration::from_millis(25);
/// One `bluechi-is-online` probe may take this long.
const PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// What the nodes of a run share, per backend.
enum Env {
    Local(LocalRun),
    Podman(PodmanRun),
}

pub struct Cluster {
    kind: BackendKind,
    opts: BackendOptions,
    env: Env,
    plan: Option<ClusterPlan>,
    hosts: BTreeMap<String, Host>,
    /// Where each node's agent reaches the controller.
    endpoints: BTreeMap<String, Endpoint>,
}

impl Cluster {
    /// Prepares a run on `kind`; nothing runs until `start`.
    pub fn new(kind: BackendKind, opts: &BackendOptions) -> Result<Cluster, String> {
        let env = match kind {
            BackendKind::Local => Env::Local(LocalRun::new(opts)?),
            BackendKind::PodmanEmulator | BackendKind::PodmanSystemd => {
                Env::Podman(PodmanRun::new(kind, opts, super::local::unique_run_id())?)
            }
        };
        Ok(Cluster {
            kind,
            opts: opts.clone(),
            env,
            plan: None,
            hosts: BTreeMap::new(),
            endpoints: BTreeMap::new(),
        })
    }

    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Brings the cluster up: every node's systemd, the controller, every agent; returns once
    /// every node not declared `offline:` is online.
    pub async fn start(&mut self, scenario: &Scenario) -> Result<(), String> {
        let plan = ClusterPlan::new(scenario);
        if let Env::Local(run) = &mut self.env {
            run.start_supervisor();
        }
        for node in &plan.nodes {
            let units: Vec<(String, String)> = plan
                .units_of(node)
                .map(|u| (u.name.clone(), u.text.clone()))
                .collect();
            let is_controller = *node == plan.controller;
            let host = match &self.env {
                Env::Local(run) => Host::Local(Box::new(
                    run.create_node(node, &units, is_controller).await?,
                )),
                Env::Podman(run) => Host::Podman(Box::new(
                    run.create_node(node, &units, is_controller).await?,
                )),
            };
            self.hosts.insert(node.clone(), host);
        }
        let (port, keys) = match &self.env {
            Env::Local(run) => (run.controller_port(), run.controller_keys()),
            Env::Podman(_) => (super::podman::CONTROLLER_PORT, ""),
        };
        let controller = self.host(&plan.controller).map_err(|e| e.to_string())?;
        controller
            .write_config(Daemon::Controller, &plan.controller_config(port, keys))
            .await
            .map_err(|e| e.to_string())?;
        controller
            .daemon(Daemon::Controller, DaemonAction::Start)
            .await
            .map_err(|e| format!("controller: {e}"))?;
        for node in &plan.nodes {
            let endpoint = match (&self.env, self.hosts.get_mut(node)) {
                (Env::Local(run), Some(Host::Local(h))) => run.agent_endpoint(h).await?,
                (Env::Podman(run), Some(Host::Podman(_))) => {
                    run.agent_endpoint(&plan.controller)?
                }
                _ => return Err(format!("no host for {node}")),
            };
            let host = self.host(node).map_err(|e| e.to_string())?;
            host.write_config(Daemon::Agent, &plan.agent_config(node, &endpoint))
                .await
                .map_err(|e| e.to_string())?;
            host.daemon(Daemon::Agent, DaemonAction::Start)
                .await
                .map_err(|e| format!("{node}'s agent: {e}"))?;
            self.endpoints.insert(node.clone(), endpoint);
        }
        self.plan = Some(plan);
        self.wait_online().await
    }

    /// Polls `bluechi-is-online node N` on the controller's node until every awaited node is
    /// online; fails early when a process died.
    async fn wait_online(&self) -> Result<(), String> {
        let plan = self.plan.as_ref().ok_or("the cluster was not started")?;
        let mut pending = plan.awaited();
        let start = Instant::now();
        loop {
            let dead = match &self.env {
                Env::Local(run) => run.first_exited(),
                Env::Podman(_) => None,
            };
            if let Some(dead) = dead {
                return Err(format!("{dead} exited during startup"));
            }
            let mut still = Vec::new();
            for node in pending {
                let argv = ["bluechi-is-online", "node", node.as_str()].map(String::from);
                let out = self
                    .run(&plan.controller, &argv, PROBE_DEADLINE)
                    .await
                    .map_err(|e| e.to_string())?;
                if out.exit != Exit::Code(0) {
                    still.push(node);
                }
            }
            if still.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= self.opts.ready_timeout {
                return Err(format!(
                    "timed out after {:.1}s waiting for every node to be online (not online: {})",
                    self.opts.ready_timeout.as_secs_f64(),
                    still.join(", ")
                ));
            }
            pending = still;
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn plan(&self) -> Option<&ClusterPlan> {
        self.plan.as_ref()
    }

    /// The node that runs the controller.
    pub fn controller(&self) -> &str {
        self.plan.as_ref().map_or("", |p| p.controller.as_str())
    }

    pub fn host(&self, node: &str) -> HostResult<&Host> {
        self.hosts
            .get(node)
            .ok_or_else(|| HostError::Failed(format!("unknown node {node}")))
    }

    /// `argv` with `${ControllerPort}`, `${ControllerIPv6}` and `${ControllerHost}` replaced
    /// by where `node`'s agent reaches the controller (what config blocks may use too).
    pub fn resolve(&self, node: &str, argv: &[String]) -> Vec<String> {
        let Some(e) = self.endpoints.get(node) else {
            return argv.to_vec();
        };
        argv.iter().map(|a| e.fill(a)).collect()
    }

    /// Runs a command on `node` (placeholders resolved as for that node).
    pub async fn run(
        &self,
        node: &str,
        argv: &[String],
        deadline: Duration,
    ) -> HostResult<CommandOutput> {
        self.host(node)?
            .run(&self.resolve(node, argv), deadline)
            .await
    }

    /// Runs a command on the controller's node (where `bluechictl` talks to the controller).
    pub async fn run_on_controller(
        &self,
        argv: &[String],
        deadline: Duration,
    ) -> HostResult<CommandOutput> {
        self.run(self.controller(), argv, deadline).await
    }

    pub async fn unit_property(
        &self,
        node: &str,
        unit: &str,
        property: &str,
    ) -> HostResult<String> {
        self.host(node)?.unit_property(unit, property).await
    }

    pub async fn change_unit_file(&self, node: &str, change: &UnitFileChange) -> HostResult<()> {
        self.host(node)?.change_unit_file(change).await
    }

    /// Injects a fault. On the local backend every agent reaches the controller through its
    /// own relay, so cutting the controller's node off cuts all of them (its own agent too, as
    /// a container losing its network would).
    pub async fn fault(&self, fault: &Fault) -> HostResult<()> {
        match fault {
            Fault::Daemon {
                node,
                daemon,
                action,
            } => self.host(node)?.daemon(*daemon, *action).await,
            Fault::Node {
                node,
                action: action @ (NodeAction::Disconnect | NodeAction::Reconnect),
            } if node == self.controller() && matches!(self.env, Env::Local(_)) => {
                for host in self.hosts.values() {
                    if let Host::Local(h) = host {
                        h.set_controller_cut(*action == NodeAction::Disconnect);
                    }
                }
                Ok(())
            }
            Fault::Node { node, action } => self.host(node)?.node_action(*action).await,
        }
    }

    /// The last `lines` lines of each daemon's log, for a failure's timeline.
    pub fn log_tails(&self, lines: usize) -> Vec<(String, String)> {
        match &self.env {
            Env::Local(run) => run.log_tails(lines),
            Env::Podman(_) => self
                .hosts
                .values()
                .filter_map(|h| match h {
                    Host::Podman(p) => Some((p.node().to_string(), p.log_tail(lines))),
                    Host::Local(_) => None,
                })
                .collect(),
        }
    }

    /// The unique marker carried by everything this run started.
    pub fn run_id(&self) -> &str {
        match &self.env {
            Env::Local(run) => run.run_id(),
            Env::Podman(run) => run.run_id(),
        }
    }

    /// The run's directory on this machine (configs and logs; removed by teardown unless kept).
    pub fn work_dir(&self) -> &Path {
        match &self.env {
            Env::Local(run) => run.work_dir(),
            Env::Podman(run) => run.work_dir(),
        }
    }

    /// Stops everything and removes what the run created. Idempotent; also runs on drop.
    pub fn teardown(&mut self) {
        // Hosts hold bus connections and relays: gone first, so nothing of ours holds a socket.
        self.hosts.clear();
        match &mut self.env {
            Env::Local(run) => run.teardown(),
            Env::Podman(run) => run.teardown(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}
