//! Socket units with a fake listener: the test answers SocketListen itself.

use super::*;

const SOCK: &str = "[Socket]\nListenStream=/run/a.sock\nRemoveOnStop=yes\n";
const SVC: &str = "[Service]\nExecStart=/bin/daemon\n";

fn node() -> H {
    H::new(
        MapSource::default()
            .with("a.socket", SOCK)
            .with("a.service", SVC),
    )
}

impl H {
    /// Answers every SocketListen not answered yet with `result`.
    fn bind(&mut self, result: Result<(), String>) -> usize {
        let units: Vec<String> = self
            .e
            .units()
            .filter(|u| u.socket_binding)
            .map(|u| u.name.clone())
            .collect();
        for u in &units {
            self.e.socket_bound(u, result.clone(), self.now);
        }
        self.pump();
        units.len()
    }

    fn socket_actions(&self) -> Vec<String> {
        self.all
            .iter()
            .filter_map(|a| match a {
                Action::SocketListen { unit, .. } => Some(format!("listen {unit}")),
                Action::SocketWatch { unit } => Some(format!("watch {unit}")),
                Action::SocketClose { unit, remove } => {
                    Some(format!("close {unit} {}", remove.join(",")))
                }
                _ => None,
            })
            .collect()
    }

    fn spawn_sockets(&self, unit: &str) -> Vec<Vec<String>> {
        self.all
            .iter()
            .filter_map(|a| match a {
                Action::Spawn { unit: u, ctx, .. } if u == unit => Some(ctx.sockets.clone()),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn start_listens_after_bind_and_stop_closes() {
    let mut h = node();
    h.start("a.socket");
    // The job waits for the IO layer's answer; the unit has not changed yet.
    h.assert_state("a.socket", "inactive", "dead");
    assert!(h.job_results("a.socket").is_empty());
    assert_eq!(h.bind(Ok(())), 1);
    h.assert_state("a.socket", "active", "listening");
    assert_eq!(h.job_results("a.socket"), [JobResult::Done]);
    h.stop("a.socket");
    h.assert_state("a.socket", "inactive", "dead");
    assert_eq!(
        h.socket_actions(),
        [
            "listen a.socket",
            "watch a.socket",
            "close a.socket /run/a.sock"
        ]
    );
    // The implicit ordering: the socket comes up before its service.
    let d = h.e.unit("a.socket").map(|u| u.deps().before.clone());
    assert_eq!(d, Some(vec!["a.service".to_string()]));
}

#[test]
fn bind_failure_fails_with_resources() {
    let mut h = node();
    h.start("a.socket");
    h.bind(Err("Address already in use".into()));
    h.assert_state("a.socket", "failed", "failed");
    assert_eq!(
        h.e.unit("a.socket").map(|u| u.svc.result),
        Some("resources")
    );
    assert_eq!(h.job_results("a.socket"), [JobResult::Failed]);
    // A late answer for a start that is no longer pending changes nothing.
    h.e.socket_bound("a.socket", Ok(()), h.now);
    h.pump();
    h.assert_state("a.socket", "failed", "failed");
}

#[test]
fn traffic_starts_the_service_with_the_fds() {
    let mut h = node();
    h.start("a.socket");
    h.bind(Ok(()));
    h.e.socket_readable("a.socket", h.now);
    h.pump();
    h.assert_state("a.service", "active", "running");
    h.assert_state("a.socket", "active", "running");
    assert_eq!(h.spawn_sockets("a.service"), [vec!["a.socket".to_string()]]);
    // More traffic while running is the service's business.
    h.e.socket_readable("a.socket", h.now);
    h.pump();
    assert_eq!(h.spawned_for("a.service").len(), 1);
    // The service going away puts the socket back to listening, watched again.
    h.exit("a.service", "daemon", Exit::Code(0));
    h.assert_state("a.service", "inactive", "dead");
    h.assert_state("a.socket", "active", "listening");
    assert_eq!(
        h.socket_actions(),
        ["listen a.socket", "watch a.socket", "watch a.socket"]
    );
}

#[test]
fn service_start_and_stop_drive_running_and_listening() {
    let mut h = node();
    h.start("a.socket");
    h.bind(Ok(()));
    h.start("a.service");
    h.assert_state("a.socket", "active", "running");
    h.stop("a.service");
    h.assert_state("a.socket", "active", "listening");
    // Stopping the socket leaves a running service alone.
    h.start("a.service");
    h.stop("a.socket");
    h.assert_state("a.socket", "inactive", "dead");
    h.assert_state("a.service", "active", "running");
    // A service started without its socket gets no fds.
    assert_eq!(
        h.spawn_sockets("a.service"),
        [vec!["a.socket".to_string()], vec!["a.socket".to_string()]]
    );
}

#[test]
fn socket_start_refused_while_service_active() {
    let mut h = node();
    h.start("a.service");
    assert!(h.spawn_sockets("a.service")[0].is_empty());
    h.start("a.socket");
    assert_eq!(h.bind(Ok(())), 0);
    assert_eq!(h.job_results("a.socket"), [JobResult::Failed]);
    h.assert_state("a.socket", "inactive", "dead");
}

#[test]
fn readable_when_not_listening_is_ignored() {
    let mut h = node();
    h.e.load_unit("a.socket", h.now).expect("loads");
    h.e.socket_readable("a.socket", h.now);
    h.pump();
    h.assert_state("a.service", "inactive", "dead");
    assert!(h.spawned.is_empty());
}

#[test]
fn load_errors_and_service_name() {
    let src = MapSource::default()
        .with("none.socket", "[Socket]\nSocketMode=0600\n")
        .with("acc.socket", "[Socket]\nListenStream=/run/x\nAccept=yes\n")
        .with(
            "b.socket",
            "[Socket]\nListenDatagram=127.0.0.1:9\nService=other.service\n",
        )
        .with("other.service", SVC);
    let mut h = H::new(src);
    for bad in ["none.socket", "acc.socket"] {
        let u = h.e.load_unit(bad, h.now).expect("stub");
        assert_eq!(u.load_state, "bad-setting", "{bad}");
    }
    h.start("b.socket");
    h.bind(Ok(()));
    h.e.socket_readable("b.socket", h.now);
    h.pump();
    h.assert_state("other.service", "active", "running");
    assert_eq!(
        h.spawn_sockets("other.service"),
        [vec!["b.socket".to_string()]]
    );
}

#[test]
fn service_start_limit_fails_the_socket() {
    let svc = "[Unit]\nStartLimitBurst=1\n[Service]\nExecStart=/bin/daemon\n";
    let mut h = H::new(
        MapSource::default()
            .with("a.socket", SOCK)
            .with("a.service", svc),
    );
    h.start("a.socket");
    h.bind(Ok(()));
    h.e.socket_readable("a.socket", h.now);
    h.pump();
    h.exit("a.service", "daemon", Exit::Code(1));
    h.assert_state("a.socket", "active", "listening");
    // The connection is still pending: the next start hits the limit.
    h.e.socket_readable("a.socket", h.now);
    h.pump();
    h.assert_state("a.service", "failed", "failed");
    h.assert_state("a.socket", "failed", "failed");
    assert_eq!(
        h.e.unit("a.socket").map(|u| u.svc.result),
        Some("service-start-limit-hit")
    );
}
