//! Preset policy, read locally as systemctl does for `list-unit-files` (the manager does not
//! send it with ListUnitFiles).

use crate::fmt::glob;
use std::collections::BTreeMap;

const DIRS: &[&str] = &[
    "/etc/systemd/system-preset",
    "/run/systemd/system-preset",
    "/usr/local/lib/systemd/system-preset",
    "/usr/lib/systemd/system-preset",
    "/lib/systemd/system-preset",
];

/// `(enable?, pattern)` rules in the order they apply: files sorted by name, earlier
/// directories overriding files of the same name in later ones.
pub struct Presets(Vec<(bool, String)>);

impl Presets {
    pub fn load() -> Self {
        let mut files: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
        for d in DIRS {
            let Ok(rd) = std::fs::read_dir(d) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".preset") {
                    files.entry(name).or_insert_with(|| e.path());
                }
            }
        }
        let mut rules = Vec::new();
        for path in files.values() {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            rules.extend(parse(&text));
        }
        Presets(rules)
    }

    /// "enabled" or "disabled"; units no rule mentions are enabled, as in systemd.
    pub fn query(&self, unit: &str) -> &'static str {
        match self.0.iter().find(|(_, p)| glob(p, unit)) {
            Some((false, _)) => "disabled",
            _ => "enabled",
        }
    }
}

fn parse(text: &str) -> Vec<(bool, String)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let enable = match w.next()? {
                "enable" => true,
                "disable" => false,
                _ => return None,
            };
            Some((enable, w.next()?.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_matching_rule_wins() {
        let p = super::Presets(super::parse("# c\nenable a*.service\ndisable *\n"));
        assert_eq!(p.query("ab.service"), "enabled");
        assert_eq!(p.query("b.service"), "disabled");
        assert_eq!(super::Presets(Vec::new()).query("x.service"), "enabled");
    }
}
