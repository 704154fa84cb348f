//! The names systemd gives to exit statuses in its messages and in `systemctl status`
//! ("status=1/FAILURE", "status=203/EXEC"): the LSB codes and systemd's own 200-range codes
//! for failures between fork and exec.

/// systemd's name for exit status `code`, if it has one.
pub fn name(code: i32) -> Option<&'static str> {
    Some(match code {
        0 => "SUCCESS",
        1 => "FAILURE",
        2 => "INVALIDARGUMENT",
        3 => "NOTIMPLEMENTED",
        4 => "NOPERMISSION",
        5 => "NOTINSTALLED",
        6 => "NOTCONFIGURED",
        7 => "NOTRUNNING",
        200 => "CHDIR",
        201 => "NICE",
        202 => "FDS",
        203 => "EXEC",
        204 => "MEMORY",
        205 => "LIMITS",
        206 => "OOM_ADJUST",
        207 => "SIGNAL_MASK",
        208 => "STDIN",
        209 => "STDOUT",
        210 => "CHROOT",
        211 => "IOPRIO",
        212 => "TIMERSLACK",
        213 => "SECUREBITS",
        214 => "SETSCHEDULER",
        215 => "CPUAFFINITY",
        216 => "GROUP",
        217 => "USER",
        218 => "CAPABILITIES",
        219 => "CGROUP",
        220 => "SETSID",
        221 => "CONFIRM",
        222 => "STDERR",
        224 => "PAM",
        225 => "NETWORK",
        226 => "NAMESPACE",
        227 => "NO_NEW_PRIVILEGES",
        228 => "SECCOMP",
        229 => "SELINUX_CONTEXT",
        230 => "PERSONALITY",
        231 => "APPARMOR_PROFILE",
        232 => "ADDRESS_FAMILIES",
        233 => "RUNTIME_DIRECTORY",
        235 => "CHOWN",
        236 => "SMACK_PROCESS_LABEL",
        237 => "KEYRING",
        238 => "STATE_DIRECTORY",
        239 => "CACHE_DIRECTORY",
        240 => "LOGS_DIRECTORY",
        241 => "CONFIGURATION_DIRECTORY",
        242 => "NUMA_POLICY",
        243 => "CREDENTIALS",
        245 => "BPF",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn lsb_and_systemd_codes() {
        assert_eq!(super::name(0), Some("SUCCESS"));
        assert_eq!(super::name(203), Some("EXEC"));
        assert_eq!(super::name(42), None);
        assert_eq!(super::name(-1), None);
    }
}
