//! Unit sources: resolving a unit name to a definition (files on disk, or text in memory).

use crate::engine::{Loaded, UnitSource};
use crate::names::UnitName;
use crate::unitfile::build;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Resolves `name` through `lookup` (file name → (path, text)), falling back to the template
/// for instances, and parses it. Warnings go to `warn`.
pub fn resolve(
    name: &str,
    lookup: &dyn Fn(&str) -> Option<(String, String)>,
    warn: &dyn Fn(&str),
) -> Loaded {
    let Some(parsed) = UnitName::parse(name) else {
        return Loaded::NotFound;
    };
    let found = lookup(name).or_else(|| parsed.template().and_then(|t| lookup(&t)));
    let Some((path, text)) = found else {
        return Loaded::NotFound;
    };
    let outcome = build(name, &path, &text);
    for w in &outcome.warnings {
        warn(w);
    }
    match outcome.result {
        Ok(def) => Loaded::Ok(Box::new(def)),
        Err(f) => Loaded::Failed {
            load_state: f.load_state,
            error_name: f.error_name,
            message: f.message,
            path,
        },
    }
}

/// UnitFileState as systemd reports it for a file without enablement symlinks.
fn file_state_of(text: &str) -> String {
    let has_install = crate::unitfile::parse(text)
        .map(|(a, _)| a.iter().any(|x| x.section == "Install"))
        .unwrap_or(false);
    if has_install { "disabled" } else { "static" }.to_string()
}

/// Unit files in directories, searched in order.
pub struct FsSource {
    pub dirs: Vec<PathBuf>,
}

impl FsSource {
    fn read(&self, file: &str) -> Option<(String, String)> {
        if file.contains('/') {
            return None;
        }
        for d in &self.dirs {
            let p = d.join(file);
            match std::fs::read_to_string(&p) {
                Ok(t) => return Some((p.display().to_string(), t)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!("{}: failed to read: {e}", p.display());
                    continue;
                }
            }
        }
        None
    }
}

impl UnitSource for FsSource {
    fn load(&self, name: &str) -> Loaded {
        resolve(name, &|f| self.read(f), &|w| tracing::warn!("{w}"))
    }

    fn list_files(&self) -> Vec<(String, String)> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for d in &self.dirs {
            let Ok(rd) = std::fs::read_dir(d) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if UnitName::parse(&name).is_none() || out.contains_key(&name) {
                    continue;
                }
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let state = if name.contains("@.") {
                    "static".to_string()
                } else {
                    file_state_of(&text)
                };
                out.insert(e.path().display().to_string(), state);
            }
        }
        out.into_iter().collect()
    }

    fn file_state(&self, name: &str) -> Option<String> {
        let parsed = UnitName::parse(name)?;
        let (_, text) = self
            .read(name)
            .or_else(|| parsed.template().and_then(|t| self.read(&t)))?;
        Some(file_state_of(&text))
    }
}

/// Unit files held in memory (tests, embedding).
#[derive(Default, Clone)]
pub struct MapSource {
    pub files: BTreeMap<String, String>,
}

impl MapSource {
    pub fn with(mut self, name: &str, text: &str) -> Self {
        self.files.insert(name.to_string(), text.to_string());
        self
    }

    fn read(&self, file: &str) -> Option<(String, String)> {
        self.files
            .get(file)
            .map(|t| (format!("/test/{file}"), t.clone()))
    }
}

impl UnitSource for MapSource {
    fn load(&self, name: &str) -> Loaded {
        resolve(name, &|f| self.read(f), &|_| {})
    }

    fn list_files(&self) -> Vec<(String, String)> {
        self.files
            .iter()
            .map(|(n, t)| (format!("/test/{n}"), file_state_of(t)))
            .collect()
    }

    fn file_state(&self, name: &str) -> Option<String> {
        let parsed = UnitName::parse(name)?;
        let (_, text) = self
            .read(name)
            .or_else(|| parsed.template().and_then(|t| self.read(&t)))?;
        Some(file_state_of(&text))
    }
}
