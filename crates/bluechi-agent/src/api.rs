//! `org.eclipse.bluechi.Agent` on the node's bus (spec §2.7).

use std::collections::HashMap;

use bluechi_core::msg;
use bluechi_core::names::*;
use zbus::message::Type;
use zbus::Message;
use zvariant::{OwnedValue, Value};

use crate::agent::Agent;

impl Agent {
    pub async fn on_api_message(&mut self, m: Message) {
        if m.message_type() != Type::MethodCall {
            return;
        }
        let r = msg::route(&m);
        let hdr = m.header();
        if r.iface == PEER_IFACE && r.member == "Ping" {
            return msg::reply(&self.api, &hdr, &()).await;
        }
        if r.iface == INTROSPECTABLE_IFACE && r.member == "Introspect" {
            let xml = crate::introspect::public_xml(&r.path);
            return crate::introspect::reply(&self.api, &m, &r.path, xml).await;
        }
        if r.path != AGENT_PATH {
            let text = format!("Unknown object '{}'.", r.path);
            return msg::reply_error(&self.api, &hdr, ERR_UNKNOWN_OBJECT, &text).await;
        }
        match (r.iface.as_str(), r.member.as_str()) {
            (AGENT_IFACE, "CreateProxy") | (AGENT_IFACE, "RemoveProxy") => {
                let Ok((local, node, unit)) = m.body().deserialize::<(String, String, String)>()
                else {
                    return msg::reply_error(
                        &self.api,
                        &hdr,
                        ERR_INVALID_ARGS,
                        "Invalid arguments",
                    )
                    .await;
                };
                if r.member == "CreateProxy" {
                    self.create_proxy(m.clone(), local, node, unit).await
                } else {
                    self.remove_proxy(&m, &local, &node, &unit).await
                }
            }
            (AGENT_IFACE, "SwitchController") => {
                let Ok((address,)) = m.body().deserialize::<(String,)>() else {
                    return msg::reply_error(
                        &self.api,
                        &hdr,
                        ERR_INVALID_ARGS,
                        "Invalid arguments",
                    )
                    .await;
                };
                self.switch_controller(&m, address).await
            }
            (AGENT_IFACE, "JobCancel") => {
                let Ok((id,)) = m.body().deserialize::<(u32,)>() else {
                    return msg::reply_error(
                        &self.api,
                        &hdr,
                        ERR_INVALID_ARGS,
                        "Invalid arguments",
                    )
                    .await;
                };
                let api = self.api.clone();
                self.cancel_job(&api, id, &m).await
            }
            (PROPERTIES_IFACE, "GetAll") => {
                msg::reply(&self.api, &hdr, &(self.properties(),)).await
            }
            (PROPERTIES_IFACE, "Get") => {
                let name = m
                    .body()
                    .deserialize::<(String, String)>()
                    .map(|(_, n)| n)
                    .unwrap_or_default();
                match self.properties().remove(&name) {
                    Some(v) => msg::reply(&self.api, &hdr, &(Value::from(v),)).await,
                    None => {
                        let text = format!("Unknown interface {AGENT_IFACE} or property {name}.");
                        msg::reply_error(&self.api, &hdr, ERR_UNKNOWN_PROPERTY, &text).await
                    }
                }
            }
            (iface, member) => {
                let text = format!("Unknown method {member} or interface {iface}.");
                msg::reply_error(&self.api, &hdr, ERR_UNKNOWN_METHOD, &text).await
            }
        }
    }

    fn properties(&self) -> HashMap<String, OwnedValue> {
        let l = &self.link;
        let pairs: Vec<(&str, Value<'_>)> = vec![
            ("Status", Value::from(l.status())),
            ("LogLevel", Value::from(bluechi_core::logging::level_name())),
            ("LogTarget", Value::from(self.cfg.log.target.as_str())),
            ("DisconnectTimestamp", Value::from(l.disconnect_us)),
            (
                "DisconnectTimestampMonotonic",
                Value::from(l.disconnect_monotonic_us),
            ),
            ("LastSeenTimestamp", Value::from(l.last_seen_us)),
            (
                "LastSeenTimestampMonotonic",
                Value::from(l.last_seen_monotonic_us),
            ),
            ("ControllerAddress", Value::from(l.address.as_str())),
        ];
        pairs
            .into_iter()
            .filter_map(|(k, v)| v.try_to_owned().ok().map(|v| (k.to_string(), v)))
            .collect()
    }
}
