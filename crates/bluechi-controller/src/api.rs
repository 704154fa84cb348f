//! The public API on the system bus: `org.eclipse.bluechi.Controller`, `.Node` and `.Job`
//! objects (spec §2.2–§2.4), dispatched by hand so error texts match sd-bus and the Node
//! methods can pass through to agents untouched.

use std::collections::HashMap;

use bluechi_core::msg::{self, Route};
use bluechi_core::names::*;
use zbus::message::Type;
use zbus::Message;
use zvariant::{OwnedObjectPath, OwnedValue, Value};

use crate::controller::{Controller, Pending};
use crate::fleet::FleetKind;
use crate::metrics::METRICS_PATH;

const DBUS_IFACE: &str = "org.freedesktop.DBus";

/// Node methods forwarded to the agent method of the same name with identical arguments.
const PASS_THROUGH: &[&str] = &[
    "StartTransientUnit",
    "FreezeUnit",
    "ThawUnit",
    "KillUnit",
    "GetUnitProperties",
    "GetUnitProperty",
    "SetUnitProperties",
    "EnableUnitFiles",
    "DisableUnitFiles",
    "ListUnits",
    "ListUnitFiles",
    "GetUnitFileState",
    "Reload",
    "ResetFailed",
    "ResetFailedUnit",
    "GetDefaultTarget",
    "SetDefaultTarget",
];

/// Lifecycle methods that create a BlueChi job, with the job type they record.
const JOB_METHODS: &[(&str, &str)] = &[
    ("StartUnit", "start"),
    ("StopUnit", "stop"),
    ("RestartUnit", "restart"),
    ("ReloadUnit", "reload"),
];

fn props(pairs: Vec<(&str, Value<'_>)>) -> HashMap<String, OwnedValue> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| v.try_to_owned().ok().map(|v| (k.to_string(), v)))
        .collect()
}

impl Controller {
    pub async fn on_bus_message(&mut self, m: Message) {
        let r = msg::route(&m);
        if r.kind == Type::Signal && r.member == "NameOwnerChanged" && r.iface == DBUS_IFACE {
            return self.on_name_owner_changed(&m).await;
        }
        if m.message_type() != Type::MethodCall {
            return;
        }
        match r.iface.as_str() {
            PEER_IFACE => return self.reply_peer(&r, &m).await,
            PROPERTIES_IFACE => return self.on_properties(&r, &m).await,
            INTROSPECTABLE_IFACE => return self.reply_introspect(&r, &m).await,
            _ => {}
        }
        if r.path == CONTROLLER_PATH {
            self.on_controller_call(&r, m).await
        } else if let Some(node) = self.nodes.iter().position(|n| n.path == r.path) {
            self.on_node_call(node, &r, m).await
        } else if let Some(idx) = self.monitors.index_by_path(&r.path) {
            self.on_monitor_call(idx, &r, m).await
        } else if r.path == METRICS_PATH && self.metrics_enabled {
            // The Metrics interface has signals only.
            self.unknown_method(&r, &m).await
        } else if let Some(job) = self.jobs.by_path(&r.path) {
            let id = job.id;
            self.on_job_call(id, &r, m).await
        } else {
            self.unknown_object(&r, &m).await
        }
    }

    async fn unknown_object(&self, r: &Route, m: &Message) {
        let text = format!("Unknown object '{}'.", r.path);
        msg::reply_error(&self.bus, &m.header(), ERR_UNKNOWN_OBJECT, &text).await
    }

    async fn unknown_method(&self, r: &Route, m: &Message) {
        let text = format!("Unknown method {} or interface {}.", r.member, r.iface);
        msg::reply_error(&self.bus, &m.header(), ERR_UNKNOWN_METHOD, &text).await
    }

    async fn reply_peer(&self, r: &Route, m: &Message) {
        match r.member.as_str() {
            "Ping" => msg::reply(&self.bus, &m.header(), &()).await,
            "GetMachineId" => {
                let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
                msg::reply(&self.bus, &m.header(), &(id.trim(),)).await
            }
            _ => self.unknown_method(r, m).await,
        }
    }

    async fn reply_introspect(&self, r: &Route, m: &Message) {
        let xml = crate::introspect::xml_for(self, &r.path);
        match xml {
            Some(x) => msg::reply(&self.bus, &m.header(), &(x,)).await,
            None => self.unknown_object(r, m).await,
        }
    }

    async fn on_controller_call(&mut self, r: &Route, m: Message) {
        let hdr = m.header();
        if r.iface != CONTROLLER_IFACE && !r.iface.is_empty() {
            return self.unknown_method(r, &m).await;
        }
        match r.member.as_str() {
            "ListNodes" => {
                let list: Vec<(String, OwnedObjectPath, String, String)> = self
                    .nodes
                    .iter()
                    .filter_map(|n| {
                        let p = OwnedObjectPath::try_from(n.path.clone()).ok()?;
                        Some((n.name.clone(), p, n.status().to_string(), n.peer_ip.clone()))
                    })
                    .collect();
                msg::reply(&self.bus, &hdr, &(list,)).await
            }
            "GetNode" => {
                let Ok((name,)) = m.body().deserialize::<(String,)>() else {
                    return self.invalid_args(&hdr).await;
                };
                match self.nodes.iter().find(|n| n.name == name) {
                    Some(n) => match OwnedObjectPath::try_from(n.path.clone()) {
                        Ok(p) => msg::reply(&self.bus, &hdr, &(p,)).await,
                        Err(e) => {
                            msg::reply_error(&self.bus, &hdr, ERR_FAILED, &e.to_string()).await
                        }
                    },
                    None => {
                        msg::reply_error(&self.bus, &hdr, ERR_SERVICE_UNKNOWN, "Node not found")
                            .await
                    }
                }
            }
            "CreateMonitor" => self.create_monitor(&m).await,
            "EnableMetrics" => self.set_metrics(&m, true).await,
            "DisableMetrics" => self.set_metrics(&m, false).await,
            "ListUnits" => self.start_fanout(FleetKind::Units, m.clone()).await,
            "ListUnitFiles" => self.start_fanout(FleetKind::UnitFiles, m.clone()).await,
            "SetLogLevel" => {
                let level = m
                    .body()
                    .deserialize::<(String,)>()
                    .map(|(l,)| l)
                    .unwrap_or_default();
                if bluechi_core::logging::set_level(&level) {
                    msg::reply(&self.bus, &hdr, &()).await
                } else {
                    msg::reply_error(
                        &self.bus,
                        &hdr,
                        ERR_INVALID_ARGS,
                        "Invalid input for log level",
                    )
                    .await
                }
            }
            _ => self.unknown_method(r, &m).await,
        }
    }

    async fn on_node_call(&mut self, node: usize, r: &Route, m: Message) {
        if r.iface != NODE_IFACE {
            return self.unknown_method(r, &m).await;
        }
        // The gatekeeper: every Node method on an offline node fails the same way.
        if self.nodes[node].link.is_none() {
            return msg::reply_error(&self.bus, &m.header(), ERR_OFFLINE, "Node is offline").await;
        }
        if let Some((_, job_type)) = JOB_METHODS.iter().find(|(n, _)| *n == r.member) {
            return self.start_job(node, r, m, job_type).await;
        }
        if r.member == "SetLogLevel" {
            return self.set_node_log_level(node, m).await;
        }
        if PASS_THROUGH.contains(&r.member.as_str()) {
            let call = msg::call_with_body_of(
                &m,
                AGENT_BUS_NAME,
                INTERNAL_AGENT_PATH,
                INTERNAL_AGENT_IFACE,
                &r.member,
            );
            return self
                .call_agent(node, call, Pending::Forward { caller: m })
                .await;
        }
        self.unknown_method(r, &m).await
    }

    /// The answer to a call whose body does not have the method's signature.
    async fn invalid_args(&self, hdr: &zbus::message::Header<'_>) {
        msg::reply_error(&self.bus, hdr, ERR_INVALID_ARGS, "Invalid arguments").await
    }

    /// `Node.SetLogLevel`, with upstream's quirk Q2 (spec §2.3): an invalid level is answered
    /// with success at once and still sent to the agent, whose refusal is only logged.
    async fn set_node_log_level(&mut self, node: usize, m: Message) {
        let Ok((level,)) = m.body().deserialize::<(String,)>() else {
            return self.invalid_args(&m.header()).await;
        };
        let caller = if bluechi_core::logging::level_rank(&level).is_some() {
            Some(m)
        } else {
            msg::reply(&self.bus, &m.header(), &()).await;
            None
        };
        let call = msg::call(
            AGENT_BUS_NAME,
            INTERNAL_AGENT_PATH,
            INTERNAL_AGENT_IFACE,
            "SetLogLevel",
            &(level.as_str(),),
        );
        self.call_agent(node, call, Pending::LogLevel { caller })
            .await;
    }

    /// The agent answered a `Node.SetLogLevel`: its refusal is logged (also when the caller
    /// was answered already, Q2), and a waiting caller gets the outcome. Calls that never got
    /// an answer are failed by `fail_pending` like any other.
    pub async fn log_level_done(&self, caller: Option<Message>, reply: &Message) {
        let error = msg::error_of(reply);
        if let Some((_, text)) = &error {
            tracing::debug!("Failed to set log level call: {text}");
        }
        let Some(caller) = caller else {
            return;
        };
        match error {
            None => msg::reply(&self.bus, &caller.header(), &()).await,
            Some((name, _)) => {
                // Upstream prints strerror of the errno sd-bus derives from the error name.
                let text = format!(
                    "Failed to call a method to set the log level: {}",
                    bluechi_core::errno::strerror_of(&name)
                );
                msg::reply_error(&self.bus, &caller.header(), ERR_FAILED, &text).await
            }
        }
    }

    /// Spec §3.1: allocate the job, call the agent with its id, export on success.
    async fn start_job(&mut self, node: usize, r: &Route, m: Message, job_type: &'static str) {
        let Ok((unit, mode)) = m.body().deserialize::<(String, String)>() else {
            return self.invalid_args(&m.header()).await;
        };
        let node_name = self.nodes[node].name.clone();
        let id = self.jobs.create(&node_name, &unit, job_type);
        let call = msg::call(
            AGENT_BUS_NAME,
            INTERNAL_AGENT_PATH,
            INTERNAL_AGENT_IFACE,
            &r.member,
            &(unit.as_str(), mode.as_str(), id),
        );
        self.call_agent(
            node,
            call,
            Pending::JobStart {
                job_id: id,
                caller: m,
            },
        )
        .await;
    }

    /// The agent accepted the job: `JobNew` goes out before the reply (upstream's order).
    pub async fn export_job(&mut self, id: u32, caller: &Message) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.exported = true;
        let path = job.path();
        let early = job.early_result.take();
        let Ok(opath) = OwnedObjectPath::try_from(path.clone()) else {
            return;
        };
        if let Err(e) = self
            .bus
            .emit_signal(
                None::<&str>,
                CONTROLLER_PATH,
                CONTROLLER_IFACE,
                "JobNew",
                &(id, &opath),
            )
            .await
        {
            tracing::debug!("failed to emit JobNew: {e}");
        }
        msg::reply(&self.bus, &caller.header(), &(&opath,)).await;
        if let Some(result) = early {
            self.on_job_done(id, &result).await;
        }
    }

    pub async fn on_job_done(&mut self, id: u32, result: &str) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if !job.exported {
            job.early_result = Some(result.to_string());
            return;
        }
        if let Some(job) = self.jobs.remove(id) {
            self.emit_job_removed(id, &job.path(), &job.node, &job.unit, result)
                .await;
            if self.metrics_enabled && job.job_type == "start" {
                let us = bluechi_core::clock::realtime_us().saturating_sub(job.created_us);
                self.start_job_metric(&job.node, &job.path(), &job.unit, us)
                    .await;
            }
        }
    }

    pub async fn on_job_state(&mut self, id: u32, state: &str) {
        let state = match state {
            "waiting" | "running" => state,
            _ => "invalid",
        };
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        job.state = state.to_string();
        if job.exported {
            let path = job.path();
            self.emit_properties_changed(&path, JOB_IFACE, "State", state)
                .await;
        }
    }

    async fn on_job_call(&mut self, id: u32, r: &Route, m: Message) {
        if r.iface != JOB_IFACE || r.member != "Cancel" {
            return self.unknown_method(r, &m).await;
        }
        let Some(job) = self.jobs.get(id) else {
            return self.unknown_object(r, &m).await;
        };
        if let Some(node) = self.node_index(&job.node.clone()) {
            self.send_agent_oneway(
                node,
                INTERNAL_AGENT_PATH,
                INTERNAL_AGENT_IFACE,
                "JobCancel",
                &(id,),
            )
            .await;
        }
        // Upstream replies at once; the job ends when systemd reports it canceled.
        msg::reply(&self.bus, &m.header(), &()).await
    }

    /// The properties of the object at `path` for `iface`, or None for an unknown object.
    fn properties_of(&self, path: &str, iface: &str) -> Option<HashMap<String, OwnedValue>> {
        let all = iface.is_empty();
        if path == CONTROLLER_PATH {
            let p = if all || iface == CONTROLLER_IFACE {
                props(vec![
                    ("Status", Value::from(self.status())),
                    ("LogLevel", Value::from(bluechi_core::logging::level_name())),
                    ("LogTarget", Value::from(self.cfg.log.target.as_str())),
                ])
            } else {
                HashMap::new()
            };
            return Some(p);
        }
        if let Some(n) = self.nodes.iter().find(|n| n.path == path) {
            let p = if all || iface == NODE_IFACE {
                props(vec![
                    ("Name", Value::from(n.name.as_str())),
                    ("Status", Value::from(n.status())),
                    ("PeerIp", Value::from(n.peer_ip.as_str())),
                    ("LastSeenTimestamp", Value::from(n.last_seen_us)),
                    (
                        "LastSeenTimestampMonotonic",
                        Value::from(n.last_seen_monotonic_us),
                    ),
                ])
            } else {
                HashMap::new()
            };
            return Some(p);
        }
        if self.monitors.index_by_path(path).is_some()
            || (path == METRICS_PATH && self.metrics_enabled)
        {
            // Monitor and Metrics objects have no properties.
            return Some(HashMap::new());
        }
        let j = self.jobs.by_path(path)?;
        let p = if all || iface == JOB_IFACE {
            props(vec![
                ("Id", Value::from(j.id)),
                ("Node", Value::from(j.node.as_str())),
                ("Unit", Value::from(j.unit.as_str())),
                ("JobType", Value::from(j.job_type)),
                ("State", Value::from(j.state.as_str())),
            ])
        } else {
            HashMap::new()
        };
        Some(p)
    }

    async fn on_properties(&mut self, r: &Route, m: &Message) {
        let hdr = m.header();
        match r.member.as_str() {
            "GetAll" => {
                let iface = m
                    .body()
                    .deserialize::<(String,)>()
                    .map(|(i,)| i)
                    .unwrap_or_default();
                match self.properties_of(&r.path, &iface) {
                    Some(p) => msg::reply(&self.bus, &hdr, &(p,)).await,
                    None => self.unknown_object(r, m).await,
                }
            }
            "Get" => {
                let Ok((iface, name)) = m.body().deserialize::<(String, String)>() else {
                    return self.invalid_args(&hdr).await;
                };
                let Some(p) = self.properties_of(&r.path, &iface) else {
                    return self.unknown_object(r, m).await;
                };
                match p.get(&name) {
                    Some(v) => match v.try_clone() {
                        Ok(v) => msg::reply(&self.bus, &hdr, &(Value::from(v),)).await,
                        Err(e) => {
                            msg::reply_error(&self.bus, &hdr, ERR_FAILED, &e.to_string()).await
                        }
                    },
                    None => {
                        let text = format!("Unknown interface {iface} or property {name}.");
                        msg::reply_error(&self.bus, &hdr, ERR_UNKNOWN_PROPERTY, &text).await
                    }
                }
            }
            "Set" => {
                let text = "Property is read-only";
                msg::reply_error(
                    &self.bus,
                    &hdr,
                    "org.freedesktop.DBus.Error.PropertyReadOnly",
                    text,
                )
                .await
            }
            _ => self.unknown_method(r, m).await,
        }
    }
}
