use super::*;
use proptest::prelude::*;
use zbus::message::Message;
use zvariant::Endian;

/// What systemd does on its private socket: appends a SENDER field holding `name`, which may
/// be a well-known name that zbus cannot represent (so zbus cannot build it for us).
fn add_sender(msg: &[u8], name: &str) -> Vec<u8> {
    let le = msg[0] == b'l';
    let enc = |n: u32| if le { n.to_le_bytes() } else { n.to_be_bytes() };
    let fields_len = read_u32(&msg[12..16], le).unwrap() as usize;
    let fields_end = 16 + fields_len;
    let body = &msg[align8(fields_end).unwrap()..];
    let mut out = msg[..fields_end].to_vec();
    out.resize(align8(out.len()).unwrap(), 0);
    out.extend_from_slice(&[FIELD_SENDER, 1, b's', 0]);
    out.extend_from_slice(&enc(name.len() as u32));
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    let new_len = (out.len() - 16) as u32;
    out[12..16].copy_from_slice(&enc(new_len));
    out.resize(align8(out.len()).unwrap(), 0);
    out.extend_from_slice(body);
    out
}

fn parse(bytes: Vec<u8>) -> zbus::Result<Message> {
    let endian = if bytes[0] == b'l' {
        Endian::Little
    } else {
        Endian::Big
    };
    let ctx = zvariant::serialized::Context::new_dbus(endian, 0);
    // SAFETY: only the test's own, well-formed messages (rewritten by `drop_sender`) get here;
    // the point of the test is that zbus accepts them.
    unsafe { Message::from_bytes(zvariant::serialized::Data::new(bytes, ctx)) }
}

fn method_call(path: &str, member: &str, endian: Endian) -> Message {
    Message::method_call(path, member)
        .and_then(|b| b.destination("org.freedesktop.systemd1"))
        .map(|b| b.endian(endian))
        .and_then(|b| b.build(&("a.service", 7u32)))
        .unwrap()
}

fn sample(kind: u8, path: &str, member: &str, body: &str, unique: bool, endian: Endian) -> Message {
    let call = method_call(path, member, endian);
    let builder = match kind % 4 {
        0 => Message::signal(path, "org.freedesktop.systemd1.Manager", member).unwrap(),
        1 => Message::method_return(&call.header()).unwrap(),
        2 => Message::error(&call.header(), "org.freedesktop.systemd1.NoSuchUnit").unwrap(),
        _ => return call,
    };
    let builder = if unique {
        builder.sender(":1.42").unwrap()
    } else {
        builder
    };
    builder.endian(endian).build(&(body, 3u32)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn rewritten_messages_keep_everything_but_the_sender(
        kind in 0u8..4,
        segs in prop::collection::vec("[A-Za-z_][A-Za-z0-9_]{0,12}", 0..4),
        member in "[A-Za-z][A-Za-z0-9_]{0,20}",
        body in "[^\\x00]{0,40}",
        unique in any::<bool>(),
        well_known in prop::option::of("[a-z]{1,8}(\\.[a-z]{1,8}){1,3}"),
        big in any::<bool>(),
    ) {
        let endian = if big { Endian::Big } else { Endian::Little };
        let path = format!("/{}", segs.join("/"));
        let orig = sample(kind, &path, &member, &body, unique, endian);
        let bytes = orig.data().to_vec();
        let sent = match &well_known {
            Some(name) => add_sender(&bytes, name),
            None => bytes.clone(),
        };
        prop_assert_eq!(message_len(sent[..16].try_into().unwrap()), Some(sent.len()));
        let out = drop_sender(&sent).unwrap();
        // Idempotent, and without any SENDER the bytes are untouched.
        let again = drop_sender(&out);
        prop_assert_eq!(again.as_deref(), Some(&out[..]));
        if !unique {
            prop_assert_eq!(&out, &bytes);
        }
        let back = parse(out).unwrap();
        let (h, o) = (back.header(), orig.header());
        prop_assert!(h.sender().is_none());
        prop_assert_eq!(h.message_type(), o.message_type());
        prop_assert_eq!(h.primary().serial_num(), o.primary().serial_num());
        prop_assert_eq!(h.path(), o.path());
        prop_assert_eq!(h.member(), o.member());
        prop_assert_eq!(h.interface(), o.interface());
        prop_assert_eq!(h.reply_serial(), o.reply_serial());
        prop_assert_eq!(h.error_name(), o.error_name());
        prop_assert_eq!(h.destination(), o.destination());
        let want: (String, u32) = orig.body().deserialize().unwrap();
        let got: (String, u32) = back.body().deserialize().unwrap();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), le in any::<bool>()) {
        let _ = drop_sender(&bytes);
        let mut framed = bytes.clone();
        if let Some(b) = framed.first_mut() {
            *b = if le { b'l' } else { b'B' };
        }
        let _ = drop_sender(&framed);
        if let Ok(fixed) = <[u8; 16]>::try_from(framed.get(..16).unwrap_or_default()) {
            if let Some(n) = message_len(&fixed) {
                prop_assert!(n <= MAX_MESSAGE);
            }
        }
    }

    #[test]
    fn corrupted_messages_never_panic(pos in 0usize..200, val in any::<u8>()) {
        let bytes = add_sender(sample(1, "/a/b", "M", "x", true, Endian::Little).data(), "org.x.y");
        let mut bad = bytes.clone();
        let at = pos % bad.len();
        bad[at] = val;
        let _ = drop_sender(&bad);
        let _ = drop_sender(&bad[..at]);
    }
}

#[test]
fn oversized_and_unknown_frames_are_refused() {
    let mut fixed = [0u8; 16];
    fixed[0] = b'l';
    fixed[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(message_len(&fixed), None);
    fixed[0] = b'x';
    fixed[4..8].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(message_len(&fixed), None);
    assert!(drop_sender(b"l\x02\x01\x01").is_none());
    let mut bogus = vec![b'l', 2, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 200, 0, 0, 0];
    bogus.extend_from_slice(&[7, 1, b's', 0]);
    assert!(drop_sender(&bogus).is_none());
}

/// What `pump_down` makes of a server that sent `input` and closed.
fn pump(input: &[u8]) -> (std::io::Result<()>, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut out = Vec::new();
    let result = rt.block_on(pump_down(BufReader::new(input), &mut out));
    (result, out)
}

#[test]
fn end_of_stream_inside_a_fixed_header_is_an_error() {
    let whole = method_call("/x", "M", Endian::Little).data().to_vec();
    let mut input = b"OK 0123\r\n".to_vec();
    input.extend_from_slice(&whole);
    let (result, out) = pump(&input);
    assert!(result.is_ok(), "{result:?}");
    assert!(out.ends_with(&whole));
    input.extend_from_slice(&whole[..6]);
    let (result, _) = pump(&input);
    assert_eq!(
        result.map_err(|e| e.kind()),
        Err(ErrorKind::UnexpectedEof),
        "a cut-off header passed for a clean close"
    );
}

#[path = "sd_private_relay_tests.rs"]
mod relay;
