//! Requests signed with a certified key (HTTP Message Signatures, RFC 9421, the profile in
//! `docs/formats.md`, "Signed requests"): a client whose certificate is on a channel with
//! certificates authenticates to the admin API without a password or token, with the roles
//! its certificate carries.
//!
//! The client sends `Signature-Input: joule=("@method" "@path" "@query"
//! "content-digest");created=<unix s>;keyid="<account>"` and `Signature: joule=:<base64
//! DER>:` — its signature, in the channel's suite, over the RFC 9421 signature base of
//! those components — and, with a body, `Content-Digest: sha-256=:<base64>:`. The node
//! checks: the components cover method, path, query and (with a body) the digest; the
//! digest matches the body; `created` is within [`MAX_SKEW`] of its clock; the signature was
//! not seen before (a replay); the account has a current certificate on a channel this node
//! serves; the signature verifies under the certificate's key.

use crate::Node;
use axum::http::HeaderMap;
use base64::Engine;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How far `created` may be from the node's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(300);
/// Signatures remembered against replays at most (each for twice [`MAX_SKEW`]).
const REMEMBERED: usize = 100_000;

/// Signatures seen lately (replays are refused).
#[derive(Default)]
pub struct Seen(Mutex<HashMap<Vec<u8>, Instant>>);

impl Seen {
    /// Whether `sig` is new (and remember it).
    fn first(&self, sig: &[u8]) -> bool {
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= REMEMBERED {
            map.retain(|_, t| now.duration_since(*t) < 2 * MAX_SKEW);
        }
        if map.len() >= REMEMBERED {
            return false;
        }
        map.insert(sig.to_vec(), now).is_none()
    }
}

/// Who a signed request comes from: the account and its certificate's roles.
pub struct Signer {
    pub account: String,
    pub roles: Vec<String>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `:base64:` → bytes.
fn byte_sequence(v: &str) -> Option<Vec<u8>> {
    let inner = v.trim().strip_prefix(':')?.strip_suffix(':')?;
    base64::engine::general_purpose::STANDARD.decode(inner).ok()
}

/// The parts of `joule=(…);created=…;keyid="…"`: the component names, the parameters'
/// text (as signed), created, keyid.
fn signature_input(v: &str) -> Option<(Vec<String>, String, u64, String)> {
    let rest = v.trim().strip_prefix("joule=")?;
    let close = rest.find(')')?;
    let list = rest.get(1..close)?;
    let components: Vec<String> = list.split_whitespace().map(|c| c.trim_matches('"').to_string()).collect();
    let mut created = None;
    let mut keyid = None;
    for param in rest.get(close + 1..)?.split(';').filter(|p| !p.is_empty()) {
        let (k, val) = param.split_once('=')?;
        match k {
            "created" => created = val.parse::<u64>().ok(),
            "keyid" => keyid = Some(val.trim_matches('"').to_string()),
            _ => {}
        }
    }
    Some((components, rest.to_string(), created?, keyid?))
}

/// The RFC 9421 signature base of `components` for this request.
pub fn signature_base(components: &[String], params: &str, method: &str, path: &str, query: &str, headers: &HeaderMap) -> Option<String> {
    let mut base = String::new();
    for c in components {
        let value = match c.as_str() {
            "@method" => method.to_string(),
            "@path" => path.to_string(),
            "@query" => format!("?{query}"),
            name if !name.starts_with('@') => header(headers, name)?.trim().to_string(),
            _ => return None,
        };
        base.push_str(&format!("\"{c}\": {value}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {params}"));
    Some(base)
}

/// Check a signed request (the body already read); `Err`: why it is refused.
pub fn verify(node: &Node, method: &str, path: &str, query: &str, headers: &HeaderMap, body: &[u8]) -> Result<Signer, String> {
    let input = header(headers, "signature-input").ok_or("no Signature-Input")?;
    let (components, params, created, keyid) = signature_input(input).ok_or("Signature-Input is not `joule=(…);created=…;keyid=\"<account>\"`")?;
    for needed in ["@method", "@path", "@query"] {
        if !components.iter().any(|c| c == needed) {
            return Err(format!("the signature must cover {needed}"));
        }
    }
    if !body.is_empty() {
        if !components.iter().any(|c| c == "content-digest") {
            return Err("a request with a body must sign content-digest".into());
        }
        let digest = header(headers, "content-digest")
            .and_then(|d| d.trim().strip_prefix("sha-256="))
            .and_then(byte_sequence)
            .ok_or("no Content-Digest: sha-256=:…:")?;
        let actual = node.crypto.digest("sha256", body).map_err(|e| format!("hash the body: {e}"))?;
        if digest != actual {
            return Err("Content-Digest does not match the body".into());
        }
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if created.abs_diff(now) > MAX_SKEW.as_secs() {
        return Err(format!("created {created} is more than {} s from the node's clock ({now})", MAX_SKEW.as_secs()));
    }
    let signature = header(headers, "signature").and_then(|s| s.trim().strip_prefix("joule=")).and_then(byte_sequence).ok_or("no Signature: joule=:…:")?;
    let account = joule_primitives::Hash32::from_hex(&keyid).ok_or("keyid is not an account id (64 hex digits)")?;
    let base = signature_base(&components, &params, method, path, query, headers).ok_or("a signed component is missing or unknown")?;
    for chain in node.chains.iter().filter(|c| c.identity().is_some()) {
        let Some(rec) = chain.certificate_of(&account).map_err(|e| e.to_string())? else { continue };
        if let Some(h) = rec.revoked_at {
            return Err(format!("the certificate of {keyid} was revoked in block {h}"));
        }
        joule_ledger::identity::within(&rec, now.saturating_mul(1000))?;
        let cert = joule_pki::certificate(&rec.certificate).map_err(|e| e.to_string())?;
        let key = joule_pki::facts(&cert).map_err(|e| e.to_string())?.public_key;
        let ok = joule_primitives::ChainCrypto::verify(chain.suite().as_ref(), &key, base.as_bytes(), &signature).map_err(|e| e.to_string())?;
        if !ok {
            return Err("the signature does not verify under the certificate's key".into());
        }
        if !node.signatures_seen.first(&signature) {
            return Err("this signature was used before (a replay)".into());
        }
        return Ok(Signer { account: keyid, roles: rec.roles });
    }
    Err(format!("no channel of this node has a certificate for {keyid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_base_lists_the_components_then_the_parameters_as_rfc_9421_writes_them() {
        let input = r#"joule=("@method" "@path" "@query" "content-digest");created=1700000000;keyid="ab""#;
        let (components, params, created, keyid) = signature_input(input).expect("parses");
        assert_eq!((created, keyid.as_str()), (1_700_000_000, "ab"));
        let mut headers = HeaderMap::new();
        headers.insert("content-digest", "sha-256=:AAAA:".parse().expect("header"));
        let base = signature_base(&components, &params, "POST", "/v1/pki/revocations", "channel=grid", &headers).expect("base");
        assert_eq!(
            base,
            "\"@method\": POST\n\"@path\": /v1/pki/revocations\n\"@query\": ?channel=grid\n\"content-digest\": sha-256=:AAAA:\n\
             \"@signature-params\": (\"@method\" \"@path\" \"@query\" \"content-digest\");created=1700000000;keyid=\"ab\""
        );
        assert!(signature_input("sig=(\"@method\");created=1;keyid=\"a\"").is_none(), "another label");
        assert!(signature_input("joule=(\"@method\");keyid=\"a\"").is_none(), "no created");
        let seen = Seen::default();
        assert!(seen.first(b"sig") && !seen.first(b"sig"));
    }
}
