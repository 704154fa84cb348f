//! StartTransientUnit: the properties become a unit file under `<runtime>/transient/`, written
//! the way systemd writes it, which the loader then reads like any other unit.

use super::state::Daemon;
use crate::engine::{Engine, EngineError, JobMode, JobType, Now, ERR_INVALID_ARGS};
use crate::names::UnitName;
use zvariant::{OwnedValue, Value};

/// `(name, mode, properties, aux)` of StartTransientUnit.
pub type Args = (
    String,
    String,
    Vec<(String, OwnedValue)>,
    Vec<(String, Vec<(String, OwnedValue)>)>,
);

const ERR_UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
const ERR_READ_ONLY: &str = "org.freedesktop.DBus.Error.PropertyReadOnly";
const HEADER: &str =
    "# This is a transient unit file, created programmatically via the systemd API. Do not edit.\n";

fn refuse(key: &str) -> EngineError {
    EngineError::new(
        ERR_READ_ONLY,
        format!("Cannot set property {key}, or unknown property."),
    )
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Double-quotes a word so the unit file parser gives it back unchanged (`%` is a specifier).
fn quote(w: &str) -> String {
    let mut out = String::from("\"");
    for c in w.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

fn strings(key: &str, v: &Value<'_>) -> Result<Vec<String>, EngineError> {
    Vec::<String>::try_from(v.try_clone().map_err(|_| refuse(key))?).map_err(|_| refuse(key))
}

/// `a(sasb)`: (path, argv, ignore_failure) → `ExecStart=` lines. The first argv word is
/// argv[0]; the file keeps the path as the program, so a different argv[0] is not kept.
fn exec_lines(key: &str, v: &Value<'_>) -> Result<Vec<String>, EngineError> {
    let cmds: Vec<(String, Vec<String>, bool)> = v
        .try_clone()
        .ok()
        .and_then(|v| Vec::<(String, Vec<String>, bool)>::try_from(v).ok())
        .ok_or_else(|| refuse(key))?;
    let mut lines = vec![format!("{key}=")];
    for (path, argv, ignore) in cmds {
        if !path.starts_with('/') {
            return Err(EngineError::new(
                ERR_INVALID_ARGS,
                format!("Path {path} is not absolute."),
            ));
        }
        let mut line = format!("{key}={}{}", if ignore { "-" } else { "" }, quote(&path));
        for a in argv.iter().skip(1) {
            line.push(' ');
            line.push_str(&quote(a));
        }
        lines.push(line);
    }
    Ok(lines)
}

/// Renders the transient unit file; errors name the offending property.
pub fn render(props: &[(String, OwnedValue)]) -> Result<String, EngineError> {
    let mut out = String::from(HEADER);
    let mut section = "";
    for (key, v) in props {
        let v: &Value<'_> = v;
        let (sec, lines): (&str, Vec<String>) = match (key.as_str(), v) {
            ("Description", Value::Str(s)) => ("Unit", vec![format!("Description={s}")]),
            (
                "Wants" | "Requires" | "Requisite" | "BindsTo" | "PartOf" | "Upholds" | "Conflicts"
                | "After" | "Before" | "OnFailure" | "OnSuccess",
                _,
            ) => (
                "Unit",
                vec![format!("{key}={}", strings(key, v)?.join(" "))],
            ),
            (
                "DefaultDependencies"
                | "StopWhenUnneeded"
                | "RefuseManualStart"
                | "RefuseManualStop",
                Value::Bool(b),
            ) => ("Unit", vec![format!("{key}={}", yes_no(*b))]),
            ("Type" | "Restart" | "KillMode", Value::Str(s)) => {
                ("Service", vec![format!("{key}={s}")])
            }
            ("RemainAfterExit", Value::Bool(b)) => {
                ("Service", vec![format!("{key}={}", yes_no(*b))])
            }
            ("RestartUSec", Value::U64(n)) => ("Service", vec![format!("RestartSec={n}us")]),
            ("TimeoutStopUSec", Value::U64(n)) => {
                ("Service", vec![format!("TimeoutStopSec={n}us")])
            }
            ("Environment", _) => {
                let env: Vec<String> = strings(key, v)?.iter().map(|e| quote(e)).collect();
                ("Service", vec![format!("Environment={}", env.join(" "))])
            }
            ("ExecStart" | "ExecStop", _) => ("Service", exec_lines(key, v)?),
            // systemd-run asks for a reference held by the caller; we keep no references.
            ("AddRef", Value::Bool(_)) => continue,
            _ => return Err(refuse(key)),
        };
        if sec != section {
            if !section.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{sec}]\n"));
            section = sec;
        }
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Writes and loads the transient unit, then starts it; returns the start job.
pub fn start(
    engine: &mut Engine,
    d: &mut Daemon,
    name: &str,
    mode: &str,
    props: &[(String, OwnedValue)],
    now: Now,
) -> Result<u32, EngineError> {
    let invalid_name = || EngineError::new(ERR_INVALID_ARGS, "Invalid unit name or type.");
    UnitName::parse(name).ok_or_else(invalid_name)?;
    if !name.ends_with(".service") || name.contains("@.") {
        return Err(invalid_name());
    }
    if JobMode::parse(mode).is_none() {
        return Err(EngineError::new(
            ERR_INVALID_ARGS,
            format!("Job mode {mode} is invalid."),
        ));
    }
    let loaded = engine
        .unit(name)
        .is_some_and(|u| u.load_state != "not-found");
    if loaded || engine.source().file_state(name).is_some() {
        return Err(EngineError::new(
            ERR_UNIT_EXISTS,
            format!("Unit {name} was already loaded or has a fragment file."),
        ));
    }
    let text = render(props)?;
    let dir = d.transient_dir.clone().ok_or_else(|| {
        EngineError::new(
            "org.freedesktop.DBus.Error.NotSupported",
            "Transient units need a runtime directory.",
        )
    })?;
    let io_err = |e: std::io::Error| {
        EngineError::new(
            "org.freedesktop.DBus.Error.Failed",
            format!(
                "Failed to write transient unit {}: {e}",
                dir.join(name).display()
            ),
        )
    };
    std::fs::create_dir_all(&dir).map_err(io_err)?;
    std::fs::write(dir.join(name), text).map_err(io_err)?;
    d.transient.insert(name.to_string());
    engine.reload_unit(name, now)?;
    engine.enqueue(name, JobType::Start, mode, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov<'a>(v: impl Into<Value<'a>>) -> OwnedValue {
        OwnedValue::try_from(v.into()).expect("owned value")
    }

    #[test]
    fn renders_like_systemd() {
        let exec = vec![(
            "/bin/sleep".to_string(),
            vec!["sleep".to_string(), "100".to_string()],
            true,
        )];
        let props = vec![
            ("Description".to_string(), ov("hello")),
            ("ExecStart".to_string(), ov(exec)),
            ("RemainAfterExit".to_string(), ov(true)),
        ];
        let text = render(&props).expect("renders");
        assert_eq!(
            text,
            format!(
                "{HEADER}[Unit]\nDescription=hello\n\n[Service]\nExecStart=\nExecStart=-\"/bin/sleep\" \"100\"\nRemainAfterExit=yes\n"
            )
        );
        let parsed = crate::unitfile::build("t.service", "/run/t.service", &text);
        assert!(parsed.result.is_ok(), "{:?}", parsed.result.err());
    }

    #[test]
    fn unknown_property_is_refused() {
        let e = render(&[("Bogus".to_string(), ov("x"))]).expect_err("refused");
        assert_eq!(e.message, "Cannot set property Bogus, or unknown property.");
    }
}
