//! Job latency: a `StartUnit`/`StopUnit` call until the `JobRemoved` of the job it returned,
//! through BlueChi (Node API on the controller) and straight to the emulator's Manager.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use zbus::{Connection, MatchRule, MessageStream};
use zvariant::OwnedObjectPath;

const JOB_DEADLINE: Duration = Duration::from_secs(10);

/// One way of running a job: who is called and which `JobRemoved` ends it.
pub struct JobPath {
    conn: Connection,
    destination: &'static str,
    object: String,
    iface: &'static str,
    removed: MessageStream,
    /// BlueChi's `JobRemoved` is `(u o s s s)`, systemd's `(u o s s)`; the job is field 1.
    bluechi: bool,
}

impl JobPath {
    /// Subscribes before any job runs so no `JobRemoved` can be missed.
    async fn new(
        conn: &Connection,
        destination: &'static str,
        object: String,
        iface: &'static str,
        signal_iface: &'static str,
        bluechi: bool,
        unit: Option<&str>,
    ) -> Result<JobPath, String> {
        let mut rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(destination)
            .and_then(|b| b.interface(signal_iface))
            .and_then(|b| b.member("JobRemoved"))
            .map_err(|e| format!("match rule: {e}"))?;
        // systemd's JobRemoved carries the unit as arg 2: the bus then delivers only our jobs,
        // so concurrent clients do not each receive (and skip) every other client's signals.
        if let Some(unit) = unit {
            rule = rule
                .arg(2, unit)
                .map_err(|e| format!("match rule arg2={unit}: {e}"))?;
        }
        let rule = rule.build();
        let removed = MessageStream::for_match_rule(rule, conn, Some(1024))
            .await
            .map_err(|e| format!("cannot subscribe to JobRemoved of {destination}: {e}"))?;
        Ok(JobPath {
            conn: conn.clone(),
            destination,
            object,
            iface,
            removed,
            bluechi,
        })
    }

    /// Through the controller: `org.eclipse.bluechi.Node` of `node`.
    pub async fn controller(conn: &Connection, node: &str) -> Result<JobPath, String> {
        let reply = conn
            .call_method(
                Some("org.eclipse.bluechi"),
                "/org/eclipse/bluechi",
                Some("org.eclipse.bluechi.Controller"),
                "GetNode",
                &(node,),
            )
            .await
            .map_err(|e| format!("GetNode({node}): {e}"))?;
        let path: OwnedObjectPath = reply
            .body()
            .deserialize()
            .map_err(|e| format!("GetNode reply: {e}"))?;
        JobPath::new(
            conn,
            "org.eclipse.bluechi",
            path.to_string(),
            "org.eclipse.bluechi.Node",
            "org.eclipse.bluechi.Controller",
            true,
            None,
        )
        .await
    }

    /// Straight to the node's systemd (the emulator).
    pub async fn systemd(conn: &Connection) -> Result<JobPath, String> {
        JobPath::systemd_filtered(conn, None).await
    }

    /// Straight to systemd, hearing only the `JobRemoved` signals of `unit` (if given).
    pub async fn systemd_filtered(
        conn: &Connection,
        unit: Option<&str>,
    ) -> Result<JobPath, String> {
        const MANAGER: &str = "org.freedesktop.systemd1.Manager";
        conn.call_method(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            Some(MANAGER),
            "Subscribe",
            &(),
        )
        .await
        .map_err(|e| format!("systemd Subscribe: {e}"))?;
        JobPath::new(
            conn,
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1".into(),
            MANAGER,
            MANAGER,
            false,
            unit,
        )
        .await
    }

    /// Runs `method` (`StartUnit`/`StopUnit`) on `unit` and waits for its `JobRemoved`;
    /// returns the elapsed time and the job's result.
    pub async fn run(&mut self, method: &str, unit: &str) -> Result<(Duration, String), String> {
        let start = Instant::now();
        let reply = self
            .conn
            .call_method(
                Some(self.destination),
                self.object.as_str(),
                Some(self.iface),
                method,
                &(unit, "replace"),
            )
            .await
            .map_err(|e| format!("{method}({unit}) on {}: {e}", self.destination))?;
        let job: OwnedObjectPath = reply
            .body()
            .deserialize()
            .map_err(|e| format!("{method} reply: {e}"))?;
        let wait = async {
            while let Some(m) = self.removed.next().await {
                let m = m.map_err(|e| format!("signal stream: {e}"))?;
                if let Some(result) = removed_job(&m, self.bluechi, &job) {
                    return Ok(result);
                }
            }
            Err(format!("{}: connection closed", self.destination))
        };
        let result = tokio::time::timeout(JOB_DEADLINE, wait)
            .await
            .map_err(|_| format!("no JobRemoved for {job} ({method} {unit}) within 10 s"))??;
        Ok((start.elapsed(), result))
    }
}

/// The result of a `JobRemoved` signal if it is about `job`.
fn removed_job(m: &zbus::Message, bluechi: bool, job: &OwnedObjectPath) -> Option<String> {
    let body = m.body();
    let (path, result) = if bluechi {
        let (_, p, _, _, r): (u32, OwnedObjectPath, String, String, String) =
            body.deserialize().ok()?;
        (p, r)
    } else {
        let (_, p, _, r): (u32, OwnedObjectPath, String, String) = body.deserialize().ok()?;
        (p, r)
    };
    (path == *job).then_some(result)
}

/// One start and one stop job; both must end `done`, or the figures would time failures.
pub async fn start_stop(path: &mut JobPath, unit: &str) -> Result<[Duration; 2], String> {
    let mut out = [Duration::ZERO; 2];
    for (slot, method) in out.iter_mut().zip(["StartUnit", "StopUnit"]) {
        let (elapsed, result) = path.run(method, unit).await?;
        if result != "done" {
            return Err(format!(
                "{method} {unit} via {} ended '{result}', not 'done'",
                path.destination
            ));
        }
        *slot = elapsed;
    }
    Ok(out)
}

/// systemd refuses a sixth start within 10 s (`StartLimitBurst`); `ResetFailedUnit` clears the
/// count, unmeasured, between pairs. A unit already unloaded has no count to clear.
pub async fn reset_start_limit(conn: &Connection, unit: &str) -> Result<(), String> {
    let r = conn
        .call_method(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            Some("org.freedesktop.systemd1.Manager"),
            "ResetFailedUnit",
            &(unit,),
        )
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(zbus::Error::MethodError(name, _, _))
            if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit" =>
        {
            Ok(())
        }
        Err(e) => Err(format!("ResetFailedUnit({unit}): {e}")),
    }
}
