//! Files only the local backend writes: the private bus configuration and shipped units
//! pointed at the build tree.

use std::path::Path;

/// A private bus: listens only on our socket, lets every peer own any name and talk to anyone,
/// because the daemons under test run unprivileged and need systemd's and BlueChi's well-known
/// names.
pub fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
        xml_escape(&socket.display().to_string())
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Shipped units call helpers from `/usr/libexec/`; point them at the freshly built binaries.
pub fn relocate_unit(text: &str, bin_dir: &Path) -> String {
    let dir = format!("{}/", bin_dir.display().to_string().trim_end_matches('/'));
    text.replace("/usr/libexec/", &dir)
}

/// A free TCP port on 127.0.0.1. The port is released before the controller binds it; another
/// process could take it meanwhile, which only makes the run fail loudly, never wrongly.
pub fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relocates_libexec_paths() {
        let unit = "ExecStart=/usr/libexec/bluechi-proxy create %i\n";
        assert_eq!(
            relocate_unit(unit, Path::new("/x/debug/")),
            "ExecStart=/x/debug/bluechi-proxy create %i\n"
        );
    }

    #[test]
    fn bus_config_listens_on_the_socket() {
        let c = bus_config(Path::new("/tmp/a&b/bus.sock"));
        assert!(c.contains("<listen>unix:path=/tmp/a&amp;b/bus.sock</listen>"));
        assert!(c.contains("<allow own=\"*\"/>"));
    }

    #[test]
    fn free_port_is_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
