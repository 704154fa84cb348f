//! Socket units (Accept=no): `dead` → `listening` once the IO layer has bound the addresses,
//! `running` while the triggered service runs, back to `listening` when it goes down. Traffic
//! on a listening socket starts the service, which gets the fds (systemd 252's socket.c).

use super::types::{Action, ActiveState, JobMode, JobResult, JobType, LogLevel, Now};
use super::unit::SvcPhase;
use super::Engine;
use crate::unitfile::socket::ListenAddr;

/// Service phases in which systemd puts a running socket back to listening.
fn service_is_down(phase: SvcPhase) -> bool {
    matches!(
        phase,
        SvcPhase::Dead
            | SvcPhase::Failed
            | SvcPhase::FinalSigterm
            | SvcPhase::FinalSigkill
            | SvcPhase::AutoRestart
    )
}

impl Engine {
    pub(crate) fn is_socket(&self, name: &str) -> bool {
        self.units
            .get(name)
            .is_some_and(|u| u.socket_def().is_some())
    }

    /// The listening socket units that trigger `service`, whose fds its main process gets.
    pub(crate) fn sockets_for(&self, service: &str) -> Vec<String> {
        self.units
            .values()
            .filter(|u| u.socket_def().is_some_and(|s| s.service == service))
            .filter(|u| u.active.is_active_or_reloading() && !u.socket_binding)
            .map(|u| u.name.clone())
            .collect()
    }

    /// Fails the unit's running start job without touching its state, as a refused
    /// `socket_start` does.
    fn refuse_start(&mut self, name: &str, message: String, now: Now) {
        self.log(LogLevel::Warn, format!("{name}: {message}"));
        if let Some(id) = self.units.get(name).and_then(|u| u.job) {
            self.finish_job(id, JobResult::Failed, true, now);
        }
    }

    pub(crate) fn socket_start(&mut self, name: &str, now: Now) {
        let Some(u) = self.units.get(name) else {
            return;
        };
        let Some(def) = u.socket_def().cloned() else {
            return;
        };
        let service = self.units.get(&def.service);
        if service.is_none_or(|s| s.load_state != "loaded") {
            let msg = format!("Socket service {} not loaded, refusing.", def.service);
            return self.refuse_start(name, msg, now);
        }
        // The fds belong to the running service; a second set would never be used.
        let idle = |p| matches!(p, SvcPhase::Dead | SvcPhase::Failed | SvcPhase::AutoRestart);
        if service.is_some_and(|s| !idle(s.svc.phase)) {
            let msg = format!("Socket service {} already active, refusing.", def.service);
            return self.refuse_start(name, msg, now);
        }
        if let Some(u) = self.units.get_mut(name) {
            u.socket_binding = true;
            u.svc.result = "success";
        }
        self.actions.push(Action::SocketListen {
            unit: name.to_string(),
            listen: def.listen,
            mode: def.socket_mode,
        });
    }

    /// The IO layer's answer to [`Action::SocketListen`]: the sockets are bound (`Ok`) or not.
    pub fn socket_bound(&mut self, name: &str, result: Result<(), String>, now: Now) {
        let pending = self.units.get_mut(name).is_some_and(|u| {
            std::mem::replace(&mut u.socket_binding, false) && u.socket_def().is_some()
        });
        if !pending {
            return;
        }
        match result {
            Ok(()) => self.enter_listening(name, now),
            Err(e) => {
                self.log(
                    LogLevel::Warn,
                    format!("{name}: Failed to create listening socket: {e}"),
                );
                self.socket_fail(name, "resources", now);
            }
        }
        self.settle(now);
    }

    fn enter_listening(&mut self, name: &str, now: Now) {
        self.set_state(name, ActiveState::Active, "listening", now);
        self.actions.push(Action::SocketWatch {
            unit: name.to_string(),
        });
    }

    fn socket_fail(&mut self, name: &str, result: &'static str, now: Now) {
        self.close_fds(name);
        if let Some(u) = self.units.get_mut(name) {
            u.svc.result = result;
        }
        self.set_state(name, ActiveState::Failed, "failed", now);
    }

    fn close_fds(&mut self, name: &str) {
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        u.socket_binding = false;
        let remove = match u.socket_def() {
            Some(d) if d.remove_on_stop => d
                .listen
                .iter()
                .filter_map(|l| match &l.addr {
                    ListenAddr::Path(p) => Some(p.clone()),
                    ListenAddr::Inet(_) => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        self.actions.push(Action::SocketClose {
            unit: name.to_string(),
            remove,
        });
    }

    pub(crate) fn socket_stop(&mut self, name: &str, now: Now) {
        self.close_fds(name);
        self.set_state(name, ActiveState::Inactive, "dead", now);
    }

    /// Traffic on a listening socket: start its service (systemd's `socket_enter_running`).
    pub fn socket_readable(&mut self, name: &str, now: Now) {
        let Some(u) = self.units.get(name) else {
            return;
        };
        let Some(service) = u.socket_def().map(|d| d.service.clone()) else {
            return;
        };
        if u.active != ActiveState::Active || u.sub != "listening" {
            return;
        }
        let pending = self
            .units
            .get(&service)
            .is_some_and(|s| s.active.is_active_or_activating() || s.job.is_some());
        if !pending {
            if let Err(e) = self.add_transaction(&service, JobType::Start, JobMode::Replace, now) {
                self.log(
                    LogLevel::Warn,
                    format!("{name}: Failed to queue service startup job: {}", e.message),
                );
                self.socket_fail(name, "resources", now);
                self.settle(now);
                return;
            }
        }
        self.set_state(name, ActiveState::Active, "running", now);
        self.settle(now);
        // A start refused by the service's start limit changes no state, so nothing else
        // would tell the socket (which would then sit in `running` unwatched).
        self.socket_trigger_notify(&service, now);
        self.settle(now);
    }

    /// systemd's `socket_trigger_notify`: a socket follows the state of the service it
    /// triggers once that service has no job left.
    pub(crate) fn socket_trigger_notify(&mut self, service: &str, now: Now) {
        let Some(svc) = self.units.get(service) else {
            return;
        };
        if svc.service_def().is_none() || svc.job.is_some() {
            return;
        }
        let (phase, limit_hit) = (svc.svc.phase, svc.start_limit_hit);
        let sockets: Vec<(String, &'static str)> = self
            .units
            .values()
            .filter(|u| u.socket_def().is_some_and(|d| d.service == service))
            .filter(|u| u.active == ActiveState::Active)
            .filter(|u| matches!(u.sub, "listening" | "running"))
            .map(|u| (u.name.clone(), u.sub))
            .collect();
        for (s, sub) in sockets {
            if limit_hit {
                self.log(
                    LogLevel::Warn,
                    format!("{s}: Failed with result 'service-start-limit-hit'."),
                );
                self.socket_fail(&s, "service-start-limit-hit", now);
            } else if service_is_down(phase) && sub == "running" {
                self.enter_listening(&s, now);
            } else if phase == SvcPhase::Running {
                self.set_state(&s, ActiveState::Active, "running", now);
            }
        }
    }
}
