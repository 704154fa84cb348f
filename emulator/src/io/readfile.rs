//! Reading files named by units (PIDFile=, EnvironmentFile=) without trusting them: only
//! regular files, never blocking on a FIFO, and never more than a limit.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

/// The most a PIDFile= may hold.
pub const PID_FILE_LIMIT: u64 = 4 * 1024;
/// The most an EnvironmentFile= may hold.
pub const ENV_FILE_LIMIT: u64 = 4 * 1024 * 1024;

/// Reads `path` as UTF-8 if it is a regular file of at most `limit` bytes.
pub fn read_bounded(path: &str, limit: u64) -> std::io::Result<String> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut text = String::new();
    f.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifos_directories_and_oversized_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let err = read_bounded(&fifo.display().to_string(), 10).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = read_bounded(&dir.path().display().to_string(), 10).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");

        let file = dir.path().join("f");
        std::fs::write(&file, "1234567890").expect("write");
        let path = file.display().to_string();
        assert_eq!(read_bounded(&path, 10).expect("fits"), "1234567890");
        let err = read_bounded(&path, 9).unwrap_err();
        assert!(err.to_string().contains("larger than 9 bytes"), "{err}");
    }
}
