//! Signing in to the admin API as a user of the node (§5.2.5): name and password for a
//! session token, and signing out.

use super::extract::Json;
use super::{ApiError, ErrorBody, guard};
use crate::Node;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// A user's credentials.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    name: String,
    password: String,
}

/// A session: send `token` as `Authorization: Bearer …` until it expires.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    token: String,
    user: String,
    roles: Vec<String>,
    expires_in_secs: u64,
}

/// Sign in with a user's name and password (`[[user]]` of node.toml).
///
/// Wrong passwords count against the address like wrong admin tokens: past
/// `admin-auth-max-failures` within a minute, the address is answered 429 until the minute
/// is over, without its password being checked. Each failure is logged with the name.
#[utoipa::path(post, path = "/v1/login", tag = "node",
    request_body(content = Login, description = "Name and password"),
    responses(
        (status = 200, description = "Signed in", body = SessionView),
        (status = 400, description = "A body that is not JSON (`bad_json`)", body = ErrorBody),
        (status = 401, description = "Wrong name or password (`bad_credentials`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 415, description = "A body that is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (`invalid_body`)", body = ErrorBody),
        (status = 429, description = "Too many wrong credentials from this address within a minute (`too_many_failures`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
    ))]
pub async fn login(State(node): State<Arc<Node>>, req: axum::extract::Request) -> Result<Response, ApiError> {
    use axum::extract::FromRequest;
    let (ip, now, failures) = (guard::client_ip(&req), std::time::Instant::now(), node.guards.auth());
    if let Some(wait) = failures.blocked(ip, now) {
        metrics::counter!("http_logins_total", "outcome" => "blocked").increment(1);
        return Ok(guard::too_many_failures(wait));
    }
    let Json(login) = Json::<Login>::from_request(req, &node).await?;
    let (users, _) = node.users();
    let name = login.name.clone();
    let user = tokio::task::spawn_blocking(move || super::check_password(&users, &login.name, &login.password))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("worker failed: {e}")))?;
    match user {
        Some(u) => {
            failures.succeeded(ip);
            let token = node.sessions.open(&u).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
            tracing::info!(user = %u.name, "HTTP API: {} signed in from {ip}", u.name);
            metrics::counter!("http_logins_total", "outcome" => "ok").increment(1);
            Ok(Json(SessionView { token, user: u.name, roles: u.roles, expires_in_secs: crate::users::SESSION_LIFETIME.as_secs() }).into_response())
        }
        None => {
            let n = failures.failed(ip, now);
            metrics::counter!("http_logins_total", "outcome" => "refused").increment(1);
            tracing::warn!("HTTP API: a sign-in as {name:?} from {ip} with a wrong name or password ({n} of {} allowed within a minute)", failures.max());
            Err(ApiError(StatusCode::UNAUTHORIZED, "bad_credentials", "wrong user name or password".into()))
        }
    }
}

/// Whether a session was closed.
#[derive(Serialize, ToSchema)]
pub struct Closed {
    closed: bool,
}

/// Sign out: the session token of `Authorization: Bearer` stops working.
#[utoipa::path(post, path = "/v1/logout", tag = "node",
    responses(
        (status = 200, description = "Whether a live session was closed", body = Closed),
    ))]
pub async fn logout(State(node): State<Arc<Node>>, headers: HeaderMap) -> Json<Closed> {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    Json(Closed { closed: token.is_some_and(|t| node.sessions.close(t)) })
}
