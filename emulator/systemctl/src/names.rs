//! Unit name mangling as systemctl does it for names typed on the command line.

const SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".target",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".timer",
    ".path",
    ".slice",
    ".scope",
];

/// Appends ".service" to names without a unit type suffix ("foo" -> "foo.service").
pub fn mangle(name: &str) -> String {
    if SUFFIXES.iter().any(|s| name.ends_with(s)) {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// The type part of a unit name ("service" for "a.service").
pub fn unit_type(name: &str) -> &str {
    name.rsplit_once('.').map(|(_, t)| t).unwrap_or("")
}

#[cfg(test)]
mod tests {
    #[test]
    fn mangles_bare_names_only() {
        assert_eq!(super::mangle("foo"), "foo.service");
        assert_eq!(super::mangle("foo.target"), "foo.target");
        assert_eq!(super::mangle("a@b"), "a@b.service");
        assert_eq!(super::unit_type("a@b.service"), "service");
    }
}
