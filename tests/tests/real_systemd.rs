//! Controller and agent against REAL systemd 252 (PID 1 in a Podman container), the normal
//! deployment: the agent runs as root and talks to systemd over `/run/systemd/private`, where
//! systemd signs its messages with a well-known name that zbus alone rejects.
//!
//! Needs podman and the conformance image (`localhost/bluechi-conformance-systemd252`); without
//! them the test prints why and passes. The binaries come from the test's own target directory
//! (or `BLUECHI_BIN_DIR`): build them first with
//! `cargo build -p bluechi-controller -p bluechi-agent -p bluechictl`.

mod support_podman;

use std::path::Path;

use support_podman::{cannot_run, policy_volume, skip_reason, text, Container, IMAGE};

const BIN: &str = "/opt/bluechi/bin";
const NODE: &str = "realsd";
const UNIT: &str = "bluechi-realsd-oneshot.service";

fn start_container(bin: &Path) -> Container {
    let mut c = Container::start(
        "real-systemd",
        &[
            "--systemd=always".to_string(),
            "--network=none".to_string(),
            "-v".to_string(),
            format!("{}:{BIN}:ro", bin.display()),
            "-v".to_string(),
            policy_volume("crates/bluechi-controller/dbus/org.eclipse.bluechi.conf"),
            "-v".to_string(),
            policy_volume("crates/bluechi-agent/dbus/org.eclipse.bluechi.Agent.conf"),
            IMAGE.to_string(),
            "/lib/systemd/systemd".to_string(),
        ],
    );
    c.diagnostics =
        "journalctl --no-pager -o cat -u bluechi-controller -u bluechi-agent | tail -n 60"
            .to_string();
    c
}

fn bluechictl(c: &Container, args: &str) -> std::process::Output {
    c.sh(&format!("{BIN}/bluechictl {args}"))
}

#[test]
fn controller_and_agent_drive_real_systemd_252() {
    if let Some(why) = skip_reason() {
        cannot_run("real_systemd", &why);
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
    let c = start_container(&bin);
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

    let units = text(&bluechictl(&c, &format!("list-units {NODE}")));
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

    let start = bluechictl(&c, &format!("start {NODE} {UNIT}"));
    assert!(start.status.success(), "start failed: {}", text(&start));
    assert_eq!(
        String::from_utf8_lossy(&start.stdout),
        format!("Unit {UNIT} StartUnit operation result: done\n")
    );
    assert_eq!(c.sh_ok(&format!("systemctl is-active {UNIT}")), "active\n");
    c.wait_for("the state change in monitor", "cat /tmp/monitor.log", |o| {
        o.contains("Unit state changed (reason: real)\n\tActive: active (exited)")
    });

    let stop = bluechictl(&c, &format!("stop {NODE} {UNIT}"));
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
