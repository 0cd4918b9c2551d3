//! Contract endpoints (§4.3): describe a deployed contract (its code hash, upgrade
//! authority, previous code, and the ABI its code carries), run a read-only method, and
//! subscribe to its events live, resuming after a reconnect without a gap.
//!
//! Deployments, calls and upgrades are transactions (`POST /v1/tx`); their receipts (with
//! the return bytes or the new contract's address in `output`) are at `GET /v1/tx/{hash}`.

use super::extract::{Json, Path, Query};
use super::{ApiError, ErrorBody, bad, blocking};
use crate::Node;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use joule_ledger::chain::{Chain, ChainError, CommittedBlock, EventRecord};
use joule_primitives::Hash32;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

fn chain(node: &Node, channel: Option<&str>) -> Result<Arc<Chain>, ApiError> {
    super::chain::chain(node, channel)
}

fn address(s: &str) -> Result<Hash32, ApiError> {
    Hash32::from_hex(s).ok_or_else(|| bad(format!("{s:?} is not a contract address (64 hex digits)")))
}

#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContractQuery {
    /// The channel (default: the node's first).
    channel: Option<String>,
}

/// A deployed contract.
#[derive(Serialize, ToSchema)]
pub struct ContractView {
    address: Hash32,
    /// The suite hash of the code the contract runs.
    code_hash: Hash32,
    /// Bytes of that code.
    code_size: usize,
    /// Who may upgrade the code; null: nobody (immutable).
    upgrade_authority: Option<Hash32>,
    /// The code before the last upgrade.
    previous_code_hash: Option<Hash32>,
    /// The ABI the code carries (the `joule-abi/1` section): one JSON object per contract,
    /// method, event and type, as the standard contract library writes them. Empty for a
    /// contract built without it.
    #[schema(value_type = Vec<Object>)]
    abi: Vec<serde_json::Value>,
    /// The same ABI as one document, as `joule contract build` writes it to `NAME.abi.json`:
    /// `{"contract", "version", "library", "methods", "events", "types", "$defs"}`, the lines
    /// with a JSON Schema (2020-12) of the JSON form of each type added — `schema` on each
    /// method argument and event field, `returns_schema` on each method — and in `$defs` the
    /// schema of each user type (the `{"$ref": "#/$defs/Name"}` of those schemas, taking the
    /// document as their root). Null when the code carries no ABI or it does not parse.
    #[schema(value_type = Option<Object>)]
    abi_document: Option<serde_json::Value>,
}

/// A deployed contract: code hash, upgrade authority, previous code and ABI.
#[utoipa::path(get, path = "/v1/contracts/{address}", tag = "contracts",
    params(("address" = String, Path, description = "The contract's address (64 hex digits)", pattern = "^(0x)?[0-9a-fA-F]{64}$"), ContractQuery),
    responses(
        (status = 200, description = "The contract", body = ContractView),
        (status = 400, description = "Not an address (`bad_request`), or an unknown query parameter (`bad_query`)", body = ErrorBody),
        (status = 404, description = "No contract at the address (`not_found`), or the node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels (`not_initialised`)", body = ErrorBody),
        (status = 500, description = "The node failed (`chain`, `internal`)", body = ErrorBody),
    ))]
pub async fn get_contract(State(node): State<Arc<Node>>, Path(addr): Path<String>, Query(q): Query<ContractQuery>) -> Result<Json<ContractView>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let address = address(&addr)?;
    let view = blocking(move || {
        let account = c.account(&address)?.account;
        let not_found = || ApiError::from(ChainError::NotFound(format!("no contract at {address}")));
        let account = account.ok_or_else(not_found)?;
        let code_hash = account.code_hash.ok_or_else(not_found)?;
        let code = c.code(&code_hash)?.ok_or_else(|| ApiError::from(ChainError::NotFound(format!("the code {code_hash} of {address} is missing"))))?;
        let lines = joule_contract::abi::abi_lines(&code);
        let abi = lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let abi_document = joule_contract::abi::Abi::from_lines(&lines).ok().filter(|a| !a.is_empty()).map(|a| a.to_json());
        Ok(ContractView {
            address,
            code_hash,
            code_size: code.len(),
            upgrade_authority: account.upgrade_authority,
            previous_code_hash: account.previous_code_hash,
            abi,
            abi_document,
        })
    })
    .await?;
    Ok(Json(view))
}

/// A read-only call.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// The method (1-64 characters of `[A-Za-z0-9_-]`).
    method: String,
    /// Its arguments, borsh-encoded, hex (empty for none).
    #[serde(default)]
    args: String,
    /// Gas the call may use (default and maximum: the channel's transaction gas limit).
    gas_limit: Option<u64>,
    /// Account id the contract sees as caller (default: all zeros).
    caller: Option<Hash32>,
}

/// What a read-only call returned.
#[derive(Serialize, ToSchema)]
pub struct QueryAnswer {
    /// `success`, `reverted` or `out_of_gas`.
    status: String,
    /// Why it failed (`reverted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The return bytes (borsh), hex.
    output: String,
    gas_used: u64,
    /// The head the call ran on.
    height: u64,
}

/// Run a read-only method of a contract on the head state (its `query` export): nothing is
/// kept, no transaction is needed. A method that writes, emits or calls for a change fails
/// (`reverted`).
#[utoipa::path(post, path = "/v1/contracts/{address}/query", tag = "contracts",
    params(("address" = String, Path, description = "The contract's address (64 hex digits)", pattern = "^(0x)?[0-9a-fA-F]{64}$"), ContractQuery),
    request_body = QueryRequest,
    responses(
        (status = 200, description = "The call ran (it may have failed: see `status`)", body = QueryAnswer),
        (status = 400, description = "A bad address, method or hex (`bad_request`), or a body that is not JSON (`bad_json`)", body = ErrorBody),
        (status = 404, description = "No contract at the address (`not_found`), or the node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels (`not_initialised`)", body = ErrorBody),
        (status = 413, description = "Over the body limit (`too_large`)", body = ErrorBody),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "JSON that is not a query request (`invalid_body`)", body = ErrorBody),
        (status = 500, description = "The node failed (`chain`, `contract_runtime`, `internal`)", body = ErrorBody),
    ))]
pub async fn query_contract(
    State(node): State<Arc<Node>>,
    Path(addr): Path<String>,
    Query(q): Query<ContractQuery>,
    Json(req): Json<QueryRequest>,
) -> Result<Json<QueryAnswer>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let address = address(&addr)?;
    let method_ok = !req.method.is_empty()
        && req.method.len() <= joule_contract::limits::MAX_METHOD_BYTES
        && req.method.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !method_ok {
        return Err(bad(format!("method {:?} must be 1-64 characters of [A-Za-z0-9_-]", req.method)));
    }
    let args = hex::decode(req.args.strip_prefix("0x").unwrap_or(&req.args)).map_err(|e| bad(format!("args are not hex: {e}")))?;
    let gas = req.gas_limit.unwrap_or(c.spec().gas_limit);
    let height = c.head().height;
    let outcome = blocking(move || Ok(c.query(req.caller.unwrap_or(Hash32::ZERO), &address, &req.method, &args, gas)?)).await?;
    let (status, reason, output) = match outcome.result {
        Ok(out) => ("success", None, out),
        Err(joule_contract::Failure::OutOfGas) => ("out_of_gas", None, vec![]),
        Err(joule_contract::Failure::Reverted(m)) => ("reverted", Some(m), vec![]),
    };
    Ok(Json(QueryAnswer { status: status.into(), reason, output: hex::encode(output), gas_used: outcome.gas_used, height }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventStreamQuery {
    /// The channel (default: the node's first).
    channel: Option<String>,
    /// The emitting contract's address (or a data-record sender's account id), hex.
    #[param(pattern = "^(0x)?[0-9a-fA-F]{64}$")]
    contract: String,
    /// Only events of this name.
    topic: Option<String>,
    /// Replay committed events from this height before going live (ignored when the
    /// `Last-Event-ID` header says where a previous stream stopped).
    #[serde(default, deserialize_with = "super::chain::height_param")]
    #[param(value_type = Option<i64>, minimum = 0)]
    from_height: Option<u64>,
}

/// An event of the stream.
#[derive(Serialize, ToSchema)]
pub struct StreamedEvent {
    #[serde(flatten)]
    record: EventRecord,
    contract: Hash32,
}

/// Where a stream stands: (height, transaction index, event index) of the last event sent.
type Position = (u64, u32, u32);

fn event_id(p: Position) -> String {
    format!("{}:{}:{}", p.0, p.1, p.2)
}

fn parse_event_id(s: &str) -> Option<Position> {
    if !s.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let mut it = s.split(':');
    let p = (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    it.next().is_none().then_some(p)
}

/// Events replayed per store read.
const REPLAY_PAGE: usize = 1000;

/// A contract's events as server-sent events: each matching event of each committed block,
/// in chain order, with id `height:tx:event`.
///
/// On reconnect, `EventSource` sends the last id it saw as `Last-Event-ID`: the stream
/// replays what was committed after it from the store, then goes live, so a client misses
/// nothing and sees nothing twice. Without it, `from_height` replays from that height. A
/// reader too slow for the live feed gets `retry` and the stream ends: its reconnect
/// resumes from its last id.
#[utoipa::path(get, path = "/v1/events/stream", tag = "contracts", params(EventStreamQuery,
        ("Last-Event-ID" = Option<String>, Header, nullable = false, description = "Resume after this event id (`height:tx:event`); empty: no id", pattern = "^([0-9]{1,19}:[0-9]{1,9}:[0-9]{1,9})?$")),
    responses(
        (status = 200, description = "The event stream (`event: contract-event`, data: the event as JSON)", content_type = "text/event-stream", body = StreamedEvent),
        (status = 400, description = "A bad contract, `Last-Event-ID` or query parameter (`bad_request`, `bad_query`)", body = ErrorBody),
        (status = 404, description = "The node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels (`not_initialised`)", body = ErrorBody),
    ))]
pub async fn stream_events(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    Query(q): Query<EventStreamQuery>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let c = chain(&node, q.channel.as_deref())?;
    let contract = address(&q.contract)?;
    // An empty id is no id (the SSE standard's reset): start as if none was sent.
    let resume = match headers.get("last-event-id").filter(|v| !v.is_empty()) {
        Some(v) => {
            let s = v.to_str().map_err(|_| bad(String::from("Last-Event-ID is not text")))?;
            Some(parse_event_id(s).ok_or_else(|| bad(format!("Last-Event-ID {s:?} is not `height:tx:event`")))?)
        }
        None => None,
    };
    // Subscribe before reading the head: a block committed in between is in the live feed
    // and, if also replayed, skipped there by position.
    let rx = c.subscribe();
    let head = c.head().height;
    let start = match (resume, q.from_height) {
        (Some(p), _) => Some(p),
        (None, Some(h)) => Some((h, 0, 0)),
        (None, None) => None,
    };
    let stop = node.guards.shutting_down().subscribe();
    let state = StreamState {
        c,
        contract,
        topic: q.topic,
        rx,
        stop,
        head,
        last: resume,
        replayed: start.is_some(),
        replay_from: start,
        queue: VecDeque::new(),
        ended: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        let ev = s.next().await?;
        Some((Ok(ev), s))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

struct StreamState {
    c: Arc<Chain>,
    contract: Hash32,
    topic: Option<String>,
    rx: tokio::sync::broadcast::Receiver<Arc<CommittedBlock>>,
    stop: tokio::sync::watch::Receiver<bool>,
    /// The head when the stream began: replay covers up to it, the live feed what follows.
    head: u64,
    /// The last position sent (or the client's `Last-Event-ID`): nothing at or before it
    /// is sent again.
    last: Option<Position>,
    /// Whether the stream replays up to `head` (so live blocks up to it are skipped).
    replayed: bool,
    /// Where replay continues, while replaying.
    replay_from: Option<Position>,
    queue: VecDeque<(Position, EventRecord)>,
    ended: bool,
}

impl StreamState {
    fn after_last(&self, p: Position) -> bool {
        self.last.is_none_or(|last| p > last)
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.ended {
                return None;
            }
            if let Some((p, record)) = self.queue.pop_front() {
                if !self.after_last(p) {
                    continue;
                }
                self.last = Some(p);
                let data = StreamedEvent { contract: self.contract, record };
                return Some(Event::default().event("contract-event").id(event_id(p)).data(serde_json::to_string(&data).unwrap_or_default()));
            }
            if let Some(from) = self.replay_from {
                if from.0 > self.head {
                    self.replay_from = None;
                    continue;
                }
                let (c, contract, topic, head) = (self.c.clone(), self.contract, self.topic.clone(), self.head);
                let page = tokio::task::spawn_blocking(move || c.events_in(&contract, topic.as_deref(), from.0, head, REPLAY_PAGE)).await;
                let records = match page {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => {
                        self.ended = true;
                        return Some(Event::default().event("error").data(serde_json::json!({ "error": e.to_string() }).to_string()));
                    }
                    Err(_) => return None,
                };
                // A page ends inside a block at worst: continue from that block, skipping
                // what was sent by position.
                self.replay_from = match records.last() {
                    Some(r) if records.len() == REPLAY_PAGE => Some((r.height, r.index, r.event_index)),
                    _ => None,
                };
                let full_page = self.replay_from.is_some();
                for r in records {
                    self.queue.push_back(((r.height, r.index, r.event_index), r));
                }
                if full_page && self.queue.iter().all(|(p, _)| !self.after_last(*p)) {
                    // A whole page of one position cannot happen (positions are unique);
                    // move on rather than loop.
                    self.replay_from = self.replay_from.map(|p| (p.0 + 1, 0, 0));
                }
                continue;
            }
            let received = tokio::select! {
                r = self.rx.recv() => r,
                _ = self.stop.wait_for(|stopping| *stopping) => return None,
            };
            match received {
                Ok(b) => {
                    let height = b.block.header.height;
                    if height <= self.head && self.replayed {
                        // Replayed already.
                        continue;
                    }
                    for (index, receipt) in b.receipts.iter().enumerate() {
                        for (n, e) in receipt.events.iter().enumerate() {
                            if e.contract != self.contract || self.topic.as_ref().is_some_and(|t| &e.topic != t) {
                                continue;
                            }
                            let record = EventRecord {
                                height,
                                index: index as u32,
                                event_index: n as u32,
                                tx_hash: receipt.tx_hash,
                                topic: e.topic.clone(),
                                indexed: e.indexed.clone(),
                                data: e.data.clone(),
                            };
                            self.queue.push_back(((height, index as u32, n as u32), record));
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow for the live feed: end here; the client's reconnect (with
                    // its last id) replays the rest from the store.
                    self.ended = true;
                    return Some(Event::default().retry(std::time::Duration::from_millis(500)).comment("lagged: reconnect with Last-Event-ID"));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_and_bad_ones_are_refused() {
        assert_eq!(parse_event_id(&event_id((12, 3, 4))), Some((12, 3, 4)));
        for bad in ["", "1:2", "1:2:3:4", "a:b:c", "-1:0:0", "+1:0:0", "1: 2:3"] {
            assert_eq!(parse_event_id(bad), None, "{bad}");
        }
    }
}
