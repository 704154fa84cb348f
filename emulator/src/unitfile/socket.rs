//! The `[Socket]` section of a `.socket` unit: what to listen on and which service it starts.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Stream (`ListenStream=`) or datagram (`ListenDatagram=`) socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketType {
    Stream,
    Datagram,
}

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A file system `AF_UNIX` path.
    Path(String),
    Inet(SocketAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub socket_type: SocketType,
    pub addr: ListenAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketDef {
    pub listen: Vec<Listen>,
    /// Service= (default: the socket's name with `.service`).
    pub service: String,
    /// SocketMode= for file system sockets (default 0666, as systemd).
    pub socket_mode: u32,
    pub remove_on_stop: bool,
    /// Accept=yes: one service instance per connection (not supported here).
    pub accept: bool,
}

impl SocketDef {
    pub fn new(unit_name: &str) -> Self {
        let stem = unit_name.strip_suffix(".socket").unwrap_or(unit_name);
        SocketDef {
            listen: Vec::new(),
            service: format!("{stem}.service"),
            socket_mode: 0o666,
            remove_on_stop: false,
            accept: false,
        }
    }

    /// Adds a listen address; an empty value resets the list, like systemd.
    pub fn add_listen(&mut self, socket_type: SocketType, value: &str) -> Result<(), String> {
        if value.is_empty() {
            self.listen.clear();
            return Ok(());
        }
        let addr = parse_listen_addr(value)?;
        self.listen.push(Listen { socket_type, addr });
        Ok(())
    }
}

/// `/path`, `PORT` (all addresses, dual-stack), `ADDR:PORT` or `[ADDR6]:PORT`.
pub fn parse_listen_addr(value: &str) -> Result<ListenAddr, String> {
    if value.starts_with('/') {
        if value.len() >= 108 {
            return Err(format!("socket path too long: {value}"));
        }
        return Ok(ListenAddr::Path(value.to_string()));
    }
    if value.starts_with('@') {
        return Err("abstract namespace sockets are not supported".to_string());
    }
    if let Ok(port) = value.parse::<u16>() {
        if port == 0 {
            return Err("port 0 is not valid".to_string());
        }
        return Ok(ListenAddr::Inet(SocketAddr::new(
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            port,
        )));
    }
    match value.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(ListenAddr::Inet(a)),
        _ => Err(format!("not a path, port or address:port: {value}")),
    }
}

/// SocketMode=: an octal access mode.
pub fn parse_mode(value: &str) -> Option<u32> {
    u32::from_str_radix(value, 8).ok().filter(|m| *m <= 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_addr("/run/x.sock"),
            Ok(ListenAddr::Path("/run/x.sock".into()))
        );
        assert_eq!(
            parse_listen_addr("8080"),
            Ok(ListenAddr::Inet("[::]:8080".parse().unwrap()))
        );
        assert_eq!(
            parse_listen_addr("127.0.0.1:99"),
            Ok(ListenAddr::Inet("127.0.0.1:99".parse().unwrap()))
        );
        assert_eq!(
            parse_listen_addr("[::1]:99"),
            Ok(ListenAddr::Inet("[::1]:99".parse().unwrap()))
        );
        assert!(parse_listen_addr("0").is_err());
        assert!(parse_listen_addr("nonsense").is_err());
        assert!(parse_listen_addr("@abstract").is_err());
        assert!(parse_listen_addr(&format!("/{}", "x".repeat(120))).is_err());
    }

    #[test]
    fn modes_and_defaults() {
        assert_eq!(parse_mode("0600"), Some(0o600));
        assert_eq!(parse_mode("9"), None);
        let mut d = SocketDef::new("a.socket");
        assert_eq!(d.service, "a.service");
        d.add_listen(SocketType::Stream, "/run/a").unwrap();
        d.add_listen(SocketType::Datagram, "1234").unwrap();
        assert_eq!(d.listen.len(), 2);
        d.add_listen(SocketType::Stream, "").unwrap();
        assert!(d.listen.is_empty());
    }
}
