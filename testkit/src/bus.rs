//! A private dbus-daemon standing in for a system bus: one per test, per local-backend node, per
//! benchmark. Each of those used to write its own configuration, and the policies drifted (some
//! allowed by destination and sender only, others by message type only); they now share
//! [`config`], and the tests and benchmarks share [`PrivateBus`] to start one.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// File names inside the bus's directory.
pub const SOCKET: &str = "bus.sock";
pub const CONFIG: &str = "bus.conf";
pub const LOG: &str = "dbus-daemon.log";

/// How long dbus-daemon may take to listen: generous, two cores are shared with other builds.
pub const READY: Duration = Duration::from_secs(30);

/// The bus configuration: listen on `socket` only, let anyone connect, own any name and talk to
/// anyone. The daemons under test run unprivileged yet need systemd's and BlueChi's well-known
/// names; who talks to whom is for the tests to decide, not a policy.
///
/// Of the policies the copies had, this is the union, the one the scenario runner's whole
/// clusters and the benchmarks ran on: it allows by message type (what
/// `bluechi-is-online`'s tests relied on, e.g. errors and signals back to a client) and by
/// destination and sender (what the daemon and emulator tests relied on), so every user works
/// with it. The socket path is XML-escaped: a temporary directory may contain `&`.
pub fn config(socket: &Path) -> String {
    const ALLOW: [&str; 12] = [
        r#"user="*""#,
        r#"own="*""#,
        r#"send_type="method_call""#,
        r#"send_type="signal""#,
        r#"send_type="method_return""#,
        r#"send_type="error""#,
        r#"receive_type="method_call""#,
        r#"receive_type="signal""#,
        r#"receive_type="method_return""#,
        r#"receive_type="error""#,
        r#"send_destination="*""#,
        r#"receive_sender="*""#,
    ];
    let allow: String = ALLOW
        .iter()
        .map(|a| format!("    <allow {a}/>\n"))
        .collect();
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
{allow}  </policy>
</busconfig>
"#,
        xml_escape(&socket.display().to_string())
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// dbus-daemon's arguments: in the foreground, printing its address on stdout once it listens.
pub fn daemon_args(config: &Path) -> [String; 3] {
    [
        "--nofork".to_string(),
        "--print-address=1".to_string(),
        format!("--config-file={}", config.display()),
    ]
}

/// Why a bus did not come up.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start dbus-daemon (run ci/setup.sh): {0}")]
    Spawn(std::io::Error),
    #[error("dbus-daemon exited without printing its address")]
    NoAddress,
    #[error("dbus-daemon: cannot read its address: {0}")]
    Read(std::io::Error),
    #[error("dbus-daemon did not print its address within {0:?}")]
    Timeout(Duration),
}

/// The address dbus-daemon prints once it listens; end of file means it died first. Blocking:
/// the line is read on a thread of its own so the wait can end at `timeout`.
pub fn read_address(stdout: ChildStdout, timeout: Duration) -> Result<String, BusError> {
    let (tx, rx) = mpsc::channel();
    // Left blocked on a hung daemon only until that daemon is killed (its pipe then closes).
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(line)) if !line.trim().is_empty() => Ok(line.trim().to_string()),
        Ok(Ok(_)) => Err(BusError::NoAddress),
        Ok(Err(e)) => Err(BusError::Read(e)),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(BusError::Timeout(timeout)),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(BusError::NoAddress),
    }
}

/// A dbus-daemon on `DIR/bus.sock`, logging to `DIR/dbus-daemon.log`; killed on drop.
pub struct PrivateBus {
    child: Child,
    address: String,
    socket: PathBuf,
}

impl PrivateBus {
    /// Writes `DIR/bus.conf`, starts the daemon and waits (up to [`READY`]) for its address.
    pub fn start(dir: &Path) -> Result<PrivateBus, BusError> {
        let socket = dir.join(SOCKET);
        let conf = dir.join(CONFIG);
        write(&conf, &config(&socket))?;
        let log_path = dir.join(LOG);
        let log = std::fs::File::create(&log_path).map_err(|source| BusError::Write {
            path: log_path,
            source,
        })?;
        let mut child = Command::new("dbus-daemon")
            .args(daemon_args(&conf))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(BusError::Spawn)?;
        let stdout = child.stdout.take();
        // Owned before reading, so a failed read still kills the daemon.
        let mut bus = PrivateBus {
            child,
            address: String::new(),
            socket,
        };
        bus.address = read_address(stdout.ok_or(BusError::NoAddress)?, READY)?;
        Ok(bus)
    }

    /// The address to connect to (`unix:path=…,guid=…`).
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the daemon now (a test of losing the bus) and reaps it; dropping does it too.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        self.kill();
    }
}

fn write(path: &Path, text: &str) -> Result<(), BusError> {
    std::fs::write(path, text).map_err(|source| BusError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_listens_on_the_escaped_socket_and_allows_everything() {
        let c = config(Path::new("/tmp/a&b/bus.sock"));
        assert!(c.contains("<listen>unix:path=/tmp/a&amp;b/bus.sock</listen>"));
        for allow in [
            r#"<allow own="*"/>"#,
            r#"<allow send_destination="*"/>"#,
            r#"<allow receive_type="error"/>"#,
        ] {
            assert!(c.contains(allow), "{allow} missing in\n{c}");
        }
        assert!(c.ends_with("</busconfig>\n"));
    }

    /// The bus answers the driver's NameHasOwner, lets a client own a well-known name, and is
    /// gone once dropped.
    #[tokio::test(flavor = "current_thread")]
    async fn a_bus_starts_answers_and_dies_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = PrivateBus::start(dir.path()).expect("private bus");
        assert!(bus.address().starts_with("unix:path="), "{}", bus.address());
        let conn = zbus::connection::Builder::address(bus.address())
            .expect("address")
            .build()
            .await
            .expect("connect");
        let driver = zbus::fdo::DBusProxy::new(&conn)
            .await
            .expect("driver proxy");
        let systemd = zbus::names::BusName::try_from("org.freedesktop.systemd1").expect("name");
        let owned = driver.name_has_owner(systemd.clone()).await;
        assert!(!owned.expect("NameHasOwner answered"), "owned before");
        conn.request_name("org.freedesktop.systemd1")
            .await
            .expect("the policy lets anyone own any name");
        let owned = driver.name_has_owner(systemd).await;
        assert!(owned.expect("NameHasOwner answered"), "not owned after");
        let pid = bus.pid();
        drop(bus);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "dbus-daemon {pid} survived its drop"
        );
    }

    #[test]
    fn a_missing_directory_is_a_write_error() {
        let e = PrivateBus::start(Path::new("/nonexistent/for/sure")).err();
        assert!(matches!(e, Some(BusError::Write { .. })), "{e:?}");
    }
}
