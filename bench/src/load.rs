//! Unit-file load figures: a generated tree of services and targets with dependencies, listed,
//! loaded one by one and reloaded, through the Manager API (emulator or real systemd).

use std::path::Path;
use std::time::{Duration, Instant};

use zbus::Connection;
use zvariant::OwnedObjectPath;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const GROUP: usize = 10;

/// The `i`-th generated unit: in each group of ten, nine services chained by
/// Requires=/After= on their predecessor and a target that wants them all.
pub fn unit(i: usize) -> (String, String) {
    let group = i / GROUP;
    if i % GROUP == GROUP - 1 {
        let wants: Vec<String> = (group * GROUP..i).map(service_name).collect();
        let text = format!(
            "[Unit]\nDescription=bench group {group}\nWants={}\nAfter={}\n",
            wants.join(" "),
            wants.join(" ")
        );
        return (format!("bench-load-{group:05}.target"), text);
    }
    let mut text = format!("[Unit]\nDescription=bench service {i}\n");
    if !i.is_multiple_of(GROUP) {
        let prev = service_name(i - 1);
        text.push_str(&format!("Requires={prev}\nAfter={prev}\n"));
    }
    text.push_str("\n[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=yes\n");
    if i.is_multiple_of(2) {
        // Half with [Install], so ListUnitFiles reports both `disabled` and `static`.
        text.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    }
    (service_name(i), text)
}

fn service_name(i: usize) -> String {
    format!("bench-load-{i:05}.service")
}

/// Writes `count` generated units into `dir`; returns their names.
pub fn generate(dir: &Path, count: usize) -> Result<Vec<String>, String> {
    let mut names = Vec::with_capacity(count);
    for i in 0..count {
        let (name, text) = unit(i);
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        names.push(name);
    }
    Ok(names)
}

/// Removes what `generate` wrote (inside the container, where the files go to /etc).
pub fn remove(dir: &Path, names: &[String]) -> Result<(), String> {
    for n in names {
        let path = dir.join(n);
        std::fs::remove_file(&path)
            .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Timings of one load run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// `ListUnitFiles`, and how many entries it returned.
    pub list_files: Duration,
    pub listed: usize,
    /// `LoadUnit` of every generated unit, one call after the other.
    pub load_all: Duration,
    /// `ListUnits` with everything loaded, and how many units it returned.
    pub list_units: Duration,
    pub units: usize,
    /// `Reload` (daemon-reload) with the units loaded.
    pub reload: Duration,
}

async fn call<B>(conn: &Connection, method: &str, body: &B) -> Result<zbus::Message, String>
where
    B: serde::Serialize + zvariant::DynamicType,
{
    conn.call_method(Some(SYSTEMD), PATH, Some(MANAGER), method, body)
        .await
        .map_err(|e| format!("Manager.{method}: {e}"))
}

/// Runs the measured calls in order: ListUnitFiles (unless `list_files` is false: systemd 252
/// takes ~7 s for it at 1,000 files and grows quadratically), LoadUnit of each name, ListUnits,
/// Reload. A skipped listing reports zero files.
pub async fn measure(
    conn: &Connection,
    names: &[String],
    list_files: bool,
) -> Result<Figures, String> {
    let mut f = Figures::default();
    if list_files {
        let t = Instant::now();
        let reply = call(conn, "ListUnitFiles", &()).await?;
        f.list_files = t.elapsed();
        let files: Vec<(String, String)> = reply
            .body()
            .deserialize()
            .map_err(|e| format!("ListUnitFiles reply: {e}"))?;
        f.listed = files.len();
    }

    let t = Instant::now();
    for name in names {
        let reply = call(conn, "LoadUnit", &(name.as_str(),)).await?;
        let _: OwnedObjectPath = reply
            .body()
            .deserialize()
            .map_err(|e| format!("LoadUnit({name}) reply: {e}"))?;
    }
    f.load_all = t.elapsed();

    let t = Instant::now();
    let reply = call(conn, "ListUnits", &()).await?;
    f.list_units = t.elapsed();
    let units: Vec<bluechi_core::msg::ListedUnit> = reply
        .body()
        .deserialize()
        .map_err(|e| format!("ListUnits reply: {e}"))?;
    f.units = units.len();

    let t = Instant::now();
    call(conn, "Reload", &()).await?;
    f.reload = t.elapsed();
    Ok(f)
}

/// `key value` lines for the orchestrator, and their parser.
pub fn to_lines(f: &Figures) -> String {
    format!(
        "load list_files {:.6}\nload listed {}\nload load_all {:.6}\nload list_units {:.6}\nload units {}\nload reload {:.6}\n",
        f.list_files.as_secs_f64(),
        f.listed,
        f.load_all.as_secs_f64(),
        f.list_units.as_secs_f64(),
        f.units,
        f.reload.as_secs_f64()
    )
}

/// The value of the client's `load KEY VALUE` line.
pub fn value<'a>(out: &'a str, key: &str) -> Result<&'a str, String> {
    out.lines()
        .find_map(|l| {
            l.strip_prefix("load ")?
                .strip_prefix(key)?
                .strip_prefix(' ')
        })
        .map(str::trim)
        .ok_or_else(|| format!("no 'load {key}' line in the client's output: {out:?}"))
}

pub fn from_output(out: &str) -> Result<Figures, String> {
    let value = |key: &str| value(out, key);
    let secs = |key: &str| -> Result<Duration, String> {
        let v = value(key)?;
        v.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("'load {key}' is not a duration in seconds: {v:?}"))
    };
    let count = |key: &str| -> Result<usize, String> {
        let v = value(key)?;
        v.parse()
            .map_err(|_| format!("'load {key}' is not a count: {v:?}"))
    };
    Ok(Figures {
        list_files: secs("list_files")?,
        listed: count("listed")?,
        load_all: secs("load_all")?,
        list_units: secs("list_units")?,
        units: count("units")?,
        reload: secs("reload")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_have_nine_chained_services_and_a_target() {
        let (name, text) = unit(0);
        assert_eq!(name, "bench-load-00000.service");
        assert!(!text.contains("Requires="));
        let (_, text) = unit(13);
        assert!(text.contains("Requires=bench-load-00012.service\nAfter=bench-load-00012.service"));
        let (name, text) = unit(19);
        assert_eq!(name, "bench-load-00001.target");
        assert!(text.contains("Wants=bench-load-00010.service"));
        assert!(text.contains("bench-load-00018.service\n"));
        assert!(!text.contains("bench-load-00019"));
    }

    #[test]
    fn generated_names_are_distinct() {
        let names: std::collections::BTreeSet<String> = (0..1000).map(|i| unit(i).0).collect();
        assert_eq!(names.len(), 1000);
    }

    #[test]
    fn lines_round_trip() {
        let f = Figures {
            list_files: Duration::from_micros(1500),
            listed: 1002,
            load_all: Duration::from_millis(800),
            list_units: Duration::from_micros(2500),
            units: 1010,
            reload: Duration::from_millis(40),
        };
        assert_eq!(from_output(&format!("x\n{}", to_lines(&f))).unwrap(), f);
        assert!(from_output("load listed 3\n").is_err());
    }
}
