//! A BlueChi command line tool running in the background on a local cluster's controller
//! node, for tests that watch a waiting command (`monitor`, `metrics listen`, `start`).

use std::fs::File;
use std::future::ready;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use bluechi_testkit::poll::{self, Step};

use scenario_runner::backend::local::sweep;
use scenario_runner::backend::Cluster;
use scenario_runner::paths;

use super::{GroupChild, DEADLINE};

/// A `bluechictl` running in the background on the controller node `main`'s bus, output in files, own process
/// group (killed on drop) and the run marker (swept with the cluster).
pub struct Ctl {
    pub what: String,
    pub child: GroupChild,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Ctl {
    pub fn spawn(backend: &Cluster, tag: &str, args: &[&str]) -> Ctl {
        Ctl::spawn_program(backend, tag, "bluechictl", args)
    }

    pub fn spawn_program(backend: &Cluster, tag: &str, program: &str, args: &[&str]) -> Ctl {
        let dir = backend.work_dir();
        let stdout = dir.join(format!("ctl-{tag}.out"));
        let stderr = dir.join(format!("ctl-{tag}.err"));
        let bus = format!("unix:path={}", dir.join("main").join("bus.sock").display());
        let bin = paths::bin_dir().expect("binary directory").join(program);
        let child = Command::new(bin)
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env(sweep::MARKER_VAR, backend.run_id())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"))
            .process_group(0)
            .spawn()
            .expect("bluechictl");
        Ctl {
            what: format!("{program} {}", args.join(" ")),
            child: GroupChild(child),
            stdout,
            stderr,
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Polls until stdout contains `text`: the command is in its waiting loop.
    pub async fn wait_for_output(&mut self, text: &str) {
        let what = format!("{text:?} in the output of {}", self.what);
        let seen = poll::until(what, DEADLINE, || {
            let step = if self.stdout().contains(text) {
                Step::Done(())
            } else if let Ok(Some(s)) = self.child.0.try_wait() {
                Step::Fail(format!("{} exited ({s}) early", self.what))
            } else {
                Step::Pending("not yet".into())
            };
            ready(step)
        })
        .await;
        if let Err(e) = seen {
            panic!("{e}:\n{}{}", self.stdout(), self.stderr());
        }
    }

    /// The exit code, polling until `deadline`; `None` if still running then.
    pub async fn exit_within(&mut self, deadline: Duration) -> Option<i32> {
        let what = format!("{} to exit", self.what);
        poll::until(what, deadline, || {
            ready(
                self.child
                    .0
                    .try_wait()
                    .ok()
                    .flatten()
                    .map(|s| s.code().unwrap_or(-1)),
            )
        })
        .await
        .ok()
    }
}
