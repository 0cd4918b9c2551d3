//! The HTTP server under the API: an accept loop of its own over hyper, because what a
//! client may hold must be bounded before a request exists, where axum's `serve` cannot
//! reach (it sets no timer, so idle and half-sent requests are held forever, and it
//! accepts every connection).
//!
//! * at most `max-connections` open connections, and `max-connections-per-address` from
//!   one client address (an IPv6 client is its /64); a connection over either is closed as
//!   soon as it is accepted, counted and logged, so one client cannot exhaust the process's
//!   file descriptors and starve everyone else;
//! * the cap stays below the process's file limit (raised to its hard limit first), so the
//!   server never runs out of descriptors for the stores and plugins;
//! * a request's headers must arrive within `header-timeout-ms`, counted from when the
//!   connection is ready for a request: hyper's header timer, which also closes idle
//!   keep-alive connections (slowloris and idle sockets alike);
//! * on Ctrl-C / SIGTERM the listener closes, event streams end, open requests get
//!   `shutdown-timeout-ms` to finish, then the node exits regardless.
//!
//! Body deadlines, body limits and load shedding are per request: [`crate::api`].

use crate::config::HttpConfig;
use anyhow::{Result, bail};
use axum::Router;
use axum::extract::ConnectInfo;
use joule_support::sync::lock;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// `--http-…` flags: each overrides the node.toml `[http]` key of the same name.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct HttpArgs {
    /// Milliseconds a client has to send a request's headers, counted from when its
    /// connection is ready for one: also how long an idle keep-alive connection stays open
    /// [node.toml http.header-timeout-ms; default 10000].
    #[arg(long)]
    pub http_header_timeout_ms: Option<u64>,
    /// Milliseconds a request's whole body has to arrive in; a slower one is answered 408
    /// [http.body-timeout-ms; default 30000].
    #[arg(long)]
    pub http_body_timeout_ms: Option<u64>,
    /// Most open connections; more are closed as soon as accepted [http.max-connections;
    /// default 1024, kept below the process's file limit].
    #[arg(long)]
    pub http_max_connections: Option<usize>,
    /// Most open connections from one client address (IPv6: one /64)
    /// [http.max-connections-per-address; default 64].
    #[arg(long)]
    pub http_max_connections_per_address: Option<usize>,
    /// Most expensive requests at once (transaction and batch submission, block import,
    /// plugin upload, admin crypto and key rotation); more are answered 503 with Retry-After
    /// [http.max-expensive-requests; default twice the cores, at least 4].
    #[arg(long)]
    pub http_max_expensive_requests: Option<usize>,
    /// Milliseconds an expensive request waits for a place when all are taken before it is
    /// answered 503 (0: at once) [http.queue-timeout-ms; default 2000].
    #[arg(long)]
    pub http_queue_timeout_ms: Option<u64>,
    /// Wrong admin tokens one client address may send within a minute; after that it is
    /// answered 429 until the minute is over [http.admin-auth-max-failures; default 10].
    #[arg(long)]
    pub admin_auth_max_failures: Option<u32>,
    /// Milliseconds open requests get to finish after Ctrl-C / SIGTERM
    /// [http.shutdown-timeout-ms; default 10000].
    #[arg(long)]
    pub shutdown_timeout_ms: Option<u64>,
}

/// The HTTP API's limits, resolved: a flag, else node.toml's `[http]`, else the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_expensive_requests: usize,
    pub queue_timeout: Duration,
    pub admin_auth_max_failures: u32,
    pub shutdown_timeout: Duration,
}

/// Descriptors kept for everything but connections: stores, plugin files, the runtime.
const RESERVED_FDS: usize = 128;

impl HttpLimits {
    pub fn resolve(args: &HttpArgs, cfg: &HttpConfig) -> Result<HttpLimits> {
        fn ms(name: &str, v: u64) -> Result<Duration> {
            if !(100..=3_600_000).contains(&v) {
                bail!("{name} must be 100 to 3600000 milliseconds, not {v}");
            }
            Ok(Duration::from_millis(v))
        }
        fn count<T: PartialOrd + Default + std::fmt::Display>(name: &str, v: T) -> Result<T> {
            if v <= T::default() {
                bail!("{name} must be at least 1");
            }
            Ok(v)
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(HttpLimits {
            header_timeout: ms("header-timeout-ms", args.http_header_timeout_ms.or(cfg.header_timeout_ms).unwrap_or(10_000))?,
            body_timeout: ms("body-timeout-ms", args.http_body_timeout_ms.or(cfg.body_timeout_ms).unwrap_or(30_000))?,
            max_connections: count("max-connections", args.http_max_connections.or(cfg.max_connections).unwrap_or(1024))?,
            max_connections_per_address: count(
                "max-connections-per-address",
                args.http_max_connections_per_address.or(cfg.max_connections_per_address).unwrap_or(64),
            )?,
            max_expensive_requests: count(
                "max-expensive-requests",
                args.http_max_expensive_requests.or(cfg.max_expensive_requests).unwrap_or((2 * cores).max(4)),
            )?,
            queue_timeout: {
                let v = args.http_queue_timeout_ms.or(cfg.queue_timeout_ms).unwrap_or(2_000);
                if v > 60_000 {
                    bail!("queue-timeout-ms must be 0 to 60000 milliseconds, not {v}");
                }
                Duration::from_millis(v)
            },
            admin_auth_max_failures: count("admin-auth-max-failures", args.admin_auth_max_failures.or(cfg.admin_auth_max_failures).unwrap_or(10))?,
            shutdown_timeout: ms("shutdown-timeout-ms", args.shutdown_timeout_ms.or(cfg.shutdown_timeout_ms).unwrap_or(10_000))?,
        })
    }
}

/// The key a client is counted under: its IPv4 address, or its IPv6 /64 (one host can
/// have a whole /64 to itself).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// A warning at most once a second per kind, saying how many were held back: under
/// attack, a limit acts thousands of times a second, and the log must stay readable.
pub(crate) fn warn_limited(kind: &'static str, message: impl FnOnce() -> String) {
    static LAST: OnceLock<Mutex<HashMap<&'static str, (Instant, u64)>>> = OnceLock::new();
    let mut last = lock(LAST.get_or_init(Default::default));
    let now = Instant::now();
    match last.get_mut(kind) {
        Some((at, held)) if now.duration_since(*at) < Duration::from_secs(1) => *held += 1,
        entry => {
            let held = entry.map_or(0, |(_, h)| *h);
            let more = if held > 0 { format!(" ({held} more like it in the last second)") } else { String::new() };
            tracing::warn!("{}{more}", message());
            last.insert(kind, (now, 0));
        }
    }
}

/// Why a connection was closed as soon as it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    MaxConnections,
    MaxPerAddress,
}

/// Open connections, in all and per client address. The map holds only addresses with
/// open connections, so it is never larger than the cap.
struct Connections {
    max: usize,
    per_address: usize,
    state: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it frees its place.
struct Slot {
    conns: Arc<Connections>,
    key: IpAddr,
}

impl Connections {
    fn new(max: usize, per_address: usize) -> Arc<Connections> {
        Arc::new(Connections { max, per_address, state: Mutex::new((0, HashMap::new())) })
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let key = client_key(ip);
        let mut state = lock(&self.state);
        let (open, by_address) = &mut *state;
        if *open >= self.max {
            return Err(Refusal::MaxConnections);
        }
        if by_address.get(&key).copied().unwrap_or(0) >= self.per_address {
            return Err(Refusal::MaxPerAddress);
        }
        *by_address.entry(key).or_insert(0) += 1;
        *open += 1;
        metrics::gauge!("http_connections_open").set(*open as f64);
        Ok(Slot { conns: self.clone(), key })
    }

    #[cfg(test)]
    fn open(&self) -> (usize, usize) {
        let state = lock(&self.state);
        (state.0, state.1.len())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = lock(&self.conns.state);
        let (open, by_address) = &mut *state;
        *open = open.saturating_sub(1);
        if let Some(n) = by_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.key);
            }
        }
        metrics::gauge!("http_connections_open").set(*open as f64);
    }
}

/// The most connections the process's file limit leaves room for, after raising its soft
/// limit to the hard one (what Go's runtime does too); `None` when there is no limit.
fn connection_room() -> Option<usize> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current.is_some() && limit.current != limit.maximum {
            let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                limit = raised;
            }
        }
        limit.current.map(|soft| {
            let soft = usize::try_from(soft).unwrap_or(usize::MAX);
            soft.saturating_sub(RESERVED_FDS).max(soft / 2)
        })
    }
    #[cfg(not(unix))]
    None
}

/// Serve `app` on `listener` within `limits` until `signal`; then stop accepting, tell
/// `shutting_down` (event streams end), and give open connections `shutdown_timeout`.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &HttpLimits,
    shutting_down: &tokio::sync::watch::Sender<bool>,
    signal: impl Future<Output = ()>,
) -> Result<()> {
    let mut max = limits.max_connections;
    if let Some(room) = connection_room().filter(|room| *room < max) {
        tracing::warn!("max-connections lowered from {max} to {room}: the process's file limit leaves room for no more");
        max = room;
    }
    let conns = Connections::new(max, limits.max_connections_per_address);
    metrics::gauge!("http_connections_open").set(0.0);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            // Out of descriptors (or a connection reset before it was accepted): say so,
            // and give the process a moment, rather than spinning on the listener.
            Err(e) => {
                metrics::counter!("http_connections_refused_total", "reason" => "accept_error").increment(1);
                warn_limited("accept", || format!("HTTP API: accepting a connection failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match conns.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                let (reason, what) = match refusal {
                    Refusal::MaxConnections => ("max_connections", format!("{max} connections are open (max-connections)")),
                    Refusal::MaxPerAddress => {
                        ("max_connections_per_address", format!("{} connections from {} are open (max-connections-per-address)", conns.per_address, peer.ip()))
                    }
                };
                metrics::counter!("http_connections_refused_total", "reason" => reason).increment(1);
                warn_limited(reason, || format!("HTTP API: closed a new connection from {peer}: {what}"));
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let conn = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                if e.is_timeout() {
                    // Idle keep-alive connections end this way too: not worth a warning.
                    metrics::counter!("http_timeouts_total", "phase" => "headers").increment(1);
                    tracing::debug!("HTTP API: closed the connection from {peer}: no complete request headers in time");
                } else {
                    tracing::debug!("HTTP API: connection from {peer}: {e}");
                }
            }
        });
    }
    drop(listener);
    shutting_down.send_replace(true);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_timeout) => {
            tracing::warn!("HTTP API: connections still open {:?} after the shutdown signal; closing them", limits.shutdown_timeout);
        }
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_in_all_and_per_address() {
        let conns = Connections::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = conns.admit(a).unwrap();
        let _a2 = conns.admit(a).unwrap();
        assert_eq!(conns.admit(a).err(), Some(Refusal::MaxPerAddress));
        let _b1 = conns.admit(b).unwrap();
        assert_eq!(conns.admit(b).err(), Some(Refusal::MaxConnections));
        drop(a1);
        assert_eq!(conns.open(), (2, 2));
        let a3 = conns.admit(a).unwrap();
        drop(a3);
        drop(_a2);
        // An address with no connection left is forgotten.
        assert_eq!(conns.open(), (1, 1));
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64_and_mapped_ipv4_is_ipv4() {
        let k = |s: &str| client_key(s.parse().unwrap());
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:bbbb::2"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:192.0.2.7"), k("192.0.2.7"));
    }

    #[test]
    fn limits_come_from_flags_then_the_file_then_defaults() {
        let cfg = HttpConfig { header_timeout_ms: Some(2000), max_connections: Some(10), ..Default::default() };
        let args = HttpArgs { http_max_connections: Some(5), ..Default::default() };
        let l = HttpLimits::resolve(&args, &cfg).unwrap();
        assert_eq!((l.header_timeout, l.max_connections, l.max_connections_per_address), (Duration::from_secs(2), 5, 64));
        assert!(l.header_timeout <= Duration::from_secs(30) && l.body_timeout <= Duration::from_secs(30));
        let zero = HttpConfig { max_connections_per_address: Some(0), ..Default::default() };
        assert!(HttpLimits::resolve(&HttpArgs::default(), &zero).unwrap_err().to_string().contains("at least 1"));
        let slow = HttpConfig { body_timeout_ms: Some(5), ..Default::default() };
        assert!(HttpLimits::resolve(&HttpArgs::default(), &slow).is_err());
        assert_eq!(l.queue_timeout, Duration::from_secs(2));
        let at_once = HttpArgs { http_queue_timeout_ms: Some(0), ..Default::default() };
        assert_eq!(HttpLimits::resolve(&at_once, &cfg).unwrap().queue_timeout, Duration::ZERO);
        let long = HttpConfig { queue_timeout_ms: Some(600_000), ..Default::default() };
        assert!(HttpLimits::resolve(&HttpArgs::default(), &long).unwrap_err().to_string().contains("queue-timeout-ms"));
    }
}
