//! sd_notify messages (`READY=1`, `STATUS=...`) sent by a service's processes.

use super::types::*;
use super::unit::SvcPhase;
use super::Engine;
use crate::unitfile::{NotifyAccess, ServiceType};

/// The `KEY=VALUE` lines of a notification; lines without `=` are ignored like systemd does.
pub fn parse_fields(message: &str) -> Vec<(&str, &str)> {
    message
        .split('\n')
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

impl Engine {
    /// Whether processes of `unit` get a NOTIFY_SOCKET (NotifyAccess= is not `none`).
    pub fn accepts_notify(&self, unit: &str) -> bool {
        self.units
            .get(unit)
            .and_then(|u| u.service_def())
            .is_some_and(|d| d.notify_access() != NotifyAccess::None)
    }

    /// A notification from process `pid`, which belongs to the process group of `token` (the
    /// IO layer resolves the sender; with NotifyAccess=all any process of the unit may send).
    pub fn notify(&mut self, token: u64, pid: u32, message: &str, now: Now) {
        let Some((name, _)) = self.procs.get(&token).cloned() else {
            return;
        };
        let Some(u) = self.units.get(&name) else {
            return;
        };
        let Some(def) = u.service_def() else {
            return;
        };
        let main_pid = u.svc.main.map(|p| p.pid).filter(|p| *p != 0);
        let control_pid = u.svc.control.map(|p| p.pid).filter(|p| *p != 0);
        let allowed = match def.notify_access() {
            NotifyAccess::None => false,
            NotifyAccess::Main => main_pid == Some(pid),
            NotifyAccess::Exec => main_pid == Some(pid) || control_pid == Some(pid),
            NotifyAccess::All => true,
        };
        if !allowed {
            let why = match def.notify_access() {
                NotifyAccess::None => "reception is disabled".to_string(),
                _ => format!(
                    "reception only permitted for main PID {}",
                    main_pid.unwrap_or(0)
                ),
            };
            self.log(
                LogLevel::Warn,
                format!("{name}: Got notification message from PID {pid}, but {why}"),
            );
            return;
        }
        let is_notify = def.service_type == ServiceType::Notify;
        let timeout_stop = def.timeout_stop_us;
        for (key, value) in parse_fields(message) {
            self.notify_field(&name, key, value, is_notify, timeout_stop, now);
        }
        self.settle(now);
    }

    fn notify_field(
        &mut self,
        name: &str,
        key: &str,
        value: &str,
        is_notify: bool,
        timeout_stop: u64,
        now: Now,
    ) {
        let Some(u) = self.units.get_mut(name) else {
            return;
        };
        match (key, value) {
            ("READY", "1") => match u.svc.phase {
                SvcPhase::Start if is_notify => self.enter_running(name, now),
                SvcPhase::Reload => self.set_phase(name, SvcPhase::Running, now),
                _ => {}
            },
            ("RELOADING", "1") if u.svc.phase == SvcPhase::Running => {
                self.set_phase(name, SvcPhase::Reload, now)
            }
            // systemd's service_enter_stop_by_notify: wait for the exit, with the stop timeout.
            ("STOPPING", "1") if u.svc.phase == SvcPhase::Running => {
                self.set_phase(name, SvcPhase::StopSigterm, now);
                self.arm_stop_timer(name, timeout_stop);
            }
            ("STATUS", text) => {
                u.svc.status_text = text.to_string();
                self.dirty_services.insert(name.to_string());
            }
            ("ERRNO", n) => match n.parse::<i32>() {
                Ok(e) if e >= 0 => {
                    u.svc.status_errno = e;
                    self.dirty_services.insert(name.to_string());
                }
                _ => self.log(
                    LogLevel::Warn,
                    format!("{name}: Failed to parse ERRNO= field value '{n}' in notification message."),
                ),
            },
            ("MAINPID", n) => match n.parse::<u32>() {
                Ok(p) if p > 0 => {
                    if let Some(m) = u.svc.main.as_mut() {
                        m.pid = p;
                    }
                    u.svc.exec_main_pid = p;
                    self.dirty_services.insert(name.to_string());
                }
                _ => self.log(
                    LogLevel::Warn,
                    format!("{name}: Failed to parse MAINPID= field in notification message, ignoring: {n}"),
                ),
            },
            _ => {}
        }
    }
}
