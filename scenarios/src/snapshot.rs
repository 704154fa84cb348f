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

/// The stored snapshot's transcript (after insta's header), if there is one.
fn stored(name: &str, scenarios_dir: &Path) -> Option<String> {
    let text =
        std::fs::read_to_string(scenarios_dir.join("snapshots").join(format!("{name}.snap")))
            .ok()?;
    let body = text.strip_prefix("---\n")?;
    let (_, transcript) = body.split_once("\n---\n")?;
    Some(transcript.to_string())
}

/// After a failed step: how the transcript so far compares with the start of the stored
/// snapshot, as a line diff (or a note that it agrees, or that there is no snapshot).
pub fn compare_partial(name: &str, partial: &str, scenarios_dir: &Path) -> String {
    let Some(full) = stored(name, scenarios_dir) else {
        return format!("no stored snapshot for {name} to compare the transcript so far with");
    };
    let lines = partial.lines().count();
    let prefix: String = full.split_inclusive('\n').take(lines).collect::<String>();
    let partial_lines = partial.trim_end_matches('\n');
    let prefix_lines = prefix.trim_end_matches('\n');
    if partial_lines == prefix_lines {
        return format!("the transcript so far ({lines} lines) matches the snapshot");
    }
    let diff = similar::TextDiff::from_lines(prefix_lines, partial_lines);
    format!(
        "the transcript so far differs from the snapshot:\n{}",
        diff.unified_diff()
            .context_radius(3)
            .header("snapshot", "this run")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_transcripts_are_compared_with_the_snapshot_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("snapshots")).unwrap();
        std::fs::write(
            dir.path().join("snapshots/p.snap"),
            "---\nsource: x\n---\n$ a\n1\n\n$ b\n2\n",
        )
        .unwrap();
        let same = compare_partial("p", "$ a\n1\n", dir.path());
        assert!(same.contains("matches the snapshot"), "{same}");
        let differs = compare_partial("p", "$ a\n3\n", dir.path());
        assert!(
            differs.contains("-1") && differs.contains("+3"),
            "{differs}"
        );
        assert!(compare_partial("q", "", dir.path()).contains("no stored snapshot"));
    }

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
