//! The file operations unit loading and installing need, on the real file system or in memory.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// What a directory entry is; symlinks carry their raw target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link(PathBuf),
}

pub trait Vfs {
    /// Entries of `dir` (empty when it does not exist or cannot be read).
    fn list(&self, dir: &Path) -> Vec<(String, Kind)>;
    /// Contents of a file, following symlinks.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Creates `link` pointing at `target`, with missing parent directories.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Removes a file or symlink.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// The raw target of a symlink, `None` for anything else.
    fn read_link(&self, path: &Path) -> Option<PathBuf>;
}

/// The real file system.
#[derive(Debug, Default, Clone)]
pub struct RealFs;

impl Vfs for RealFs {
    fn list(&self, dir: &Path) -> Vec<(String, Kind)> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::warn!("{}: cannot read directory: {e}", dir.display());
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            let kind = if ft.is_symlink() {
                match std::fs::read_link(e.path()) {
                    Ok(t) => Kind::Link(t),
                    Err(_) => continue,
                }
            } else if ft.is_dir() {
                Kind::Dir
            } else {
                Kind::File
            };
            out.push((name, kind));
        }
        out
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(target, link)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn read_link(&self, path: &Path) -> Option<PathBuf> {
        std::fs::read_link(path).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File(String),
    Link(PathBuf),
}

/// An in-memory tree of files and symlinks (directories are implied by paths).
#[derive(Debug, Default)]
pub struct MemFs {
    nodes: RwLock<BTreeMap<PathBuf, Node>>,
}

impl Clone for MemFs {
    fn clone(&self) -> Self {
        MemFs {
            nodes: RwLock::new(self.snapshot()),
        }
    }
}

impl MemFs {
    fn snapshot(&self) -> BTreeMap<PathBuf, Node> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<PathBuf, Node>> {
        self.nodes.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn put_file(&self, path: &Path, text: &str) {
        self.write()
            .insert(path.to_path_buf(), Node::File(text.to_string()));
    }

    pub fn put_link(&self, path: &Path, target: &Path) {
        self.write()
            .insert(path.to_path_buf(), Node::Link(target.to_path_buf()));
    }

    fn get(&self, path: &Path) -> Option<Node> {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned()
    }
}

impl Vfs for MemFs {
    fn list(&self, dir: &Path) -> Vec<(String, Kind)> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        let mut out: BTreeMap<String, Kind> = BTreeMap::new();
        for (p, n) in nodes.range(dir.to_path_buf()..) {
            let Ok(rest) = p.strip_prefix(dir) else { break };
            let mut comps = rest.components();
            let Some(first) = comps.next() else { continue };
            let name = first.as_os_str().to_string_lossy().into_owned();
            let kind = if comps.next().is_some() {
                Kind::Dir
            } else {
                match n {
                    Node::File(_) => Kind::File,
                    Node::Link(t) => Kind::Link(t.clone()),
                }
            };
            out.entry(name).or_insert(kind);
        }
        out.into_iter().collect()
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        let mut p = path.to_path_buf();
        for _ in 0..16 {
            match self.get(&p) {
                Some(Node::File(t)) => return Ok(t),
                Some(Node::Link(t)) if t == Path::new("/dev/null") => return Ok(String::new()),
                Some(Node::Link(t)) => {
                    p = match p.parent() {
                        Some(parent) if t.is_relative() => parent.join(t),
                        _ => t,
                    }
                }
                None => break,
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no such file", path.display()),
        ))
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        let mut nodes = self.write();
        if nodes.contains_key(link) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists", link.display()),
            ));
        }
        nodes.insert(link.to_path_buf(), Node::Link(target.to_path_buf()));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        match self.write().remove(path) {
            Some(_) => Ok(()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file", path.display()),
            )),
        }
    }

    fn read_link(&self, path: &Path) -> Option<PathBuf> {
        match self.get(path) {
            Some(Node::Link(t)) => Some(t),
            _ => None,
        }
    }
}
