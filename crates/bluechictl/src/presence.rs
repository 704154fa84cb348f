//! Noticing the controller leave the bus. Commands that wait for signals (a job's
//! `JobRemoved`, monitor events, status changes) would otherwise wait forever for a controller
//! that was killed: a clean shutdown cancels jobs, a crash says nothing.

use bluechi_core::names::CONTROLLER_BUS_NAME;
use futures_util::StreamExt;
use zbus::message::Type;
use zbus::{MatchRule, MessageStream};

use crate::client::Client;
use crate::commands::Fail;
use crate::output::err;

const DBUS_NAME: &str = "org.freedesktop.DBus";
const DBUS_PATH: &str = "/org/freedesktop/DBus";

/// What bluechictl prints (stderr) when the controller leaves the bus while it waits.
pub const LOST: &str = "Connection to the controller lost\n";

/// Watches `org.eclipse.bluechi`'s owner; started before the first call of a command, so a
/// departure at any later moment is seen.
pub struct ControllerWatch {
    changes: MessageStream,
    /// The controller's unique name, once known; `None` while the name has no owner (the
    /// command's first call then fails on its own, unless a controller starts in between,
    /// which shows as a signal).
    owner: Option<String>,
    lost: bool,
}

impl ControllerWatch {
    /// Subscribes to the name's `NameOwnerChanged`, then reads its owner: a departure before
    /// the read shows as no owner, one after it as a signal.
    pub async fn start(client: &Client) -> Result<ControllerWatch, Fail> {
        let changes = match name_owner_rule() {
            Ok(rule) => MessageStream::for_match_rule(rule, &client.conn, None).await,
            Err(e) => Err(e),
        };
        let changes = changes.map_err(|e| {
            err(&format!("Failed to match signal: {e}\n"));
            Fail
        })?;
        let owner = client
            .conn
            .call_method(
                Some(DBUS_NAME),
                DBUS_PATH,
                Some(DBUS_NAME),
                "GetNameOwner",
                &(CONTROLLER_BUS_NAME,),
            )
            .await;
        let owner = owner
            .ok()
            .and_then(|m| m.body().deserialize::<(String,)>().ok())
            .map(|(o,)| o);
        Ok(ControllerWatch {
            changes,
            owner,
            lost: false,
        })
    }

    /// Resolves when the controller we talk to has left the bus, or was replaced by another
    /// process that knows nothing of our job (or the bus connection itself ended).
    pub async fn lost(&mut self) {
        if self.lost {
            return;
        }
        while let Some(m) = self.changes.next().await {
            let Ok(m) = m else { continue };
            let Ok((name, _old, new)) = m.body().deserialize::<(String, String, String)>() else {
                continue;
            };
            if name != CONTROLLER_BUS_NAME {
                continue;
            }
            match &self.owner {
                _ if new.is_empty() => break,
                // It started after the watch did: that is the controller we are talking to.
                None => self.owner = Some(new),
                Some(old) if *old != new => break,
                Some(_) => {}
            }
        }
        // Gone, replaced, or no more messages: the bus connection ended and the controller
        // is out of reach.
        self.lost = true;
    }

    /// [`ControllerWatch::lost`], then the message and the failure the command returns.
    pub async fn fail_when_lost(&mut self) -> Fail {
        self.lost().await;
        err(LOST);
        Fail
    }
}

/// `NameOwnerChanged` from the bus for the controller's name only (`arg0`).
fn name_owner_rule() -> zbus::Result<MatchRule<'static>> {
    Ok(MatchRule::builder()
        .msg_type(Type::Signal)
        .sender(DBUS_NAME)?
        .path(DBUS_PATH)?
        .interface(DBUS_NAME)?
        .member("NameOwnerChanged")?
        .add_arg(CONTROLLER_BUS_NAME)?
        .build())
}
