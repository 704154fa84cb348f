//! Test harness plumbing written once: the test crates, the scenario runner and the benchmarks
//! used to carry their own copies, and the copies drifted (bus policies, podman environment,
//! polling messages). Each module is one such piece:
//!
//! - [`bus`]: a private dbus-daemon with one permissive policy;
//! - [`podman`]: the `podman` command with the project's `containers.conf`, and what a test does
//!   when it cannot run (skip, or fail under `CI=true`);
//! - [`escape`]: systemd's unit-name → object-path escaping;
//! - [`poll`]: waiting for state with a deadline and a description, never a bare sleep.
//!
//! The scenario runner links this crate into its binary, so it holds no test-only code.

pub mod bus;
pub mod escape;
pub mod podman;
pub mod poll;
