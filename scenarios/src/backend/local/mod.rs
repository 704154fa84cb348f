//! Local-process backend: per node a private dbus-daemon, a systemd-emulator and an agent; the
//! controller on its node; everything under one temporary directory.

mod config;
mod procs;
pub mod sweep;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use zbus::Connection;

use super::Backend;
use crate::dbus::{self, ProbeError};
use crate::paths;
use crate::syntax::Scenario;
use crate::transcript::{CommandOutput, Exit};
use procs::{Daemons, Stage};

/// How long startup may take per readiness check unless configured otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(15);
const SWEEP_DEADLINE: Duration = Duration::from_secs(3);

struct Node {
    bus_address: String,
    conn: Connection,
}

/// What the local backend needs from its caller.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Directory holding the BlueChi binaries and `systemd-emulator`.
    pub bin_dir: PathBuf,
    /// Directory holding the agent's shipped `bluechi-proxy@.service` / `bluechi-dep@.service`.
    pub units_dir: PathBuf,
    /// Keep the run directory after teardown.
    pub keep: bool,
    /// Deadline for each readiness check during startup.
    pub ready_timeout: Duration,
}

pub struct LocalBackend {
    bin_dir: PathBuf,
    units_dir: PathBuf,
    ready_timeout: Duration,
    run_id: String,
    work_path: PathBuf,
    /// `None` once removed (or handed over to the user with `--keep`).
    dir: Option<tempfile::TempDir>,
    keep: bool,
    daemons: Daemons,
    nodes: BTreeMap<String, Node>,
    controller_node: String,
    torn_down: bool,
}

fn unique_run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl LocalBackend {
    /// Prepares a run: checks the binaries and creates the run's directory. Nothing runs yet.
    pub fn new(config: LocalConfig) -> Result<Self, String> {
        let LocalConfig {
            bin_dir,
            units_dir,
            keep,
            ready_timeout,
        } = config;
        paths::check_binaries(&bin_dir)?;
        let dir = tempfile::Builder::new()
            .prefix("bluechi-scenario-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        Ok(LocalBackend {
            bin_dir,
            units_dir,
            ready_timeout,
            run_id: unique_run_id(),
            work_path: dir.path().to_path_buf(),
            dir: Some(dir),
            keep,
            daemons: Daemons::default(),
            nodes: BTreeMap::new(),
            controller_node: String::new(),
            torn_down: false,
        })
    }

    fn node_dir(&self, node: &str) -> PathBuf {
        self.work_path.join(node)
    }

    fn command(&self, program: &str, bus_address: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", bus_address)
            .env_remove("DBUS_SESSION_BUS_ADDRESS");
        cmd
    }

    fn check_alive(&mut self) -> Result<(), String> {
        match self.daemons.first_exited() {
            Some(name) => Err(format!("{name} exited during startup")),
            None => Ok(()),
        }
    }

    async fn start_bus(&mut self, node: &str) -> Result<String, String> {
        let dir = self.node_dir(node);
        let socket = dir.join("bus.sock");
        let conf = dir.join("bus.conf");
        write(&conf, &config::bus_config(&socket))?;
        let mut cmd = Command::new("dbus-daemon");
        cmd.arg("--nofork")
            .arg("--print-address=1")
            .arg(format!("--config-file={}", conf.display()));
        let name = format!("{node}/dbus-daemon");
        let log = dir.join("dbus-daemon.log");
        let daemon = self
            .daemons
            .spawn(&name, Stage::Bus, cmd, &log, &self.run_id, true)?;
        let stdout = daemon
            .take_stdout()
            .ok_or_else(|| format!("{name}: no stdout pipe"))?;
        // dbus-daemon prints its address once it listens; EOF means it died first.
        let read = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        });
        let address = match tokio::time::timeout(self.ready_timeout, read).await {
            Ok(Ok(Ok(line))) if !line.trim().is_empty() => line.trim().to_string(),
            Ok(Ok(Ok(_))) => return Err(format!("{name} exited without printing its address")),
            Ok(Ok(Err(e))) => return Err(format!("{name}: cannot read its address: {e}")),
            Ok(Err(e)) => return Err(format!("{name}: address reader failed: {e}")),
            Err(_) => return Err(format!("{name} did not print its address in time")),
        };
        Ok(address)
    }

    async fn wait_for_name(&mut self, node: &str, name: &str, who: &str) -> Result<(), String> {
        let conn = self
            .nodes
            .get(node)
            .map(|n| n.conn.clone())
            .ok_or_else(|| format!("unknown node {node}"))?;
        let what = format!("{who} to own {name} on {node}'s bus");
        let daemons = &mut self.daemons;
        dbus::poll_until(self.ready_timeout, &what, || {
            let dead = daemons.first_exited();
            let conn = conn.clone();
            async move {
                if let Some(d) = dead {
                    return Err(ProbeError::Fatal(format!("{d} exited")));
                }
                dbus::name_has_owner(&conn, name)
                    .await
                    .map_err(|e| ProbeError::Retry(e.to_string()))
            }
        })
        .await
    }

    fn install_units(&self, scenario: &Scenario, node: &str) -> Result<(), String> {
        let dir = self.node_dir(node).join("units");
        create_dir(&dir)?;
        for shipped in ["bluechi-proxy@.service", "bluechi-dep@.service"] {
            let src = self.units_dir.join(shipped);
            let text = std::fs::read_to_string(&src).map_err(|e| {
                format!(
                    "cannot read the agent's shipped unit {}: {e}",
                    src.display()
                )
            })?;
            write(
                &dir.join(shipped),
                &config::relocate_unit(&text, &self.bin_dir),
            )?;
        }
        for unit in scenario.units.iter().filter(|u| u.node == node) {
            write(&dir.join(&unit.name), &unit.text)?;
        }
        Ok(())
    }

    async fn start_node_systemd(&mut self, scenario: &Scenario, node: &str) -> Result<(), String> {
        create_dir(&self.node_dir(node))?;
        let bus_address = self.start_bus(node).await?;
        let conn = dbus::connect(&bus_address)
            .await
            .map_err(|e| format!("cannot connect to {node}'s bus at {bus_address}: {e}"))?;
        self.nodes.insert(
            node.to_string(),
            Node {
                bus_address: bus_address.clone(),
                conn,
            },
        );
        self.install_units(scenario, node)?;
        let mut cmd = self.command("systemd-emulator", &bus_address);
        cmd.arg("--unit-dir").arg(self.node_dir(node).join("units"));
        let log = self.node_dir(node).join("systemd-emulator.log");
        let name = format!("{node}/systemd-emulator");
        self.daemons
            .spawn(&name, Stage::Systemd, cmd, &log, &self.run_id, false)?;
        self.wait_for_name(node, dbus::SYSTEMD, &name).await
    }

    fn bus_of(&self, node: &str) -> Result<String, String> {
        self.nodes
            .get(node)
            .map(|n| n.bus_address.clone())
            .ok_or_else(|| format!("unknown node {node}"))
    }

    async fn start_controller(&mut self, scenario: &Scenario, port: u16) -> Result<(), String> {
        let node = scenario.controller.clone();
        let conf = self.work_path.join("controller.conf");
        write(
            &conf,
            &config::controller_config(port, &scenario.controller_conf),
        )?;
        let mut cmd = self.command("bluechi-controller", &self.bus_of(&node)?);
        cmd.arg("-c").arg(&conf);
        let log = self.node_dir(&node).join("bluechi-controller.log");
        let name = format!("{node}/bluechi-controller");
        self.daemons
            .spawn(&name, Stage::BlueChi, cmd, &log, &self.run_id, false)?;
        self.wait_for_name(&node, dbus::BLUECHI, &name).await
    }

    fn start_agent(&mut self, scenario: &Scenario, node: &str, port: u16) -> Result<(), String> {
        let extra = scenario
            .agent_confs
            .iter()
            .find(|(n, _)| n == node)
            .map_or("", |(_, t)| t.as_str());
        let conf = self.node_dir(node).join("agent.conf");
        write(&conf, &config::agent_config(node, port, extra))?;
        let mut cmd = self.command("bluechi-agent", &self.bus_of(node)?);
        cmd.arg("-c").arg(&conf);
        let log = self.node_dir(node).join("bluechi-agent.log");
        let name = format!("{node}/bluechi-agent");
        self.daemons
            .spawn(&name, Stage::BlueChi, cmd, &log, &self.run_id, false)?;
        Ok(())
    }

    async fn wait_all_online(&mut self, scenario: &Scenario) -> Result<(), String> {
        let conn = self
            .nodes
            .get(&scenario.controller)
            .map(|n| n.conn.clone())
            .ok_or_else(|| "controller node has no bus".to_string())?;
        let wanted = scenario.nodes.clone();
        let daemons = &mut self.daemons;
        dbus::poll_until(self.ready_timeout, "every node to be online", || {
            let dead = daemons.first_exited();
            let conn = conn.clone();
            let wanted = wanted.clone();
            async move {
                if let Some(d) = dead {
                    return Err(ProbeError::Fatal(format!("{d} exited")));
                }
                let nodes = dbus::list_nodes(&conn)
                    .await
                    .map_err(|e| ProbeError::Retry(e.to_string()))?;
                let offline: Vec<String> = wanted
                    .iter()
                    .filter(|w| !nodes.iter().any(|(n, s)| n == *w && s == "online"))
                    .cloned()
                    .collect();
                if offline.is_empty() {
                    Ok(true)
                } else {
                    Err(ProbeError::Retry(format!(
                        "not online: {}",
                        offline.join(", ")
                    )))
                }
            }
        })
        .await
    }
}

fn create_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl Backend for LocalBackend {
    async fn start(&mut self, scenario: &Scenario) -> Result<(), String> {
        self.controller_node = scenario.controller.clone();
        for node in &scenario.nodes {
            self.start_node_systemd(scenario, node).await?;
        }
        let port = config::free_port()?;
        self.start_controller(scenario, port).await?;
        for node in &scenario.nodes {
            self.start_agent(scenario, node, port)?;
        }
        self.check_alive()?;
        self.wait_all_online(scenario).await
    }

    async fn run_command(
        &self,
        argv: &[String],
        deadline: Duration,
    ) -> Result<CommandOutput, String> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| "empty command".to_string())?;
        let bus = self.bus_of(&self.controller_node)?;
        let mut cmd = tokio::process::Command::new(self.bin_dir.join(program));
        cmd.args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env(sweep::MARKER_VAR, &self.run_id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        let pid = child.id();
        match tokio::time::timeout(deadline, child.wait_with_output()).await {
            Ok(Ok(out)) => {
                use std::os::unix::process::ExitStatusExt;
                let exit = match (out.status.code(), out.status.signal()) {
                    (Some(c), _) => Exit::Code(c),
                    (None, Some(s)) => Exit::Signal(s),
                    (None, None) => Exit::Code(-1),
                };
                Ok(CommandOutput {
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                    exit,
                })
            }
            Ok(Err(e)) => Err(format!("{program} failed: {e}")),
            Err(_) => {
                // kill_on_drop got the leader; the group takes whatever it spawned.
                if let Some(pid) = pid {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                Err(format!(
                    "{program} did not finish within {:.0}s and was killed",
                    deadline.as_secs_f64()
                ))
            }
        }
    }

    async fn unit_property(
        &self,
        node: &str,
        unit: &str,
        property: &str,
    ) -> Result<String, String> {
        let conn = &self
            .nodes
            .get(node)
            .ok_or_else(|| format!("unknown node {node}"))?
            .conn;
        dbus::unit_property(conn, unit, property).await
    }

    fn log_tails(&self, lines: usize) -> Vec<(String, String)> {
        self.daemons
            .iter()
            .map(|d| (d.name.clone(), procs::tail(&d.log, lines)))
            .collect()
    }

    fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        // Bus connections first, so nothing of ours holds a socket during shutdown.
        self.nodes.clear();
        self.daemons.stop_all();
        let stray = sweep::kill_marked(&self.run_id, SWEEP_DEADLINE);
        if !stray.is_empty() {
            eprintln!(
                "teardown: killed {} stray process(es) of run {}: {stray:?}",
                stray.len(),
                self.run_id
            );
        }
        if let Some(dir) = self.dir.take() {
            if self.keep {
                let path = dir.keep();
                eprintln!("kept run directory {}", path.display());
            } else if let Err(e) = dir.close() {
                eprintln!("teardown: cannot remove {}: {e}", self.work_path.display());
            }
        }
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn work_dir(&self) -> &Path {
        &self.work_path
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        self.teardown();
    }
}
