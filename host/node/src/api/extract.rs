//! axum's extractors with [`ApiError`] rejections, so a malformed query, path, JSON or
//! multipart body answers with the API's JSON error body instead of axum's plain text; and
//! the one way bodies are read: within the route's limit (413 `too_large`) and the body
//! deadline (408 `body_timeout`), into one buffer the size of the body.
//!
//! They keep axum's names on purpose: utoipa (`axum_extras`) recognises `Json`, `Query` and
//! `Path` arguments by the last segment of their type's name.

use super::ApiError;
use super::guard::BodyTimeout;
use axum::body;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http_body_util::{BodyExt, LengthLimitError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::error::Error;

/// JSON bodies up to this size are parsed on the async worker; larger ones off it.
const INLINE_JSON: usize = 64 << 10;

/// The body limit of routes that set none (axum's default).
pub const DEFAULT_BODY_LIMIT: usize = 2 << 20;

/// A route's body limit in bytes (an extension `api::body_limit` sets).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

fn too_large(limit: usize) -> ApiError {
    ApiError(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("the request body is over this endpoint's limit of {limit} bytes"))
}

/// A request body read failed: over the limit (413), too slow (408), or broken (400).
pub fn body_error(e: &(dyn Error + 'static)) -> ApiError {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<LengthLimitError>() {
            return ApiError(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the request body is over this endpoint's limit".into());
        }
        if let Some(t) = c.downcast_ref::<BodyTimeout>() {
            metrics::counter!("http_timeouts_total", "phase" => "body").increment(1);
            crate::server::warn_limited("body_timeout", || format!("HTTP API: {t}: answered 408 (body-timeout-ms)"));
            return ApiError(StatusCode::REQUEST_TIMEOUT, "body_timeout", format!("{t} (the node's body timeout)"));
        }
        cause = c.source();
    }
    ApiError(StatusCode::BAD_REQUEST, "bad_body", format!("the request body could not be read: {e}"))
}

/// How much of a refused body is still read (and dropped) so that its sender gets the answer.
pub const LINGER_BYTES: usize = 16 << 20;

/// The request's body as it arrives, within the route's limit (413 past it) and the body
/// deadline (408). A body declared over the limit is refused before any of it is kept.
pub struct BodyStream {
    body: body::Body,
    limit: usize,
    /// Bytes read so far.
    read: usize,
    declared: Option<usize>,
}

impl<S: Send + Sync> FromRequest<S> for BodyStream {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let limit = req.extensions().get::<BodyLimit>().map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let declared = declared.map(|d| usize::try_from(d).unwrap_or(usize::MAX));
        let stream = BodyStream { body: req.into_body(), limit, read: 0, declared };
        if declared.is_some_and(|d| d > limit) {
            stream.discard().await;
            return Err(too_large(limit));
        }
        Ok(stream)
    }
}

impl BodyStream {
    /// The next piece of data; `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(body_error(&e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.read += data.len();
                        if self.read > self.limit {
                            return Err(too_large(self.limit));
                        }
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// Read the rest and drop it, up to [`LINGER_BYTES`] past the limit and within the body
    /// deadline, so that a client still sending reads the answer instead of a reset
    /// connection (nginx's lingering close). Dropped bytes take no memory; a body further
    /// over still gets the reset: reading all of it is not worth it.
    pub async fn discard(mut self) {
        let cap = self.limit.saturating_add(LINGER_BYTES);
        while self.read <= cap {
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.read += data.len();
                    }
                }
                None | Some(Err(_)) => return,
            }
        }
    }

    /// All of it, in one buffer (reserved from the declared length, up to a bound).
    pub async fn bytes(mut self) -> Result<Bytes, ApiError> {
        let hint = self.declared.unwrap_or(0).min(self.limit);
        let first = match self.chunk().await? {
            None => return Ok(Bytes::new()),
            Some(c) => c,
        };
        // A body of one piece is used as it is.
        let Some(second) = self.chunk().await? else { return Ok(first) };
        let mut buf = BytesMut::with_capacity(hint.max(first.len() + second.len()));
        buf.extend_from_slice(&first);
        buf.extend_from_slice(&second);
        while let Some(c) = self.chunk().await? {
            buf.extend_from_slice(&c);
        }
        Ok(buf.freeze())
    }
}

/// The raw body (413 over the route's body limit, 408 too slow).
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Body(BodyStream::from_request(req, state).await?.bytes().await?))
    }
}

/// Whether the content type is JSON (`application/json`, `application/…+json`), as axum
/// decides it.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.strip_prefix("application/").is_some_and(|sub| sub == "json" || sub.ends_with("+json"))
}

/// A JSON body (`application/json`): 415 without that content type, 400 when it is not
/// JSON, 422 when it does not fit `T`, 413 over the route's body limit, 408 too slow. Large
/// bodies are parsed off the async workers. Also a JSON answer.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send + 'static> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Expected request with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = Body::from_request(req, state).await?.0;
        let inline = bytes.len() <= INLINE_JSON;
        let parse = move || axum::Json::<T>::from_bytes(&bytes).map(|j| Json(j.0)).map_err(ApiError::from);
        if inline { parse() } else { super::blocking(parse).await }
    }
}

/// `Option<Json<T>>`: `None` when the request has no content type.
impl<S: Send + Sync, T: DeserializeOwned + Send + 'static> OptionalFromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        if !req.headers().contains_key(header::CONTENT_TYPE) {
            return Ok(None);
        }
        Ok(Some(<Json<T> as FromRequest<S>>::from_request(req, state).await?))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query parameters; unknown ones are refused when `T` denies unknown fields (400).
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(Query(axum::extract::Query::<T>::from_request_parts(parts, state).await?.0))
    }
}

/// Path parameters (400 when one does not parse).
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(Path(axum::extract::Path::<T>::from_request_parts(parts, state).await?.0))
    }
}

/// A `multipart/form-data` body (400 without a boundary).
pub struct Multipart(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for Multipart {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Multipart(<axum::extract::Multipart as FromRequest<S>>::from_request(req, state).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_axums() {
        let h = |ct: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            is_json(&m)
        };
        assert!(h("application/json"));
        assert!(h("application/json; charset=utf-8"));
        assert!(h("Application/JSON;charset=utf-8"));
        assert!(h("application/cloudevents+json"));
        assert!(!h("text/json"));
        assert!(!h("application/jsonx"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn body_errors_say_what_went_wrong() {
        let over = http_body_util::Limited::new(body::Body::from(vec![0u8; 10]), 5).collect().await.expect_err("over the limit");
        assert_eq!(body_error(&axum::Error::new(over)).status(), StatusCode::PAYLOAD_TOO_LARGE);
        let slow = axum::Error::new(BodyTimeout(std::time::Duration::from_secs(2)));
        let e = body_error(&slow);
        assert_eq!((e.status(), e.code()), (StatusCode::REQUEST_TIMEOUT, "body_timeout"));
        assert_eq!(body_error(&std::io::Error::other("reset")).code(), "bad_body");
    }
}
