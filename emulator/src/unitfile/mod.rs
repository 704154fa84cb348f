//! Parsing systemd unit files into [`UnitDef`]s.

pub mod cmdline;
pub mod envfile;
pub mod model;
pub mod parser;
pub mod socket;
pub mod specifier;

pub use model::{
    build, build_files, BuildOutcome, Deps, ExecCommand, KillMode, LoadFailure, NotifyAccess,
    RestartPolicy, ServiceDef, ServiceType, UnitDef, UnitKind,
};
pub use parser::{parse, Assignment, ParseError, Warning};
