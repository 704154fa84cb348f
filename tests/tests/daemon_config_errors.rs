//! Start-up errors of the daemons caused by their configuration: each must end the process
//! with exit 1 and a message naming file, line and key (or the option), and bytes that are not
//! UTF-8 where nothing reads them must be read past (as upstream's inih does).
//! Run `cargo build --workspace --bins` first.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use bluechi_testkit::poll;

/// Generous: two cores are shared with other builds.
const DEADLINE: Duration = Duration::from_secs(20);
const AGENT: &str = "bluechi-agent";
const CONTROLLER: &str = "bluechi-controller";

/// A config file with exactly `bytes`, removed on drop.
fn conf(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".conf")
        .tempfile()
        .expect("config file");
    f.write_all(bytes).expect("write config");
    f
}

fn path(f: &tempfile::NamedTempFile) -> String {
    f.path().display().to_string()
}

/// Runs `program` until it exits (polling, with a deadline): exit code and stderr.
fn run(program: &str, args: &[&str]) -> (Option<i32>, String) {
    let bin = scenario_runner::paths::bin_dir().expect("binary directory");
    let err = tempfile::tempfile().expect("stderr file");
    let mut child = Command::new(bin.join(program))
        .args(args)
        // No bus: should the configuration pass, the daemon cannot start either.
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env_remove("BC_LOG_LEVEL")
        .env_remove("BC_LOG_TARGET")
        .env_remove("BC_LOG_IS_QUIET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err.try_clone().expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let exited = poll::until_blocking(format!("{program} {args:?} to exit"), DEADLINE, || {
        child.try_wait().expect("wait")
    });
    let status = exited.unwrap_or_else(|e| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{e}")
    });
    let mut err = err;
    let mut text = String::new();
    std::io::Seek::rewind(&mut err).expect("rewind stderr");
    std::io::Read::read_to_string(&mut err, &mut text).expect("read stderr");
    (status.code(), text)
}

fn assert_fails_with(program: &str, args: &[&str], want: &str) {
    let (code, stderr) = run(program, args);
    assert_eq!(code, Some(1), "{program} {args:?}: stderr:\n{stderr}");
    assert!(
        stderr.contains(want),
        "{program} {args:?}: want {want:?} in stderr:\n{stderr}"
    );
}

#[test]
fn an_unusable_controller_address_exits_1_instead_of_retrying_forever() {
    // The Latin-1 comment must not stop the agent: the error is about the address, line 4.
    let f = conf(
        b"# Agent f\xfcr Knoten 1\n[bluechi-agent]\nNodeName=w1\nControllerAddress=tcpp:host=ctl,port=842\n",
    );
    assert_fails_with(
        AGENT,
        &["-c", &path(&f)],
        &format!(
            "{}:4: invalid value 'tcpp:host=ctl,port=842' for key ControllerAddress in section \
             [bluechi-agent]: unknown transport 'tcpp'",
            path(&f)
        ),
    );
    let f = conf(b"[bluechi-agent]\nNodeName=w1\nControllerAddress=tcp:host=ctl\n");
    assert_fails_with(AGENT, &["-c", &path(&f)], "missing port=");
}

#[test]
fn an_unusable_address_option_exits_1() {
    let f = conf(b"[bluechi-agent]\nNodeName=w1\n");
    assert_fails_with(
        AGENT,
        &["-c", &path(&f), "-a", "unix:sock=/x"],
        "--address: invalid value 'unix:sock=/x' for key ControllerAddress in section \
         [bluechi-agent]: missing path=",
    );
}

#[test]
fn controller_port_zero_exits_1() {
    let f = conf(b"[bluechi-agent]\nNodeName=w1\nControllerPort=0\n");
    assert_fails_with(
        AGENT,
        &["-c", &path(&f)],
        &format!(
            "{}:3: invalid value '0' for key ControllerPort in section [bluechi-agent]: \
             out of range 1..65535",
            path(&f)
        ),
    );
    assert_fails_with(
        AGENT,
        &["-c", &path(&f), "-p", "0"],
        "--port: invalid value '0' for key ControllerPort",
    );
    let f = conf(b"[bluechi-controller]\n");
    assert_fails_with(
        CONTROLLER,
        &["-c", &path(&f), "-p", "0"],
        "--port: invalid value '0' for key ControllerPort",
    );
}

#[test]
fn bytes_that_are_not_utf8_in_comments_are_read_past() {
    // The file loads: the error is about the port on line 5, after the Latin-1 comments.
    let f = conf(
        b"# Controller f\xfcr die Flotte\n[bluechi-controller]\n; \xff\xfe\nAllowedNodeNames=a ; \xe9\nControllerPort=0\n",
    );
    assert_fails_with(
        CONTROLLER,
        &["-c", &path(&f)],
        &format!(
            "{}:5: invalid value '0' for key ControllerPort in section [bluechi-controller]: \
             out of range 1..65535",
            path(&f)
        ),
    );
}

#[test]
fn a_used_value_that_is_not_utf8_exits_1_naming_file_line_and_key() {
    let f = conf(b"[bluechi-agent]\n; \xff\nNodeName=w\xf6rker\n");
    assert_fails_with(
        AGENT,
        &["-c", &path(&f)],
        &format!(
            "{}:3: invalid value 'w\\xf6rker' for key NodeName in section [bluechi-agent]: \
             not valid UTF-8",
            path(&f)
        ),
    );
    let f = conf(b"[bluechi-controller]\nAllowedNodeNames=a,\n  w\xf6rker\n");
    assert_fails_with(
        CONTROLLER,
        &["-c", &path(&f)],
        &format!(
            "{}:3: invalid value 'a,w\\xf6rker' for key AllowedNodeNames in section \
             [bluechi-controller]: not valid UTF-8",
            path(&f)
        ),
    );
}

#[test]
fn a_syntax_error_says_what_is_wrong() {
    let f = conf(b"[bluechi-agent]\nNodeName w1\n");
    let want = format!(
        "Error parsing configuration file '{0}' on line 2\n\
         {0}:2: expected '=' (or ':') after key 'NodeName w1', or a '[section]' header\n",
        path(&f)
    );
    let (code, stderr) = run(AGENT, &["-c", &path(&f)]);
    assert_eq!((code, stderr.as_str()), (Some(1), want.as_str()));
    let f = conf(b"[bluechi-controller\nControllerPort=1\n");
    let want = format!(
        "Error parsing configuration file '{0}' on line 1\n\
         {0}:1: section header not closed with ']'\n",
        path(&f)
    );
    let (code, stderr) = run(CONTROLLER, &["-c", &path(&f)]);
    assert_eq!((code, stderr.as_str()), (Some(1), want.as_str()));
}
