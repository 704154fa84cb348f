//! Pure formatting of bluechictl's tables, byte-compatible with upstream (including its TAB
//! alignment quirks). Nothing here touches the bus.

const TAB: usize = 8;

/// The six unit properties `status NODE UNIT...` shows; `None` = missing or empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitInfo {
    pub id: Option<String>,
    pub load_state: Option<String>,
    pub active_state: Option<String>,
    pub sub_state: Option<String>,
    pub freezer_state: Option<String>,
    pub unit_file_state: Option<String>,
}

/// Width of the name column: the longest unit name given on the command line.
pub fn name_width<S: AsRef<str>>(units: &[S]) -> usize {
    units.iter().map(|u| u.as_ref().len()).max().unwrap_or(0)
}

/// Header and dashed separator of the unit table.
pub fn unit_header(width: usize) -> String {
    let tabs = width.div_ceil(TAB);
    let mut s = String::from("UNIT");
    s.push_str(&"\t".repeat(tabs));
    s.push_str("| LOADED\t| ACTIVE\t| SUBSTATE\t| FREEZERSTATE\t| ENABLED\t|\n");
    s.push_str(&"-".repeat(TAB * tabs + 80));
    s.push('\n');
    s
}

/// The row for one unit, or `None` when it is not found (the caller reports that on stderr).
pub fn unit_row(info: &UnitInfo, width: usize) -> Option<String> {
    if info.load_state.as_deref() == Some("not-found") {
        return None;
    }
    let id = info.id.as_deref().unwrap_or("");
    let mut s = String::from(id);
    // Upstream computes this in unsigned arithmetic; an Id more than 8 longer than `width`
    // wraps around and would print TABs practically forever, so that case prints none.
    let tabs = (width + TAB).checked_sub(id.len()).map_or(0, |n| n / TAB);
    s.push_str(&"\t".repeat(tabs));
    for value in [
        &info.load_state,
        &info.active_state,
        &info.sub_state,
        &info.freezer_state,
        &info.unit_file_state,
    ] {
        match value {
            Some(v) => {
                s.push_str("| ");
                s.push_str(v);
                s.push('\t');
                if v.len() < 6 {
                    s.push('\t');
                }
            }
            None => s.push_str("| (null)\t"),
        }
    }
    s.push_str("|\n");
    Some(s)
}

/// `Unit <Id> could not be found.` as printed (to stderr) for not-found units.
pub fn unit_not_found(info: &UnitInfo) -> String {
    format!(
        "Unit {} could not be found.\n",
        info.id.as_deref().unwrap_or("(null)")
    )
}

/// C's `%-N.Ns`: left-justified, padded and truncated to N bytes.
fn col(s: &str, n: usize) -> String {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let cut = &s[..end];
    format!("{cut}{}", " ".repeat(n - cut.len()))
}

fn node_line(name: &str, state: &str, ip: &str, last_seen: &str) -> String {
    format!(
        "{}| {}| {}| {}\n",
        col(name, 30),
        col(state, 10),
        col(ip, 24),
        col(last_seen, 28)
    )
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    pub name: String,
    pub state: String,
    pub ip: String,
    pub last_seen: String,
}

/// The node table of `bluechictl status [NODE]`.
pub fn node_table(rows: &[NodeRow]) -> String {
    let mut s = node_line("NODE", "STATE", "IP", "LAST SEEN");
    s.push_str(&"=".repeat(90));
    s.push('\n');
    for r in rows {
        s.push_str(&node_line(&r.name, &r.state, &r.ip, &r.last_seen));
    }
    s
}

/// Text of the LAST SEEN column; `format` renders a non-zero µs timestamp.
pub fn last_seen(state: &str, usec: u64, format: impl Fn(u64) -> String) -> String {
    if state == "online" {
        "now".to_string()
    } else if state == "offline" && usec == 0 {
        "never".to_string()
    } else {
        format(usec)
    }
}

/// A left-justified, space-padded table with ` | ` separators and a `=` rule, as used by
/// `list-units` and `list-unit-files`. Widths cover all rows, even those `keep` drops.
pub fn padded_table(
    headers: &[&str],
    min_widths: &[usize],
    rows: &[Vec<String>],
    keep: impl Fn(&[String]) -> bool,
) -> String {
    let mut widths: Vec<usize> = min_widths.to_vec();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let parts: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        format!("{}\n", parts.join(" | "))
    };
    let mut s = line(&mut headers.iter().copied());
    let rule = widths.iter().sum::<usize>() + 3 * widths.len().saturating_sub(1);
    s.push_str(&"=".repeat(rule));
    s.push('\n');
    for row in rows.iter().filter(|r| keep(r)) {
        s.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn info(id: &str, load: &str, active: &str, sub: &str, freezer: &str, file: &str) -> UnitInfo {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        UnitInfo {
            id: opt(id),
            load_state: opt(load),
            active_state: opt(active),
            sub_state: opt(sub),
            freezer_state: opt(freezer),
            unit_file_state: opt(file),
        }
    }

    fn reference_dir() -> Option<PathBuf> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference");
        dir.is_dir().then_some(dir)
    }

    #[test]
    fn unit_table_matches_literal_upstream_bytes() {
        let mut s = unit_header(14);
        s += &unit_row(
            &info(
                "target.service",
                "loaded",
                "inactive",
                "dead",
                "running",
                "static",
            ),
            14,
        )
        .unwrap();
        assert_eq!(
            s,
            "UNIT\t\t| LOADED\t| ACTIVE\t| SUBSTATE\t| FREEZERSTATE\t| ENABLED\t|\n\
             ------------------------------------------------------------------------------------------------\n\
             target.service\t| loaded\t| inactive\t| dead\t\t| running\t| static\t|\n"
        );
    }

    #[test]
    fn null_and_short_values() {
        let row = unit_row(
            &info(
                "target.service",
                "loaded",
                "failed",
                "failed",
                "running",
                "",
            ),
            14,
        );
        assert_eq!(
            row.as_deref(),
            Some("target.service\t| loaded\t| failed\t| failed\t| running\t| (null)\t|\n")
        );
        let row = unit_row(
            &info(
                "a.service",
                "loaded",
                "active",
                "running",
                "running",
                "enabled",
            ),
            9,
        );
        assert_eq!(
            row.as_deref(),
            Some("a.service\t| loaded\t| active\t| running\t| running\t| enabled\t|\n")
        );
        let missing = unit_row(&UnitInfo::default(), 3).unwrap();
        assert_eq!(
            missing,
            "\t| (null)\t| (null)\t| (null)\t| (null)\t| (null)\t|\n"
        );
    }

    #[test]
    fn width_multiple_of_eight_header_is_one_tab_shorter_than_row() {
        let h = unit_header(16);
        assert!(h.starts_with("UNIT\t\t| LOADED"));
        assert_eq!(h.lines().nth(1).unwrap().len(), 96);
        let row = unit_row(
            &info(
                "abcdefgh.service",
                "loaded",
                "active",
                "exited",
                "running",
                "static",
            ),
            16,
        )
        .unwrap();
        assert!(row.starts_with("abcdefgh.service\t| loaded"));
        let shorter = unit_row(
            &info(
                "x.service",
                "loaded",
                "active",
                "exited",
                "running",
                "static",
            ),
            16,
        )
        .unwrap();
        // Shorter names line up with the header again.
        assert!(shorter.starts_with("x.service\t| loaded"));
        assert_eq!(
            unit_header(0),
            format!(
                "UNIT| LOADED\t| ACTIVE\t| SUBSTATE\t| FREEZERSTATE\t| ENABLED\t|\n{}\n",
                "-".repeat(80)
            )
        );
    }

    #[test]
    fn id_longer_than_argument_does_not_loop() {
        // User typed `foo`, systemd returned `foo.service` (8 longer): glued to the bar.
        let row = unit_row(
            &info(
                "foo.service",
                "loaded",
                "active",
                "running",
                "running",
                "enabled",
            ),
            3,
        )
        .unwrap();
        assert!(row.starts_with("foo.service| loaded\t"));
        // More than 8 longer wraps around upstream; here it must terminate without TABs.
        let row = unit_row(
            &info(
                "foo-bar-baz.service",
                "loaded",
                "active",
                "running",
                "running",
                "enabled",
            ),
            3,
        )
        .unwrap();
        assert!(row.starts_with("foo-bar-baz.service| loaded\t"));
    }

    #[test]
    fn not_found_units_have_no_row() {
        let i = info(
            "nope.service",
            "not-found",
            "inactive",
            "dead",
            "running",
            "",
        );
        assert_eq!(unit_row(&i, 12), None);
        assert_eq!(
            unit_not_found(&i),
            "Unit nope.service could not be found.\n"
        );
    }

    #[test]
    fn unit_tables_match_reference_files() {
        let Some(dir) = reference_dir() else { return };
        let mut checked = 0;
        for scenario in std::fs::read_dir(&dir).unwrap().flatten() {
            for entry in std::fs::read_dir(scenario.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) != Some("cmd") {
                    continue;
                }
                let cmd = std::fs::read_to_string(&path).unwrap();
                let words: Vec<&str> = cmd.split_whitespace().collect();
                if words.len() < 4 || words[1] != "status" {
                    continue;
                }
                let expected = std::fs::read_to_string(path.with_extension("stdout")).unwrap();
                let units = &words[3..];
                let width = name_width(units);
                let mut got = unit_header(width);
                for line in expected.lines().skip(2) {
                    let cells: Vec<&str> = line
                        .split('|')
                        .map(|c| c.trim_matches(|ch| ch == '\t' || ch == ' '))
                        .collect();
                    let i = info(cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]);
                    let i = UnitInfo {
                        unit_file_state: i.unit_file_state.filter(|v| v != "(null)"),
                        ..i
                    };
                    got += &unit_row(&i, width).unwrap();
                }
                assert_eq!(got, expected, "{}", path.display());
                checked += 1;
            }
        }
        assert!(
            checked >= 10,
            "only {checked} reference unit tables checked"
        );
    }

    #[test]
    fn node_table_literal_and_reference() {
        let rows = vec![
            NodeRow {
                name: "main".into(),
                state: "online".into(),
                ip: "::ffff:10.89.1.29".into(),
                last_seen: "now".into(),
            },
            NodeRow {
                name: "worker1".into(),
                state: "online".into(),
                ip: "::ffff:10.89.1.30".into(),
                last_seen: "now".into(),
            },
            NodeRow {
                name: "worker2".into(),
                state: "online".into(),
                ip: "::ffff:10.89.1.31".into(),
                last_seen: "now".into(),
            },
        ];
        let table = node_table(&rows);
        assert!(table.starts_with(
            "NODE                          | STATE     | IP                      | LAST SEEN                   \n"
        ));
        assert!(table.contains(
            "\nmain                          | online    | ::ffff:10.89.1.29       | now                         \n"
        ));
        if let Some(dir) = reference_dir() {
            let expected = std::fs::read_to_string(
                dir.join("scenario-A-requires-stops-source/00-status-nodes.stdout"),
            )
            .unwrap();
            assert_eq!(table, expected);
        }
    }

    #[test]
    fn node_columns_truncate_and_last_seen_rules() {
        let long = "n".repeat(40);
        let t = node_table(&[NodeRow {
            name: long,
            state: "offline".into(),
            ip: String::new(),
            last_seen: "never".into(),
        }]);
        assert!(t.ends_with(&format!(
            "{}| offline   | {}| never{}\n",
            "n".repeat(30),
            " ".repeat(24),
            " ".repeat(23)
        )));
        let fmt = |u: u64| format!("T{u}");
        assert_eq!(last_seen("online", 5, fmt), "now");
        assert_eq!(last_seen("offline", 0, fmt), "never");
        assert_eq!(last_seen("offline", 7, fmt), "T7");
    }

    #[test]
    fn list_units_table() {
        let rows = vec![
            vec![
                "node-foo".into(),
                "simple.service".into(),
                "inactive".into(),
                "dead".into(),
            ],
            vec![
                "node-foo".into(),
                "dbus.socket".into(),
                "active".into(),
                "running".into(),
            ],
        ];
        let t = padded_table(
            &["NODE", "ID", "ACTIVE", "SUB"],
            &[4, 2, 6, 3],
            &rows,
            |_| true,
        );
        assert_eq!(
            t,
            "NODE     | ID             | ACTIVE   | SUB    \n\
             ==============================================\n\
             node-foo | simple.service | inactive | dead   \n\
             node-foo | dbus.socket    | active   | running\n"
        );
        let empty = padded_table(&["NODE", "ID", "ACTIVE", "SUB"], &[4, 2, 6, 3], &[], |_| {
            true
        });
        assert_eq!(
            empty,
            format!("NODE | ID | ACTIVE | SUB\n{}\n", "=".repeat(24))
        );
        // Filtered-out rows still widen the columns.
        let t = padded_table(
            &["NODE", "ID", "ACTIVE", "SUB"],
            &[4, 2, 6, 3],
            &rows,
            |r| r[1] == "dbus.socket",
        );
        assert!(t.ends_with("node-foo | dbus.socket    | active   | running\n"));
        assert_eq!(t.lines().count(), 3);
    }
}
