//! The IO layer: D-Bus dispatch, child processes and timers around the pure engine.

pub mod bus;
pub mod clock;
pub mod convert;
pub mod notify;
pub mod outq;
pub mod private;
pub mod procs;
pub mod readfile;
pub mod runtime;
pub mod sockets;
