//! Runtime state of one loaded unit.

use super::types::{ActiveState, Now};
use crate::unitfile::{Deps, ServiceDef, UnitDef, UnitKind};
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    pub realtime: u64,
    pub monotonic: u64,
}

impl From<Now> for Stamp {
    fn from(n: Now) -> Self {
        Stamp {
            realtime: n.realtime_us,
            monotonic: n.monotonic_us,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Timestamps {
    pub active_enter: Stamp,
    pub active_exit: Stamp,
    pub inactive_enter: Stamp,
    pub inactive_exit: Stamp,
}

/// A process the engine started, known by the token it handed to the IO layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub token: u64,
    pub pid: u32,
    pub ignore_failure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvcPhase {
    Dead,
    StartPre,
    Start,
    StartPost,
    Running,
    Reload,
    Exited,
    Stop,
    StopSigterm,
    StopSigkill,
    StopPost,
    FinalSigterm,
    FinalSigkill,
    Failed,
    AutoRestart,
}

impl SvcPhase {
    pub fn sub_state(self) -> &'static str {
        match self {
            SvcPhase::Dead => "dead",
            SvcPhase::StartPre => "start-pre",
            SvcPhase::Start => "start",
            SvcPhase::StartPost => "start-post",
            SvcPhase::Reload => "reload",
            SvcPhase::Running => "running",
            SvcPhase::Exited => "exited",
            SvcPhase::Stop => "stop",
            SvcPhase::StopSigterm => "stop-sigterm",
            SvcPhase::StopSigkill => "stop-sigkill",
            SvcPhase::StopPost => "stop-post",
            SvcPhase::FinalSigterm => "final-sigterm",
            SvcPhase::FinalSigkill => "final-sigkill",
            SvcPhase::Failed => "failed",
            SvcPhase::AutoRestart => "auto-restart",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServiceRuntime {
    pub phase: SvcPhase,
    pub main: Option<Proc>,
    pub control: Option<Proc>,
    /// Commands still to run in the current start (oneshot) or stop sequence.
    pub pending: VecDeque<crate::unitfile::ExecCommand>,
    pub result: &'static str,
    pub exec_main_pid: u32,
    pub exec_main_code: i32,
    pub exec_main_status: i32,
    pub exec_main_start: Stamp,
    pub exec_main_exit: Stamp,
    pub n_restarts: u32,
    /// A stop was requested (by a job or shutdown): no auto-restart afterwards.
    pub stop_requested: bool,
    pub timer: Option<u64>,
    /// The phase a reload returns to, and the last reload's result (ReloadResult).
    pub reload_from: SvcPhase,
    pub reload_result: &'static str,
    /// STATUS= and ERRNO= from sd_notify.
    pub status_text: String,
    pub status_errno: i32,
}

impl Default for ServiceRuntime {
    fn default() -> Self {
        ServiceRuntime {
            phase: SvcPhase::Dead,
            main: None,
            control: None,
            pending: VecDeque::new(),
            result: "success",
            exec_main_pid: 0,
            exec_main_code: 0,
            exec_main_status: 0,
            exec_main_start: Stamp::default(),
            exec_main_exit: Stamp::default(),
            n_restarts: 0,
            stop_requested: false,
            timer: None,
            status_text: String::new(),
            status_errno: 0,
            reload_from: SvcPhase::Running,
            reload_result: "success",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Unit {
    pub name: String,
    /// `loaded`, `not-found`, `bad-setting` or `error`.
    pub load_state: &'static str,
    pub load_error: Option<(String, String)>,
    pub def: Option<UnitDef>,
    pub fragment_path: String,
    pub unit_file_state: String,
    pub unit_file_preset: String,
    pub active: ActiveState,
    pub sub: &'static str,
    pub job: Option<u32>,
    pub ts: Timestamps,
    pub svc: ServiceRuntime,
    pub invocation_id: Vec<u8>,
    /// Monotonic times of recent starts, for the start rate limit.
    pub recent_starts: VecDeque<u64>,
    /// Monotonic times of recent automatic starts/stops (Upholds/StopWhenUnneeded/BindsTo).
    pub recent_auto: VecDeque<u64>,
    /// FreezeUnit/ThawUnit: the unit's processes are stopped (FreezerState `frozen`).
    pub frozen: bool,
    /// A socket unit waiting for the IO layer to bind its addresses.
    pub socket_binding: bool,
    /// A start was refused by the start limit (until ResetFailed); sockets give up then.
    pub start_limit_hit: bool,
}

static EMPTY_DEPS: std::sync::OnceLock<Deps> = std::sync::OnceLock::new();

impl Unit {
    pub fn new(name: &str) -> Self {
        Unit {
            name: name.to_string(),
            load_state: "not-found",
            load_error: None,
            def: None,
            fragment_path: String::new(),
            unit_file_state: String::new(),
            unit_file_preset: String::new(),
            active: ActiveState::Inactive,
            sub: "dead",
            job: None,
            ts: Timestamps::default(),
            svc: ServiceRuntime::default(),
            invocation_id: Vec::new(),
            recent_starts: VecDeque::new(),
            recent_auto: VecDeque::new(),
            frozen: false,
            socket_binding: false,
            start_limit_hit: false,
        }
    }

    pub fn deps(&self) -> &Deps {
        match &self.def {
            Some(d) => &d.deps,
            None => EMPTY_DEPS.get_or_init(Deps::default),
        }
    }

    pub fn service_def(&self) -> Option<&ServiceDef> {
        match &self.def {
            Some(UnitDef {
                kind: UnitKind::Service(s),
                ..
            }) => Some(s),
            _ => None,
        }
    }

    pub fn socket_def(&self) -> Option<&crate::unitfile::socket::SocketDef> {
        match &self.def {
            Some(UnitDef {
                kind: UnitKind::Socket(s),
                ..
            }) => Some(s),
            _ => None,
        }
    }

    /// Whether a reload job applies: a service with ExecReload=.
    pub fn can_reload(&self) -> bool {
        self.service_def()
            .is_some_and(|s| !s.exec_reload.is_empty())
    }

    pub fn is_service(&self) -> bool {
        self.name.ends_with(".service")
    }

    pub fn stop_when_unneeded(&self) -> bool {
        self.def.as_ref().is_some_and(|d| d.stop_when_unneeded)
    }

    pub fn allow_isolate(&self) -> bool {
        self.def.as_ref().is_some_and(|d| d.allow_isolate)
    }

    pub fn ignore_on_isolate(&self) -> bool {
        self.def.as_ref().is_some_and(|d| d.ignore_on_isolate)
    }

    /// OnFailureJobMode= (`success` false) or OnSuccessJobMode= (`success` true).
    pub fn handler_job_mode(&self, success: bool) -> super::types::JobMode {
        match &self.def {
            Some(d) if success => d.on_success_job_mode,
            Some(d) => d.on_failure_job_mode,
            None => super::types::JobMode::Replace,
        }
    }

    /// systemd's `bus_unit_queue_job` check: a restart counts as both a start and a stop.
    pub fn refuses_manual(&self, job_type: super::types::JobType) -> bool {
        use super::types::JobType;
        let Some(d) = &self.def else {
            return false;
        };
        match job_type {
            JobType::Start => d.refuse_manual_start,
            JobType::Stop => d.refuse_manual_stop,
            JobType::Restart => d.refuse_manual_start || d.refuse_manual_stop,
            JobType::Reload | JobType::Nop => false,
        }
    }

    pub fn description(&self) -> String {
        match &self.def {
            Some(d) if !d.description.is_empty() => d.description.clone(),
            _ => self.name.clone(),
        }
    }

    /// Tokens of the processes still alive for this unit.
    pub fn live_tokens(&self) -> Vec<u64> {
        self.svc
            .main
            .iter()
            .chain(self.svc.control.iter())
            .map(|p| p.token)
            .collect()
    }
}
