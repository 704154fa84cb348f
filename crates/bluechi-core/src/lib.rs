//! Shared library of the BlueChi daemons and tools.
//!
//! Everything that more than one binary needs lives here: the D-Bus names and paths of the
//! contract (`names`), configuration files with upstream's INI semantics (`config`), the
//! peer-to-peer link between agent and controller with sd-bus' SASL dialect (`sasl`, `link`),
//! raw message helpers used instead of zbus' object server (`msg`), logging (`logging`), and
//! root's direct connection to systemd (`sd_private`), SENDER header editing for sd-bus peers
//! (`wire`, `wire_socket`), and sd-bus's mapping of error names to errno texts (`errno`).

pub mod clock;
pub mod config;
pub mod daemon;
pub mod errno;
pub mod exit_status;
pub mod fnmatch;
pub mod introspect;
pub mod link;
pub mod logging;
pub mod msg;
pub mod names;
pub mod ordered;
pub mod sasl;
pub mod sd_private;
pub mod wire;
pub mod wire_socket;

/// Version printed by `--version` and `bluechictl version`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-1");
