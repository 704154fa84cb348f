//! Files the local backend writes: the private bus configuration, daemon configs, unit files.

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

/// The placeholder a scenario's config text may use for the controller's (free) port.
pub const PORT_PLACEHOLDER: &str = "${ControllerPort}";

/// The runner's keys first; the scenario's text may re-open `[bluechi-controller]` to add keys.
pub fn controller_config(port: u16, scenario_text: &str) -> String {
    let text = scenario_text.replace(PORT_PLACEHOLDER, &port.to_string());
    format!(
        "[bluechi-controller]\nControllerPort={port}\nUseUDS=false\nLogTarget=stderr\nLogLevel=DEBUG\n\n{text}"
    )
}

/// `ControllerAddress=` in the scenario's text overrides host and port (upstream's rule), e.g.
/// `ControllerAddress=tcp:host=::1,port=${ControllerPort}` to connect over IPv6.
pub fn agent_config(node: &str, port: u16, scenario_text: &str) -> String {
    let text = scenario_text.replace(PORT_PLACEHOLDER, &port.to_string());
    format!(
        "[bluechi-agent]\nNodeName={node}\nControllerHost=127.0.0.1\nControllerPort={port}\nLogTarget=stderr\nLogLevel=DEBUG\n\n{text}"
    )
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
    fn configs_hold_runner_keys_then_scenario_text() {
        let c = controller_config(1234, "[node a]\nX=1\n");
        assert!(c.starts_with("[bluechi-controller]\nControllerPort=1234\nUseUDS=false\n"));
        assert!(c.ends_with("[node a]\nX=1\n"));
        let a6 = agent_config(
            "w1",
            99,
            "ControllerAddress=tcp:host=::1,port=${ControllerPort}\n",
        );
        assert!(
            a6.contains("ControllerAddress=tcp:host=::1,port=99\n"),
            "{a6}"
        );
        let a = agent_config("w1", 99, "");
        assert!(a.contains("NodeName=w1\nControllerHost=127.0.0.1\nControllerPort=99\n"));
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
