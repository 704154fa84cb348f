//! Podman backends: one container per node on a network created for the run, from the node
//! images of `ci/images.sh` (PID 1 our emulator, or real systemd 252) with our daemons
//! installed as real units. Containers are created, inspected, paused and removed through
//! testcontainers (Podman's Docker API); what that API cannot do here (building the images
//! offline, cutting a container off its network) goes through the `podman` command.

mod host;
mod service;

use std::time::Duration;

pub use host::{PodmanBackground, PodmanHost};
pub use service::prepare_process;
use service::{podman, podman_ok, ServiceLease};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

use super::plan::Endpoint;
use super::{BackendKind, BackendOptions};
use crate::paths;

/// The port the controller listens on inside its container (upstream's default).
pub const CONTROLLER_PORT: u16 = 842;
/// Label on everything a run creates, for the sweep that runs whatever happened.
const RUN_LABEL: &str = "bluechi.scenario.run";

/// What the nodes of one Podman run share: the image, the network, the service.
pub struct PodmanRun {
    kind: BackendKind,
    opts: BackendOptions,
    run_id: String,
    /// Short and unique: prefixes container names, which are also their DNS names.
    tag: String,
    network: String,
    image: String,
    work: Option<tempfile::TempDir>,
    work_path: std::path::PathBuf,
    lease: Option<ServiceLease>,
    torn_down: bool,
}

/// `name=ref` lines of `ci/images.sh` (building what changed; quiet and cached).
fn node_image(kind: BackendKind, opts: &BackendOptions) -> Result<String, String> {
    let script = paths::repo_root().join("ci/images.sh");
    let mut cmd = std::process::Command::new(&script);
    cmd.arg("--bin-dir").arg(&opts.bin_dir);
    let out = bluechi_testkit::podman::with_containers_conf(&mut cmd)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{} failed: {}", script.display(), stderr.trim()));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{}=", kind.name()))
                .map(str::to_string)
        })
        .ok_or_else(|| format!("{} printed no {}= line", script.display(), kind.name()))
}

fn short_tag(run_id: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    run_id.hash(&mut h);
    format!("{:08x}", h.finish() as u32)
}

impl PodmanRun {
    pub fn new(kind: BackendKind, opts: &BackendOptions, run_id: String) -> Result<Self, String> {
        podman_ok(&["--version"]).map_err(|e| format!("podman is not usable here: {e}"))?;
        paths::check_binaries(&opts.bin_dir)?;
        let image = node_image(kind, opts)?;
        let work = tempfile::Builder::new()
            .prefix("bluechi-scenario-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let tag = short_tag(&run_id);
        let network = format!("bluechi-{tag}");
        let mut run = PodmanRun {
            kind,
            opts: opts.clone(),
            work_path: work.path().to_path_buf(),
            work: Some(work),
            run_id,
            tag,
            network,
            image,
            lease: None,
            torn_down: false,
        };
        run.lease = Some(ServiceLease::acquire()?);
        // IPv6 too: scenarios show agents reaching the controller over either.
        podman_ok(&[
            "network",
            "create",
            "--ipv6",
            "--label",
            &format!("{RUN_LABEL}={}", run.run_id),
            &run.network,
        ])?;
        Ok(run)
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn work_dir(&self) -> &std::path::Path {
        &self.work_path
    }

    fn container_name(&self, node: &str) -> String {
        format!("bluechi-{}-{node}", self.tag)
    }

    /// Where every agent reaches the controller: its container's name on the run's network
    /// (and its IPv6 address there).
    pub fn agent_endpoint(&self, controller: &str) -> Result<Endpoint, String> {
        let name = self.container_name(controller);
        let ipv6 = podman_ok(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}",
            &name,
        ])?
        .trim()
        .to_string();
        Ok(Endpoint {
            host: name,
            port: CONTROLLER_PORT,
            ipv6,
        })
    }

    /// Boots the node's container and installs the scenario's unit files.
    pub async fn create_node(
        &self,
        node: &str,
        units: &[(String, String)],
        is_controller: bool,
    ) -> Result<PodmanHost, String> {
        let (repo, tag) = self
            .image
            .rsplit_once(':')
            .ok_or_else(|| format!("image reference without a tag: {}", self.image))?;
        let name = self.container_name(node);
        let container = GenericImage::new(repo, tag)
            .with_network(self.network.clone())
            .with_container_name(name.clone())
            .with_hostname(node)
            .with_label(RUN_LABEL, self.run_id.clone())
            .with_startup_timeout(self.opts.ready_timeout)
            .start()
            .await
            .map_err(|e| format!("cannot start {name} from {}: {e}", self.image))?;
        let host = PodmanHost::new(
            self.kind,
            node,
            name,
            self.network.clone(),
            container,
            is_controller,
            self.opts.ready_timeout,
        );
        host.wait_booted().await?;
        host.install_units(units).await?;
        Ok(host)
    }

    /// Removes whatever still carries the run's label (containers, then the network) and
    /// stops the service if no other run uses it. Idempotent.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        let label = format!("label={RUN_LABEL}={}", self.run_id);
        if let Ok(ids) = podman_ok(&["ps", "-aq", "--filter", &label]) {
            for id in ids.split_whitespace() {
                let _ = podman_ok(&["rm", "-f", "-t", "0", id]);
            }
        }
        let _ = podman()
            .args(["network", "rm", "-f", &self.network])
            .output();
        self.lease = None;
        if let Some(dir) = self.work.take() {
            if self.opts.keep {
                let path = dir.keep();
                eprintln!("kept run directory {}", path.display());
            } else {
                let _ = dir.close();
            }
        }
    }

    /// Everything of this run Podman still knows about (for the teardown test).
    pub fn leftovers(run_id: &str) -> Vec<String> {
        let label = format!("label={RUN_LABEL}={run_id}");
        let mut found = Vec::new();
        for what in [
            &["ps", "-a", "--format", "container {{.Names}}", "--filter"][..],
            &["network", "ls", "--format", "network {{.Name}}", "--filter"][..],
            &["volume", "ls", "--format", "volume {{.Name}}", "--filter"][..],
        ] {
            let mut args = what.to_vec();
            args.push(&label);
            if let Ok(out) = podman_ok(&args) {
                found.extend(out.lines().map(str::to_string));
            }
        }
        found
    }
}

impl Drop for PodmanRun {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// How long a command inside a container may take by default.
pub const EXEC_DEADLINE: Duration = Duration::from_secs(30);
