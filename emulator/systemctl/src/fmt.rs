//! Text formats shared by the verbs: timestamps, time spans, exit statuses, tables.

pub use bluechi_core::fnmatch::fnmatch as glob;
use zvariant::Value;

/// A wall-clock time in microseconds, the way systemd prints it in local time.
pub fn timestamp(usec: u64) -> String {
    if usec == 0 || usec == u64::MAX {
        return String::new();
    }
    let secs = (usec / 1_000_000) as libc::time_t;
    // SAFETY: `tm` is plain data; localtime_r and strftime only write into the buffers we pass
    // and their sizes bound every write.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return String::new();
        }
        let mut buf = [0u8; 64];
        let n = libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%a %Y-%m-%d %H:%M:%S %Z".as_ptr(),
            &tm,
        );
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// "3min 2s ago" style distance from `now` to `then`, as in systemd's status output.
pub fn relative(then: u64, now: u64) -> String {
    const S: u64 = 1_000_000;
    const MIN: u64 = 60 * S;
    const H: u64 = 60 * MIN;
    const D: u64 = 24 * H;
    let d = now.saturating_sub(then);
    if d >= 2 * D {
        format!("{} days ago", d / D)
    } else if d >= 25 * H {
        format!("1 day {}h ago", (d - D) / H)
    } else if d >= 6 * H {
        format!("{}h ago", d / H)
    } else if d >= H {
        format!("{}h {}min ago", d / H, (d % H) / MIN)
    } else if d >= 5 * MIN {
        format!("{}min ago", d / MIN)
    } else if d >= MIN {
        format!("{}min {}s ago", d / MIN, (d % MIN) / S)
    } else if d >= S {
        format!("{}s ago", d / S)
    } else if d >= 1000 {
        format!("{}ms ago", d / 1000)
    } else if d > 0 {
        format!("{d}us ago")
    } else {
        "now".to_string()
    }
}

/// A duration in microseconds as systemd prints `*USec` properties ("1min 30s", "100ms").
pub fn timespan(usec: u64) -> String {
    if usec == u64::MAX {
        return "infinity".to_string();
    }
    if usec == 0 {
        return "0".to_string();
    }
    const UNITS: &[(&str, u64)] = &[
        ("y", 31_557_600_000_000),
        ("month", 2_629_800_000_000),
        ("w", 604_800_000_000),
        ("d", 86_400_000_000),
        ("h", 3_600_000_000),
        ("min", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1000),
        ("us", 1),
    ];
    let mut left = usec;
    let mut parts = Vec::new();
    for (name, size) in UNITS {
        if left >= *size {
            parts.push(format!("{}{name}", left / size));
            left %= size;
        }
    }
    parts.join(" ")
}

fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        4 => "ILL",
        5 => "TRAP",
        6 => "ABRT",
        7 => "BUS",
        8 => "FPE",
        9 => "KILL",
        10 => "USR1",
        11 => "SEGV",
        12 => "USR2",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        _ => return sig.to_string(),
    };
    name.to_string()
}

/// "code=exited, status=1/FAILURE" or "code=killed, signal=TERM" for a waitid() code/status.
pub fn exit_info(code: i32, status: i32) -> String {
    match code {
        1 => match bluechi_core::exit_status::name(status) {
            Some(n) => format!("code=exited, status={status}/{n}"),
            None => format!("code=exited, status={status}"),
        },
        2 => format!("code=killed, signal={}", signal_name(status)),
        3 => format!("code=dumped, signal={}", signal_name(status)),
        _ => format!("code={code}, status={status}"),
    }
}

/// A property value as `systemctl show` prints it.
pub fn show_value(name: &str, v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::ObjectPath(p) => p.to_string(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        Value::U64(n) if name.ends_with("Timestamp") => timestamp(*n),
        Value::U64(n) if name.ends_with("USec") || name.ends_with("Sec") => timespan(*n),
        Value::U64(n) if *n == u64::MAX => "infinity".to_string(),
        Value::U8(n) => n.to_string(),
        Value::U16(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::I16(n) => n.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::F64(n) => n.to_string(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(|x| show_value(name, x)).collect();
            if a.element_signature() == "y" {
                // Byte arrays (InvocationID) are ids, printed as hex.
                a.iter()
                    .map(|x| match x {
                        Value::U8(b) => format!("{b:02x}"),
                        _ => String::new(),
                    })
                    .collect()
            } else {
                items.join(" ")
            }
        }
        Value::Structure(s) => {
            let f = s.fields();
            // Job references (uo) print as "id path"; (ss) pairs as their first non-empty text.
            match f {
                [Value::U32(0), _] => String::new(),
                [Value::U32(id), Value::ObjectPath(p)] => format!("{id} {p}"),
                _ => f
                    .iter()
                    .map(|x| show_value(name, x))
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            }
        }
        Value::Value(inner) => show_value(name, inner),
        other => format!("{other}"),
    }
}

/// Left-aligned columns separated by one space; the last column is not padded.
pub fn table(rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i > 0 {
                    line.push(' ');
                }
                line.push_str(c);
                if i + 1 < r.len() {
                    let pad = widths[i] - c.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_relative() {
        assert_eq!(timespan(90_000_000), "1min 30s");
        assert_eq!(timespan(100_000), "100ms");
        assert_eq!(relative(0, 153_000), "153ms ago");
        assert_eq!(relative(0, 62_000_000), "1min 2s ago");
    }

    #[test]
    fn exit_infos() {
        assert_eq!(exit_info(1, 0), "code=exited, status=0/SUCCESS");
        assert_eq!(exit_info(1, 42), "code=exited, status=42");
        assert_eq!(exit_info(2, 15), "code=killed, signal=TERM");
    }

    #[test]
    fn table_pads_all_but_last() {
        let rows = vec![
            vec!["A".to_string(), "BB".to_string(), "C".to_string()],
            vec!["aaa".to_string(), "b".to_string(), "c".to_string()],
        ];
        assert_eq!(table(&rows), ["A   BB C", "aaa b  c"]);
    }
}
