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

/// Which suite to bind a key of.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindKeyRequest {
    /// A built-in crypto suite other than the channel's (`gm`, `intl`).
    suite: String,
}

/// The binding this node sent, and its keys of the new suite.
#[derive(Serialize, ToSchema)]
pub struct KeyBound {
    /// The `bind_key` transaction's hash: `GET /v1/tx/{hash}` shows its receipt.
    hash: Hash32,
    nonce: u64,
    suite: String,
    /// The node's signing key of the suite (SPKI DER, hex): its validator key from the
    /// switch on.
    #[schema(value_type = String)]
    public_key: String,
    /// The node's network key of the suite (33 bytes, hex): what a `switch_suite`
    /// proposal lists for this node.
    #[schema(value_type = String)]
    network_key: String,
}

/// Bind this node's account to a key of another crypto suite, ahead of a switch to it.
///
/// The node makes (or reuses) its signing key of the suite in its keystore, records it in
/// `node.toml`, makes its network key of the suite, and sends a `bind_key` transaction
/// signed by its current key with the new key's proof of possession. From the height the
/// channel switches to the suite, the node seals and signs with the new key.
#[utoipa::path(post, path = "/v1/governance/bind-key", tag = "governance", params(ChannelQuery),
    request_body(content = BindKeyRequest, description = "The suite"),
    responses(
        (status = 202, description = "Keys made and the binding admitted to the pool", body = KeyBound),
        (status = 400, description = "An unknown query parameter (`bad_query`), a body that is not JSON (`bad_json`), an unknown suite or the channel's own (`malformed`)", body = ErrorBody),
        (status = 403, description = "This node has no signing key for the channel (`not_permitted`)", body = ErrorBody),
        (status = 404, description = "This node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels (`not_initialised`) or no keystore (`no_keystore`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 415, description = "A body that is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (`invalid_body`)", body = ErrorBody),
        (status = 429, description = "This node has as many transactions in the pool as one sender may (`sender_limit`)", body = ErrorBody),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The pool is full (`pool_full`), the crypto plugins of the suite are not active (`unavailable`), or the channel's storage failed (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn bind_key(
    State(node): State<Arc<Node>>,
    Query(q): Query<ChannelQuery>,
    Json(req): Json<BindKeyRequest>,
) -> Result<(StatusCode, Json<KeyBound>), ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let bound = super::blocking(move || bind_node_key(&node, &c, &req.suite)).await?;
    Ok((StatusCode::ACCEPTED, Json(bound)))
}

fn bind_node_key(node: &Node, c: &joule_ledger::chain::Chain, suite_id: &str) -> Result<KeyBound, ApiError> {
    let internal = |e: &dyn std::fmt::Display| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string());
    let malformed = |m: String| ApiError(StatusCode::BAD_REQUEST, "malformed", m);
    let suite = joule_primitives::CryptoSuite::named(suite_id)
        .ok_or_else(|| malformed(format!("unknown crypto suite {suite_id:?} (known: {})", joule_primitives::CryptoSuite::NAMED.join(", "))))?;
    let current = c.suite();
    if current.suite().id == suite.id {
        return Err(malformed(format!("channel {} already uses suite {suite_id}: bind a key of the suite it will switch to", c.channel())));
    }
    if current.bind_suite(&suite.id).is_none() {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("this node's crypto plugins do not serve suite {suite_id}: install and activate them"),
        ));
    }
    let sender = c.signer_key().ok_or_else(|| {
        ApiError(StatusCode::FORBIDDEN, "not_permitted", format!("this node has no signing key for channel {}: it can only follow the chain", c.channel()))
    })?;
    let keystore = node.keystore.clone().ok_or_else(|| {
        ApiError(StatusCode::CONFLICT, "no_keystore", "this node has no keystore to keep a new key in (DIR/keystore.redb or --keystore)".into())
    })?;
    let signer = crate::own_key(node, &keystore, &suite.signature).map_err(|e| internal(&format!("{e:#}")))?;
    let public_key = joule_ledger::chain::BlockSigner::public_key(signer.as_ref()).to_vec();
    let wire = joule_net::WireSuite::from_channel_suite(&suite.id).ok_or_else(|| malformed(format!("suite {suite_id} has no peer transport")))?;
    let network_key = crate::p2p::network_key(&node.dir, &node.crypto, wire).map_err(|e| internal(&format!("{e:#}")))?;
    let account = current.hash(&sender).map_err(|e| internal(&e))?;
    let message = joule_primitives::bind_key_message(c.channel(), &account, &suite.id, &public_key);
    let proof = joule_ledger::chain::BlockSigner::sign(signer.as_ref(), &message).map_err(|e| internal(&e))?;
    c.add_signer(&suite.id, signer);
    let tx = c.submit_as_node(joule_primitives::Payload::BindKey { suite: suite.id.clone(), public_key: public_key.clone(), proof })?;
    let hash = tx.hash(current.as_ref() as &dyn ChainCrypto).map_err(|e| internal(&e))?;
    Ok(KeyBound { hash, nonce: tx.body.nonce, suite: suite.id, public_key: hex::encode(public_key), network_key: network_key.public().to_hex() })
}
