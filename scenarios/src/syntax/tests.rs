use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const HEADER: &str = "nodes: main worker1 worker2\ncontroller: main\n";

fn parse(text: &str) -> Result<Scenario, ParseError> {
    parse_str("t", Path::new("t.scenario"), text)
}

/// Parses `HEADER` + `body` and returns the error as `line:col: expected ..., found ...`.
fn error(body: &str) -> String {
    let e = parse(&format!("{HEADER}{body}")).expect_err("expected a parse error");
    let full = e.to_string();
    full.strip_prefix("t.scenario:")
        .unwrap_or(&full)
        .to_string()
}

fn steps(body: &str) -> Vec<StepKind> {
    parse(&format!("{HEADER}{body}"))
        .unwrap()
        .steps
        .into_iter()
        .map(|s| s.kind)
        .collect()
}

const EXAMPLE: &str = r#"# Stopping the target service when no longer needed
nodes: main worker1 worker2
controller: main

controller.conf:
    [bluechi-controller]
    AllowedNodeNames=main,worker1,worker2

    [node worker1]
    AllowDependenciesOn=main,worker1,worker2

unit worker1 source.service:
    [Unit]
    Wants=bluechi-proxy@worker2_target.service

    [Service]
    ExecStart=/bin/true

agent.conf worker2:
    [bluechi-agent]
    HeartbeatInterval=1000

$ bluechictl status
$ bluechictl start worker1 source.service
wait worker1 source.service active/exited
wait worker2 target.service active/exited within 10s
record worker2 target.service MainPID as pid
wait worker2 target.service MainPID != $pid within 12s
hold main source.service active/exited for 2s
redact "result: (done|canceled)" "result: [done or canceled]"
"#;

#[test]
fn parses_the_documented_example() {
    let s = parse(EXAMPLE).unwrap();
    assert_eq!(s.name, "t");
    assert_eq!(s.nodes, vec!["main", "worker1", "worker2"]);
    assert_eq!(s.controller, "main");
    assert_eq!(
        s.controller_conf,
        "[bluechi-controller]\nAllowedNodeNames=main,worker1,worker2\n\n[node worker1]\nAllowDependenciesOn=main,worker1,worker2\n"
    );
    assert_eq!(s.units.len(), 1);
    assert_eq!(s.units[0].node, "worker1");
    assert_eq!(s.units[0].name, "source.service");
    assert_eq!(
        s.units[0].text,
        "[Unit]\nWants=bluechi-proxy@worker2_target.service\n\n[Service]\nExecStart=/bin/true\n"
    );
    assert_eq!(
        s.agent_confs,
        vec![(
            "worker2".to_string(),
            "[bluechi-agent]\nHeartbeatInterval=1000\n".to_string()
        )]
    );
    assert_eq!(s.steps.len(), 7);
    assert_eq!(s.steps[0].pos.line, 23);
    assert_eq!(s.redactions.len(), 1);
    assert_eq!(s.redactions[0].regex.as_str(), "result: (done|canceled)");
    assert_eq!(s.redactions[0].replacement, "result: [done or canceled]");
}

#[test]
fn commands_split_with_quotes() {
    assert_eq!(
        steps("$ bluechictl start  worker1 \"a b.service\"\n"),
        vec![StepKind::Command {
            node: None,
            text: "$ bluechictl start  worker1 \"a b.service\"".into(),
            argv: vec![
                "bluechictl".into(),
                "start".into(),
                "worker1".into(),
                "a b.service".into()
            ],
        }]
    );
}

#[test]
fn wait_conditions_and_deadlines() {
    assert_eq!(
        steps(
            "wait main a.service active/exited\nwait main a.service Result=success within 500ms\n"
        ),
        vec![
            StepKind::Wait {
                node: "main".into(),
                unit: "a.service".into(),
                cond: Condition::State {
                    active: "active".into(),
                    sub: "exited".into()
                },
                within: Duration::from_secs(10),
            },
            StepKind::Wait {
                node: "main".into(),
                unit: "a.service".into(),
                cond: Condition::Equals {
                    property: "Result".into(),
                    value: Value::Literal("success".into())
                },
                within: Duration::from_millis(500),
            },
        ]
    );
}

#[test]
fn spaced_operators() {
    let s = steps("record main t.service MainPID as pid\nwait main t.service MainPID != $pid within 12s\nwait main t.service Result = \"$x\"\n");
    assert_eq!(
        s[1],
        StepKind::Wait {
            node: "main".into(),
            unit: "t.service".into(),
            cond: Condition::NotEquals {
                property: "MainPID".into(),
                value: Value::Var("pid".into())
            },
            within: Duration::from_secs(12),
        }
    );
    assert!(
        matches!(&s[2], StepKind::Wait { cond: Condition::Equals { value: Value::Literal(v), .. }, .. } if v == "$x")
    );
}

#[test]
fn record_then_compare_with_variable() {
    let s = steps(
        "record worker2 t.service MainPID as pid\nhold worker2 t.service MainPID!=$pid for 1.5s\n",
    );
    assert_eq!(
        s[0],
        StepKind::Record {
            node: "worker2".into(),
            unit: "t.service".into(),
            property: "MainPID".into(),
            var: "pid".into()
        }
    );
    assert_eq!(
        s[1],
        StepKind::Hold {
            node: "worker2".into(),
            unit: "t.service".into(),
            cond: Condition::NotEquals {
                property: "MainPID".into(),
                value: Value::Var("pid".into())
            },
            duration: Duration::from_millis(1500),
        }
    );
}

#[test]
fn comments_and_blank_lines_are_ignored_and_blocks_keep_inner_blanks() {
    let s = parse("# c\n\nnodes: a\n# c2\ncontroller: a\nunit a x.service:\n    A\n\n      B\n\n\n$ bluechictl status\n").unwrap();
    assert_eq!(s.units[0].text, "A\n\n  B\n");
    assert_eq!(s.steps.len(), 1);
}

#[test]
fn durations() {
    assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("0.5s"), Some(Duration::from_millis(500)));
    for bad in [
        "",
        "s",
        "10",
        "1.s",
        ".5s",
        "1e3s",
        "-1s",
        "10m",
        "99999999s",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn missing_header_lines() {
    let e = parse("controller: main\n").unwrap_err().to_string();
    assert_eq!(
        e,
        "t.scenario:1:13: expected a `nodes:` line before any use of a node, found \"main\""
    );
    let e = parse("nodes: a\n").unwrap_err().to_string();
    assert_eq!(
        e,
        "t.scenario:2:1: expected a `controller:` line, found end of file"
    );
    let e = parse("").unwrap_err().to_string();
    assert_eq!(
        e,
        "t.scenario:1:1: expected a `nodes:` line, found end of file"
    );
}

#[test]
fn header_errors() {
    assert_eq!(
        error("nodes: x\n"),
        "3:1: expected a single `nodes:` line, found \"nodes:\""
    );
    assert_eq!(
        error("controller: main\n"),
        "3:1: expected a single `controller:` line, found \"controller:\""
    );
    assert_eq!(
        parse("nodes: a a\n").unwrap_err().to_string(),
        "t.scenario:1:10: expected a node name not listed before, found \"a\""
    );
    assert_eq!(
        parse("nodes: a b/c\n").unwrap_err().to_string(),
        "t.scenario:1:10: expected a node name (letters, digits, '-', '.'), found \"b/c\""
    );
    assert_eq!(
        parse("nodes:\n").unwrap_err().to_string(),
        "t.scenario:1:7: expected at least one node name, found end of line"
    );
    assert_eq!(
        parse("nodes: a\ncontroller: b\n").unwrap_err().to_string(),
        "t.scenario:2:13: expected a node from `nodes:` (a), found \"b\""
    );
    assert_eq!(
        parse("nodes: a\ncontroller: a extra\n")
            .unwrap_err()
            .to_string(),
        "t.scenario:2:15: expected end of line, found \"extra\""
    );
}

#[test]
fn statement_errors() {
    assert_eq!(
        error("frobnicate x\n"),
        "3:1: expected a statement (nodes:, controller:, offline:, controller.conf:, agent.conf, unit, $, on, capture, end, await, expect, wait, hold, record, redact, start, stop, kill, restart, pause, resume, disconnect, reconnect, write, remove, mask), found \"frobnicate\""
    );
    assert_eq!(
        error("  wait main a.service active/exited\n"),
        "3:1: expected a statement starting at column 1, found indentation outside a block"
    );
}

#[test]
fn block_errors() {
    assert_eq!(
        error("controller.conf:\n$ bluechictl status\n"),
        "4:1: expected a block indented by 4 spaces, found \"$ bluechictl status\""
    );
    assert_eq!(
        error("controller.conf:\n"),
        "4:1: expected a block indented by 4 spaces, found end of file"
    );
    assert_eq!(
        error("controller.conf: x\n    a\n"),
        "3:18: expected end of line, found \"x\""
    );
    assert_eq!(
        error("controller.conf:\n    a\ncontroller.conf:\n    b\n"),
        "5:1: expected a single `controller.conf:` block, found \"controller.conf:\""
    );
    assert_eq!(
        error("unit main a.service\n    x\n"),
        "3:11: expected ':' at the end of the line, opening a block, found \"a.service\""
    );
    assert_eq!(
        error("unit main noext:\n    x\n"),
        "3:11: expected a unit name like source.service or a drop-in like source.service.d/10-x.conf, found \"noext:\""
    );
    assert_eq!(
        error("unit nowhere a.service:\n    x\n"),
        "3:6: expected a node from `nodes:` (main, worker1, worker2), found \"nowhere\""
    );
    assert_eq!(
        error("unit main a.service:\n    x\nunit main a.service:\n    y\n"),
        "5:11: expected a unit not defined earlier on this node, found \"a.service:\""
    );
    assert_eq!(
        error("agent.conf main\n    x\n"),
        "3:12: expected ':' at the end of the line, opening a block, found \"main\""
    );
    assert_eq!(
        error("agent.conf main:\n    x\nagent.conf main:\n    y\n"),
        "5:12: expected a node without an earlier `agent.conf` block, found \"main:\""
    );
    // A block line indented by less than 4 spaces ends the block and is then out of place.
    assert_eq!(
        error("unit main a.service:\n    x\n  y\n"),
        "5:1: expected a statement starting at column 1, found indentation outside a block"
    );
}

#[test]
fn command_errors() {
    assert_eq!(
        error("$bluechictl status\n"),
        "3:2: expected a space after '$', found \"b\""
    );
    assert_eq!(
        error("$\n"),
        "3:2: expected a space after '$', found end of line"
    );
    assert_eq!(
        error("$   \n"),
        "3:2: expected a command after '$', found end of line"
    );
    assert_eq!(
        error("$ ls /\n"),
        "3:3: expected bluechictl, bluechi-is-online, systemctl, busctl, dbus-send or ss, found \"ls\""
    );
    assert_eq!(
        error("$ bluechictl \"status\n"),
        "3:14: expected a closing double quote, found end of line"
    );
}

#[test]
fn commands_on_any_node() {
    assert_eq!(
        steps("on worker1 $ systemctl is-active \"t.service\"\n"),
        vec![StepKind::Command {
            node: Some("worker1".into()),
            text: "on worker1 $ systemctl is-active \"t.service\"".into(),
            argv: vec!["systemctl".into(), "is-active".into(), "t.service".into()],
        }]
    );
    assert_eq!(
        error("on nowhere $ systemctl\n"),
        "3:4: expected a node from `nodes:` (main, worker1, worker2), found \"nowhere\""
    );
    assert_eq!(
        error("on worker1 systemctl\n"),
        "3:12: expected `$` and a command, found \"systemctl\""
    );
    assert_eq!(
        error("on worker1 $ rm -rf /\n"),
        "3:14: expected bluechictl, bluechi-is-online, systemctl, busctl, dbus-send or ss, found \"rm\""
    );
}

#[test]
fn faults() {
    use crate::backend::{Daemon, DaemonAction, Fault, NodeAction};
    assert_eq!(
        steps("kill agent worker1\nstart controller\ndisconnect worker2\nresume main\n"),
        vec![
            StepKind::Fault(Fault::Daemon {
                node: "worker1".into(),
                daemon: Daemon::Agent,
                action: DaemonAction::Kill,
            }),
            StepKind::Fault(Fault::Daemon {
                node: "main".into(),
                daemon: Daemon::Controller,
                action: DaemonAction::Start,
            }),
            StepKind::Fault(Fault::Node {
                node: "worker2".into(),
                action: NodeAction::Disconnect,
            }),
            StepKind::Fault(Fault::Node {
                node: "main".into(),
                action: NodeAction::Resume,
            }),
        ]
    );
    assert_eq!(
        error("stop worker1\n"),
        "3:6: expected `agent NODE` or `controller`, found \"worker1\""
    );
    assert_eq!(
        error("restart controller now\n"),
        "3:20: expected end of line, found \"now\""
    );
    assert_eq!(
        error("pause\n"),
        "3:6: expected a node name, found end of line"
    );
}

#[test]
fn unit_file_changes_and_drop_ins() {
    use crate::backend::UnitFileChange;
    let s = parse(&format!(
        "{HEADER}unit worker1 t.service.d/10-x.conf:\n    [Unit]\n    Description=x\n\
         write worker1 t.service:\n    [Service]\n    ExecStart=/bin/true\n\
         remove worker1 t.service.d/10-x.conf\nmask main t.service\n"
    ))
    .unwrap();
    assert_eq!(s.units[0].name, "t.service.d/10-x.conf");
    let kinds: Vec<StepKind> = s.steps.into_iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        vec![
            StepKind::UnitFile {
                node: "worker1".into(),
                change: UnitFileChange::Write {
                    name: "t.service".into(),
                    text: "[Service]\nExecStart=/bin/true\n".into()
                }
            },
            StepKind::UnitFile {
                node: "worker1".into(),
                change: UnitFileChange::Remove {
                    name: "t.service.d/10-x.conf".into()
                }
            },
            StepKind::UnitFile {
                node: "main".into(),
                change: UnitFileChange::Mask {
                    name: "t.service".into()
                }
            },
        ]
    );
    assert_eq!(
        error("remove worker1 t.service.d/x.txt\n"),
        "3:16: expected a unit name like source.service or a drop-in like source.service.d/10-x.conf, found \"t.service.d/x.txt\""
    );
    assert_eq!(
        error("mask worker1 t.service.d/x.conf\n"),
        "3:14: expected a unit name (drop-ins cannot be masked), found \"t.service.d/x.conf\""
    );
    assert_eq!(
        error("write worker1 ../t.service:\n    x\n"),
        "3:15: expected a unit name like source.service or a drop-in like source.service.d/10-x.conf, found \"../t.service:\""
    );
}

#[test]
fn captures_start_and_end() {
    assert_eq!(
        steps("capture mon on worker1 ready \"Subscribing\" $ bluechictl monitor\nend mon\n"),
        vec![
            StepKind::Capture {
                name: "mon".into(),
                node: Some("worker1".into()),
                ready: Some("Subscribing".into()),
                text: "on worker1 $ bluechictl monitor".into(),
                argv: vec!["bluechictl".into(), "monitor".into()],
            },
            StepKind::EndCapture {
                name: "mon".into(),
                within: None
            },
        ]
    );
    assert_eq!(
        steps("capture job $ bluechictl start worker1 a.service\nawait job within 5s\n")[1],
        StepKind::EndCapture {
            name: "job".into(),
            within: Some(Duration::from_secs(5))
        }
    );
    assert_eq!(
        steps("capture m $ bluechictl monitor\nexpect m \"created\" 2 times within 3s\nend m\n")[1],
        StepKind::Expect {
            name: "m".into(),
            text: "created".into(),
            times: 2,
            within: Duration::from_secs(3)
        }
    );
    assert_eq!(
        error("capture m $ bluechictl monitor\nexpect m \"x\" 0 times\nend m\n"),
        "4:14: expected a count of at least 1, found \"0\""
    );
    assert_eq!(
        error("expect m \"x\"\n"),
        "3:8: expected the name of a running capture, found \"m\""
    );
    assert_eq!(
        error("capture job $ bluechictl start worker1 a.service\nawait job 5s\n"),
        "4:11: expected `within DURATION` or end of line, found \"5s\""
    );
    assert_eq!(
        error("capture mon $ bluechictl monitor\n"),
        "4:1: expected `end mon` for the capture started on line 3, found end of file"
    );
    assert_eq!(
        error("end mon\n"),
        "3:5: expected the name of a running capture, found \"mon\""
    );
    assert_eq!(
        error("capture mon $ bluechictl monitor\ncapture mon $ bluechictl monitor\nend mon\n"),
        "4:9: expected a capture name not in use (`end` it first), found \"mon\""
    );
    assert_eq!(
        error("capture mon ready x $ bluechictl monitor\nend mon\n"),
        "3:19: expected a double-quoted text to wait for, found \"x\""
    );
}

#[test]
fn only_block_statements_end_in_a_colon() {
    assert_eq!(
        error("pause worker1:\n"),
        "3:7: expected a node from `nodes:` (main, worker1, worker2), found \"worker1:\""
    );
    assert_eq!(
        error("on worker1: $ systemctl\n"),
        "3:4: expected a node from `nodes:` (main, worker1, worker2), found \"worker1:\""
    );
}

#[test]
fn offline_nodes() {
    let s = parse(&format!("{HEADER}offline: worker2\n")).unwrap();
    assert_eq!(s.offline, vec!["worker2"]);
    assert_eq!(
        error("offline: worker2 worker2\n"),
        "3:18: expected a node not listed before, found \"worker2\""
    );
}

#[test]
fn wait_and_hold_errors() {
    assert_eq!(
        error("wait\n"),
        "3:5: expected a node name, found end of line"
    );
    assert_eq!(
        error("wait main\n"),
        "3:10: expected a unit name, found end of line"
    );
    assert_eq!(
        error("wait main a.service\n"),
        "3:20: expected a condition: ACTIVE/SUB, Prop=VALUE or Prop!=VALUE, found end of line"
    );
    assert_eq!(
        error("wait main a.service active\n"),
        "3:21: expected a condition: ACTIVE/SUB, Prop=VALUE or Prop!=VALUE, found \"active\""
    );
    assert_eq!(
        error("wait main a.service active/\n"),
        "3:21: expected ACTIVE/SUB like active/exited, found \"active/\""
    );
    assert_eq!(
        error("wait main a.service 1x=2\n"),
        "3:21: expected a property name like MainPID before '=' or '!=', found \"1x=2\""
    );
    assert_eq!(
        error("wait main a.service MainPID!=$nope\n"),
        "3:30: expected a variable set earlier by `record ... as NAME`, found \"$nope\""
    );
    assert_eq!(
        error("wait main a.service MainPID != $nope\n"),
        "3:32: expected a variable set earlier by `record ... as NAME`, found \"$nope\""
    );
    assert_eq!(
        error("wait main a.service MainPID !=\n"),
        "3:31: expected a value after the operator, found end of line"
    );
    assert_eq!(
        error("wait main a.service 9 = 1\n"),
        "3:21: expected a property name like MainPID, found \"9\""
    );
    assert_eq!(
        error("wait main a.service a/b within\n"),
        "3:31: expected a duration like 10s, 1.5s or 500ms, found end of line"
    );
    assert_eq!(
        error("wait main a.service a/b within 10\n"),
        "3:32: expected a duration like 10s, 1.5s or 500ms, found \"10\""
    );
    assert_eq!(
        error("wait main a.service a/b for 1s\n"),
        "3:25: expected `within DURATION` or end of line, found \"for\""
    );
    assert_eq!(
        error("wait main a.service a/b within 1s x\n"),
        "3:35: expected end of line, found \"x\""
    );
    assert_eq!(
        error("hold main a.service a/b\n"),
        "3:24: expected `for DURATION`, found end of line"
    );
    assert_eq!(
        error("hold main a.service a/b within 1s\n"),
        "3:25: expected `for DURATION`, found \"within\""
    );
}

#[test]
fn record_and_redact_errors() {
    assert_eq!(
        error("record main a.service\n"),
        "3:22: expected a property name like MainPID, found end of line"
    );
    assert_eq!(
        error("record main a.service MainPID to x\n"),
        "3:31: expected `as`, found \"to\""
    );
    assert_eq!(
        error("record main a.service MainPID as 9x\n"),
        "3:34: expected a variable name (letters, digits, '_'), found \"9x\""
    );
    assert_eq!(
        error("redact x \"y\"\n"),
        "3:8: expected a double-quoted regex, found \"x\""
    );
    assert_eq!(
        error("redact \"x\"\n"),
        "3:11: expected a double-quoted replacement, found end of line"
    );
    assert_eq!(
        error("redact \"x\" \"y\" z\n"),
        "3:16: expected end of line, found \"z\""
    );
    assert_eq!(
        error("redact \"x\n"),
        "3:8: expected a closing double quote, found end of line"
    );
    let e = error("redact \"(unclosed\" \"y\"\n");
    assert!(
        e.starts_with("3:8: expected a valid regex, found \"(unclosed\" ("),
        "{e}"
    );
}

#[test]
fn unreadable_file_is_a_parse_error() {
    let e = parse_file(Path::new("/nonexistent/x.scenario")).unwrap_err();
    assert_eq!(e.pos.line, 1);
    assert!(e
        .to_string()
        .starts_with("/nonexistent/x.scenario:1:1: expected a readable UTF-8 scenario file"));
}

proptest! {
    #[test]
    fn parser_never_panics(text in "\\PC*") {
        let _ = parse(&text);
    }

    #[test]
    fn parser_never_panics_on_statement_like_lines(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("nodes: main w1".to_string()),
                Just("controller: main".to_string()),
                Just("unit main a.service:".to_string()),
                Just("controller.conf:".to_string()),
                Just("agent.conf w1:".to_string()),
                "    [a-zA-Z=\\[\\] ]{0,12}",
                "(wait|hold|record|redact|\\$) [a-z0-9 \"$=!/.]{0,30}",
                "[ \t#\"$:=!/a-z]{0,20}",
            ],
            0..20,
        )
    ) {
        let _ = parse(&lines.join("\n"));
    }
}
