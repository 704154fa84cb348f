//! Controller and agent against REAL systemd 252 (PID 1 in a Podman container), the normal
//! deployment: the agent runs as root and talks to systemd over `/run/systemd/private`, where
//! systemd signs its messages with a well-known name that zbus alone rejects.
//!
//! Needs podman and the conformance image (`localhost/bluechi-conformance-systemd252`); without
//! them the test prints why and passes. The binaries come from the test's own target directory
//! (or `BLUECHI_BIN_DIR`): build them first with
//! `cargo build -p bluechi-controller -p bluechi-agent -p bluechictl`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/bluechi-conformance-systemd252";
const BIN: &str = "/opt/bluechi/bin";
const NODE: &str = "realsd";
const UNIT: &str = "bluechi-realsd-oneshot.service";
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

fn podman() -> Command {
    let mut cmd = Command::new("podman");
    // The project's machines need runc and lower ulimits (see containers/containers.conf).
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        cmd.env(
            "CONTAINERS_CONF",
            repo_root().join("containers/containers.conf"),
        );
    }
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Why the test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    match podman().arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Some(format!("podman --version failed: {}", text(&o))),
        Err(e) => return Some(format!("podman not available: {e}")),
    }
    match podman().args(["image", "exists", IMAGE]).status() {
        Ok(s) if s.success() => None,
        _ => Some(format!("image {IMAGE} not built (see ci/conformance.sh)")),
    }
}

/// The running container; removed on every path, including a failed assertion.
struct Container {
    name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.name]).output();
    }
}

impl Container {
    fn start(bin: &Path) -> Container {
        let c = Container {
            name: format!("bluechi-real-systemd-{}", std::process::id()),
        };
        let _ = podman().args(["rm", "-f", "-t", "0", &c.name]).output();
        let root = repo_root();
        let policy = |p: &str| {
            let file = root.join(p);
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            format!(
                "{}:/etc/dbus-1/system.d/{}:ro",
                file.display(),
                name.unwrap_or_default()
            )
        };
        let o = run(podman().args(["run", "-d", "--name", &c.name]).args([
            "--systemd=always",
            "--network=none",
            "-v",
            &format!("{}:{BIN}:ro", bin.display()),
            "-v",
            &policy("crates/bluechi-controller/dbus/org.eclipse.bluechi.conf"),
            "-v",
            &policy("crates/bluechi-agent/dbus/org.eclipse.bluechi.Agent.conf"),
            IMAGE,
            "/lib/systemd/systemd",
        ]));
        assert!(o.status.success(), "podman run failed: {}", text(&o));
        c
    }

    fn sh(&self, script: &str) -> Output {
        run(podman().args(["exec", &self.name, "sh", "-c", script]))
    }

    fn sh_ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(o.status.success(), "`{script}` failed: {}", text(&o));
        text(&o)
    }

    fn bluechictl(&self, args: &str) -> Output {
        self.sh(&format!("{BIN}/bluechictl {args}"))
    }

    /// Polls `script` until its output satisfies `ok`; panics with the last output and the
    /// daemons' journals at the deadline.
    fn wait_for(&self, what: &str, script: &str, ok: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let out = text(&self.sh(script));
            if ok(&out) {
                return out;
            }
            if Instant::now() > end {
                panic!(
                    "timed out waiting for {what}; last output of `{script}`:\n{out}\n{}",
                    self.journals()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn journals(&self) -> String {
        text(
            &self.sh(
                "journalctl --no-pager -o cat -u bluechi-controller -u bluechi-agent | tail -n 60",
            ),
        )
    }
}

#[test]
fn controller_and_agent_drive_real_systemd_252() {
    if let Some(why) = skip_reason() {
        println!("SKIPPED real_systemd: {why}");
        return;
    }
    let bin = scenario_runner::paths::bin_dir().expect("binary directory");
    for b in ["bluechi-controller", "bluechi-agent", "bluechictl"] {
        assert!(
            bin.join(b).is_file(),
            "{b} missing in {}: run `cargo build -p bluechi-controller -p bluechi-agent \
             -p bluechictl` (or set BLUECHI_BIN_DIR)",
            bin.display()
        );
    }
    let c = Container::start(&bin);
    c.wait_for(
        "systemd to finish booting",
        "systemctl is-system-running || true",
        |o| o.contains("running") || o.contains("degraded"),
    );

    c.sh_ok(&format!(
        "mkdir -p /etc/bluechi && \
         printf '[bluechi-controller]\\nControllerPort=842\\nAllowedNodeNames={NODE}\\n\
LogTarget=stderr\\nLogLevel=DEBUG\\n' > /etc/bluechi/controller.conf && \
         printf '[bluechi-agent]\\nNodeName={NODE}\\nControllerHost=127.0.0.1\\n\
ControllerPort=842\\nLogTarget=stderr\\nLogLevel=DEBUG\\n' > /etc/bluechi/agent.conf && \
         printf '[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/true\\n' \
           > /etc/systemd/system/{UNIT} && \
         systemctl daemon-reload && \
         systemd-run --unit=bluechi-controller -p RuntimeDirectory=bluechi \
           {BIN}/bluechi-controller -c /etc/bluechi/controller.conf && \
         systemd-run --unit=bluechi-agent {BIN}/bluechi-agent -c /etc/bluechi/agent.conf"
    ));

    c.wait_for(
        "the node to come online",
        &format!("{BIN}/bluechictl status {NODE}"),
        |o| {
            o.lines()
                .any(|l| l.starts_with(NODE) && l.contains("online"))
        },
    );
    // The agent must be on systemd's private socket, the path that needs the relay.
    c.wait_for(
        "the agent's connection log",
        "journalctl --no-pager -o cat -u bluechi-agent",
        |o| o.contains("Connected to systemd on /run/systemd/private"),
    );

    let units = text(&c.bluechictl(&format!("list-units {NODE}")));
    for unit in ["systemd-journald.service", "-.mount", "dbus.service"] {
        assert!(
            units.lines().any(|l| l.contains(&format!(" {unit} "))),
            "list-units lacks {unit}:\n{units}"
        );
    }

    c.sh_ok(&format!(
        "rm -f /tmp/monitor.log; systemd-run --unit=bluechi-monitor \
         -p StandardOutput=file:/tmp/monitor.log -p StandardError=file:/tmp/monitor.log \
         {BIN}/bluechictl monitor {NODE} {UNIT}"
    ));
    c.wait_for(
        "the monitor to subscribe",
        "cat /tmp/monitor.log 2>/dev/null || true",
        |o| o.contains(&format!("Subscribing to node '{NODE}' and unit '{UNIT}'")),
    );

    let start = c.bluechictl(&format!("start {NODE} {UNIT}"));
    assert!(start.status.success(), "start failed: {}", text(&start));
    assert_eq!(
        String::from_utf8_lossy(&start.stdout),
        format!("Unit {UNIT} StartUnit operation result: done\n")
    );
    assert_eq!(c.sh_ok(&format!("systemctl is-active {UNIT}")), "active\n");
    c.wait_for("the state change in monitor", "cat /tmp/monitor.log", |o| {
        o.contains("Unit state changed (reason: real)\n\tActive: active (exited)")
    });

    let stop = c.bluechictl(&format!("stop {NODE} {UNIT}"));
    assert!(stop.status.success(), "stop failed: {}", text(&stop));
    assert_eq!(
        String::from_utf8_lossy(&stop.stdout),
        format!("Unit {UNIT} StopUnit operation result: done\n")
    );
    let after = c.sh(&format!("systemctl is-active {UNIT}"));
    assert_eq!(String::from_utf8_lossy(&after.stdout), "inactive\n");
    c.wait_for("the stop in monitor", "cat /tmp/monitor.log", |o| {
        o.contains("Active: inactive (dead)")
    });

    // The agent survived all of it (it used to panic on systemd's first reply).
    assert_eq!(
        c.sh_ok("systemctl is-active bluechi-agent bluechi-controller"),
        "active\nactive\n"
    );
}
