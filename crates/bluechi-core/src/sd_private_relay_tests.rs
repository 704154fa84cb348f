//! The relay end to end: a fake manager that signs its messages the way systemd does.

use super::{add_sender, connect, message_len};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixListener;
use zbus::message::{Message, Type};

const DEADLINE: Duration = Duration::from_secs(10);
const SYSTEMD: &str = "org.freedesktop.systemd1";

/// Server side of the SASL exchange, as systemd answers zbus' client.
async fn authenticate(read: &mut BufReader<OwnedReadHalf>, write: &mut OwnedWriteHalf) {
    loop {
        let mut line = String::new();
        assert!(read.read_line(&mut line).await.unwrap() > 0, "client left");
        let line = line.trim_start_matches('\0').trim_end();
        if line.starts_with("AUTH") {
            write
                .write_all(b"OK 0123456789abcdef0123456789abcdef\r\n")
                .await
                .unwrap();
        } else if line == "NEGOTIATE_UNIX_FD" {
            write.write_all(b"AGREE_UNIX_FD\r\n").await.unwrap();
        } else if line == "BEGIN" {
            return;
        } else {
            panic!("unexpected auth line {line:?}");
        }
    }
}

async fn read_message(read: &mut BufReader<OwnedReadHalf>) -> Vec<u8> {
    let mut fixed = [0u8; 16];
    read.read_exact(&mut fixed).await.unwrap();
    let mut msg = vec![0u8; message_len(&fixed).unwrap()];
    msg[..16].copy_from_slice(&fixed);
    read.read_exact(&mut msg[16..]).await.unwrap();
    msg
}

#[tokio::test]
async fn replies_and_signals_signed_with_a_well_known_name_reach_zbus() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (read, mut write) = sock.into_split();
        let mut read = BufReader::new(read);
        authenticate(&mut read, &mut write).await;
        let call = read_message(&mut read).await;
        // SAFETY: the bytes are the message zbus just serialized.
        let ctx = zvariant::serialized::Context::new_dbus(zvariant::Endian::Little, 0);
        let call =
            unsafe { Message::from_bytes(zvariant::serialized::Data::new(call, ctx)).unwrap() };
        assert_eq!(call.header().member().unwrap().as_str(), "Subscribe");
        let signal = Message::signal(
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "JobRemoved",
        )
        .unwrap()
        .build(&(1u32, "x.service"))
        .unwrap();
        let reply = Message::method_return(&call.header())
            .unwrap()
            .build(&())
            .unwrap();
        for m in [&signal, &reply] {
            write
                .write_all(&add_sender(m.data(), SYSTEMD))
                .await
                .unwrap();
        }
        // Systemd goes away: the client's stream must end.
    });

    let conn = tokio::time::timeout(DEADLINE, connect(&path))
        .await
        .unwrap()
        .unwrap();
    let mut stream = zbus::MessageStream::from(&conn);
    let reply = tokio::time::timeout(
        DEADLINE,
        conn.call_method(
            Some(SYSTEMD),
            "/org/freedesktop/systemd1",
            Some("org.freedesktop.systemd1.Manager"),
            "Subscribe",
            &(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(reply.message_type(), Type::MethodReturn);
    assert!(reply.header().sender().is_none());
    let mut saw_signal = false;
    let ended = tokio::time::timeout(DEADLINE, async {
        while let Some(m) = stream.next().await {
            match m {
                Ok(m) if m.header().member().is_some_and(|n| n == "JobRemoved") => {
                    let (id, unit): (u32, String) = m.body().deserialize().unwrap();
                    assert_eq!((id, unit.as_str()), (1, "x.service"));
                    saw_signal = true;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "stream did not end after the server left");
    assert!(saw_signal, "JobRemoved did not arrive");
    server.await.unwrap();
}

#[tokio::test]
async fn garbage_from_the_server_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (read, mut write) = sock.into_split();
        let mut read = BufReader::new(read);
        authenticate(&mut read, &mut write).await;
        // An oversized frame: the relay must refuse it rather than allocate 4 GiB.
        let mut frame = vec![b'l', 4, 1, 1];
        frame.extend_from_slice(&u32::MAX.to_le_bytes());
        frame.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        write.write_all(&frame).await.unwrap();
        // Keep our end open: the relay, not the server, has to close the connection.
        let mut rest = Vec::new();
        let _ = read.read_to_end(&mut rest).await;
    });
    let conn = tokio::time::timeout(DEADLINE, connect(&path))
        .await
        .unwrap()
        .unwrap();
    let mut stream = zbus::MessageStream::from(&conn);
    let ended = tokio::time::timeout(DEADLINE, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "connection stayed open after garbage");
    drop(stream);
    drop(conn);
    tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap();
}
