//! Byte formats of the streaming commands: `monitor` events and `metrics listen` lines
//! (spec §5.3).

/// Screen clear + cursor home that `status -w` writes before every redraw.
pub const CLEAR_SCREEN: &str = "\x1b[2J\x1b[0;0H";

pub fn unit_new(node: &str, unit: &str, reason: &str) -> String {
    format!("[{node}] {unit}\n\tUnit created (reason: {reason})\n")
}

pub fn unit_removed(node: &str, unit: &str, reason: &str) -> String {
    format!("[{node}] {unit}\n\tUnit removed (reason: {reason})\n")
}

pub fn unit_state_changed(node: &str, unit: &str, active: &str, sub: &str, reason: &str) -> String {
    format!(
        "[{node}] {unit}\n\tUnit state changed (reason: {reason})\n\tActive: {active} ({sub})\n"
    )
}

/// Only string-typed properties are printed (`props` holds those already, in wire order).
pub fn unit_properties_changed(
    node: &str,
    unit: &str,
    iface: &str,
    props: &[(String, String)],
) -> String {
    let mut s = format!("[{node}] {unit}\n\tUnit properties changed (Interface: {iface})\n");
    for (k, v) in props {
        s.push_str(&format!("\t{k}: {v}\n"));
    }
    s
}

/// `%.1lf` of µs/1000.
fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

pub fn start_unit_job_metrics(node: &str, job: &str, unit: &str, gross: u64, net: u64) -> String {
    format!(
        "[{node}] Job {job} to start unit {unit}:\n\tBlueChi job gross measured time: {}ms\n\tUnit net start time (from properties): {}ms\n",
        ms(gross),
        ms(net)
    )
}

pub fn agent_job_metrics(node: &str, unit: &str, method: &str, us: u64) -> String {
    format!(
        "[{node}] Agent systemd {method} job on {unit} net measured time: {}ms\n",
        ms(us)
    )
}

/// The unit argument of `monitor`: a comma-separated list, `*` when absent.
pub fn split_units(arg: Option<&String>) -> Vec<String> {
    match arg {
        Some(a) => a.split(',').map(str::to_string).collect(),
        None => vec!["*".to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines() {
        assert_eq!(
            unit_new("n1", "a.service", "virtual"),
            "[n1] a.service\n\tUnit created (reason: virtual)\n"
        );
        assert_eq!(
            unit_removed("n1", "*", "real"),
            "[n1] *\n\tUnit removed (reason: real)\n"
        );
        assert_eq!(
            unit_state_changed("n1", "a.service", "active", "running", "real"),
            "[n1] a.service\n\tUnit state changed (reason: real)\n\tActive: active (running)\n"
        );
        let props = vec![("SubState".to_string(), "dead".to_string())];
        assert_eq!(
            unit_properties_changed("n1", "a.service", "org.freedesktop.systemd1.Unit", &props),
            "[n1] a.service\n\tUnit properties changed (Interface: org.freedesktop.systemd1.Unit)\n\tSubState: dead\n"
        );
    }

    #[test]
    fn metrics_lines() {
        assert_eq!(
            start_unit_job_metrics("n", "/org/eclipse/bluechi/job/3", "a.service", 12345, 250),
            "[n] Job /org/eclipse/bluechi/job/3 to start unit a.service:\n\tBlueChi job gross measured time: 12.3ms\n\tUnit net start time (from properties): 0.2ms\n"
        );
        assert_eq!(
            agent_job_metrics("n", "a.service", "StopUnit", 1000),
            "[n] Agent systemd StopUnit job on a.service net measured time: 1.0ms\n"
        );
    }

    #[test]
    fn unit_argument() {
        assert_eq!(split_units(None), vec!["*"]);
        assert_eq!(split_units(Some(&"a,b".to_string())), vec!["a", "b"]);
    }
}
