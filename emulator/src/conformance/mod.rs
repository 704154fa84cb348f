//! Differential conformance cases: unit files plus operations, recorded against real systemd 252
//! (fixtures) and replayed against the pure engine.

pub mod case;
pub mod fixture;
pub mod generate;
pub mod known;
pub mod replay;
