//! Plain data the engine consumes and produces.

use crate::unitfile::UnitDef;

/// The caller's clock, passed in so the engine stays deterministic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Now {
    pub realtime_us: u64,
    pub monotonic_us: u64,
}

/// A property value, independent of any D-Bus library.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    U32(u32),
    I32(i32),
    U64(u64),
    StrList(Vec<String>),
    Bytes(Vec<u8>),
    /// `(uo)`: job id and path (`(0, "/")` for none).
    JobRef(u32, String),
    /// `(so)`: unit name and path.
    UnitRef(String, String),
    /// `(ss)`: error name and message.
    StrPair(String, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveState {
    Active,
    Reloading,
    Inactive,
    Failed,
    Activating,
    Deactivating,
}

impl ActiveState {
    pub fn as_str(self) -> &'static str {
        match self {
            ActiveState::Active => "active",
            ActiveState::Reloading => "reloading",
            ActiveState::Inactive => "inactive",
            ActiveState::Failed => "failed",
            ActiveState::Activating => "activating",
            ActiveState::Deactivating => "deactivating",
        }
    }
    pub fn is_active_or_reloading(self) -> bool {
        matches!(self, ActiveState::Active | ActiveState::Reloading)
    }
    pub fn is_inactive_or_failed(self) -> bool {
        matches!(self, ActiveState::Inactive | ActiveState::Failed)
    }
    pub fn is_active_or_activating(self) -> bool {
        matches!(
            self,
            ActiveState::Active | ActiveState::Reloading | ActiveState::Activating
        )
    }
    pub fn is_inactive_or_deactivating(self) -> bool {
        matches!(
            self,
            ActiveState::Inactive | ActiveState::Failed | ActiveState::Deactivating
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobType {
    Start,
    Stop,
    Restart,
    Reload,
    /// What try-restart/try-reload collapse to on an inactive unit: done at once.
    Nop,
}

/// Manager/Unit methods whose job type depends on the unit (systemd's collapsed job types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Reload,
    TryRestart,
    ReloadOrRestart,
    ReloadOrTryRestart,
}

impl JobType {
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Start => "start",
            JobType::Stop => "stop",
            JobType::Restart => "restart",
            JobType::Reload => "reload",
            JobType::Nop => "nop",
        }
    }
    /// Stop and restart (before it turns into a start) order like a stop.
    pub fn is_stopish(self) -> bool {
        matches!(self, JobType::Stop | JobType::Restart)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Waiting,
    Running,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Running => "running",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobResult {
    Done,
    Canceled,
    Failed,
    Dependency,
    Timeout,
    Skipped,
    /// A reload of a unit that is not active.
    Invalid,
}

impl JobResult {
    pub fn as_str(self) -> &'static str {
        match self {
            JobResult::Done => "done",
            JobResult::Canceled => "canceled",
            JobResult::Failed => "failed",
            JobResult::Dependency => "dependency",
            JobResult::Timeout => "timeout",
            JobResult::Skipped => "skipped",
            JobResult::Invalid => "invalid",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobMode {
    Replace,
    Fail,
    /// Start the unit and stop everything it does not pull in (needs AllowIsolate=yes).
    Isolate,
    /// The job alone: no dependencies pulled in, no ordering waits.
    IgnoreDependencies,
    /// No requirement dependencies pulled in; ordering still applies.
    IgnoreRequirements,
    /// Like replace, and cancels every queued job outside the transaction.
    Flush,
    /// Like replace, and later transactions may not replace the installed jobs.
    ReplaceIrreversibly,
}

impl JobMode {
    pub fn parse(s: &str) -> Option<JobMode> {
        match s {
            "replace" => Some(JobMode::Replace),
            "fail" => Some(JobMode::Fail),
            "isolate" => Some(JobMode::Isolate),
            "ignore-dependencies" => Some(JobMode::IgnoreDependencies),
            "ignore-requirements" => Some(JobMode::IgnoreRequirements),
            "flush" => Some(JobMode::Flush),
            "replace-irreversibly" => Some(JobMode::ReplaceIrreversibly),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobMode::Replace => "replace",
            JobMode::Fail => "fail",
            JobMode::Isolate => "isolate",
            JobMode::IgnoreDependencies => "ignore-dependencies",
            JobMode::IgnoreRequirements => "ignore-requirements",
            JobMode::Flush => "flush",
            JobMode::ReplaceIrreversibly => "replace-irreversibly",
        }
    }

    /// Whether dependencies are left out of the transaction.
    pub fn ignores_requirements(self) -> bool {
        matches!(
            self,
            JobMode::IgnoreDependencies | JobMode::IgnoreRequirements
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: u32,
    pub unit: String,
    pub job_type: JobType,
    pub state: JobState,
    /// Runs regardless of After=/Before= (job mode `ignore-dependencies`).
    pub ignore_order: bool,
    /// Conflicting transactions may not replace it (job mode `replace-irreversibly`).
    pub irreversible: bool,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warn,
}

/// Per-spawn settings that need files, applied by the IO layer (the engine reads none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecContext {
    /// EnvironmentFile=: (path, ignore if missing); their variables override `env`. When
    /// present, `argv` is left unexpanded for the IO layer to expand with the full environment.
    pub env_files: Vec<(String, bool)>,
    /// WorkingDirectory=: (path or `~`, ignore if missing); `None` is `/`, like systemd.
    pub working_directory: Option<(String, bool)>,
    /// UnsetEnvironment=: names (or exact `NAME=value` assignments) removed last.
    pub unset_environment: Vec<String>,
    /// Socket units whose listening fds the process gets (fd 3 on, LISTEN_FDS=).
    pub sockets: Vec<String>,
}

impl ExecContext {
    /// The final environment: `env`, then the files' variables, minus UnsetEnvironment=.
    pub fn merge(
        &self,
        env: &[(String, String)],
        files: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in env.iter().chain(files.iter()) {
            out.retain(|(ok, _)| ok != k);
            out.push((k.clone(), v.clone()));
        }
        out.retain(|(k, v)| {
            !self
                .unset_environment
                .iter()
                .any(|u| u == k || *u == format!("{k}={v}"))
        });
        out
    }
}

/// What the IO layer must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Fork+exec `argv` in a new process group; report back with `token`.
    Spawn {
        token: u64,
        unit: String,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        ctx: ExecContext,
    },
    /// Send `signal` to the process groups of the processes behind `tokens`.
    Kill {
        unit: String,
        tokens: Vec<u64>,
        signal: i32,
    },
    /// Type=forking: the process behind `token` forked and exited; find the daemon (from
    /// `pid_file`, else the only process left in that process group) and report it with
    /// [`super::Engine::main_pid_found`].
    FindMainPid {
        unit: String,
        token: u64,
        pid_file: Option<String>,
    },
    /// Bind and listen on a socket unit's addresses, then report with
    /// [`super::Engine::socket_bound`].
    SocketListen {
        unit: String,
        listen: Vec<crate::unitfile::socket::Listen>,
        mode: u32,
    },
    /// Report once, with [`super::Engine::socket_readable`], when one of the unit's listening
    /// fds becomes readable (replaces an earlier watch).
    SocketWatch {
        unit: String,
    },
    /// Close the unit's listening fds and remove the file system sockets in `remove`.
    SocketClose {
        unit: String,
        remove: Vec<String>,
    },
    /// Call [`super::Engine::timer_fired`] with `id` after `delay_us`.
    SetTimer {
        id: u64,
        delay_us: u64,
    },
    Log {
        level: LogLevel,
        message: String,
    },
    UnitNew {
        id: String,
        path: String,
    },
    UnitRemoved {
        id: String,
        path: String,
    },
    JobNew {
        id: u32,
        path: String,
        unit: String,
    },
    JobRemoved {
        id: u32,
        path: String,
        unit: String,
        result: JobResult,
    },
    PropertiesChanged {
        path: String,
        interface: String,
        changed: Vec<(String, Value)>,
    },
}

/// A D-Bus-style error: name and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct EngineError {
    pub name: &'static str,
    pub message: String,
}

impl EngineError {
    pub fn new(name: &'static str, message: impl Into<String>) -> Self {
        EngineError {
            name,
            message: message.into(),
        }
    }
}

pub const ERR_NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
pub const ERR_NO_SUCH_JOB: &str = "org.freedesktop.systemd1.NoSuchJob";
pub const ERR_INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";
pub const ERR_DESTRUCTIVE: &str = "org.freedesktop.systemd1.TransactionIsDestructive";
pub const ERR_JOBS_CONFLICTING: &str = "org.freedesktop.systemd1.TransactionJobsConflicting";
pub const ERR_BAD_SETTING: &str = "org.freedesktop.systemd1.BadUnitSetting";
pub const ERR_LOAD_FAILED: &str = "org.freedesktop.systemd1.LoadFailed";
pub const ERR_NO_SUCH_PROCESS: &str = "org.freedesktop.systemd1.NoSuchProcess";
pub const ERR_ONLY_BY_DEPENDENCY: &str = "org.freedesktop.systemd1.OnlyByDependency";
pub const ERR_JOB_TYPE_NOT_APPLICABLE: &str = "org.freedesktop.systemd1.JobTypeNotApplicable";
pub const ERR_UNIT_INACTIVE: &str = "org.freedesktop.systemd1.UnitInactive";
pub const ERR_UNIT_BUSY: &str = "org.freedesktop.systemd1.UnitBusy";
pub const ERR_NO_ISOLATION: &str = "org.freedesktop.systemd1.NoIsolation";
pub const ERR_NOT_SUPPORTED: &str = "org.freedesktop.DBus.Error.NotSupported";

/// What a unit source found for a name.
#[derive(Debug, Clone)]
pub enum Loaded {
    Ok(Box<UnitDef>),
    NotFound,
    /// `load_state` is `bad-setting` or `error`.
    Failed {
        load_state: &'static str,
        error_name: &'static str,
        message: String,
        path: String,
    },
}

/// Where unit definitions come from (files for the daemon, a map in tests).
pub trait UnitSource {
    fn load(&self, name: &str) -> Loaded;
    /// All unit file names with their UnitFileState.
    fn list_files(&self) -> Vec<(String, String)>;
    /// The UnitFileState of a file, `None` if no such file.
    fn file_state(&self, name: &str) -> Option<String>;
    /// `daemon-reload`: forget cached directory contents before units are re-read.
    fn reload(&self) {}
    /// UnitFilePreset (`enabled`/`disabled`), `None` if no such file.
    fn file_preset(&self, _name: &str) -> Option<String> {
        None
    }
    /// `EnableUnitFiles`: follows `[Install]` (WantedBy=, RequiredBy=, Alias=, Also=). Returns
    /// systemd's change list: (type "symlink"/"unlink", file, destination).
    fn enable(
        &self,
        _names: &[String],
        _runtime: bool,
        _force: bool,
    ) -> Result<Changes, EngineError> {
        Err(not_supported("EnableUnitFiles"))
    }
    /// `DisableUnitFiles`: removes the symlinks `enable` made.
    fn disable(&self, _names: &[String], _runtime: bool) -> Result<Changes, EngineError> {
        Err(not_supported("DisableUnitFiles"))
    }
    /// `GetDefaultTarget`: the unit `default.target` points to.
    fn default_target(&self) -> Result<String, EngineError> {
        Err(not_supported("GetDefaultTarget"))
    }
    /// `SetDefaultTarget`.
    fn set_default_target(&self, _name: &str, _force: bool) -> Result<Changes, EngineError> {
        Err(not_supported("SetDefaultTarget"))
    }
}

/// Unit file changes as systemd reports them: (type, file, destination).
pub type Changes = Vec<(String, String, String)>;

fn not_supported(what: &str) -> EngineError {
    EngineError::new(
        "org.freedesktop.DBus.Error.NotSupported",
        format!("{what} is not supported by this unit source"),
    )
}
