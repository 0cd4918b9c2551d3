//! What one request may take from a node (issue 8): batches are refused as soon as they
//! pass the transaction limit, with memory bounded by the body's size and the async workers
//! free for everyone else; expensive requests over the node's capacity get 503 at once;
//! wrong admin tokens are logged and limited per address; an unusable admin token stops
//! the node before it starts.

use crate::support::{NodeProcess, init_node, joule, tempdir};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A `/proc/PID/status` field in KiB (`VmHWM`: peak resident memory).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB")
}

/// Polls `/v1/health` until stopped; the slowest answer.
struct HealthProbe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Duration, usize)>,
}

impl HealthProbe {
    fn start(base: &str) -> HealthProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{base}/v1/health");
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let agent = NodeProcess::agent();
            let (mut slowest, mut answers) = (Duration::ZERO, 0);
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                let status = agent.get(&url).call().map(|r| r.status().as_u16()).unwrap_or(0);
                assert_eq!(status, 200, "GET /v1/health while batches are refused");
                slowest = slowest.max(t.elapsed());
                answers += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (slowest, answers)
        });
        HealthProbe { stop, thread }
    }

    fn finish(self) -> (Duration, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("health probe")
    }
}

#[test]
fn oversized_batches_are_refused_early_with_bounded_memory_and_health_stays_fast() {
    const SIZE: usize = 63 << 20;
    let d = tempdir();
    init_node(d.path(), &[]);
    let node = NodeProcess::start(d.path(), &[]);
    let pid = node.child.id();
    // 16.5 million empty frames; a JSON array of 33 million zeros.
    let frames = Arc::new(vec![0u8; SIZE]);
    let mut json = Vec::with_capacity(SIZE);
    json.push(b'[');
    while json.len() < SIZE - 2 {
        json.extend_from_slice(b"0,");
    }
    json.extend_from_slice(b"0]");
    let json = Arc::new(json);
    assert_eq!(node.get("/v1/health").0, 200);
    let before = status_kib(pid, "VmHWM");
    eprintln!("before the batches: peak RSS {} MiB, RSS {} MiB", before / 1024, status_kib(pid, "VmRSS") / 1024);

    let probe = HealthProbe::start(&node.base);
    for (content_type, body) in [("application/octet-stream", &frames), ("application/json", &json)] {
        let t = Instant::now();
        let (s, v) = node.post_raw("/v1/txs", content_type, body, false);
        assert_eq!((s, v["code"].as_str()), (413, Some("too_large")), "{content_type}: {v}");
        assert!(v["error"].as_str().unwrap_or_default().contains("10000"), "{v}");
        eprintln!("63 MiB {content_type} batch refused in {:?}; peak RSS now {} MiB", t.elapsed(), status_kib(pid, "VmHWM") / 1024);
    }
    let growth = (status_kib(pid, "VmHWM") - before) * 1024;
    eprintln!("peak RSS grew by {} MiB for 63 MiB bodies", growth >> 20);
    assert!(growth <= 2 * SIZE as u64 + (64 << 20), "peak RSS grew by {} MiB for a 63 MiB body", growth >> 20);

    // Two at once, as in the report that found the stalls.
    let both: Vec<_> = (0..2)
        .map(|_| {
            let (base, json) = (node.base.clone(), json.clone());
            std::thread::spawn(move || {
                let mut r = NodeProcess::agent().post(&format!("{base}/v1/txs")).header("Content-Type", "application/json").send(&json[..]).expect("batch");
                let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default();
                (r.status().as_u16(), v)
            })
        })
        .collect();
    for t in both {
        let (s, v) = t.join().expect("batch thread");
        // 413, or 503 `busy` if the node had no place left for it: either way JSON.
        assert!(s == 413 || s == 503, "{s} {v}");
        assert!(v["code"].is_string() && v["error"].is_string(), "{v}");
    }
    let (slowest, answers) = probe.finish();
    eprintln!("/v1/health: {answers} answers while batches were refused, slowest {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "/v1/health took {slowest:?} while batches were refused");
    eprintln!("peak RSS after concurrent batches: {} MiB (at start: {} MiB)", status_kib(pid, "VmHWM") / 1024, before / 1024);
}

#[test]
fn expensive_requests_over_the_limit_get_503_with_retry_after_while_reads_stay_fast() {
    let d = tempdir();
    init_node(d.path(), &[]);
    let node = NodeProcess::start(d.path(), &["--http-max-expensive-requests", "1", "--http-queue-timeout-ms", "300"]);
    // A batch takes the only place and keeps it while its body trickles in.
    let body = joule_client::wire::frame_batch([&[7u8; 96][..]]);
    let mut slow = TcpStream::connect(node.addr()).expect("connect");
    write!(slow, "POST /v1/txs HTTP/1.1\r\nHost: joule\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n", body.len()).expect("write");
    slow.write_all(&body[..2]).expect("write");
    let agent = NodeProcess::agent();
    let start = Instant::now();
    let (retry_after, answer) = loop {
        let mut r = agent.post(&format!("{}/v1/tx", node.base)).header("Content-Type", "application/octet-stream").send(&b"\x01junk"[..]).expect("POST /v1/tx");
        if r.status().as_u16() == 503 {
            let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
            break (retry, serde_json::from_str::<Value>(&r.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default());
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no 503 while the only place is taken (got {})", r.status());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(answer["code"], "busy", "{answer}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    // Reads are not expensive.
    let t = Instant::now();
    assert_eq!(node.get("/v1/health").0, 200);
    assert_eq!(node.get("/v1/status").0, 200);
    assert!(t.elapsed() < Duration::from_secs(1));
    let metrics = String::from_utf8(node.get_bytes("/metrics")).expect("UTF-8");
    assert!(metrics.lines().any(|l| l.starts_with("http_requests_shed_total ") && !l.ends_with(" 0")), "{metrics}");
    assert!(metrics.contains("# HELP http_requests_shed_total"));
    // The batch completes and frees its place.
    slow.write_all(&body[2..]).expect("write");
    let mut answer = [0u8; 12];
    slow.read_exact(&mut answer).expect("read");
    assert_eq!(&answer, b"HTTP/1.1 200");
    let (s, v) = node.post_raw("/v1/tx", "application/octet-stream", b"\x01junk", false);
    assert_eq!(s, 400, "{v}");
}

#[test]
fn a_burst_from_more_clients_than_places_waits_its_turn_instead_of_being_refused() {
    let d = tempdir();
    init_node(d.path(), &[]);
    let node = NodeProcess::start(d.path(), &["--http-max-expensive-requests", "1"]);
    // Eight clients at once against one place: each request waits for it (milliseconds),
    // none is shed while the node keeps up.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let agent = NodeProcess::agent();
                    (0..25)
                        .map(|_| {
                            let r = agent.post(&format!("{}/v1/tx", node.base)).header("Content-Type", "application/octet-stream").send(&b"\x01junk"[..]);
                            r.map_or(0, |r| r.status().as_u16())
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("client thread")).collect()
    });
    assert_eq!(statuses.len(), 200);
    assert!(statuses.iter().all(|&s| s == 400), "every junk transaction answered 400 malformed, none 503: {statuses:?}");
}

#[test]
fn wrong_admin_tokens_are_logged_and_limited_per_address() {
    let d = tempdir();
    init_node(d.path(), &[]);
    let (node, log) = NodeProcess::start_logged(d.path(), &[]);
    let agent = NodeProcess::agent();
    let plugins = format!("{}/v1/plugins", node.base);
    let try_token = |token: Option<&str>| {
        let mut req = agent.get(&plugins);
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut r = req.call().expect("GET /v1/plugins");
        let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default();
        (r.status().as_u16(), v["code"].as_str().unwrap_or_default().to_string(), retry)
    };
    let wrong = "wrong-token-wrong-token-wrong-token";
    for i in 1..=10 {
        assert_eq!(try_token(Some(wrong)), (401, "bad_token".into(), None), "wrong token {i}");
    }
    let (s, code, retry) = try_token(Some(wrong));
    assert_eq!((s, code.as_str()), (429, "too_many_failures"));
    assert!(retry.is_some_and(|r| (1..=60).contains(&r)), "Retry-After {retry:?}");
    // While blocked, no token is checked, not even the right one.
    assert_eq!(try_token(Some(&node.token)).0, 429);
    // No token is no attempt; public endpoints are not affected.
    assert_eq!(try_token(None), (401, "no_token".into(), None));
    assert_eq!(node.get("/v1/health").0, 200);
    let metrics = String::from_utf8(node.get_bytes("/metrics")).expect("UTF-8");
    assert!(metrics.contains("http_admin_auth_failures_total{outcome=\"blocked\"}"), "{metrics}");
    // The node's log reaches the test through a pipe and a reader thread: wait for it.
    let start = std::time::Instant::now();
    loop {
        let logged = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if logged.contains("wrong credentials (bad_token) from 127.0.0.1") && logged.contains("too many wrong credentials") {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "the refusals were not logged: {logged}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Start `joule node` and wait for it to exit (at most `limit`): its exit code and stderr,
/// or `None` if it was still running (it is killed).
fn node_exit(dir: &std::path::Path, env: &[(&str, &str)], limit: Duration) -> Option<(i32, String)> {
    let mut child = joule()
        .args(["node", "--dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start joule node");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            let _ = child.stderr.take().expect("stderr").read_to_string(&mut err);
            return Some((status.code().unwrap_or(-1), err));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_unusable_admin_token_stops_the_node_saying_what_to_do() {
    let d = tempdir();
    let file = d.path().join("admin.token");
    for bad in ["abc", "", "\n", &"a".repeat(31), "this token has spaces in it, so no good"] {
        std::fs::write(&file, bad).expect("write admin.token");
        let (code, err) = node_exit(d.path(), &[], Duration::from_secs(10)).unwrap_or_else(|| panic!("the node started with admin.token {bad:?}"));
        assert_ne!(code, 0, "{err}");
        assert!(err.contains("admin.token") && err.contains("delete the file"), "{bad:?}: {err}");
    }
    let (code, err) = node_exit(d.path(), &[("JOULE_ADMIN_TOKEN", "sixteen-chars-ok")], Duration::from_secs(10)).expect("the node started with a short token");
    assert_ne!(code, 0);
    assert!(err.contains("JOULE_ADMIN_TOKEN") && err.contains("at least 32"), "{err}");
    // A good one is taken as it is.
    let good = "0123456789abcdefghijklmnopqrstuvwxyz-._~+/=";
    std::fs::write(&file, format!("{good}\n")).expect("write admin.token");
    let node = NodeProcess::start(d.path(), &[]);
    assert_eq!(node.token, good);
    assert_eq!(node.call("GET", "/v1/plugins", None).0, 200);
}
