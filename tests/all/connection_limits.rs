//! What connections may hold of a node (issue 8): idle, slowly-sent and half-sent requests
//! are closed within the timeouts; one address cannot hold more than its share of
//! connections, and a refusal is logged and counted; SIGTERM ends event streams, stops the
//! node within its bound and removes `api.addr`.

use crate::support::{NodeProcess, init_node, tempdir};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Read from `s` until the node closes it, writing `trickle` (a byte at a time, every
/// 200 ms) meanwhile; what was read and how long it took, or `None` after `limit`.
fn closed_within(mut s: TcpStream, trickle: &[u8], limit: Duration) -> Option<(Duration, String)> {
    let start = Instant::now();
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    let (mut next, mut trickling) = (trickle.iter().cycle(), true);
    s.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => read.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // A write the node refuses ends the trickle; reading goes on to its answer.
                if let Some(b) = next.next().filter(|_| trickling)
                    && s.write_all(&[*b]).is_err()
                {
                    trickling = false;
                }
            }
            Err(_) => break,
        }
        if start.elapsed() > limit {
            return None;
        }
    }
    Some((start.elapsed(), String::from_utf8_lossy(&read).into_owned()))
}

fn connect(node: &NodeProcess, first: &str) -> TcpStream {
    let mut s = TcpStream::connect(node.addr()).expect("connect");
    s.write_all(first.as_bytes()).expect("write");
    s
}

#[test]
fn idle_slow_and_half_sent_requests_are_closed_within_the_timeouts() {
    let d = tempdir();
    init_node(d.path(), &[]);
    // Room for every slow body: none of them is refused as busy.
    let node = NodeProcess::start(d.path(), &["--http-header-timeout-ms", "1000", "--http-body-timeout-ms", "1500", "--http-max-expensive-requests", "32"]);
    let limit = Duration::from_secs(4);
    let mut threads = vec![];
    let mut spawn = |kind: &'static str, s: TcpStream, trickle: &'static [u8]| {
        threads.push((kind, std::thread::spawn(move || closed_within(s, trickle, limit))));
    };
    for _ in 0..20 {
        // Idle: connected, nothing sent.
        spawn("idle", connect(&node, ""), b"");
        // Slowloris: headers a byte at a time, never finished.
        spawn("slow headers", connect(&node, "GET /v1/health HTTP/1.1\r\nHost: joule\r\nX-Slow: "), b"a");
    }
    for _ in 0..10 {
        // A body a byte at a time: the whole of it is due within the body timeout.
        let head = "POST /v1/tx HTTP/1.1\r\nHost: joule\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n";
        spawn("slow body", connect(&node, head), b"z");
    }
    // A keep-alive connection that sent one request, then nothing.
    spawn("keep-alive", connect(&node, "GET /v1/health HTTP/1.1\r\nHost: joule\r\n\r\n"), b"");
    for (kind, t) in threads {
        let (took, read) = t.join().expect("connection thread").unwrap_or_else(|| panic!("{kind} connection still open after {limit:?}"));
        assert!(took >= Duration::from_millis(800), "{kind} connection closed after only {took:?}");
        match kind {
            "slow body" => {
                assert!(read.starts_with("HTTP/1.1 408"), "{read}");
                assert!(read.contains("\"code\":\"body_timeout\""), "{read}");
            }
            "keep-alive" => assert!(read.starts_with("HTTP/1.1 200"), "{read}"),
            _ => assert!(read.is_empty(), "{kind}: {read}"),
        }
    }
    assert_eq!(node.get("/v1/health").0, 200);
    let metrics = String::from_utf8(node.get_bytes("/metrics")).expect("UTF-8");
    for phase in ["headers", "body"] {
        assert!(metrics.contains(&format!("http_timeouts_total{{phase=\"{phase}\"}}")), "{metrics}");
    }
}

#[test]
fn one_address_cannot_hold_more_than_its_connections_and_a_refusal_is_logged_and_counted() {
    let d = tempdir();
    init_node(d.path(), &[]);
    // From node.toml, as an operator sets it.
    let toml = d.path().join("node.toml");
    let text = std::fs::read_to_string(&toml).expect("node.toml");
    std::fs::write(&toml, format!("{text}\n[http]\nmax-connections-per-address = 8\n")).expect("node.toml");
    let (node, log) = NodeProcess::start_logged(d.path(), &[]);
    let held: Vec<TcpStream> = (0..8).map(|_| connect(&node, "")).collect();
    // Give the node time to accept them all.
    std::thread::sleep(Duration::from_millis(300));
    let ninth = connect(&node, "GET /v1/health HTTP/1.1\r\nHost: joule\r\n\r\n");
    let (took, read) = closed_within(ninth, b"", Duration::from_secs(3)).expect("the ninth connection from one address stayed open");
    assert!(read.is_empty(), "the ninth connection was served: {read}");
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    drop(held);
    // Their places are free again (until the node has seen them close, a new connection
    // is still refused: a reset, not an answer).
    let start = Instant::now();
    let probe = NodeProcess::probe(&node.base);
    while probe.try_get("/v1/health").is_none() {
        assert!(start.elapsed() < Duration::from_secs(3), "no place freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(node.get("/v1/health").0, 200);
    let metrics = String::from_utf8(node.get_bytes("/metrics")).expect("UTF-8");
    assert!(metrics.contains("http_connections_refused_total{reason=\"max_connections_per_address\"}"), "{metrics}");
    assert!(metrics.contains("# HELP http_connections_open") && metrics.contains("\nhttp_connections_open "), "{metrics}");
    // The node's log reaches the test through a pipe and a reader thread: wait for it.
    let line = "connections from 127.0.0.1 are open (max-connections-per-address)";
    let start = Instant::now();
    loop {
        let logged = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if logged.contains(line) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the refusal was not logged: {logged}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_ends_event_streams_stops_the_node_in_time_and_removes_api_addr() {
    let d = tempdir();
    init_node(d.path(), &["--block-interval-ms", "200", "--empty-blocks"]);
    let mut node = NodeProcess::start(d.path(), &["--shutdown-timeout-ms", "3000"]);
    let addr_file = d.path().join("api.addr");
    assert!(addr_file.exists());
    let mut stream = connect(&node, "GET /v1/blocks/stream HTTP/1.1\r\nHost: joule\r\n\r\n");
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).expect("stream answer");
    assert_eq!(&head, b"HTTP/1.1 200");
    let subscriber = std::thread::spawn(move || closed_within(stream, b"", Duration::from_secs(20)));
    let _idle = connect(&node, "");
    std::thread::sleep(Duration::from_millis(300));

    let start = Instant::now();
    let killed = std::process::Command::new("kill").args(["-TERM", &node.child.id().to_string()]).status().expect("kill -TERM");
    assert!(killed.success());
    let status = loop {
        if let Some(status) = node.child.try_wait().expect("wait") {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the node still runs 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    eprintln!("the node stopped {took:?} after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(3), "the node took {took:?} to stop (bound: 3 s)");
    assert!(!addr_file.exists(), "api.addr is left behind");
    let (_, events) = subscriber.join().expect("subscriber").expect("the event stream did not end");
    assert!(events.contains("event: block"), "{events}");
}
