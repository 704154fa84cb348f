//! The agent's state and its single event loop.
//!
//! Invariant (as in the controller): the loop never awaits a reply. Calls to systemd are sent
//! raw and their replies matched by serial in `sd_pending`; they arrive on the same ordered
//! stream as systemd's signals, so a job's `StartUnit` reply is always handled before its
//! `JobRemoved`, and the controller always gets our reply before the `JobDone`.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bluechi_core::config::AgentConfig;
use bluechi_core::msg;
use bluechi_core::names::*;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use zbus::{Connection, Message};

use crate::link::LinkState;
use crate::proxy::Proxy;
use crate::systemd::UnitTable;

pub enum Event {
    /// The node bus connection serving `org.eclipse.bluechi.Agent`.
    Api(Option<msg::Inbound>),
    /// The connection to systemd.
    Systemd(Option<msg::Inbound>),
    /// A message on peer link number `gen` (a newer link makes older ones stale).
    Peer(u64, Option<msg::Inbound>),
    Connected(u64, Result<Box<zbus::MessageStream>, String>),
    Tick,
    Shutdown,
}

/// What to do with the reply to a call we sent to systemd.
pub enum SdPending {
    /// Forward the reply verbatim to the controller's call (on link `gen`).
    Forward { gen: u64, caller: Message },
    /// A lifecycle job: on success track the systemd job and answer the controller.
    Job {
        gen: u64,
        caller: Message,
        id: u32,
        unit: String,
        method: String,
        /// When the systemd call went out: the start of the job's `AgentJobMetrics` time.
        sent: Instant,
    },
    /// Nobody waits (StartDep/StopDep, stopping a proxy unit): failures are only logged.
    Log { what: String },
}

/// A systemd job that belongs to a BlueChi job.
pub struct TrackedJob {
    pub id: u32,
    pub unit: String,
    pub method: String,
    pub sent: Instant,
}

pub struct Agent {
    pub cfg: AgentConfig,
    pub tx: UnboundedSender<Event>,
    pub api: Connection,
    pub systemd: Connection,
    pub link: LinkState,
    pub sd_pending: HashMap<u32, SdPending>,
    /// systemd job path → BlueChi job.
    pub jobs: HashMap<String, TrackedJob>,
    /// Results of systemd jobs that finished before we learnt their path (defensive: the
    /// ordering above makes this empty in practice). Bounded.
    pub early_results: VecDeque<(String, String)>,
    pub units: UnitTable,
    pub proxies: Vec<Proxy>,
    pub next_proxy_id: u32,
    pub metrics_enabled: bool,
}

/// Which systemd instance the agent manages, and on which bus it serves its API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The system manager; the API on the system bus.
    System,
    /// `--user`: the user's manager and the API both on the user (session) bus.
    User,
}

impl Scope {
    pub fn bus_name(self) -> &'static str {
        match self {
            Scope::System => "system bus",
            Scope::User => "user bus",
        }
    }

    /// A new connection to this scope's bus; callers say what they needed it for.
    pub async fn connect_bus(self) -> zbus::Result<Connection> {
        let builder = match self {
            Scope::System => zbus::connection::Builder::system(),
            Scope::User => zbus::connection::Builder::session(),
        };
        builder?.build().await
    }
}

pub async fn run(
    cfg: AgentConfig,
    first_address: Option<String>,
    scope: Scope,
) -> Result<(), String> {
    tracing::info!("Starting bluechi-agent {}", bluechi_core::VERSION);
    bluechi_core::daemon::raise_fd_limit();
    let (tx, mut rx) = unbounded_channel();
    let systemd = crate::systemd::connect(tx.clone(), scope).await?;
    let api = scope
        .connect_bus()
        .await
        .map_err(|e| format!("Failed to connect to the {}: {e}", scope.bus_name()))?;
    msg::spawn_forwarder(&api, tx.clone(), Event::Api);
    // Requested after the forwarder runs: a call arriving the moment the name is ours waits
    // in the queue.
    msg::request_name(
        &api,
        AGENT_BUS_NAME,
        msg::NAME_REPLACE_EXISTING | msg::NAME_DO_NOT_QUEUE,
    )
    .await
    .map_err(|e| format!("Failed to acquire bus name {AGENT_BUS_NAME}: {e}"))?;
    let units = crate::systemd::initial_units(&systemd).await?;
    spawn_signal_and_tick(tx.clone(), cfg.heartbeat_interval_ms);
    let mut a = Agent {
        link: LinkState::new(&cfg, first_address),
        cfg,
        tx,
        api,
        systemd,
        sd_pending: HashMap::new(),
        jobs: HashMap::new(),
        early_results: VecDeque::new(),
        units,
        proxies: Vec::new(),
        next_proxy_id: 1,
        metrics_enabled: false,
    };
    a.connect();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Api(Some(m)) => a.on_api_message(m.into_message()).await,
            Event::Api(None) => {
                return Err(format!("Lost the connection to the {}", scope.bus_name()))
            }
            Event::Systemd(Some(m)) => a.on_systemd_message(m.into_message()).await,
            Event::Systemd(None) => return Err("Lost the connection to systemd".into()),
            Event::Peer(gen, m) => {
                a.on_peer_event(gen, m.map(msg::Inbound::into_message))
                    .await
            }
            Event::Connected(gen, r) => a.on_connected(gen, r).await,
            Event::Tick => a.on_tick().await,
            Event::Shutdown => break,
        }
    }
    a.shutdown().await;
    Ok(())
}

/// Emits an `org.eclipse.bluechi.internal.Agent` signal on one link. Answers to the
/// controller's calls go on the link that asked, registered or not: a controller re-sends
/// its subscriptions before it answers `Register` (spec §1.5, upstream's and ours), and the
/// virtual events of those subscriptions must not be lost.
pub async fn emit_internal<B>(conn: &Connection, member: &str, body: &B)
where
    B: serde::Serialize + zvariant::DynamicType,
{
    emit_signal(
        conn,
        INTERNAL_AGENT_PATH,
        INTERNAL_AGENT_IFACE,
        member,
        body,
    )
    .await;
}

/// Sends one signal of ours on a peer link.
async fn emit_signal<B>(conn: &Connection, path: &str, iface: &str, member: &str, body: &B)
where
    B: serde::Serialize + zvariant::DynamicType,
{
    let m = Message::signal(path, iface, member).and_then(|b| b.build(body));
    msg::send(conn, m).await;
}

fn spawn_signal_and_tick(tx: UnboundedSender<Event>, interval_ms: i64) {
    bluechi_core::daemon::shutdown_on_signals(tx.clone(), Event::Shutdown);
    // Upstream: a non-positive interval disables the timer, and with it reconnects (Q4).
    if interval_ms > 0 {
        let period = std::time::Duration::from_millis(interval_ms as u64);
        bluechi_core::daemon::tick_every(tx, period, || Event::Tick);
    }
}

impl Agent {
    /// Sends a call to systemd and remembers what to do with its reply.
    pub async fn call_systemd(&mut self, call: zbus::Result<Message>, what: SdPending) {
        let m = match call {
            Ok(m) => m,
            Err(e) => return self.fail_sd_pending(what, ERR_FAILED, &e.to_string()).await,
        };
        let serial = msg::serial(&m);
        match self.systemd.send(&m).await {
            Ok(()) => {
                self.sd_pending.insert(serial, what);
            }
            Err(e) => self.fail_sd_pending(what, ERR_FAILED, &e.to_string()).await,
        }
    }

    pub async fn fail_sd_pending(&mut self, what: SdPending, name: &str, text: &str) {
        match what {
            SdPending::Forward { gen, caller } | SdPending::Job { gen, caller, .. } => {
                if let Some(conn) = self.link.conn_of(gen) {
                    msg::reply_error(&conn, &caller.header(), name, text).await;
                }
            }
            SdPending::Log { what } => tracing::error!("{what} failed: {text}"),
        }
    }

    /// Emits an `org.eclipse.bluechi.internal.Agent` signal to the controller, if registered.
    pub async fn emit_to_controller<B>(&self, member: &str, body: &B)
    where
        B: serde::Serialize + zvariant::DynamicType,
    {
        if let Some(conn) = self.link.registered_conn() {
            emit_internal(&conn, member, body).await;
        }
    }

    /// A job finished while metrics are on: its time from our systemd call to `JobRemoved`.
    pub async fn emit_job_metrics(&self, job: &TrackedJob) {
        let Some(conn) = self.link.registered_conn().filter(|_| self.metrics_enabled) else {
            return;
        };
        let us = u64::try_from(job.sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        let body = (job.unit.as_str(), job.method.as_str(), us);
        emit_signal(
            &conn,
            INTERNAL_METRICS_PATH,
            INTERNAL_METRICS_IFACE,
            "AgentJobMetrics",
            &body,
        )
        .await;
    }

    pub async fn emit_api_property(&self, key: &str, value: zvariant::Value<'_>) {
        let mut changed: HashMap<&str, zvariant::Value<'_>> = HashMap::new();
        changed.insert(key, value);
        let invalidated: Vec<&str> = Vec::new();
        if let Err(e) = self
            .api
            .emit_signal(
                None::<&str>,
                AGENT_PATH,
                PROPERTIES_IFACE,
                "PropertiesChanged",
                &(AGENT_IFACE, changed, invalidated),
            )
            .await
        {
            tracing::debug!("failed to emit PropertiesChanged: {e}");
        }
    }

    async fn shutdown(&mut self) {
        tracing::info!("Shutting down bluechi-agent");
        self.link.close().await;
        self.emit_api_property("Status", "offline".into()).await;
        self.drop_all_proxies().await;
    }
}
