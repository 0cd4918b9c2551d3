//! The node's HTTP API (axum on hyper): health, the chain (status, transactions, blocks,
//! accounts, state with proofs, a live block stream), plugin administration, crypto
//! services, configuration, Prometheus metrics and the OpenAPI document that describes it.
//!
//! Admin endpoints take `Authorization: Bearer <token>`; errors are JSON
//! `{"error": "...", "code": "..."}` with a status that says whose fault it was, whoever
//! produced them: a handler, an extractor refusing the request, or the router.
//!
//! The router and the OpenAPI document come from one list ([`api`]): each handler carries
//! its operation, so a route cannot be served without being documented, nor documented
//! without being served.

mod admin;
mod batch;
mod chain;
mod contracts;
mod error;
mod extract;
mod governance;
mod guard;
mod health;
mod openapi;
mod pki;
pub mod signed;
mod users;

use crate::{Node, server};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, OnceLock};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use error::bad;
pub use error::{ApiError, ErrorBody};
pub use guard::Guards;

/// The process-wide Prometheus recorder (installed once, on first use), with every metric
/// the node exports described.
pub fn metrics_handle() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let h = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().map_err(|e| anyhow::anyhow!("metrics recorder: {e}"))?;
    // Descriptions go to the installed recorder: made before it, they would be lost.
    describe_metrics();
    Ok(HANDLE.get_or_init(|| h).clone())
}

/// The `# HELP` line of every metric (`promtool check metrics` wants one for each).
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("joule_api_errors_total", "Error answers of the HTTP API, by error code");
    describe_counter!("joule_key_rotations_total", "Keys the keystore rotated, on schedule or on demand");
    describe_counter!("joule_plugin_changes_total", "Changes to the plugin registry (install, activate, deactivate, rollback, remove, refuse), by action");
    describe_gauge!("joule_plugins_active", "Plugins with an active version");
    describe_counter!("joule_plugin_calls_total", "Calls into plugins, by plugin, version and operation");
    describe_counter!("joule_plugin_call_failures_total", "Calls into plugins that failed, by plugin, version and operation");
    describe_histogram!("joule_plugin_call_seconds", Unit::Seconds, "Duration of calls into plugins, by plugin, version and operation");
    describe_gauge!("chain_head_block", "Height of the channel's head block");
    describe_gauge!("p2p_peers", "Peers connected on the channel's peer-to-peer network");
    describe_counter!("p2p_messages_received_total", "Messages received from peers (pings and pongs included)");
    describe_counter!("p2p_messages_sent_total", "Messages written to peers (pings and pongs included)");
    describe_counter!("p2p_received_bytes_total", "Bytes of messages received from peers, after decryption");
    describe_counter!("p2p_handshake_failures_total", "Noise handshakes that failed (another suite or chain, a timeout, a broken peer)");
    describe_counter!("p2p_peers_refused_total", "Peers refused: not in the channel's node set, banned, or over the connection limit");
    describe_counter!("p2p_disconnects_total", "Peer connections that ended, for any reason");
    describe_counter!("p2p_messages_dropped_total", "Messages not sent because a peer's queue was full (the peer is dropped as too slow)");
    describe_counter!(
        "p2p_consensus_messages_dropped_total",
        "Consensus messages from peers dropped because the channel's participant was a full inbox behind"
    );
    describe_counter!("p2p_sync_requests_total", "Requests for missing blocks sent to peers (block sync)");
    describe_counter!("p2p_blocks_imported_total", "Blocks received from peers (gossip or sync) and committed");
    describe_histogram!("chain_block_interval_seconds", Unit::Seconds, "Time between a committed block's timestamp and its parent's");
    describe_histogram!("chain_block_transactions", Unit::Count, "Transactions in each committed block");
    describe_counter!("chain_transactions_total", "Transactions committed");
    describe_counter!(
        "chain_certificate_events_total",
        "Certificates the committed blocks recorded, by channel and event (certificate_registered, certificate_renewed, certificate_revoked)"
    );
    describe_counter!("pki_applications_total", "Certificate applications this node received and reviewed, by outcome (submitted, approved, rejected)");
    describe_gauge!("pki_applications_pending", "Certificate applications kept here that wait for an admin's review");
    describe_histogram!("chain_commit_seconds", Unit::Seconds, "Time to commit a block (produced or imported)");
    describe_counter!(
        "consensus_events_total",
        "Events the channel's consensus participant handled (new heads, timers, peers' messages and proposals, answers), by kind"
    );
    describe_counter!(
        "consensus_actions_total",
        "Actions the channel's consensus participant asked for (build, sign, broadcast, propose, work, commit, timers), by kind"
    );
    describe_histogram!("consensus_height_seconds", Unit::Seconds, "Time the network took to decide each height: from one new head to the next");
    describe_histogram!(
        "consensus_work_seconds",
        Unit::Seconds,
        "Time a proof-of-work search took to find a nonce (searches cancelled by a new head are not counted)"
    );
    describe_counter!("chain_reorgs_total", "Reorganisations onto a heavier chain (proof of work: another miner's branch won)");
    describe_histogram!("chain_reorg_depth_blocks", "Blocks taken off the chain by a reorganisation");
    describe_counter!("chain_production_failures_total", "Block production attempts that failed");
    describe_counter!("chain_storage_failures_total", "Commits that failed in the store (a full disk, say); the chain reopens its store and resumes");
    describe_counter!("txpool_rejections_total", "Transactions refused (pool admission, batch framing, JSON), by reason");
    describe_gauge!("txpool_pending", "Executable transactions in the pool (consecutive nonces from their account's next), by channel");
    describe_gauge!("txpool_queued", "Transactions in the pool waiting for an earlier nonce of their sender, by channel");
    describe_counter!(
        "txpool_evictions_total",
        "Transactions dropped from the pool after they were accepted, by channel and reason: pool_full (room made for higher-priority ones), expired (queued too long), nonce_used (another transaction took the nonce)"
    );
    describe_gauge!("http_connections_open", "Open connections to the HTTP API");
    describe_counter!(
        "http_connections_refused_total",
        "Connections to the HTTP API closed as soon as accepted, by reason (max_connections, max_connections_per_address, accept_error)"
    );
    describe_counter!(
        "http_requests_shed_total",
        "Expensive requests refused with 503 because max-expensive-requests were running for longer than queue-timeout-ms"
    );
    describe_counter!("http_timeouts_total", "Requests whose headers or body did not arrive in time, by phase (headers, body)");
    describe_counter!("http_logins_total", "Sign-ins of the admin API's users, by outcome (ok, refused: a wrong name or password, blocked: too many of those)");
    describe_counter!("http_admin_auth_failures_total", "Admin requests with a wrong token, by outcome (refused: 401; blocked: 429 for too many)");
}

/// Largest `POST /v1/tx` body read: bigger than any valid transaction in either form (hex
/// JSON doubles the size), so oversized ones get the pool's precise rejection.
pub const MAX_TX_BODY: usize = 4 << 20;

/// Largest `POST /v1/login` body.
pub const MAX_LOGIN_BODY: usize = 4 << 10;

/// Largest body of the certificate endpoints (a request and who is asking).
pub const MAX_PKI_BODY: usize = 64 << 10;

/// Largest `POST /v1/txs` body read.
pub const MAX_BATCH_BODY: usize = 64 << 20;

/// Largest plugin upload accepted (and largest body of any admin endpoint).
pub const MAX_PLUGIN_UPLOAD: usize = 64 << 20;

/// Every endpoint, documented: the one list the router and the OpenAPI document come from.
/// Admin endpoints go in `admin`, which the token guards (and the document says so).
/// Expensive endpoints (decoding, signature checks, plugin calls) go through `expensive`,
/// which sheds what does not fit (503) and documents it.
pub fn api(node: Arc<Node>) -> OpenApiRouter<Arc<Node>> {
    let expensive = |r| expensive(&node, r);
    let mut admin = OpenApiRouter::new()
        .routes(routes!(admin::list_plugins))
        .routes(expensive(routes!(admin::upload_plugin)))
        .routes(routes!(admin::audit))
        .routes(routes!(admin::activate))
        .routes(routes!(admin::deactivate))
        .routes(routes!(admin::rollback))
        .routes(routes!(admin::remove))
        .routes(routes!(admin::keys))
        .routes(expensive(routes!(admin::rotate_key)))
        .routes(routes!(admin::algorithms))
        .routes(expensive(routes!(admin::hash)))
        .routes(expensive(routes!(admin::verify)))
        .routes(expensive(routes!(chain::import_block)))
        .routes(routes!(chain::get_network_config, chain::put_network_config))
        .routes(routes!(chain::get_node_config, chain::put_node_config))
        .routes(routes!(governance::act).layer(body_limit(MAX_TX_BODY)))
        .routes(routes!(governance::bind_key).layer(body_limit(MAX_TX_BODY)))
        .routes(routes!(pki::applications))
        .routes(expensive(routes!(pki::approve)).layer(body_limit(MAX_PKI_BODY)))
        .routes(routes!(pki::reject).layer(body_limit(MAX_PKI_BODY)))
        .routes(expensive(routes!(pki::revoke)).layer(body_limit(MAX_PKI_BODY)))
        .routes(expensive(routes!(pki::renew)).layer(body_limit(MAX_PKI_BODY)))
        .routes(expensive(routes!(pki::certify_organisation)).layer(body_limit(MAX_PKI_BODY)))
        .route_layer(axum::middleware::from_fn_with_state(node.clone(), require_token))
        .layer(body_limit(MAX_PLUGIN_UPLOAD));
    openapi::require_admin_token(admin.get_openapi_mut());
    OpenApiRouter::with_openapi(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(health::health))
        .routes(routes!(health::livez))
        .routes(routes!(health::readyz))
        .routes(routes!(openapi_json))
        .routes(routes!(metrics))
        .routes(routes!(chain::status))
        .routes(routes!(chain::peers))
        .routes(routes!(governance::governance))
        .routes(routes!(pki::pki))
        .routes(routes!(pki::certificate))
        .routes(routes!(pki::crl))
        .routes(expensive(routes!(users::login)).layer(body_limit(MAX_LOGIN_BODY)))
        .routes(routes!(users::logout))
        .routes(expensive(routes!(pki::apply)).layer(body_limit(MAX_PKI_BODY)))
        .routes(routes!(pki::application))
        .routes(expensive(routes!(chain::submit_tx)).layer(body_limit(MAX_TX_BODY)))
        .routes(expensive(routes!(chain::submit_batch)).layer(body_limit(MAX_BATCH_BODY)))
        .routes(routes!(chain::get_tx))
        .routes(routes!(chain::stream_blocks))
        .routes(routes!(chain::get_block))
        .routes(routes!(chain::get_account))
        .routes(routes!(chain::get_events))
        .routes(routes!(chain::get_state))
        .routes(routes!(contracts::get_contract))
        .routes(expensive(routes!(contracts::query_contract)).layer(body_limit(MAX_TX_BODY)))
        .routes(routes!(contracts::stream_events))
        .merge(admin)
}

/// An expensive operation: it runs only with a place among `max-expensive-requests`, else
/// answers 503 `busy` at once; its operation documents that answer.
fn expensive(node: &Arc<Node>, (schemas, mut paths, route): UtoipaMethodRouter<Arc<Node>>) -> UtoipaMethodRouter<Arc<Node>> {
    openapi::may_be_busy(&mut paths);
    (schemas, paths, route.layer(axum::middleware::from_fn_with_state(node.clone(), guard::shed)))
}

/// A route's body limit, for this API's extractors (which refuse a body declared over it
/// before keeping any of it) and for axum's multipart one.
fn body_limit(bytes: usize) -> (DefaultBodyLimit, axum::Extension<extract::BodyLimit>) {
    (DefaultBodyLimit::max(bytes), axum::Extension(extract::BodyLimit(bytes)))
}

/// The API's router, serving its OpenAPI document at `/v1/openapi.json`.
pub fn router(node: Arc<Node>) -> Router {
    let (router, mut doc) = api(node.clone()).with_state(node.clone()).split_for_parts();
    openapi::finish(&mut doc);
    let doc = OpenApiJson(serde_json::to_vec(&doc).unwrap_or_default().into());
    router
        .layer(axum::Extension(doc))
        // After every route: the method fallback applies to the routes added before it.
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(node, guard::body_deadline))
        .layer(axum::middleware::from_fn(error::json_errors))
}

/// Admin requests: the admin token (when on), a user's session token, or a user's name and
/// password (HTTP Basic), each checked in constant time or with Argon2id; a user needs the
/// role `admin`. An address that sent too many wrong credentials is answered 429 without
/// its credentials being checked, until its minute is over; each wrong one is logged.
async fn require_token(State(node): State<Arc<Node>>, headers: HeaderMap, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let credential = match given {
        Some(v) if v.starts_with("Bearer ") => Credential::Token(v.trim_start_matches("Bearer ").to_string()),
        Some(v) if v.starts_with("Basic ") => Credential::Basic(v.trim_start_matches("Basic ").trim().to_string()),
        None if headers.contains_key("signature-input") => Credential::Signed,
        _ => {
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "no_token",
                "this endpoint needs `Authorization: Bearer <admin token or session token>`, `Authorization: Basic` with a user's name and password, or a request signed with a certified key (Signature-Input, Signature)".into(),
            )
            .into_response();
        }
    };
    let (ip, now, failures) = (guard::client_ip(&req), std::time::Instant::now(), node.guards.auth());
    if let Some(wait) = failures.blocked(ip, now) {
        metrics::counter!("http_admin_auth_failures_total", "outcome" => "blocked").increment(1);
        server::warn_limited("admin_auth_blocked", || {
            format!("HTTP API: refused an admin request from {ip}: too many wrong credentials (admin-auth-max-failures)")
        });
        return guard::too_many_failures(wait);
    }
    let mut req = req;
    let (users, token_on) = node.users();
    let who: Result<Option<(String, Vec<String>)>, &str> = match credential {
        Credential::Signed => {
            // The body is part of what is signed: read it (within the admin limit) and put it back.
            let (parts, body) = req.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, MAX_PLUGIN_UPLOAD).await else {
                return ApiError(
                    StatusCode::UNAUTHORIZED,
                    "bad_signature",
                    format!("a signed request's body is over {MAX_PLUGIN_UPLOAD} bytes, so it cannot be checked"),
                )
                .into_response();
            };
            let (n, h, b) = (node.clone(), parts.headers.clone(), bytes.clone());
            let (method, path, query) = (parts.method.to_string(), parts.uri.path().to_string(), parts.uri.query().unwrap_or("").to_string());
            let checked = tokio::task::spawn_blocking(move || signed::verify(&n, &method, &path, &query, &h, &b)).await.unwrap_or_else(|e| Err(e.to_string()));
            req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
            match checked {
                Ok(s) => Ok(Some((format!("account {}", s.account), s.roles))),
                Err(why) => {
                    tracing::warn!("HTTP API: a signed request refused: {why}");
                    Err("bad_signature")
                }
            }
        }
        Credential::Token(t) if token_on && constant_time_eq(t.as_bytes(), node.admin_token.as_bytes()) => Ok(None),
        Credential::Token(t) => match node.sessions.get(&t) {
            Some(s) => Ok(Some((s.user, s.roles))),
            None => Err("bad_token"),
        },
        Credential::Basic(b) => {
            let checked = tokio::task::spawn_blocking(move || check_basic(&users, &b)).await.unwrap_or(None);
            checked.map(|u| Some((u.name, u.roles))).ok_or("bad_credentials")
        }
    };
    match who {
        Ok(None) => {
            failures.succeeded(ip);
            next.run(req).await
        }
        Ok(Some((user, roles))) => {
            failures.succeeded(ip);
            if !roles.iter().any(|r| r == crate::users::ADMIN_ROLE) {
                return ApiError(StatusCode::FORBIDDEN, "not_permitted", format!("user {user} has no role admin, which the admin API needs")).into_response();
            }
            tracing::debug!(user, "HTTP API: {} {}", req.method(), req.uri().path());
            next.run(req).await
        }
        Err(code) => {
            let n = failures.failed(ip, now);
            metrics::counter!("http_admin_auth_failures_total", "outcome" => "refused").increment(1);
            tracing::warn!(
                "HTTP API: wrong credentials ({code}) from {ip} for {} {} ({n} of {} allowed within a minute)",
                req.method(),
                req.uri().path(),
                failures.max()
            );
            let message = match code {
                "bad_token" => "the token is neither the admin token nor a live session's",
                "bad_signature" => "the signed request does not verify (the node's log says why)",
                _ => "wrong user name or password",
            };
            ApiError(StatusCode::UNAUTHORIZED, code, message.into()).into_response()
        }
    }
}

enum Credential {
    Token(String),
    Basic(String),
    Signed,
}

/// The user whose `name:password` (base64, HTTP Basic) this is.
fn check_basic(users: &[crate::users::UserConfig], b64: &str) -> Option<crate::users::UserConfig> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (name, password) = text.split_once(':')?;
    check_password(users, name, password)
}

/// The user `name` if `password` is its password. Runs Argon2id (tens of milliseconds):
/// off the async workers.
pub(crate) fn check_password(users: &[crate::users::UserConfig], name: &str, password: &str) -> Option<crate::users::UserConfig> {
    // An unknown name costs a verification too, so timing does not tell names apart.
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3C3nb1p6Kk4xv7wL6uQpyr5HNdW/NvQkqyrFeCx4vUE";
    match users.iter().find(|u| u.name == name) {
        Some(u) if crate::users::verify_password(&u.password_hash, password) => Some(u.clone()),
        Some(_) => None,
        None => {
            let _ = crate::users::verify_password(DUMMY, password);
            None
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Run blocking plugin work (compilation, self-tests, calls) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("worker failed: {e}")))?
}

/// The document, serialised once.
#[derive(Clone)]
struct OpenApiJson(axum::body::Bytes);

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "node", responses((status = 200, description = "The OpenAPI document of this API", body = Object)))]
async fn openapi_json(axum::Extension(doc): axum::Extension<OpenApiJson>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc.0).into_response()
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "node", responses((status = 200, description = "The metrics", body = String, content_type = "text/plain")))]
async fn metrics(State(node): State<Arc<Node>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], node.metrics.render()).into_response()
}

#[cfg(test)]
mod tests {
    /// The router and the document come from one list only if every route goes through
    /// `routes!`: a plain axum route would be served without being documented.
    #[test]
    fn no_route_bypasses_the_document() {
        let sources = [
            ("api/mod.rs", include_str!("mod.rs")),
            ("api/admin.rs", include_str!("admin.rs")),
            ("api/chain.rs", include_str!("chain.rs")),
            ("api/contracts.rs", include_str!("contracts.rs")),
            ("api/error.rs", include_str!("error.rs")),
            ("api/extract.rs", include_str!("extract.rs")),
            ("api/openapi.rs", include_str!("openapi.rs")),
            ("api/batch.rs", include_str!("batch.rs")),
            ("api/guard.rs", include_str!("guard.rs")),
            ("api/health.rs", include_str!("health.rs")),
            ("api/governance.rs", include_str!("governance.rs")),
            ("api/pki.rs", include_str!("pki.rs")),
            ("api/users.rs", include_str!("users.rs")),
            ("api/signed.rs", include_str!("signed.rs")),
            ("server.rs", include_str!("../server.rs")),
            ("lib.rs", include_str!("../lib.rs")),
        ];
        for (file, text) in sources {
            for call in [
                concat!(".", "route("),
                concat!(".", "route_service("),
                concat!(".", "nest("),
                concat!(".", "nest_service("),
                concat!(".", "fallback_service("),
            ] {
                assert!(!text.contains(call), "{file} calls `{call}`: add the handler with `routes!` in api::api instead");
            }
        }
    }
}
