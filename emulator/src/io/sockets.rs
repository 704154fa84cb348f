//! Listening sockets of socket units: binding them, telling the loop about traffic, and
//! handing them to services as fds 3.. with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES.

use crate::unitfile::socket::{Listen, ListenAddr, SocketType};
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The bound fds of each socket unit and the watch waiting for traffic on them.
pub struct Sockets {
    fds: HashMap<String, Vec<OwnedFd>>,
    watches: HashMap<String, JoinHandle<()>>,
    tx: mpsc::UnboundedSender<String>,
}

fn describe(l: &Listen) -> String {
    let kind = match l.socket_type {
        SocketType::Stream => "ListenStream",
        SocketType::Datagram => "ListenDatagram",
    };
    match &l.addr {
        ListenAddr::Path(p) => format!("{kind}={p}"),
        ListenAddr::Inet(a) => format!("{kind}={a}"),
    }
}

fn bind_path(path: &str, socket_type: SocketType, mode: u32) -> std::io::Result<OwnedFd> {
    let p = std::path::Path::new(path);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // A socket file left by an earlier run would make bind fail (systemd unlinks it too).
    if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(p)?;
    }
    let fd: OwnedFd = match socket_type {
        SocketType::Stream => std::os::unix::net::UnixListener::bind(p)?.into(),
        SocketType::Datagram => std::os::unix::net::UnixDatagram::bind(p)?.into(),
    };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    Ok(fd)
}

fn bind(l: &Listen, mode: u32) -> std::io::Result<OwnedFd> {
    match (&l.addr, l.socket_type) {
        (ListenAddr::Path(p), t) => bind_path(p, t, mode),
        (ListenAddr::Inet(a), SocketType::Stream) => Ok(std::net::TcpListener::bind(a)?.into()),
        (ListenAddr::Inet(a), SocketType::Datagram) => Ok(std::net::UdpSocket::bind(a)?.into()),
    }
}

impl Sockets {
    pub fn new(tx: mpsc::UnboundedSender<String>) -> Self {
        Sockets {
            fds: HashMap::new(),
            watches: HashMap::new(),
            tx,
        }
    }

    /// Binds every address of `unit`; on failure nothing stays open.
    pub fn listen(&mut self, unit: &str, listen: &[Listen], mode: u32) -> Result<(), String> {
        self.close(unit, &[]);
        let mut fds = Vec::new();
        for l in listen {
            fds.push(bind(l, mode).map_err(|e| format!("{}: {e}", describe(l)))?);
        }
        self.fds.insert(unit.to_string(), fds);
        Ok(())
    }

    /// Reports `unit` once on the channel when one of its fds is readable (a pending
    /// connection or datagram); the service, not us, accepts or reads it.
    pub fn watch(&mut self, unit: &str) {
        if let Some(old) = self.watches.remove(unit) {
            old.abort();
        }
        let Some(fds) = self.fds.get(unit) else {
            return;
        };
        let mut watched = Vec::new();
        for fd in fds {
            // A fresh registration reports readiness that is already there (edge-triggered).
            // SAFETY: the AsyncFd owns the duplicate, an open OwnedFd that nothing else closes.
            let registered = fd.try_clone().and_then(|d| unsafe {
                AsyncFd::register_with_interest(d, Interest::READABLE).map_err(Into::into)
            });
            match registered {
                Ok(a) => watched.push(a),
                Err(e) => tracing::warn!("{unit}: cannot watch listening socket: {e}"),
            }
        }
        if watched.is_empty() {
            return;
        }
        let (tx, name) = (self.tx.clone(), unit.to_string());
        let task = tokio::spawn(async move {
            let waits = watched.iter().map(|a| Box::pin(a.readable()));
            let _ = futures_util::future::select_all(waits).await;
            let _ = tx.send(name);
        });
        self.watches.insert(unit.to_string(), task);
    }

    pub fn close(&mut self, unit: &str, remove: &[String]) {
        if let Some(w) = self.watches.remove(unit) {
            w.abort();
        }
        self.fds.remove(unit);
        for p in remove {
            if let Err(e) = std::fs::remove_file(p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("{unit}: cannot remove {p}: {e}");
                }
            }
        }
    }

    /// The fds of `units`, each named after its unit (LISTEN_FDNAMES), in order.
    pub fn fds_of(&self, units: &[String]) -> Vec<(RawFd, String)> {
        units
            .iter()
            .flat_map(|u| {
                self.fds
                    .get(u)
                    .into_iter()
                    .flatten()
                    .map(move |fd| (fd.as_raw_fd(), u.clone()))
            })
            .collect()
    }
}

/// `prog` as execve needs it: names without `/` are looked up in PATH, as execvp would.
fn resolve(prog: &str, path: Option<&OsStr>) -> std::io::Result<CString> {
    let found = if prog.contains('/') {
        Some(std::path::PathBuf::from(prog))
    } else {
        let dirs = path.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
        std::env::split_paths(dirs)
            .map(|d| d.join(prog))
            .find(|p| p.metadata().is_ok_and(|m| m.is_file()))
    };
    let found = found.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("{prog}: not found"))
    })?;
    CString::new(found.into_os_string().into_vec())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

fn cstring(bytes: Vec<u8>) -> std::io::Result<CString> {
    CString::new(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// Everything the child needs, allocated before the fork: after it only async-signal-safe
/// calls are allowed, so LISTEN_PID is written into a reserved buffer.
struct ExecImage {
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    pid_buf: Vec<u8>,
}

const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";

/// Configures `cmd` (already given cwd, stdio and process group) to exec `argv` with the
/// listening `fds` as 3.. and sd_listen_fds()'s variables; the returned guard must live until
/// `spawn` returns.
pub fn pass_fds(
    cmd: &mut Command,
    argv: &[String],
    env: &[(String, String)],
    fds: &[(RawFd, String)],
) -> std::io::Result<Box<dyn std::any::Any>> {
    let Some(prog) = argv.first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty command line",
        ));
    };
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !env.iter().any(|(ek, _)| OsStr::new(ek) == k))
        .filter(|(k, _)| !k.as_bytes().starts_with(b"LISTEN_"))
        .collect();
    vars.extend(env.iter().map(|(k, v)| (k.into(), v.into())));
    let names: Vec<&str> = fds.iter().map(|(_, n)| n.as_str()).collect();
    vars.push(("LISTEN_FDS".into(), fds.len().to_string().into()));
    vars.push(("LISTEN_FDNAMES".into(), names.join(":").into()));
    let path_var = vars
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    let path = resolve(prog, path_var.as_deref())?;
    let cargv = argv
        .iter()
        .map(|a| cstring(a.as_bytes().to_vec()))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut cenv = Vec::new();
    for (k, v) in vars {
        let mut kv = k.into_vec();
        kv.push(b'=');
        kv.extend(v.into_vec());
        cenv.push(cstring(kv)?);
    }
    // "LISTEN_PID=" + up to 20 digits + NUL, filled in by the child.
    let mut pid_buf = LISTEN_PID_PREFIX.to_vec();
    pid_buf.resize(LISTEN_PID_PREFIX.len() + 21, 0);
    let mut img = ExecImage {
        argv_ptrs: cargv
            .iter()
            .map(|c| c.as_ptr())
            .chain([std::ptr::null()])
            .collect(),
        envp_ptrs: cenv.iter().map(|c| c.as_ptr()).collect(),
        path,
        _argv: cargv,
        _envp: cenv,
        pid_buf,
    };
    img.envp_ptrs.push(img.pid_buf.as_ptr().cast());
    img.envp_ptrs.push(std::ptr::null());
    let img = Box::new(img);
    // Addresses, not references: the closure must be 'static, and the child's copy of the
    // parent's memory is what it writes to.
    let (path_p, argv_p, envp_p) = (
        img.path.as_ptr() as usize,
        img.argv_ptrs.as_ptr() as usize,
        img.envp_ptrs.as_ptr() as usize,
    );
    let pid_p = img.pid_buf.as_ptr() as usize;
    let raw: Vec<RawFd> = fds.iter().map(|(fd, _)| *fd).collect();
    let n = raw.len() as RawFd;
    // SAFETY: the closure runs in the forked child and only calls async-signal-safe functions
    // (getpid, fcntl, dup2, execve) on memory allocated before the fork, which `img` keeps
    // alive in the parent until `spawn` returns.
    unsafe {
        cmd.pre_exec(move || {
            let mut pid = libc::getpid() as u64;
            let mut digits = [0u8; 20];
            let mut len = 0;
            loop {
                digits[len] = b'0' + (pid % 10) as u8;
                len += 1;
                pid /= 10;
                if pid == 0 {
                    break;
                }
            }
            let out = (pid_p as *mut u8).add(LISTEN_PID_PREFIX.len());
            for i in 0..len {
                *out.add(i) = digits[len - 1 - i];
            }
            *out.add(len) = 0;
            // Move the fds out of the way of 3.. first, then into place without CLOEXEC.
            let mut tmp = [0 as RawFd; 64];
            for (i, fd) in raw.iter().enumerate().take(tmp.len()) {
                let t = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3 + n);
                if t < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                tmp[i] = t;
            }
            for (i, t) in tmp.iter().enumerate().take(raw.len().min(64)) {
                if libc::dup2(*t, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::execve(
                path_p as *const libc::c_char,
                argv_p as *const *const libc::c_char,
                envp_p as *const *const libc::c_char,
            );
            Err(std::io::Error::last_os_error())
        });
    }
    Ok(img)
}
