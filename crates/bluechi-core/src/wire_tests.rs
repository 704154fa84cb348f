use super::*;
use proptest::prelude::*;
use zbus::message::Message;

fn signal(member: &str) -> Message {
    Message::signal(
        "/org/eclipse/bluechi/internal",
        "org.eclipse.bluechi.internal.X",
        member,
    )
    .and_then(|b| b.build(&(7u32, "x.service")))
    .expect("signal")
}

/// Parses bytes the way zbus' reader does; only well-formed rewrites of zbus' own messages
/// get here.
fn parse(bytes: Vec<u8>) -> zbus::Result<Message> {
    let endian = if bytes[0] == b'l' {
        zvariant::Endian::Little
    } else {
        zvariant::Endian::Big
    };
    let ctx = zvariant::serialized::Context::new_dbus(endian, 0);
    // SAFETY: the bytes are zbus' own serialization with the SENDER field removed.
    unsafe { Message::from_bytes(zvariant::serialized::Data::new(bytes, ctx)) }
}

#[test]
fn set_then_drop_round_trips() {
    let m = signal("Heartbeat");
    let bytes = m.data().to_vec();
    let stamped = set_sender(&bytes, "org.eclipse.bluechi").expect("stamped");
    assert_eq!(message_len(&stamped), Some(stamped.len()));
    assert_eq!(sender(&stamped).as_deref(), Some("org.eclipse.bluechi"));
    let restamped = set_sender(&stamped, "a.b").expect("restamped");
    assert_eq!(sender(&restamped).as_deref(), Some("a.b"));
    assert_eq!(
        restamped.len(),
        set_sender(&bytes, "a.b").map(|v| v.len()).unwrap_or(0)
    );
    let dropped = drop_sender(&stamped).expect("dropped");
    assert_eq!(dropped, bytes);
    let parsed = parse(dropped).expect("zbus parses it");
    assert_eq!(
        parsed.header().member().map(|m| m.as_str()),
        Some("Heartbeat")
    );
    let (n, s): (u32, String) = parsed.body().deserialize().expect("body");
    assert_eq!((n, s.as_str()), (7, "x.service"));
}

#[test]
fn truncated_or_foreign_input_is_refused() {
    let bytes = signal("A").data().to_vec();
    assert!(set_sender(&bytes[..bytes.len() - 1], "x").is_none());
    assert!(drop_sender(&bytes[..10]).is_none());
    assert!(drop_sender(b"").is_none());
    let mut other = bytes.clone();
    other[0] = b'X';
    assert!(drop_sender(&other).is_none());
    let mut huge = bytes;
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(message_len(&huge), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256), name in "[a-z.]{0,40}") {
        let _ = message_len(&bytes);
        let _ = drop_sender(&bytes);
        let _ = sender(&bytes);
        if let Some(out) = set_sender(&bytes, &name) {
            prop_assert_eq!(message_len(&out), Some(out.len()));
            prop_assert_eq!(sender(&out), Some(name));
        }
    }

    #[test]
    fn corrupted_headers_never_panic(pos in 0usize..200, byte in any::<u8>(), name in "[a-z.]{1,40}") {
        let mut bytes = set_sender(signal("M").data(), &name).expect("stamped");
        let at = pos % bytes.len();
        bytes[at] = byte;
        let _ = drop_sender(&bytes);
        let _ = set_sender(&bytes, "x");
    }

    #[test]
    fn any_name_is_stamped_and_removed(name in "[a-zA-Z0-9_.:-]{1,200}", member in "[A-Z][a-z]{0,20}") {
        let m = signal(&member);
        let stamped = set_sender(m.data(), &name).expect("stamped");
        prop_assert_eq!(sender(&stamped), Some(name));
        prop_assert_eq!(drop_sender(&stamped).expect("dropped"), m.data().to_vec());
    }
}

fn big_endian_call() -> Message {
    Message::method_call("/a", "M")
        .and_then(|b| b.destination("org.freedesktop.systemd1"))
        .map(|b| b.endian(zvariant::Endian::Big))
        .and_then(|b| b.build(&("a.service", 7u32)))
        .expect("call")
}

/// `msg` with one more header field, serialized the way a peer would: (code, variant).
fn with_field(msg: &[u8], code: u8, value: zvariant::Value<'_>) -> Vec<u8> {
    let endian = if msg[0] == b'l' {
        zvariant::Endian::Little
    } else {
        zvariant::Endian::Big
    };
    // Fields start 8-aligned and nothing in them aligns coarser, so offset 0 lays them out
    // exactly as inside the header.
    let ctx = zvariant::serialized::Context::new_dbus(endian, 0);
    let field = zvariant::to_bytes(ctx, &(code, value)).expect("field serializes");
    rebuild(msg, |_| true, Some(&field)).expect("field added")
}

fn value_strategy() -> impl Strategy<Value = zvariant::Value<'static>> {
    use zvariant::Value;
    let leaf = prop_oneof![
        any::<u8>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        any::<i16>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z ]{0,12}".prop_map(Value::from),
        "(/[a-z]{1,5}){0,3}".prop_map(|p| {
            let p = if p.is_empty() { "/".to_string() } else { p };
            Value::from(zvariant::ObjectPath::try_from(p).expect("valid path"))
        }),
        proptest::collection::vec(any::<u64>(), 0..4).prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..9).prop_map(Value::from),
        proptest::collection::hash_map("[a-z]{1,4}", any::<u16>(), 0..3).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|v| Value::Value(Box::new(v))),
            proptest::collection::vec(inner, 1..4).prop_map(|fields| {
                let s = fields
                    .into_iter()
                    .fold(zvariant::StructureBuilder::new(), |b, f| b.append_field(f));
                Value::from(s.build().expect("non-empty struct"))
            }),
        ]
    })
}

#[test]
fn zbus_refuses_unknown_header_fields_so_they_are_dropped() {
    let bytes = signal("A").data().to_vec();
    let extended = with_field(&bytes, 42, zvariant::Value::from(1u8));
    assert!(parse(extended.clone()).is_err(), "zbus now accepts them");
    assert_eq!(drop_sender(&extended).expect("dropped"), bytes);
}

#[test]
fn nesting_deeper_than_the_spec_allows_is_refused() {
    let bytes = signal("A").data().to_vec();
    let mut value = zvariant::Value::from(1u32);
    for _ in 0..40 {
        value = zvariant::Value::Value(Box::new(value));
    }
    let deep = with_field(&bytes, 42, value);
    assert!(
        drop_sender(&deep).is_some(),
        "40 variants are within the limit"
    );
    // A field whose signature is 70 nested structs: refused without walking into it.
    let sig = format!("{}u{}", "(".repeat(70), ")".repeat(70));
    assert_eq!(type_len(sig.as_bytes(), 0), None);
    let sig = format!("{}u{}", "(".repeat(60), ")".repeat(60));
    assert_eq!(type_len(sig.as_bytes(), 0), Some(sig.len()));
}

#[test]
fn unknown_fields_in_big_endian_messages_are_skipped() {
    let bytes = big_endian_call().data().to_vec();
    let extended = with_field(&bytes, 200, zvariant::Value::from(vec![1u64, 2]));
    let stamped = set_sender(&extended, "org.freedesktop.systemd1").expect("stamped");
    assert_eq!(drop_sender(&stamped).expect("dropped"), bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn unknown_fields_of_any_type_pass_through(
        extra in proptest::collection::vec((10u8..=255, value_strategy()), 1..4),
        name in "[a-z]{1,8}(\\.[a-z]{1,8}){1,3}",
        big in any::<bool>(),
    ) {
        let base = if big { big_endian_call() } else { signal("Heartbeat") };
        let bytes = base.data().to_vec();
        let mut extended = bytes.clone();
        for (code, value) in extra {
            extended = with_field(&extended, code, value);
        }
        // Towards zbus: unknown fields go, everything else stays byte for byte.
        let dropped = drop_sender(&extended).expect("dropped");
        prop_assert_eq!(&dropped, &bytes);
        prop_assert!(parse(dropped).is_ok());
        // Towards sd-bus peers: they stay, untouched, next to the stamped SENDER.
        let stamped = set_sender(&extended, &name).expect("stamped");
        prop_assert_eq!(sender(&stamped), Some(name));
        prop_assert_eq!(drop_field(&stamped, FIELD_SENDER).expect("unstamped"), extended);
        prop_assert_eq!(drop_sender(&stamped).expect("dropped"), bytes);
    }
}

/// A fixed header announcing a method call with a `body`-byte body and no header fields.
fn announce(body: u32) -> Vec<u8> {
    let mut h = vec![b'l', 1, 0, 1];
    h.extend_from_slice(&body.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h
}

/// Feeds `bytes` into `inbox` in pieces of at most `step`, as reads would.
fn feed(inbox: &mut Inbox, bytes: &[u8], step: usize) -> Option<()> {
    let mut pos = 0;
    while pos < bytes.len() {
        let room = inbox.room()?;
        let n = room.len().min(step).min(bytes.len() - pos);
        room[..n].copy_from_slice(&bytes[pos..pos + n]);
        inbox.advance(n);
        pos += n;
    }
    Some(())
}

#[test]
fn inbox_memory_follows_received_bytes_not_announced_ones() {
    let mut inbox = Inbox::default();
    let mut bytes = announce(100 * 1024 * 1024);
    bytes.extend_from_slice(&[0; 10]);
    feed(&mut inbox, &bytes, usize::MAX).expect("plausible header");
    // The next read may ask for one more chunk; nothing near 100 MiB.
    assert!(!inbox.room().expect("room").is_empty());
    assert!(
        inbox.capacity() <= 2 * READ_CHUNK,
        "capacity {}",
        inbox.capacity()
    );
}

#[test]
fn inbox_reassembles_messages_and_refuses_bad_headers() {
    let m = signal("Heartbeat").data().to_vec();
    for step in [1, 7, 16, 4096] {
        let mut inbox = Inbox::default();
        assert!(inbox.is_empty());
        feed(&mut inbox, &m, step).expect("fed");
        assert_eq!(inbox.room().map(|r| r.len()), Some(0), "step {step}");
        assert_eq!(inbox.take(), m);
        assert!(inbox.is_empty());
    }
    let mut inbox = Inbox::default();
    assert_eq!(feed(&mut inbox, &announce(u32::MAX), 16), Some(()));
    assert!(inbox.room().is_none(), "oversized announcement accepted");
}
