//! Methods the controller calls on the agent over the peer link
//! (`org.eclipse.bluechi.internal.Agent`, spec §2.9) and on proxy objects (§2.10).

use bluechi_core::msg;
use bluechi_core::names::*;
use zbus::Message;

use crate::agent::{emit_internal, Agent, SdPending};

/// Agent methods that are one Manager call with the same arguments.
const MANAGER_PASS_THROUGH: &[&str] = &[
    "StartTransientUnit",
    "KillUnit",
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

const JOB_METHODS: &[&str] = &["StartUnit", "StopUnit", "RestartUnit", "ReloadUnit"];

impl Agent {
    pub async fn on_controller_call(&mut self, gen: u64, m: Message) {
        let r = msg::route(&m);
        let Some(conn) = self.link.conn_of(gen) else {
            return;
        };
        if r.iface == INTROSPECTABLE_IFACE && r.member == "Introspect" {
            let xml = self.peer_introspection(&r.path);
            return crate::introspect::reply(&conn, &m, &r.path, xml).await;
        }
        let hdr = m.header();
        if r.path.starts_with(INTERNAL_PROXY_PATH_PREFIX) && r.iface == INTERNAL_PROXY_IFACE {
            // Fire-and-forget from the controller; an answer does no harm.
            self.on_proxy_call(&r.path, &r.member, &m).await;
            return msg::reply(&conn, &hdr, &()).await;
        }
        if r.iface == PEER_IFACE && r.member == "Ping" {
            return msg::reply(&conn, &hdr, &()).await;
        }
        if r.path != INTERNAL_AGENT_PATH || r.iface != INTERNAL_AGENT_IFACE {
            let text = format!("Unknown object '{}'.", r.path);
            return msg::reply_error(&conn, &hdr, ERR_UNKNOWN_OBJECT, &text).await;
        }
        let member = r.member.as_str();
        if JOB_METHODS.contains(&member) {
            let Ok((unit, mode, id)) = m.body().deserialize::<(String, String, u32)>() else {
                return msg::reply_error(&conn, &hdr, ERR_INVALID_ARGS, "Invalid arguments").await;
            };
            tracing::info!("Request to {member} unit: {unit} - Action: {mode}");
            let call = msg::call(
                SYSTEMD_BUS_NAME,
                SYSTEMD_PATH,
                SYSTEMD_MANAGER_IFACE,
                member,
                &(unit.as_str(), mode.as_str()),
            );
            let what = SdPending::Job {
                gen,
                caller: m.clone(),
                id,
                unit,
                method: member.to_string(),
                sent: std::time::Instant::now(),
            };
            return self.call_systemd(call, what).await;
        }
        if MANAGER_PASS_THROUGH.contains(&member) {
            let call = msg::call_with_body_of(
                &m,
                SYSTEMD_BUS_NAME,
                SYSTEMD_PATH,
                SYSTEMD_MANAGER_IFACE,
                member,
            );
            return self
                .call_systemd(
                    call,
                    SdPending::Forward {
                        gen,
                        caller: m.clone(),
                    },
                )
                .await;
        }
        match member {
            "GetUnitProperties" => {
                let Ok((unit, iface)) = m.body().deserialize::<(String, String)>() else {
                    return msg::reply_error(&conn, &hdr, ERR_INVALID_ARGS, "Invalid arguments")
                        .await;
                };
                let call = msg::call(
                    SYSTEMD_BUS_NAME,
                    &systemd_unit_path(&unit),
                    PROPERTIES_IFACE,
                    "GetAll",
                    &(iface.as_str(),),
                );
                self.call_systemd(
                    call,
                    SdPending::Forward {
                        gen,
                        caller: m.clone(),
                    },
                )
                .await
            }
            "GetUnitProperty" => {
                let Ok((unit, iface, prop)) = m.body().deserialize::<(String, String, String)>()
                else {
                    return msg::reply_error(&conn, &hdr, ERR_INVALID_ARGS, "Invalid arguments")
                        .await;
                };
                let call = msg::call(
                    SYSTEMD_BUS_NAME,
                    &systemd_unit_path(&unit),
                    PROPERTIES_IFACE,
                    "Get",
                    &(iface.as_str(), prop.as_str()),
                );
                self.call_systemd(
                    call,
                    SdPending::Forward {
                        gen,
                        caller: m.clone(),
                    },
                )
                .await
            }
            "SetUnitProperties" => {
                type Kv = Vec<(String, zvariant::OwnedValue)>;
                let Ok((unit, runtime, kv)) = m.body().deserialize::<(String, bool, Kv)>() else {
                    return msg::reply_error(&conn, &hdr, ERR_INVALID_ARGS, "Invalid arguments")
                        .await;
                };
                let call = msg::call(
                    SYSTEMD_BUS_NAME,
                    &systemd_unit_path(&unit),
                    SYSTEMD_UNIT_IFACE,
                    "SetProperties",
                    &(runtime, kv),
                );
                self.call_systemd(
                    call,
                    SdPending::Forward {
                        gen,
                        caller: m.clone(),
                    },
                )
                .await
            }
            "FreezeUnit" | "ThawUnit" => {
                let Ok((unit,)) = m.body().deserialize::<(String,)>() else {
                    return msg::reply_error(&conn, &hdr, ERR_INVALID_ARGS, "Invalid arguments")
                        .await;
                };
                let method = if member == "FreezeUnit" {
                    "Freeze"
                } else {
                    "Thaw"
                };
                let call = msg::call(
                    SYSTEMD_BUS_NAME,
                    &systemd_unit_path(&unit),
                    SYSTEMD_UNIT_IFACE,
                    method,
                    &(),
                );
                self.call_systemd(
                    call,
                    SdPending::Forward {
                        gen,
                        caller: m.clone(),
                    },
                )
                .await
            }
            "Subscribe" | "Unsubscribe" => {
                let Ok((unit,)) = m.body().deserialize::<(String,)>() else {
                    return msg::reply_error(&conn, &hdr, ERR_INVALID_ARGS, "Invalid arguments")
                        .await;
                };
                if member == "Unsubscribe" {
                    return match self.unsubscribe(&unit) {
                        Ok(()) => msg::reply(&conn, &hdr, &()).await,
                        Err(e) => msg::reply_error(&conn, &hdr, ERR_FAILED, e).await,
                    };
                }
                match self.subscribe(&unit) {
                    Ok(virtual_events) => {
                        msg::reply(&conn, &hdr, &()).await;
                        for (signal, u) in virtual_events {
                            if signal == "UnitNew" {
                                emit_internal(&conn, "UnitNew", &(u.name.as_str(), "virtual"))
                                    .await;
                            } else {
                                let a = u.active.unwrap_or_else(|| "invalid".into());
                                let s = u.sub.unwrap_or_else(|| "invalid".into());
                                emit_internal(
                                    &conn,
                                    "UnitStateChanged",
                                    &(u.name.as_str(), a.as_str(), s.as_str(), "virtual"),
                                )
                                .await;
                            }
                        }
                    }
                    Err(e) => msg::reply_error(&conn, &hdr, ERR_FAILED, e).await,
                }
            }
            "StartDep" | "StopDep" => {
                let Ok((unit,)) = m.body().deserialize::<(String,)>() else {
                    return;
                };
                let dep = dep_unit_name(&unit);
                let method = if member == "StartDep" {
                    "StartUnit"
                } else {
                    "StopUnit"
                };
                let call = msg::call(
                    SYSTEMD_BUS_NAME,
                    SYSTEMD_PATH,
                    SYSTEMD_MANAGER_IFACE,
                    method,
                    &(dep.as_str(), "replace"),
                );
                let what = SdPending::Log {
                    what: format!("{method} of {dep}"),
                };
                self.call_systemd(call, what).await;
                // Upstream sends no reply here; the controller does not wait for one.
            }
            "EnableMetrics" | "DisableMetrics" => {
                let enable = member == "EnableMetrics";
                if self.metrics_enabled == enable {
                    let text = if enable {
                        "Metrics already enabled"
                    } else {
                        "Metrics already disabled"
                    };
                    return msg::reply_error(&conn, &hdr, ERR_INVALID_ARGS, text).await;
                }
                self.metrics_enabled = enable;
                msg::reply(&conn, &hdr, &()).await
            }
            "SetLogLevel" => {
                let level = m
                    .body()
                    .deserialize::<(String,)>()
                    .map(|(l,)| l)
                    .unwrap_or_default();
                if bluechi_core::logging::set_level(&level) {
                    msg::reply(&conn, &hdr, &()).await
                } else {
                    msg::reply_error(&conn, &hdr, ERR_FAILED, "Invalid input for log level").await
                }
            }
            "JobCancel" => {
                let Ok((id,)) = m.body().deserialize::<(u32,)>() else {
                    return msg::reply_error(&conn, &hdr, ERR_INVALID_ARGS, "Invalid arguments")
                        .await;
                };
                self.cancel_job(&conn, id, &m).await
            }
            _ => {
                let text = format!("Unknown method {member} or interface {}.", r.iface);
                msg::reply_error(&conn, &hdr, ERR_UNKNOWN_METHOD, &text).await
            }
        }
    }

    /// `JobCancel` (from the controller's `Job.Cancel`, or the public Agent API); the answer goes
    /// back on `conn`, the connection the call came in on.
    pub async fn cancel_job(&mut self, conn: &zbus::Connection, id: u32, m: &Message) {
        let path = self
            .jobs
            .iter()
            .find(|(_, j)| j.id == id)
            .and_then(|(k, _)| k.split('#').next().map(str::to_string));
        match path {
            None => {
                let text = format!("No job with ID '{id}' found");
                msg::reply_error(conn, &m.header(), ERR_FAILED, &text).await
            }
            Some(path) => {
                let call = msg::call(SYSTEMD_BUS_NAME, &path, SYSTEMD_JOB_IFACE, "Cancel", &());
                let what = SdPending::Log {
                    what: format!("Cancel of job {id}"),
                };
                self.call_systemd(call, what).await;
                msg::reply(conn, &m.header(), &()).await
            }
        }
    }
}
