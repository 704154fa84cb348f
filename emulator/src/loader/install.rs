//! `systemctl enable/disable` and the default target: symlinks in `/etc/systemd/system` (or
//! `/run/systemd/system` for runtime changes) following `[Install]`, with systemd's change list.

use super::index::{EntryKind, Scope};
use super::state::InstallInfo;
use super::vfs::{Kind, Vfs};
use super::UnitFiles;
use crate::engine::{Changes, EngineError, ERR_BAD_SETTING, ERR_INVALID_ARGS, ERR_NO_SUCH_UNIT};
use crate::names::UnitName;
use crate::unitfile::specifier::SpecifierContext;
use std::path::{Path, PathBuf};

const ERR_MASKED: &str = "org.freedesktop.systemd1.UnitMasked";
const ERR_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
const ERR_IO: &str = "org.freedesktop.DBus.Error.IOError";

/// The directory enablement symlinks go to: the first persistent one, or with `runtime` the
/// first runtime one (never a persistent one: a runtime change must not outlive the runtime
/// directory).
fn config_dir<V: Vfs>(files: &UnitFiles<V>, runtime: bool) -> Result<PathBuf, EngineError> {
    let want = if runtime {
        Scope::Runtime
    } else {
        Scope::Config
    };
    let mut candidates = files.dirs.iter().filter(|d| d.scope == want);
    // system.control (user.control) comes first in the search path but `enable` writes to the
    // plain directory.
    let dir = candidates
        .find(|d| d.path.extension().is_none_or(|e| e != "control"))
        .or_else(|| files.dirs.first().filter(|_| !runtime))
        .ok_or_else(|| {
            let what = if runtime { "runtime unit" } else { "unit" };
            EngineError::new(
                ERR_INVALID_ARGS,
                format!("No {what} directory to write to."),
            )
        })?;
    Ok(dir.path.clone())
}

/// The unit file behind `name`: (its path, the text, the id after following aliases).
fn unit_file<V: Vfs>(files: &UnitFiles<V>, name: &str) -> Result<(PathBuf, String), EngineError> {
    if UnitName::parse(name).is_none() {
        return Err(EngineError::new(
            ERR_INVALID_ARGS,
            format!("Unit name {name} is not valid."),
        ));
    }
    let idx = files.index();
    let missing = || {
        EngineError::new(
            ERR_NO_SUCH_UNIT,
            format!("Unit file {name} does not exist."),
        )
    };
    let r = files.resolve(&idx, name).ok_or_else(missing)?;
    let masked = || {
        EngineError::new(
            ERR_MASKED,
            format!("Unit file {} is masked.", r.entry.path.display()),
        )
    };
    if r.entry.kind == EntryKind::Masked {
        return Err(masked());
    }
    let text = files
        .vfs
        .read(&r.entry.path)
        .map_err(|e| EngineError::new(ERR_IO, format!("{}: {e}", r.entry.path.display())))?;
    if text.is_empty() {
        return Err(masked());
    }
    Ok((r.entry.path, text))
}

fn link<V: Vfs>(
    files: &UnitFiles<V>,
    at: &Path,
    dest: &Path,
    force: bool,
    changes: &mut Changes,
) -> Result<(), EngineError> {
    let io = |e: std::io::Error| EngineError::new(ERR_IO, format!("{}: {e}", at.display()));
    match files.vfs.read_link(at) {
        Some(old) if old == dest => return Ok(()),
        Some(old) if !force => {
            return Err(EngineError::new(
                ERR_EXISTS,
                format!(
                    "File {} already exists and is a symlink to {}.",
                    at.display(),
                    old.display()
                ),
            ))
        }
        Some(_) => {
            files.vfs.remove(at).map_err(io)?;
            changes.push(("unlink".into(), at.display().to_string(), String::new()));
        }
        None => {}
    }
    files.vfs.symlink(dest, at).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            EngineError::new(ERR_EXISTS, format!("File {} already exists.", at.display()))
        } else {
            io(e)
        }
    })?;
    changes.push((
        "symlink".into(),
        at.display().to_string(),
        dest.display().to_string(),
    ));
    Ok(())
}

fn expand_all(spec: &SpecifierContext, list: &[String]) -> Vec<String> {
    list.iter()
        .map(|v| spec.expand(v).unwrap_or_else(|_| v.clone()))
        .collect()
}

pub fn enable<V: Vfs>(
    files: &UnitFiles<V>,
    names: &[String],
    runtime: bool,
    force: bool,
) -> Result<Changes, EngineError> {
    let r = enable_inner(files, names, runtime, force);
    files.invalidate();
    r
}

fn enable_inner<V: Vfs>(
    files: &UnitFiles<V>,
    names: &[String],
    runtime: bool,
    force: bool,
) -> Result<Changes, EngineError> {
    let dir = config_dir(files, runtime)?;
    let mut changes = Changes::new();
    let mut queue: Vec<String> = names.to_vec();
    let mut done: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(name) = queue.get(i).cloned() {
        i += 1;
        if done.contains(&name) {
            continue;
        }
        done.push(name.clone());
        let (dest, text) = unit_file(files, &name)?;
        let info = InstallInfo::parse(&text);
        let parsed = UnitName::parse(&name)
            .ok_or_else(|| EngineError::new(ERR_INVALID_ARGS, format!("Invalid name {name}")))?;
        let mut unit = name.clone();
        if parsed.instance.as_deref() == Some("") {
            match &info.default_instance {
                Some(inst) => unit = format!("{}@{}.{}", parsed.prefix, inst, parsed.suffix),
                None => {
                    if let Some(t) = info.wanted_by.iter().chain(&info.required_by).next() {
                        return Err(EngineError::new(
                            ERR_BAD_SETTING,
                            format!("Destination unit {t} is a non-template unit."),
                        ));
                    }
                }
            }
        }
        let spec = SpecifierContext::new(&unit);
        for a in expand_all(&spec, &info.alias) {
            link(files, &dir.join(&a), &dest, force, &mut changes)?;
        }
        for (list, suffix) in [
            (&info.wanted_by, "wants"),
            (&info.required_by, "requires"),
            (&info.upheld_by, "upholds"),
        ] {
            for t in expand_all(&spec, list) {
                let at = dir.join(format!("{t}.{suffix}")).join(&unit);
                link(files, &at, &dest, force, &mut changes)?;
            }
        }
        queue.extend(expand_all(&spec, &info.also));
    }
    Ok(changes)
}

pub fn disable<V: Vfs>(
    files: &UnitFiles<V>,
    names: &[String],
    runtime: bool,
) -> Result<Changes, EngineError> {
    let r = disable_inner(files, names, runtime);
    files.invalidate();
    r
}

fn disable_inner<V: Vfs>(
    files: &UnitFiles<V>,
    names: &[String],
    runtime: bool,
) -> Result<Changes, EngineError> {
    let dir = config_dir(files, runtime)?;
    // (unit name, file name its links point at)
    let mut targets: Vec<(String, String)> = Vec::new();
    let mut queue: Vec<String> = names.to_vec();
    let mut i = 0;
    while let Some(name) = queue.get(i).cloned() {
        i += 1;
        if targets.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let (path, text) = unit_file(files, &name)?;
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        queue.extend(InstallInfo::parse(&text).also);
        targets.push((name, file));
    }
    let concerns = |link_name: &str, target: &Path| {
        let tbase = target
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        targets.iter().any(|(n, file)| {
            if tbase != *file {
                return false;
            }
            match UnitName::parse(n).and_then(|p| p.instance) {
                Some(inst) if !inst.is_empty() => link_name == n,
                _ => true,
            }
        })
    };
    let mut sub_links: Vec<PathBuf> = Vec::new();
    let mut top_links: Vec<PathBuf> = Vec::new();
    for (entry, kind) in files.vfs.list(&dir) {
        match kind {
            Kind::Dir
                if [".wants", ".requires", ".upholds"]
                    .iter()
                    .any(|s| entry.ends_with(s)) =>
            {
                let sub = dir.join(&entry);
                for (l, k) in files.vfs.list(&sub) {
                    if let Kind::Link(t) = k {
                        if concerns(&l, &t) {
                            sub_links.push(sub.join(l));
                        }
                    }
                }
            }
            // A top-level link with the file's own name is the unit itself, not an alias.
            Kind::Link(t) if concerns(&entry, &t) && !targets.iter().any(|(_, f)| *f == entry) => {
                top_links.push(dir.join(&entry));
            }
            _ => {}
        }
    }
    sub_links.sort();
    top_links.sort();
    let mut changes = Changes::new();
    for p in sub_links.into_iter().chain(top_links) {
        files
            .vfs
            .remove(&p)
            .map_err(|e| EngineError::new(ERR_IO, format!("{}: {e}", p.display())))?;
        changes.push(("unlink".into(), p.display().to_string(), String::new()));
    }
    Ok(changes)
}

pub fn default_target<V: Vfs>(files: &UnitFiles<V>) -> Result<String, EngineError> {
    let idx = files.index();
    match files.resolve(&idx, "default.target") {
        Some(r) => Ok(r.id),
        None => Err(EngineError::new(
            ERR_NO_SUCH_UNIT,
            "Unit file default.target does not exist.",
        )),
    }
}

pub fn set_default_target<V: Vfs>(
    files: &UnitFiles<V>,
    name: &str,
    _force: bool,
) -> Result<Changes, EngineError> {
    let (dest, _) = unit_file(files, name)?;
    let at = config_dir(files, false)?.join("default.target");
    let mut changes = Changes::new();
    if files.vfs.read_link(&at).as_deref() != Some(dest.as_path()) {
        // systemd replaces the old link without listing the removal.
        let _ = files.vfs.remove(&at);
        let mut ch = Changes::new();
        link(files, &at, &dest, true, &mut ch)?;
        changes.extend(ch.into_iter().filter(|c| c.0 == "symlink"));
    }
    files.invalidate();
    Ok(changes)
}
