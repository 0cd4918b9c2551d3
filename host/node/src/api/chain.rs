//! Chain endpoints: status, transaction submission and lookup, blocks, accounts, state
//! with proofs, the live block stream; and the admin side: block import and the node's
//! configuration files.

use super::{ApiError, bad, blocking};
use crate::Node;
use crate::config::{self, NetworkConfig, NodeConfig};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use joule_client::wire::MAX_BATCH;
use joule_ledger::chain::{Chain, ChainError};
use joule_ledger::pool::{Rejection, counted};
use joule_primitives::{Block, Encode, Hash32, Transaction};
use joule_support::fs::Mode;
use joule_support::sync::lock;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ChannelQuery {
    channel: Option<String>,
}

fn chain(node: &Node, channel: Option<&str>) -> Result<Arc<Chain>, ApiError> {
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
            _ => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "chain", e.to_string()),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let status = match r {
            Rejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::NonceUsed { .. } | Rejection::Duplicate(_) => StatusCode::CONFLICT,
            Rejection::PoolFull => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, r.code(), r.to_string())
    }
}

pub async fn status(State(node): State<Arc<Node>>, Query(q): Query<ChannelQuery>) -> Result<Json<Value>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let head = c.head();
    let network_id = lock(&node.config).as_ref().map(|c| c.network.network_id.clone());
    Ok(Json(json!({
        "channel": c.channel(),
        "height": head.height,
        "head_hash": head.hash,
        "head_timestamp_ms": head.header.timestamp_ms,
        "consensus": c.spec().consensus,
        "crypto_suite": c.spec().crypto_suite.id,
        // Peer-to-peer networking arrives with multi-node consensus; a node has no peers yet.
        "peers": [],
        "pending_transactions": c.pool_len(),
        "validator": c.is_validator(),
        "network_id": network_id,
        "channels": node.chains.iter().map(|c| c.channel().to_string()).collect::<Vec<_>>(),
    })))
}

/// `application/json` (the transaction's JSON view) or anything else (canonical bytes).
pub async fn submit_tx(State(node): State<Arc<Node>>, headers: HeaderMap, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let default = chain(&node, None)?;
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    let tx = if is_json {
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
            Err(_) => {
                return Err(blocking(move || default.submit_bytes(&body).map_err(ApiError::from))
                    .await
                    .err()
                    .unwrap_or_else(|| bad("undecodable transaction")));
            }
        }
    };
    // A transaction goes to the chain of its channel when this node serves it.
    let target = node.chain(Some(tx.body.channel.as_str())).cloned().unwrap_or(default);
    let hash = blocking(move || target.submit(tx).map_err(ApiError::from)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"hash": hash, "status": "pending"}))))
}

/// `POST /v1/txs`: many transactions in one request. `application/json`: an array of
/// transaction JSON views; otherwise frames of `u32 LE length ‖ canonical bytes`. Each
/// transaction gets its own answer, in order; the request fails as a whole only when it
/// cannot be split into transactions.
pub async fn submit_batch(State(node): State<Arc<Node>>, headers: HeaderMap, body: Bytes) -> Result<Json<Value>, ApiError> {
    let default = chain(&node, None)?;
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    let items: Vec<Result<Transaction, Rejection>> = if is_json {
        let values: Vec<Value> = serde_json::from_slice(&body)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, "malformed", format!("malformed batch JSON (expected an array of transactions): {e}")))?;
        values.into_iter().map(|v| serde_json::from_value::<Transaction>(v).map_err(|e| Rejection::Malformed(format!("transaction JSON: {e}")))).collect()
    } else {
        // The pool's own limit: a frame over it is refused before it is decoded.
        let max_tx = default.max_tx_bytes();
        let mut out = vec![];
        let mut rest = &body[..];
        while !rest.is_empty() {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(ApiError(StatusCode::BAD_REQUEST, "malformed", "batch frame: truncated length prefix".into()));
            };
            let len = u32::from_le_bytes(*len) as usize;
            if len > tail.len() {
                return Err(ApiError(StatusCode::BAD_REQUEST, "malformed", format!("batch frame {}: length {len} runs past the body", out.len())));
            }
            let (frame, tail) = tail.split_at(len);
            out.push(if len > max_tx {
                Err(Rejection::TooLarge { size: len, limit: max_tx })
            } else {
                Transaction::decode(frame).map_err(|e| Rejection::Malformed(e.to_string()))
            });
            rest = tail;
        }
        out
    };
    if items.len() > MAX_BATCH {
        return Err(ApiError(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("{} transactions in one batch, over the limit of {MAX_BATCH}", items.len())));
    }
    let results = blocking(move || {
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
        for (c, idx, txs) in per_chain {
            for (i, r) in idx.into_iter().zip(c.submit_batch(txs)) {
                results[i] = Some(r);
            }
        }
        Ok(results.into_iter().map(|r| r.unwrap_or_else(|| Err(Rejection::Internal("no answer".into())))).collect::<Vec<_>>())
    })
    .await?;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let rows: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(h) => json!({"hash": h}),
            Err(e) => json!({"code": e.code(), "error": e.to_string()}),
        })
        .collect();
    Ok(Json(json!({"accepted": accepted, "rejected": rows.len() - accepted, "results": rows})))
}

fn parse_hash(s: &str) -> Result<Hash32, ApiError> {
    Hash32::from_hex(s).ok_or_else(|| bad(format!("{s:?} is not a 32-byte hash in hex")))
}

pub async fn get_tx(State(node): State<Arc<Node>>, Path(hash): Path<String>, Query(q): Query<ChannelQuery>) -> Result<Json<Value>, ApiError> {
    let hash = parse_hash(&hash)?;
    let chains: Vec<Arc<Chain>> = match q.channel.as_deref() {
        Some(id) => vec![chain(&node, Some(id))?],
        None => node.chains.clone(),
    };
    blocking(move || {
        for c in &chains {
            if let Some(r) = c.tx(&hash)? {
                let mut v = json!(r);
                v["status"] = json!("committed");
                v["channel"] = json!(c.channel());
                return Ok(Json(v));
            }
            if c.pending(&hash) {
                return Ok(Json(json!({"hash": hash, "status": "pending", "channel": c.channel()})));
            }
        }
        Err(ApiError(StatusCode::NOT_FOUND, "not_found", format!("no transaction {hash} is committed or pending")))
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BlockQuery {
    channel: Option<String>,
    /// `json` (default) or `bytes` (the canonical encoding).
    format: Option<String>,
    /// `false`: header and transaction hashes only, without transactions and receipts.
    full: Option<bool>,
}

/// `GET /v1/blocks/{height | hash | latest}`.
pub async fn get_block(State(node): State<Arc<Node>>, Path(id): Path<String>, Query(q): Query<BlockQuery>) -> Result<Response, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let bytes = match q.format.as_deref() {
        None | Some("json") => false,
        Some("bytes") => true,
        Some(f) => return Err(bad(format!("format {f:?}: expected json or bytes"))),
    };
    let found = blocking(move || {
        let block = if id == "latest" {
            c.block(c.head().height)?
        } else if let Ok(h) = id.parse::<u64>() {
            c.block(h)?
        } else {
            c.block_by_hash(&parse_hash(&id)?)?
        };
        let Some(block) = block else { return Ok(None) };
        let receipts = if q.full == Some(false) { vec![] } else { c.receipts(block.header.height)?.unwrap_or_default() };
        let hash = block.header.hash(c.suite().as_ref()).map_err(ChainError::from)?;
        let tx_hashes = c.tx_hashes(block.header.height)?.unwrap_or_default();
        Ok(Some((hash, block, receipts, tx_hashes)))
    })
    .await?;
    let Some((hash, block, receipts, tx_hashes)) = found else {
        return Err(ApiError(StatusCode::NOT_FOUND, "not_found", "no such block".into()));
    };
    if bytes {
        return Ok(([(header::CONTENT_TYPE, "application/octet-stream")], block.encode()).into_response());
    }
    if q.full == Some(false) {
        return Ok(Json(json!({"hash": hash, "header": block.header, "tx_hashes": tx_hashes})).into_response());
    }
    Ok(Json(json!({"hash": hash, "header": block.header, "transactions": block.transactions, "tx_hashes": tx_hashes, "receipts": receipts})).into_response())
}

/// An account id: 64 hex digits, or a public key (SPKI DER in hex) whose hash is the id.
fn account_id(c: &Chain, s: &str) -> Result<Hash32, ApiError> {
    if let Some(h) = Hash32::from_hex(s) {
        return Ok(h);
    }
    let spki = hex::decode(s.strip_prefix("0x").unwrap_or(s)).map_err(|_| bad(format!("{s:?} is neither an account id nor a hex public key")))?;
    joule_primitives::Hasher::hash(c.suite().as_ref(), &spki).map_err(|e| ApiError::from(ChainError::from(e)))
}

pub async fn get_account(State(node): State<Arc<Node>>, Path(id): Path<String>, Query(q): Query<ChannelQuery>) -> Result<Json<Value>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let id = account_id(&c, &id)?;
    let a = blocking(move || Ok(c.account(&id)?)).await?;
    let mut v = json!(a);
    // Convenience for clients building transactions.
    v["next_nonce"] = json!(a.account.as_ref().map_or(0, |a| a.nonce));
    Ok(Json(v))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    channel: Option<String>,
    #[serde(default)]
    proof: bool,
}

/// `GET /v1/state/{contract}/{*key}`: the key may contain slashes.
pub async fn get_state(
    State(node): State<Arc<Node>>,
    Path((contract, key)): Path<(String, String)>,
    Query(q): Query<StateQuery>,
) -> Result<Json<Value>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let contract = account_id(&c, &contract)?;
    let a = blocking(move || Ok(c.state(&contract, &key, q.proof)?)).await?;
    Ok(Json(json!(a)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    channel: Option<String>,
    /// Account id or public key (hex) of the emitting contract (or data-record sender).
    contract: String,
    topic: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/events?contract=…&topic=…&limit=…`: from the events index, oldest first.
pub async fn get_events(
    State(node): State<Arc<Node>>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let c = chain(&node, q.channel.as_deref())?;
    let contract = account_id(&c, &q.contract)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let rows = blocking(move || Ok(c.events(&contract, q.topic.as_deref(), limit)?)).await?;
    Ok(Json(json!(rows)))
}

/// Server-sent events: one `block` event per committed block.
pub async fn stream_blocks(
    State(node): State<Arc<Node>>,
    Query(q): Query<ChannelQuery>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let rx = c.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok(b) => {
                let h = &b.block.header;
                let data = json!({
                    "channel": h.channel, "height": h.height, "hash": b.hash, "parent_hash": h.parent_hash,
                    "timestamp_ms": h.timestamp_ms, "transactions": b.block.transactions.len(), "state_root": h.state_root,
                });
                Event::default().event("block").id(h.height.to_string()).data(data.to_string())
            }
            // A slow reader missed blocks: say so, and carry on from the newest.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Event::default().event("lagged").data(json!({"missed": n}).to_string()),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(ev), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Admin: import a sealed block (canonical bytes), validated exactly as the producer's own.
pub async fn import_block(State(node): State<Arc<Node>>, Query(q): Query<ChannelQuery>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let block = Block::decode(&body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, "malformed", format!("malformed block: {e}")))?;
    let c = chain(&node, q.channel.as_deref().or(Some(block.header.channel.as_str())))?;
    let committed = blocking(move || Ok(c.import(block)?)).await?;
    Ok(Json(json!({"height": committed.block.header.height, "hash": committed.hash})))
}

fn config_text(node: &Node, which: &str) -> Result<String, ApiError> {
    let cfg = lock(&node.config);
    let cfg =
        cfg.as_ref().ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "not_initialised", "this node has no configuration: run `joule init --dir DIR`".into()))?;
    Ok(match which {
        "network" => cfg.network.to_toml(),
        _ => cfg.node.to_toml(),
    })
}

fn toml_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/toml")], text).into_response()
}

pub async fn get_network_config(State(node): State<Arc<Node>>) -> Result<Response, ApiError> {
    Ok(toml_response(config_text(&node, "network")?))
}

pub async fn get_node_config(State(node): State<Arc<Node>>) -> Result<Response, ApiError> {
    Ok(toml_response(config_text(&node, "node")?))
}

/// Replace network.toml. Genesis fields of a running channel cannot change (409); a new
/// block policy applies at once; everything else at the next start.
pub async fn put_network_config(State(node): State<Arc<Node>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| bad("the configuration is not UTF-8"))?;
    let new = NetworkConfig::parse(text).map_err(|e| ApiError(StatusCode::BAD_REQUEST, "bad_config", format!("{e:#}")))?;
    let mut guard = lock(&node.config);
    let cfg = guard
        .as_mut()
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "not_initialised", "this node has no configuration: run `joule init --dir DIR`".into()))?;
    let mut live = vec![];
    for c in &node.chains {
        let Some(n) = new.channels.iter().find(|n| &n.id == c.channel()) else {
            return Err(ApiError(
                StatusCode::CONFLICT,
                "genesis_change",
                format!("channel {} is running; it cannot be removed from the configuration", c.channel()),
            ));
        };
        let spec = n.spec().map_err(|e| ApiError(StatusCode::BAD_REQUEST, "bad_config", format!("{e:#}")))?;
        if &spec != c.spec() {
            return Err(ApiError(
                StatusCode::CONFLICT,
                "genesis_change",
                format!("channel {}: crypto suite, consensus, validators, gas limit and genesis time define its ledger and cannot change", c.channel()),
            ));
        }
        let policy: joule_primitives::BlockPolicy = (&n.block_policy).into();
        if policy != c.policy() {
            live.push(c.clone());
        }
    }
    config::write_atomic(&node.dir.join(config::NETWORK_FILE), new.to_toml().as_bytes(), Mode::Default)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "io", format!("{e:#}")))?;
    let mut applied = vec![];
    for c in live {
        if let Some(n) = new.channels.iter().find(|n| &n.id == c.channel()) {
            c.set_policy((&n.block_policy).into());
            applied.push(format!("channel {}: block policy", c.channel()));
        }
    }
    let restart_required = new.channels.len() != node.chains.len() || new.network_id != cfg.network.network_id;
    cfg.network = new;
    Ok(Json(json!({"saved": true, "applied": applied, "restart_required": restart_required})))
}

/// Replace node.toml (name, IP and port of the API, keys): applies at the next start.
pub async fn put_node_config(State(node): State<Arc<Node>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| bad("the configuration is not UTF-8"))?;
    let new = NodeConfig::parse(text).map_err(|e| ApiError(StatusCode::BAD_REQUEST, "bad_config", format!("{e:#}")))?;
    for k in &new.keys {
        if !node.dir.join(&k.private_key_file).is_file() {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "bad_config",
                format!("key {}: {} does not exist in the node directory", k.algorithm, k.private_key_file.display()),
            ));
        }
    }
    let mut guard = lock(&node.config);
    let cfg = guard
        .as_mut()
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "not_initialised", "this node has no configuration: run `joule init --dir DIR`".into()))?;
    config::write_atomic(&node.dir.join(config::NODE_FILE), new.to_toml().as_bytes(), Mode::Default)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "io", format!("{e:#}")))?;
    let restart_required = new != cfg.node;
    cfg.node = new;
    Ok(Json(json!({"saved": true, "restart_required": restart_required})))
}
