//! `systemctl show`: properties as Name=value lines, in the order the manager sends them.

use crate::args::Opts;
use crate::conn::{Manager, Props, MANAGER};
use crate::{exit, fmt, names};
use std::io::Write;

fn print_props(out: &mut impl Write, o: &Opts, props: &Props) {
    for (name, v) in &props.0 {
        if !o.properties.is_empty() && !o.properties.iter().any(|p| p == name) {
            continue;
        }
        let text = fmt::show_value(name, v);
        // Unrequested empty values are noise; systemctl only prints them with --all.
        if o.properties.is_empty() && !o.all && text.is_empty() {
            continue;
        }
        let _ = if o.value {
            writeln!(out, "{text}")
        } else {
            writeln!(out, "{name}={text}")
        };
    }
}

pub async fn run(m: &Manager, o: &Opts, units: &[String]) -> i32 {
    let mut out = std::io::stdout().lock();
    if units.is_empty() {
        let props: Result<Props, _> = m
            .call(MANAGER, "org.freedesktop.DBus.Properties", "GetAll", &("",))
            .await;
        return match props {
            Ok(p) => {
                print_props(&mut out, o, &p);
                exit::SUCCESS
            }
            Err(e) => {
                eprintln!("Failed to get properties: {}", e.text());
                exit::FAILURE
            }
        };
    }
    let mut code = exit::SUCCESS;
    for (i, unit) in units.iter().enumerate() {
        let unit = names::mangle(unit);
        if i > 0 {
            let _ = writeln!(out);
        }
        match m.unit_props(&unit).await {
            Ok(p) => print_props(&mut out, o, &p),
            Err(e) => {
                eprintln!("Failed to get properties: {}", e.text());
                code = exit::FAILURE;
            }
        }
    }
    code
}
