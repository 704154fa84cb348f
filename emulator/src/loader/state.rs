//! UnitFileState, and the `[Install]` section it is computed from.

use super::index::{EntryKind, Index, Scope};
use super::vfs::Vfs;
use super::UnitFiles;
use crate::names::UnitName;
use crate::unitfile::parse;

/// The `[Install]` section of a unit file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallInfo {
    pub wanted_by: Vec<String>,
    pub required_by: Vec<String>,
    pub upheld_by: Vec<String>,
    pub alias: Vec<String>,
    pub also: Vec<String>,
    pub default_instance: Option<String>,
}

impl InstallInfo {
    pub fn parse(text: &str) -> InstallInfo {
        let mut info = InstallInfo::default();
        let Ok((assignments, _)) = parse(text) else {
            return info;
        };
        for a in assignments.iter().filter(|a| a.section == "Install") {
            let list = match a.key.as_str() {
                "WantedBy" => &mut info.wanted_by,
                "RequiredBy" => &mut info.required_by,
                "UpheldBy" => &mut info.upheld_by,
                "Alias" => &mut info.alias,
                "Also" => &mut info.also,
                "DefaultInstance" => {
                    info.default_instance = Some(a.value.clone()).filter(|v| !v.is_empty());
                    continue;
                }
                _ => continue,
            };
            if a.value.is_empty() {
                list.clear();
            }
            for w in a.value.split_whitespace() {
                if !list.iter().any(|x| x == w) {
                    list.push(w.to_string());
                }
            }
        }
        info
    }

    /// Whether enabling creates any symlink (otherwise the unit is `static` or `indirect`).
    pub fn installs(&self) -> bool {
        !(self.wanted_by.is_empty()
            && self.required_by.is_empty()
            && self.upheld_by.is_empty()
            && self.alias.is_empty())
    }
}

/// systemd's UnitFileState for `name`; `None` if there is no such unit file.
pub fn file_state<V: Vfs>(files: &UnitFiles<V>, idx: &Index, name: &str) -> Option<String> {
    let parsed = UnitName::parse(name)?;
    let template = parsed.template();
    let entry = idx
        .units
        .get(name)
        .or_else(|| template.as_ref().and_then(|t| idx.units.get(t)))?;
    let scope = files.dirs.get(entry.dir).map(|d| d.scope)?;
    let runtime = scope == Scope::Runtime;
    let masked = if runtime { "masked-runtime" } else { "masked" };
    match &entry.kind {
        EntryKind::Masked => return Some(masked.into()),
        EntryKind::Alias(_) => return Some("alias".into()),
        EntryKind::File => {}
    }
    if scope == Scope::Transient {
        return Some("transient".into());
    }
    let text = files.vfs.read(&entry.path).ok()?;
    if text.is_empty() {
        return Some(masked.into());
    }
    // systemd's install logic cannot read an unparsable file either (GetUnitFileState fails).
    parse(&text).ok()?;
    let info = InstallInfo::parse(&text);
    let file_name = entry
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The strongest enablement among the links to this file that concern `name`: a link under
    // the unit's own name (or an Alias= it declares) enables it, any other name only indirectly.
    let mut best: Option<&'static str> = None;
    for l in idx.links.get(&file_name).into_iter().flatten() {
        let Some(scope) = files.dirs.get(l.dir).map(|d| d.scope) else {
            continue;
        };
        let enabled = if scope == Scope::Runtime {
            "enabled-runtime"
        } else {
            "enabled"
        };
        let known = match parsed.instance.as_deref() {
            Some("") => {
                let inst = UnitName::parse(&l.name).and_then(|n| n.instance);
                inst.is_some() && inst == info.default_instance
            }
            Some(_) if l.name != name && !info.alias.contains(&l.name) => continue,
            _ => l.name == name || info.alias.contains(&l.name),
        };
        let st = match scope {
            Scope::Vendor | Scope::Transient => continue,
            _ if known => enabled,
            _ => "indirect",
        };
        best = Some(match (best, st) {
            (Some("enabled"), _) | (_, "enabled") => "enabled",
            (Some("enabled-runtime"), _) | (_, "enabled-runtime") => "enabled-runtime",
            _ => st,
        });
    }
    Some(
        if let Some(found) = best {
            found
        } else if info.installs() {
            "disabled"
        } else if !info.also.is_empty() {
            "indirect"
        } else {
            "static"
        }
        .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_install_section() {
        let i = InstallInfo::parse(
            "[Unit]\nWantedBy=no.target\n[Install]\nWantedBy=a.target b.target\nAlias=x.service\nAlso=y.service\nDefaultInstance=d\nWantedBy=\nWantedBy=c.target\n",
        );
        assert_eq!(i.wanted_by, vec!["c.target"]);
        assert_eq!(i.alias, vec!["x.service"]);
        assert_eq!(i.also, vec!["y.service"]);
        assert_eq!(i.default_instance.as_deref(), Some("d"));
        assert!(i.installs());
        assert!(!InstallInfo::parse("[Install]\nAlso=a.service\n").installs());
    }
}
