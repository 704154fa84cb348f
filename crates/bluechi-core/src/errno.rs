//! sd-bus turns a D-Bus error name into an errno, and upstream prints `strerror` of it in some
//! messages. This mirrors libsystemd's mapping tables (generic D-Bus names plus the systemd ones).

const FDO: &[(&str, i32)] = &[
    ("Failed", libc::EACCES),
    ("NoMemory", libc::ENOMEM),
    ("ServiceUnknown", libc::EHOSTUNREACH),
    ("NameHasNoOwner", libc::ENXIO),
    ("NoReply", libc::ETIMEDOUT),
    ("IOError", libc::EIO),
    ("BadAddress", libc::EADDRNOTAVAIL),
    ("NotSupported", libc::EOPNOTSUPP),
    ("LimitsExceeded", libc::ENOBUFS),
    ("AccessDenied", libc::EACCES),
    ("AuthFailed", libc::EACCES),
    ("InteractiveAuthorizationRequired", libc::EACCES),
    ("NoServer", libc::EHOSTDOWN),
    ("Timeout", libc::ETIMEDOUT),
    ("NoNetwork", libc::ENONET),
    ("AddressInUse", libc::EADDRINUSE),
    ("Disconnected", libc::ECONNRESET),
    ("InvalidArgs", libc::EINVAL),
    ("FileNotFound", libc::ENOENT),
    ("FileExists", libc::EEXIST),
    ("UnknownMethod", libc::EBADR),
    ("UnknownObject", libc::EBADR),
    ("UnknownInterface", libc::EBADR),
    ("UnknownProperty", libc::EBADR),
    ("PropertyReadOnly", libc::EROFS),
    ("UnixProcessIdUnknown", libc::ESRCH),
    ("InvalidSignature", libc::EINVAL),
    ("InconsistentMessage", libc::EBADMSG),
    ("TimedOut", libc::ETIMEDOUT),
    ("MatchRuleInvalid", libc::EINVAL),
    ("InvalidFileContent", libc::EINVAL),
    ("MatchRuleNotFound", libc::ENOENT),
    ("SELinuxSecurityContextUnknown", libc::ESRCH),
    ("ObjectPathInUse", libc::EBUSY),
];

const SYSTEMD: &[(&str, i32)] = &[
    ("NoSuchUnit", libc::ENOENT),
    ("NoUnitForPID", libc::ESRCH),
    ("NoUnitForInvocationID", libc::ESRCH),
    ("UnitExists", libc::EEXIST),
    ("LoadFailed", libc::EIO),
    ("BadUnitSetting", libc::ENOEXEC),
    ("JobFailed", libc::EREMOTEIO),
    ("NoSuchJob", libc::ENOENT),
    ("NotSubscribed", libc::EINVAL),
    ("AlreadySubscribed", libc::EINVAL),
    ("OnlyByDependency", libc::EINVAL),
    ("TransactionJobsConflicting", libc::EDEADLK),
    ("TransactionOrderIsCyclic", libc::EDEADLK),
    ("TransactionIsDestructive", libc::EDEADLK),
    ("UnitMasked", libc::ERFKILL),
    ("UnitGenerated", libc::EADDRNOTAVAIL),
    ("UnitLinked", libc::ELOOP),
    ("JobTypeNotApplicable", libc::EBADR),
    ("NoIsolation", libc::EPERM),
    ("ShuttingDown", libc::ECANCELED),
    ("ScopeNotRunning", libc::EHOSTDOWN),
    ("NoSuchDynamicUser", libc::ESRCH),
    ("NotReferenced", libc::EUNATCH),
    ("DiskFull", libc::ENOSPC),
    ("FrozenByParent", libc::EDEADLK),
];

/// The errno sd-bus would derive from an error name (EIO when unknown).
pub fn errno_of(name: &str) -> i32 {
    let lookup = |table: &[(&str, i32)], short: &str| {
        table.iter().find(|(n, _)| *n == short).map(|(_, e)| *e)
    };
    if let Some(short) = name.strip_prefix("org.freedesktop.DBus.Error.") {
        return lookup(FDO, short).unwrap_or(libc::EIO);
    }
    if let Some(short) = name.strip_prefix("org.freedesktop.systemd1.") {
        return lookup(SYSTEMD, short).unwrap_or(libc::EIO);
    }
    libc::EIO
}

/// `strerror(errno)` from the C library, so texts match upstream exactly.
pub fn strerror(errno: i32) -> String {
    // SAFETY: strerror returns a pointer to a NUL-terminated static or thread-local string.
    unsafe {
        let p = libc::strerror(errno);
        if p.is_null() {
            return format!("Unknown error {errno}");
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// strerror of the errno an error name maps to.
pub fn strerror_of(name: &str) -> String {
    strerror(errno_of(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_like_sd_bus() {
        assert_eq!(
            strerror_of("org.freedesktop.DBus.Error.UnknownObject"),
            "Invalid request descriptor"
        );
        assert_eq!(
            strerror_of("org.eclipse.bluechi.Offline"),
            "Input/output error"
        );
        assert_eq!(
            strerror_of("org.freedesktop.DBus.Error.Failed"),
            "Permission denied"
        );
        assert_eq!(
            strerror_of("org.freedesktop.DBus.Error.ServiceUnknown"),
            "No route to host"
        );
        assert_eq!(
            strerror_of("org.freedesktop.systemd1.NoSuchUnit"),
            "No such file or directory"
        );
    }
}
