//! Start-up errors of the `bluechi-agent` binary caused by its configuration: each must end
//! the process with exit 1 and a message naming file, line and key (or the option), and a file
//! with bytes that are not UTF-8 where nothing reads them must load (as upstream's inih does).

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
            "bluechi-agent-conf-{}-{tag}.conf",
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

/// Runs the agent until it exits (polling, with a deadline): exit code and stderr.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let err = std::env::temp_dir().join(format!(
        "bluechi-agent-stderr-{}-{}",
        std::process::id(),
        args.join("_").replace('/', "_")
    ));
    let err_file = std::fs::File::create(&err).expect("stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bluechi-agent"))
        .args(args)
        // No bus: should the configuration pass, the agent must not find a systemd either.
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env_remove("BC_LOG_LEVEL")
        .env_remove("BC_LOG_TARGET")
        .env_remove("BC_LOG_IS_QUIET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .expect("bluechi-agent");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&err).unwrap_or_default();
            let _ = std::fs::remove_file(&err);
            panic!("bluechi-agent {args:?} still running after {DEADLINE:?}; stderr:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&err).unwrap_or_default();
    let _ = std::fs::remove_file(&err);
    (status.code(), text)
}

fn assert_fails_with(args: &[&str], want: &str) {
    let (code, stderr) = run(args);
    assert_eq!(code, Some(1), "{args:?}: stderr:\n{stderr}");
    assert!(
        stderr.contains(want),
        "{args:?}: want {want:?} in stderr:\n{stderr}"
    );
}

#[test]
fn an_unusable_controller_address_exits_1_instead_of_retrying_forever() {
    // The Latin-1 comment must not stop the agent: the error is about the address, line 4.
    let f = ConfFile::new(
        "addr",
        b"# Agent f\xfcr Knoten 1\n[bluechi-agent]\nNodeName=w1\nControllerAddress=tcpp:host=ctl,port=842\n",
    );
    assert_fails_with(
        &["-c", &f.path()],
        &format!(
            "{}:4: invalid value 'tcpp:host=ctl,port=842' for key ControllerAddress in section \
             [bluechi-agent]: unknown transport 'tcpp'",
            f.path()
        ),
    );
    let f = ConfFile::new(
        "noport",
        b"[bluechi-agent]\nNodeName=w1\nControllerAddress=tcp:host=ctl\n",
    );
    assert_fails_with(&["-c", &f.path()], "missing port=");
}

#[test]
fn an_unusable_address_option_exits_1() {
    let f = ConfFile::new("opt", b"[bluechi-agent]\nNodeName=w1\n");
    assert_fails_with(
        &["-c", &f.path(), "-a", "unix:sock=/x"],
        "--address: invalid value 'unix:sock=/x' for key ControllerAddress in section \
         [bluechi-agent]: missing path=",
    );
}

#[test]
fn controller_port_zero_exits_1() {
    let f = ConfFile::new("port0", b"[bluechi-agent]\nNodeName=w1\nControllerPort=0\n");
    assert_fails_with(
        &["-c", &f.path()],
        &format!(
            "{}:3: invalid value '0' for key ControllerPort in section [bluechi-agent]: \
             out of range 1..65535",
            f.path()
        ),
    );
    assert_fails_with(
        &["-c", &f.path(), "-p", "0"],
        "--port: invalid value '0' for key ControllerPort",
    );
}

#[test]
fn a_used_value_that_is_not_utf8_exits_1_naming_file_line_and_key() {
    let f = ConfFile::new("name", b"[bluechi-agent]\n; \xff\nNodeName=w\xf6rker\n");
    assert_fails_with(
        &["-c", &f.path()],
        &format!(
            "{}:3: invalid value 'w\\xf6rker' for key NodeName in section [bluechi-agent]: \
             not valid UTF-8",
            f.path()
        ),
    );
}

#[test]
fn a_syntax_error_says_what_is_wrong() {
    let f = ConfFile::new("syntax", b"[bluechi-agent]\nNodeName w1\n");
    let want = format!(
        "Error parsing configuration file '{0}' on line 2\n\
         {0}:2: expected '=' (or ':') after key 'NodeName w1', or a '[section]' header\n",
        f.path()
    );
    let (code, stderr) = run(&["-c", &f.path()]);
    assert_eq!((code, stderr.as_str()), (Some(1), want.as_str()));
}
