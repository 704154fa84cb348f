//! The IO half: reads the target's owner and `Status`, then (when §6.7 says so) follows
//! `NameOwnerChanged` and `PropertiesChanged` until the state machine says stop.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use zbus::message::Type;
use zbus::{Connection, Message, MessageStream};
use zvariant::OwnedValue;

use crate::cli::{Options, Target};
use crate::state::{Input, Step, Watch};

const DBUS_NAME: &str = "org.freedesktop.DBus";
const DBUS_PATH: &str = "/org/freedesktop/DBus";
const PROPERTIES_IFACE: &str = "org.freedesktop.DBus.Properties";
/// libdbus' default reply timeout: a hung daemon must not hang the check forever.
const CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// Why the check could not run to its end.
#[derive(Debug)]
pub enum RunError {
    /// The system bus could not be opened; `strerror` text as upstream prints it.
    Connect(String),
    Other(String),
}

impl From<String> for RunError {
    fn from(e: String) -> Self {
        RunError::Other(e)
    }
}

/// `strerror` of the errno behind a failed connection attempt (EIO when there is none).
fn connect_reason(e: &zbus::Error) -> String {
    // Errno values as sd-bus reports them: EINVAL for a bad address, EACCES for a refused
    // handshake, EIO when nothing better is known.
    let code = match e {
        zbus::Error::InputOutput(io) | zbus::Error::Connection(io, _) => {
            io.raw_os_error().unwrap_or(5)
        }
        zbus::Error::Address(_) => 22,
        zbus::Error::Handshake(_) => 13,
        _ => 5,
    };
    let text = std::io::Error::from_raw_os_error(code).to_string();
    // std appends " (os error N)" to the C library's text.
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Runs the check; `Ok(true)` means online at the end.
pub async fn run(target: Target, opts: Options) -> Result<bool, RunError> {
    let conn = zbus::connection::Builder::system()
        .map_err(|e| RunError::Connect(connect_reason(&e)))?
        .build()
        .await
        .map_err(|e| RunError::Connect(connect_reason(&e)))?;
    // Subscribe before the first read, so no change between the read and the loop is lost.
    let mut stream = MessageStream::from(&conn);
    let path = target.path();
    if opts.wait_ms > 0 || opts.monitor {
        add_match(
            &conn,
            &format!(
                "type='signal',sender='{}',path='{path}',interface='{PROPERTIES_IFACE}',\
                 member='PropertiesChanged'",
                target.bus_name()
            ),
        )
        .await?;
        add_match(
            &conn,
            &format!(
                "type='signal',sender='{DBUS_NAME}',interface='{DBUS_NAME}',\
                 member='NameOwnerChanged',arg0='{}'",
                target.bus_name()
            ),
        )
        .await?;
    }
    let owner = name_owner(&conn, target.bus_name()).await;
    let status = match &owner {
        Some(o) => read_status(&conn, o, &target).await,
        None => String::new(),
    };
    let mut watch = Watch::new(target.clone(), opts.clone(), owner, status);
    if !watch.needs_loop() {
        return Ok(watch.online());
    }

    let wait = sleep_or_never(opts.wait_ms);
    tokio::pin!(wait);
    let mut switch_deadline: Option<tokio::time::Instant> = None;
    loop {
        let switch = async {
            match switch_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let inputs = tokio::select! {
            m = stream.next() => match m {
                Some(Ok(m)) => inputs_of(&conn, &m, &target, &watch).await,
                Some(Err(_)) => Vec::new(),
                None => return Err(RunError::Other("Lost the connection to the system bus".into())),
            },
            _ = &mut wait => {
                // Fires once; afterwards this branch must never be ready again.
                wait.set(sleep_or_never(0));
                vec![Input::WaitTimerFired]
            }
            _ = switch => {
                switch_deadline = None;
                vec![Input::SwitchTimerFired]
            }
        };
        for input in inputs {
            match watch.feed(input) {
                Step::Continue => {}
                Step::StartSwitchTimer => {
                    let len = Duration::from_millis(opts.switch_timeout_ms);
                    switch_deadline = Some(tokio::time::Instant::now() + len);
                }
                Step::Exit => return Ok(watch.online()),
            }
        }
    }
}

fn sleep_or_never(ms: u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    if ms > 0 {
        Box::pin(tokio::time::sleep(Duration::from_millis(ms)))
    } else {
        Box::pin(std::future::pending())
    }
}

/// What one incoming message means for the watch (nothing, most of the time).
async fn inputs_of(conn: &Connection, m: &Message, target: &Target, watch: &Watch) -> Vec<Input> {
    if m.message_type() != Type::Signal {
        return Vec::new();
    }
    let h = m.header();
    let member = h.member().map(|x| x.as_str()).unwrap_or_default();
    let iface = h.interface().map(|x| x.as_str()).unwrap_or_default();
    let sender = h.sender().map(|x| x.as_str()).unwrap_or_default();
    if iface == DBUS_NAME && member == "NameOwnerChanged" && sender == DBUS_NAME {
        let Ok((name, _old, new)) = m.body().deserialize::<(String, String, String)>() else {
            return Vec::new();
        };
        if name != target.bus_name() {
            return Vec::new();
        }
        if new.is_empty() {
            return vec![Input::Owner(None)];
        }
        let status = read_status(conn, &new, target).await;
        return vec![Input::Owner(Some(new)), Input::Status(status)];
    }
    let path = h.path().map(|p| p.as_str()).unwrap_or_default();
    if iface != PROPERTIES_IFACE || member != "PropertiesChanged" || path != target.path() {
        return Vec::new();
    }
    // Only the current owner of the name speaks for the target.
    if watch.owner() != Some(sender) {
        return Vec::new();
    }
    type Changed = (String, HashMap<String, OwnedValue>, Vec<String>);
    let Ok((changed_iface, changed, _)) = m.body().deserialize::<Changed>() else {
        return Vec::new();
    };
    if changed_iface != target.interface() {
        return Vec::new();
    }
    let mut inputs = Vec::new();
    // The address change announces the disconnect that follows it, so it goes first.
    if changed.contains_key("ControllerAddress") && *target == Target::Agent {
        inputs.push(Input::ControllerAddressChanged);
    }
    if let Some(s) = changed
        .get("Status")
        .and_then(|v| String::try_from(v.clone()).ok())
    {
        inputs.push(Input::Status(s));
    }
    inputs
}

async fn add_match(conn: &Connection, rule: &str) -> Result<(), String> {
    let body = (rule,);
    let call = conn.call_method(
        Some(DBUS_NAME),
        DBUS_PATH,
        Some(DBUS_NAME),
        "AddMatch",
        &body,
    );
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("Failed to add match rule: {e}")),
        Err(_) => Err("Failed to add match rule: timed out".into()),
    }
}

async fn name_owner(conn: &Connection, name: &str) -> Option<String> {
    let body = (name,);
    let call = conn.call_method(
        Some(DBUS_NAME),
        DBUS_PATH,
        Some(DBUS_NAME),
        "GetNameOwner",
        &body,
    );
    let reply = tokio::time::timeout(CALL_TIMEOUT, call).await.ok()?.ok()?;
    reply.body().deserialize::<String>().ok()
}

/// The target's `Status`, or "" when it cannot be read (which counts as offline).
async fn read_status(conn: &Connection, owner: &str, target: &Target) -> String {
    let path = target.path();
    let body = (target.interface(), "Status");
    let call = conn.call_method(
        Some(owner),
        path.as_str(),
        Some(PROPERTIES_IFACE),
        "Get",
        &body,
    );
    let Ok(Ok(reply)) = tokio::time::timeout(CALL_TIMEOUT, call).await else {
        return String::new();
    };
    reply
        .body()
        .deserialize::<zvariant::OwnedValue>()
        .ok()
        .and_then(|v| String::try_from(v).ok())
        .unwrap_or_default()
}
