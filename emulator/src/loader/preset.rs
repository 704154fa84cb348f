//! Preset policy (`*.preset` files) for UnitFilePreset: the first matching rule wins, and a unit
//! no rule matches is `enabled`, as in systemd.

use super::vfs::{Kind, Vfs};
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presets {
    /// (enable?, glob pattern), in file-name order then line order.
    rules: Vec<(bool, String)>,
}

/// `fnmatch` without flags, for the `*` and `?` that preset files use.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], name) || (!name.is_empty() && glob(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

impl Presets {
    pub fn load(vfs: &dyn Vfs, root: &Path) -> Presets {
        let dirs: Vec<std::path::PathBuf> = [
            "etc/systemd/system-preset",
            "run/systemd/system-preset",
            "usr/local/lib/systemd/system-preset",
            "lib/systemd/system-preset",
            "usr/lib/systemd/system-preset",
        ]
        .iter()
        .map(|d| root.join(d))
        .collect();
        // A file in an earlier directory shadows same-named files in later ones.
        let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
        for d in &dirs {
            for (name, kind) in vfs.list(d) {
                if !name.ends_with(".preset") || kind == Kind::Dir {
                    continue;
                }
                if !files.iter().any(|(n, _)| *n == name) {
                    files.push((name.clone(), d.join(&name)));
                }
            }
        }
        files.sort();
        let mut rules = Vec::new();
        for (_, p) in files {
            let Ok(text) = vfs.read(&p) else { continue };
            for line in text.lines().map(str::trim) {
                let mut w = line.split_whitespace();
                match (w.next(), w.next()) {
                    (Some("enable"), Some(pat)) => rules.push((true, pat.to_string())),
                    (Some("disable"), Some(pat)) => rules.push((false, pat.to_string())),
                    _ => {}
                }
            }
        }
        Presets { rules }
    }

    pub fn state(&self, name: &str) -> &'static str {
        match self
            .rules
            .iter()
            .find(|(_, p)| glob(p.as_bytes(), name.as_bytes()))
        {
            Some((false, _)) => "disabled",
            _ => "enabled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::vfs::MemFs;

    #[test]
    fn first_matching_rule_wins_default_enabled() {
        let fs = MemFs::default();
        fs.put_file(
            Path::new("/usr/lib/systemd/system-preset/90-x.preset"),
            "# c\nenable a*.service\ndisable *\n",
        );
        fs.put_file(
            Path::new("/etc/systemd/system-preset/10-y.preset"),
            "disable ab.service\n",
        );
        let p = Presets::load(&fs, Path::new("/"));
        assert_eq!(p.state("ab.service"), "disabled");
        assert_eq!(p.state("ac.service"), "enabled");
        assert_eq!(p.state("b.service"), "disabled");
        assert_eq!(Presets::default().state("b.service"), "enabled");
        assert!(glob(b"a?c*", b"abcdef") && !glob(b"a?c", b"abcd"));
    }
}
