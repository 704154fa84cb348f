//! The transcript: what every `$` step printed, normalised only where values legitimately vary.

use crate::syntax::Redaction;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// The raw result of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit: Exit,
}

const IP_MARKERS: [&str; 2] = ["| online    | ", "| offline   | "];
/// Width of the IP column in bluechictl's node table (`%-24.24s`).
const IP_WIDTH: usize = 24;
/// Shown when an output does not end with a newline, so the next marker line stays distinct.
pub const NO_NEWLINE: &str = "--- no newline at end\n";

/// Replaces the IP column of node-table lines with `[IP]`, keeping every other byte, because
/// peer addresses differ between runs and backends.
pub fn redact_node_table_ips(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let hit = IP_MARKERS
            .iter()
            .filter_map(|m| line.find(m).map(|i| i + m.len()))
            .min();
        match hit {
            Some(start)
                if line.len() >= start + IP_WIDTH && line.is_char_boundary(start + IP_WIDTH) =>
            {
                out.push_str(&line[..start]);
                out.push_str(&format!("{:<IP_WIDTH$}", "[IP]"));
                out.push_str(&line[start + IP_WIDTH..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

fn apply_redactions(text: &str, redactions: &[Redaction]) -> String {
    let mut text = redact_node_table_ips(text);
    for r in redactions {
        text = r
            .regex
            .replace_all(&text, r.replacement.as_str())
            .into_owned();
    }
    text
}

fn push_output(buf: &mut String, text: &str) {
    buf.push_str(text);
    if !text.is_empty() && !text.ends_with('\n') {
        buf.push('\n');
        buf.push_str(NO_NEWLINE);
    }
}

/// Renders one command step: its header (`$ CMD`, `on NODE $ CMD`, as written), stdout
/// verbatim, then stderr and a non-zero exit status only when there is something to say.
pub fn render_step(header: &str, output: &CommandOutput, redactions: &[Redaction]) -> String {
    let mut buf = format!("{header}\n");
    push_output(&mut buf, &apply_redactions(&output.stdout, redactions));
    if !output.stderr.is_empty() {
        buf.push_str("--- stderr\n");
        push_output(&mut buf, &apply_redactions(&output.stderr, redactions));
    }
    match output.exit {
        Exit::Code(0) => {}
        Exit::Code(n) => buf.push_str(&format!("--- exit code: {n}\n")),
        Exit::Signal(n) => buf.push_str(&format!("--- killed by signal: {n}\n")),
    }
    buf
}

/// All rendered steps of a run, separated by one blank line.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    steps: Vec<String>,
}

impl Transcript {
    pub fn push(&mut self, rendered: String) {
        self.steps.push(rendered);
    }

    pub fn text(&self) -> String {
        self.steps.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "NODE                          | STATE     | IP                      | LAST SEEN                   \n\
==========================================================================================\n\
main                          | online    | ::ffff:10.89.1.29       | now                         \n\
worker2                       | offline   | 127.0.0.1               | 2024-01-01 00:00:00         \n";

    #[test]
    fn ip_column_is_redacted_keeping_layout() {
        let out = redact_node_table_ips(TABLE);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[2],
            "main                          | online    | [IP]                    | now                         "
        );
        assert!(lines[3].starts_with(
            "worker2                       | offline   | [IP]                    | 2024"
        ));
        assert_eq!(lines[0], TABLE.lines().next().unwrap());
        assert_eq!(out.len(), TABLE.len());
    }

    #[test]
    fn short_lines_are_left_alone() {
        assert_eq!(
            redact_node_table_ips("x | online    | 1.2\n"),
            "x | online    | 1.2\n"
        );
    }

    fn out(stdout: &str, stderr: &str, exit: Exit) -> CommandOutput {
        CommandOutput {
            stdout: stdout.into(),
            stderr: stderr.into(),
            exit,
        }
    }

    #[test]
    fn step_rendering() {
        assert_eq!(
            render_step("$ bluechictl x", &out("a\tb \n", "", Exit::Code(0)), &[]),
            "$ bluechictl x\na\tb \n"
        );
        assert_eq!(
            render_step("$ c", &out("", "boom", Exit::Code(1)), &[]),
            format!("$ c\n--- stderr\nboom\n{NO_NEWLINE}--- exit code: 1\n")
        );
        assert_eq!(
            render_step("$ c", &out("x\n", "", Exit::Signal(9)), &[]),
            "$ c\nx\n--- killed by signal: 9\n"
        );
    }

    #[test]
    fn user_redactions_apply_to_stdout_and_stderr() {
        let r = Redaction {
            regex: regex::Regex::new("result: (done|canceled)").unwrap(),
            replacement: "result: [done or canceled]".into(),
        };
        let o = out("result: canceled\n", "result: done\n", Exit::Code(0));
        assert_eq!(
            render_step("$ c", &o, &[r]),
            "$ c\nresult: [done or canceled]\n--- stderr\nresult: [done or canceled]\n"
        );
    }

    #[test]
    fn steps_are_separated_by_a_blank_line() {
        let mut t = Transcript::default();
        t.push("$ a\n1\n".into());
        t.push("$ b\n2\n".into());
        assert_eq!(t.text(), "$ a\n1\n\n$ b\n2\n");
    }
}
