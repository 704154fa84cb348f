//! Preset policy (`*.preset` files) for UnitFilePreset: the first matching rule wins, and a unit
//! no rule matches is `enabled`, as in systemd.

use super::vfs::{Kind, Vfs};
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presets {
    /// (enable?, glob pattern rewritten by [`noescape_pattern`]), in file-name order then line order.
    rules: Vec<(bool, String)>,
}

/// systemd matches preset patterns with `fnmatch(FNM_NOESCAPE)`: `*`, `?` and `[...]` work, but
/// `\` is an ordinary character (unit names carry it, as in `a\x2db.service`). The shared
/// matcher is iterative (a pattern of many `*` stays cheap) but treats `\` as an escape, so
/// each `\` outside a class becomes the one-member class `[\]`.
fn noescape_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '[' => {
                // Same class bounds as the shared matcher: `!`/`^` negate, a leading `]` is a
                // member; an unclosed `[` is literal there too. A class is copied as it is.
                let mut start = i + 1;
                if matches!(p.get(start), Some('!' | '^')) {
                    start += 1;
                }
                match (start + 1..p.len()).find(|&j| p[j] == ']') {
                    Some(end) => {
                        out.extend(&p[i..=end]);
                        i = end + 1;
                    }
                    // Unclosed: a literal `[`, spelled so that no later `]` can close it.
                    None => {
                        out.push_str("[[]");
                        i += 1;
                    }
                }
            }
            '\\' => {
                out.push_str("[\\]");
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn glob(pattern: &str, name: &str) -> bool {
    bluechi_core::fnmatch::fnmatch(pattern, name)
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
                    (Some("enable"), Some(pat)) => rules.push((true, noescape_pattern(pat))),
                    (Some("disable"), Some(pat)) => rules.push((false, noescape_pattern(pat))),
                    _ => {}
                }
            }
        }
        Presets { rules }
    }

    pub fn state(&self, name: &str) -> &'static str {
        match self.rules.iter().find(|(_, p)| glob(p, name)) {
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
        assert!(glob("a?c*", "abcdef") && !glob("a?c", "abcd"));
    }

    fn matches(pattern: &str, name: &str) -> bool {
        glob(&noescape_pattern(pattern), name)
    }

    /// Checked against systemd 252: `disable a\x2db.service` and `disable c[ab].service`
    /// both take effect on `systemctl preset`.
    #[test]
    fn classes_work_and_backslash_is_literal() {
        assert!(matches("a\\x2db.service", "a\\x2db.service"));
        assert!(!matches("a\\x2db.service", "ax2db.service"));
        assert!(matches("c[ab].service", "cb.service"));
        assert!(!matches("c[!ab].service", "cb.service"));
        assert!(matches("[\\]x", "\\x"));
        assert!(matches("[]\\]x", "\\x") && matches("[]\\]x", "]x"));
        assert!(matches("a[\\", "a[\\"));
        assert!(matches("*\\", "ab\\"));
        assert!(matches("a[b", "a[b") && !matches("a[b", "ab"));
    }

    /// The old recursive matcher took exponential time here.
    #[test]
    fn many_stars_stay_cheap() {
        let pattern = format!("{}b", "a*".repeat(40));
        let name = "a".repeat(200);
        let fs = MemFs::default();
        fs.put_file(
            Path::new("/etc/systemd/system-preset/10-y.preset"),
            &format!("disable {pattern}\n"),
        );
        let p = Presets::load(&fs, Path::new("/"));
        assert_eq!(p.state(&name), "enabled");
        assert_eq!(p.state(&format!("{name}b")), "disabled");
    }
}
