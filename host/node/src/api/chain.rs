//! Chain endpoints: status, transaction submission and lookup, blocks, accounts, state
//! with proofs, the live block stream; and the admin side: block import and the node's
//! configuration files.

use super::batch::{self, BatchError, FrameReader};
use super::extract::{Body, BodyStream, Json, Path, Query};
use super::guard::Permit;
use super::openapi::{Binary, StreamEvent, Toml};
use super::{ApiError, ErrorBody, bad, blocking};
use crate::Node;
use crate::config::{self, NetworkConfig, NodeConfig};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use joule_client::wire::MAX_BATCH;
use joule_ledger::chain::{AccountAnswer, Chain, ChainError, EventRecord, StateAnswer, TxRecord};
use joule_ledger::pool::{PoolStatus, Rejection, counted};
use joule_primitives::{Block, BlockHeader, ChannelId, Encode, Hash32, Receipt, Transaction};
use joule_support::fs::Mode;
use joule_support::sync::lock;
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChannelQuery {
    /// The channel (default: the node's first).
    pub(super) channel: Option<String>,
}

pub(super) fn chain(node: &Node, channel: Option<&str>) -> Result<Arc<Chain>, ApiError> {
    if node.chains.is_empty() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "not_initialised",
            "this node has no channels: create its configuration with `joule init --dir DIR`".into(),
        ));
    }
    node.chain(channel)
        .cloned()
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "no_such_channel", format!("this node does not serve channel {:?}", channel.unwrap_or(""))))
}

impl From<ChainError> for ApiError {
    fn from(e: ChainError) -> Self {
        match &e {
            ChainError::Invalid { .. } => ApiError(StatusCode::UNPROCESSABLE_ENTITY, "invalid_block", e.to_string()),
            ChainError::Known { .. } => ApiError(StatusCode::CONFLICT, "known_block", e.to_string()),
            // Valid, and kept: its chain does not outweigh the head's (yet).
            ChainError::Side { .. } => ApiError(StatusCode::CONFLICT, "side_block", e.to_string()),
            ChainError::UnknownParent { .. } => ApiError(StatusCode::CONFLICT, "unknown_parent", e.to_string()),
            ChainError::BelowFinal { .. } => ApiError(StatusCode::CONFLICT, "below_final", e.to_string()),
            ChainError::StorageFailed(_) => ApiError(StatusCode::SERVICE_UNAVAILABLE, "storage_failed", e.to_string()),
            // The node keeps the last blocks' state only (`[storage] state-history-blocks`).
            ChainError::Pruned { .. } => ApiError(StatusCode::GONE, "pruned", e.to_string()),
            ChainError::NoSuchHeight { .. } | ChainError::NotFound(_) => ApiError(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            ChainError::Contract(_) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "contract_runtime", e.to_string()),
            _ => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "chain", e.to_string()),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let status = match r {
            Rejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::NonceUsed { .. } | Rejection::Duplicate(_) => StatusCode::CONFLICT,
            Rejection::SenderLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
            Rejection::NotPermitted(_) => StatusCode::FORBIDDEN,
            Rejection::PoolFull | Rejection::StorageFailed(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, r.code(), r.to_string())
    }
}

/// A channel's state as this node sees it.
#[derive(Serialize, ToSchema)]
pub struct Status {
    channel: ChannelId,
    height: u64,
    head_hash: Hash32,
    /// Unix milliseconds.
    head_timestamp_ms: u64,
    /// The channel's genesis consensus engine, e.g. `poa`.
    consensus: String,
    /// The engine that makes and checks the next block, name and version (`bft/0.1.0`):
    /// the genesis one until a governed switch; absent when none can run here.
    engine: Option<String>,
    /// The crypto suite of the next block, e.g. `gm`: what new transactions are hashed and
    /// signed in (the genesis suite until a governed switch).
    crypto_suite: String,
    /// Network keys (hex) of the peers connected on this channel (`GET /v1/peers` for more).
    peers: Vec<String>,
    /// Transactions in the pool: executable ones and those waiting for an earlier nonce.
    pending_transactions: usize,
    /// Whether this node seals the channel's blocks.
    validator: bool,
    network_id: Option<String>,
    /// Every channel this node serves.
    channels: Vec<ChannelId>,
}

/// Chain status of a channel.
#[utoipa::path(get, path = "/v1/status", tag = "chain", params(ChannelQuery),
    responses(
        (status = 200, description = "The channel's status", body = Status),
        (status = 400, description = "An unknown query parameter (`bad_query`)", body = ErrorBody),
        (status = 404, description = "This node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels: not initialised (`not_initialised`)", body = ErrorBody),
    ))]
pub async fn status(State(node): State<Arc<Node>>, Query(q): Query<ChannelQuery>) -> Result<Json<Status>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let head = c.head();
    let network_id = lock(&node.config).as_ref().map(|c| c.network.network_id.clone());
    Ok(Json(Status {
        channel: c.channel().clone(),
        height: head.height,
        head_hash: head.hash,
        head_timestamp_ms: head.header.timestamp_ms,
        consensus: c.spec().consensus.clone(),
        engine: c.engine().ok().map(|e| e.name().to_string()),
        crypto_suite: c.suite().suite().id.clone(),
        peers: network(&node, c.channel()).map(|n| n.peers().iter().map(|p| p.key.to_hex()).collect()).unwrap_or_default(),
        pending_transactions: c.pool_len(),
        validator: c.is_validator(),
        network_id,
        channels: node.chains.iter().map(|c| c.channel().clone()).collect(),
    }))
}

/// The channel's peer-to-peer network, when it has one.
fn network(node: &Node, channel: &ChannelId) -> Option<joule_net::Network> {
    lock(&node.networks).iter().find(|(c, _)| c == channel).map(|(_, n)| n.clone())
}

/// A connected peer (§10.1: liveness).
#[derive(Serialize, ToSchema)]
pub struct PeerView {
    /// Its static network key: compressed point, hex.
    network_key: String,
    /// The Noise protocol the connection runs (`Noise_XX_SM2_SM4GCM_SM3`, …).
    protocol: String,
    address: String,
    /// Whether this node dialled it.
    outbound: bool,
    connected_ms: u64,
    /// Milliseconds since anything arrived from it (it is dropped after 10 s of silence).
    last_heard_ms: u64,
    /// Round trip of the last ping answered, in milliseconds.
    rtt_ms: Option<f64>,
    /// 0 is good; misbehaviour lowers it; at -100 the peer is banned for a while.
    score: i32,
}

/// A channel's peer-to-peer network as this node sees it.
#[derive(Serialize, ToSchema)]
pub struct Peers {
    channel: ChannelId,
    /// This node's network key on the channel (in the suite it dials in); absent when the
    /// channel lists no nodes or not this one (it then runs without peers).
    network_key: Option<String>,
    /// The Noise protocols this node answers in, the one it dials in first (two around a
    /// crypto-suite switch).
    protocols: Vec<String>,
    /// Where it listens for peers.
    listen: Option<String>,
    /// Nodes the channel lists (this one included).
    members: usize,
    peers: Vec<PeerView>,
}

/// The peers of a channel and their liveness.
#[utoipa::path(get, path = "/v1/peers", tag = "chain", params(ChannelQuery),
    responses(
        (status = 200, description = "The channel's connected peers", body = Peers),
        (status = 400, description = "An unknown query parameter (`bad_query`)", body = ErrorBody),
        (status = 404, description = "This node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels: not initialised (`not_initialised`)", body = ErrorBody),
    ))]
pub async fn peers(State(node): State<Arc<Node>>, Query(q): Query<ChannelQuery>) -> Result<Json<Peers>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let net = network(&node, c.channel());
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Ok(Json(Peers {
        channel: c.channel().clone(),
        network_key: net.as_ref().map(|n| n.key().to_hex()),
        protocols: net.as_ref().map(|n| n.suites().iter().map(|s| s.protocol_name().to_string()).collect()).unwrap_or_default(),
        listen: net.as_ref().map(|n| n.local_addr().to_string()),
        members: c.members().members.nodes.len(),
        peers: net
            .map(|n| {
                n.peers()
                    .into_iter()
                    .map(|p| PeerView {
                        network_key: p.key.to_hex(),
                        protocol: p.suite.protocol_name().to_string(),
                        address: p.addr.to_string(),
                        outbound: p.outbound,
                        connected_ms: ms(p.connected_for),
                        last_heard_ms: ms(p.last_heard_ago),
                        rtt_ms: p.rtt.map(|d| d.as_secs_f64() * 1e3),
                        score: p.score,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pending {
    Pending,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Committed {
    Committed,
}

/// A transaction admitted to the pool.
#[derive(Serialize, ToSchema)]
pub struct Submitted {
    hash: Hash32,
    status: Pending,
}

fn is_json(headers: &HeaderMap) -> bool {
    super::extract::is_json(headers)
}

/// Submit a signed transaction.
///
/// Its canonical bytes (any content type but JSON) or its JSON view (`application/json`).
/// It goes to the channel it names when this node serves it, else to the default channel,
/// which refuses it (`wrong_channel`).
#[utoipa::path(post, path = "/v1/tx", tag = "chain",
    request_body(description = "The signed transaction", content((Binary = "application/octet-stream"), (Transaction = "application/json"))),
    responses(
        (status = 202, description = "Admitted to the pool", body = Submitted),
        (status = 400, description = "Refused: `malformed`, `wrong_channel`, `wrong_algorithm`, `unsupported_payload`, `gas_over_limit`, `gas_below_intrinsic`, `nonce_too_far_ahead`, `bad_signature`, `deploy_refused` (the code cannot be deployed: the message names the problem, e.g. an import outside the `joule:contract` world)", body = ErrorBody),
        (status = 403, description = "The sender may not do this (`not_permitted`): deploy contracts on the channel, or send at all on a channel with certificates (no current certificate of a member organisation: none recorded, revoked or expired)", body = ErrorBody),
        (status = 409, description = "Refused: `nonce_used`, `duplicate`; or the node has no channels (`not_initialised`)", body = ErrorBody),
        (status = 413, description = "Over the size limit (`too_large`)", body = ErrorBody),
        (status = 429, description = "The sender has as many pending or queued transactions in the pool as one sender may (`sender_limit`)", body = ErrorBody),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The pool is full (`pool_full`), or the channel's storage failed and is recovering (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn submit_tx(State(node): State<Arc<Node>>, headers: HeaderMap, permit: Permit, Body(body): Body) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let default = chain(&node, None)?;
    let json = is_json(&headers);
    // Decoding and the signature check, off the async workers.
    let hash = permit
        .blocking(move || {
            let tx = if json {
                match serde_json::from_slice::<Transaction>(&body) {
                    Ok(tx) => tx,
                    Err(e) => {
                        let r = counted(Rejection::Malformed(e.to_string()));
                        return Err(ApiError(StatusCode::BAD_REQUEST, r.code(), format!("malformed transaction JSON: {e}")));
                    }
                }
            } else {
                match Transaction::decode(&body) {
                    Ok(tx) => tx,
                    // The chain's own path gives the precise rejection (size before encoding).
                    Err(_) => return Err(default.submit_bytes(&body).err().map(ApiError::from).unwrap_or_else(|| bad("undecodable transaction"))),
                }
            };
            // A transaction goes to the chain of its channel when this node serves it.
            let target = node.chain(Some(tx.body.channel.as_str())).cloned().unwrap_or(default);
            Ok(target.submit(tx)?)
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Submitted { hash, status: Pending::Pending })))
}

/// One transaction's answer in a batch.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    Admitted { hash: Hash32 },
    Refused { code: String, error: String },
}

#[derive(Serialize, ToSchema)]
pub struct BatchAnswer {
    accepted: usize,
    rejected: usize,
    /// One per transaction, in order.
    results: Vec<BatchItem>,
}

/// Submit many transactions in one request.
///
/// `application/json`: an array of transaction JSON views; otherwise frames of
/// `u32 LE length ‖ canonical bytes`. Each transaction gets its own answer, in order; the
/// request fails as a whole only when it cannot be split into transactions.
#[utoipa::path(post, path = "/v1/txs", tag = "chain",
    request_body(description = "At most 10 000 signed transactions", content((Binary = "application/octet-stream"), (Vec<Transaction> = "application/json"))),
    responses(
        (status = 200, description = "One answer per transaction", body = BatchAnswer),
        (status = 400, description = "Not a batch: bad framing or JSON (`malformed`)", body = ErrorBody),
        (status = 409, description = "The node has no channels (`not_initialised`)", body = ErrorBody),
        (status = 413, description = "Over the body limit or the transaction limit (`too_large`)", body = ErrorBody),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The storage of a channel the batch goes to failed and is recovering (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn submit_batch(State(node): State<Arc<Node>>, headers: HeaderMap, permit: Permit, mut body: BodyStream) -> Result<Json<BatchAnswer>, ApiError> {
    let default = chain(&node, None)?;
    // The pool's own limit: a frame over it is refused before it is decoded.
    let max_tx = default.max_tx_bytes();
    let read = if is_json(&headers) {
        Read::Json(body.bytes().await?)
    } else {
        // Frames are counted as they arrive: the first one over the limit ends the request.
        let mut frames = FrameReader::new(MAX_BATCH, max_tx);
        while let Some(chunk) = body.chunk().await? {
            if let Err(e) = frames.push(chunk) {
                // Reading the rest needs no place; it is discarded, so that a client still
                // sending gets this answer rather than a reset connection.
                drop(permit);
                body.discard().await;
                return Err(batch_error(e));
            }
        }
        Read::Frames(frames.finish().map_err(batch_error)?)
    };
    // Decoding and signature checks, off the async workers.
    let results = permit
        .blocking(move || {
            let items = match read {
                Read::Frames(frames) => batch::decode_frames(frames, max_tx),
                // A transaction's JSON view: hex doubles its bytes; field names and escapes add more.
                Read::Json(text) => batch::decode_json(&text, MAX_BATCH, 4 * max_tx + 4096).map_err(batch_error)?,
            };
            // Transactions of channels this node serves go to their chains; the rest to the
            // default chain, which rejects them with `wrong_channel`.
            let mut results: Vec<Option<Result<Hash32, Rejection>>> = vec![None; items.len()];
            let mut per_chain: Vec<(Arc<Chain>, Vec<usize>, Vec<Transaction>)> = vec![];
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Err(r) => results[i] = Some(Err(counted(r))),
                    Ok(tx) => {
                        let target = node.chain(Some(tx.body.channel.as_str())).cloned().unwrap_or_else(|| default.clone());
                        match per_chain.iter_mut().find(|(c, _, _)| Arc::ptr_eq(c, &target)) {
                            Some((_, idx, txs)) => {
                                idx.push(i);
                                txs.push(tx);
                            }
                            None => per_chain.push((target, vec![i], vec![tx])),
                        }
                    }
                }
            }
            // A channel that cannot commit refuses the batch as a whole, as it would one transaction.
            if let Some((c, f)) = per_chain.iter().find_map(|(c, _, _)| c.health().storage.map(|f| (c, f))) {
                return Err(ApiError::from(ChainError::StorageFailed(format!("channel {}: {}", c.channel(), f.reason))));
            }
            for (c, idx, txs) in per_chain {
                for (i, r) in idx.into_iter().zip(c.submit_batch(txs)) {
                    results[i] = Some(r);
                }
            }
            Ok(results.into_iter().map(|r| r.unwrap_or_else(|| Err(Rejection::Internal("no answer".into())))).collect::<Vec<_>>())
        })
        .await?;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let results: Vec<BatchItem> = results
        .into_iter()
        .map(|r| match r {
            Ok(hash) => BatchItem::Admitted { hash },
            Err(e) => BatchItem::Refused { code: e.code().into(), error: e.to_string() },
        })
        .collect();
    Ok(Json(BatchAnswer { accepted, rejected: results.len() - accepted, results }))
}

/// A batch as read, not yet decoded.
enum Read {
    Frames(Vec<batch::Frame>),
    Json(axum::body::Bytes),
}

/// Too many transactions is 413; anything else that is not a batch, 400.
fn batch_error(e: BatchError) -> ApiError {
    match e {
        BatchError::TooMany(_) => ApiError(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string()),
        _ => ApiError(StatusCode::BAD_REQUEST, "malformed", e.to_string()),
    }
}

fn parse_hash(s: &str) -> Result<Hash32, ApiError> {
    Hash32::from_hex(s).ok_or_else(|| bad(format!("{s:?} is not a 32-byte hash in hex")))
}

/// A transaction: committed, with its receipt and block; pending; or evicted.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum TxView {
    Committed {
        status: Committed,
        channel: ChannelId,
        #[serde(flatten)]
        record: Box<TxRecord>,
    },
    Pending {
        hash: Hash32,
        status: Pending,
        channel: ChannelId,
        /// `true` while it waits for an earlier nonce of its sender (then it may expire);
        /// `false` when it can go into the next block.
        queued: bool,
    },
    /// Accepted, then dropped from the pool without being committed; it may be sent again.
    Evicted {
        hash: Hash32,
        status: Evicted,
        channel: ChannelId,
        /// `pool_full` (room was made for transactions of higher priority), `expired` (it
        /// waited for an earlier nonce too long), `nonce_used` (another transaction of its
        /// sender with the same nonce was committed), or `suite_switched` (the channel
        /// switched its crypto suite before a block took it: sign it again in the new one).
        code: String,
        /// Why, e.g. `pool_full: replaced by higher-priority transactions (…)`.
        reason: String,
        /// When, in Unix milliseconds.
        evicted_at_ms: u64,
    },
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Evicted {
    Evicted,
}

/// A transaction: committed with its receipt and block, pending in the pool, or evicted.
///
/// A transaction the pool accepted and later dropped (to make room, or after waiting too
/// long for an earlier nonce) is reported as `evicted` with the reason, as long as it is
/// among the pool's most recent evictions (`[txpool] evictions-remembered`); after that,
/// as after a restart, it is unknown (404).
#[utoipa::path(get, path = "/v1/tx/{hash}", tag = "chain",
    params(("hash" = Hash32, Path, description = "The transaction's hash"), ChannelQuery),
    responses(
        (status = 200, description = "The transaction: `committed`, `pending` or `evicted`", body = TxView),
        (status = 400, description = "Not a hash (`bad_request`) or an unknown query parameter (`bad_query`)", body = ErrorBody),
        (status = 404, description = "Not committed, in the pool or recently evicted (`not_found`), or the node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels (`not_initialised`)", body = ErrorBody),
        (status = 500, description = "The node failed (`chain`, `internal`)", body = ErrorBody),
    ))]
pub async fn get_tx(State(node): State<Arc<Node>>, Path(hash): Path<String>, Query(q): Query<ChannelQuery>) -> Result<Json<TxView>, ApiError> {
    let hash = parse_hash(&hash)?;
    let chains: Vec<Arc<Chain>> = match q.channel.as_deref() {
        Some(id) => vec![chain(&node, Some(id))?],
        None => node.chains.clone(),
    };
    blocking(move || {
        for c in &chains {
            // The pool first, then the store: a block is written before the pool lets its
            // transactions go, so one that left the pool since is found in the store. (The
            // other order answered 404 for a transaction committed between the two reads.)
            let pooled = c.pool_status(&hash);
            if let Some(record) = c.tx(&hash)? {
                return Ok(Json(TxView::Committed { status: Committed::Committed, channel: c.channel().clone(), record: Box::new(record) }));
            }
            let channel = c.channel().clone();
            match pooled {
                Some(PoolStatus::Pending) => return Ok(Json(TxView::Pending { hash, status: Pending::Pending, channel, queued: false })),
                Some(PoolStatus::Queued) => return Ok(Json(TxView::Pending { hash, status: Pending::Pending, channel, queued: true })),
                Some(PoolStatus::Evicted(e)) => {
                    let (code, reason) = (e.reason.code().to_string(), e.reason.to_string());
                    return Ok(Json(TxView::Evicted { hash, status: Evicted::Evicted, channel, code, reason, evicted_at_ms: e.at_ms }));
                }
                None => {}
            }
        }
        Err(ApiError(StatusCode::NOT_FOUND, "not_found", format!("no transaction {hash} is committed or pending")))
    })
    .await
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum BlockFormat {
    /// The JSON view (default).
    Json,
    /// The canonical encoding.
    Bytes,
}

#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BlockQuery {
    /// The channel (default: the node's first).
    channel: Option<String>,
    /// `json` (default) or `bytes` (the canonical encoding).
    #[param(inline)]
    format: Option<BlockFormat>,
    /// `false`: header and transaction hashes only, without transactions and receipts.
    full: Option<bool>,
}

/// A block's JSON view.
#[derive(Serialize, ToSchema)]
pub struct BlockView {
    hash: Hash32,
    header: BlockHeader,
    /// Absent with `full=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    transactions: Option<Vec<Transaction>>,
    tx_hashes: Vec<Hash32>,
    /// Absent with `full=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    receipts: Option<Vec<Receipt>>,
}

/// A block by height, hash or `latest`.
///
/// With its transaction hashes and receipts; `format=bytes` gives its canonical encoding.
#[utoipa::path(get, path = "/v1/blocks/{id}", tag = "chain",
    params(("id" = String, Path, description = "A height, a block hash (hex) or `latest`", pattern = "^(latest|[0-9]+|(0x)?[0-9a-fA-F]{64})$"), BlockQuery),
    responses(
        (status = 200, description = "The block", content((BlockView = "application/json"), (Binary = "application/octet-stream"))),
        (status = 400, description = "Not a height, hash or `latest` (`bad_request`), or a bad parameter (`bad_query`, `bad_path`)", body = ErrorBody),
        (status = 404, description = "No such block (`not_found`), or the node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels (`not_initialised`)", body = ErrorBody),
        (status = 500, description = "The node failed (`chain`, `internal`)", body = ErrorBody),
    ))]
pub async fn get_block(State(node): State<Arc<Node>>, Path(id): Path<String>, Query(q): Query<BlockQuery>) -> Result<Response, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let full = q.full != Some(false);
    let found = blocking(move || {
        let digits = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
        let block = if id == "latest" {
            c.block(c.head().height)?
        } else if let Some(h) = id.parse::<u64>().ok().filter(|_| digits) {
            c.block(h)?
        } else if let Some(hash) = Hash32::from_hex(&id) {
            c.block_by_hash(&hash)?
        } else if digits {
            None // a height past any there can be
        } else {
            return Err(bad(format!("{id:?} is not a 32-byte hash in hex, a height or `latest`")));
        };
        let Some(block) = block else { return Ok(None) };
        let receipts = if full { c.receipts(block.header.height)?.unwrap_or_default() } else { vec![] };
        let hash = block.header.hash(c.suite_at(block.header.height)?.as_ref()).map_err(ChainError::from)?;
        let tx_hashes = c.tx_hashes(block.header.height)?.unwrap_or_default();
        Ok(Some((hash, block, receipts, tx_hashes)))
    })
    .await?;
    let Some((hash, block, receipts, tx_hashes)) = found else {
        return Err(ApiError(StatusCode::NOT_FOUND, "not_found", "no such block".into()));
    };
    if let Some(BlockFormat::Bytes) = q.format {
        return Ok(([(header::CONTENT_TYPE, "application/octet-stream")], block.encode()).into_response());
    }
    let Block { header, transactions } = block;
    let (transactions, receipts) = if full { (Some(transactions), Some(receipts)) } else { (None, None) };
    Ok(Json(BlockView { hash, header, transactions, tx_hashes, receipts }).into_response())
}

/// An account id: 64 hex digits, or a public key (SPKI DER in hex) whose hash is the id.
fn account_id(c: &Chain, s: &str) -> Result<Hash32, ApiError> {
    if let Some(h) = Hash32::from_hex(s) {
        return Ok(h);
    }
    let spki = hex::decode(s.strip_prefix("0x").unwrap_or(s))
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| bad(format!("{s:?} is neither an account id nor a hex public key")))?;
    // The id under the suite of the head's state, which the answer reads.
    let suite = c.suite_at(c.head().height)?;
    joule_primitives::Hasher::hash(suite.as_ref(), &spki).map_err(|e| ApiError::from(ChainError::from(e)))
}

/// An account at the head, with its state proof.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    #[serde(flatten)]
    answer: AccountAnswer,
    /// The nonce the account's next transaction takes.
    next_nonce: u64,
}

#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// The channel (default: the node's first).
    channel: Option<String>,
    /// The block whose state to read (default: the head).
    height: Option<u64>,
}

/// An account at the head (or at `height`) with its state proof.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "chain",
    params(("id" = String, Path, description = "Account id (hex hash of the public key) or the public key (SPKI DER, hex)", pattern = "^(0x)?([0-9a-fA-F]{2})+$"), AccountQuery),
    responses(
        (status = 200, description = "The account (null when it does not exist) and its proof", body = AccountView),
        (status = 400, description = "Not an account id or a public key (`bad_request`), or an unknown query parameter (`bad_query`)", body = ErrorBody),
        (status = 404, description = "The node does not serve the channel (`no_such_channel`), or `height` is past the head (`not_found`)", body = ErrorBody),
        (status = 410, description = "The node no longer keeps the state of `height` (`pruned`): it keeps the last blocks' state only", body = ErrorBody),
        (status = 409, description = "The node has no channels (`not_initialised`)", body = ErrorBody),
        (status = 500, description = "The node failed (`chain`, `internal`)", body = ErrorBody),
    ))]
pub async fn get_account(State(node): State<Arc<Node>>, Path(id): Path<String>, Query(q): Query<AccountQuery>) -> Result<Json<AccountView>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let id = account_id(&c, &id)?;
    let answer = blocking(move || Ok(c.account_at_height(&id, q.height)?)).await?;
    // Convenience for clients building transactions.
    let next_nonce = answer.account.as_ref().map_or(0, |a| a.nonce);
    Ok(Json(AccountView { answer, next_nonce }))
}

#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StateQuery {
    /// The channel (default: the node's first).
    channel: Option<String>,
    /// With the proofs from the header's state root down to the value.
    #[serde(default)]
    proof: bool,
    /// The block whose state to read (default: the head).
    height: Option<u64>,
}

/// A storage key of an account (contract) at the head, or at `height` while the node keeps
/// that block's state.
///
/// With `proof=true`, the proofs from the header's state root down to the value.
#[utoipa::path(get, path = "/v1/state/{contract}/{*key}", tag = "chain",
    params(
        ("contract" = String, Path, description = "Account id or public key, hex", pattern = "^(0x)?([0-9a-fA-F]{2})+$"),
        ("key" = String, Path, description = "The storage key; may contain `/`"),
        StateQuery,
    ),
    responses(
        (status = 200, description = "The value (absent when the key has none)", body = StateAnswer),
        (status = 400, description = "Not an account id or a public key (`bad_request`), or a bad query parameter (`bad_query`)", body = ErrorBody),
        (status = 404, description = "The node does not serve the channel (`no_such_channel`), or `height` is past the head (`not_found`)", body = ErrorBody),
        (status = 410, description = "The node no longer keeps the state of `height` (`pruned`): it keeps the last blocks' state only", body = ErrorBody),
        (status = 409, description = "The node has no channels (`not_initialised`)", body = ErrorBody),
        (status = 500, description = "The node failed (`chain`, `internal`)", body = ErrorBody),
    ))]
pub async fn get_state(
    State(node): State<Arc<Node>>,
    Path((contract, key)): Path<(String, String)>,
    Query(q): Query<StateQuery>,
) -> Result<Json<StateAnswer>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let contract = account_id(&c, &contract)?;
    Ok(Json(blocking(move || Ok(c.state_at_height(&contract, &key, q.proof, q.height)?)).await?))
}

/// A block height as a query parameter: a non-negative integer within the documented
/// `int64` range (heights never get near it; a larger value is a client's mistake).
pub(super) fn height_param<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else { return Ok(None) };
    match s.parse::<u64>() {
        Ok(h) if h <= i64::MAX as u64 && !s.starts_with('+') => Ok(Some(h)),
        _ => Err(serde::de::Error::custom(format!("height {s:?} is not an integer from 0 to {}", i64::MAX))),
    }
}

/// A non-negative integer; any larger than `usize` reads as `usize::MAX`.
fn saturating<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else { return Ok(None) };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(serde::de::Error::custom(format!("limit {s:?} is not a non-negative integer")));
    }
    Ok(Some(s.parse().unwrap_or(usize::MAX)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The channel (default: the node's first).
    channel: Option<String>,
    /// Account id or public key (hex) of the emitting contract (or data-record sender).
    #[param(pattern = "^(0x)?([0-9a-fA-F]{2})+$")]
    contract: String,
    /// Only events of this topic (name).
    topic: Option<String>,
    /// Only events of blocks at or after this height.
    #[serde(default, deserialize_with = "height_param")]
    #[param(value_type = Option<i64>, minimum = 0)]
    from: Option<u64>,
    /// Only events of blocks at or before this height.
    #[serde(default, deserialize_with = "height_param")]
    #[param(value_type = Option<i64>, minimum = 0)]
    to: Option<u64>,
    /// Most events returned: 1 to 10 000 (smaller and larger values are taken as those), default 100.
    #[serde(default, deserialize_with = "saturating")]
    #[param(value_type = Option<u64>, minimum = 0)]
    limit: Option<usize>,
}

/// Events of a contract (or data-record sender), oldest first.
///
/// Optionally of one topic; from the events index.
#[utoipa::path(get, path = "/v1/events", tag = "chain", params(EventsQuery),
    responses(
        (status = 200, description = "The events", body = Vec<EventRecord>),
        (status = 400, description = "No or a bad `contract` (`bad_query`, `bad_request`), or a bad query parameter (`bad_query`)", body = ErrorBody),
        (status = 404, description = "The node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels (`not_initialised`)", body = ErrorBody),
        (status = 500, description = "The node failed (`chain`, `internal`)", body = ErrorBody),
    ))]
pub async fn get_events(State(node): State<Arc<Node>>, Query(q): Query<EventsQuery>) -> Result<Json<Vec<EventRecord>>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let contract = account_id(&c, &q.contract)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let (from, to) = (q.from.unwrap_or(0), q.to.unwrap_or(u64::MAX));
    Ok(Json(blocking(move || Ok(c.events_in(&contract, q.topic.as_deref(), from, to, limit)?)).await?))
}

/// The data of a `block` event of the stream.
#[derive(Serialize, ToSchema)]
pub struct BlockEvent {
    channel: ChannelId,
    height: u64,
    hash: Hash32,
    parent_hash: Hash32,
    timestamp_ms: u64,
    /// How many transactions the block holds.
    transactions: usize,
    state_root: Hash32,
}

/// Committed blocks as they come, as server-sent events.
///
/// A `block` event per committed block (data: JSON `channel`, `height`, `hash`,
/// `parent_hash`, `timestamp_ms`, `transactions`, `state_root`; id: the height), and
/// `lagged` (data: `{"missed": n}`) if the reader fell behind.
#[utoipa::path(get, path = "/v1/blocks/stream", tag = "chain", params(ChannelQuery),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = StreamEvent),
        (status = 400, description = "An unknown query parameter (`bad_query`)", body = ErrorBody),
        (status = 404, description = "The node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels (`not_initialised`)", body = ErrorBody),
    ))]
pub async fn stream_blocks(
    State(node): State<Arc<Node>>,
    Query(q): Query<ChannelQuery>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let rx = c.subscribe();
    // The stream ends when the node shuts down: an open one would hold its connection,
    // and the shutdown, for as long as the client stays.
    let stop = node.guards.shutting_down().subscribe();
    let stream = futures_util::stream::unfold((rx, stop), |(mut rx, mut stop)| async move {
        let received = tokio::select! {
            r = rx.recv() => r,
            _ = stop.wait_for(|stopping| *stopping) => return None,
        };
        let ev = match received {
            Ok(b) => {
                let h = &b.block.header;
                let data = BlockEvent {
                    channel: h.channel.clone(),
                    height: h.height,
                    hash: b.hash,
                    parent_hash: h.parent_hash,
                    timestamp_ms: h.timestamp_ms,
                    transactions: b.block.transactions.len(),
                    state_root: h.state_root,
                };
                Event::default().event("block").id(h.height.to_string()).data(serde_json::to_string(&data).unwrap_or_default())
            }
            // A slow reader missed blocks: say so, and carry on from the newest.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Event::default().event("lagged").data(format!("{{\"missed\":{n}}}")),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(ev), (rx, stop)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A committed block.
#[derive(Serialize, ToSchema)]
pub struct Imported {
    height: u64,
    hash: Hash32,
}

/// Import a sealed block (canonical bytes).
///
/// Validated like a peer's (consensus engine, signatures, re-execution, roots) and committed.
#[utoipa::path(post, path = "/v1/blocks", tag = "chain", params(ChannelQuery),
    request_body(content = Binary, content_type = "application/octet-stream", description = "The block's canonical encoding"),
    responses(
        (status = 200, description = "Committed", body = Imported),
        (status = 400, description = "Not a block (`malformed`), or an unknown query parameter (`bad_query`)", body = ErrorBody),
        (status = 404, description = "The node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels (`not_initialised`); the block is committed here already (`known_block`); it is valid and kept on a side chain that weighs no more than the head's (`side_block`); or its parent is not known here: import the blocks before it first (`unknown_parent`); or its branch leaves this chain below a block final here (`below_final`)", body = ErrorBody),
        (status = 413, description = "Over the body limit (`too_large`)", body = ErrorBody),
        (status = 422, description = "The block is invalid (`invalid_block`)", body = ErrorBody),
        (status = 500, description = "The node failed (`chain`, `internal`)", body = ErrorBody),
        (status = 503, description = "The channel's storage failed and is recovering (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn import_block(State(node): State<Arc<Node>>, Query(q): Query<ChannelQuery>, permit: Permit, Body(body): Body) -> Result<Json<Imported>, ApiError> {
    let committed = permit
        .blocking(move || {
            let block = Block::decode(&body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, "malformed", format!("malformed block: {e}")))?;
            let c = chain(&node, q.channel.as_deref().or(Some(block.header.channel.as_str())))?;
            Ok(c.import(block)?)
        })
        .await?;
    Ok(Json(Imported { height: committed.block.header.height, hash: committed.hash }))
}

fn not_initialised() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "not_initialised", "this node has no configuration: run `joule init --dir DIR`".into())
}

fn config_text(node: &Node, which: &str) -> Result<String, ApiError> {
    let cfg = lock(&node.config);
    let cfg = cfg.as_ref().ok_or_else(not_initialised)?;
    Ok(match which {
        "network" => cfg.network.to_toml(),
        _ => cfg.node.to_toml(),
    })
}

/// Write a configuration file (owner-only: it names the node's keys and peers). A failure
/// leaves the old file, no temporary, and the configuration in memory unchanged; a full
/// disk is 507, any other failure 500.
fn save_config(path: &std::path::Path, text: &str) -> Result<(), ApiError> {
    joule_support::fs::write_atomic(path, text.as_bytes(), Mode::Private).map_err(|e| {
        let message = format!("write {}: {e}; nothing was changed", path.display());
        if joule_support::fs::is_storage_full(&e) {
            ApiError(StatusCode::INSUFFICIENT_STORAGE, "storage_full", message)
        } else {
            ApiError(StatusCode::INTERNAL_SERVER_ERROR, "io", message)
        }
    })
}

fn toml_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/toml")], text).into_response()
}

/// The network configuration (network.toml).
///
/// Network id, region, node count, channels (genesis fields and block policy).
#[utoipa::path(get, path = "/v1/config/network", tag = "config",
    responses(
        (status = 200, description = "The file", body = Toml, content_type = "application/toml"),
        (status = 404, description = "The node has no configuration (`not_initialised`)", body = ErrorBody),
    ))]
pub async fn get_network_config(State(node): State<Arc<Node>>) -> Result<Response, ApiError> {
    Ok(toml_response(config_text(&node, "network")?))
}

/// The node configuration (node.toml).
///
/// Name, API IP and port, keys (public; private keys stay in the keystore).
#[utoipa::path(get, path = "/v1/config/node", tag = "config",
    responses(
        (status = 200, description = "The file", body = Toml, content_type = "application/toml"),
        (status = 404, description = "The node has no configuration (`not_initialised`)", body = ErrorBody),
    ))]
pub async fn get_node_config(State(node): State<Arc<Node>>) -> Result<Response, ApiError> {
    Ok(toml_response(config_text(&node, "node")?))
}

/// What a configuration change did.
#[derive(Serialize, ToSchema)]
pub struct NetworkSaved {
    /// Always true.
    saved: bool,
    /// Changes applied at once, e.g. `channel grid: block policy`.
    applied: Vec<String>,
    /// Whether other changes wait for the next start.
    restart_required: bool,
}

/// Replace network.toml.
///
/// Genesis fields of a running channel cannot change (409); a new block policy applies at
/// once; everything else at the next start.
#[utoipa::path(put, path = "/v1/config/network", tag = "config",
    request_body(content = Toml, content_type = "application/toml", description = "The new network.toml"),
    responses(
        (status = 200, description = "Saved", body = NetworkSaved),
        (status = 400, description = "Not a valid network.toml (`bad_config`, `bad_request`)", body = ErrorBody),
        (status = 404, description = "The node has no configuration (`not_initialised`)", body = ErrorBody),
        (status = 409, description = "It changes the genesis fields of a running channel or removes it (`genesis_change`)", body = ErrorBody),
        (status = 413, description = "Over the body limit (`too_large`)", body = ErrorBody),
        (status = 500, description = "The file could not be written (`io`); nothing changed", body = ErrorBody),
        (status = 507, description = "The disk is full (`storage_full`); nothing changed", body = ErrorBody),
    ))]
pub async fn put_network_config(State(node): State<Arc<Node>>, Body(body): Body) -> Result<Json<NetworkSaved>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| bad("the configuration is not UTF-8"))?;
    let new = NetworkConfig::parse(text).map_err(|e| ApiError(StatusCode::BAD_REQUEST, "bad_config", format!("{e:#}")))?;
    let mut guard = lock(&node.config);
    let cfg = guard.as_mut().ok_or_else(not_initialised)?;
    let mut live = vec![];
    for c in &node.chains {
        let Some(n) = new.channels.iter().find(|n| &n.id == c.channel()) else {
            return Err(ApiError(
                StatusCode::CONFLICT,
                "genesis_change",
                format!("channel {} is running; it cannot be removed from the configuration", c.channel()),
            ));
        };
        let spec = n.spec_with(|key| Ok(c.suite_at(0)?.hash(key)?)).map_err(|e| ApiError(StatusCode::BAD_REQUEST, "bad_config", format!("{e:#}")))?;
        if &spec != c.spec() {
            return Err(ApiError(
                StatusCode::CONFLICT,
                "genesis_change",
                format!(
                    "channel {}: crypto suite, consensus, validators, gas limits, gas schedule, contract deployers and genesis time define its ledger and cannot change",
                    c.channel()
                ),
            ));
        }
        let policy: joule_primitives::BlockPolicy = (&n.block_policy).into();
        if policy != c.policy() {
            live.push(c.clone());
        }
    }
    save_config(&node.dir.join(config::NETWORK_FILE), &new.to_toml())?;
    let mut applied = vec![];
    for c in live {
        if let Some(n) = new.channels.iter().find(|n| &n.id == c.channel()) {
            c.set_policy((&n.block_policy).into());
            applied.push(format!("channel {}: block policy", c.channel()));
        }
    }
    let restart_required = new.channels.len() != node.chains.len() || new.network_id != cfg.network.network_id;
    cfg.network = new;
    Ok(Json(NetworkSaved { saved: true, applied, restart_required }))
}

#[derive(Serialize, ToSchema)]
pub struct NodeSaved {
    /// Always true.
    saved: bool,
    /// Whether the file changed (it applies at the next start).
    restart_required: bool,
}

/// Replace node.toml.
///
/// Name, IP and port of the API, keys: they apply at the next start. Users (`[[user]]`) and
/// `admin-token` apply at once; a user removed, or whose password or roles changed, is
/// signed out.
#[utoipa::path(put, path = "/v1/config/node", tag = "config",
    request_body(content = Toml, content_type = "application/toml", description = "The new node.toml"),
    responses(
        (status = 200, description = "Saved", body = NodeSaved),
        (status = 400, description = "Not a valid node.toml, or it names a keystore slot the node does not have (`bad_config`, `bad_request`)", body = ErrorBody),
        (status = 404, description = "The node has no configuration (`not_initialised`)", body = ErrorBody),
        (status = 413, description = "Over the body limit (`too_large`)", body = ErrorBody),
        (status = 500, description = "The file could not be written (`io`); nothing changed", body = ErrorBody),
        (status = 507, description = "The disk is full (`storage_full`); nothing changed", body = ErrorBody),
    ))]
pub async fn put_node_config(State(node): State<Arc<Node>>, Body(body): Body) -> Result<Json<NodeSaved>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| bad("the configuration is not UTF-8"))?;
    let new = NodeConfig::parse(text).map_err(|e| ApiError(StatusCode::BAD_REQUEST, "bad_config", format!("{e:#}")))?;
    for k in &new.keys {
        let held = node.keystore.as_ref().is_some_and(|ks| ks.slot(&k.keystore_slot).is_ok());
        if !held {
            return Err(ApiError(StatusCode::BAD_REQUEST, "bad_config", format!("key {}: the node's keystore has no slot {}", k.algorithm, k.keystore_slot)));
        }
    }
    let mut guard = lock(&node.config);
    let cfg = guard.as_mut().ok_or_else(not_initialised)?;
    save_config(&node.dir.join(config::NODE_FILE), &new.to_toml())?;
    // Users and the admin token switch apply at once; the rest at the next start.
    let strip = |c: &NodeConfig| NodeConfig { users: vec![], admin_token: true, ..c.clone() };
    let restart_required = strip(&new) != strip(&cfg.node);
    for old in &cfg.node.users {
        if !new.users.iter().any(|u| u.name == old.name && u.password_hash == old.password_hash && u.roles == old.roles) {
            node.sessions.close_user(&old.name);
        }
    }
    cfg.node = new;
    Ok(Json(NodeSaved { saved: true, restart_required }))
}
