//! A Joule node's HTTP API from the client side.
//!
//! [`ApiClient`] is a small blocking client (ureq) that turns the API's JSON error bodies
//! (`{"error": "...", "code": "..."}`) into [`ClientError::Api`]. The `wire` constants are
//! the facts of the protocol both sides must agree on; the node's API uses the same ones.

use serde_json::Value;
use std::time::{Duration, Instant};

/// Protocol facts shared by the node and its clients.
pub mod wire {
    /// The file in a node directory where a running node writes its API address.
    pub const API_ADDR_FILE: &str = "api.addr";
    /// The file in a node directory that holds its generated admin token.
    pub const ADMIN_TOKEN_FILE: &str = "admin.token";
    /// Most transactions in one `POST /v1/txs` batch.
    pub const MAX_BATCH: usize = 10_000;

    /// Frame canonical transactions for `POST /v1/txs` as `application/octet-stream`:
    /// each one as `u32 LE length ‖ bytes`.
    pub fn frame_batch<'a>(txs: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
        let mut body = vec![];
        for tx in txs {
            // A transaction is at most 1 MiB, far below u32::MAX.
            body.extend((tx.len() as u32).to_le_bytes());
            body.extend_from_slice(tx);
        }
        body
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached or the connection broke.
    #[error("{what} ({base}): {reason}")]
    Transport { what: String, base: String, reason: String },
    /// The node answered with an error.
    #[error("{status} {code}: {message}")]
    Api { status: u16, code: String, message: String },
    /// The answer could not be read.
    #[error("{what}: {reason}")]
    Body { what: String, reason: String },
    #[error("transaction {hash} not committed after {after:?}")]
    Timeout { hash: String, after: Duration },
    /// The pool accepted the transaction, then dropped it: it will not be committed unless
    /// sent again.
    #[error("transaction {hash} was evicted from the pool: {reason}")]
    Evicted { hash: String, reason: String },
}

impl ClientError {
    /// The API's error code, when the node answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A node's HTTP API.
pub struct ApiClient {
    pub base: String,
    pub token: Option<String>,
    agent: ureq::Agent,
}

impl ApiClient {
    pub fn new(base: &str, token: Option<String>) -> ApiClient {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(60))).build().into();
        ApiClient { base: base.trim_end_matches('/').to_string(), token, agent }
    }

    fn transport(&self, what: &str, e: ureq::Error) -> ClientError {
        ClientError::Transport { what: what.into(), base: self.base.clone(), reason: e.to_string() }
    }

    fn finish(&self, what: &str, resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, ClientError> {
        let mut resp = resp.map_err(|e| self.transport(what, e))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().map_err(|e| ClientError::Body { what: what.into(), reason: e.to_string() })?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !(200..300).contains(&status) {
            let code = v["code"].as_str().unwrap_or("http").to_string();
            let message = v["error"].as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            return Err(ClientError::Api { status, code, message });
        }
        Ok(v)
    }

    fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        self.finish(&format!("GET {path}"), req.call())
    }

    /// A binary answer (`?format=bytes`), at most 256 MiB.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let what = format!("GET {path}");
        let mut resp = self.agent.get(format!("{}{path}", self.base)).call().map_err(|e| self.transport(&what, e))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            return Err(self.finish(&what, Ok(resp)).err().unwrap_or(ClientError::Api { status, code: "http".into(), message: String::new() }));
        }
        resp.body_mut().with_config().limit(256 << 20).read_to_vec().map_err(|e| ClientError::Body { what, reason: e.to_string() })
    }

    pub fn post_bytes(&self, path: &str, body: &[u8]) -> Result<Value, ClientError> {
        let mut req = self.agent.post(format!("{}{path}", self.base)).header("Content-Type", "application/octet-stream");
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        self.finish(&format!("POST {path}"), req.send(body))
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let mut req = self.agent.post(format!("{}{path}", self.base));
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        self.finish(&format!("POST {path}"), req.send_json(body))
    }

    /// PUT a TOML document (`/v1/config/…`).
    pub fn put_toml(&self, path: &str, text: &str) -> Result<Value, ClientError> {
        let mut req = self.agent.put(format!("{}{path}", self.base)).header("Content-Type", "application/toml");
        if let Some(a) = self.auth() {
            req = req.header("Authorization", &a);
        }
        self.finish(&format!("PUT {path}"), req.send(text))
    }

    /// Poll until a transaction is committed; its record. An eviction ends the wait.
    pub fn wait_for_tx(&self, hash: &str, timeout: Duration) -> Result<Value, ClientError> {
        let start = Instant::now();
        loop {
            let v = self.get(&format!("/v1/tx/{hash}"))?;
            if v["status"] == "committed" {
                return Ok(v);
            }
            if v["status"] == "evicted" {
                return Err(ClientError::Evicted { hash: hash.into(), reason: v["reason"].as_str().unwrap_or_default().into() });
            }
            if start.elapsed() > timeout {
                return Err(ClientError::Timeout { hash: hash.into(), after: timeout });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wire::frame_batch;

    #[test]
    fn batch_frames_are_length_prefixed_little_endian() {
        let body = frame_batch([&b"ab"[..], &b""[..], &b"xyz"[..]]);
        assert_eq!(body, [2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0, 3, 0, 0, 0, b'x', b'y', b'z']);
    }
}
