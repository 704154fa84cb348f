//! Byte-level editing of serialized D-Bus message headers.
//!
//! sd-bus peers put well-known names in the SENDER header field (systemd on its private socket,
//! upstream's controller on the peer link), but zbus accepts only unique names there: it panics
//! parsing such a message and refuses to build one. So the field is removed from incoming bytes
//! and added to outgoing bytes here, before zbus sees them. Every function is bounded by the
//! input's length and returns `None` on anything malformed instead of panicking.

/// Header field code of SENDER.
pub const FIELD_SENDER: u8 = 7;
/// Highest header field code the D-Bus spec defines (UNIX_FDS).
pub const LAST_KNOWN_FIELD: u8 = 9;
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

/// Largest piece an incoming message is read in.
pub const READ_CHUNK: usize = 64 * 1024;

/// An incoming message assembled as its bytes arrive. Memory is committed in step with what
/// was received, not with what the header announces: a peer announcing 128 MiB and then
/// stalling, on many connections at once, must not pin that much per connection.
#[derive(Debug)]
pub struct Inbox {
    /// Zero-initialised space; `filled` bytes of it hold the message so far. Keeping the count
    /// apart from the length lets a read be abandoned at any await without corrupting it.
    buf: Vec<u8>,
    filled: usize,
    /// Largest message accepted; a header announcing more is refused before any allocation.
    limit: usize,
}

impl Default for Inbox {
    fn default() -> Self {
        Self::with_limit(MAX_MESSAGE)
    }
}

impl Inbox {
    /// An inbox refusing messages longer than `limit` bytes (at most [`MAX_MESSAGE`]).
    pub fn with_limit(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            filled: 0,
            limit: limit.min(MAX_MESSAGE),
        }
    }

    /// Changes the limit; [`Inbox::room`] checks the message being read against it.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(MAX_MESSAGE);
    }

    /// Whether no byte of the next message has arrived.
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Space allocated so far (what a stalled peer costs us).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Where the next bytes go: at most [`READ_CHUNK`], empty once the message is whole.
    /// `None` if its fixed header is malformed or announces more than the limit.
    pub fn room(&mut self) -> Option<&mut [u8]> {
        let target = match self.buf.get(..FIXED_HEADER) {
            Some(fixed) if self.filled >= FIXED_HEADER => {
                message_len(fixed).filter(|&n| n <= self.limit)?
            }
            _ => FIXED_HEADER,
        };
        if self.filled == self.buf.len() && self.buf.len() < target {
            let grown = target.min(self.buf.len().saturating_add(READ_CHUNK));
            self.buf.resize(grown, 0);
        }
        self.buf.get_mut(self.filled..)
    }

    /// Records that `n` bytes were written into the start of [`Inbox::room`].
    pub fn advance(&mut self, n: usize) {
        self.filled = self.filled.saturating_add(n).min(self.buf.len());
    }

    /// The complete message, leaving the inbox empty for the next one; call once
    /// [`Inbox::room`] is empty.
    pub fn take(&mut self) -> Vec<u8> {
        self.buf.truncate(self.filled);
        self.filled = 0;
        std::mem::take(&mut self.buf)
    }
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
/// the header is malformed. Fields of any type are walked over, so codes this crate does not
/// know (the spec says to ignore them; future ones may have any type) do not fail the message.
fn fields(msg: &[u8]) -> Option<(Vec<Field<'_>>, usize)> {
    let le = little_endian(msg)?;
    let fields_len = usize::try_from(read_u32(msg.get(12..16)?, le)?).ok()?;
    let fields_end = FIXED_HEADER.checked_add(fields_len)?;
    let body_start = align8(fields_end)?;
    if message_len(msg)? != msg.len() {
        return None;
    }
    // Values may not run past the fields array, so that is the walker's whole world.
    let walk = Walker {
        bytes: msg.get(..fields_end)?,
        le,
    };
    let mut out = Vec::new();
    let mut pos = FIXED_HEADER;
    while pos < fields_end {
        let code = *msg.get(pos)?;
        let (end, sig) = walk.variant(pos.checked_add(1)?, 0)?;
        let text = match sig {
            b"s" | b"o" => {
                let at = align4(pos.checked_add(sig.len() + 3)?)?;
                msg.get(at.checked_add(4)?..end.checked_sub(1)?)
            }
            b"g" => msg.get(pos.checked_add(5)?..end.checked_sub(1)?),
            _ => None,
        };
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

/// Deepest container nesting a signature may have (32 arrays plus 32 structs, per the spec);
/// it also bounds the walker's recursion.
const MAX_DEPTH: usize = 64;

/// Length of the single complete type that starts `sig`, checked to be one D-Bus defines.
fn type_len(sig: &[u8], depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    match *sig.first()? {
        b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b'h' | b's' | b'o'
        | b'g' | b'v' => Some(1),
        b'a' => match sig.get(1) {
            Some(b'{') => {
                let key = *sig.get(2)?;
                if !is_basic(key) {
                    return None;
                }
                let value = type_len(sig.get(3..)?, depth + 2)?;
                (sig.get(3 + value) == Some(&b'}')).then_some(4 + value)
            }
            _ => Some(1 + type_len(sig.get(1..)?, depth + 1)?),
        },
        b'(' => {
            let mut at = 1;
            while *sig.get(at)? != b')' {
                at += type_len(sig.get(at..)?, depth + 1)?;
            }
            // An empty struct is not a type.
            (at > 1).then_some(at + 1)
        }
        _ => None,
    }
}

fn is_basic(code: u8) -> bool {
    b"ybnqiuxtdhsog".contains(&code)
}

/// Boundary a value of the type starting with `code` is aligned to.
fn alignment(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

/// Walks serialized values of a message header without interpreting them.
struct Walker<'a> {
    bytes: &'a [u8],
    le: bool,
}

impl Walker<'_> {
    fn align(&self, pos: usize, to: usize) -> Option<usize> {
        let at = pos.checked_add(to - 1)? / to * to;
        // Padding must exist, or a truncated value could end "in bounds" by rounding.
        (at <= self.bytes.len()).then_some(at)
    }

    fn u32_at(&self, pos: usize) -> Option<usize> {
        usize::try_from(read_u32(self.bytes.get(pos..)?, self.le)?).ok()
    }

    /// Skips a variant at `pos` (signature, then one value of it); returns where it ends and
    /// its signature.
    fn variant(&self, pos: usize, depth: usize) -> Option<(usize, &[u8])> {
        let sig_len = usize::from(*self.bytes.get(pos)?);
        let sig = self.bytes.get(pos + 1..pos + 1 + sig_len)?;
        if *self.bytes.get(pos + 1 + sig_len)? != 0 || type_len(sig, depth + 1)? != sig.len() {
            return None;
        }
        let end = self.value(sig, pos + 2 + sig_len, depth + 1)?;
        Some((end, sig))
    }

    /// Skips one value of the single complete type `sig` starting at (unaligned) `pos`.
    fn value(&self, sig: &[u8], pos: usize, depth: usize) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        let code = *sig.first()?;
        let at = self.align(pos, alignment(code))?;
        let end = match code {
            b'y' => at.checked_add(1)?,
            b'n' | b'q' => at.checked_add(2)?,
            b'b' | b'i' | b'u' | b'h' => at.checked_add(4)?,
            b'x' | b't' | b'd' => at.checked_add(8)?,
            b's' | b'o' => at
                .checked_add(4)?
                .checked_add(self.u32_at(at)?)?
                .checked_add(1)?,
            b'g' => at.checked_add(usize::from(*self.bytes.get(at)?) + 2)?,
            b'v' => self.variant(at, depth)?.0,
            // The array's byte length covers its elements, so they need no walking; the
            // padding before the first element is there even when the array is empty.
            b'a' => {
                let len = self.u32_at(at)?;
                let first = self.align(at.checked_add(4)?, alignment(*sig.get(1)?))?;
                first.checked_add(len)?
            }
            b'(' => {
                let mut cur = at;
                let mut rest = sig.get(1..)?;
                while *rest.first()? != b')' {
                    let n = type_len(rest, depth)?;
                    cur = self.value(rest.get(..n)?, cur, depth + 1)?;
                    rest = rest.get(n..)?;
                }
                cur
            }
            _ => return None,
        };
        (end <= self.bytes.len()).then_some(end)
    }
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

/// `msg` without its SENDER field (on a peer-to-peer link it carries nothing) and without
/// header fields D-Bus does not define yet. The spec tells receivers to ignore those, but
/// zbus 5 refuses the whole message over one (its field code enum has no catch-all), so
/// removing them here is how they get ignored.
pub fn drop_sender(msg: &[u8]) -> Option<Vec<u8>> {
    rebuild(msg, |c| c != FIELD_SENDER && c <= LAST_KNOWN_FIELD, None)
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
