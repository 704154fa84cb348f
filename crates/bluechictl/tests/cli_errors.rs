//! Byte-exact stdout, stderr and exit code of every `bluechictl` path that ends before a bus
//! call: option parsing, missing and unknown commands, help, and an unreachable bus.

use std::os::unix::process::CommandExt;
use std::process::Command;

struct Case {
    args: &'static [&'static str],
    code: i32,
    stderr: &'static str,
    /// `true`: stdout is the general usage; `false`: stdout is empty.
    usage: bool,
}

/// Runs the binary as `bluechictl` (glibc-style messages quote argv[0]) with a system bus
/// address that cannot be connected to.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bluechictl"))
        .arg0("bluechictl")
        .args(args)
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            "unix:path=/nonexistent/bluechictl-test.sock",
        )
        .env_remove("POSIXLY_CORRECT")
        .output()
        .expect("run bluechictl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The general usage, checked once here against its known first and last lines so that the
/// table below can refer to it.
fn general_usage() -> String {
    let (code, out, err) = run(&["-h"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.starts_with(
        "bluechictl is a convenience CLI tool to interact with bluechi\n\nUsage: \n  bluechictl [command]\n\nAvailable commands:\n"
    ));
    assert!(out.ends_with("  - set-default: set a default target of connected node\n    usage: set-default [nodename] [target]\n"));
    assert_eq!(out.matches("\n  - ").count(), 21, "{out}");
    out
}

const CASES: &[Case] = &[
    Case {
        args: &[],
        code: 1,
        stderr: "No command given\n",
        usage: true,
    },
    Case {
        args: &["--help"],
        code: 0,
        stderr: "",
        usage: true,
    },
    Case {
        args: &["-w", "-h"],
        code: 0,
        stderr: "",
        usage: true,
    },
    Case {
        args: &["-f"],
        code: 1,
        stderr: "No command given\n",
        usage: true,
    },
    Case {
        args: &["frobnicate"],
        code: 1,
        stderr: "Method frobnicate not found\n",
        usage: true,
    },
    Case {
        args: &["frobnicate", "--help"],
        code: 1,
        stderr: "Method frobnicate not found\n",
        usage: true,
    },
    Case {
        args: &["-v"],
        code: 1,
        stderr: "bluechictl: invalid option -- 'v'\n",
        usage: true,
    },
    Case {
        args: &["status", "-wx"],
        code: 1,
        stderr: "bluechictl: invalid option -- 'x'\n",
        usage: true,
    },
    Case {
        args: &["--version"],
        code: 1,
        stderr: "bluechictl: unrecognized option '--version'\n",
        usage: true,
    },
    Case {
        args: &["list-units", "--filter"],
        code: 1,
        stderr: "bluechictl: option '--filter' requires an argument\n",
        usage: true,
    },
    Case {
        args: &["kill", "n", "u", "--signal"],
        code: 1,
        stderr: "bluechictl: option '--signal' requires an argument\n",
        usage: true,
    },
    Case {
        args: &["--watch=1", "status"],
        code: 1,
        stderr: "bluechictl: option '--watch' doesn't allow an argument\n",
        usage: true,
    },
    // `--no` is an unambiguous prefix of `--no-reload`, so parsing succeeds and the bus is the
    // first thing that fails.
    Case {
        args: &["--no", "enable"],
        code: 1,
        stderr: "Failed to connect to api bus: No such file or directory\n",
        usage: false,
    },
    Case {
        args: &["help"],
        code: 1,
        stderr: "Failed to connect to api bus: No such file or directory\n",
        usage: false,
    },
    Case {
        args: &["version"],
        code: 1,
        stderr: "Failed to connect to api bus: No such file or directory\n",
        usage: false,
    },
    Case {
        args: &["start", "only-one-arg"],
        code: 1,
        stderr: "Failed to connect to api bus: No such file or directory\n",
        usage: false,
    },
];

#[test]
fn exact_outputs_without_a_bus() {
    let usage = general_usage();
    for case in CASES {
        let (code, out, err) = run(case.args);
        assert_eq!(code, case.code, "exit code of {:?}", case.args);
        assert_eq!(err, case.stderr, "stderr of {:?}", case.args);
        let want = if case.usage { usage.as_str() } else { "" };
        assert_eq!(out, want, "stdout of {:?}", case.args);
    }
}
