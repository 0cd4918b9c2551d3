//! The node's HTTP API (axum on hyper): health, the chain (status, transactions, blocks,
//! accounts, state with proofs, a live block stream), plugin administration, crypto
//! services, configuration, Prometheus metrics and the OpenAPI document that describes it.
//!
//! Admin endpoints take `Authorization: Bearer <token>`; errors are JSON
//! `{"error": "...", "code": "..."}` with a status that says whose fault it was.

mod chain;
mod openapi;

use crate::Node;
use crate::keystore::KeystoreError;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use joule_crypto::{CryptoError, pem};
use joule_kernel::{PluginError, PluginPackage};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

pub use openapi::{ROUTES, document as openapi_document};

/// The process-wide Prometheus recorder (installed once, on first use).
pub fn metrics_handle() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let h = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().map_err(|e| anyhow::anyhow!("metrics recorder: {e}"))?;
    Ok(HANDLE.get_or_init(|| h).clone())
}

/// Largest `POST /v1/tx` body read: bigger than any valid transaction in either form (hex
/// JSON doubles the size), so oversized ones get the pool's precise rejection.
pub const MAX_TX_BODY: usize = 4 << 20;

/// Largest `POST /v1/txs` body read.
pub const MAX_BATCH_BODY: usize = 64 << 20;

/// Largest plugin upload accepted.
pub const MAX_PLUGIN_UPLOAD: usize = 64 << 20;

pub fn router(node: Arc<Node>) -> Router {
    let admin = Router::new()
        .route("/v1/plugins", get(list_plugins).post(upload_plugin))
        .route("/v1/plugins/audit", get(audit))
        .route("/v1/plugins/{name}/activate", post(activate))
        .route("/v1/plugins/{name}/deactivate", post(deactivate))
        .route("/v1/plugins/{name}/rollback", post(rollback))
        .route("/v1/plugins/{name}/{version}", delete(remove))
        .route("/v1/keys", get(keys))
        .route("/v1/keys/{module}/{purpose}/rotate", post(rotate_key))
        .route("/v1/crypto/algorithms", get(algorithms))
        .route("/v1/crypto/hash", post(hash))
        .route("/v1/crypto/verify", post(verify))
        .route("/v1/blocks", post(chain::import_block))
        .route("/v1/config/network", get(chain::get_network_config).put(chain::put_network_config))
        .route("/v1/config/node", get(chain::get_node_config).put(chain::put_node_config))
        .route_layer(axum::middleware::from_fn_with_state(node.clone(), require_token))
        .layer(DefaultBodyLimit::max(MAX_PLUGIN_UPLOAD));
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(chain::status))
        .route("/v1/tx", post(chain::submit_tx).layer(DefaultBodyLimit::max(MAX_TX_BODY)))
        .route("/v1/txs", post(chain::submit_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)))
        .route("/v1/tx/{hash}", get(chain::get_tx))
        .route("/v1/blocks/stream", get(chain::stream_blocks))
        .route("/v1/blocks/{id}", get(chain::get_block))
        .route("/v1/accounts/{id}", get(chain::get_account))
        .route("/v1/events", get(chain::get_events))
        .route("/v1/state/{contract}/{*key}", get(chain::get_state))
        .merge(admin)
        .with_state(node)
}

/// An API error: status, stable machine-readable code, human message.
pub struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!("joule_api_errors_total", "code" => self.1).increment(1);
        (self.0, Json(json!({"error": self.2, "code": self.1}))).into_response()
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        use PluginError::*;
        let (status, code) = match &e {
            Manifest(_) | BadManifest { .. } => (StatusCode::BAD_REQUEST, "bad_manifest"),
            Untrusted { .. } => (StatusCode::FORBIDDEN, "untrusted_plugin"),
            Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_component"),
            ForbiddenImport { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "forbidden_import"),
            WrongWorld { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "wrong_world"),
            SelfTest { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "self_test_failed"),
            UnsupportedKind { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_kind"),
            Call { .. } => (StatusCode::BAD_GATEWAY, "plugin_call_failed"),
            NotInstalled(_) | NoSuchVersion { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Conflict { .. } | Active { .. } | NoRollback(_) => (StatusCode::CONFLICT, "conflict"),
            Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "io"),
        };
        ApiError(status, code, e.to_string())
    }
}

impl From<CryptoError> for ApiError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Plugin(p) => p.into(),
            CryptoError::UnknownAlgorithm { .. } | CryptoError::Unsupported(_) => ApiError(StatusCode::BAD_REQUEST, "unknown_algorithm", e.to_string()),
            CryptoError::EntropyUnavailable => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "entropy", e.to_string()),
            _ => ApiError(StatusCode::BAD_REQUEST, "invalid_input", e.to_string()),
        }
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "bad_request", msg.into())
}

async fn require_token(State(node): State<Arc<Node>>, headers: HeaderMap, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), node.admin_token.as_bytes()) => next.run(req).await,
        Some(_) => ApiError(StatusCode::UNAUTHORIZED, "bad_token", "the admin token is wrong".into()).into_response(),
        None => ApiError(StatusCode::UNAUTHORIZED, "no_token", "this endpoint needs `Authorization: Bearer <admin token>`".into()).into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Run blocking plugin work (compilation, self-tests, calls) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("worker failed: {e}")))?
}

async fn health(State(node): State<Arc<Node>>) -> Json<Value> {
    let plugins = node.registry().list();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": node.started.elapsed().as_secs(),
        "plugins_installed": plugins.len(),
        "plugins_active": plugins.iter().filter(|p| p.active).count(),
    }))
}

async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], node.metrics.render())
}

async fn list_plugins(State(node): State<Arc<Node>>) -> Json<Value> {
    Json(json!(node.registry().list()))
}

async fn audit(State(node): State<Arc<Node>>) -> Json<Value> {
    Json(json!(node.registry().audit()))
}

/// `multipart/form-data` with parts `manifest` (TOML) and `wasm` (bytes).
async fn upload_plugin(State(node): State<Arc<Node>>, mut form: Multipart) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (mut manifest, mut wasm) = (None, None);
    while let Some(field) = form.next_field().await.map_err(|e| bad(format!("bad multipart body: {e}")))? {
        match field.name() {
            Some("manifest") => {
                manifest = Some(String::from_utf8(field.bytes().await.map_err(|e| bad(e.to_string()))?.to_vec()).map_err(|_| bad("manifest is not UTF-8"))?)
            }
            Some("wasm") => wasm = Some(field.bytes().await.map_err(|e| bad(e.to_string()))?.to_vec()),
            other => return Err(bad(format!("unexpected form field {other:?} (expected `manifest` and `wasm`)"))),
        }
    }
    let (Some(manifest), Some(wasm)) = (manifest, wasm) else {
        return Err(bad("the form needs both a `manifest` and a `wasm` part"));
    };
    let pkg = PluginPackage::from_parts(&manifest, wasm)?;
    let reg = node.registry().clone();
    let name = pkg.manifest.name.clone();
    let version = pkg.manifest.version.clone();
    blocking(move || reg.install(pkg).map(|_| ()).map_err(ApiError::from)).await?;
    let summary = node.registry().list().into_iter().find(|p| p.name == name && p.version == version);
    Ok((StatusCode::CREATED, Json(json!(summary))))
}

#[derive(Deserialize, Default)]
struct ActivateBody {
    version: Option<String>,
}

async fn activate(State(node): State<Arc<Node>>, Path(name): Path<String>, body: Option<Json<ActivateBody>>) -> Result<Json<Value>, ApiError> {
    let version = body.map(|b| b.0).unwrap_or_default().version;
    let p = node.registry().activate(&name, version.as_deref())?;
    Ok(Json(json!({"name": p.manifest.name, "version": p.manifest.version, "active": true})))
}

/// Handlers that take no body still read it (`_body`), so keep-alive connections whose
/// client sent one stay usable.
async fn deactivate(State(node): State<Arc<Node>>, Path(name): Path<String>, _body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    node.registry().deactivate(&name)?;
    Ok(Json(json!({"name": name, "active": false})))
}

async fn rollback(State(node): State<Arc<Node>>, Path(name): Path<String>, _body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    let p = node.registry().rollback(&name)?;
    Ok(Json(json!({"name": p.manifest.name, "version": p.manifest.version, "active": true})))
}

async fn remove(State(node): State<Arc<Node>>, Path((name, version)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    node.registry().remove(&name, &version)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn algorithms(State(node): State<Arc<Node>>) -> Json<Value> {
    let rows: Vec<Value> = node.crypto.active_algorithms().into_iter().map(|(a, p, v)| json!({"algorithm": a, "plugin": p, "version": v})).collect();
    Json(json!(rows))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashBody {
    alg: String,
    /// Hex input; or `data` as UTF-8 text.
    data_hex: Option<String>,
    data: Option<String>,
}

async fn hash(State(node): State<Arc<Node>>, body: Result<Json<HashBody>, axum::extract::rejection::JsonRejection>) -> Result<Json<Value>, ApiError> {
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let data = match (b.data_hex, b.data) {
        (Some(h), None) => hex::decode(h).map_err(|_| bad("data_hex is not hex"))?,
        (None, Some(t)) => t.into_bytes(),
        _ => return Err(bad("give exactly one of data_hex and data")),
    };
    let c = node.crypto.clone();
    let alg = b.alg.clone();
    let d = blocking(move || c.digest(&alg, &data).map_err(ApiError::from)).await?;
    Ok(Json(json!({"alg": b.alg, "digest_hex": hex::encode(d)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    alg: String,
    /// SPKI as PEM text or DER hex.
    public_key: String,
    message_hex: String,
    signature_hex: String,
    user_id: Option<String>,
}

async fn verify(State(node): State<Arc<Node>>, body: Result<Json<VerifyBody>, axum::extract::rejection::JsonRejection>) -> Result<Json<Value>, ApiError> {
    let Json(b) = body.map_err(|e| bad(e.body_text()))?;
    let pk = match hex::decode(&b.public_key) {
        Ok(der) => der,
        Err(_) => pem::decode(pem::PUBLIC_KEY, b.public_key.as_bytes()).map_err(|e| bad(format!("public_key: {e}")))?,
    };
    let msg = hex::decode(&b.message_hex).map_err(|_| bad("message_hex is not hex"))?;
    let sig = hex::decode(&b.signature_hex).map_err(|_| bad("signature_hex is not hex"))?;
    let c = node.crypto.clone();
    let valid = blocking(move || c.verify(&b.alg, &pk, &msg, &sig, b.user_id.as_deref().map(str::as_bytes)).map_err(ApiError::from)).await?;
    Ok(Json(json!({"valid": valid})))
}

impl From<KeystoreError> for ApiError {
    fn from(e: KeystoreError) -> Self {
        let e = match e {
            KeystoreError::Crypto(c) => return c.into(),
            other => other,
        };
        let (status, code) = match &e {
            KeystoreError::NoSlot(_) | KeystoreError::NoKey(_) => (StatusCode::NOT_FOUND, "not_found"),
            KeystoreError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_input"),
            KeystoreError::Denied { .. } => (StatusCode::FORBIDDEN, "denied"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "keystore"),
        };
        ApiError(status, code, e.to_string())
    }
}

fn keystore(node: &Node) -> Result<Arc<crate::keystore::Keystore>, ApiError> {
    node.keystore.clone().ok_or_else(|| ApiError(StatusCode::CONFLICT, "no_keystore", "this node runs without a keystore (start it with --keystore)".into()))
}

/// Slots and key metadata: public keys, periods, creation and retirement; never secrets.
async fn keys(State(node): State<Arc<Node>>) -> Result<Json<Value>, ApiError> {
    let ks = keystore(&node)?;
    let (slots, keys) = blocking(move || Ok((ks.slots()?, ks.keys()?))).await?;
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| json!({"module": k.module, "purpose": k.purpose, "period": k.period, "algorithm": k.algorithm, "kind": k.kind, "created_at": k.created_at, "retired_at": k.retired_at, "public_key": k.public_key}))
        .collect();
    Ok(Json(json!({"slots": slots, "keys": keys})))
}

/// On-demand rotation of one slot.
async fn rotate_key(State(node): State<Arc<Node>>, Path((module, purpose)): Path<(String, String)>, _body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    let ks = keystore(&node)?;
    let k = blocking(move || Ok(ks.rotate(&module, &purpose)?)).await?;
    Ok(Json(json!({"module": k.module, "purpose": k.purpose, "period": k.period})))
}
