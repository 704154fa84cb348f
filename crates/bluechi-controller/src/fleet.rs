//! Fleet requests (spec §3.3): `Controller.ListUnits`/`ListUnitFiles` fan out to every online
//! node through `pending`, and the caller is answered once every part is in.

use bluechi_core::msg;
use bluechi_core::msg::ListedUnit;
use bluechi_core::names::*;
use bluechi_core::ordered::OrderedDict;
use zbus::Message;

use crate::controller::{Controller, Pending};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetKind {
    Units,
    UnitFiles,
}

impl FleetKind {
    fn method(self) -> &'static str {
        match self {
            FleetKind::Units => "ListUnits",
            FleetKind::UnitFiles => "ListUnitFiles",
        }
    }
}

/// One fan-out in flight: the parts in node (configuration) order, filled as replies arrive.
pub struct Fanout {
    pub caller: Message,
    pub kind: FleetKind,
    pub parts: Vec<(String, Option<Message>)>,
    pub error: Option<String>,
    pub outstanding: usize,
}

impl Fanout {
    /// Records one node's outcome; true when it was the last one outstanding.
    pub fn complete(&mut self, node: &str, outcome: Result<Message, String>) -> bool {
        match outcome {
            Ok(m) => {
                if let Some(p) = self.parts.iter_mut().find(|(n, _)| n == node) {
                    p.1 = Some(m);
                }
            }
            Err(text) => {
                self.error.get_or_insert(text);
            }
        }
        self.outstanding = self.outstanding.saturating_sub(1);
        self.outstanding == 0
    }
}

fn collect<T>(parts: &[(String, Option<Message>)]) -> Result<OrderedDict<Vec<T>>, String>
where
    T: for<'d> serde::Deserialize<'d> + zvariant::Type,
{
    let mut out = Vec::new();
    for (node, m) in parts {
        let Some(m) = m else {
            return Err("missing reply".into());
        };
        let v: Vec<T> = m.body().deserialize().map_err(|e| e.to_string())?;
        out.push((node.clone(), v));
    }
    Ok(OrderedDict(out))
}

impl Controller {
    pub async fn start_fanout(&mut self, kind: FleetKind, caller: Message) {
        let online: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].link.is_some())
            .collect();
        let token = self.next_token();
        let parts = online
            .iter()
            .map(|&i| (self.nodes[i].name.clone(), None))
            .collect();
        self.fanouts.insert(
            token,
            Fanout {
                caller,
                kind,
                parts,
                error: None,
                outstanding: online.len(),
            },
        );
        if online.is_empty() {
            return self.finish_fanout(token).await;
        }
        for i in online {
            let node = self.nodes[i].name.clone();
            let call = msg::call(
                AGENT_BUS_NAME,
                INTERNAL_AGENT_PATH,
                INTERNAL_AGENT_IFACE,
                kind.method(),
                &(),
            );
            self.call_agent(i, call, Pending::Fanout { token, node })
                .await;
        }
    }

    /// One node's reply (or failure) to a fan-out call.
    pub async fn fanout_part(&mut self, token: u32, node: &str, outcome: Result<Message, String>) {
        let Some(f) = self.fanouts.get_mut(&token) else {
            return;
        };
        if f.complete(node, outcome) {
            self.finish_fanout(token).await;
        }
    }

    async fn finish_fanout(&mut self, token: u32) {
        let Some(f) = self.fanouts.remove(&token) else {
            return;
        };
        self.answer_fanout(f).await;
        release_free_memory();
    }

    async fn answer_fanout(&mut self, f: Fanout) {
        let hdr = f.caller.header();
        if let Some(e) = f.error {
            let text = format!("Request to at least one node failed: {e}");
            return msg::reply_error(&self.bus, &hdr, ERR_FAILED, &text).await;
        }
        let reply = match f.kind {
            FleetKind::Units => match collect::<ListedUnit>(&f.parts) {
                Ok(d) => return msg::reply(&self.bus, &hdr, &(d,)).await,
                Err(e) => e,
            },
            FleetKind::UnitFiles => match collect::<(String, String)>(&f.parts) {
                Ok(d) => return msg::reply(&self.bus, &hdr, &(d,)).await,
                Err(e) => e,
            },
        };
        let text = format!("Request to at least one node failed: {reply}");
        msg::reply_error(&self.bus, &hdr, ERR_FAILED, &text).await
    }
}

/// A fleet reply is megabytes built and freed at once; glibc keeps such freed memory in its
/// arenas, so the controller's RSS would ratchet up with every call. Hand it back.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
