//! The emulator as PID 1 of a Podman container (issue #4), judged by real systemd 252 tools and
//! by our BlueChi: systemctl over `/run/systemd/private`, busctl over the system bus, zombie
//! reaping, shutdown on Podman's stop signal, and controller + agent run as emulator units.
//!
//! The emulator needs no `--systemd=always` mounts: it uses no cgroups, and `/run` in the
//! container's own file system is writable for `/run/systemd/{private,system}`. Unit files live
//! in a host directory mounted as `/etc/systemd/system`; markers that must outlive the container
//! go to another one mounted as `/marker`.
//!
//! Needs podman and the conformance image (`localhost/bluechi-conformance-systemd252`); without
//! them the tests print why and pass. The binaries come from the test's own target directory
//! (or `BLUECHI_BIN_DIR`): build them first with `cargo build -p systemd-emulator
//! -p bluechi-controller -p bluechi-agent -p bluechictl`.

mod support_podman;

use std::path::{Path, PathBuf};
use std::process::Output;

use support_podman::{
    cannot_run, podman, policy_volume, poll, run, skip_reason, text, Container, IMAGE,
};

const BIN: &str = "/opt/bluechi/bin";
const EMULATOR: &str = "/usr/local/bin/systemd-emulator";
/// Host directory mounted here; units write markers into it that outlive the container.
const MARKER: &str = "/marker";

/// The binary directory with every binary in `names`, or a panic naming the build command.
fn bin_dir(names: &[&str]) -> PathBuf {
    let bin = scenario_runner::paths::bin_dir().expect("binary directory");
    for b in names {
        assert!(
            bin.join(b).is_file(),
            "{b} missing in {}: run `cargo build -p systemd-emulator -p bluechi-controller \
             -p bluechi-agent -p bluechictl` (or set BLUECHI_BIN_DIR)",
            bin.display()
        );
    }
    bin
}

/// Host-side directories the container mounts: unit files (its /etc/systemd/system) and markers.
struct HostDirs {
    _tmp: tempfile::TempDir,
    units: PathBuf,
    marker: PathBuf,
}

impl HostDirs {
    fn new(units: &[(&str, &str)]) -> HostDirs {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let dirs = HostDirs {
            units: tmp.path().join("units"),
            marker: tmp.path().join("marker"),
            _tmp: tmp,
        };
        for d in [&dirs.units, &dirs.marker] {
            std::fs::create_dir_all(d).expect("create host directory");
        }
        for (name, body) in units {
            std::fs::write(dirs.units.join(name), body).expect("write unit file");
        }
        dirs
    }

    /// `-v` arguments for the unit directory, the marker directory and the emulator binary.
    fn volumes(&self, bin: &Path) -> Vec<String> {
        vec![
            "-v".to_string(),
            format!("{}:/etc/systemd/system", self.units.display()),
            "-v".to_string(),
            format!("{}:{MARKER}", self.marker.display()),
            "-v".to_string(),
            format!("{}:{EMULATOR}:ro", bin.join("systemd-emulator").display()),
        ]
    }
}

/// Waits until the emulator serves its private socket, i.e. systemctl can talk to it.
fn wait_for_emulator(c: &Container) {
    c.wait_for(
        "the emulator's private socket",
        "test -S /run/systemd/private && echo ready",
        |o| o.contains("ready"),
    );
}

fn systemctl(c: &Container, args: &str) -> Output {
    c.sh(&format!("systemctl {args}"))
}

/// Runs `systemctl ARGS` and checks its exit code and exact stdout.
fn expect_systemctl(c: &Container, args: &str, code: i32, stdout: &str) -> Output {
    let o = systemctl(c, args);
    assert_eq!(
        (o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()),
        (Some(code), stdout),
        "systemctl {args}: stderr {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

const ONESHOT: &str = "[Unit]\nDescription=one v1\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
ExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n";
const SIMPLE: &str = "[Service]\nExecStart=/bin/sleep 1000\n";
const FAILING: &str = "[Service]\nType=oneshot\nExecStart=/bin/false\n";
/// The inner shell records its PID, is orphaned when the outer one exits, then exits itself.
const ORPHAN: &str =
    "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh /marker/orphan.sh\n";
const ORPHAN_SH: &str = "/bin/sh -c 'echo $$ > /marker/orphan.pid; exec /bin/sleep 1' &\nexit 0\n";
/// ExecStop= then SIGTERM, each leaving a line in the marker log, in that order.
const STOPPABLE: &str = "[Service]\nExecStart=/bin/sh /marker/stoppable.sh\n\
ExecStop=/bin/sh -c 'echo stop >> /marker/log'\n";
const STOPPABLE_SH: &str =
    "trap 'echo term >> /marker/log; exit 0' TERM\nwhile :; do /bin/sleep 0.1; done\n";

#[test]
fn systemctl_busctl_reaping_and_shutdown_on_emulator_as_pid1() {
    if let Some(why) = skip_reason() {
        cannot_run("emulator_pid1", &why);
        return;
    }
    let bin = bin_dir(&["systemd-emulator"]);
    let host = HostDirs::new(&[
        ("p1-oneshot.service", ONESHOT),
        ("p1-simple.service", SIMPLE),
        ("p1-fail.service", FAILING),
        ("p1-orphan.service", ORPHAN),
        ("p1-stop.service", STOPPABLE),
    ]);
    for (name, body) in [("orphan.sh", ORPHAN_SH), ("stoppable.sh", STOPPABLE_SH)] {
        std::fs::write(host.marker.join(name), body).expect("write script");
    }
    // The bus has to exist before the emulator connects to it (it has no .socket units), so a
    // shell starts dbus-daemon and then becomes the emulator: PID 1 stays the emulator.
    let mut args = vec!["--network=none".to_string()];
    args.extend(host.volumes(&bin));
    args.extend([
        IMAGE.to_string(),
        "/bin/sh".to_string(),
        "-c".to_string(),
        format!("mkdir -p /run/dbus && dbus-daemon --system --fork && exec {EMULATOR} --system"),
    ]);
    let c = Container::start("emulator-pid1", &args);
    wait_for_emulator(&c);
    assert_eq!(c.sh_ok("cat /proc/1/comm"), "systemd-emulato\n");

    // busctl goes through the system bus, where the emulator owns org.freedesktop.systemd1.
    let intro = c.sh_ok("busctl introspect org.freedesktop.systemd1 /org/freedesktop/systemd1");
    for member in ["org.freedesktop.systemd1.Manager", ".StartUnit", ".Version"] {
        assert!(
            intro.contains(member),
            "busctl introspect lacks {member}:\n{intro}"
        );
    }

    // Expected outputs and exit codes are what systemd 252 gives for the same units.
    expect_systemctl(&c, "daemon-reload", 0, "");
    expect_systemctl(&c, "start p1-oneshot.service", 0, "");
    expect_systemctl(&c, "is-active p1-oneshot.service", 0, "active\n");
    expect_systemctl(&c, "start p1-simple.service", 0, "");
    expect_systemctl(
        &c,
        "show -p ActiveState,SubState p1-simple.service",
        0,
        "ActiveState=active\nSubState=running\n",
    );
    let failed = expect_systemctl(&c, "start p1-fail.service", 1, "");
    assert_eq!(
        String::from_utf8_lossy(&failed.stderr),
        "Job for p1-fail.service failed because the control process exited with error code.\n\
         See \"systemctl status p1-fail.service\" and \"journalctl -xeu p1-fail.service\" for \
         details.\n"
    );
    expect_systemctl(&c, "is-active p1-fail.service", 3, "failed\n");
    expect_systemctl(
        &c,
        "show -p Result,ActiveState,SubState p1-fail.service",
        0,
        "Result=exit-code\nActiveState=failed\nSubState=failed\n",
    );
    expect_systemctl(
        &c,
        "list-units --no-legend --plain 'p1-*'",
        0,
        "p1-fail.service    loaded failed failed  p1-fail.service\n\
         p1-oneshot.service loaded active exited  one v1\n\
         p1-simple.service  loaded active running p1-simple.service\n",
    );
    expect_systemctl(&c, "stop p1-simple.service", 0, "");
    expect_systemctl(&c, "is-active p1-simple.service", 3, "inactive\n");
    let enabled = expect_systemctl(&c, "enable p1-oneshot.service", 0, "");
    assert_eq!(
        String::from_utf8_lossy(&enabled.stderr),
        "Created symlink /etc/systemd/system/multi-user.target.wants/p1-oneshot.service \
         → /etc/systemd/system/p1-oneshot.service.\n"
    );
    expect_systemctl(&c, "is-enabled p1-oneshot.service", 0, "enabled\n");
    std::fs::write(
        host.units.join("p1-oneshot.service"),
        ONESHOT.replace("one v1", "one v2"),
    )
    .expect("rewrite unit file");
    expect_systemctl(&c, "daemon-reload", 0, "");
    expect_systemctl(
        &c,
        "show -p Description p1-oneshot.service",
        0,
        "Description=one v2\n",
    );
    expect_systemctl(&c, "is-active p1-nonexistent.service", 3, "inactive\n");

    check_orphans_are_reaped(&c, &host);
    check_stop_signal_stops_units(&c, &host);
}

/// Zombie reaping: the orphan is re-parented to PID 1 and, once it exits, nothing is left in
/// state Z.
fn check_orphans_are_reaped(c: &Container, host: &HostDirs) {
    expect_systemctl(c, "start p1-orphan.service", 0, "");
    let pid_file = host.marker.join("orphan.pid");
    let pid: u32 = poll(
        "the orphan's PID file",
        || std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok(),
        || c.report(),
    );
    c.wait_for(
        "the orphan to exit and no zombie to remain",
        &format!(
            "for f in /proc/[0-9]*/stat; do cat $f 2>/dev/null; echo; done; \
             test -e /proc/{pid} && echo ORPHAN-ALIVE; true"
        ),
        |o| !o.contains("ORPHAN-ALIVE") && zombies(o).is_empty(),
    );
}

/// The `/proc/PID/stat` lines in `stats` whose state (the field after the command) is Z.
fn zombies(stats: &str) -> Vec<&str> {
    stats
        .lines()
        .filter(|l| {
            l.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .collect()
}

/// `podman stop` sends the image's stop signal (SIGRTMIN+3): ExecStop= runs, then the main
/// process gets SIGTERM, and the emulator exits 0.
fn check_stop_signal_stops_units(c: &Container, host: &HostDirs) {
    expect_systemctl(c, "start p1-stop.service", 0, "");
    expect_systemctl(c, "is-active p1-stop.service", 0, "active\n");
    let o = run(podman().args(["stop", "-t", "20", &c.name]));
    assert!(o.status.success(), "podman stop failed: {}", text(&o));
    let (status, code) = c.state();
    assert_eq!(
        (status.as_str(), code),
        ("exited", 0),
        "container state after podman stop\n{}",
        c.report()
    );
    let log = std::fs::read_to_string(host.marker.join("log")).unwrap_or_default();
    assert_eq!(log, "stop\nterm\n", "marker log\n{}", c.report());
}

const NODE: &str = "pid1";
const UNIT: &str = "bluechi-pid1-oneshot.service";

#[test]
fn bluechi_controller_and_agent_run_as_emulator_units() {
    if let Some(why) = skip_reason() {
        cannot_run("emulator_pid1", &why);
        return;
    }
    let bin = bin_dir(&[
        "systemd-emulator",
        "bluechi-controller",
        "bluechi-agent",
        "bluechictl",
    ]);
    let dbus = "[Service]\nExecStartPre=/bin/mkdir -p /run/dbus\n\
ExecStart=/usr/bin/dbus-daemon --system --nofork --nopidfile\n";
    let controller = format!(
        "[Unit]\nAfter=p1-dbus.service\n[Service]\nExecStartPre=/bin/mkdir -p /run/bluechi\n\
ExecStart={BIN}/bluechi-controller -c /etc/bluechi/controller.conf\n"
    );
    let agent = format!(
        "[Unit]\nAfter=bluechi-controller.service\n[Service]\n\
ExecStart={BIN}/bluechi-agent -c /etc/bluechi/agent.conf\n"
    );
    let oneshot = "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n";
    let host = HostDirs::new(&[
        ("p1-dbus.service", dbus),
        ("bluechi-controller.service", &controller),
        ("bluechi-agent.service", &agent),
        (UNIT, oneshot),
    ]);
    let mut args = vec!["--network=none".to_string()];
    args.extend(host.volumes(&bin));
    args.extend([
        "-v".to_string(),
        format!("{}:{BIN}:ro", bin.display()),
        "-v".to_string(),
        policy_volume("crates/bluechi-controller/dbus/org.eclipse.bluechi.conf"),
        "-v".to_string(),
        policy_volume("crates/bluechi-agent/dbus/org.eclipse.bluechi.Agent.conf"),
        IMAGE.to_string(),
        EMULATOR.to_string(),
        "--system".to_string(),
    ]);
    let c = Container::start("emulator-bluechi", &args);
    wait_for_emulator(&c);
    c.sh_ok(&format!(
        "mkdir -p /etc/bluechi && \
         printf '[bluechi-controller]\\nControllerPort=842\\nAllowedNodeNames={NODE}\\n\
LogTarget=stderr\\nLogLevel=DEBUG\\n' > /etc/bluechi/controller.conf && \
         printf '[bluechi-agent]\\nNodeName={NODE}\\nControllerHost=127.0.0.1\\n\
ControllerPort=842\\nLogTarget=stderr\\nLogLevel=DEBUG\\n' > /etc/bluechi/agent.conf"
    ));

    // Each daemon needs the previous one serving, and Type=simple does not wait for that.
    expect_systemctl(&c, "start p1-dbus.service", 0, "");
    c.wait_for(
        "the system bus socket",
        "test -S /run/dbus/system_bus_socket && echo ready",
        |o| o.contains("ready"),
    );
    expect_systemctl(&c, "start bluechi-controller.service", 0, "");
    c.wait_for(
        "the controller on the bus",
        "busctl --system list --no-legend || true",
        |o| o.contains("org.eclipse.bluechi "),
    );
    expect_systemctl(&c, "start bluechi-agent.service", 0, "");

    c.wait_for(
        "the node to come online",
        &format!("{BIN}/bluechictl status {NODE}"),
        |o| {
            o.lines()
                .any(|l| l.starts_with(NODE) && l.contains("online"))
        },
    );
    // The agent runs as root, so it must have picked the emulator's private socket.
    poll(
        "the agent's connection log",
        || {
            text(&run(podman().args(["logs", &c.name])))
                .contains("Connected to systemd on /run/systemd/private")
                .then_some(())
        },
        || c.report(),
    );

    let start = c.sh(&format!("{BIN}/bluechictl start {NODE} {UNIT}"));
    assert!(
        start.status.success(),
        "start failed: {}\n{}",
        text(&start),
        c.report()
    );
    assert_eq!(
        String::from_utf8_lossy(&start.stdout),
        format!("Unit {UNIT} StartUnit operation result: done\n")
    );
    let units = c.sh_ok(&format!("{BIN}/bluechictl list-units {NODE}"));
    assert!(
        units.lines().any(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            cols.get(1..4) == Some(&[UNIT, "active", "exited"][..])
        }),
        "list-units does not show {UNIT} active (exited):\n{units}"
    );
    expect_systemctl(&c, &format!("is-active {UNIT}"), 0, "active\n");
    expect_systemctl(
        &c,
        "is-active p1-dbus.service bluechi-controller.service bluechi-agent.service",
        0,
        "active\nactive\nactive\n",
    );
}

#[test]
fn zombies_are_found_by_the_state_after_the_command() {
    let stats = "1 (systemd-emulato) S 0 1\n42 (a) Z) x) R 1 42\n43 (sh) Z 1 43\n";
    assert_eq!(zombies(stats), vec!["43 (sh) Z 1 43"]);
}
