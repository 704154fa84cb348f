//! Streaming commands run until SIGINT or SIGTERM, then exit 0.

use tokio::signal::unix::{signal, SignalKind};

pub async fn until_terminated() {
    let int = signal(SignalKind::interrupt());
    let term = signal(SignalKind::terminate());
    match (int, term) {
        (Ok(mut i), Ok(mut t)) => {
            tokio::select! {
                _ = i.recv() => {}
                _ = t.recv() => {}
            }
        }
        // Without handlers the default action (termination) applies anyway.
        _ => std::future::pending::<()>().await,
    }
}

/// A match rule for signals the controller sends from `path` on `iface`, optionally `member`.
pub fn controller_rule(
    path: &str,
    iface: &str,
    member: Option<&str>,
) -> zbus::Result<zbus::MatchRule<'static>> {
    let mut b = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(bluechi_core::names::CONTROLLER_BUS_NAME)?
        .path(path.to_string())?
        .interface(iface.to_string())?;
    if let Some(m) = member {
        b = b.member(m.to_string())?;
    }
    Ok(b.build())
}
