//! Unit sources: resolving a unit name to a definition through systemd's search path, with
//! drop-ins, masks, aliases and `.wants/` directories (files on disk, or a tree in memory).

mod index;
mod install;
mod preset;
mod state;
pub mod vfs;

pub use index::{explicit_dirs, search_dirs, user_search_dirs, Scope, SearchDir, UserDirs};

use crate::engine::{Changes, EngineError, Loaded, UnitSource};
use crate::names::UnitName;
use crate::unitfile::build_files;
use index::{DepKind, Entry, EntryKind, Index};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use vfs::{MemFs, RealFs, Vfs};

/// Unit files under a set of search directories, indexed once per (re)load.
pub struct UnitFiles<V: Vfs> {
    vfs: V,
    root: PathBuf,
    dirs: Vec<SearchDir>,
    index: RwLock<Option<Arc<Index>>>,
    presets: RwLock<Option<Arc<preset::Presets>>>,
}

/// What a name resolved to: the unit's id (after following aliases) and its file entry.
struct Resolved {
    id: String,
    entry: Entry,
}

impl<V: Vfs> UnitFiles<V> {
    fn new(vfs: V, root: PathBuf, dirs: Vec<SearchDir>) -> Self {
        UnitFiles {
            vfs,
            root,
            dirs,
            index: RwLock::new(None),
            presets: RwLock::new(None),
        }
    }

    fn presets(&self) -> Arc<preset::Presets> {
        if let Some(p) = self
            .presets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return p.clone();
        }
        let loaded = Arc::new(preset::Presets::load(&self.vfs, &self.root));
        *self.presets.write().unwrap_or_else(|e| e.into_inner()) = Some(loaded.clone());
        loaded
    }

    /// UnitFilePreset: only units with a file have one.
    fn preset_of(&self, name: &str) -> Option<String> {
        self.file_state_of(name)?;
        Some(self.presets().state(name).to_string())
    }

    fn index(&self) -> Arc<Index> {
        if let Some(i) = self
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return i.clone();
        }
        let built = Arc::new(Index::build(&self.vfs, &self.dirs));
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Some(built.clone());
        built
    }

    /// Forgets the index; the next lookup scans the directories again.
    fn invalidate(&self) {
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = None;
        *self.presets.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn shown(p: &Path) -> String {
        p.display().to_string()
    }

    /// Finds the file for `name` (or its template), following alias symlinks.
    fn resolve(&self, idx: &Index, name: &str) -> Option<Resolved> {
        let mut id = name.to_string();
        for _ in 0..8 {
            let parsed = UnitName::parse(&id)?;
            let entry = idx
                .units
                .get(&id)
                .or_else(|| parsed.template().and_then(|t| idx.units.get(&t)))?;
            let EntryKind::Alias(target) = &entry.kind else {
                return Some(Resolved {
                    id,
                    entry: entry.clone(),
                });
            };
            // An alias of a template keeps the instance: `x@a` via `x@.service -> y@.service`.
            id = match (&parsed.instance, UnitName::parse(target)) {
                (Some(inst), Some(t)) if t.instance.as_deref() == Some("") => {
                    format!("{}@{}.{}", t.prefix, inst, t.suffix)
                }
                _ => target.clone(),
            };
        }
        None
    }

    /// `Names`: the id first, then the aliases in name order (as systemd lists its set).
    fn names_of(idx: &Index, id: &str, asked: &str) -> Vec<String> {
        let mut aliases: Vec<String> = idx.aliases.get(id).cloned().unwrap_or_default();
        aliases.push(asked.to_string());
        aliases.sort();
        aliases.dedup();
        aliases.retain(|a| a != id);
        let mut names = vec![id.to_string()];
        names.extend(aliases);
        names
    }

    fn read_error(path: &Path, e: &std::io::Error) -> Loaded {
        let errno = e
            .raw_os_error()
            .map(|n| format!("{:?}", nix::errno::Errno::from_raw(n)))
            .unwrap_or_else(|| "EIO".to_string());
        Loaded::Failed {
            load_state: "error",
            error_name: "org.freedesktop.systemd1.LoadFailed",
            message: format!("{}: failed to read: {e} ({errno})", path.display()),
            path: Self::shown(path),
        }
    }

    fn load_with(&self, name: &str, warn: &dyn Fn(&str)) -> Loaded {
        if UnitName::parse(name).is_none() {
            return Loaded::NotFound;
        }
        let idx = self.index();
        let Some(r) = self.resolve(&idx, name) else {
            return Loaded::NotFound;
        };
        let masked = Loaded::Failed {
            load_state: "masked",
            error_name: "org.freedesktop.systemd1.UnitMasked",
            message: format!("Unit {} is masked.", r.id),
            path: Self::shown(&r.entry.path),
        };
        if r.entry.kind == EntryKind::Masked {
            return masked;
        }
        let text = match self.vfs.read(&r.entry.path) {
            Ok(t) => t,
            Err(e) => return Self::read_error(&r.entry.path, &e),
        };
        // systemd treats an empty unit file like a symlink to /dev/null.
        if text.is_empty() {
            return masked;
        }
        let names = Self::names_of(&idx, &r.id, name);
        let mut files = vec![(Self::shown(&r.entry.path), text)];
        // Only the unit's own name (and template) select drop-ins, not its aliases.
        for p in idx.dropins_for(std::slice::from_ref(&r.id)) {
            match self.vfs.read(&p) {
                Ok(t) => files.push((Self::shown(&p), t)),
                Err(e) => warn(&format!("{}: failed to read drop-in: {e}", p.display())),
            }
        }
        let outcome = build_files(&r.id, &files);
        for w in &outcome.warnings {
            warn(w);
        }
        let mut def = match outcome.result {
            Ok(def) => def,
            Err(f) => {
                return Loaded::Failed {
                    load_state: f.load_state,
                    error_name: f.error_name,
                    message: f.message,
                    path: files[0].0.clone(),
                }
            }
        };
        for n in &names {
            for (kind, dep) in idx.deps.get(n).into_iter().flatten() {
                let list = match kind {
                    DepKind::Wants => &mut def.deps.wants,
                    DepKind::Requires => &mut def.deps.requires,
                    DepKind::Upholds => &mut def.deps.upholds,
                };
                if !list.contains(dep) {
                    list.push(dep.clone());
                }
            }
        }
        add_default_target_order(&mut def);
        def.names = names;
        Loaded::Ok(Box::new(def))
    }

    fn file_state_of(&self, name: &str) -> Option<String> {
        state::file_state(self, &self.index(), name)
    }

    fn list(&self) -> Vec<(String, String)> {
        let idx = self.index();
        let mut names: Vec<&String> = idx.units.keys().collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|n| {
                let e = idx.units.get(n)?;
                let st = state::file_state(self, &idx, n)?;
                Some((Self::shown(&e.path), st))
            })
            .collect()
    }
}

/// systemd's default dependencies of a target: it is ordered after every unit it pulls in
/// (unless ordered before it), so a failing Requires= fails the target's start.
fn add_default_target_order(def: &mut crate::unitfile::UnitDef) {
    if !def.default_dependencies || def.kind != crate::unitfile::UnitKind::Target {
        return;
    }
    let d = &mut def.deps;
    let pulled: Vec<String> = d
        .requires
        .iter()
        .chain(&d.requisite)
        .chain(&d.wants)
        .chain(&d.binds_to)
        .cloned()
        .collect();
    for u in pulled {
        if !d.after.contains(&u) && !d.before.contains(&u) {
            d.after.push(u);
        }
    }
}

/// Unit files on disk: systemd's search path under a root, or explicit directories.
pub struct FsSource {
    files: UnitFiles<RealFs>,
}

impl FsSource {
    /// systemd's search path below `root` (`/` for the real system).
    pub fn with_root(root: &Path) -> Self {
        let dirs = search_dirs(root);
        FsSource {
            files: UnitFiles::new(RealFs, root.to_path_buf(), dirs),
        }
    }

    /// A user manager's search path (`--user`).
    pub fn with_user_root(root: &Path, user: &index::UserDirs) -> Self {
        let dirs = index::user_search_dirs(root, user);
        FsSource {
            files: UnitFiles::new(RealFs, root.to_path_buf(), dirs),
        }
    }

    /// Explicit directories, searched in order (`--unit-dir`), then the runtime and transient
    /// directories below `runtime` ([`explicit_dirs`]); `enable` writes to the first given
    /// directory, `enable --runtime` below `runtime`.
    pub fn with_dirs(unit_dirs: &[PathBuf], runtime: &Path, user: bool) -> Self {
        let dirs = explicit_dirs(unit_dirs, runtime, user);
        FsSource {
            files: UnitFiles::new(RealFs, PathBuf::from("/"), dirs),
        }
    }

    pub fn dirs(&self) -> Vec<PathBuf> {
        self.files.dirs.iter().map(|d| d.path.clone()).collect()
    }
}

/// Implements [`UnitSource`] by delegating to the `files` field.
macro_rules! unit_source_via_files {
    ($t:ty, $warn:expr) => {
        impl UnitSource for $t {
            fn load(&self, name: &str) -> Loaded {
                self.files.load_with(name, &$warn)
            }
            fn list_files(&self) -> Vec<(String, String)> {
                self.files.list()
            }
            fn file_state(&self, name: &str) -> Option<String> {
                self.files.file_state_of(name)
            }
            fn reload(&self) {
                self.files.invalidate();
            }
            fn file_preset(&self, name: &str) -> Option<String> {
                self.files.preset_of(name)
            }
            fn enable(
                &self,
                names: &[String],
                runtime: bool,
                force: bool,
            ) -> Result<Changes, EngineError> {
                install::enable(&self.files, names, runtime, force)
            }
            fn disable(&self, names: &[String], runtime: bool) -> Result<Changes, EngineError> {
                install::disable(&self.files, names, runtime)
            }
            fn default_target(&self) -> Result<String, EngineError> {
                install::default_target(&self.files)
            }
            fn set_default_target(&self, name: &str, force: bool) -> Result<Changes, EngineError> {
                install::set_default_target(&self.files, name, force)
            }
        }
    };
}

unit_source_via_files!(FsSource, |w: &str| tracing::warn!("{w}"));
unit_source_via_files!(MapSource, |_: &str| {});

/// Unit files held in memory (tests, the conformance replay), laid out like a real system with
/// the files in `/etc/systemd/system`.
pub struct MapSource {
    files: UnitFiles<MemFs>,
}

impl Default for MapSource {
    fn default() -> Self {
        let root = PathBuf::from("/");
        let dirs = search_dirs(&root);
        MapSource {
            files: UnitFiles::new(MemFs::default(), root, dirs),
        }
    }
}

impl Clone for MapSource {
    fn clone(&self) -> Self {
        MapSource {
            files: UnitFiles::new(
                self.files.vfs.clone(),
                self.files.root.clone(),
                self.files.dirs.clone(),
            ),
        }
    }
}

/// Where [`MapSource`] keeps its files.
pub const MAP_UNIT_DIR: &str = "/etc/systemd/system";

impl MapSource {
    /// Adds a file below `/etc/systemd/system` (`a.service`, or `a.service.d/10-x.conf`).
    pub fn with(self, rel: &str, text: &str) -> Self {
        self.files
            .vfs
            .put_file(&Path::new(MAP_UNIT_DIR).join(rel), text);
        self.files.invalidate();
        self
    }

    /// Adds a symlink below `/etc/systemd/system`; a bare unit name as target means the file of
    /// that name in the same directory.
    pub fn with_link(self, rel: &str, target: &str) -> Self {
        let t = if target.contains('/') {
            PathBuf::from(target)
        } else {
            Path::new(MAP_UNIT_DIR).join(target)
        };
        self.files
            .vfs
            .put_link(&Path::new(MAP_UNIT_DIR).join(rel), &t);
        self.files.invalidate();
        self
    }

    /// Adds a file anywhere in the tree (e.g. `/usr/lib/systemd/system/x.service`).
    pub fn with_abs(self, path: &str, text: &str) -> Self {
        self.files.vfs.put_file(Path::new(path), text);
        self.files.invalidate();
        self
    }
}

#[cfg(test)]
mod tests;
