//! Reading the clocks the engine is given as values.

use crate::engine::Now;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now() -> Now {
    let realtime_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the timespec we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let monotonic_us = if rc == 0 {
        ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
    } else {
        0
    };
    Now {
        realtime_us,
        monotonic_us,
    }
}
