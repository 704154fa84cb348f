//! The load order of spec §6.2 against a temporary tree: defaults file, `/etc` file, drop-ins
//! in alphabetical order, `BC_LOG_*` environment, `-c` file.

use std::fs;
use std::path::Path;

use super::controller::SECTION;
use super::{load, ConfigError, ControllerConfig, StandardPaths, Store};

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

/// A scratch root removed on drop (bluechi-core has no `tempfile` dev-dependency).
struct Tree {
    paths: StandardPaths,
    root: std::path::PathBuf,
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn tree() -> Tree {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let root = std::env::temp_dir().join(format!("bluechi-config-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).expect("create scratch root");
    let paths = StandardPaths {
        default_file: root.join("usr/share/bluechi/config/controller.conf"),
        etc_file: root.join("etc/bluechi/controller.conf"),
        dropin_dir: root.join("etc/bluechi/controller.conf.d"),
    };
    Tree { paths, root }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn origin(store: &Store, key: &str) -> (String, String) {
    let e = store.get(SECTION, key).expect("key present");
    (e.value.clone(), e.origin.to_string())
}

#[test]
fn every_layer_overrides_the_previous_one_key_by_key() {
    let t = tree();
    let p = &t.paths;
    write(
        &p.default_file,
        "[bluechi-controller]\nControllerPort=1\nLogLevel=DEBUG\nUseTCP=false\nLogTarget=stderr\n",
    );
    write(
        &p.etc_file,
        "[bluechi-controller]\nControllerPort=2\nUseUDS=no\n",
    );
    let d = &p.dropin_dir;
    write(
        &d.join("b.conf"),
        "[bluechi-controller]\nControllerPort=4\n",
    );
    write(
        &d.join("a.conf"),
        "[bluechi-controller]\nControllerPort=3\nNodeHeartbeatThreshold=9\n",
    );
    write(
        &d.join("c.conf.bak"),
        "[bluechi-controller]\nControllerPort=98\n",
    );
    write(&d.join("README"), "not an ini file at all\n");
    let env = |var: &str| match var {
        "BC_LOG_LEVEL" => Some("WARN".to_string()),
        "BC_LOG_TARGET" => Some(String::new()),
        "BC_LOG_IS_QUIET" => Some("yes".to_string()),
        _ => None,
    };

    let s = load(p, SECTION, None, env).unwrap();
    let b_conf = d.join("b.conf").display().to_string();
    assert_eq!(
        origin(&s, "ControllerPort"),
        ("4".into(), format!("{b_conf}:2"))
    );
    assert_eq!(origin(&s, "NodeHeartbeatThreshold").0, "9");
    assert_eq!(origin(&s, "UseUDS").0, "no");
    assert_eq!(origin(&s, "UseTCP").0, "false");
    // Environment beats every file; an empty variable is ignored.
    assert_eq!(
        origin(&s, "LogLevel"),
        ("WARN".into(), "BC_LOG_LEVEL".into())
    );
    assert_eq!(origin(&s, "LogTarget").0, "stderr");
    assert_eq!(origin(&s, "LogIsQuiet").0, "yes");
    let c = ControllerConfig::from_store(&s).unwrap();
    assert_eq!((c.port, c.use_tcp, c.use_uds), (4, false, false));
    assert_eq!((c.log.level.as_str(), c.log.is_quiet), ("WARN", true));

    // `-c` beats the environment.
    let cli = t.root.join("cli.conf");
    write(
        &cli,
        "[bluechi-controller]\nLogLevel=ERROR\nControllerPort=5\n",
    );
    let s = load(p, SECTION, Some(&cli), env).unwrap();
    assert_eq!(origin(&s, "LogLevel").0, "ERROR");
    assert_eq!(origin(&s, "ControllerPort").0, "5");
    assert_eq!(origin(&s, "NodeHeartbeatThreshold").0, "9");
}

#[test]
fn missing_optional_layers_are_fine_but_a_missing_c_file_is_fatal() {
    let t = tree();
    let s = load(&t.paths, SECTION, None, no_env).unwrap();
    let c = ControllerConfig::from_store(&s).unwrap();
    assert_eq!(c.port, 842);

    let missing = t.root.join("nope.conf");
    let e = load(&t.paths, SECTION, Some(&missing), no_env).unwrap_err();
    assert!(matches!(e, ConfigError::Io(..)), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "Error loading configuration file '{}'",
            missing.display()
        )),
        "{e}"
    );
}

#[test]
fn a_syntax_error_in_a_drop_in_is_reported_with_upstreams_text() {
    let t = tree();
    let bad = t.paths.dropin_dir.join("10-bad.conf");
    write(&bad, "[bluechi-controller]\nthis line has no separator\n");
    let e = load(&t.paths, SECTION, None, no_env).unwrap_err();
    let bad = bad.display();
    assert_eq!(
        e.to_string(),
        format!(
            "Error parsing configuration file '{bad}' on line 2\n\
             {bad}:2: expected '=' (or ':') after key 'this line has no separator', \
             or a '[section]' header"
        )
    );
}

fn write_bytes(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    fs::write(path, bytes).expect("write");
}

#[test]
fn bytes_that_are_not_utf8_where_nothing_reads_them_are_accepted() {
    let t = tree();
    // Latin-1 in comments, an inline comment, a blank-looking line, an ignored section and an
    // unknown key: upstream (inih) reads all of this, and so do we.
    write_bytes(
        &t.paths.etc_file,
        b"# Konfiguration f\xfcr den Controller\n; \xff\xfe\n\n\
          [bluechi-controller]\nControllerPort=2020 ; Stra\xdfe\n\
          AllowedNodeNames=a,b\n\
          [other \xe9]\nX=\xe9\n\
          [node \xe9]\nAllowDependenciesOn=a\n",
    );
    let s = load(&t.paths, SECTION, None, no_env).unwrap();
    let c = ControllerConfig::from_store(&s).unwrap();
    assert_eq!(c.port, 2020);
    assert_eq!(c.node_names, vec!["a", "b"]);
}

#[test]
fn bytes_that_are_not_utf8_in_a_used_value_name_file_line_and_key() {
    let t = tree();
    write_bytes(
        &t.paths.etc_file,
        b"# ok\n[bluechi-controller]\nAllowedNodeNames=a,\n  caf\xe9\n",
    );
    let s = load(&t.paths, SECTION, None, no_env).unwrap();
    let e = ControllerConfig::from_store(&s).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:4: invalid value 'a,caf\\xe9' for key AllowedNodeNames in section \
             [bluechi-controller]: not valid UTF-8 (D-Bus strings cannot carry it)",
            t.paths.etc_file.display()
        )
    );

    // A later file that sets the key again replaces the bad value: no error.
    write(
        &t.paths.dropin_dir.join("fix.conf"),
        "[bluechi-controller]\nAllowedNodeNames=a\n",
    );
    let s = load(&t.paths, SECTION, None, no_env).unwrap();
    assert_eq!(
        ControllerConfig::from_store(&s).unwrap().node_names,
        vec!["a"]
    );
}

#[test]
fn a_used_section_name_that_is_not_utf8_is_an_error_with_its_line() {
    let t = tree();
    write_bytes(
        &t.paths.etc_file,
        b"[bluechi-controller]\n\n[node w\xf6rker]\nAllowed=yes\n",
    );
    let s = load(&t.paths, SECTION, None, no_env).unwrap();
    let e = ControllerConfig::from_store(&s).unwrap_err();
    assert!(matches!(e, ConfigError::SectionNotUtf8 { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3: section name [node w\\xf6rker] is not valid UTF-8 (D-Bus strings cannot carry it)",
            t.paths.etc_file.display()
        )
    );
}

#[test]
fn an_invalid_integer_names_file_line_and_key() {
    let t = tree();
    write(
        &t.paths.etc_file,
        "# comment\n[bluechi-controller]\nControllerPort=842O\n",
    );
    let s = load(&t.paths, SECTION, None, no_env).unwrap();
    let e = ControllerConfig::from_store(&s).unwrap_err().to_string();
    let want = format!(
        "{}:3: invalid value '842O' for key ControllerPort in section [bluechi-controller]",
        t.paths.etc_file.display()
    );
    assert!(e.starts_with(&want), "{e}");
}
