//! Byte-level editing of serialized D-Bus message headers.
//!
//! sd-bus peers put well-known names in the SENDER header field (systemd on its private socket,
//! upstream's controller on the peer link), but zbus accepts only unique names there: it panics
//! parsing such a message and refuses to build one. So the field is removed from incoming bytes
//! and added to outgoing bytes here, before zbus sees them. Every function is bounded by the
//! input's length and returns `None` on anything malformed instead of panicking.

/// Header field code of SENDER.
pub const FIELD_SENDER: u8 = 7;
/// The D-Bus maximum message size: anything larger is refused before allocating for it.
pub const MAX_MESSAGE: usize = 128 * 1024 * 1024;
/// Length of the fixed part of the header (endianness … header fields array length).
pub const FIXED_HEADER: usize = 16;

pub(crate) fn align8(n: usize) -> Option<usize> {
    Some(n.checked_add(7)? & !7)
}

pub(crate) fn align4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

pub(crate) fn read_u32(b: &[u8], le: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    })
}

fn encode_u32(v: u32, le: bool) -> [u8; 4] {
    if le {
        v.to_le_bytes()
    } else {
        v.to_be_bytes()
    }
}

fn little_endian(msg: &[u8]) -> Option<bool> {
    match *msg.first()? {
        b'l' => Some(true),
        b'B' => Some(false),
        _ => None,
    }
}

/// The whole length of the message whose fixed header starts `msg`, if it is plausible.
pub fn message_len(msg: &[u8]) -> Option<usize> {
    let le = little_endian(msg)?;
    let body_len = usize::try_from(read_u32(msg.get(4..8)?, le)?).ok()?;
    let fields_len = usize::try_from(read_u32(msg.get(12..16)?, le)?).ok()?;
    let total = align8(FIXED_HEADER.checked_add(fields_len)?)?.checked_add(body_len)?;
    (total <= MAX_MESSAGE).then_some(total)
}

/// One header field: its code, its byte range in the message (code byte to end of value),
/// and its value when that is a string (`s`, `o`, `g`).
struct Field<'a> {
    code: u8,
    start: usize,
    end: usize,
    text: Option<&'a [u8]>,
}

/// The header fields of a complete message, with the offset where the body starts; `None` if
/// the header is malformed or uses a signature D-Bus does not define for header fields.
fn fields(msg: &[u8]) -> Option<(Vec<Field<'_>>, usize)> {
    let le = little_endian(msg)?;
    let fields_len = usize::try_from(read_u32(msg.get(12..16)?, le)?).ok()?;
    let fields_end = FIXED_HEADER.checked_add(fields_len)?;
    let body_start = align8(fields_end)?;
    if message_len(msg)? != msg.len() {
        return None;
    }
    let mut out = Vec::new();
    let mut pos = FIXED_HEADER;
    while pos < fields_end {
        let code = *msg.get(pos)?;
        let sig_len = usize::from(*msg.get(pos + 1)?);
        let sig = msg.get(pos + 2..pos.checked_add(2 + sig_len)?)?;
        let value = pos + 2 + sig_len + 1;
        let (end, text) = match sig {
            b"s" | b"o" => {
                let at = align4(value)?;
                let len = usize::try_from(read_u32(msg.get(at..)?, le)?).ok()?;
                let text_end = at.checked_add(4)?.checked_add(len)?;
                (text_end.checked_add(1)?, Some(msg.get(at + 4..text_end)?))
            }
            b"g" => {
                let len = usize::from(*msg.get(value)?);
                (
                    value + 1 + len + 1,
                    Some(msg.get(value + 1..value + 1 + len)?),
                )
            }
            b"u" => (align4(value)? + 4, None),
            _ => return None,
        };
        if end > fields_end {
            return None;
        }
        out.push(Field {
            code,
            start: pos,
            end,
            text,
        });
        pos = align8(end)?;
    }
    Some((out, body_start))
}

/// Rebuilds `msg` keeping the fields `keep` accepts, then appending `extra` (already encoded
/// field bytes, code first).
fn rebuild(msg: &[u8], keep: impl Fn(u8) -> bool, extra: Option<&[u8]>) -> Option<Vec<u8>> {
    let le = little_endian(msg)?;
    let (fields, body_start) = fields(msg)?;
    let mut out = msg.get(..FIXED_HEADER)?.to_vec();
    for f in fields.iter().filter(|f| keep(f.code)) {
        out.resize(align8(out.len())?, 0);
        out.extend_from_slice(msg.get(f.start..f.end)?);
    }
    if let Some(extra) = extra {
        out.resize(align8(out.len())?, 0);
        out.extend_from_slice(extra);
    }
    let new_len = u32::try_from(out.len() - FIXED_HEADER).ok()?;
    out[12..16].copy_from_slice(&encode_u32(new_len, le));
    out.resize(align8(out.len())?, 0);
    out.extend_from_slice(msg.get(body_start..)?);
    (out.len() <= MAX_MESSAGE).then_some(out)
}

/// `msg` without header field `code`, re-padded.
pub fn drop_field(msg: &[u8], code: u8) -> Option<Vec<u8>> {
    rebuild(msg, |c| c != code, None)
}

/// `msg` without its SENDER field: on a peer-to-peer link it carries nothing.
pub fn drop_sender(msg: &[u8]) -> Option<Vec<u8>> {
    drop_field(msg, FIELD_SENDER)
}

/// `msg` with SENDER set to `name` (replacing any sender it had).
pub fn set_sender(msg: &[u8], name: &str) -> Option<Vec<u8>> {
    let le = little_endian(msg)?;
    let len = u32::try_from(name.len()).ok()?;
    let mut field = vec![FIELD_SENDER, 1, b's', 0];
    field.extend_from_slice(&encode_u32(len, le));
    field.extend_from_slice(name.as_bytes());
    field.push(0);
    rebuild(msg, |c| c != FIELD_SENDER, Some(&field))
}

/// The string value of header field `code` of a complete message; lets tests and logs read
/// messages zbus would refuse to parse.
pub fn string_field(msg: &[u8], code: u8) -> Option<String> {
    let (fields, _) = fields(msg)?;
    let f = fields.iter().find(|f| f.code == code)?;
    Some(String::from_utf8_lossy(f.text?).into_owned())
}

/// The SENDER of a complete message, if it has one.
pub fn sender(msg: &[u8]) -> Option<String> {
    string_field(msg, FIELD_SENDER)
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
