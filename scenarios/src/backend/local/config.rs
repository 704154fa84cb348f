//! Files only the local backend writes: shipped units pointed at the build tree (the private
//! bus's configuration is the test kit's, `bluechi_testkit::bus::config`).

use std::path::Path;

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
    fn free_port_is_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
