//! The API's one error body, `{"error": "...", "code": "..."}`, for every failure: the
//! handlers' own, the extractors' rejections, the router's 404 and 405, and anything else
//! that would leave the server without it.

use crate::keystore::KeystoreError;
use axum::extract::Request;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use joule_crypto::CryptoError;
use joule_kernel::PluginError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// Stable and machine-readable, e.g. `not_found`, `bad_query`, `no_token`, `pool_full`.
    pub code: String,
}

/// An API error: status, stable machine-readable code, human message.
#[derive(Debug)]
pub struct ApiError(pub(super) StatusCode, pub(super) &'static str, pub(super) String);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        self.0
    }

    pub fn code(&self) -> &'static str {
        self.1
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!("joule_api_errors_total", "code" => self.1).increment(1);
        (self.0, axum::Json(ErrorBody { error: self.2, code: self.1.to_string() })).into_response()
    }
}

pub(super) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "bad_request", msg.into())
}

/// Over a body limit (413) or not readable (400).
fn body_code(status: StatusCode) -> &'static str {
    if status == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "bad_body" }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let code = match &r {
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            JsonRejection::JsonSyntaxError(_) => "bad_json",
            JsonRejection::JsonDataError(_) => "invalid_body",
            _ => body_code(r.status()),
        };
        ApiError(r.status(), code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError(r.status(), "bad_query", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError(r.status(), "bad_path", r.body_text())
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(r: MultipartRejection) -> Self {
        ApiError(r.status(), "bad_multipart", r.body_text())
    }
}

impl From<MultipartError> for ApiError {
    fn from(e: MultipartError) -> Self {
        // Over the limit or too slow, said as for any other body (axum calls a body that
        // failed to arrive a 500).
        let read = super::extract::body_error(&e);
        if read.status() != StatusCode::BAD_REQUEST {
            return read;
        }
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "bad_multipart" };
        ApiError(e.status(), code, format!("bad multipart body: {}", e.body_text()))
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
            InUse { .. } => (StatusCode::CONFLICT, "in_use"),
            Io { source, .. } if joule_support::fs::is_storage_full(source) => (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
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

/// The router's answer for a path it does not serve.
pub async fn no_route(uri: Uri) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no_route", format!("no endpoint at {} (the endpoints are listed in /v1/openapi.json)", uri.path()))
}

/// The router's answer for a method a path does not serve (axum adds the `Allow` header).
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{method} is not allowed on {}", uri.path()))
}

/// The safety net: an error answer that is not JSON (a layer's rejection, a plain axum
/// extractor) becomes the API's error body, with its status and its text as the message.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10).await.map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::REQUEST_TIMEOUT => "body_timeout",
        StatusCode::INTERNAL_SERVER_ERROR => "internal",
        _ => "http_error",
    };
    let error = if text.is_empty() { status.to_string() } else { text };
    metrics::counter!("joule_api_errors_total", "code" => code).increment(1);
    let body = serde_json::to_vec(&ErrorBody { error, code: code.into() }).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}
