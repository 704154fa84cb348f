//! Logging in upstream's formats: `stderr` is `<timestamp> <LEVEL>\t: <message>`,
//! `stderr-full` adds the source location. `journald` falls back to the `stderr` format on
//! stderr (deliberate difference: no journal on the machines this runs on without systemd).
//! The level can change at run time (`SetLogLevel`), so it lives in an atomic.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogConfig;

static LEVEL: AtomicU8 = AtomicU8::new(2);
static QUIET: AtomicBool = AtomicBool::new(false);

/// TRACE ranks below every configurable level: it is never shown.
fn rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 4,
        Level::WARN => 3,
        Level::INFO => 2,
        Level::DEBUG => 1,
        _ => 0,
    }
}

/// Parses `DEBUG`/`INFO`/`WARN`/`ERROR` (exact case, as upstream) into a rank.
pub fn level_rank(name: &str) -> Option<u8> {
    match name {
        "DEBUG" => Some(1),
        "INFO" => Some(2),
        "WARN" => Some(3),
        "ERROR" => Some(4),
        _ => None,
    }
}

pub fn level_name() -> &'static str {
    match LEVEL.load(Ordering::Relaxed) {
        1 => "DEBUG",
        3 => "WARN",
        4 => "ERROR",
        _ => "INFO",
    }
}

/// Changes the level at run time; returns false for an invalid name.
pub fn set_level(name: &str) -> bool {
    match level_rank(name) {
        Some(r) => {
            if LEVEL.swap(r, Ordering::Relaxed) != r {
                filter_changed();
            }
            true
        }
        None => false,
    }
}

pub fn set_quiet(quiet: bool) {
    if QUIET.swap(quiet, Ordering::Relaxed) != quiet {
        filter_changed();
    }
}

/// tracing caches, per log statement, whether the filter wants it; a statement seen before a
/// change would keep its old answer (a `SetLogLevel` to ERROR left INFO lines flowing).
fn filter_changed() {
    tracing::callsite::rebuild_interest_cache();
}

struct UpstreamFormat {
    full: bool,
}

impl<S, N> FormatEvent<S, N> for UpstreamFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(w, "{} {}", timestamp(), meta.level())?;
        if self.full {
            write!(
                w,
                "\t{}:{} {}\tmsg=\"",
                meta.file().unwrap_or("?"),
                meta.line().unwrap_or(0),
                meta.target()
            )?;
            ctx.format_fields(w.by_ref(), event)?;
            writeln!(w, "\"")
        } else {
            write!(w, "\t: ")?;
            ctx.format_fields(w.by_ref(), event)?;
            writeln!(w)
        }
    }
}

/// Local time as `YYYY-MM-DD HH:MM:SS,mmm±zzzz`.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_local_time(
        now.as_secs() as i64,
        now.subsec_millis(),
        "%Y-%m-%d %H:%M:%S",
        true,
    )
}

/// Formats seconds since the epoch in local time with `strftime`, optionally adding
/// `,mmm` and the `%z` offset (the layout upstream uses in logs and in `bluechictl status`).
pub fn format_local_time(secs: i64, millis: u32, fmt: &str, with_ms_and_zone: bool) -> String {
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: `tm` is plain data fully written by localtime_r; strftime writes at most
    // `buf.len()` bytes and returns the count.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return String::new();
        }
        let mut out = strftime(fmt, &tm);
        if with_ms_and_zone {
            out.push_str(&format!(",{millis:03}"));
            out.push_str(&strftime("%z", &tm));
        }
        out
    }
}

unsafe fn strftime(fmt: &str, tm: &libc::tm) -> String {
    let Ok(cfmt) = std::ffi::CString::new(fmt) else {
        return String::new();
    };
    let mut buf = [0u8; 128];
    let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), cfmt.as_ptr(), tm);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Installs the global subscriber for a daemon.
pub fn init(cfg: &LogConfig) {
    set_level(&cfg.level);
    set_quiet(cfg.is_quiet);
    let filter = tracing_subscriber::filter::filter_fn(|meta| {
        // Libraries speak only when something is wrong: the log is the daemon's own story.
        let min = if meta.target().starts_with("bluechi") {
            LEVEL.load(Ordering::Relaxed)
        } else {
            LEVEL.load(Ordering::Relaxed).max(3)
        };
        !QUIET.load(Ordering::Relaxed) && rank(meta.level()) >= min
    });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(UpstreamFormat {
            full: cfg.target == "stderr-full",
        })
        .with_filter(filter);
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One log statement's callsite, asked each time.
    fn info_enabled() -> bool {
        tracing::enabled!(Level::INFO)
    }

    #[test]
    fn a_new_level_applies_to_statements_already_seen() {
        init(&LogConfig {
            level: "DEBUG".into(),
            target: "stderr".into(),
            is_quiet: false,
        });
        assert!(info_enabled());
        assert!(set_level("ERROR"));
        assert!(!info_enabled(), "INFO still enabled at ERROR");
        set_quiet(false);
        assert!(set_level("INFO"));
        assert!(info_enabled());
        set_quiet(true);
        assert!(!info_enabled(), "INFO still enabled while quiet");
        set_quiet(false);
    }

    #[test]
    fn levels() {
        assert_eq!(level_rank("DEBUG"), Some(1));
        assert_eq!(level_rank("debug"), None);
        assert!(!set_level("INF"));
    }

    #[test]
    fn timestamp_shape() {
        let t = timestamp();
        // 2026-11-24 03:18:25,123+0000
        assert_eq!(t.len(), 28, "{t}");
        assert_eq!(&t[19..20], ",");
    }
}
