//! Local-process backend: per node a private dbus-daemon standing in for the system bus, a
//! `systemd-emulator` and an agent; the controller on its node; everything under one temporary
//! directory. Each agent reaches the controller through a relay, so a node can be cut off.

mod config;
mod procs;
mod relay;
pub mod sweep;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bluechi_testkit::bus;
use bluechi_testkit::poll::{self, Outcome, Step};
use zbus::Connection;

use super::plan::Endpoint;
use super::{
    BackendKind, BackendOptions, Daemon, DaemonAction, HostError, HostResult, NodeAction,
    UnitFileChange,
};
use crate::dbus;
use crate::paths;
use crate::transcript::{CommandOutput, Exit};
use procs::{Daemons, Launch, Spec, Stage};
use relay::{End, Relay};

/// How long startup may take per readiness check unless configured otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(15);
const SWEEP_DEADLINE: Duration = Duration::from_secs(3);
const SUPERVISE_EVERY: Duration = Duration::from_millis(50);
/// Most of a background command's output kept for the transcript.
const CAPTURE_LIMIT: usize = 256 * 1024;

/// A marker no other run of any process shares.
pub fn unique_run_id() -> String {
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

/// What the nodes of one local run share: the run directory, the processes, the supervisor
/// and the controller's port.
pub struct LocalRun {
    opts: BackendOptions,
    run_id: String,
    work_path: PathBuf,
    /// `None` once removed (or handed over to the user with `--keep`).
    dir: Option<tempfile::TempDir>,
    procs: Arc<Mutex<Daemons>>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
    controller_port: u16,
    torn_down: bool,
}

fn lock(procs: &Mutex<Daemons>) -> MutexGuard<'_, Daemons> {
    // A panic while holding the lock leaves consistent data; keep going.
    procs.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalRun {
    /// Prepares a run: checks the binaries and creates the run's directory. Nothing runs yet.
    pub fn new(opts: &BackendOptions) -> Result<Self, String> {
        paths::check_binaries(&opts.bin_dir)?;
        let dir = tempfile::Builder::new()
            .prefix("bluechi-scenario-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        Ok(LocalRun {
            opts: opts.clone(),
            run_id: unique_run_id(),
            work_path: dir.path().to_path_buf(),
            dir: Some(dir),
            procs: Arc::new(Mutex::new(Daemons::default())),
            supervisor: None,
            controller_port: config::free_port()?,
            torn_down: false,
        })
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn work_dir(&self) -> &Path {
        &self.work_path
    }

    /// `UseUDS=false`: there is no /run/bluechi to listen in.
    pub fn controller_keys(&self) -> &'static str {
        "UseUDS=false\n"
    }

    pub fn controller_port(&self) -> u16 {
        self.controller_port
    }

    /// Starts restarting killed daemons, as their units' `Restart=on-abnormal` would.
    pub fn start_supervisor(&mut self) {
        let procs = self.procs.clone();
        let run_id = self.run_id.clone();
        self.supervisor = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(SUPERVISE_EVERY).await;
                for name in lock(&procs).supervise(&run_id) {
                    eprintln!("{name} was killed; started again (Restart=on-abnormal)");
                }
            }
        }));
    }

    /// The first process that died during startup, if any.
    pub fn first_exited(&self) -> Option<String> {
        lock(&self.procs).first_exited()
    }

    /// Starts the node's bus and emulator with its unit files; returns its host once systemd
    /// answers on the bus.
    pub async fn create_node(
        &self,
        node: &str,
        units: &[(String, String)],
        is_controller: bool,
    ) -> Result<LocalHost, String> {
        let dir = self.work_path.join(node);
        create_dir(&dir.join("units"))?;
        let bus_address = self.start_bus(node, &dir).await?;
        let conn = dbus::connect(&bus_address)
            .await
            .map_err(|e| format!("cannot connect to {node}'s bus at {bus_address}: {e}"))?;
        let host = LocalHost {
            node: node.to_string(),
            dir,
            opts: self.opts.clone(),
            run_id: self.run_id.clone(),
            bus_address,
            conn,
            procs: self.procs.clone(),
            relay: None,
            is_controller,
            controller_conf: self.work_path.join("controller.conf"),
        };
        host.install_shipped_units()?;
        for (name, text) in units {
            host.write_unit_file(name, text)?;
        }
        let spec = host.spec(
            "systemd-emulator",
            vec![
                "--unit-dir".into(),
                host.dir.join("units").display().to_string(),
            ],
        );
        host.launch("systemd-emulator", Stage::Systemd, spec, false)?;
        host.wait_for_name(dbus::SYSTEMD, "systemd-emulator", self.opts.ready_timeout)
            .await?;
        Ok(host)
    }

    async fn start_bus(&self, node: &str, dir: &Path) -> Result<String, String> {
        let conf = dir.join(bus::CONFIG);
        write(&conf, &bus::config(&dir.join(bus::SOCKET)))?;
        let spec = Spec {
            program: "dbus-daemon".into(),
            args: bus::daemon_args(&conf).into(),
            env: Vec::new(),
        };
        let name = format!("{node}/dbus-daemon");
        let stdout = {
            let mut procs = lock(&self.procs);
            let d = procs.spawn(
                Launch {
                    name: name.clone(),
                    node,
                    stage: Stage::Bus,
                    spec,
                    log: dir.join(bus::LOG),
                    pipe_stdout: true,
                    supervised: false,
                },
                &self.run_id,
            )?;
            d.take_stdout()
                .ok_or_else(|| format!("{name}: no stdout pipe"))?
        };
        let timeout = self.opts.ready_timeout;
        tokio::task::spawn_blocking(move || bus::read_address(stdout, timeout))
            .await
            .map_err(|e| format!("{name}: address reader failed: {e}"))?
            // The kit's messages start with "dbus-daemon": that becomes "{node}/dbus-daemon".
            .map_err(|e| format!("{node}/{e}"))
    }

    /// Where `node`'s agent connects: a relay of its own in front of the controller.
    pub async fn agent_endpoint(&self, host: &mut LocalHost) -> Result<Endpoint, String> {
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, self.controller_port));
        let relay = Relay::start(target).await?;
        // Without IPv6 on this machine `${ControllerIPv6}` stays empty, and an agent told to
        // use it fails at start-up naming its ControllerAddress.
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: relay.port(),
            ipv6: if relay.has_v6() { "::1" } else { "" }.into(),
        };
        host.relay = Some(relay);
        Ok(endpoint)
    }

    pub fn log_tails(&self, lines: usize) -> Vec<(String, String)> {
        lock(&self.procs)
            .iter()
            .map(|d| (d.name.clone(), procs::tail(&d.log, lines)))
            .collect()
    }

    /// Stops everything and removes the run directory (unless kept). Idempotent.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        if let Some(s) = self.supervisor.take() {
            s.abort();
        }
        lock(&self.procs).stop_all();
        let stray = sweep::kill_marked(&self.run_id, SWEEP_DEADLINE);
        if !stray.is_empty() {
            eprintln!(
                "teardown: killed {} stray process(es) of run {}: {stray:?}",
                stray.len(),
                self.run_id
            );
        }
        if let Some(dir) = self.dir.take() {
            if self.opts.keep {
                let path = dir.keep();
                eprintln!("kept run directory {}", path.display());
            } else if let Err(e) = dir.close() {
                eprintln!("teardown: cannot remove {}: {e}", self.work_path.display());
            }
        }
    }
}

impl Drop for LocalRun {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// One node of a local run.
pub struct LocalHost {
    node: String,
    dir: PathBuf,
    opts: BackendOptions,
    run_id: String,
    bus_address: String,
    conn: Connection,
    procs: Arc<Mutex<Daemons>>,
    relay: Option<Relay>,
    is_controller: bool,
    controller_conf: PathBuf,
}

/// Programs a scenario may run on a node, and where the local backend finds them: ours in
/// the build, the D-Bus and socket tools of the machine (a node shares its network namespace).
fn local_program(bin_dir: &Path, program: &str) -> Option<PathBuf> {
    match program {
        "bluechictl" | "bluechi-is-online" | "systemctl" => Some(bin_dir.join(program)),
        "dbus-send" | "ss" => Some(PathBuf::from(program)),
        _ => None,
    }
}

impl LocalHost {
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The node's bus (the system bus of its daemons and commands).
    pub fn bus_address(&self) -> &str {
        &self.bus_address
    }

    pub fn bus(&self) -> &Connection {
        &self.conn
    }

    /// The node's directory: `units/`, `agent.conf`, logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn spec(&self, program: &str, args: Vec<String>) -> Spec {
        Spec {
            program: self.opts.bin_dir.join(program),
            args,
            env: vec![(
                "DBUS_SYSTEM_BUS_ADDRESS".to_string(),
                self.bus_address.clone(),
            )],
        }
    }

    fn process_name(&self, program: &str) -> String {
        format!("{}/{program}", self.node)
    }

    fn launch(
        &self,
        program: &str,
        stage: Stage,
        spec: Spec,
        supervised: bool,
    ) -> Result<(), String> {
        let launch = Launch {
            name: self.process_name(program),
            node: &self.node,
            stage,
            spec,
            log: self.dir.join(format!("{program}.log")),
            pipe_stdout: false,
            supervised,
        };
        lock(&self.procs).spawn(launch, &self.run_id).map(|_| ())
    }

    fn install_shipped_units(&self) -> Result<(), String> {
        for shipped in ["bluechi-proxy@.service", "bluechi-dep@.service"] {
            let src = self.opts.units_dir.join(shipped);
            let text = std::fs::read_to_string(&src).map_err(|e| {
                format!(
                    "cannot read the agent's shipped unit {}: {e}",
                    src.display()
                )
            })?;
            self.write_unit_file(shipped, &config::relocate_unit(&text, &self.opts.bin_dir))?;
        }
        Ok(())
    }

    fn unit_path(&self, name: &str) -> PathBuf {
        self.dir.join("units").join(name)
    }

    fn write_unit_file(&self, name: &str, text: &str) -> Result<(), String> {
        let path = self.unit_path(name);
        if let Some(parent) = path.parent() {
            create_dir(parent)?;
        }
        // Replace a mask (a link to /dev/null) instead of writing through it.
        let _ = std::fs::remove_file(&path);
        write(&path, text)
    }

    /// Where this node's daemon reads its configuration.
    pub fn config_path(&self, daemon: Daemon) -> PathBuf {
        match daemon {
            Daemon::Controller => self.controller_conf.clone(),
            Daemon::Agent => self.dir.join("agent.conf"),
        }
    }

    pub fn write_config(&self, daemon: Daemon, text: &str) -> HostResult<()> {
        Ok(write(&self.config_path(daemon), text)?)
    }

    pub async fn change_unit_file(&self, change: &UnitFileChange) -> HostResult<()> {
        match change {
            UnitFileChange::Write { name, text } => self.write_unit_file(name, text)?,
            UnitFileChange::Remove { name } => {
                let path = self.unit_path(name);
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            }
            UnitFileChange::Mask { name } => {
                let path = self.unit_path(name);
                let _ = std::fs::remove_file(&path);
                std::os::unix::fs::symlink("/dev/null", &path)
                    .map_err(|e| format!("cannot mask {}: {e}", path.display()))?;
            }
        }
        Ok(())
    }

    pub async fn daemon(&self, daemon: Daemon, action: DaemonAction) -> HostResult<()> {
        if daemon == Daemon::Controller && !self.is_controller {
            return Err(HostError::Failed(format!(
                "{} does not run the controller",
                self.node
            )));
        }
        let name = self.process_name(daemon.program());
        let known = lock(&self.procs).find_mut(&name).is_some();
        match (action, known) {
            (DaemonAction::Start, false) => {
                let conf = self.config_path(daemon).display().to_string();
                let spec = self.spec(daemon.program(), vec!["-c".into(), conf]);
                self.launch(daemon.program(), Stage::BlueChi, spec, true)?;
            }
            (_, false) => {
                return Err(HostError::Failed(format!("{name} was never started")));
            }
            (DaemonAction::Start, true) => lock(&self.procs).start(&name, &self.run_id)?,
            (DaemonAction::Stop, true) => lock(&self.procs).stop(&name)?,
            (DaemonAction::Kill, true) => lock(&self.procs).kill(&name)?,
            (DaemonAction::Restart, true) => {
                let mut procs = lock(&self.procs);
                procs.stop(&name)?;
                procs.start(&name, &self.run_id)?;
            }
        }
        if daemon == Daemon::Controller
            && matches!(action, DaemonAction::Start | DaemonAction::Restart)
        {
            self.wait_for_name(dbus::BLUECHI, daemon.program(), self.opts.ready_timeout)
                .await?;
        }
        Ok(())
    }

    /// Kills a daemon without the restart its unit would give it; `daemon(.., Start)` brings
    /// it back.
    pub fn crash(&self, daemon: Daemon) -> HostResult<()> {
        Ok(lock(&self.procs).crash(&self.process_name(daemon.program()))?)
    }

    /// The daemon's pid while it runs.
    pub fn pid(&self, daemon: Daemon) -> Option<i32> {
        lock(&self.procs)
            .find_mut(&self.process_name(daemon.program()))
            .and_then(|d| d.pid())
    }

    pub async fn node_action(&self, action: NodeAction) -> HostResult<()> {
        match action {
            NodeAction::Pause | NodeAction::Resume => {
                let signal = if action == NodeAction::Pause {
                    nix::sys::signal::Signal::SIGSTOP
                } else {
                    nix::sys::signal::Signal::SIGCONT
                };
                for pid in lock(&self.procs).node_processes(&self.node) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
                }
                Ok(())
            }
            NodeAction::Disconnect | NodeAction::Reconnect => {
                let relay = self.relay.as_ref().ok_or_else(|| {
                    HostError::Failed(format!("{} has no network link to cut", self.node))
                })?;
                relay.set_cut(End::Own, action == NodeAction::Disconnect);
                Ok(())
            }
        }
    }

    /// The controller's node went off the network (or came back): this node's link to it is
    /// cut whatever this node's own state.
    pub fn set_controller_cut(&self, cut: bool) {
        if let Some(r) = &self.relay {
            r.set_cut(End::Controller, cut);
        }
    }

    fn command(&self, argv: &[String]) -> HostResult<tokio::process::Command> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| HostError::Failed("empty command".into()))?;
        let path =
            local_program(&self.opts.bin_dir, program).ok_or_else(|| HostError::Unsupported {
                backend: BackendKind::Local,
                what: format!("running {program} (no systemd tools on the machine)"),
            })?;
        let mut cmd = tokio::process::Command::new(path);
        cmd.args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_address)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env(sweep::MARKER_VAR, &self.run_id)
            .stdin(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        Ok(cmd)
    }

    pub async fn run(&self, argv: &[String], deadline: Duration) -> HostResult<CommandOutput> {
        let mut cmd = self.command(argv)?;
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let program = &argv[0];
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        let pid = child.id();
        match tokio::time::timeout(deadline, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(CommandOutput {
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                exit: exit_of(out.status),
            }),
            Ok(Err(e)) => Err(HostError::Failed(format!("{program} failed: {e}"))),
            Err(_) => {
                // kill_on_drop got the leader; the group takes whatever it spawned.
                if let Some(pid) = pid {
                    kill_group(pid, nix::sys::signal::Signal::SIGKILL);
                }
                Err(HostError::Failed(format!(
                    "{program} did not finish within {:.0}s and was killed",
                    deadline.as_secs_f64()
                )))
            }
        }
    }

    /// Starts `argv` in the background, its output in files of the node's directory.
    pub async fn spawn(&self, argv: &[String], tag: &str) -> HostResult<LocalBackground> {
        let mut cmd = self.command(argv)?;
        let out = self.dir.join(format!("capture-{tag}.out"));
        let err = self.dir.join(format!("capture-{tag}.err"));
        let file = |p: &Path| {
            std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
        };
        cmd.stdout(file(&out)?).stderr(file(&err)?);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
        Ok(LocalBackground { child, out, err })
    }

    pub async fn unit_property(&self, unit: &str, property: &str) -> HostResult<String> {
        Ok(dbus::unit_property(&self.conn, unit, property).await?)
    }

    /// Polls until `name` has an owner on the node's bus; fails early if `who` (a program of
    /// this node) died, whatever other daemons of the run are doing.
    async fn wait_for_name(&self, name: &str, who: &str, deadline: Duration) -> Result<(), String> {
        let what = format!("{who} to own {name} on {}'s bus", self.node);
        let procs = self.procs.clone();
        let process = self.process_name(who);
        poll::until(what, deadline, || {
            let dead = lock(&procs).gone(&process).then(|| process.clone());
            let conn = self.conn.clone();
            async move {
                if let Some(d) = dead {
                    return Step::Fail(format!("{d} exited"));
                }
                dbus::name_has_owner(&conn, name).await.into_step()
            }
        })
        .await
        .map_err(|e| e.to_string())
    }
}

/// A background command on the local backend.
pub struct LocalBackground {
    child: tokio::process::Child,
    out: PathBuf,
    err: PathBuf,
}

impl LocalBackground {
    /// Interrupts the command (SIGINT, as Ctrl-C would), waits for it up to `grace`, kills it
    /// after that, and returns what it printed.
    pub async fn finish(mut self, grace: Duration) -> HostResult<CommandOutput> {
        if let Some(pid) = self.child.id() {
            kill_group(pid, nix::sys::signal::Signal::SIGINT);
        }
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(s)) => s,
            _ => {
                if let Some(pid) = self.child.id() {
                    kill_group(pid, nix::sys::signal::Signal::SIGKILL);
                }
                self.child
                    .wait()
                    .await
                    .map_err(|e| format!("cannot reap a background command: {e}"))?
            }
        };
        Ok(CommandOutput {
            stdout: read_capped(&self.out),
            stderr: read_capped(&self.err),
            exit: exit_of(status),
        })
    }

    pub async fn wait(mut self, deadline: Duration) -> HostResult<CommandOutput> {
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(Ok(status)) => Ok(CommandOutput {
                stdout: read_capped(&self.out),
                stderr: read_capped(&self.err),
                exit: exit_of(status),
            }),
            Ok(Err(e)) => Err(HostError::Failed(format!("cannot wait for it: {e}"))),
            Err(_) => {
                if let Some(pid) = self.child.id() {
                    kill_group(pid, nix::sys::signal::Signal::SIGKILL);
                }
                Err(HostError::Failed(format!(
                    "it did not exit within {:.1}s; output so far:\n{}",
                    deadline.as_secs_f64(),
                    read_capped(&self.out)
                )))
            }
        }
    }

    /// What it printed so far (for `ready` checks).
    pub fn output_so_far(&self) -> String {
        read_capped(&self.out)
    }
}

fn read_capped(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    if bytes.len() <= CAPTURE_LIMIT {
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    let mut s = String::from_utf8_lossy(&bytes[..CAPTURE_LIMIT]).into_owned();
    s.push_str(&format!("\n--- output cut at {CAPTURE_LIMIT} bytes\n"));
    s
}

fn kill_group(pid: u32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), signal);
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signal(s),
        (None, None) => Exit::Code(-1),
    }
}

fn create_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
