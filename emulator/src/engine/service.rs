//! The service state machine (systemd's `service.c` subset): simple, exec, oneshot, notify and
//! forking, with ExecStartPre=/ExecStartPost=/ExecStopPost=, start/stop timeouts, kill signals,
//! restart policies and the start rate limit.

use super::types::*;
use super::unit::{Proc, ServiceRuntime, SvcPhase, Unit};
use super::{Engine, Role, TimerKind};
use crate::unitfile::{ExecCommand, KillMode, RestartPolicy, ServiceDef, ServiceType};

const CLD_EXITED: i32 = 1;
const CLD_KILLED: i32 = 2;

pub(crate) fn has_processes(u: &Unit) -> bool {
    u.svc.main.is_some() || u.svc.control.is_some()
}

/// A start must wait while the unit is still stopping.
pub(crate) fn busy_stopping(u: &Unit) -> bool {
    matches!(
        u.svc.phase,
        SvcPhase::Stop
            | SvcPhase::StopSigterm
            | SvcPhase::StopSigkill
            | SvcPhase::StopPost
            | SvcPhase::FinalSigterm
            | SvcPhase::FinalSigkill
    )
}

fn state_of(phase: SvcPhase) -> ActiveState {
    match phase {
        SvcPhase::Dead => ActiveState::Inactive,
        SvcPhase::Failed => ActiveState::Failed,
        SvcPhase::StartPre | SvcPhase::Start | SvcPhase::StartPost | SvcPhase::AutoRestart => {
            ActiveState::Activating
        }
        SvcPhase::Reload => ActiveState::Reloading,
        SvcPhase::Running | SvcPhase::Exited => ActiveState::Active,
        SvcPhase::Stop
        | SvcPhase::StopSigterm
        | SvcPhase::StopSigkill
        | SvcPhase::StopPost
        | SvcPhase::FinalSigterm
        | SvcPhase::FinalSigkill => ActiveState::Deactivating,
    }
}

/// Whether an exit counts as success (systemd's `is_clean_exit`). Daemons (the main process of
/// non-oneshot services) also treat SIGHUP/SIGINT/SIGTERM/SIGPIPE as clean.
fn is_clean(exit: Exit, daemon: bool, ok_status: &[i32], ok_signals: &[i32]) -> bool {
    match exit {
        Exit::Code(c) => c == 0 || ok_status.contains(&c),
        Exit::Signal(s) => {
            ok_signals.contains(&s)
                || (daemon
                    && [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGPIPE].contains(&s))
        }
    }
}

fn describe_exit(exit: Exit) -> String {
    match exit {
        Exit::Code(c) => match bluechi_core::exit_status::name(c) {
            Some(name) => format!("code=exited, status={c}/{name}"),
            None => format!("code=exited, status={c}"),
        },
        Exit::Signal(s) => {
            let name = nix::sys::signal::Signal::try_from(s)
                .map(|s| s.as_str().trim_start_matches("SIG").to_string());
            format!("code=killed, status={s}/{}", name.unwrap_or_default())
        }
    }
}

/// Whether the main process's exit is in `set` (codes for exits, signals for kills), as
/// systemd's `exit_status_set_test`.
fn exit_in(set: &(Vec<i32>, Vec<i32>), svc: &ServiceRuntime) -> bool {
    match svc.exec_main_code {
        CLD_EXITED => set.0.contains(&svc.exec_main_status),
        CLD_KILLED => set.1.contains(&svc.exec_main_status),
        _ => false,
    }
}

/// systemd's `service_shall_restart` (the caller handles manual stops and the start limit).
pub(crate) fn shall_restart(def: &ServiceDef, svc: &ServiceRuntime) -> bool {
    if exit_in(&def.restart_prevent, svc) {
        return false;
    }
    if exit_in(&def.restart_force, svc) {
        return true;
    }
    let r = svc.result;
    match def.restart {
        RestartPolicy::No => false,
        RestartPolicy::Always => true,
        RestartPolicy::OnSuccess => r == "success",
        RestartPolicy::OnFailure => r != "success",
        RestartPolicy::OnAbnormal => !matches!(r, "success" | "exit-code"),
        RestartPolicy::OnWatchdog => r == "watchdog",
        RestartPolicy::OnAbort => matches!(r, "signal" | "core-dump"),
    }
}

impl Engine {
    pub(crate) fn set_phase(&mut self, name: &str, phase: SvcPhase, now: Now) {
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        u.svc.phase = phase;
        self.set_state(name, state_of(phase), phase.sub_state(), now);
    }

    fn spawn(&mut self, name: &str, cmd: &ExecCommand, role: Role) -> Proc {
        let token = self.next_token;
        self.next_token += 1;
        let def = self.units.get(name).and_then(|u| u.service_def());
        let env = def.map(|s| s.environment.clone()).unwrap_or_default();
        let ctx = def
            .map(|s| ExecContext {
                env_files: s.environment_files.clone(),
                working_directory: s.working_directory.clone(),
                unset_environment: s.unset_environment.clone(),
                sockets: Vec::new(),
            })
            .unwrap_or_default();
        let ctx = ExecContext {
            sockets: if role == Role::Main {
                self.sockets_for(name)
            } else {
                Vec::new()
            },
            ..ctx
        };
        let argv = if ctx.env_files.is_empty() {
            super::envexpand::expand_argv(&cmd.argv, &ctx.merge(&env, &[]))
        } else {
            cmd.argv.clone()
        };
        self.procs.insert(token, (name.to_string(), role));
        self.actions.push(Action::Spawn {
            token,
            unit: name.to_string(),
            argv,
            env,
            ctx,
        });
        Proc {
            token,
            pid: 0,
            ignore_failure: cmd.ignore_failure,
        }
    }

    /// systemd's `unit_test_start_limit`: more than StartLimitBurst= starts within
    /// StartLimitIntervalSec= (an interval of 0 disables the limit).
    fn start_limit_hit(&mut self, name: &str, now: Now) -> bool {
        let Some(u) = self.units.get_mut(name) else {
            return false;
        };
        let (interval, burst) = u
            .def
            .as_ref()
            .map(|d| (d.start_limit_interval_us, d.start_limit_burst))
            .unwrap_or((10_000_000, 5));
        if interval == 0 {
            return false;
        }
        while u
            .recent_starts
            .front()
            .is_some_and(|t| now.monotonic_us.saturating_sub(*t) >= interval)
        {
            u.recent_starts.pop_front();
        }
        if u.recent_starts.len() >= burst as usize {
            return true;
        }
        u.recent_starts.push_back(now.monotonic_us);
        false
    }

    pub(crate) fn service_start(&mut self, name: &str, now: Now) {
        if self.start_limit_hit(name, now) {
            self.log(
                LogLevel::Warn,
                format!("{name}: Start request repeated too quickly."),
            );
            // Like systemd's service_enter_dead: only a successful result is overwritten.
            if let Some(u) = self.units.get_mut(name) {
                u.start_limit_hit = true;
                if u.svc.result == "success" {
                    u.svc.result = "start-limit-hit";
                }
            }
            self.dirty_services.insert(name.to_string());
            self.set_phase(name, SvcPhase::Failed, now);
            self.log(LogLevel::Warn, format!("Failed to start {name}."));
            // An already failed unit does not change state, so the job is failed here.
            let job = self.units.get(name).and_then(|u| u.job);
            if let Some(id) = job.filter(|id| {
                self.jobs
                    .get(id)
                    .is_some_and(|j| j.job_type == JobType::Start)
            }) {
                self.finish_job(id, JobResult::Failed, true, now);
            }
            return;
        }
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        let Some(def) = u.service_def().cloned() else {
            return;
        };
        if let Some(t) = u.svc.timer.take() {
            self.timers.remove(&t);
        }
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        self.invocation_counter += 1;
        let mut id = Vec::with_capacity(16);
        id.extend_from_slice(&now.realtime_us.to_be_bytes());
        id.extend_from_slice(&self.invocation_counter.to_be_bytes());
        u.invocation_id = id;
        u.svc.result = "success";
        u.svc.stop_requested = false;
        u.svc.status_text.clear();
        u.svc.status_errno = 0;
        u.svc.pending = def.exec_start_pre.iter().cloned().collect();
        self.dirty_services.insert(name.to_string());
        self.log(LogLevel::Info, format!("Starting {name}..."));
        self.arm_timer(name, TimerKind::StartTimeout, def.start_timeout_us());
        if def.exec_start_pre.is_empty() {
            self.enter_start(name, now);
        } else {
            self.set_phase(name, SvcPhase::StartPre, now);
            self.start_pre_next(name, now);
        }
    }

    /// Queues the unit's `pick` command lines to run one by one; false if there are none.
    fn queue_commands(&mut self, name: &str, pick: fn(&ServiceDef) -> &Vec<ExecCommand>) -> bool {
        let Some(u) = self.units.get_mut(name) else {
            return false;
        };
        let cmds: std::collections::VecDeque<ExecCommand> = u
            .service_def()
            .map(|s| pick(s).iter().cloned().collect())
            .unwrap_or_default();
        if cmds.is_empty() {
            return false;
        }
        u.svc.pending = cmds;
        true
    }

    /// Spawns the next queued control command (ExecStartPre=, ExecReload=, ExecStop=); false
    /// when the queue is empty.
    fn next_control(&mut self, name: &str) -> bool {
        let next = self
            .units
            .get_mut(name)
            .and_then(|u| u.svc.pending.pop_front());
        let Some(cmd) = next else {
            return false;
        };
        let p = self.spawn(name, &cmd, Role::Control);
        if let Some(u) = self.units.get_mut(name) {
            u.svc.control = Some(p);
        }
        true
    }

    /// Runs the next ExecStartPre= line as the control process, or goes on to ExecStart=.
    fn start_pre_next(&mut self, name: &str, now: Now) {
        if !self.next_control(name) {
            self.enter_start(name, now);
        }
    }

    /// Runs ExecStart=; how the start completes depends on Type=.
    fn enter_start(&mut self, name: &str, now: Now) {
        let Some(def) = self.units.get(name).and_then(|u| u.service_def()).cloned() else {
            return;
        };
        if let Some(u) = self.units.get_mut(name) {
            u.svc.pending = def.exec_start.iter().cloned().collect();
        }
        match def.service_type {
            ServiceType::Simple | ServiceType::Exec | ServiceType::Notify => {
                let Some(cmd) = self
                    .units
                    .get_mut(name)
                    .and_then(|u| u.svc.pending.pop_front())
                else {
                    self.set_phase(name, SvcPhase::Failed, now);
                    return;
                };
                self.start_main(name, &cmd, now);
                match def.service_type {
                    ServiceType::Simple => self.enter_running(name, now),
                    // `activating/start` until the exec succeeded (process_started) or
                    // READY=1 came (notify), as systemd 252 shows them.
                    _ => self.set_phase(name, SvcPhase::Start, now),
                }
            }
            ServiceType::Forking => {
                let Some(cmd) = self
                    .units
                    .get_mut(name)
                    .and_then(|u| u.svc.pending.pop_front())
                else {
                    self.set_phase(name, SvcPhase::Failed, now);
                    return;
                };
                // Like systemd, the forking parent is the control process until it exits.
                let p = self.spawn(name, &cmd, Role::Control);
                if let Some(u) = self.units.get_mut(name) {
                    u.svc.control = Some(p);
                    u.svc.main = None;
                    u.svc.exec_main_pid = 0;
                }
                self.set_phase(name, SvcPhase::Start, now);
            }
            ServiceType::Oneshot => {
                self.set_phase(name, SvcPhase::Start, now);
                self.oneshot_next(name, now);
            }
        }
    }

    /// The main start finished (forked, exec'd, READY=1, PID found or every oneshot line ran):
    /// ExecStartPost= lines run in `activating/start-post` before the start completes.
    pub(crate) fn enter_running(&mut self, name: &str, now: Now) {
        if !self.units.contains_key(name) {
            return;
        }
        if !self.queue_commands(name, |s| &s.exec_start_post) {
            self.start_complete(name, now);
            return;
        }
        self.set_phase(name, SvcPhase::StartPost, now);
        self.start_post_next(name, now);
    }

    fn start_post_next(&mut self, name: &str, now: Now) {
        if !self.next_control(name) {
            self.start_complete(name, now);
        }
    }

    /// systemd's `service_enter_running`: `active/running` while the main process lives, else
    /// `exited` (RemainAfterExit=) or stop; a failure recorded meanwhile terminates instead.
    fn start_complete(&mut self, name: &str, now: Now) {
        self.disarm_timer(name);
        let Some(u) = self.units.get(name) else {
            return;
        };
        let oneshot = u
            .service_def()
            .is_some_and(|s| s.service_type == ServiceType::Oneshot);
        let remain = u.service_def().is_some_and(|s| s.remain_after_exit);
        if u.svc.result != "success" {
            self.enter_sigterm(name, now);
        } else if u.svc.main.is_some() {
            self.log(LogLevel::Info, format!("Started {name}."));
            self.set_phase(name, SvcPhase::Running, now);
        } else {
            let verb = if oneshot { "Finished" } else { "Started" };
            self.log(LogLevel::Info, format!("{verb} {name}."));
            if remain {
                self.set_phase(name, SvcPhase::Exited, now);
            } else {
                self.enter_stop(name, now);
            }
        }
    }

    pub(crate) fn disarm_timer(&mut self, name: &str) {
        if let Some(t) = self.units.get_mut(name).and_then(|u| u.svc.timer.take()) {
            self.timers.remove(&t);
        }
    }

    /// Replaces the unit's timer; `u64::MAX` means no timeout.
    fn arm_timer(&mut self, name: &str, kind: TimerKind, timeout: u64) {
        self.disarm_timer(name);
        if timeout == u64::MAX {
            return;
        }
        let id = self.set_timer(kind, name, timeout);
        if let Some(u) = self.units.get_mut(name) {
            u.svc.timer = Some(id);
        }
    }

    /// TimeoutStartSec= elapsed in start-pre/start: terminate with result `timeout`.
    pub(crate) fn service_start_timeout(&mut self, name: &str, timer: u64, now: Now) {
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        if u.svc.timer != Some(timer) {
            return;
        }
        u.svc.timer = None;
        if !matches!(
            u.svc.phase,
            SvcPhase::StartPre | SvcPhase::Start | SvcPhase::StartPost
        ) {
            return;
        }
        u.svc.pending.clear();
        if u.svc.result == "success" {
            u.svc.result = "timeout";
        }
        self.dirty_services.insert(name.to_string());
        self.log(
            LogLevel::Warn,
            format!("{name}: start operation timed out. Terminating."),
        );
        self.enter_sigterm(name, now);
    }

    /// Type=forking: the IO layer found the daemon (`pid`) the parent behind `token` left
    /// behind, or nothing (`None`: the service has no processes left and stops).
    pub fn main_pid_found(&mut self, token: u64, pid: Option<u32>, now: Now) {
        let Some(name) = self.forking_waits.remove(&token) else {
            return;
        };
        let in_start = self
            .units
            .get(&name)
            .is_some_and(|u| u.svc.phase == SvcPhase::Start);
        match pid {
            Some(pid) if in_start => {
                self.procs.insert(token, (name.clone(), Role::Main));
                if let Some(u) = self.units.get_mut(&name) {
                    u.svc.main = Some(Proc {
                        token,
                        pid,
                        ignore_failure: false,
                    });
                    u.svc.exec_main_pid = pid;
                    u.svc.exec_main_start = now.into();
                }
                self.dirty_services.insert(name.clone());
                self.enter_running(&name, now);
            }
            Some(_) => {
                // The start was aborted meanwhile; the daemon still has to go.
                self.procs.insert(token, (name.clone(), Role::Main));
                if let Some(u) = self.units.get_mut(&name) {
                    u.svc.main = Some(Proc {
                        token,
                        pid: 0,
                        ignore_failure: false,
                    });
                }
                if let Some(u) = self.units.get(&name) {
                    let tokens = self.kill_tokens(u, false);
                    self.actions.push(Action::Kill {
                        unit: name.clone(),
                        tokens,
                        signal: libc::SIGTERM,
                    });
                }
            }
            None if in_start => {
                self.log(
                    LogLevel::Info,
                    format!("{name}: Supervising process not found, no processes left."),
                );
                self.disarm_timer(&name);
                self.enter_stop(&name, now);
            }
            None => {}
        }
        self.settle(now);
    }

    fn start_main(&mut self, name: &str, cmd: &ExecCommand, now: Now) {
        let p = self.spawn(name, cmd, Role::Main);
        if let Some(u) = self.units.get_mut(name) {
            u.svc.main = Some(p);
            u.svc.exec_main_pid = 0;
            u.svc.exec_main_code = 0;
            u.svc.exec_main_status = 0;
            u.svc.exec_main_start = now.into();
        }
        self.dirty_services.insert(name.to_string());
    }

    /// Runs the next oneshot ExecStart= line, or finishes the start.
    fn oneshot_next(&mut self, name: &str, now: Now) {
        let next = self
            .units
            .get_mut(name)
            .and_then(|u| u.svc.pending.pop_front());
        match next {
            Some(cmd) => self.start_main(name, &cmd, now),
            None => self.enter_running(name, now),
        }
    }

    pub(crate) fn service_stop(&mut self, name: &str, now: Now) {
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        u.svc.stop_requested = true;
        let phase = u.svc.phase;
        match phase {
            SvcPhase::Dead | SvcPhase::Failed => {
                if has_processes(u) {
                    self.enter_sigterm(name, now);
                } else {
                    self.set_phase(name, phase, now);
                }
            }
            SvcPhase::AutoRestart => {
                if let Some(t) = self.units.get_mut(name).and_then(|u| u.svc.timer.take()) {
                    self.timers.remove(&t);
                }
                self.set_phase(name, SvcPhase::Dead, now);
            }
            SvcPhase::StartPre | SvcPhase::Start | SvcPhase::StartPost | SvcPhase::Reload => {
                if let Some(u) = self.units.get_mut(name) {
                    u.svc.pending.clear();
                }
                self.log(LogLevel::Info, format!("Stopping {name}..."));
                self.enter_sigterm(name, now);
            }
            SvcPhase::Running | SvcPhase::Exited => {
                self.log(LogLevel::Info, format!("Stopping {name}..."));
                self.enter_stop(name, now);
            }
            SvcPhase::Stop
            | SvcPhase::StopSigterm
            | SvcPhase::StopSigkill
            | SvcPhase::StopPost
            | SvcPhase::FinalSigterm
            | SvcPhase::FinalSigkill => {}
        }
    }

    /// Runs the ExecReload= lines as control processes in `reloading/reload`.
    pub(crate) fn service_reload(&mut self, name: &str, now: Now) {
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        let Some(cmds) = u.service_def().map(|s| s.exec_reload.clone()) else {
            return;
        };
        u.svc.reload_from = u.svc.phase;
        u.svc.reload_result = "success";
        u.svc.pending = cmds.into_iter().collect();
        self.log(LogLevel::Info, format!("Reloading {name}..."));
        self.set_phase(name, SvcPhase::Reload, now);
        self.reload_next(name, now);
    }

    fn reload_next(&mut self, name: &str, now: Now) {
        if !self.next_control(name) {
            self.reload_finish(name, true, now);
        }
    }

    /// Back to the phase before the reload; the reload job is done or failed (the unit itself
    /// stays active either way, only ReloadResult records the failure).
    fn reload_finish(&mut self, name: &str, ok: bool, now: Now) {
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        u.svc.pending.clear();
        if !ok {
            u.svc.reload_result = "exit-code";
        }
        let back = u.svc.reload_from;
        let job = u.job;
        self.dirty_services.insert(name.to_string());
        if ok {
            self.log(LogLevel::Info, format!("Reloaded {name}."));
        } else {
            self.log(LogLevel::Warn, format!("Reload failed for {name}."));
        }
        self.set_phase(name, back, now);
        let reload_job = job.filter(|id| {
            self.jobs
                .get(id)
                .is_some_and(|j| j.job_type == JobType::Reload && j.state == JobState::Running)
        });
        if let Some(id) = reload_job {
            let r = if ok {
                JobResult::Done
            } else {
                JobResult::Failed
            };
            self.finish_job(id, r, true, now);
        }
    }

    /// Runs ExecStop= lines (in `deactivating/stop`), then terminates what is left.
    fn enter_stop(&mut self, name: &str, now: Now) {
        self.thaw_for_stop(name);
        if !self.units.contains_key(name) {
            return;
        }
        if !self.queue_commands(name, |s| &s.exec_stop) {
            self.enter_sigterm(name, now);
            return;
        }
        self.set_phase(name, SvcPhase::Stop, now);
        // TimeoutStopSec= also bounds the ExecStop= lines.
        let timeout = self.stop_timeout_of(name);
        self.arm_stop_timer(name, timeout);
        self.stop_next(name, now);
    }

    fn stop_next(&mut self, name: &str, now: Now) {
        if !self.next_control(name) {
            self.enter_sigterm(name, now);
        }
    }

    fn kill_tokens(&self, u: &Unit, sigkill: bool) -> Vec<u64> {
        let mode = u
            .service_def()
            .map(|s| s.kill_mode)
            .unwrap_or(KillMode::ControlGroup);
        match (mode, sigkill) {
            (KillMode::None, _) => Vec::new(),
            (KillMode::Process, _) | (KillMode::Mixed, false) => {
                let main: Vec<u64> = u.svc.main.iter().map(|p| p.token).collect();
                if main.is_empty() {
                    u.live_tokens()
                } else {
                    main
                }
            }
            _ => u.live_tokens(),
        }
    }

    /// KillSignal=, or RestartKillSignal= while a restart job stops the unit.
    fn term_signal(&self, u: &Unit) -> i32 {
        let Some(def) = u.service_def() else {
            return libc::SIGTERM;
        };
        let restarting = u
            .job
            .and_then(|id| self.jobs.get(&id))
            .is_some_and(|j| j.job_type == JobType::Restart);
        match def.restart_kill_signal {
            Some(sig) if restarting => sig,
            _ => def.kill_signal,
        }
    }

    fn stop_timeout_of(&self, name: &str) -> u64 {
        self.units
            .get(name)
            .and_then(|u| u.service_def())
            .map(|s| s.timeout_stop_us)
            .unwrap_or(90_000_000)
    }

    fn sends_sigkill(&self, name: &str) -> bool {
        self.units
            .get(name)
            .and_then(|u| u.service_def())
            .is_none_or(|s| s.send_sigkill)
    }

    /// Sends KillSignal= to the remaining processes (`deactivating/stop-sigterm`), or goes on
    /// to ExecStopPost=.
    fn enter_sigterm(&mut self, name: &str, now: Now) {
        if !self.signal_remaining(name, SvcPhase::StopSigterm, now) {
            self.forget_processes(name);
            self.enter_stop_post(name, now);
        }
    }

    /// Sends KillSignal= to what is left and enters `phase` with the stop timeout; false when
    /// nothing is left to signal.
    fn signal_remaining(&mut self, name: &str, phase: SvcPhase, now: Now) -> bool {
        let Some(u) = self.units.get(name) else {
            return false;
        };
        let tokens = self.kill_tokens(u, false);
        if tokens.is_empty() {
            return false;
        }
        let signal = self.term_signal(u);
        let timeout = self.stop_timeout_of(name);
        self.actions.push(Action::Kill {
            unit: name.to_string(),
            tokens,
            signal,
        });
        self.thaw_for_stop(name);
        self.set_phase(name, phase, now);
        self.arm_stop_timer(name, timeout);
        true
    }

    /// Runs ExecStopPost= lines in `deactivating/stop-post` (after every stop, failed starts
    /// included), then cleans up what is left.
    fn enter_stop_post(&mut self, name: &str, now: Now) {
        if !self.units.contains_key(name) {
            return;
        }
        if !self.queue_commands(name, |s| &s.exec_stop_post) {
            self.enter_final_sigterm(name, now);
            return;
        }
        self.set_phase(name, SvcPhase::StopPost, now);
        let timeout = self.stop_timeout_of(name);
        self.arm_stop_timer(name, timeout);
        self.stop_post_next(name, now);
    }

    fn stop_post_next(&mut self, name: &str, now: Now) {
        if !self.next_control(name) {
            self.enter_final_sigterm(name, now);
        }
    }

    /// Terminates what ExecStopPost= (or SendSIGKILL=no) left behind (`final-sigterm`).
    fn enter_final_sigterm(&mut self, name: &str, now: Now) {
        if let Some(u) = self.units.get_mut(name) {
            u.svc.pending.clear();
        }
        if !self.signal_remaining(name, SvcPhase::FinalSigterm, now) {
            self.forget_processes(name);
            self.enter_dead(name, now);
        }
    }

    pub(crate) fn arm_stop_timer(&mut self, name: &str, timeout: u64) {
        self.arm_timer(name, TimerKind::StopTimeout, timeout);
    }

    pub(crate) fn service_stop_timeout(&mut self, name: &str, timer: u64, now: Now) {
        let sigkill = self.sends_sigkill(name);
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        if u.svc.timer != Some(timer) {
            return;
        }
        u.svc.timer = None;
        match u.svc.phase {
            SvcPhase::Stop => {
                // Like systemd: a hanging ExecStop= gets KillSignal= first, SIGKILL only later.
                u.svc.pending.clear();
                if u.svc.result == "success" {
                    u.svc.result = "timeout";
                }
                self.log(
                    LogLevel::Warn,
                    format!("{name}: Stopping timed out. Terminating."),
                );
                self.enter_sigterm(name, now);
            }
            SvcPhase::StopSigterm if !sigkill => {
                if let Some(u) = self.units.get_mut(name) {
                    if u.svc.result == "success" {
                        u.svc.result = "timeout";
                    }
                }
                self.log(
                    LogLevel::Warn,
                    format!("{name}: State 'stop-sigterm' timed out. Skipping SIGKILL."),
                );
                self.enter_stop_post(name, now);
            }
            SvcPhase::StopSigterm | SvcPhase::FinalSigterm => {
                let final_ = u.svc.phase == SvcPhase::FinalSigterm;
                if u.svc.result == "success" {
                    u.svc.result = "timeout";
                }
                if final_ && !sigkill {
                    self.log(
                        LogLevel::Warn,
                        format!("{name}: State 'final-sigterm' timed out. Skipping SIGKILL. Entering failed mode."),
                    );
                    self.forget_processes(name);
                    self.enter_dead(name, now);
                    return;
                }
                let tokens = self
                    .units
                    .get(name)
                    .map(|u| self.kill_tokens(u, true))
                    .unwrap_or_default();
                let (state, next) = if final_ {
                    ("final-sigterm", SvcPhase::FinalSigkill)
                } else {
                    ("stop-sigterm", SvcPhase::StopSigkill)
                };
                self.log(
                    LogLevel::Warn,
                    format!("{name}: State '{state}' timed out. Killing."),
                );
                self.actions.push(Action::Kill {
                    unit: name.to_string(),
                    tokens,
                    signal: libc::SIGKILL,
                });
                let timeout = self.stop_timeout_of(name);
                self.set_phase(name, next, now);
                self.arm_stop_timer(name, timeout);
            }
            SvcPhase::StopSigkill => {
                self.log(
                    LogLevel::Warn,
                    format!("{name}: Processes still around after SIGKILL. Ignoring."),
                );
                self.forget_processes(name);
                self.enter_stop_post(name, now);
            }
            SvcPhase::StopPost => {
                if u.svc.result == "success" {
                    u.svc.result = "timeout";
                }
                self.log(
                    LogLevel::Warn,
                    format!("{name}: State 'stop-post' timed out. Terminating."),
                );
                self.enter_final_sigterm(name, now);
            }
            SvcPhase::FinalSigkill => {
                if u.svc.result == "success" {
                    u.svc.result = "timeout";
                }
                self.log(
                    LogLevel::Warn,
                    format!(
                        "{name}: Processes still around after final SIGKILL. Entering failed mode."
                    ),
                );
                self.forget_processes(name);
                self.enter_dead(name, now);
            }
            _ => {}
        }
    }

    fn forget_processes(&mut self, name: &str) {
        if let Some(u) = self.units.get_mut(name) {
            for t in u.live_tokens() {
                self.procs.remove(&t);
            }
            u.svc.main = None;
            u.svc.control = None;
            u.svc.pending.clear();
        }
    }

    /// Final state: `inactive/dead` on success, else `failed/failed` (or auto-restart).
    fn enter_dead(&mut self, name: &str, now: Now) {
        self.thaw_for_stop(name);
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        if let Some(t) = u.svc.timer.take() {
            self.timers.remove(&t);
        }
        let Some(u) = self.units.get(name) else {
            return;
        };
        let success = u.svc.result == "success";
        let policy = u.service_def().map(|s| (s.restart, s.restart_sec_us));
        let restart = !u.svc.stop_requested
            && u.svc.result != "start-limit-hit"
            && u.service_def().is_some_and(|s| shall_restart(s, &u.svc));
        if !success {
            let r = u.svc.result;
            self.log(LogLevel::Warn, format!("{name}: Failed with result '{r}'."));
        }
        if restart {
            let delay = policy.map(|p| p.1).unwrap_or(100_000);
            self.set_phase(name, SvcPhase::AutoRestart, now);
            let id = self.set_timer(TimerKind::Restart, name, delay);
            if let Some(u) = self.units.get_mut(name) {
                u.svc.timer = Some(id);
            }
            return;
        }
        if success {
            self.set_phase(name, SvcPhase::Dead, now);
        } else {
            self.set_phase(name, SvcPhase::Failed, now);
        }
    }

    pub(crate) fn service_restart_timer(&mut self, name: &str, timer: u64, now: Now) {
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        if u.svc.timer != Some(timer) || u.svc.phase != SvcPhase::AutoRestart {
            return;
        }
        u.svc.timer = None;
        u.svc.n_restarts += 1;
        self.dirty_services.insert(name.to_string());
        self.log(
            LogLevel::Info,
            format!(
                "{name}: Scheduled restart job, restart counter is at {}.",
                self.units.get(name).map(|u| u.svc.n_restarts).unwrap_or(0)
            ),
        );
        // The unit leaves auto-restart through a fresh start job, like systemd's restart job.
        if let Some(u) = self.units.get_mut(name) {
            u.svc.phase = SvcPhase::Dead;
        }
        if let Err(e) = self.add_transaction(name, JobType::Start, JobMode::Replace, now) {
            self.log(
                LogLevel::Warn,
                format!("{name}: Failed to schedule restart job: {}", e.message),
            );
            self.set_phase(name, SvcPhase::Failed, now);
        }
    }

    /// The IO layer forked the process behind `token` as `pid`.
    pub fn process_started(&mut self, token: u64, pid: u32, now: Now) {
        let Some((name, role)) = self.procs.get(&token).cloned() else {
            return;
        };
        let Some(u) = self.units.get_mut(&name) else {
            return;
        };
        let slot = match role {
            Role::Main => &mut u.svc.main,
            Role::Control => &mut u.svc.control,
        };
        if let Some(p) = slot.as_mut().filter(|p| p.token == token) {
            p.pid = pid;
        }
        if role == Role::Main {
            u.svc.exec_main_pid = pid;
            self.dirty_services.insert(name.clone());
            let is_exec = u
                .service_def()
                .is_some_and(|s| s.service_type == ServiceType::Exec);
            if is_exec && u.svc.phase == SvcPhase::Start {
                self.enter_running(&name, now);
            }
        }
        self.settle(now);
    }

    /// The IO layer could not start the process behind `token` (reported like exit 203/EXEC).
    pub fn spawn_failed(&mut self, token: u64, message: &str, now: Now) {
        if let Some((name, _)) = self.procs.get(&token) {
            let name = name.clone();
            self.log(
                LogLevel::Warn,
                format!("{name}: Failed to execute: {message}"),
            );
        }
        self.process_exited(token, Exit::Code(203), now);
    }

    /// The IO layer could not prepare the process behind `token` (e.g. a missing
    /// EnvironmentFile=): like systemd, the unit fails with result `resources`, no process ran.
    pub fn spawn_refused(&mut self, token: u64, message: &str, now: Now) {
        let Some((name, role)) = self.procs.remove(&token) else {
            return;
        };
        self.log(
            LogLevel::Warn,
            format!("{name}: Failed to run process: {message}"),
        );
        if let Some(u) = self.units.get_mut(&name) {
            let slot = match role {
                Role::Main => &mut u.svc.main,
                Role::Control => &mut u.svc.control,
            };
            if slot.is_some_and(|p| p.token == token) {
                *slot = None;
            }
            u.svc.pending.clear();
            if u.svc.result == "success" {
                u.svc.result = "resources";
            }
        }
        self.dirty_services.insert(name.clone());
        self.enter_sigterm(&name, now);
        self.settle(now);
    }

    /// A process of ours ended.
    pub fn process_exited(&mut self, token: u64, exit: Exit, now: Now) {
        let Some((name, role)) = self.procs.remove(&token) else {
            return;
        };
        let Some(u) = self.units.get_mut(&name) else {
            return;
        };
        let Some(def) = u.service_def().cloned() else {
            return;
        };
        let slot = match role {
            Role::Main => &mut u.svc.main,
            Role::Control => &mut u.svc.control,
        };
        // A superseded process (its slot now holds a newer one) must not clear that slot.
        let Some(proc_) = slot.take_if(|p| p.token == token) else {
            return;
        };
        let daemon = role == Role::Main && def.service_type != ServiceType::Oneshot;
        let clean = proc_.ignore_failure
            || is_clean(exit, daemon, &def.success_exit_status, &def.success_signals);
        let failure_result = match exit {
            Exit::Code(_) => "exit-code",
            Exit::Signal(_) => "signal",
        };
        let what = if role == Role::Main {
            "Main process"
        } else {
            "Control process"
        };
        let level = if clean {
            LogLevel::Info
        } else {
            LogLevel::Warn
        };
        self.log(
            level,
            format!("{name}: {what} exited, {}", describe_exit(exit)),
        );
        let Some(u) = self.units.get_mut(&name) else {
            return;
        };
        if role == Role::Main {
            u.svc.exec_main_exit = now.into();
            let (code, status) = match exit {
                Exit::Code(c) => (CLD_EXITED, c),
                Exit::Signal(s) => (CLD_KILLED, s),
            };
            u.svc.exec_main_code = code;
            u.svc.exec_main_status = status;
            self.dirty_services.insert(name.clone());
        }
        let Some(u) = self.units.get_mut(&name) else {
            return;
        };
        // A failed ExecReload= only sets ReloadResult, not the unit's result.
        let reloading = u.svc.phase == SvcPhase::Reload && role == Role::Control;
        if !clean && u.svc.result == "success" && !reloading {
            u.svc.result = failure_result;
            self.dirty_services.insert(name.clone());
        }
        let phase = u.svc.phase;
        match (phase, role) {
            (SvcPhase::StartPre, Role::Control) => {
                if clean {
                    self.start_pre_next(&name, now);
                } else {
                    self.enter_sigterm(&name, now);
                }
            }
            (SvcPhase::Start, Role::Control) if def.service_type == ServiceType::Forking => {
                if clean {
                    self.forking_waits.insert(token, name.clone());
                    self.actions.push(Action::FindMainPid {
                        unit: name.clone(),
                        token,
                        pid_file: def.pid_file.clone(),
                    });
                } else {
                    self.enter_sigterm(&name, now);
                }
            }
            (SvcPhase::Start, Role::Main) if def.service_type == ServiceType::Notify => {
                // Only READY=1 completes the start; a clean exit before it is a protocol error.
                if let Some(u) = self.units.get_mut(&name) {
                    if u.svc.result == "success" {
                        u.svc.result = "protocol";
                    }
                }
                self.dirty_services.insert(name.clone());
                self.enter_sigterm(&name, now);
            }
            (SvcPhase::Running | SvcPhase::Reload, Role::Main) => {
                if !clean {
                    self.enter_sigterm(&name, now);
                } else if def.remain_after_exit {
                    self.set_phase(&name, SvcPhase::Exited, now);
                } else {
                    self.enter_stop(&name, now);
                }
            }
            (SvcPhase::Start, Role::Main) => {
                if clean {
                    self.oneshot_next(&name, now);
                } else {
                    self.enter_sigterm(&name, now);
                }
            }
            (SvcPhase::Reload, Role::Control) => {
                if clean {
                    self.reload_next(&name, now);
                } else {
                    self.reload_finish(&name, false, now);
                }
            }
            (SvcPhase::StartPost, Role::Control) => {
                if clean {
                    self.start_post_next(&name, now);
                } else {
                    self.enter_sigterm(&name, now);
                }
            }
            (SvcPhase::StartPost, Role::Main) => {
                // The start-post commands finish first, unless none is running any more.
                let control = self
                    .units
                    .get(&name)
                    .is_some_and(|u| u.svc.control.is_some());
                if !control {
                    self.enter_stop(&name, now);
                }
            }
            (SvcPhase::StopPost, Role::Control) => {
                if clean {
                    self.stop_post_next(&name, now);
                } else {
                    self.enter_final_sigterm(&name, now);
                }
            }
            (SvcPhase::FinalSigterm | SvcPhase::FinalSigkill, _) => {
                let left = self.units.get(&name).is_some_and(has_processes);
                if !left {
                    self.enter_dead(&name, now);
                }
            }
            (SvcPhase::Stop, Role::Control) => {
                if clean {
                    self.stop_next(&name, now);
                } else {
                    self.enter_sigterm(&name, now);
                }
            }
            (SvcPhase::StopSigterm | SvcPhase::StopSigkill, _) => {
                let left = self.units.get(&name).is_some_and(has_processes);
                if !left {
                    self.enter_stop_post(&name, now);
                }
            }
            _ => {}
        }
        self.settle(now);
    }
}
