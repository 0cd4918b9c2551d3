//! The channel's governance over HTTP: its members and open proposals for anyone, and
//! proposing, voting and withdrawing for the operator of a validator node, which signs the
//! transaction with its own validator key.

use super::chain::{ChannelQuery, chain};
use super::extract::{Json, Query};
use super::{ApiError, ErrorBody};
use crate::Node;
use axum::extract::State;
use axum::http::StatusCode;
use joule_ledger::governance::GovernanceView;
use joule_primitives::{ChainCrypto, Governance, Hash32, proposal_preimage};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// The validators and nodes of a channel after its head block, and its open proposals.
#[utoipa::path(get, path = "/v1/governance", tag = "governance", params(ChannelQuery),
    responses(
        (status = 200, description = "Members and open proposals, with the votes that still count", body = GovernanceView),
        (status = 400, description = "An unknown query parameter (`bad_query`)", body = ErrorBody),
        (status = 404, description = "This node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels: not initialised (`not_initialised`)", body = ErrorBody),
        (status = 500, description = "The node failed to read its store (`internal`)", body = ErrorBody),
        (status = 503, description = "The channel's storage failed and is recovering (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn governance(State(node): State<Arc<Node>>, Query(q): Query<ChannelQuery>) -> Result<Json<GovernanceView>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    Ok(Json(super::blocking(move || Ok(c.governance()?)).await?))
}

/// A governance transaction this node signed and admitted.
#[derive(Serialize, ToSchema)]
pub struct GovernanceSubmitted {
    /// The transaction's hash: `GET /v1/tx/{hash}` shows its receipt once committed.
    hash: Hash32,
    nonce: u64,
    /// The proposal acted on (for `propose`: the new proposal's id).
    proposal: Hash32,
}

/// Propose, vote or withdraw, as this node's validator.
///
/// The node signs the transaction with its own validator key (the one it seals blocks
/// with), takes the next nonce after its pending transactions, and admits it to the pool.
/// The action is counted when a block includes it; its receipt says whether it counted
/// (`reverted` with the reason when not: the proposal closed, the vote expired, …).
#[utoipa::path(post, path = "/v1/governance/actions", tag = "governance", params(ChannelQuery),
    request_body(content = Governance, description = "The action; `expires_at` is a block height"),
    responses(
        (status = 202, description = "Signed and admitted to the pool", body = GovernanceSubmitted),
        (status = 400, description = "An unknown query parameter (`bad_query`), a body that is not JSON (`bad_json`), or an invalid change (`malformed`)", body = ErrorBody),
        (status = 403, description = "This node is not a validator of the channel, or has no signing key (`not_permitted`)", body = ErrorBody),
        (status = 404, description = "This node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels: not initialised (`not_initialised`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 415, description = "A body that is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (`invalid_body`)", body = ErrorBody),
        (status = 429, description = "This node has as many transactions in the pool as one sender may (`sender_limit`)", body = ErrorBody),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The pool is full (`pool_full`), or the channel's storage failed and is recovering (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn act(
    State(node): State<Arc<Node>>,
    Query(q): Query<ChannelQuery>,
    Json(action): Json<Governance>,
) -> Result<(StatusCode, Json<GovernanceSubmitted>), ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let submitted = super::blocking(move || -> Result<GovernanceSubmitted, ApiError> {
        let proposal = match &action {
            Governance::Propose { changes, .. } => {
                c.suite().hash(&proposal_preimage(changes)).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
            }
            Governance::Vote { proposal, .. } | Governance::Withdraw { proposal } => *proposal,
        };
        let tx = c.submit_as_node(joule_primitives::Payload::Governance(action))?;
        let hash = tx.hash(c.suite().as_ref() as &dyn ChainCrypto).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
        Ok(GovernanceSubmitted { hash, nonce: tx.body.nonce, proposal })
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(submitted)))
}
