//! The node images of `ci/images.sh` (containers/README.md): built or found cached, by name.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::{repo_root, text};

/// Why the images are not there; the caller skips on the first and fails on the second.
#[derive(Debug)]
pub enum ImagesError {
    /// This machine lacks a tool the build needs (the script's exit code 2).
    Unavailable(String),
    /// The build itself failed, or its output made no sense.
    Failed(String),
}

/// `name → image reference` as the script printed them (`base`, `podman-systemd`,
/// `podman-emulator`).
#[derive(Debug)]
pub struct NodeImages {
    refs: BTreeMap<String, String>,
    /// The script's summary lines (built in N s / cached), for the test's output.
    pub summary: String,
}

impl NodeImages {
    pub fn get(&self, name: &str) -> Result<&str, ImagesError> {
        self.refs.get(name).map(String::as_str).ok_or_else(|| {
            ImagesError::Failed(format!("ci/images.sh printed no {name}=: {:?}", self.refs))
        })
    }
}

/// Runs `ci/images.sh --bin-dir BIN`: quiet, and a few seconds when nothing changed.
pub fn node_images(bin: &Path) -> Result<NodeImages, ImagesError> {
    let mut cmd = Command::new(repo_root().join("ci/images.sh"));
    cmd.arg("--bin-dir").arg(bin);
    let o = bluechi_testkit::podman::with_containers_conf(&mut cmd)
        .output()
        .map_err(|e| ImagesError::Unavailable(format!("cannot run ci/images.sh: {e}")))?;
    let summary = String::from_utf8_lossy(&o.stderr).into_owned();
    match o.status.code() {
        Some(0) => {}
        Some(2) => return Err(ImagesError::Unavailable(summary.trim().to_string())),
        _ => {
            return Err(ImagesError::Failed(format!(
                "ci/images.sh failed: {}",
                text(&o)
            )))
        }
    }
    let refs = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(NodeImages { refs, summary })
}
