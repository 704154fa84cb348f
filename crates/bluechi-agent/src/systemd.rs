//! The agent's side of systemd: connection, subscriptions, the unit table that feeds unit
//! events to the controller (spec §3.4.1), and job completion (§3.1).

use bluechi_core::msg::ListedUnit;
use std::collections::HashMap;

use bluechi_core::msg::{self, PropMap};
use bluechi_core::names::*;
use bluechi_core::sd_private::{self, PRIVATE_SOCKET};
use tokio::sync::mpsc::UnboundedSender;
use zbus::message::Type;
use zbus::{Connection, Message};

use crate::agent::{Agent, Event, Scope, SdPending, TrackedJob};

/// Early job results kept at most (see `Agent::early_results`).
const EARLY_RESULTS: usize = 64;

/// One unit the agent knows of, keyed by its object path.
#[derive(Debug, Clone, Default)]
pub struct UnitInfo {
    pub name: String,
    pub subscribed: bool,
    pub loaded: bool,
    pub active: Option<String>,
    pub sub: Option<String>,
}

#[derive(Debug, Default)]
pub struct UnitTable {
    pub by_path: HashMap<String, UnitInfo>,
    pub wildcard: bool,
}

impl UnitTable {
    fn wants_events(&self, u: &UnitInfo) -> bool {
        self.wildcard || u.subscribed
    }

    /// Forgets every subscription: they belong to one link (spec §3.4.1 "per connection to
    /// the controller"), and a controller re-sends its own on the next one. Entries kept only
    /// for a subscription go; what systemd has loaded stays.
    pub fn clear_subscriptions(&mut self) {
        self.wildcard = false;
        self.by_path.retain(|_, u| {
            u.subscribed = false;
            u.loaded
        });
    }
}

/// Upstream's active-state vocabulary; anything else is `invalid`.
fn active_state(s: &str) -> String {
    match s {
        "active" | "reloading" | "inactive" | "failed" | "activating" | "deactivating"
        | "maintenance" => s.to_string(),
        _ => "invalid".to_string(),
    }
}

/// Connects to systemd. The system manager: its private socket when running as root and it
/// exists, else the system bus (where signals need match rules). The user manager (`--user`):
/// always the user bus, as upstream does.
pub async fn connect(tx: UnboundedSender<Event>, scope: Scope) -> Result<Connection, String> {
    let direct = scope == Scope::System
        && nix::unistd::geteuid().is_root()
        && std::path::Path::new(PRIVATE_SOCKET).exists();
    let conn = if direct {
        // Systemd signs what it sends there in a way zbus rejects; bluechi-core relays it.
        sd_private::connect(PRIVATE_SOCKET)
            .await
            .map_err(|e| format!("Failed to connect to systemd: {e}"))?
    } else {
        scope.connect_bus().await.map_err(|e| {
            format!(
                "Failed to connect to systemd on the {}: {e}",
                scope.bus_name()
            )
        })?
    };
    if direct {
        tracing::debug!("Connected to systemd on {PRIVATE_SOCKET}");
    } else {
        tracing::debug!("Connected to systemd on the {}", scope.bus_name());
    }
    msg::spawn_forwarder(&conn, tx, Event::Systemd);
    if !direct {
        let dbus = zbus::fdo::DBusProxy::new(&conn)
            .await
            .map_err(|e| e.to_string())?;
        for rule in [
            "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',path_namespace='/org/freedesktop/systemd1/job'",
            "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',path_namespace='/org/freedesktop/systemd1/unit'",
            "type='signal',sender='org.freedesktop.systemd1',path='/org/freedesktop/systemd1',interface='org.freedesktop.systemd1.Manager',member='UnitNew'",
            "type='signal',sender='org.freedesktop.systemd1',path='/org/freedesktop/systemd1',interface='org.freedesktop.systemd1.Manager',member='UnitRemoved'",
            "type='signal',sender='org.freedesktop.systemd1',path='/org/freedesktop/systemd1',interface='org.freedesktop.systemd1.Manager',member='JobRemoved'",
        ] {
            let rule = zbus::MatchRule::try_from(rule).map_err(|e| e.to_string())?;
            dbus.add_match_rule(rule)
                .await
                .map_err(|e| format!("Failed to add match rule: {e}"))?;
        }
    }
    conn.call_method(
        Some(SYSTEMD_BUS_NAME),
        SYSTEMD_PATH,
        Some(SYSTEMD_MANAGER_IFACE),
        "Subscribe",
        &(),
    )
    .await
    .map_err(|e| format!("Failed to subscribe to systemd: {e}"))?;
    Ok(conn)
}

/// The start-up snapshot: every listed unit is loaded with its current state. Called before
/// the loop runs; signals meanwhile wait in the event channel.
pub async fn initial_units(conn: &Connection) -> Result<UnitTable, String> {
    let reply = conn
        .call_method(
            Some(SYSTEMD_BUS_NAME),
            SYSTEMD_PATH,
            Some(SYSTEMD_MANAGER_IFACE),
            "ListUnits",
            &(),
        )
        .await
        .map_err(|e| format!("Failed to list units: {e}"))?;
    let (units,): (Vec<ListedUnit>,) = reply
        .body()
        .deserialize()
        .map_err(|e| format!("Failed to list units: {e}"))?;
    let mut t = UnitTable::default();
    for u in units {
        t.by_path.insert(
            u.6.to_string(),
            UnitInfo {
                name: u.0,
                subscribed: false,
                loaded: true,
                active: Some(active_state(&u.3)),
                sub: Some(u.4),
            },
        );
    }
    Ok(t)
}

impl Agent {
    pub async fn on_systemd_message(&mut self, m: Message) {
        match m.message_type() {
            Type::MethodReturn | Type::Error => self.on_systemd_reply(m).await,
            Type::Signal => self.on_systemd_signal(m).await,
            // systemd does not call us; anything else is not for us.
            Type::MethodCall => {}
        }
    }

    async fn on_systemd_reply(&mut self, m: Message) {
        let Some(serial) = msg::reply_serial(&m) else {
            return;
        };
        let Some(p) = self.sd_pending.remove(&serial) else {
            return;
        };
        match p {
            SdPending::Forward { gen, caller } => {
                if let Some(conn) = self.link.conn_of(gen) {
                    msg::forward_reply(&conn, &caller, &m).await;
                }
            }
            SdPending::Log { what } => {
                if let Some((_, text)) = msg::error_of(&m) {
                    tracing::error!("{what} failed: {text}");
                }
            }
            SdPending::Job {
                gen,
                caller,
                id,
                unit,
                method,
                sent,
            } => {
                let conn = self.link.conn_of(gen);
                if m.message_type() == Type::Error {
                    if let Some(conn) = conn {
                        msg::forward_reply(&conn, &caller, &m).await;
                    }
                    return;
                }
                let Ok((path,)) = m.body().deserialize::<(zvariant::OwnedObjectPath,)>() else {
                    return;
                };
                let path = path.to_string();
                // Reply first: the controller must see it before the JobDone below.
                if let Some(conn) = conn {
                    msg::reply(&conn, &caller.header(), &()).await;
                }
                let job = TrackedJob {
                    id,
                    unit,
                    method,
                    sent,
                };
                if let Some(i) = self.early_results.iter().position(|(p, _)| *p == path) {
                    if let Some((_, result)) = self.early_results.remove(i) {
                        self.finish_job(&job, &result).await;
                    }
                    return;
                }
                // systemd merges jobs: several BlueChi jobs may share one path; all finish.
                let key = format!("{path}#{id}");
                self.jobs.insert(key, job);
            }
        }
    }

    async fn on_systemd_signal(&mut self, m: Message) {
        let r = msg::route(&m);
        match (r.iface.as_str(), r.member.as_str()) {
            (SYSTEMD_MANAGER_IFACE, "UnitNew") => {
                if let Ok((id, path)) = m
                    .body()
                    .deserialize::<(String, zvariant::OwnedObjectPath)>()
                {
                    self.on_unit_new(id, path.to_string()).await;
                }
            }
            (SYSTEMD_MANAGER_IFACE, "UnitRemoved") => {
                if let Ok((_, path)) = m
                    .body()
                    .deserialize::<(String, zvariant::OwnedObjectPath)>()
                {
                    self.on_unit_removed(&path).await;
                }
            }
            (SYSTEMD_MANAGER_IFACE, "JobRemoved") => {
                if let Ok((_, path, _, result)) =
                    m.body()
                        .deserialize::<(u32, zvariant::OwnedObjectPath, String, String)>()
                {
                    self.on_job_removed(path.as_str(), &result).await;
                }
            }
            (PROPERTIES_IFACE, "PropertiesChanged") => {
                if let Ok((iface, changed, _)) =
                    m.body().deserialize::<(String, PropMap, Vec<String>)>()
                {
                    if r.path.starts_with(SYSTEMD_JOB_PATH_PREFIX) {
                        self.on_job_properties(&r.path, &changed).await;
                    } else if r.path.starts_with(SYSTEMD_UNIT_PATH_PREFIX) {
                        self.on_unit_properties(&r.path, &iface, changed).await;
                    }
                }
            }
            _ => {}
        }
    }

    async fn on_unit_new(&mut self, name: String, path: String) {
        let e = self.units.by_path.entry(path).or_default();
        e.name = name;
        e.loaded = true;
        e.active = Some("inactive".into());
        e.sub = Some("dead".into());
        let (name, wants) = (e.name.clone(), self.units.wildcard || e.subscribed);
        if wants {
            self.emit_to_controller("UnitNew", &(name.as_str(), "real"))
                .await;
        }
    }

    async fn on_unit_removed(&mut self, path: &str) {
        let Some(e) = self.units.by_path.get_mut(path) else {
            return;
        };
        e.loaded = false;
        e.active = None;
        e.sub = None;
        let (name, subscribed) = (e.name.clone(), e.subscribed);
        if self.units.wildcard || subscribed {
            self.emit_to_controller("UnitRemoved", &(name.as_str(),))
                .await;
        }
        if !subscribed {
            self.units.by_path.remove(path);
        }
    }

    async fn on_unit_properties(&mut self, path: &str, iface: &str, changed: PropMap) {
        let Some(e) = self.units.by_path.get_mut(path) else {
            return;
        };
        let mut state_changed = false;
        if iface == SYSTEMD_UNIT_IFACE {
            let active = msg::prop_str(&changed, "ActiveState").map(|a| active_state(&a));
            let sub = msg::prop_str(&changed, "SubState");
            if active.is_some() && active != e.active {
                e.active = active;
                state_changed = true;
            }
            if sub.is_some() && sub != e.sub {
                e.sub = sub;
                state_changed = true;
            }
        }
        let info = e.clone();
        if !self.units.wants_events(&info) {
            return;
        }
        if state_changed {
            let active = info.active.unwrap_or_else(|| "invalid".into());
            let sub = info.sub.unwrap_or_else(|| "invalid".into());
            self.emit_to_controller(
                "UnitStateChanged",
                &(info.name.as_str(), active.as_str(), sub.as_str(), "real"),
            )
            .await;
        }
        self.emit_to_controller(
            "UnitPropertiesChanged",
            &(info.name.as_str(), iface, changed),
        )
        .await;
    }

    async fn on_job_properties(&mut self, path: &str, changed: &PropMap) {
        let Some(state) = msg::prop_str(changed, "State") else {
            return;
        };
        let ids: Vec<u32> = self.jobs_at(path).into_iter().map(|(_, id)| id).collect();
        for id in ids {
            self.emit_to_controller("JobStateChanged", &(id, state.as_str()))
                .await;
        }
    }

    /// Tracked BlueChi jobs (key, id) for one systemd job path.
    fn jobs_at(&self, path: &str) -> Vec<(String, u32)> {
        let prefix = format!("{path}#");
        self.jobs
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, j)| (k.clone(), j.id))
            .collect()
    }

    async fn on_job_removed(&mut self, path: &str, result: &str) {
        let tracked = self.jobs_at(path);
        if tracked.is_empty() {
            if self.early_results.len() >= EARLY_RESULTS {
                self.early_results.pop_front();
            }
            self.early_results
                .push_back((path.to_string(), result.to_string()));
            return;
        }
        for (key, _) in tracked {
            if let Some(j) = self.jobs.remove(&key) {
                self.finish_job(&j, result).await;
            }
        }
    }

    /// A BlueChi job's systemd job is gone: its metrics (spec §3.5), then `JobDone`, in
    /// upstream's order, so a client sees the agent's time before the job's removal.
    async fn finish_job(&self, j: &TrackedJob, result: &str) {
        tracing::debug!("Job {} ({} {}) done: {result}", j.id, j.method, j.unit);
        self.emit_job_metrics(j).await;
        self.emit_to_controller("JobDone", &(j.id, result)).await;
    }

    /// Subscribe from the controller (§3.4.1).
    pub fn subscribe(&mut self, unit: &str) -> Result<Vec<(&'static str, UnitInfo)>, &'static str> {
        if unit == "*" {
            if self.units.wildcard {
                return Err("Already wildcard subscribed");
            }
            self.units.wildcard = true;
            let star = UnitInfo {
                name: "*".into(),
                ..Default::default()
            };
            return Ok(vec![("UnitNew", star)]);
        }
        let path = systemd_unit_path(unit);
        let e = self.units.by_path.entry(path).or_default();
        if e.subscribed {
            return Err("Already subscribed");
        }
        e.subscribed = true;
        e.name = unit.to_string();
        let mut out = Vec::new();
        if e.loaded {
            out.push(("UnitNew", e.clone()));
            if e.active.is_some() {
                out.push(("UnitStateChanged", e.clone()));
            }
        }
        Ok(out)
    }

    pub fn unsubscribe(&mut self, unit: &str) -> Result<(), &'static str> {
        if unit == "*" {
            if !self.units.wildcard {
                return Err("No wildcard subscription active");
            }
            self.units.wildcard = false;
            return Ok(());
        }
        let path = systemd_unit_path(unit);
        match self.units.by_path.get_mut(&path) {
            Some(e) if e.subscribed => {
                e.subscribed = false;
                if !e.loaded {
                    self.units.by_path.remove(&path);
                }
                Ok(())
            }
            _ => Err("Not subscribed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearing_subscriptions_keeps_only_loaded_units() {
        let unit = |name: &str, subscribed, loaded| UnitInfo {
            name: name.into(),
            subscribed,
            loaded,
            ..Default::default()
        };
        let mut t = UnitTable {
            wildcard: true,
            ..Default::default()
        };
        t.by_path.insert("/a".into(), unit("a", true, true));
        t.by_path.insert("/b".into(), unit("b", true, false));
        t.by_path.insert("/c".into(), unit("c", false, true));
        t.clear_subscriptions();
        assert!(!t.wildcard);
        let mut left: Vec<_> = t
            .by_path
            .values()
            .map(|u| (u.name.as_str(), u.subscribed))
            .collect();
        left.sort();
        assert_eq!(left, [("a", false), ("c", false)]);
    }

    #[test]
    fn unknown_active_states_are_invalid() {
        assert_eq!(active_state("active"), "active");
        assert_eq!(active_state("maintenance"), "maintenance");
        assert_eq!(active_state("bogus"), "invalid");
    }
}
