//! One node in a Podman container: files are written and commands run with `exec`, daemons
//! are the installed units, faults are `podman pause` and network disconnects.

use std::time::{Duration, Instant};

use testcontainers::core::ExecCommand;
use testcontainers::{ContainerAsync, GenericImage};

use super::service::podman_ok;
use crate::backend::{
    BackendKind, Daemon, DaemonAction, HostError, HostResult, NodeAction, UnitFileChange,
};
use crate::transcript::{CommandOutput, Exit};

const POLL: Duration = Duration::from_millis(50);
const UNIT_DIR: &str = "/etc/systemd/system";

pub struct PodmanHost {
    kind: BackendKind,
    node: String,
    name: String,
    network: String,
    /// Taken on drop (see `Drop`).
    container: Option<ContainerAsync<GenericImage>>,
    is_controller: bool,
    ready_timeout: Duration,
}

/// testcontainers removes a container when its handle drops, from inside a Tokio runtime; a
/// cluster may be dropped outside one (a test after `block_on`), so we lend it one then.
impl Drop for PodmanHost {
    fn drop(&mut self) {
        let Some(container) = self.container.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(container);
            return;
        }
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(async move { drop(container) }),
            // No runtime to lend: the run's teardown removes it by label instead.
            Err(_) => std::mem::forget(container),
        }
    }
}

/// A status as a shell or `timeout` reports it: 128+N is a death by signal N, as the local
/// backend reports it (a program exiting with such a code on purpose reads the same).
fn exit_of_shell_code(code: i32) -> Exit {
    if code > 128 && code < 128 + 65 {
        Exit::Signal(code - 128)
    } else {
        Exit::Code(code)
    }
}

/// `'text'` for sh, whatever it holds.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn quote_all(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl PodmanHost {
    pub(super) fn new(
        kind: BackendKind,
        node: &str,
        name: String,
        network: String,
        container: ContainerAsync<GenericImage>,
        is_controller: bool,
        ready_timeout: Duration,
    ) -> Self {
        PodmanHost {
            kind,
            node: node.to_string(),
            name,
            network,
            container: Some(container),
            is_controller,
            ready_timeout,
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// The container's name, which is also its name on the run's network.
    pub fn container_name(&self) -> &str {
        &self.name
    }

    fn container(&self) -> Result<&ContainerAsync<GenericImage>, String> {
        self.container
            .as_ref()
            .ok_or_else(|| format!("{} is gone", self.name))
    }

    /// Runs `argv` in the container, killed (and reported as such) after `deadline`.
    async fn exec(&self, argv: &[String], deadline: Duration) -> HostResult<CommandOutput> {
        let secs = deadline.as_secs().max(1).to_string();
        let mut full = vec!["timeout".to_string(), "-s".into(), "KILL".into(), secs];
        full.extend(argv.iter().cloned());
        let started = Instant::now();
        let run = async {
            let mut r = self
                .container()?
                .exec(ExecCommand::new(full))
                .await
                .map_err(|e| format!("exec in {}: {e}", self.name))?;
            let stdout = r.stdout_to_vec().await.map_err(|e| e.to_string())?;
            let stderr = r.stderr_to_vec().await.map_err(|e| e.to_string())?;
            let mut code = r.exit_code().await.map_err(|e| e.to_string())?;
            // The exit code is known a moment after the streams end.
            let wait = Instant::now();
            while code.is_none() && wait.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                code = r.exit_code().await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>((stdout, stderr, code))
        };
        let (stdout, stderr, code) = tokio::time::timeout(deadline + Duration::from_secs(10), run)
            .await
            .map_err(|_| format!("{} did not answer in time", argv[0]))??;
        let code =
            code.ok_or_else(|| format!("{} on {}: no exit status", argv[0], self.node))? as i32;
        if code == 137 && started.elapsed() >= deadline {
            return Err(HostError::Failed(format!(
                "{} did not finish within {:.0}s and was killed",
                argv[0],
                deadline.as_secs_f64()
            )));
        }
        Ok(CommandOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            exit: exit_of_shell_code(code),
        })
    }

    /// `sh -c SCRIPT`; fails unless it exits 0, returning its stdout.
    async fn sh(&self, script: &str) -> HostResult<String> {
        let argv = ["sh".to_string(), "-c".into(), script.to_string()];
        let out = self.exec(&argv, super::EXEC_DEADLINE).await?;
        match out.exit {
            Exit::Code(0) => Ok(out.stdout),
            _ => Err(HostError::Failed(format!(
                "{} on {}: {}{}",
                script,
                self.node,
                out.stdout,
                out.stderr.trim()
            ))),
        }
    }

    async fn write_file(&self, path: &str, text: &str) -> HostResult<()> {
        let dir = path.rsplit_once('/').map_or("/", |(d, _)| d);
        self.sh(&format!(
            "mkdir -p {} && rm -f {p} && echo {} | base64 -d > {p}",
            quote(dir),
            base64(text.as_bytes()),
            p = quote(path)
        ))
        .await
        .map(|_| ())
    }

    /// Polls until the node's manager is up (systemd: running or degraded; the emulator:
    /// its private socket, bound once the bus it joins is up).
    pub(super) async fn wait_booted(&self) -> Result<(), String> {
        let probe = match self.kind {
            BackendKind::PodmanSystemd => {
                "case $(systemctl is-system-running) in running|degraded) exit 0;; esac; exit 1"
            }
            _ => "test -S /run/systemd/private",
        };
        self.poll(probe, "the node's manager to be up").await
    }

    async fn poll(&self, script: &str, what: &str) -> Result<(), String> {
        let start = Instant::now();
        loop {
            match self.sh(script).await {
                Ok(_) => return Ok(()),
                Err(e) if start.elapsed() >= self.ready_timeout => {
                    return Err(format!(
                        "{}: timed out after {:.0}s waiting for {what} ({e})",
                        self.node,
                        self.ready_timeout.as_secs_f64()
                    ))
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    pub(super) async fn install_units(&self, units: &[(String, String)]) -> Result<(), String> {
        for (name, text) in units {
            self.write_file(&format!("{UNIT_DIR}/{name}"), text).await?;
        }
        self.sh("systemctl daemon-reload").await?;
        Ok(())
    }

    pub fn config_path(&self, daemon: Daemon) -> std::path::PathBuf {
        let dir = match daemon {
            Daemon::Controller => "controller.conf.d",
            Daemon::Agent => "agent.conf.d",
        };
        std::path::PathBuf::from(format!("/etc/bluechi/{dir}/50-scenario.conf"))
    }

    pub async fn write_config(&self, daemon: Daemon, text: &str) -> HostResult<()> {
        let path = self.config_path(daemon).display().to_string();
        self.write_file(&path, text).await
    }

    pub async fn change_unit_file(&self, change: &UnitFileChange) -> HostResult<()> {
        match change {
            UnitFileChange::Write { name, text } => {
                self.write_file(&format!("{UNIT_DIR}/{name}"), text).await
            }
            UnitFileChange::Remove { name } => self
                .sh(&format!("rm -r {}", quote(&format!("{UNIT_DIR}/{name}"))))
                .await
                .map(|_| ()),
            UnitFileChange::Mask { name } => self
                .sh(&format!(
                    "ln -sf /dev/null {}",
                    quote(&format!("{UNIT_DIR}/{name}"))
                ))
                .await
                .map(|_| ()),
        }
    }

    pub async fn daemon(&self, daemon: Daemon, action: DaemonAction) -> HostResult<()> {
        if daemon == Daemon::Controller && !self.is_controller {
            return Err(HostError::Failed(format!(
                "{} does not run the controller",
                self.node
            )));
        }
        let unit = format!("{}.service", daemon.program());
        let script = match action {
            DaemonAction::Start => format!("systemctl start {unit}"),
            DaemonAction::Stop => format!("systemctl stop {unit}"),
            DaemonAction::Restart => format!("systemctl restart {unit}"),
            // As `systemctl kill -s KILL`; Restart=on-abnormal starts it again.
            DaemonAction::Kill => format!(
                "busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
                 org.freedesktop.systemd1.Manager KillUnit ssi {unit} all 9"
            ),
        };
        self.sh(&script).await?;
        if daemon == Daemon::Controller
            && matches!(action, DaemonAction::Start | DaemonAction::Restart)
        {
            self.poll(
                "busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                 NameHasOwner s org.eclipse.bluechi | grep -q true",
                "the controller to own org.eclipse.bluechi",
            )
            .await?;
        }
        Ok(())
    }

    pub async fn node_action(&self, action: NodeAction) -> HostResult<()> {
        let failed = |e: String| HostError::Failed(format!("{} {}: {e}", action.name(), self.node));
        match action {
            NodeAction::Pause => self
                .container()
                .map_err(failed)?
                .pause()
                .await
                .map_err(|e| failed(e.to_string())),
            NodeAction::Resume => self
                .container()
                .map_err(failed)?
                .unpause()
                .await
                .map_err(|e| failed(e.to_string())),
            NodeAction::Disconnect => {
                podman_ok(&["network", "disconnect", &self.network, &self.name])
                    .map(|_| ())
                    .map_err(failed)
            }
            NodeAction::Reconnect => podman_ok(&["network", "connect", &self.network, &self.name])
                .map(|_| ())
                .map_err(failed),
        }
    }

    pub async fn run(&self, argv: &[String], deadline: Duration) -> HostResult<CommandOutput> {
        self.exec(argv, deadline).await
    }

    pub async fn unit_property(&self, unit: &str, property: &str) -> HostResult<String> {
        let argv = ["systemctl", "show", "-p", property, "--value", unit].map(String::from);
        let out = self.exec(&argv, super::EXEC_DEADLINE).await?;
        match out.exit {
            Exit::Code(0) => Ok(out
                .stdout
                .strip_suffix('\n')
                .unwrap_or(&out.stdout)
                .to_string()),
            _ => Err(HostError::Failed(format!(
                "cannot read {property} of {unit} on {}: {}",
                self.node,
                out.stderr.trim()
            ))),
        }
    }

    /// Starts `argv` in the background inside the container, its output in files there.
    pub async fn spawn(&self, argv: &[String], tag: &str) -> HostResult<PodmanBackground> {
        let base = format!("/run/bluechi-capture-{tag}");
        // A shell starts background commands with SIGINT ignored (and dash has no job control
        // without a tty to undo it): `env --default-signal` gives the command the default
        // action back, so `end` interrupts it as Ctrl-C would on the local backend.
        let script = format!(
            "env --default-signal=INT,QUIT {cmd} > {base}.out 2> {base}.err &\necho $! > {base}.pid\nwait $!\necho $? > {base}.rc\n",
            cmd = quote_all(argv)
        );
        self.write_file(&format!("{base}.sh"), &script).await?;
        self.sh(&format!(
            "rm -f {base}.rc {base}.pid; setsid sh {base}.sh > /dev/null 2>&1 &"
        ))
        .await?;
        let bg = PodmanBackground {
            base,
            container: self.name.clone(),
        };
        // Started once its pid is known: an `end` right after must reach it.
        let start = Instant::now();
        while bg.sh(&format!("test -s {}.pid", bg.base)).is_err() {
            if start.elapsed() > super::EXEC_DEADLINE {
                return Err(HostError::Failed(format!(
                    "{} did not start on {}",
                    argv[0], self.node
                )));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(bg)
    }

    /// The daemons' log lines, for a failure's timeline (synchronous: runs `podman`).
    pub fn log_tail(&self, lines: usize) -> String {
        let n = lines.to_string();
        let out = match self.kind {
            BackendKind::PodmanSystemd => podman_ok(&[
                "exec",
                &self.name,
                "journalctl",
                "--no-pager",
                "-o",
                "short-precise",
                "-n",
                &n,
                "-u",
                "bluechi-controller",
                "-u",
                "bluechi-agent",
            ]),
            _ => podman_ok(&["logs", "--tail", &n, &self.name]),
        };
        out.unwrap_or_else(|e| format!("(no logs: {e})"))
    }
}

/// A background command in a node's container.
pub struct PodmanBackground {
    base: String,
    container: String,
}

impl PodmanBackground {
    fn sh(&self, script: &str) -> Result<String, String> {
        podman_ok(&["exec", &self.container, "sh", "-c", script])
    }

    pub async fn output_so_far(&self) -> String {
        self.sh(&format!("cat {}.out", self.base))
            .unwrap_or_default()
    }

    fn done(&self) -> bool {
        self.sh(&format!("test -e {}.rc", self.base)).is_ok()
    }

    async fn wait_done(&self, deadline: Duration) -> bool {
        let start = Instant::now();
        while !self.done() {
            if start.elapsed() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
        true
    }

    fn collect(&self) -> HostResult<CommandOutput> {
        let read = |ext: &str| {
            self.sh(&format!("cat {}.{ext}", self.base))
                .unwrap_or_default()
        };
        let rc: i32 = read("rc").trim().parse().map_err(|_| {
            HostError::Failed(format!(
                "{}: no exit status in {}.rc",
                self.container, self.base
            ))
        })?;
        let exit = exit_of_shell_code(rc);
        Ok(CommandOutput {
            stdout: read("out"),
            stderr: read("err"),
            exit,
        })
    }

    fn signal(&self, sig: &str) {
        let _ = self.sh(&format!("kill -{sig} $(cat {}.pid)", self.base));
    }

    pub async fn finish(self, grace: Duration) -> HostResult<CommandOutput> {
        self.signal("INT");
        if !self.wait_done(grace).await {
            self.signal("KILL");
            self.wait_done(Duration::from_secs(5)).await;
        }
        self.collect()
    }

    pub async fn wait(self, deadline: Duration) -> HostResult<CommandOutput> {
        if self.wait_done(deadline).await {
            return self.collect();
        }
        self.signal("KILL");
        Err(HostError::Failed(format!(
            "it did not exit within {:.1}s; output so far:\n{}",
            deadline.as_secs_f64(),
            self.output_so_far().await
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
        assert_eq!(
            quote_all(&["x y".to_string(), "z".to_string()]),
            "'x y' 'z'"
        );
    }
}
