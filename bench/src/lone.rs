//! The emulator alone on a private dbus-daemon, for figures of the emulator itself: no agent or
//! controller on the bus, and start-up timed from spawn to the name appearing.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use zbus::{MatchRule, MessageStream};

const READY: Duration = Duration::from_secs(15);
const NAME: &str = "org.freedesktop.systemd1";

/// Children killed in reverse start order on drop (the emulator before its bus).
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        while let Some(mut c) = self.0.pop() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct LoneEmulator {
    children: Children,
    pub address: String,
    pub pid: i32,
    /// From spawning the emulator to its `NameOwnerChanged` for org.freedesktop.systemd1.
    pub startup: Duration,
}

/// A private bus: only our socket, any peer may own any name and talk to anyone.
fn bus_config(socket: &Path) -> String {
    let allow = [
        "user=\"*\"",
        "own=\"*\"",
        "send_type=\"method_call\"",
        "send_type=\"signal\"",
        "send_type=\"method_return\"",
        "send_type=\"error\"",
        "receive_type=\"method_call\"",
        "receive_type=\"signal\"",
        "receive_type=\"method_return\"",
        "receive_type=\"error\"",
        "send_destination=\"*\"",
        "receive_sender=\"*\"",
    ]
    .map(|a| format!("    <allow {a}/>\n"))
    .concat();
    format!(
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig>\n  <type>custom</type>\n  <listen>unix:path={}</listen>\n  <auth>EXTERNAL</auth>\n  <policy context=\"default\">\n{allow}  </policy>\n</busconfig>\n",
        socket.display()
    )
}

async fn start_bus(work: &Path, children: &mut Children) -> Result<String, String> {
    let conf = work.join("bus.conf");
    std::fs::write(&conf, bus_config(&work.join("bus.sock")))
        .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    let log_path = work.join("dbus-daemon.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut child = Command::new("dbus-daemon")
        .arg("--nofork")
        .arg("--print-address=1")
        .arg(format!("--config-file={}", conf.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start dbus-daemon: {e}"))?;
    let stdout = child.stdout.take();
    children.0.push(child);
    let stdout = stdout.ok_or("dbus-daemon: no stdout pipe")?;
    // It prints its address once it listens; EOF means it died first.
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    });
    match tokio::time::timeout(READY, read).await {
        Ok(Ok(Ok(line))) if !line.trim().is_empty() => Ok(line.trim().to_string()),
        Ok(Ok(Ok(_))) => Err("dbus-daemon exited without printing its address".into()),
        Ok(Ok(Err(e))) => Err(format!("dbus-daemon: cannot read its address: {e}")),
        Ok(Err(e)) => Err(format!("dbus-daemon: address reader failed: {e}")),
        Err(_) => Err("dbus-daemon did not print its address within 15 s".into()),
    }
}

impl LoneEmulator {
    /// Starts a bus and the emulator serving `unit_dir`; `work` holds the bus socket and the
    /// emulator's log. Logging at `warn`, so no log write sits on the measured paths.
    pub async fn start(bin_dir: &Path, unit_dir: &Path, work: &Path) -> Result<Self, String> {
        let mut children = Children(Vec::new());
        let address = start_bus(work, &mut children).await?;
        let conn = scenario_runner::dbus::connect(&address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender("org.freedesktop.DBus")
            .and_then(|b| b.member("NameOwnerChanged"))
            .and_then(|b| b.arg(0, NAME))
            .map_err(|e| format!("match rule: {e}"))?
            .build();
        let mut owner_changed = MessageStream::for_match_rule(rule, &conn, Some(16))
            .await
            .map_err(|e| format!("cannot subscribe to NameOwnerChanged: {e}"))?;
        let log_path = work.join("emulator.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let program = bin_dir.join("systemd-emulator");
        let start = Instant::now();
        let child = Command::new(&program)
            .arg("--unit-dir")
            .arg(unit_dir)
            .arg("--bus-address")
            .arg(&address)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let pid = child.id() as i32;
        children.0.push(child);
        let acquired = async {
            while let Some(m) = owner_changed.next().await {
                let m = m.map_err(|e| format!("signal stream: {e}"))?;
                let (_, _, new): (String, String, String) = m
                    .body()
                    .deserialize()
                    .map_err(|e| format!("NameOwnerChanged body: {e}"))?;
                if !new.is_empty() {
                    return Ok(start.elapsed());
                }
            }
            Err::<Duration, String>("bus connection closed".into())
        };
        let startup = tokio::time::timeout(READY, acquired).await.map_err(|_| {
            format!(
                "systemd-emulator did not own {NAME} within 15 s (log: {})",
                log_path.display()
            )
        })??;
        Ok(LoneEmulator {
            children,
            address,
            pid,
            startup,
        })
    }

    /// Stops the emulator and its bus now rather than at drop.
    pub fn stop(self) {
        drop(self.children);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_config_listens_on_the_socket_and_allows_owning() {
        let c = bus_config(Path::new("/tmp/x/bus.sock"));
        assert!(c.contains("<listen>unix:path=/tmp/x/bus.sock</listen>"));
        assert!(c.contains("<allow own=\"*\"/>"));
        assert!(c.ends_with("</busconfig>\n"));
    }
}
