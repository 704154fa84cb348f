//! Unit names: object-path escaping, template/instance parts, specifier helpers.

/// Escapes a unit name for use as the last object-path element, the way sd-bus does
/// (`bus_label_escape`): every byte outside `[A-Za-z0-9]`, and a leading digit, becomes `_xx`.
pub fn bus_label_escape(name: &str) -> String {
    if name.is_empty() {
        return "_".to_string();
    }
    let mut out = String::with_capacity(name.len() * 3);
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (b.is_ascii_digit() && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// Reverses [`bus_label_escape`]; `None` if the label is not a valid escape.
pub fn bus_label_unescape(label: &str) -> Option<String> {
    if label == "_" {
        return Some(String::new());
    }
    let bytes = label.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = label.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub const UNIT_PATH_PREFIX: &str = "/org/freedesktop/systemd1/unit/";
pub const JOB_PATH_PREFIX: &str = "/org/freedesktop/systemd1/job/";

pub fn unit_path(name: &str) -> String {
    format!("{UNIT_PATH_PREFIX}{}", bus_label_escape(name))
}

pub fn job_path(id: u32) -> String {
    format!("{JOB_PATH_PREFIX}{id}")
}

/// The parts of a unit name: `prefix@instance.suffix` or `prefix.suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitName {
    pub prefix: String,
    pub instance: Option<String>,
    pub suffix: String,
}

impl UnitName {
    /// Parses a unit name; `None` when it has no known suffix or an invalid shape.
    pub fn parse(name: &str) -> Option<UnitName> {
        let (stem, suffix) = name.rsplit_once('.')?;
        if !matches!(
            suffix,
            "service" | "target" | "socket" | "timer" | "path" | "mount" | "slice" | "scope"
        ) {
            return None;
        }
        if stem.is_empty() || name.len() > 255 || name.contains('/') {
            return None;
        }
        let (prefix, instance) = match stem.split_once('@') {
            Some((p, i)) => (p.to_string(), Some(i.to_string())),
            None => (stem.to_string(), None),
        };
        if prefix.is_empty() {
            return None;
        }
        Some(UnitName {
            prefix,
            instance,
            suffix: suffix.to_string(),
        })
    }

    /// `foo@.service` for an instance `foo@bar.service`.
    pub fn template(&self) -> Option<String> {
        self.instance
            .as_ref()
            .map(|_| format!("{}@.{}", self.prefix, self.suffix))
    }

    pub fn full(&self) -> String {
        match &self.instance {
            Some(i) => format!("{}@{}.{}", self.prefix, i, self.suffix),
            None => format!("{}.{}", self.prefix, self.suffix),
        }
    }

    /// The name without the type suffix (`%N`).
    pub fn without_suffix(&self) -> String {
        match &self.instance {
            Some(i) => format!("{}@{}", self.prefix, i),
            None => self.prefix.clone(),
        }
    }
}

/// Undoes systemd's unit-name escaping (`\xNN`, and `-` meaning `/`) for `%I`/`%P`.
pub fn unit_name_unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' => {
                out.push(b'/');
                i += 1;
            }
            b'\\' if bytes.get(i + 1) == Some(&b'x') => {
                match s
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 4;
                    }
                    None => {
                        out.push(b'\\');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_sd_bus() {
        assert_eq!(bus_label_escape("target.service"), "target_2eservice");
        assert_eq!(
            bus_label_escape("bluechi-dep@x.service"),
            "bluechi_2ddep_40x_2eservice"
        );
        assert_eq!(bus_label_escape("1a.service"), "_31a_2eservice");
        assert_eq!(bus_label_escape("a1.service"), "a1_2eservice");
    }

    #[test]
    fn unescape_roundtrips() {
        for n in [
            "target.service",
            "bluechi-dep@x.service",
            "9x.target",
            "a_b.service",
        ] {
            assert_eq!(bus_label_unescape(&bus_label_escape(n)).as_deref(), Some(n));
        }
        assert_eq!(bus_label_unescape("_zz"), None);
    }

    #[test]
    fn parses_instances() {
        let n = UnitName::parse("bluechi-proxy@w2_t.service").unwrap();
        assert_eq!(n.prefix, "bluechi-proxy");
        assert_eq!(n.instance.as_deref(), Some("w2_t"));
        assert_eq!(n.template().as_deref(), Some("bluechi-proxy@.service"));
        assert_eq!(n.without_suffix(), "bluechi-proxy@w2_t");
        assert!(UnitName::parse("foo.bar").is_none());
        assert!(UnitName::parse("foo").is_none());
    }

    #[test]
    fn unescapes_instance() {
        assert_eq!(unit_name_unescape("a-b\\x2dc"), "a/b-c");
    }
}
