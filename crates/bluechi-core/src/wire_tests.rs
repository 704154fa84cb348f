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
