//! Contract methods the emulator deliberately does not implement, with the reason. They answer
//! `NotSupported` naming the reason instead of UnknownMethod, so callers can tell the two apart.

/// (interface suffix after `org.freedesktop.systemd1.`, member, reason).
pub const UNSUPPORTED: &[(&str, &str, &str)] = &[
    ("Manager", "BindMountUnit", "no mount namespaces"),
    ("Manager", "MountImageUnit", "no mount namespaces"),
    ("Unit", "BindMount", "no mount namespaces"),
    ("Unit", "MountImage", "no mount namespaces"),
    ("Service", "BindMount", "no mount namespaces"),
    ("Service", "MountImage", "no mount namespaces"),
    ("Manager", "AttachProcessesToUnit", "no cgroups"),
    ("Service", "AttachProcesses", "no cgroups"),
    ("Unit", "AttachProcesses", "no cgroups"),
    ("Manager", "AbandonScope", "no scope units"),
    (
        "Manager",
        "CleanUnit",
        "no RuntimeDirectory=/StateDirectory= to clean",
    ),
    (
        "Unit",
        "Clean",
        "no RuntimeDirectory=/StateDirectory= to clean",
    ),
    ("Manager", "DumpByFileDescriptor", "no fd passing; use Dump"),
    (
        "Manager",
        "DumpUnitsMatchingPatternsByFileDescriptor",
        "no fd passing; use DumpUnitsMatchingPatterns",
    ),
    ("Manager", "Reboot", "would act on the host"),
    ("Manager", "PowerOff", "would act on the host"),
    ("Manager", "Halt", "would act on the host"),
    ("Manager", "KExec", "would act on the host"),
    ("Manager", "SwitchRoot", "would act on the host"),
    ("Manager", "LinkUnitFiles", "not in the UnitSource contract"),
    ("Manager", "PresetUnitFiles", "no preset files"),
    ("Manager", "PresetUnitFilesWithMode", "no preset files"),
    ("Manager", "PresetAllUnitFiles", "no preset files"),
    ("Manager", "MaskUnitFiles", "not in the UnitSource contract"),
    (
        "Manager",
        "UnmaskUnitFiles",
        "not in the UnitSource contract",
    ),
    (
        "Manager",
        "RevertUnitFiles",
        "not in the UnitSource contract",
    ),
    (
        "Manager",
        "AddDependencyUnitFiles",
        "not in the UnitSource contract",
    ),
    (
        "Manager",
        "GetUnitFileLinks",
        "not in the UnitSource contract",
    ),
];

/// The reason `member` of `iface` is unsupported, if it is.
pub fn reason(iface: &str, member: &str) -> Option<&'static str> {
    let short = iface.strip_prefix("org.freedesktop.systemd1.")?;
    UNSUPPORTED
        .iter()
        .find(|(i, m, _)| *i == short && *m == member)
        .map(|(_, _, r)| *r)
}

pub fn error(iface: &str, member: &str) -> Option<crate::engine::EngineError> {
    reason(iface, member).map(|r| {
        crate::engine::EngineError::new(
            "org.freedesktop.DBus.Error.NotSupported",
            format!("{member} is not supported by systemd-emulator: {r}."),
        )
    })
}
