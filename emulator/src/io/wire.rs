//! Editing serialized D-Bus messages. systemd stamps `SENDER=org.freedesktop.systemd1` on what
//! it sends over its private socket (sd-bus `sd_bus_set_sender`), and sd-bus clients such as
//! systemctl filter signals on it; zbus only accepts unique names as sender, so the header
//! field is added to the serialized bytes.

const FIELD_SENDER: u8 = 7;
const PRIMARY_HEADER: usize = 16;

fn align(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

fn read_u32(b: &[u8], at: usize, big: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}

fn put_u32(v: u32, big: bool) -> [u8; 4] {
    if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

/// (big endian, header fields length, body length) of a serialized message.
fn frame(b: &[u8]) -> Option<(bool, usize, usize)> {
    let big = match b.first()? {
        b'B' => true,
        b'l' => false,
        _ => return None,
    };
    let body = read_u32(b, 4, big)? as usize;
    let fields = read_u32(b, 12, big)? as usize;
    Some((big, fields, body))
}

/// Total length of the message starting at `b`, once its primary header is there.
pub fn message_len(b: &[u8]) -> Option<usize> {
    let (_, fields, body) = frame(b)?;
    Some(align(PRIMARY_HEADER + fields, 8) + body)
}

/// The message with a SENDER header field appended; `None` if `b` is not a message.
pub fn add_sender(b: &[u8], sender: &str) -> Option<Vec<u8>> {
    let (big, fields, body) = frame(b)?;
    let fields_end = PRIMARY_HEADER + fields;
    let body_start = align(fields_end, 8);
    if b.len() != body_start + body {
        return None;
    }
    let mut out = b.get(..fields_end)?.to_vec();
    out.resize(align(fields_end, 8), 0);
    out.extend_from_slice(&[FIELD_SENDER, 1, b's', 0]);
    out.extend_from_slice(&put_u32(sender.len() as u32, big));
    out.extend_from_slice(sender.as_bytes());
    out.push(0);
    let new_fields = out.len() - PRIMARY_HEADER;
    out[12..16].copy_from_slice(&put_u32(new_fields as u32, big));
    out.resize(align(out.len(), 8), 0);
    out.extend_from_slice(b.get(body_start..)?);
    Some(out)
}

/// The string-typed header fields (`s`, `o`, `g`) as (code, value); tests use it to read
/// messages zbus refuses to parse.
pub fn string_fields(b: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let Some((big, fields, _)) = frame(b) else {
        return out;
    };
    let end = (PRIMARY_HEADER + fields).min(b.len());
    let mut at = PRIMARY_HEADER;
    while at < end {
        at = align(at, 8);
        let (Some(&code), Some(&siglen)) = (b.get(at), b.get(at + 1)) else {
            break;
        };
        let sig = b.get(at + 2..at + 2 + siglen as usize).unwrap_or(b"");
        at += 3 + siglen as usize;
        match sig {
            b"s" | b"o" => {
                at = align(at, 4);
                let Some(len) = read_u32(b, at, big) else {
                    break;
                };
                let s = b.get(at + 4..at + 4 + len as usize).unwrap_or(b"");
                out.push((code, String::from_utf8_lossy(s).into_owned()));
                at += 5 + len as usize;
            }
            b"g" => {
                let len = b.get(at).copied().unwrap_or(0) as usize;
                let s = b.get(at + 1..at + 1 + len).unwrap_or(b"");
                out.push((code, String::from_utf8_lossy(s).into_owned()));
                at += 2 + len;
            }
            b"u" => at = align(at, 4) + 4,
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_is_added_and_body_kept() {
        let m = zbus::Message::signal("/org/freedesktop/systemd1", "a.b.C", "JobRemoved")
            .and_then(|b| b.build(&(7u32, "x.service")))
            .expect("signal");
        let bytes = m.data().to_vec();
        let patched = add_sender(&bytes, "org.freedesktop.systemd1").expect("patched");
        assert_eq!(message_len(&patched), Some(patched.len()));
        let f = string_fields(&patched);
        assert!(
            f.contains(&(7, "org.freedesktop.systemd1".to_string())),
            "{f:?}"
        );
        assert!(f.contains(&(3, "JobRemoved".to_string())), "{f:?}");
        assert!(f.contains(&(8, "us".to_string())), "{f:?}");
        let body_len = m.body().data().len();
        assert_eq!(
            patched[patched.len() - body_len..],
            bytes[bytes.len() - body_len..]
        );
        assert!(add_sender(&bytes[..bytes.len() - 1], "x").is_none());
    }
}
