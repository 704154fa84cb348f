//! Unbuffered-looking output: every write is flushed so that stdout and stderr interleave in
//! the order the lines were produced, and a closed pipe never panics the tool.

use std::io::Write;

pub fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

pub fn err(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(s.as_bytes());
    let _ = e.flush();
}
