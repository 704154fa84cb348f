//! Comparing a transcript with its stored snapshot (insta, one file per scenario).

use std::path::Path;

/// Compares `transcript` with `<dir>/snapshots/<name>.snap`. insta prints the diff and, unless
/// updating, leaves a `.snap.new` for review; we turn its panic into an error so teardown and the
/// exit code stay ours.
pub fn check(name: &str, transcript: &str, scenarios_dir: &Path) -> Result<(), String> {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(scenarios_dir.join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        settings.bind(|| {
            insta::assert_snapshot!(name, transcript);
        })
    }));
    result.map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "snapshot assertion failed".into());
        format!("snapshot mismatch for {name}: {msg}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node table ends lines with spaces and unit tables use tabs: both must survive the
    /// round trip through a stored snapshot, or a changed byte would go unnoticed.
    #[test]
    fn tabs_and_trailing_spaces_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let text = "$ x\nA\t\t| B\t|\nnow                 \n\n$ y\nz\n";
        // insta caches its settings per workspace root, so each mode gets its own root.
        std::env::set_var("INSTA_WORKSPACE_ROOT", dir.path().join("ws-update"));
        std::env::set_var("INSTA_UPDATE", "always");
        check("roundtrip", text, dir.path()).unwrap();
        let stored = std::fs::read_to_string(dir.path().join("snapshots/roundtrip.snap")).unwrap();
        assert!(stored.ends_with(text), "stored snapshot: {stored:?}");
        std::env::set_var("INSTA_WORKSPACE_ROOT", dir.path().join("ws-check"));
        std::env::set_var("INSTA_UPDATE", "no");
        check("roundtrip", text, dir.path()).unwrap();
        let changed = text.replace("now                 ", "now                ");
        assert!(check("roundtrip", &changed, dir.path()).is_err());
        let changed_tab = text.replace("A\t\t", "A\t");
        assert!(check("roundtrip", &changed_tab, dir.path()).is_err());
    }
}
