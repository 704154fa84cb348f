use super::*;
use crate::config::TcpOptions;
use crate::{link, sasl};
use futures_util::StreamExt;
use std::os::fd::AsFd;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zbus::message::Type;

/// Only catches hangs: every step below takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(10);

const NO_OPTS: TcpOptions = TcpOptions {
    ip_receive_errors: false,
    keepalive_time: 0,
    keepalive_interval: 0,
    keepalive_count: 0,
};

async fn read_raw(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut msg = vec![0u8; wire::FIXED_HEADER];
    s.read_exact(&mut msg).await.expect("fixed header");
    let total = wire::message_len(&msg).expect("plausible message");
    msg.resize(total, 0);
    s.read_exact(&mut msg[wire::FIXED_HEADER..])
        .await
        .expect("message");
    msg
}

/// An upstream controller stamps SENDER=org.eclipse.bluechi on everything it sends; our agent's
/// link must parse those messages (zbus alone panics on them) and answer.
#[tokio::test]
async fn agent_link_reads_messages_stamped_by_an_upstream_controller() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        sasl::server_handshake(&mut s, &link::new_guid(), false)
            .await
            .unwrap();
        let call = Message::method_call("/org/eclipse/bluechi/internal/agent", "Ping")
            .and_then(|b| b.interface("org.eclipse.bluechi.internal.Agent"))
            .and_then(|b| b.build(&("hello",)))
            .unwrap();
        let signal = Message::signal("/org/eclipse/bluechi/internal", "a.b.C", "Heartbeat")
            .and_then(|b| b.build(&()))
            .unwrap();
        for m in [&signal, &call] {
            let stamped = wire::set_sender(m.data(), "org.eclipse.bluechi").unwrap();
            s.write_all(&stamped).await.unwrap();
        }
        // The agent's reply, which must name our call as the one it answers.
        read_raw(&mut s).await
    });
    let mut stream = link::connect(&format!("tcp:host=127.0.0.1,port={port}"), &NO_OPTS)
        .await
        .unwrap();
    let conn = zbus::Connection::from(&stream);
    let mut members = Vec::new();
    while members.len() < 2 {
        let m = tokio::time::timeout(DEADLINE, stream.next())
            .await
            .expect("agent link hung")
            .expect("stream ended")
            .expect("message parsed");
        let h = m.header();
        assert_eq!(h.sender(), None, "SENDER must be gone");
        members.push(h.member().map(|m| m.to_string()).unwrap_or_default());
        if m.message_type() == Type::MethodCall {
            let (s,): (String,) = m.body().deserialize().unwrap();
            assert_eq!(s, "hello");
            conn.reply(&h, &("pong",)).await.unwrap();
        }
    }
    assert_eq!(members, ["Heartbeat", "Ping"]);
    let reply = tokio::time::timeout(DEADLINE, fake).await.unwrap().unwrap();
    assert_eq!(wire::sender(&reply), None, "the agent stamps nothing");
    assert_eq!(reply[1], 2, "a method return");
}

/// Our controller's link stamps its well-known name on what it sends, including replies.
#[tokio::test]
async fn controller_link_stamps_its_name() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let stream = link::accept_tcp(s, &NO_OPTS, &link::new_guid(), "t", LinkLimits::trusted())
            .await
            .unwrap()
            .stream;
        let conn = zbus::Connection::from(&stream);
        conn.emit_signal(None::<&str>, "/x", "a.b.C", "Heartbeat", &())
            .await
            .unwrap();
        // Keep the connection until the peer has read.
        (stream, conn)
    });
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    sasl::client_handshake(&mut s).await.unwrap();
    let raw = tokio::time::timeout(DEADLINE, read_raw(&mut s))
        .await
        .expect("no signal");
    assert_eq!(wire::sender(&raw).as_deref(), Some("org.eclipse.bluechi"));
    assert_eq!(wire::string_field(&raw, 3).as_deref(), Some("Heartbeat"));
    drop(server);
}

/// Descriptors keep travelling with their message through both wrappers on a unix socket.
#[tokio::test]
async fn file_descriptors_pass_through_the_wrappers() {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let guid = link::new_guid();
    let g = guid.clone();
    let server = tokio::spawn(async move {
        let (split, _) = wrap(a, Some("org.eclipse.bluechi"), "a", LinkLimits::trusted())
            .await
            .unwrap();
        zbus::connection::Builder::authenticated_socket(split, g)
            .unwrap()
            .p2p()
            .build()
            .await
            .unwrap()
    });
    let (split, _) = wrap(b, None, "b", LinkLimits::trusted()).await.unwrap();
    let client = zbus::connection::Builder::authenticated_socket(split, guid)
        .unwrap()
        .p2p()
        .build_message_stream()
        .await
        .unwrap();
    let server = server.await.unwrap();
    let file = tempfile::tempfile().unwrap();
    let fd = zvariant::Fd::from(std::os::fd::AsFd::as_fd(&file));
    server
        .emit_signal(None::<&str>, "/x", "a.b.C", "Fd", &(fd, "after"))
        .await
        .unwrap();
    let mut client = client;
    let m = tokio::time::timeout(DEADLINE, client.next())
        .await
        .expect("hung")
        .expect("ended")
        .expect("parsed");
    let (got, tail): (zvariant::OwnedFd, String) = m.body().deserialize().unwrap();
    assert_eq!(tail, "after");
    use std::os::unix::fs::MetadataExt;
    let a = file.metadata().unwrap();
    let b = std::fs::File::from(std::os::fd::OwnedFd::from(got))
        .metadata()
        .unwrap();
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
}

/// Garbage after a valid prefix ends the agent's stream with an error instead of a panic.
#[tokio::test]
async fn garbage_ends_the_agent_link() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        sasl::server_handshake(&mut s, &link::new_guid(), false)
            .await
            .unwrap();
        // A little-endian header claiming an unknown field signature.
        let mut bad = b"l\x04\x01\x01\x00\x00\x00\x00\x01\x00\x00\x00\x08\x00\x00\x00".to_vec();
        bad.extend_from_slice(b"\x07\x01z\x00\x00\x00\x00\x00");
        s.write_all(&bad).await.unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    let mut stream = link::connect(&format!("tcp:host=127.0.0.1,port={port}"), &NO_OPTS)
        .await
        .unwrap();
    let outcome = tokio::time::timeout(DEADLINE, async {
        let mut parsed = 0;
        while let Some(item) = stream.next().await {
            if item.is_ok() {
                parsed += 1;
            }
        }
        parsed
    })
    .await
    .expect("agent link hung on garbage");
    assert_eq!(outcome, 0);
}

/// Hands out `chunks` one read at a time, then either ends the stream or never answers again.
#[derive(Debug)]
struct Scripted {
    chunks: std::collections::VecDeque<Vec<u8>>,
    stall: bool,
}

#[async_trait::async_trait]
impl ReadHalf for Scripted {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
        let Some(mut chunk) = self.chunks.pop_front() else {
            if self.stall {
                std::future::pending::<()>().await;
            }
            return Ok((0, Vec::new()));
        };
        let n = buf.len().min(chunk.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n < chunk.len() {
            self.chunks.push_front(chunk.split_off(n));
        }
        Ok((n, Vec::new()))
    }
}

fn header_announcing(body: u32) -> Vec<u8> {
    let mut h = vec![b'l', 1, 0, 1];
    h.extend_from_slice(&body.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h
}

/// A peer announcing 100 MiB and then stalling after 10 bytes costs little memory.
#[test]
fn a_stalled_huge_message_does_not_commit_its_announced_size() {
    use futures_util::FutureExt;
    let mut strip = StripSender::new(
        Scripted {
            chunks: [header_announcing(100 * 1024 * 1024), vec![0; 10]].into(),
            stall: true,
        },
        test_control(wire::MAX_MESSAGE),
    );
    let mut buf = [0u8; 64];
    // Every read but the stalled one is ready at once, so one poll gets to the stall.
    assert!(strip.recvmsg(&mut buf).now_or_never().is_none());
    assert!(!strip.inbox.is_empty());
    assert!(
        strip.inbox.capacity() <= 2 * wire::READ_CHUNK,
        "capacity {}",
        strip.inbox.capacity()
    );
}

#[test]
fn end_of_stream_inside_a_message_is_an_error_but_before_one_is_not() {
    use futures_util::FutureExt;
    let mut cut = StripSender::new(
        Scripted {
            chunks: [header_announcing(8)[..5].to_vec()].into(),
            stall: false,
        },
        test_control(wire::MAX_MESSAGE),
    );
    let mut buf = [0u8; 64];
    let err = cut.recvmsg(&mut buf).now_or_never().expect("ready");
    assert_eq!(
        err.map(|(n, _)| n).map_err(|e| e.kind()),
        Err(ErrorKind::UnexpectedEof)
    );
    let mut clean = StripSender::new(
        Scripted {
            chunks: Default::default(),
            stall: false,
        },
        test_control(wire::MAX_MESSAGE),
    );
    let end = clean.recvmsg(&mut buf).now_or_never().expect("ready");
    assert_eq!(end.map(|(n, _)| n).map_err(|e| e.kind()), Ok(0));
}

/// A control handle on a throwaway socket, for wrappers tested without one.
fn test_control(max_message: usize) -> LinkControl {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let limits = LinkLimits {
        max_message,
        ..LinkLimits::trusted()
    };
    LinkControl::new(
        a.as_fd().try_clone_to_owned().unwrap(),
        "test".into(),
        limits,
    )
}

/// A header over the link's cap is refused before anything is allocated for it, and the
/// link is dropped; raising the cap (as registration does) lets the same size through.
#[test]
fn messages_over_the_cap_are_refused_until_it_is_raised() {
    use futures_util::FutureExt;
    let scripted = || Scripted {
        chunks: [header_announcing(100 * 1024)].into(),
        stall: true,
    };
    let control = test_control(64 * 1024);
    let mut strip = StripSender::new(scripted(), control.clone());
    let mut buf = [0u8; 64];
    let refused = strip.recvmsg(&mut buf).now_or_never().expect("ready");
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::InvalidData)
    );
    assert!(
        control.is_closed(),
        "an oversized message must drop the link"
    );

    let control = test_control(64 * 1024);
    control.set_max_message(wire::MAX_MESSAGE);
    let mut strip = StripSender::new(scripted(), control.clone());
    assert!(
        strip.recvmsg(&mut buf).now_or_never().is_none(),
        "waits for the body"
    );
    assert!(!control.is_closed());
}

/// A peer that never reads: every send returns at once, the queue stops at its bound and the
/// link is dropped, and the peer then sees the end of the stream.
#[tokio::test]
async fn a_peer_that_never_reads_is_dropped_at_the_queue_bound() {
    let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
    let limits = LinkLimits {
        max_queued: 256 * 1024,
        ..LinkLimits::trusted()
    };
    let (conn, control) = wrapped_connection(ours, "silent peer", limits).await;
    let payload = "x".repeat(4096);
    let mut sent = 0usize;
    let outcome = tokio::time::timeout(DEADLINE, async {
        loop {
            let r = conn
                .emit_signal(None::<&str>, "/x", "a.b.C", "Spam", &(payload.as_str(),))
                .await;
            if r.is_err() {
                return sent;
            }
            sent += 1;
            assert!(sent < 100_000, "the queue never filled");
        }
    })
    .await
    .expect("a send blocked on a peer that does not read");
    assert!(control.is_closed());
    // The kernel buffers some; what waits in our queue is bounded by the limit.
    assert!(
        outcome * 4096 < 256 * 1024 + 4 * 1024 * 1024,
        "sent {outcome}"
    );
    assert!(
        control.queued() <= 256 * 1024 + 8192,
        "queued {}",
        control.queued()
    );
    // Shut down both ways: the silent peer reads what the kernel held, then the end.
    let mut theirs = theirs;
    let mut sink = Vec::new();
    tokio::time::timeout(DEADLINE, theirs.read_to_end(&mut sink))
        .await
        .expect("the dropped link never ended")
        .unwrap();
}

/// A peer that stays connected and never reads: the queue stays under its bound, but the
/// stalled write drops the link instead of pinning it (and its writer task) forever.
#[tokio::test]
async fn a_write_that_makes_no_progress_drops_the_link() {
    let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
    let limits = LinkLimits {
        write_stall: std::time::Duration::from_millis(300),
        ..LinkLimits::trusted()
    };
    let (conn, control) = wrapped_connection(ours, "silent peer", limits).await;
    // Far below the queue bound, far above what the socket buffers hold.
    let payload = "x".repeat(64 * 1024);
    for _ in 0..64 {
        if conn
            .emit_signal(None::<&str>, "/x", "a.b.C", "Big", &(payload.as_str(),))
            .await
            .is_err()
        {
            break;
        }
    }
    let start = std::time::Instant::now();
    while !control.is_closed() {
        assert!(start.elapsed() < DEADLINE, "a stalled write kept the link");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(theirs);
}

/// Closing a link flushes what is queued before the socket closes.
#[tokio::test]
async fn closing_a_link_flushes_its_queue() {
    let (ours, mut theirs) = tokio::net::UnixStream::pair().unwrap();
    let (conn, control) = wrapped_connection(ours, "peer", LinkLimits::trusted()).await;
    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        theirs.read_to_end(&mut all).await.map(|_| all.len())
    });
    for _ in 0..100 {
        conn.emit_signal(None::<&str>, "/x", "a.b.C", "Last", &("words",))
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
    // Written out by the time close returns, as a daemon exiting next relies on.
    assert_eq!(
        control.queued(),
        0,
        "close returned before the queue went out"
    );
    let got = tokio::time::timeout(DEADLINE, reader)
        .await
        .expect("the link never closed")
        .unwrap()
        .unwrap();
    assert!(got >= 100 * 40, "only {got} bytes arrived before the end");
}

/// A slow reader that keeps taking bytes is not a stalled one: a message that takes many
/// times the stall limit to go out still goes out whole.
#[tokio::test]
async fn a_slow_reader_is_not_dropped() {
    let (ours, mut theirs) = tokio::net::UnixStream::pair().unwrap();
    let stall = std::time::Duration::from_millis(200);
    let limits = LinkLimits {
        write_stall: stall,
        ..LinkLimits::trusted()
    };
    let (conn, control) = wrapped_connection(ours, "slow peer", limits).await;
    let payload = "x".repeat(4 * 1024 * 1024);
    conn.emit_signal(None::<&str>, "/x", "a.b.C", "Big", &(payload.as_str(),))
        .await
        .unwrap();
    // 256 KiB every 50 ms: about 0.8 s for the message, four times the stall limit.
    let mut got = 0;
    let mut buf = vec![0u8; 256 * 1024];
    while got < payload.len() {
        let n = tokio::time::timeout(DEADLINE, theirs.read(&mut buf))
            .await
            .expect("the message stopped coming")
            .unwrap();
        assert!(n > 0, "the link was dropped after {got} bytes");
        got += n;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!control.is_closed(), "a slow reader was dropped");
}

/// A zbus peer connection over `ours`, wrapped as the peer link wraps its sockets.
async fn wrapped_connection(
    ours: tokio::net::UnixStream,
    label: &str,
    limits: LinkLimits,
) -> (zbus::Connection, LinkControl) {
    let (split, control) = wrap(ours, None, label, limits).await.unwrap();
    let conn = zbus::connection::Builder::authenticated_socket(split, link::new_guid())
        .unwrap()
        .p2p()
        .build()
        .await
        .unwrap();
    (conn, control)
}
