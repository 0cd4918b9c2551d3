//! Liveness and readiness, as Kubernetes probes them, and `/v1/health`, which reports the
//! same checks ([`crate::health`]). A node that cannot do its work says so, with the failed
//! check, instead of answering `ok`.

use super::extract::Json;
use super::{ApiError, ErrorBody, blocking};
use crate::Node;
use crate::health::Check;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// One check's outcome.
#[derive(Serialize, ToSchema)]
pub struct CheckResult {
    /// `storage` (the data directory takes writes and no channel's store failed),
    /// `plugins` (every channel's suite and engine and the keystore's cipher are served) or
    /// `progress` (each channel's producer runs without failing).
    name: String,
    ok: bool,
    /// What is wrong; empty when `ok`.
    detail: String,
}

impl From<Check> for CheckResult {
    fn from(c: Check) -> Self {
        CheckResult { name: c.name.into(), ok: c.ok, detail: c.detail }
    }
}

/// The checks, off the async workers (the storage check writes a probe file).
async fn run_checks(node: Arc<Node>) -> Result<Vec<Check>, ApiError> {
    blocking(move || Ok(crate::health::checks(&node))).await
}

/// `storage: …; progress: …` for the checks that failed, or `None` when all passed.
fn failures(checks: &[Check]) -> Option<String> {
    let failed: Vec<String> = checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.name, c.detail)).collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

#[derive(Serialize, ToSchema)]
pub struct Alive {
    /// Always `alive`.
    status: &'static str,
    uptime_seconds: u64,
}

/// Liveness: the process runs and answers. Restart the node only when this fails.
#[utoipa::path(get, path = "/livez", tag = "node", responses((status = 200, description = "The process is alive", body = Alive)))]
pub async fn livez(State(node): State<Arc<Node>>) -> Json<Alive> {
    Json(Alive { status: "alive", uptime_seconds: node.started.elapsed().as_secs() })
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// Always `ready`.
    status: &'static str,
    checks: Vec<CheckResult>,
}

/// Readiness: storage writable, suites and engines served, production progressing.
///
/// 503 names each check that failed, e.g. `storage: channel grid: commit of block 21
/// failed: … No space left on device`. A node recovers from a full disk by itself once
/// space returns; this answers 200 again then.
#[utoipa::path(get, path = "/readyz", tag = "node",
    responses(
        (status = 200, description = "Every check passed", body = Ready),
        (status = 500, description = "The checks could not run (`internal`)", body = ErrorBody),
        (status = 503, description = "A check failed; the message names it (`not_ready`)", body = ErrorBody),
    ))]
pub async fn readyz(State(node): State<Arc<Node>>) -> Result<Json<Ready>, ApiError> {
    let checks = run_checks(node).await?;
    if let Some(failed) = failures(&checks) {
        return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, "not_ready", failed));
    }
    Ok(Json(Ready { status: "ready", checks: checks.into_iter().map(CheckResult::from).collect() }))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` (a failing node answers 503).
    status: &'static str,
    /// The node's version.
    version: &'static str,
    uptime_seconds: u64,
    plugins_installed: usize,
    plugins_active: usize,
    /// The readiness checks, all passed.
    checks: Vec<CheckResult>,
}

/// Health: version, uptime, plugin counts and the readiness checks.
#[utoipa::path(get, path = "/v1/health", tag = "node",
    responses(
        (status = 200, description = "The node is up and every check passed", body = Health),
        (status = 500, description = "The checks could not run (`internal`)", body = ErrorBody),
        (status = 503, description = "A check failed; the message names it (`unhealthy`)", body = ErrorBody),
    ))]
pub async fn health(State(node): State<Arc<Node>>) -> Result<Json<Health>, ApiError> {
    let checks = run_checks(node.clone()).await?;
    if let Some(failed) = failures(&checks) {
        return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, "unhealthy", failed));
    }
    let plugins = node.registry().list();
    Ok(Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: node.started.elapsed().as_secs(),
        plugins_installed: plugins.len(),
        plugins_active: plugins.iter().filter(|p| p.active).count(),
        checks: checks.into_iter().map(CheckResult::from).collect(),
    }))
}
