//! systemd's unit-name → object-path escaping, for tests and the scenario runner that address
//! a unit object directly. Written independently of the production copies (bluechi-core's
//! `escape_path_component`, the emulator's `bus_label_escape`) on purpose: a test that computed
//! its expected path with the code under test could not catch a bug in it.

/// Where systemd publishes unit objects.
pub const UNIT_PATH_PREFIX: &str = "/org/freedesktop/systemd1/unit";

/// systemd's object-path escaping of a unit name (sd-bus' `bus_label_escape`): every byte
/// outside `[A-Za-z0-9]` becomes `_xx`, and so does a leading digit; the empty name is `_`.
pub fn escape_unit_name(name: &str) -> String {
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

/// The object path of unit `name`, as systemd's `unit_dbus_path_from_name` builds it.
pub fn unit_path(name: &str) -> String {
    format!("{UNIT_PATH_PREFIX}/{}", escape_unit_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from systemd's own tests (test-unit-name, test-bus-marshal) and ours.
    #[test]
    fn escapes_like_systemd() {
        for (name, label) in [
            ("dbus.service", "dbus_2eservice"),
            ("-.mount", "_2d_2emount"),
            ("foo.bar", "foo_2ebar"),
            ("systemd-journald.service", "systemd_2djournald_2eservice"),
            ("", "_"),
            ("1a2", "_31a2"),
            ("a1.service", "a1_2eservice"),
            ("é", "_c3_a9"),
            (
                "bluechi-proxy@worker2_target.service",
                "bluechi_2dproxy_40worker2_5ftarget_2eservice",
            ),
        ] {
            assert_eq!(escape_unit_name(name), label, "{name:?}");
        }
    }

    #[test]
    fn unit_path_is_under_systemds_unit_prefix() {
        assert_eq!(
            unit_path("dbus.service"),
            "/org/freedesktop/systemd1/unit/dbus_2eservice"
        );
    }
}
