//! The event loop: one task owns the engine and feeds it method calls (from the bus and from
//! private connections), child exits and timers.

use super::bus::{dispatch, error_reply, Daemon, OutSignal, IFACE_MANAGER, MANAGER_PATH};
use super::clock::now;
use super::convert::{object_path, to_dict};
use super::notify::NotifySockets;
use super::outq::PrivateOut;
use super::procs::{adopted_children, prepare, Prepared, Procs};
use super::sockets::Sockets;
use crate::engine::{Action, Engine, JobType, LogLevel};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;
use zbus::message::{Flags, Type as MsgType};
use zbus::{Connection, Message, MessageStream};

/// The well-known name; also the sender of signals on private connections, as with systemd.
pub const BUS_NAME: &str = "org.freedesktop.systemd1";
/// How long stopped children get between SIGTERM and SIGKILL at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long an orderly shutdown may take to run its stop jobs.
const STOP_JOBS_DEADLINE: Duration = Duration::from_secs(15);
/// Connection id of the bus connection; private connections count up from 1.
const BUS_CONN: u64 = 0;
/// Events queued from the connection tasks; a flooding peer waits for the loop, not memory.
const EVENT_QUEUE_LEN: usize = 256;

/// What the connection tasks report to the event loop.
pub enum Event {
    Call(u64, Message),
    Connected(u64, Connection),
    Closed(u64),
}

/// Forwards the messages of one connection to the event loop until it closes.
pub fn forward(
    id: u64,
    mut stream: MessageStream,
    tx: mpsc::Sender<Event>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(m) = stream.next().await {
            match m {
                Ok(m) => {
                    if tx.send(Event::Call(id, m)).await.is_err() {
                        return;
                    }
                }
                // A peer hanging up shows up as a read error before the stream ends.
                Err(e) if id != BUS_CONN => tracing::debug!("connection {id}: {e}"),
                Err(e) => tracing::warn!("bad D-Bus message: {e}"),
            }
        }
        let _ = tx.send(Event::Closed(id)).await;
    })
}

/// Asks the bus daemon for NameOwnerChanged, to notice subscribers that went away.
async fn watch_name_owners(conn: &Connection) {
    let rule = "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged'";
    let added = match zbus::MatchRule::try_from(rule) {
        Ok(r) => match zbus::fdo::DBusProxy::new(conn).await {
            Ok(p) => p.add_match_rule(r).await.map_err(zbus::Error::from),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if let Err(e) = added {
        tracing::warn!("cannot watch bus clients, subscriptions are never dropped: {e}");
    }
}

/// Where the daemon listens.
pub struct Endpoints {
    /// The bus connection and its stream, created before the name was requested.
    pub bus: Option<(Connection, MessageStream)>,
    pub private: Option<UnixListener>,
}

pub struct Runtime {
    bus: Option<Connection>,
    private: HashMap<u64, PrivateOut>,
    engine: Engine,
    daemon: Daemon,
    procs: Procs,
    notify: NotifySockets,
    sockets: Sockets,
    timer_tx: mpsc::UnboundedSender<u64>,
}

impl Runtime {
    /// Runs until SIGTERM/SIGINT or Manager.Exit (then stops all units in order), or until
    /// the bus connection ends. Returns the exit code set with SetExitCode.
    pub async fn run(endpoints: Endpoints, engine: Engine, daemon: Daemon) -> std::io::Result<u8> {
        let (timer_tx, mut timer_rx) = mpsc::unbounded_channel();
        let (notify_tx, mut notify_rx) = mpsc::unbounded_channel();
        let (ev_tx, mut ev_rx) = mpsc::channel(EVENT_QUEUE_LEN);
        let (sock_tx, mut sock_rx) = mpsc::unbounded_channel();
        let mut rt = Runtime {
            bus: None,
            private: HashMap::new(),
            engine,
            daemon,
            procs: Procs::default(),
            notify: NotifySockets::new(notify_tx),
            sockets: Sockets::new(sock_tx),
            timer_tx,
        };
        if let Some((conn, stream)) = endpoints.bus {
            drop(forward(BUS_CONN, stream, ev_tx.clone()));
            watch_name_owners(&conn).await;
            rt.bus = Some(conn);
        }
        let serving_private = endpoints.private.is_some();
        if let Some(l) = endpoints.private {
            tokio::spawn(super::private::accept_loop(l, ev_tx.clone(), BUS_CONN + 1));
        }
        drop(ev_tx);
        let mut sigchld = signal(SignalKind::child())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        // systemd halts on SIGRTMIN+3 (container managers' stop signal for systemd images),
        // and powers off/reboots on +4/+5; all of them mean an orderly shutdown here.
        let rt_signal = |n: i32| signal(SignalKind::from_raw(libc::SIGRTMIN() + n));
        let (mut halt, mut poweroff, mut reboot) = (rt_signal(3)?, rt_signal(4)?, rt_signal(5)?);
        let system = rt.daemon.system;
        let mut stopping: Option<Instant> = None;
        let mut events_open = true;
        rt.execute().await;
        loop {
            if let Some(deadline) = stopping {
                if (!rt.engine.has_jobs() && rt.procs.live_count() == 0)
                    || Instant::now() >= deadline
                {
                    break;
                }
            }
            let deadline = stopping.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                ev = ev_rx.recv(), if events_open => match ev {
                    Some(Event::Call(id, m)) => rt.on_message(id, m).await,
                    Some(Event::Connected(id, c)) => {
                        tracing::debug!("private connection {id} established");
                        rt.private.insert(id, PrivateOut::new(id, c));
                    }
                    // Units keep running without the bus: the private socket can still manage
                    // them, and otherwise they get their orderly stop (ExecStop=) before we go.
                    Some(Event::Closed(BUS_CONN)) => {
                        rt.bus = None;
                        if system || serving_private {
                            tracing::error!("D-Bus connection closed; serving the private socket only");
                        } else if stopping.is_none() {
                            tracing::error!("D-Bus connection closed; stopping all units");
                            stopping = Some(rt.begin_stop().await);
                        }
                    }
                    Some(Event::Closed(id)) => {
                        rt.private.remove(&id);
                    }
                    None => {
                        events_open = false;
                        if stopping.is_none() {
                            tracing::error!("no connections left; stopping all units");
                            stopping = Some(rt.begin_stop().await);
                        }
                    }
                },
                _ = sigchld.recv() => rt.on_sigchld().await,
                Some(id) = timer_rx.recv() => {
                    rt.engine.timer_fired(id, now());
                    rt.execute().await;
                }
                Some((token, pid, msg)) = notify_rx.recv() => {
                    rt.engine.notify(token, pid, &msg, now());
                    rt.execute().await;
                }
                Some(unit) = sock_rx.recv() => {
                    rt.engine.socket_readable(&unit, now());
                    rt.execute().await;
                }
                _ = sigterm.recv(), if stopping.is_none() => stopping = Some(rt.begin_stop().await),
                _ = sigint.recv(), if stopping.is_none() => stopping = Some(rt.begin_stop().await),
                _ = halt.recv(), if system && stopping.is_none() => stopping = Some(rt.begin_stop().await),
                _ = poweroff.recv(), if system && stopping.is_none() => stopping = Some(rt.begin_stop().await),
                _ = reboot.recv(), if system && stopping.is_none() => stopping = Some(rt.begin_stop().await),
                _ = tokio::time::sleep_until(deadline), if stopping.is_some() => {}
            }
            rt.private.retain(|_, c| !c.is_dead());
            if rt.daemon.exit_requested && stopping.is_none() {
                stopping = Some(rt.begin_stop().await);
            }
        }
        rt.shutdown().await;
        // Transient units do not outlive the manager that created them.
        for name in rt.daemon.transient.clone() {
            if let Some(file) = rt.daemon.unit_gone(&name) {
                let _ = std::fs::remove_file(file);
            }
        }
        Ok(rt.daemon.exit_code)
    }

    /// Enqueues a stop job for every unit that is not inactive, as systemd's shutdown does;
    /// returns the deadline for those jobs.
    async fn begin_stop(&mut self) -> Instant {
        let active: Vec<String> = self
            .engine
            .units()
            .filter(|u| !u.active.is_inactive_or_failed() || u.job.is_some())
            .map(|u| u.name.clone())
            .collect();
        tracing::info!("Shutting down: stopping {} units", active.len());
        for name in active {
            if let Err(e) = self.engine.enqueue(&name, JobType::Stop, "replace", now()) {
                tracing::warn!("{name}: cannot stop at shutdown: {e}");
            }
        }
        self.execute().await;
        Instant::now() + STOP_JOBS_DEADLINE
    }

    async fn on_message(&mut self, conn_id: u64, msg: Message) {
        let hdr = msg.header();
        if hdr.message_type() == MsgType::Signal && conn_id == BUS_CONN {
            self.on_bus_signal(&msg);
            return;
        }
        if hdr.message_type() != MsgType::MethodCall {
            return;
        }
        let reply = match dispatch(&mut self.engine, &mut self.daemon, &msg, now()) {
            Ok(r) => Ok(r),
            Err(e) => error_reply(&hdr, &e),
        };
        for s in std::mem::take(&mut self.daemon.pre) {
            self.out_signal(s).await;
        }
        // Reply before running actions: callers match JobRemoved against the returned path.
        if !hdr.primary().flags().contains(Flags::NoReplyExpected) {
            match reply {
                Ok(r) if conn_id == BUS_CONN => match &self.bus {
                    Some(c) => {
                        if let Err(e) = c.send(&r).await {
                            tracing::warn!("failed to send reply: {e}");
                        }
                    }
                    None => tracing::debug!("bus connection gone before the reply"),
                },
                Ok(r) => match self.private.get(&conn_id) {
                    Some(c) => c.push(conn_id, r),
                    None => tracing::debug!("connection {conn_id} gone before the reply"),
                },
                Err(e) => tracing::warn!("failed to build reply: {e}"),
            }
        }
        self.execute().await;
        for s in std::mem::take(&mut self.daemon.post) {
            self.out_signal(s).await;
        }
    }

    /// A subscriber that leaves the bus is unsubscribed, as systemd's bus tracking does.
    fn on_bus_signal(&mut self, msg: &Message) {
        let hdr = msg.header();
        let from_bus = hdr
            .sender()
            .is_some_and(|s| s.as_str() == "org.freedesktop.DBus");
        if !from_bus
            || hdr
                .member()
                .is_none_or(|m| m.as_str() != "NameOwnerChanged")
        {
            return;
        }
        if let Ok((name, _old, new)) = msg.body().deserialize::<(String, String, String)>() {
            if new.is_empty() {
                self.daemon.subscribers.remove(&name);
            }
        }
    }

    async fn out_signal(&self, s: OutSignal) {
        match s {
            OutSignal::Reloading(b) => self.signal("Reloading", &(b,)).await,
            OutSignal::UnitFilesChanged => self.signal("UnitFilesChanged", &()).await,
        }
    }

    async fn on_sigchld(&mut self) {
        for (token, exit) in self.procs.reap() {
            self.engine.process_exited(token, exit, now());
        }
        self.execute().await;
        let procs = &self.procs;
        self.notify.retain(|t| procs.has_token(t));
    }

    /// Runs the engine's actions until it has nothing more to say.
    async fn execute(&mut self) {
        loop {
            let actions = self.engine.take_actions();
            if actions.is_empty() {
                let engine = &self.engine;
                self.procs.terminate_leftovers(|unit| {
                    engine
                        .unit(unit)
                        .is_none_or(|u| u.active.is_inactive_or_failed())
                });
                return;
            }
            for a in actions {
                self.run_action(a).await;
            }
        }
    }

    async fn run_action(&mut self, a: Action) {
        match a {
            Action::Spawn {
                token,
                unit,
                argv,
                env,
                ctx,
            } => {
                let mut p = match prepare(&argv, &env, &ctx) {
                    Ok(p) => p,
                    Err(e) => return self.engine.spawn_refused(token, &e, now()),
                };
                if self.engine.accepts_notify(&unit) {
                    match self.notify.open(token) {
                        Ok(addr) => p.env.push(("NOTIFY_SOCKET".to_string(), addr)),
                        Err(e) => tracing::warn!("{unit}: cannot create notify socket: {e}"),
                    }
                }
                let fds = self.sockets.fds_of(&ctx.sockets);
                self.spawn(token, &unit, &p, &fds)
            }
            Action::SocketListen { unit, listen, mode } => {
                let r = self.sockets.listen(&unit, &listen, mode);
                self.engine.socket_bound(&unit, r, now());
            }
            Action::SocketWatch { unit } => self.sockets.watch(&unit),
            Action::SocketClose { unit, remove } => self.sockets.close(&unit, &remove),
            Action::FindMainPid {
                unit,
                token,
                pid_file,
            } => match self.procs.adopt_main(token, pid_file.as_deref()) {
                Some((pid, exit)) => {
                    tracing::debug!("{unit}: main process is {pid}");
                    self.engine.main_pid_found(token, Some(pid), now());
                    if let Some(exit) = exit {
                        self.engine.process_exited(token, exit, now());
                    }
                }
                None => self.engine.main_pid_found(token, None, now()),
            },
            Action::Kill { tokens, signal, .. } => self.procs.kill(&tokens, signal),
            Action::SetTimer { id, delay_us } => {
                let tx = self.timer_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_micros(delay_us)).await;
                    let _ = tx.send(id);
                });
            }
            Action::Log {
                level: LogLevel::Info,
                message,
            } => tracing::info!("{message}"),
            Action::Log {
                level: LogLevel::Warn,
                message,
            } => tracing::warn!("{message}"),
            Action::UnitNew { id, path } => self.signal("UnitNew", &(id, object_path(&path))).await,
            Action::UnitRemoved { id, path } => {
                if let Some(file) = self.daemon.unit_gone(&id) {
                    if let Err(e) = std::fs::remove_file(&file) {
                        tracing::warn!("{}: cannot remove transient unit: {e}", file.display());
                    }
                }
                self.signal("UnitRemoved", &(id, object_path(&path))).await
            }
            Action::JobNew { id, path, unit } => {
                self.signal("JobNew", &(id, object_path(&path), unit)).await
            }
            Action::JobRemoved {
                id,
                path,
                unit,
                result,
            } => {
                self.signal(
                    "JobRemoved",
                    &(id, object_path(&path), unit, result.as_str()),
                )
                .await
            }
            Action::PropertiesChanged {
                path,
                interface,
                changed,
            } => {
                let body = (interface, to_dict(&changed), Vec::<String>::new());
                self.emit(
                    &path,
                    "org.freedesktop.DBus.Properties",
                    "PropertiesChanged",
                    &body,
                )
                .await
            }
        }
    }

    fn spawn(
        &mut self,
        token: u64,
        unit: &str,
        p: &Prepared,
        fds: &[(std::os::fd::RawFd, String)],
    ) {
        match self.procs.spawn(token, unit, &p.argv, &p.env, &p.cwd, fds) {
            Ok(pid) => {
                tracing::debug!("{unit}: spawned {:?} as {pid}", p.argv);
                self.engine.process_started(token, pid, now());
            }
            Err(e) => self
                .engine
                .spawn_failed(token, &format!("{}: {e}", p.argv.join(" ")), now()),
        }
    }

    async fn signal<B>(&self, member: &str, body: &B)
    where
        B: serde::Serialize + zvariant::DynamicType,
    {
        self.emit(MANAGER_PATH, IFACE_MANAGER, member, body).await
    }

    /// Sends a signal on the bus (while a client is subscribed, as systemd does) and on every
    /// private connection.
    async fn emit<B>(&self, path: &str, iface: &str, member: &str, body: &B)
    where
        B: serde::Serialize + zvariant::DynamicType,
    {
        if let Some(bus) = self
            .bus
            .as_ref()
            .filter(|_| !self.daemon.subscribers.is_empty())
        {
            if let Err(e) = bus
                .emit_signal(None::<&str>, path, iface, member, body)
                .await
            {
                tracing::warn!("failed to emit {member} on {path}: {e}");
            }
        }
        if self.private.is_empty() {
            return;
        }
        // The private connections' writer stamps the sender (see `private`).
        let msg = Message::signal(path, iface, member).and_then(|b| b.build(body));
        match msg {
            Ok(m) => {
                for (id, c) in &self.private {
                    c.push(*id, m.clone());
                }
            }
            Err(e) => tracing::warn!("failed to build {member}: {e}"),
        }
    }

    /// SIGTERM every process group still alive, SIGKILL what is left after a grace period,
    /// and reap everything, including adopted orphans.
    async fn shutdown(&mut self) {
        if self.procs.live_count() > 0 {
            tracing::info!("Killing {} remaining processes", self.procs.live_count());
        }
        let tokens = self.procs.all_tokens();
        self.procs.kill(&tokens, libc::SIGTERM);
        for pid in adopted_children() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Instant::now() < deadline {
            self.procs.reap();
            if self.procs.live_count() == 0 && adopted_children().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tokens = self.procs.all_tokens();
        self.procs.kill(&tokens, libc::SIGKILL);
        for pid in adopted_children() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            self.procs.reap();
            if self.procs.live_count() == 0 && adopted_children().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
