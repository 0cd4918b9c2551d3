//! axum's extractors with [`ApiError`] rejections, so a malformed query, path, JSON or
//! multipart body answers with the API's JSON error body instead of axum's plain text.
//!
//! They keep axum's names on purpose: utoipa (`axum_extras`) recognises `Json`, `Query` and
//! `Path` arguments by the last segment of their type's name.

use super::ApiError;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A JSON body (`application/json`): 415 without that content type, 400 when it is not
/// JSON, 422 when it does not fit `T`, 413 over the route's body limit. Also a JSON answer.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Json(<axum::Json<T> as FromRequest<S>>::from_request(req, state).await?.0))
    }
}

/// `Option<Json<T>>`: `None` when the request has no content type.
impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        Ok(<axum::Json<T> as OptionalFromRequest<S>>::from_request(req, state).await?.map(|j| Json(j.0)))
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

/// The raw body (413 over the route's body limit).
pub struct Body(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Body(axum::body::Bytes::from_request(req, state).await?))
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
