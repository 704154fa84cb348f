//! A fake systemd: serves `org.freedesktop.systemd1` with systemd 252's job-engine semantics.
//!
//! `engine` is a pure state machine (no IO, no clock); `io` drives it from D-Bus, child
//! processes and timers.

pub mod conformance;
pub mod engine;
pub mod io;
pub mod loader;
pub mod names;
pub mod unitfile;
