//! `%`-specifier expansion for values in unit files.

use crate::names::{unit_name_unescape, UnitName};

/// What specifiers expand to for one unit.
#[derive(Debug, Clone)]
pub struct SpecifierContext {
    pub name: String,
    pub parsed: Option<UnitName>,
}

impl SpecifierContext {
    pub fn new(name: &str) -> Self {
        SpecifierContext {
            name: name.to_string(),
            parsed: UnitName::parse(name),
        }
    }

    fn lookup(&self, c: char) -> Option<String> {
        let p = self.parsed.as_ref();
        Some(match c {
            'n' => self.name.clone(),
            'N' => p.map(|p| p.without_suffix()).unwrap_or_default(),
            'p' => p.map(|p| p.prefix.clone()).unwrap_or_default(),
            'P' => p.map(|p| unit_name_unescape(&p.prefix)).unwrap_or_default(),
            'i' => p.and_then(|p| p.instance.clone()).unwrap_or_default(),
            'I' => p
                .and_then(|p| p.instance.as_deref().map(unit_name_unescape))
                .unwrap_or_default(),
            'f' => {
                let base = p
                    .map(|p| unit_name_unescape(p.instance.as_deref().unwrap_or(&p.prefix)))
                    .unwrap_or_default();
                if base.starts_with('/') {
                    base
                } else {
                    format!("/{base}")
                }
            }
            // The last dash-separated part of the prefix (`%j`), and unescaped (`%J`).
            'j' => p
                .map(|p| p.prefix.rsplit('-').next().unwrap_or("").to_string())
                .unwrap_or_default(),
            'J' => p
                .map(|p| unit_name_unescape(p.prefix.rsplit('-').next().unwrap_or("")))
                .unwrap_or_default(),
            // Fixed directories of the system manager.
            't' => "/run".into(),
            'S' => "/var/lib".into(),
            'C' => "/var/cache".into(),
            'L' => "/var/log".into(),
            'E' => "/etc".into(),
            'T' => "/tmp".into(),
            'V' => "/var/tmp".into(),
            'h' => "/root".into(),
            's' => "/bin/sh".into(),
            'u' | 'g' => "root".into(),
            'U' | 'G' => "0".into(),
            _ => return None,
        })
    }

    /// Expands specifiers; an unknown one is an error naming it (systemd ignores the line).
    pub fn expand(&self, value: &str) -> Result<String, String> {
        let mut out = String::with_capacity(value.len());
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some(s) => match self.lookup(s) {
                    Some(v) => out.push_str(&v),
                    None => return Err(format!("unknown specifier '%{s}'")),
                },
                None => return Err("trailing '%'".to_string()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_instance_specifiers() {
        let c = SpecifierContext::new("bluechi-dep@my\\x2dapp.service");
        assert_eq!(
            c.expand("BindsTo=%i.service").unwrap(),
            "BindsTo=my\\x2dapp.service"
        );
        assert_eq!(c.expand("%I").unwrap(), "my-app");
        assert_eq!(
            c.expand("%n|%N|%p|%%").unwrap(),
            "bluechi-dep@my\\x2dapp.service|bluechi-dep@my\\x2dapp|bluechi-dep|%"
        );
        assert_eq!(c.expand("%f").unwrap(), "/my-app");
        assert!(c.expand("%Z").is_err());
        let c = SpecifierContext::new("a-b\\x2dc@-dev-sda.service");
        assert_eq!(c.expand("%j|%J|%P").unwrap(), "b\\x2dc|b-c|a/b-c");
        assert_eq!(c.expand("%I|%f|%t").unwrap(), "/dev/sda|/dev/sda|/run");
    }
}
