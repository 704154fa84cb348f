//! Start-up errors of the `bluechi-controller` binary caused by its configuration: exit 1 and
//! a message naming file, line and key; bytes that are not UTF-8 where nothing reads them are
//! accepted, as upstream's inih does.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: two cores are shared with other builds.
const DEADLINE: Duration = Duration::from_secs(20);

/// A config file removed on drop (this crate has no `tempfile` dev-dependency).
struct ConfFile(PathBuf);

impl ConfFile {
    fn new(tag: &str, bytes: &[u8]) -> ConfFile {
        let path = std::env::temp_dir().join(format!(
            "bluechi-controller-conf-{}-{tag}.conf",
            std::process::id()
        ));
        std::fs::write(&path, bytes).expect("write config");
        ConfFile(path)
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for ConfFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the controller until it exits (polling, with a deadline): exit code and stderr.
fn run(tag: &str, args: &[&str]) -> (Option<i32>, String) {
    let err = std::env::temp_dir().join(format!(
        "bluechi-controller-stderr-{}-{tag}",
        std::process::id()
    ));
    let err_file = std::fs::File::create(&err).expect("stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bluechi-controller"))
        .args(args)
        // No bus: should the configuration pass, the controller cannot start either.
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env_remove("BC_LOG_LEVEL")
        .env_remove("BC_LOG_TARGET")
        .env_remove("BC_LOG_IS_QUIET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .expect("bluechi-controller");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bluechi-controller {args:?} still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&err).unwrap_or_default();
    let _ = std::fs::remove_file(&err);
    (status.code(), text)
}

fn assert_fails_with(tag: &str, args: &[&str], want: &str) {
    let (code, stderr) = run(tag, args);
    assert_eq!(code, Some(1), "{args:?}: stderr:\n{stderr}");
    assert!(
        stderr.contains(want),
        "{args:?}: want {want:?} in stderr:\n{stderr}"
    );
}

#[test]
fn bytes_that_are_not_utf8_in_comments_are_read_past() {
    // The file loads: the error is about the port on line 5, after the Latin-1 comments.
    let f = ConfFile::new(
        "comment",
        b"# Controller f\xfcr die Flotte\n[bluechi-controller]\n; \xff\xfe\nAllowedNodeNames=a ; \xe9\nControllerPort=0\n",
    );
    assert_fails_with(
        "comment",
        &["-c", &f.path()],
        &format!(
            "{}:5: invalid value '0' for key ControllerPort in section [bluechi-controller]: \
             out of range 1..65535",
            f.path()
        ),
    );
}

#[test]
fn controller_port_zero_from_the_command_line_exits_1() {
    let f = ConfFile::new("cli", b"[bluechi-controller]\n");
    assert_fails_with(
        "cli",
        &["-c", &f.path(), "-p", "0"],
        "--port: invalid value '0' for key ControllerPort",
    );
}

#[test]
fn a_used_value_that_is_not_utf8_exits_1_naming_file_line_and_key() {
    let f = ConfFile::new(
        "value",
        b"[bluechi-controller]\nAllowedNodeNames=a,\n  w\xf6rker\n",
    );
    assert_fails_with(
        "value",
        &["-c", &f.path()],
        &format!(
            "{}:3: invalid value 'a,w\\xf6rker' for key AllowedNodeNames in section \
             [bluechi-controller]: not valid UTF-8",
            f.path()
        ),
    );
}

#[test]
fn a_syntax_error_says_what_is_wrong() {
    let f = ConfFile::new("syntax", b"[bluechi-controller\nControllerPort=1\n");
    let want = format!(
        "Error parsing configuration file '{0}' on line 1\n\
         {0}:1: section header not closed with ']'\n",
        f.path()
    );
    let (code, stderr) = run("syntax", &["-c", &f.path()]);
    assert_eq!((code, stderr.as_str()), (Some(1), want.as_str()));
}
