//! The node images of `ci/images.sh` (containers/README.md), one container of each kind on a
//! podman network of its own: the installed units start controller and agent from configs
//! written into the conf.d directories, the node comes online, `bluechictl start` drives the
//! node's manager, and bluechi-controller.socket activates the controller on
//! /run/bluechi/bluechi.sock. Prints boot-to-online times (figures, not assertions).
//!
//! Needs root and podman; builds the images itself (quiet, cached by input hash) from the
//! binaries of the test's target directory (or `BLUECHI_BIN_DIR`): build them first with
//! `cargo build --bins -p bluechi-controller -p bluechi-agent -p bluechi-proxy -p bluechictl
//! -p bluechi-is-online -p systemd-emulator -p emulator-systemctl`. Without podman (or
//! debootstrap for the first build) the tests print why and pass; under CI=true they fail.

mod support_podman;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use support_podman::images::{node_images, ImagesError, NodeImages};
use support_podman::{cannot_run, podman_unavailable, run, text, Container, Network};

const BINARIES: [&str; 7] = [
    "bluechi-controller",
    "bluechi-agent",
    "bluechi-proxy",
    "bluechictl",
    "bluechi-is-online",
    "systemd-emulator",
    "systemctl",
];
const UNIT: &str = "node-image-test.service";

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// PID 1 real systemd 252.
    Systemd,
    /// PID 1 our systemd-emulator.
    Emulator,
}

impl Kind {
    /// The image's name in ci/images.sh's output.
    fn image(self) -> &'static str {
        match self {
            Kind::Systemd => "podman-systemd",
            Kind::Emulator => "podman-emulator",
        }
    }

    fn node(self) -> &'static str {
        match self {
            Kind::Systemd => "sdnode",
            Kind::Emulator => "emunode",
        }
    }

    /// `podman run` flags besides network, name and image: systemd needs Podman's systemd
    /// mode (tmpfs /run and /tmp, writable cgroups); the emulator needs nothing.
    fn run_flags(self) -> &'static [&'static str] {
        match self {
            Kind::Systemd => &["--systemd=always"],
            Kind::Emulator => &[],
        }
    }

    /// A shell probe printing `booted` once systemctl can drive the node's manager.
    fn booted_probe(self) -> &'static str {
        match self {
            Kind::Systemd => {
                "case $(systemctl is-system-running) in running|degraded) echo booted;; esac"
            }
            // The init script has the bus up before the emulator binds its private socket.
            Kind::Emulator => "test -S /run/systemd/private && echo booted",
        }
    }

    /// What the daemons logged (LogTarget=stderr): the journal, or the emulator's own output.
    fn daemon_logs(self) -> &'static str {
        match self {
            Kind::Systemd => {
                "journalctl --no-pager -o cat -u bluechi-controller -u bluechi-agent | tail -n 60"
            }
            Kind::Emulator => "echo '(daemon output: podman logs)'",
        }
    }
}

/// The images, built once per test binary (the other tests wait for the first).
fn images() -> &'static Result<NodeImages, ImagesError> {
    static IMAGES: OnceLock<Result<NodeImages, ImagesError>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let bin = bin_dir();
        let images = node_images(&bin);
        if let Ok(i) = &images {
            print!("{}", i.summary);
        }
        images
    })
}

fn bin_dir() -> PathBuf {
    let bin = scenario_runner::paths::bin_dir().expect("binary directory");
    for b in BINARIES {
        assert!(
            bin.join(b).is_file(),
            "{b} missing in {}: run `cargo build --bins -p bluechi-controller -p bluechi-agent \
             -p bluechi-proxy -p bluechictl -p bluechi-is-online -p systemd-emulator \
             -p emulator-systemctl` (or set BLUECHI_BIN_DIR)",
            bin.display()
        );
    }
    bin
}

/// The image reference for `kind`, or None after reporting why the test cannot run.
fn image_or_skip(test: &str, kind: Kind) -> Option<String> {
    if let Some(why) = podman_unavailable() {
        cannot_run(test, &why);
        return None;
    }
    match images() {
        Ok(i) => match i.get(kind.image()) {
            Ok(r) => Some(r.to_string()),
            Err(e) => panic!("{e:?}"),
        },
        Err(ImagesError::Unavailable(why)) => {
            cannot_run(test, why);
            None
        }
        Err(ImagesError::Failed(why)) => panic!("{why}"),
    }
}

/// A booted node container of `kind` on its own network, with the test unit installed.
struct Node {
    kind: Kind,
    c: Container,
    // Dropped after the container (fields drop in declaration order).
    _net: Network,
    started: Instant,
    booted_after: f64,
}

impl Node {
    fn boot(kind: Kind, image: &str, tag: &str) -> Node {
        let net = Network::create(tag);
        let mut args: Vec<String> = kind.run_flags().iter().map(|s| s.to_string()).collect();
        args.extend([
            format!("--network={}", net.name),
            format!("--hostname={}", kind.node()),
            image.to_string(),
        ]);
        let started = Instant::now();
        let mut c = Container::start(tag, &args);
        c.diagnostics = format!(
            "systemctl status --no-pager bluechi-controller.socket bluechi-controller.service \
             bluechi-agent.service 2>&1; {}",
            kind.daemon_logs()
        );
        c.wait_for("the node's manager to boot", kind.booted_probe(), |o| {
            o.contains("booted")
        });
        let booted_after = started.elapsed().as_secs_f64();
        Node {
            kind,
            c,
            _net: net,
            started,
            booted_after,
        }
    }

    /// What a runner does before starting units: configs into the conf.d directories and a
    /// unit for bluechictl to start.
    fn configure(&self, agent_address: &str) {
        let node = self.kind.node();
        self.c.sh_ok(&format!(
            "printf '[bluechi-controller]\\nAllowedNodeNames={node}\\nLogTarget=stderr\\n' \
               > /etc/bluechi/controller.conf.d/test.conf && \
             printf '[bluechi-agent]\\nNodeName={node}\\n{agent_address}\\nLogTarget=stderr\\n' \
               > /etc/bluechi/agent.conf.d/test.conf && \
             printf '[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/true\\n' \
               > /etc/systemd/system/{UNIT} && \
             systemctl daemon-reload"
        ));
    }

    fn wait_online(&self) {
        let node = self.kind.node();
        self.c
            .wait_for("the node to come online", "bluechictl status", |o| {
                o.lines()
                    .any(|l| l.starts_with(node) && l.contains("online"))
            });
    }

    /// `systemctl is-active UNITS`, one state per line.
    fn states(&self, units: &str) -> String {
        String::from_utf8_lossy(&self.c.sh(&format!("systemctl is-active {units}")).stdout)
            .into_owned()
    }
}

/// Everything the image ships, and nothing enabled.
fn check_installed(n: &Node) {
    n.c.sh_ok(
        "test -x /usr/libexec/bluechi-controller && test -x /usr/libexec/bluechi-agent && \
         test -x /usr/libexec/bluechi-proxy && test -x /usr/bin/bluechictl && \
         test -x /usr/bin/bluechi-is-online && \
         cd /usr/lib/systemd/system && test -f bluechi-proxy@.service && \
         test -f bluechi-dep@.service && \
         test -f /usr/share/dbus-1/system.d/org.eclipse.bluechi.conf && \
         test -f /usr/share/dbus-1/system.d/org.eclipse.bluechi.Agent.conf && \
         test -d /etc/bluechi/controller.conf.d && test -d /etc/bluechi/agent.conf.d && \
         test -d /run/bluechi && test -S /run/dbus/system_bus_socket",
    );
    let o = n.c.sh(
        "systemctl is-enabled bluechi-controller.service bluechi-controller.socket \
               bluechi-agent.service",
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "disabled\ndisabled\ndisabled\n",
        "{:?} image enables BlueChi units: {}",
        n.kind,
        text(&o)
    );
}

fn services_bring_the_node_online(kind: Kind, test: &str) {
    let Some(image) = image_or_skip(test, kind) else {
        return;
    };
    let n = Node::boot(kind, &image, &format!("img-{}", kind.node()));
    check_installed(&n);
    n.configure("ControllerHost=127.0.0.1");
    n.c.sh_ok("systemctl start bluechi-controller.service bluechi-agent.service");
    n.wait_online();
    let online_after = n.started.elapsed().as_secs_f64();

    let node = kind.node();
    let start = n.c.sh(&format!("bluechictl start {node} {UNIT}"));
    assert!(
        start.status.success(),
        "bluechictl start failed: {}\n{}",
        text(&start),
        n.c.report()
    );
    assert_eq!(
        String::from_utf8_lossy(&start.stdout),
        format!("Unit {UNIT} StartUnit operation result: done\n")
    );
    assert_eq!(n.states(UNIT), "active\n", "{}", n.c.report());
    // The other installed tool, over the same bus.
    for args in [format!("node {node}"), "agent".to_string()] {
        let o = n.c.sh(&format!("bluechi-is-online {args}"));
        assert!(o.status.success(), "bluechi-is-online {args}: {}", text(&o));
    }
    assert_eq!(
        n.states("bluechi-controller.service bluechi-agent.service"),
        "active\nactive\n"
    );
    println!(
        "node_images: {}: booted {:.2} s, node online {online_after:.2} s after podman run",
        kind.image(),
        n.booted_after
    );
}

fn socket_activates_the_controller(kind: Kind, test: &str) {
    let Some(image) = image_or_skip(test, kind) else {
        return;
    };
    let n = Node::boot(kind, &image, &format!("img-sock-{}", kind.node()));
    n.configure("ControllerAddress=unix:path=/run/bluechi/bluechi.sock");
    n.c.sh_ok("systemctl start bluechi-controller.socket");
    assert_eq!(
        n.states("bluechi-controller.socket bluechi-controller.service"),
        "active\ninactive\n",
        "{}",
        n.c.report()
    );
    // SocketMode=0666 on the socket the unit listens on.
    assert_eq!(
        n.c.sh_ok("stat -c %A /run/bluechi/bluechi.sock"),
        "srw-rw-rw-\n"
    );

    // The agent's first connection is what starts the controller.
    n.c.sh_ok("systemctl start bluechi-agent.service");
    n.wait_online();
    assert_eq!(
        n.states("bluechi-controller.service"),
        "active\n",
        "{}",
        n.c.report()
    );
    let logs = match kind {
        Kind::Systemd => {
            n.c.sh_ok("journalctl --no-pager -o cat -u bluechi-controller")
        }
        Kind::Emulator => text(&run(support_podman::podman().args(["logs", &n.c.name]))),
    };
    assert!(
        logs.contains("Waiting for connection requests on configured socket unit..."),
        "the controller did not take the activated socket:\n{logs}"
    );
    // The controller took systemd's socket and left its file alone (it once replaced it
    // with its own, 0755 and unreachable for unprivileged agents).
    assert_eq!(
        n.c.sh_ok("stat -c %A /run/bluechi/bluechi.sock"),
        "srw-rw-rw-\n",
        "{logs}"
    );
    assert!(
        logs.contains("Socket /run/bluechi/bluechi.sock already in use by the activated socket"),
        "{logs}"
    );
}

#[test]
fn systemd_node_image_runs_bluechi_units() {
    services_bring_the_node_online(Kind::Systemd, "systemd_node_image_runs_bluechi_units");
}

#[test]
fn emulator_node_image_runs_bluechi_units() {
    services_bring_the_node_online(Kind::Emulator, "emulator_node_image_runs_bluechi_units");
}

#[test]
fn systemd_node_image_socket_activates_the_controller() {
    socket_activates_the_controller(
        Kind::Systemd,
        "systemd_node_image_socket_activates_the_controller",
    );
}

#[test]
fn emulator_node_image_socket_activates_the_controller() {
    socket_activates_the_controller(
        Kind::Emulator,
        "emulator_node_image_socket_activates_the_controller",
    );
}
