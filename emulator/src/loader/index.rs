//! One scan of the search directories, built per (re)load so that lookups never touch the
//! directories again: unit files, masks, aliases, drop-in directories and `.wants`-style links.

use super::vfs::{Kind, Vfs};
use crate::names::UnitName;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How systemd treats a search directory when it computes UnitFileState.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `/etc`: persistent configuration.
    Config,
    /// `/run`: runtime configuration (`*-runtime` states).
    Runtime,
    Transient,
    /// Package-provided (`/usr/lib`, `/lib`, `/usr/local/lib`).
    Vendor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDir {
    pub path: PathBuf,
    pub scope: Scope,
}

/// systemd 252's system search path (as built for Debian: `/lib` before `/usr/lib`) under `root`.
/// Like systemd, `/lib` stays in the list even when it links to `/usr/lib`, so vendor units
/// report `/lib/systemd/system/...` as their FragmentPath there.
pub fn search_dirs(root: &Path) -> Vec<SearchDir> {
    let mk = |p: &str, scope| SearchDir {
        path: root.join(p),
        scope,
    };
    let mut dirs = vec![
        mk("etc/systemd/system.control", Scope::Config),
        mk("run/systemd/system.control", Scope::Runtime),
        mk("run/systemd/transient", Scope::Transient),
        mk("etc/systemd/system", Scope::Config),
        mk("run/systemd/system", Scope::Runtime),
        mk("usr/local/lib/systemd/system", Scope::Vendor),
    ];
    dirs.push(mk("lib/systemd/system", Scope::Vendor));
    dirs.push(mk("usr/lib/systemd/system", Scope::Vendor));
    dirs
}

/// `--unit-dir` mode: the given directories (persistent configuration, `enable` writes to the
/// first), then the manager's runtime directory as systemd lays out `/run/systemd` (or
/// `$XDG_RUNTIME_DIR/systemd`): `system/` (`user/` for a user manager) is the runtime scope
/// that `enable --runtime` writes to, `transient/` holds transient units. Both come after the
/// given directories, which stay the primary source of unit files.
pub fn explicit_dirs(unit_dirs: &[PathBuf], runtime: &Path, user: bool) -> Vec<SearchDir> {
    let mut dirs: Vec<SearchDir> = unit_dirs
        .iter()
        .map(|p| SearchDir {
            path: p.clone(),
            scope: Scope::Config,
        })
        .collect();
    dirs.push(SearchDir {
        path: runtime.join(if user { "user" } else { "system" }),
        scope: Scope::Runtime,
    });
    dirs.push(SearchDir {
        path: runtime.join("transient"),
        scope: Scope::Transient,
    });
    dirs
}

/// The places a user manager (`systemd --user`) looks in besides the system-wide ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDirs {
    /// `$XDG_CONFIG_HOME` (default `~/.config`).
    pub config_home: PathBuf,
    /// `$XDG_DATA_HOME` (default `~/.local/share`).
    pub data_home: PathBuf,
    /// The manager's runtime directory (`$XDG_RUNTIME_DIR/systemd` for systemd --user), when
    /// there is one: `user.control/`, `transient/` and `user/` below it are searched.
    pub runtime: Option<PathBuf>,
}

/// systemd 252's user search path (`systemd-analyze --user unit-paths`, without generator
/// directories): per-user directories as given, system-wide ones under `root`.
pub fn user_search_dirs(root: &Path, user: &UserDirs) -> Vec<SearchDir> {
    let sys = |p: &str, scope| SearchDir {
        path: root.join(p),
        scope,
    };
    let own = |base: &Path, p: &str, scope| SearchDir {
        path: base.join(p),
        scope,
    };
    let mut dirs = vec![own(
        &user.config_home,
        "systemd/user.control",
        Scope::Config,
    )];
    if let Some(run) = &user.runtime {
        dirs.push(own(run, "user.control", Scope::Runtime));
        dirs.push(own(run, "transient", Scope::Transient));
    }
    dirs.push(own(&user.config_home, "systemd/user", Scope::Config));
    dirs.push(sys("etc/xdg/systemd/user", Scope::Config));
    dirs.push(sys("etc/systemd/user", Scope::Config));
    if let Some(run) = &user.runtime {
        dirs.push(own(run, "user", Scope::Runtime));
    }
    dirs.push(sys("run/systemd/user", Scope::Runtime));
    dirs.push(own(&user.data_home, "systemd/user", Scope::Vendor));
    dirs.push(sys("usr/local/share/systemd/user", Scope::Vendor));
    dirs.push(sys("usr/share/systemd/user", Scope::Vendor));
    dirs.push(sys("usr/local/lib/systemd/user", Scope::Vendor));
    dirs.push(sys("usr/lib/systemd/user", Scope::Vendor));
    dirs
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    /// A symlink to `/dev/null`.
    Masked,
    /// A symlink to another unit file name.
    Alias(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dir: usize,
    pub path: PathBuf,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    Wants,
    Requires,
    Upholds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropIn {
    pub dir: usize,
    pub conf: String,
    pub path: PathBuf,
    pub masked: bool,
}

/// A symlink that enables a unit file: in a `.wants`/`.requires` directory or an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnableLink {
    pub dir: usize,
    pub path: PathBuf,
    /// The link's own name (an instance name for enabled templates).
    pub name: String,
}

#[derive(Debug, Default)]
pub struct Index {
    /// The highest-priority entry for every unit file name.
    pub units: HashMap<String, Entry>,
    /// `NAME.d` directory name → its `.conf` files in every search directory.
    pub dropins: HashMap<String, Vec<DropIn>>,
    /// Unit → dependencies added by `.wants/`, `.requires/`, `.upholds/` directories.
    pub deps: HashMap<String, Vec<(DepKind, String)>>,
    /// Target file name → symlinks pointing at it.
    pub links: HashMap<String, Vec<EnableLink>>,
    /// Unit → names of the alias symlinks that resolve to it.
    pub aliases: HashMap<String, Vec<String>>,
}

fn link_kind(name: &str, target: &Path) -> EntryKind {
    if target == Path::new("/dev/null") {
        return EntryKind::Masked;
    }
    match target.file_name().map(|t| t.to_string_lossy().into_owned()) {
        Some(t) if t != name && UnitName::parse(&t).is_some() => EntryKind::Alias(t),
        _ => EntryKind::File,
    }
}

fn base(p: &Path) -> Option<String> {
    p.file_name().map(|t| t.to_string_lossy().into_owned())
}

impl Index {
    pub fn build(vfs: &dyn Vfs, dirs: &[SearchDir]) -> Index {
        let mut idx = Index::default();
        for (i, d) in dirs.iter().enumerate() {
            for (name, kind) in vfs.list(&d.path) {
                let path = d.path.join(&name);
                match kind {
                    Kind::Dir => idx.scan_subdir(vfs, i, &path, &name),
                    Kind::File | Kind::Link(_) if UnitName::parse(&name).is_some() => {
                        let ekind = match &kind {
                            Kind::Link(t) => link_kind(&name, t),
                            _ => EntryKind::File,
                        };
                        if let EntryKind::Alias(t) = &ekind {
                            idx.links.entry(t.clone()).or_default().push(EnableLink {
                                dir: i,
                                path: path.clone(),
                                name: name.clone(),
                            });
                        }
                        if idx.units.contains_key(&name) {
                            continue;
                        }
                        if let EntryKind::Alias(t) = &ekind {
                            idx.aliases.entry(t.clone()).or_default().push(name.clone());
                        }
                        idx.units.insert(
                            name,
                            Entry {
                                dir: i,
                                path,
                                kind: ekind,
                            },
                        );
                    }
                    _ => {}
                }
            }
        }
        idx
    }

    fn scan_subdir(&mut self, vfs: &dyn Vfs, i: usize, path: &Path, name: &str) {
        if let Some(unit) = name.strip_suffix(".d") {
            let list = self.dropins.entry(name.to_string()).or_default();
            let _ = unit;
            for (conf, kind) in vfs.list(path) {
                if !conf.ends_with(".conf") || kind == Kind::Dir {
                    continue;
                }
                let masked = matches!(&kind, Kind::Link(t) if t == Path::new("/dev/null"));
                list.push(DropIn {
                    dir: i,
                    path: path.join(&conf),
                    conf,
                    masked,
                });
            }
            return;
        }
        let (unit, dep) = if let Some(u) = name.strip_suffix(".wants") {
            (u, DepKind::Wants)
        } else if let Some(u) = name.strip_suffix(".requires") {
            (u, DepKind::Requires)
        } else if let Some(u) = name.strip_suffix(".upholds") {
            (u, DepKind::Upholds)
        } else {
            return;
        };
        if UnitName::parse(unit).is_none() {
            return;
        }
        for (entry, kind) in vfs.list(path) {
            if UnitName::parse(&entry).is_none() {
                continue;
            }
            let deps = self.deps.entry(unit.to_string()).or_default();
            if !deps.iter().any(|(k, n)| *k == dep && *n == entry) {
                deps.push((dep, entry.clone()));
            }
            if let Kind::Link(t) = kind {
                if let Some(target) = base(&t) {
                    self.links.entry(target).or_default().push(EnableLink {
                        dir: i,
                        path: path.join(&entry),
                        name: entry,
                    });
                }
            }
        }
    }

    /// The drop-in directory names that apply to a unit called `name`, most specific first:
    /// `a-b@x.service.d`, `a-b@.service.d`, `a-b-.service.d`... `a-.service.d`, `service.d`.
    pub fn dropin_dir_names(name: &str) -> Vec<String> {
        let Some(p) = UnitName::parse(name) else {
            return Vec::new();
        };
        let mut out = vec![format!("{name}.d")];
        if let Some(t) = p.template() {
            out.push(format!("{t}.d"));
        }
        let mut prefix = p.prefix.as_str();
        while let Some(pos) = prefix.rfind('-') {
            // `a-b-c` gives `a-b-` then `a-`; a trailing dash is not a level of its own.
            let cut = &prefix[..=pos];
            if cut.len() < p.prefix.len() {
                out.push(format!("{cut}.{}.d", p.suffix));
            }
            prefix = &prefix[..pos];
        }
        out.push(format!("{}.d", p.suffix));
        out
    }

    /// Drop-in files for a unit with `names`, in application order: by file name, a file in a
    /// higher-priority directory shadowing same-named ones below it.
    pub fn dropins_for(&self, names: &[String]) -> Vec<PathBuf> {
        let mut cands: Vec<(usize, usize, &DropIn)> = Vec::new();
        let mut order = 0;
        for n in names {
            for dname in Self::dropin_dir_names(n) {
                if let Some(list) = self.dropins.get(&dname) {
                    for d in list {
                        cands.push((d.dir, order, d));
                    }
                }
                order += 1;
            }
        }
        cands.sort_by_key(|(dir, ord, _)| (*dir, *ord));
        let mut seen: Vec<&str> = Vec::new();
        let mut out: Vec<&DropIn> = Vec::new();
        for (_, _, d) in cands {
            if seen.contains(&d.conf.as_str()) {
                continue;
            }
            seen.push(&d.conf);
            if !d.masked {
                out.push(d);
            }
        }
        out.sort_by(|a, b| a.conf.cmp(&b.conf));
        out.into_iter().map(|d| d.path.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_order_matches_debian_systemd_252() {
        let dirs: Vec<String> = search_dirs(Path::new("/r"))
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        assert_eq!(
            dirs,
            vec![
                "/r/etc/systemd/system.control",
                "/r/run/systemd/system.control",
                "/r/run/systemd/transient",
                "/r/etc/systemd/system",
                "/r/run/systemd/system",
                "/r/usr/local/lib/systemd/system",
                "/r/lib/systemd/system",
                "/r/usr/lib/systemd/system",
            ]
        );
    }

    #[test]
    fn dropin_dir_names_follow_systemd() {
        assert_eq!(
            Index::dropin_dir_names("a-b-c.service"),
            vec![
                "a-b-c.service.d",
                "a-b-.service.d",
                "a-.service.d",
                "service.d"
            ]
        );
        assert_eq!(
            Index::dropin_dir_names("foo@x.service"),
            vec!["foo@x.service.d", "foo@.service.d", "service.d"]
        );
        assert_eq!(
            Index::dropin_dir_names("a-b@x.target"),
            vec!["a-b@x.target.d", "a-b@.target.d", "a-.target.d", "target.d"]
        );
    }

    #[test]
    fn user_search_path_order_matches_systemd_252() {
        let user = UserDirs {
            config_home: PathBuf::from("/h/.config"),
            data_home: PathBuf::from("/h/.local/share"),
            runtime: Some(PathBuf::from("/x/systemd")),
        };
        let dirs: Vec<(String, Scope)> = user_search_dirs(Path::new("/r"), &user)
            .iter()
            .map(|d| (d.path.display().to_string(), d.scope))
            .collect();
        let want = [
            ("/h/.config/systemd/user.control", Scope::Config),
            ("/x/systemd/user.control", Scope::Runtime),
            ("/x/systemd/transient", Scope::Transient),
            ("/h/.config/systemd/user", Scope::Config),
            ("/r/etc/xdg/systemd/user", Scope::Config),
            ("/r/etc/systemd/user", Scope::Config),
            ("/x/systemd/user", Scope::Runtime),
            ("/r/run/systemd/user", Scope::Runtime),
            ("/h/.local/share/systemd/user", Scope::Vendor),
            ("/r/usr/local/share/systemd/user", Scope::Vendor),
            ("/r/usr/share/systemd/user", Scope::Vendor),
            ("/r/usr/local/lib/systemd/user", Scope::Vendor),
            ("/r/usr/lib/systemd/user", Scope::Vendor),
        ];
        let want: Vec<(String, Scope)> = want.iter().map(|(p, s)| (p.to_string(), *s)).collect();
        assert_eq!(dirs, want);
        // Without a runtime directory the per-session entries are simply absent.
        let no_run = UserDirs {
            runtime: None,
            ..user
        };
        assert_eq!(
            user_search_dirs(Path::new("/"), &no_run).len(),
            want.len() - 3
        );
    }
}
