//! The `podman` command line (with the project's containers.conf) and Podman's Docker-API
//! service, which testcontainers talks to.
//!
//! testcontainers finds its service through `DOCKER_HOST`, read when its client is created,
//! and keeps one client while any container lives. So one service per process serves every
//! run: the first run starts it on a socket named after this process and points
//! `DOCKER_HOST` there, the last run to end stops it and removes the socket.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use bluechi_testkit::poll::{self, Outcome, Step};

/// The `podman` command line is the test kit's: the project's containers.conf, stdin closed.
pub use bluechi_testkit::podman::{podman, podman_ok};

struct Service {
    child: Child,
    dir: PathBuf,
    users: usize,
}

static SERVICE: Mutex<Option<Service>> = Mutex::new(None);

/// While held, Podman's Docker-API service runs and `DOCKER_HOST` points at it.
pub struct ServiceLease(());

const SERVICE_READY: Duration = Duration::from_secs(20);

/// Where this process's API service listens.
fn service_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("bluechi-podman-{}", std::process::id()))
}

fn docker_host() -> String {
    format!("unix://{}", service_dir().join("podman.sock").display())
}

/// Points testcontainers at this process's API service. Call it first thing in `main`, before
/// any other thread exists: changing the environment while other threads may read it is not
/// sound. (`ServiceLease::acquire` does it too when it finds it undone, for test binaries.)
pub fn prepare_process() {
    std::env::set_var("DOCKER_HOST", docker_host());
}

impl ServiceLease {
    pub fn acquire() -> Result<ServiceLease, String> {
        let mut slot = SERVICE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_mut() {
            s.users += 1;
            return Ok(ServiceLease(()));
        }
        let dir = service_dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let socket = dir.join("podman.sock");
        let _ = std::fs::remove_file(&socket);
        // --time=60: should this process die without stopping it, it ends itself once idle.
        // In a group of its own: Ctrl-C in a terminal reaches the runner, which tears down
        // through the service, not the service first.
        let mut child = podman();
        std::os::unix::process::CommandExt::process_group(&mut child, 0);
        let mut child = child
            .args(["system", "service", "--time=60"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start podman system service: {e}"))?;
        let ready = poll::Poll::new("podman system service to create its socket", SERVICE_READY)
            .until_blocking(|| match child.try_wait() {
                Ok(Some(status)) => Step::Fail(format!("podman system service exited: {status}")),
                _ => socket.exists().into_step(),
            });
        if let Err(e) = ready {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.to_string());
        }
        // The same path for the whole process, so testcontainers' client stays valid.
        if std::env::var("DOCKER_HOST").ok().as_deref() != Some(docker_host().as_str()) {
            std::env::set_var("DOCKER_HOST", docker_host());
        }
        *slot = Some(Service {
            child,
            dir,
            users: 1,
        });
        Ok(ServiceLease(()))
    }
}

impl Drop for ServiceLease {
    fn drop(&mut self) {
        let mut slot = SERVICE.lock().unwrap_or_else(|p| p.into_inner());
        let last = match slot.as_mut() {
            Some(s) => {
                s.users -= 1;
                s.users == 0
            }
            None => false,
        };
        if last {
            if let Some(mut s) = slot.take() {
                let _ = s.child.kill();
                let _ = s.child.wait();
                let _ = std::fs::remove_dir_all(&s.dir);
            }
        }
    }
}
