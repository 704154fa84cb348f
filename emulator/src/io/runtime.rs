//! The event loop: one task owns the engine and feeds it bus calls, child exits and timers.

use super::bus::{dispatch, error_reply, IFACE_MANAGER, MANAGER_PATH};
use super::clock::now;
use super::convert::{object_path, to_dict};
use super::notify::NotifySockets;
use super::procs::{adopted_children, prepare, Prepared, Procs};
use crate::engine::{Action, Engine, LogLevel};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use zbus::message::{Flags, Type as MsgType};
use zbus::{Connection, MessageStream};

/// How long stopped children get between SIGTERM and SIGKILL at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub struct Runtime {
    conn: Connection,
    engine: Engine,
    procs: Procs,
    notify: NotifySockets,
    timer_tx: mpsc::UnboundedSender<u64>,
}

impl Runtime {
    /// Runs until SIGTERM/SIGINT (then stops all children) or until the bus connection ends.
    pub async fn run(
        conn: Connection,
        engine: Engine,
        mut stream: MessageStream,
    ) -> std::io::Result<()> {
        let (timer_tx, mut timer_rx) = mpsc::unbounded_channel();
        let (notify_tx, mut notify_rx) = mpsc::unbounded_channel();
        let mut rt = Runtime {
            conn,
            engine,
            procs: Procs::default(),
            notify: NotifySockets::new(notify_tx),
            timer_tx,
        };
        let mut sigchld = signal(SignalKind::child())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        rt.execute().await;
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(m)) => rt.on_message(m).await,
                    Some(Err(e)) => tracing::warn!("bad D-Bus message: {e}"),
                    None => {
                        tracing::error!("D-Bus connection closed");
                        break;
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
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
        rt.shutdown().await;
        Ok(())
    }

    async fn on_message(&mut self, msg: zbus::Message) {
        let hdr = msg.header();
        if hdr.message_type() != MsgType::MethodCall {
            return;
        }
        let reply = match dispatch(&mut self.engine, &msg, now()) {
            Ok(r) => Ok(r),
            Err(e) => error_reply(&hdr, &e),
        };
        // Reply before running actions: callers match JobRemoved against the returned path.
        if !hdr.primary().flags().contains(Flags::NoReplyExpected) {
            match reply {
                Ok(r) => {
                    if let Err(e) = self.conn.send(&r).await {
                        tracing::warn!("failed to send reply: {e}");
                    }
                }
                Err(e) => tracing::warn!("failed to build reply: {e}"),
            }
        }
        self.execute().await;
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
                self.spawn(token, &unit, &p)
            }
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
                if let Err(e) = self
                    .conn
                    .emit_signal(
                        None::<&str>,
                        path.as_str(),
                        "org.freedesktop.DBus.Properties",
                        "PropertiesChanged",
                        &body,
                    )
                    .await
                {
                    tracing::warn!("failed to emit PropertiesChanged on {path}: {e}");
                }
            }
        }
    }

    fn spawn(&mut self, token: u64, unit: &str, p: &Prepared) {
        match self.procs.spawn(token, &p.argv, &p.env, &p.cwd) {
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
        if let Err(e) = self
            .conn
            .emit_signal(None::<&str>, MANAGER_PATH, IFACE_MANAGER, member, body)
            .await
        {
            tracing::warn!("failed to emit {member}: {e}");
        }
    }

    /// SIGTERM every process group we started, SIGKILL what is left after a grace period,
    /// and reap everything, including adopted orphans.
    async fn shutdown(&mut self) {
        tracing::info!(
            "Shutting down: stopping {} processes",
            self.procs.live_count()
        );
        let tokens = self.procs.all_tokens();
        self.procs.kill(&tokens, libc::SIGTERM);
        for pid in adopted_children() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while tokio::time::Instant::now() < deadline {
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
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            self.procs.reap();
            if self.procs.live_count() == 0 && adopted_children().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
