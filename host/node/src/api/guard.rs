//! What one request may take: a deadline for its body, a place among the expensive
//! requests (or a 503 at once), and for admin requests, a bounded number of wrong tokens
//! per client address.

use super::ApiError;
use crate::Node;
use crate::server::{client_key, warn_limited};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use joule_support::sync::lock;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a client refused for being busy is told to wait.
const BUSY_RETRY_SECS: u64 = 1;

/// The per-request guards of a node's API.
pub struct Guards {
    expensive: Arc<Semaphore>,
    /// How long a request waits for an expensive place before it is shed.
    queue_timeout: Duration,
    auth: AuthFailures,
    body_timeout: Duration,
    /// Set when the node shuts down: event streams end.
    shutting_down: tokio::sync::watch::Sender<bool>,
}

impl Guards {
    pub fn new(limits: &crate::server::HttpLimits) -> Guards {
        Guards {
            expensive: Arc::new(Semaphore::new(limits.max_expensive_requests)),
            queue_timeout: limits.queue_timeout,
            auth: AuthFailures::new(limits.admin_auth_max_failures, Duration::from_secs(60), 10_000),
            body_timeout: limits.body_timeout,
            shutting_down: tokio::sync::watch::channel(false).0,
        }
    }

    /// The signal the server sends when it stops.
    pub fn shutting_down(&self) -> &tokio::sync::watch::Sender<bool> {
        &self.shutting_down
    }

    pub(super) fn auth(&self) -> &AuthFailures {
        &self.auth
    }
}

/// A place among the expensive requests. Handlers move it into their blocking work, so a
/// client that hangs up does not free the place while the work it asked for still runs.
#[derive(Clone)]
pub struct Permit(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

impl Permit {
    /// Run blocking work (decoding, signature checks, plugin calls) off the async workers,
    /// holding the place until it is done.
    pub async fn blocking<T: Send + 'static>(self, f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
        super::blocking(move || {
            let _held = self;
            f()
        })
        .await
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Permit {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Permit>().cloned().ok_or_else(|| {
            ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", "this endpoint is not under the expensive-request limit (a bug in the router)".into())
        })
    }
}

/// An error answer with `Retry-After`.
fn retry_later(e: ApiError, after: Duration) -> Response {
    let mut res = e.into_response();
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    res
}

/// Middleware of the expensive endpoints: a place, waited for at most `queue-timeout-ms`,
/// else 503 `busy` (load shedding). A burst of single transactions from more clients than
/// there are places waits its turn (milliseconds each) instead of being refused; a node
/// saturated for longer sheds. A waiting request holds only its connection (already capped):
/// its body is read once it has a place.
pub async fn shed(State(node): State<Arc<Node>>, mut req: Request, next: Next) -> Response {
    let places = node.guards.expensive.clone();
    let place = match places.clone().try_acquire_owned() {
        Ok(permit) => Ok(permit),
        Err(_) if node.guards.queue_timeout.is_zero() => Err(()),
        Err(_) => match tokio::time::timeout(node.guards.queue_timeout, places.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out, or the semaphore closed (never: it lives as long as the node).
            _ => Err(()),
        },
    };
    match place {
        Ok(permit) => {
            req.extensions_mut().insert(Permit(Arc::new(permit)));
            next.run(req).await
        }
        Err(_) => {
            metrics::counter!("http_requests_shed_total").increment(1);
            warn_limited("shed", || {
                format!("HTTP API: refused {} {}: the node is busy (max-expensive-requests, waited queue-timeout-ms)", req.method(), req.uri().path())
            });
            retry_later(
                ApiError(StatusCode::SERVICE_UNAVAILABLE, "busy", "the node is busy with other expensive requests: retry after the Retry-After seconds".into()),
                Duration::from_secs(BUSY_RETRY_SECS),
            )
        }
    }
}

/// Middleware of every route: the request's body must arrive within the body timeout,
/// counted from when its headers did. A total rather than an idle timeout, so a client
/// sending a byte now and then cannot hold a connection and a place for ever.
pub async fn body_deadline(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    use http_body::Body as _;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let timeout = node.guards.body_timeout;
    next.run(req.map(|body| Body::new(DeadlineBody { body, timeout, deadline: Box::pin(tokio::time::sleep(timeout)) }))).await
}

/// A request body that fails with [`BodyTimeout`] once its deadline has passed.
struct DeadlineBody {
    body: Body,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

/// The request body did not arrive in time (408).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        // The deadline first: a client whose bytes are always ready would otherwise never
        // be checked.
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(self.timeout)))));
        }
        Pin::new(&mut self.body).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The client's address, as the server saw it (unspecified when served otherwise).
pub fn client_ip(req: &Request) -> IpAddr {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Wrong admin tokens per client address, in windows of fixed length from the first
/// failure. At most `capacity` addresses are tracked: past that, untracked addresses share
/// one entry, so memory stays bounded while an attacker with many addresses is still
/// slowed down (at the price of new addresses sharing its refusals until it stops).
pub(super) struct AuthFailures {
    max: u32,
    window: Duration,
    capacity: usize,
    entries: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// The entry that untracked addresses share once the map is full.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

impl AuthFailures {
    pub(super) fn new(max: u32, window: Duration, capacity: usize) -> AuthFailures {
        AuthFailures { max, window, capacity: capacity.max(1), entries: Mutex::new(HashMap::new()) }
    }

    /// `Some(wait)` while `ip` has used up its failures.
    pub(super) fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let entries = lock(&self.entries);
        let key = client_key(ip);
        let (since, count) = entries.get(&key).or_else(|| entries.get(&OVERFLOW).filter(|_| entries.len() >= self.capacity))?;
        let left = self.window.checked_sub(now.duration_since(*since))?;
        (*count >= self.max).then_some(left)
    }

    /// Count a wrong token from `ip`; the failures it has had in this window.
    pub(super) fn failed(&self, ip: IpAddr, now: Instant) -> u32 {
        let mut entries = lock(&self.entries);
        let mut key = client_key(ip);
        if !entries.contains_key(&key) && entries.len() >= self.capacity {
            entries.retain(|_, (since, _)| now.duration_since(*since) < self.window);
            if entries.len() >= self.capacity {
                key = OVERFLOW;
                if !entries.contains_key(&OVERFLOW) {
                    // Make room for the shared entry: forget the oldest window.
                    if let Some(oldest) = entries.iter().min_by_key(|(_, (since, _))| *since).map(|(k, _)| *k) {
                        entries.remove(&oldest);
                    }
                }
            }
        }
        let entry = entries.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1
    }

    /// A right token: the address's slate is clean.
    pub(super) fn succeeded(&self, ip: IpAddr) {
        let mut entries = lock(&self.entries);
        if !entries.is_empty() {
            entries.remove(&client_key(ip));
        }
    }

    pub(super) fn max(&self) -> u32 {
        self.max
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.entries).len()
    }
}

/// 429 `too_many_failures`, with `Retry-After`.
pub(super) fn too_many_failures(wait: Duration) -> Response {
    retry_later(
        ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            "too many wrong admin tokens or passwords from this address: retry after the Retry-After seconds".into(),
        ),
        wait,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_blocked_after_its_failures_until_the_window_ends() {
        let f = AuthFailures::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for n in 1..=3 {
            assert_eq!(f.blocked(ip("10.0.0.1"), t0), None);
            assert_eq!(f.failed(ip("10.0.0.1"), t0), n);
        }
        let wait = f.blocked(ip("10.0.0.1"), t0 + Duration::from_secs(20)).expect("blocked");
        assert_eq!(wait, Duration::from_secs(40));
        // Other addresses are not.
        assert_eq!(f.blocked(ip("10.0.0.2"), t0), None);
        // The window ends; failures count anew.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(f.blocked(ip("10.0.0.1"), later), None);
        assert_eq!(f.failed(ip("10.0.0.1"), later), 1);
        f.succeeded(ip("10.0.0.1"));
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn memory_is_bounded_and_untracked_addresses_share_one_entry() {
        let f = AuthFailures::new(2, Duration::from_secs(60), 4);
        let t0 = Instant::now();
        for i in 0..1000 {
            f.failed(ip(&format!("10.0.{}.{}", i / 256, i % 256)), t0);
        }
        assert!(f.len() <= 4, "{} entries", f.len());
        // Everyone past the capacity shares the overflow entry, which is used up.
        assert!(f.blocked(ip("192.0.2.1"), t0).is_some());
        // Expired entries make room again.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(f.failed(ip("192.0.2.1"), later), 1);
        assert!(f.blocked(ip("192.0.2.1"), later).is_none());
    }
}
