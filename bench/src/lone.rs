//! The emulator alone on a private dbus-daemon, for figures of the emulator itself: no agent or
//! controller on the bus, and start-up timed from spawn to the name appearing.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bluechi_testkit::bus::PrivateBus;
use futures_util::StreamExt;
use zbus::{MatchRule, MessageStream};

const READY: Duration = Duration::from_secs(15);
const NAME: &str = "org.freedesktop.systemd1";

/// The emulator, killed on drop.
struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct LoneEmulator {
    // Fields drop in order: the emulator before its bus.
    emulator: Emulator,
    bus: PrivateBus,
    pub address: String,
    pub pid: i32,
    /// From spawning the emulator to its `NameOwnerChanged` for org.freedesktop.systemd1.
    pub startup: Duration,
}

impl LoneEmulator {
    /// Starts a bus and the emulator serving `unit_dir`; `work` holds the bus socket and the
    /// emulator's log. Logging at `warn`, so no log write sits on the measured paths.
    pub async fn start(bin_dir: &Path, unit_dir: &Path, work: &Path) -> Result<Self, String> {
        let bus = PrivateBus::start(work).map_err(|e| e.to_string())?;
        let address = bus.address().to_string();
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
        let emulator = Emulator(child);
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
            emulator,
            bus,
            address,
            pid,
            startup,
        })
    }

    /// Stops the emulator and its bus now rather than at drop.
    pub fn stop(self) {
        let LoneEmulator { emulator, bus, .. } = self;
        drop(emulator);
        drop(bus);
    }
}
