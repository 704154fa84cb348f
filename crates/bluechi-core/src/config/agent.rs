//! `[bluechi-agent]` keys (spec §6.4).

use super::ini::Origin;
use super::{ConfigError, LogConfig, Store, TcpOptions, ValueError};
use crate::link::PeerAddress;

pub const SECTION: &str = "bluechi-agent";

/// The keys the agent reads from its own section (spec §6.4).
pub const KEYS: &[&str] = &[
    "NodeName",
    "ControllerHost",
    "ControllerPort",
    "ControllerAddress",
    "HeartbeatInterval",
    "ControllerHeartbeatThreshold",
    "ConnectionRetryCountUntilQuiet",
    "LogLevel",
    "LogTarget",
    "LogIsQuiet",
    "IPReceiveErrors",
    "TCPKeepAliveTime",
    "TCPKeepAliveInterval",
    "TCPKeepAliveCount",
];

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    pub controller_host: String,
    pub controller_port: u16,
    pub controller_address: Option<String>,
    pub heartbeat_interval_ms: i64,
    pub controller_heartbeat_threshold_ms: i64,
    pub retry_count_until_quiet: i64,
    pub log: LogConfig,
    pub tcp: TcpOptions,
    /// Keys that were ignored, as `file:line: ...` texts for the daemon to log as warnings.
    pub warnings: Vec<String>,
}

impl AgentConfig {
    pub fn from_store(store: &Store) -> Result<Self, ConfigError> {
        let node_name = match store.string(SECTION, "NodeName")? {
            Some(n) => n,
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty())
                .ok_or_else(|| ConfigError::Missing("No agent name specified".into()))?,
        };
        let cfg = AgentConfig {
            node_name,
            controller_host: store
                .string(SECTION, "ControllerHost")?
                .unwrap_or_else(|| "127.0.0.1".to_string()),
            // Port 0 cannot be connected to.
            controller_port: store.int(SECTION, "ControllerPort", 842, 1, 65535)? as u16,
            controller_address: store.string(SECTION, "ControllerAddress")?,
            heartbeat_interval_ms: store.int(
                SECTION,
                "HeartbeatInterval",
                2000,
                i64::MIN,
                i64::MAX,
            )?,
            controller_heartbeat_threshold_ms: store.int(
                SECTION,
                "ControllerHeartbeatThreshold",
                0,
                i64::MIN,
                i64::MAX,
            )?,
            retry_count_until_quiet: store.int(
                SECTION,
                "ConnectionRetryCountUntilQuiet",
                10,
                i64::MIN,
                i64::MAX,
            )?,
            log: LogConfig::from_store(store, SECTION)?,
            tcp: TcpOptions::from_store(store, SECTION)?,
            warnings: store.unknown_keys(SECTION, KEYS),
        };
        cfg.check_address(store)?;
        Ok(cfg)
    }

    /// An address that can never be connected to is a start-up error (upstream exits 1), not
    /// a reason to retry forever. A host name that does not resolve yet is fine: the network
    /// may come later.
    fn check_address(&self, store: &Store) -> Result<(), ConfigError> {
        let address = self.controller_address();
        let Err(reason) = check_controller_address(&address) else {
            return Ok(());
        };
        // The assembled address can only be wrong through ControllerAddress or ControllerHost
        // (the port is checked as an integer); the default host is always right.
        let key = if self.controller_address.is_some() {
            "ControllerAddress"
        } else {
            "ControllerHost"
        };
        let (origin, value) = match store.get(SECTION, key) {
            Some(e) => (e.origin.clone(), e.value.clone()),
            None => (
                Origin {
                    file: "built-in default".to_string(),
                    line: 0,
                },
                address,
            ),
        };
        Err(ConfigError::Value(Box::new(ValueError {
            origin,
            section: SECTION.to_string(),
            key: key.to_string(),
            value,
            reason,
        })))
    }

    /// The sd-bus address of the controller: `ControllerAddress`, else `tcp:host=..,port=..`.
    pub fn controller_address(&self) -> String {
        match &self.controller_address {
            Some(a) => a.clone(),
            None => format!(
                "tcp:host={},port={}",
                self.controller_host, self.controller_port
            ),
        }
    }
}

/// Checks an sd-bus address the agent would connect to, with [`PeerAddress::parse`] as the
/// judge; the error says what is wrong with it.
pub fn check_controller_address(address: &str) -> Result<(), String> {
    match PeerAddress::parse(address) {
        Ok(PeerAddress::Tcp { host, .. }) if host.is_empty() => Err("empty host=".into()),
        Ok(PeerAddress::Tcp { port: 0, .. }) => Err("port 0 cannot be connected to".into()),
        Ok(PeerAddress::Unix { path }) if path.is_empty() => Err("empty path=".into()),
        Ok(_) => Ok(()),
        Err(_) => Err(address_problem(address)),
    }
}

/// What [`PeerAddress::parse`] refused, in words.
fn address_problem(address: &str) -> String {
    const FORMS: &str = "expected tcp:host=HOST,port=PORT or unix:path=PATH";
    let Some((transport, rest)) = address.split_once(':') else {
        return format!("no transport ({FORMS})");
    };
    if transport != "tcp" && transport != "unix" {
        return format!("unknown transport '{transport}' ({FORMS})");
    }
    let mut keys = Vec::new();
    for kv in rest.split(',') {
        let Some((k, v)) = kv.split_once('=') else {
            return format!("'{kv}' is not key=value ({FORMS})");
        };
        if k == "port" && v.parse::<u16>().is_err() {
            return format!("bad port '{v}' (1..65535)");
        }
        keys.push(k);
    }
    let needed: &[&str] = if transport == "tcp" {
        &["host", "port"]
    } else {
        &["path"]
    };
    match needed.iter().find(|k| !keys.contains(k)) {
        Some(k) => format!("missing {k}= ({FORMS})"),
        None => FORMS.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_from_host_and_port() {
        let mut s = Store::default();
        s.merge_text(
            "f",
            "[bluechi-agent]\nNodeName=w1\nControllerHost=::1\nControllerPort=9\n",
        )
        .unwrap();
        let a = AgentConfig::from_store(&s).unwrap();
        assert_eq!(a.node_name, "w1");
        assert_eq!(a.controller_address(), "tcp:host=::1,port=9");
        assert_eq!(a.heartbeat_interval_ms, 2000);
        assert!(a.warnings.is_empty());
        s.merge_text(
            "/etc/bluechi/agent.conf.d/x.conf",
            "[bluechi-agent]\n\nNodename=x\n",
        )
        .unwrap();
        assert_eq!(
            AgentConfig::from_store(&s).unwrap().warnings,
            vec!["/etc/bluechi/agent.conf.d/x.conf:3: unknown key 'Nodename' in section [bluechi-agent] ignored"]
        );
        s.set(SECTION, "ControllerAddress", "unix:path=/x", "cli");
        assert_eq!(
            AgentConfig::from_store(&s).unwrap().controller_address(),
            "unix:path=/x"
        );
    }

    fn load_error(text: &str) -> String {
        let mut s = Store::default();
        s.merge_text("/etc/bluechi/agent.conf", text).unwrap();
        match AgentConfig::from_store(&s) {
            Ok(_) => panic!("accepted: {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unusable_controller_addresses_are_refused_naming_file_line_key_and_value() {
        let head = "[bluechi-agent]\nNodeName=w1\n";
        for (addr, reason) in [
            ("tcpp:host=a,port=1", "unknown transport 'tcpp'"),
            ("127.0.0.1:842", "unknown transport '127.0.0.1'"),
            ("/run/bluechi/bluechi.sock", "no transport"),
            ("tcp:port=842", "missing host="),
            ("tcp:host=ctl", "missing port="),
            ("tcp:host=ctl,port=84x", "bad port '84x' (1..65535)"),
            ("tcp:host=ctl,port=70000", "bad port '70000' (1..65535)"),
            ("tcp:host=ctl,port=0", "port 0 cannot be connected to"),
            ("tcp:host=,port=842", "empty host="),
            ("unix:path=", "empty path="),
            ("unix:socket=/x", "missing path="),
            ("tcp:host", "'host' is not key=value"),
        ] {
            let e = load_error(&format!("{head}ControllerAddress={addr}\n"));
            let want = format!(
                "/etc/bluechi/agent.conf:3: invalid value '{addr}' for key ControllerAddress \
                 in section [bluechi-agent]: {reason}"
            );
            assert!(e.starts_with(&want), "{addr}: {e}");
        }
        // A host that breaks the assembled address is blamed on ControllerHost.
        let e = load_error(&format!("{head}ControllerHost=a,b\n"));
        assert!(
            e.starts_with(
                "/etc/bluechi/agent.conf:3: invalid value 'a,b' for key ControllerHost \
                 in section [bluechi-agent]: 'b' is not key=value"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_host_name_that_may_resolve_later_is_accepted() {
        let mut s = Store::default();
        s.merge_text(
            "f",
            "[bluechi-agent]\nNodeName=w1\nControllerHost=controller.invalid\n",
        )
        .unwrap();
        assert!(AgentConfig::from_store(&s).is_ok());
        s.set(
            SECTION,
            "ControllerAddress",
            "tcp:host=ctl.invalid,port=9",
            "cli",
        );
        assert!(AgentConfig::from_store(&s).is_ok());
    }

    #[test]
    fn controller_port_zero_is_refused() {
        let e = load_error("[bluechi-agent]\nNodeName=w1\n\nControllerPort=0\n");
        assert!(
            e.starts_with(
                "/etc/bluechi/agent.conf:4: invalid value '0' for key ControllerPort \
                 in section [bluechi-agent]: out of range 1..65535"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_used_value_that_is_not_utf8_is_refused_with_its_key() {
        let mut s = Store::default();
        s.merge_text(
            "/etc/bluechi/agent.conf",
            b"# \xff\n[bluechi-agent]\nNodeName=w\xf6rker\n",
        )
        .unwrap();
        let e = AgentConfig::from_store(&s).unwrap_err().to_string();
        assert_eq!(
            e,
            "/etc/bluechi/agent.conf:3: invalid value 'w\\xf6rker' for key NodeName in section \
             [bluechi-agent]: not valid UTF-8 (D-Bus strings cannot carry it)"
        );
    }
}
