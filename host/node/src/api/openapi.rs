//! The OpenAPI 3.1 document served at `/v1/openapi.json`. Every route of [`super::router`]
//! is listed in [`ROUTES`]; a test checks the two agree with this document.

use serde_json::{Value, json};

/// `(method, path)` of every route the router serves.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/health"),
    ("get", "/v1/openapi.json"),
    ("get", "/metrics"),
    ("get", "/v1/plugins"),
    ("post", "/v1/plugins"),
    ("get", "/v1/plugins/audit"),
    ("post", "/v1/plugins/{name}/activate"),
    ("post", "/v1/plugins/{name}/deactivate"),
    ("post", "/v1/plugins/{name}/rollback"),
    ("delete", "/v1/plugins/{name}/{version}"),
    ("get", "/v1/keys"),
    ("post", "/v1/keys/{module}/{purpose}/rotate"),
    ("get", "/v1/crypto/algorithms"),
    ("post", "/v1/crypto/hash"),
    ("post", "/v1/crypto/verify"),
    ("get", "/v1/status"),
    ("post", "/v1/tx"),
    ("post", "/v1/txs"),
    ("get", "/v1/tx/{hash}"),
    ("get", "/v1/blocks/stream"),
    ("get", "/v1/blocks/{id}"),
    ("post", "/v1/blocks"),
    ("get", "/v1/accounts/{id}"),
    ("get", "/v1/events"),
    ("get", "/v1/state/{contract}/{key}"),
    ("get", "/v1/config/network"),
    ("put", "/v1/config/network"),
    ("get", "/v1/config/node"),
    ("put", "/v1/config/node"),
];

fn op(summary: &str, admin: bool, request: Option<Value>, ok: (&str, Value)) -> Value {
    let mut o = json!({
        "summary": summary,
        "responses": {
            ok.0: {"description": "Success", "content": {"application/json": {"schema": ok.1}}},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
        }
    });
    if admin {
        o["security"] = json!([{"adminToken": []}]);
    } else {
        o["security"] = json!([]);
    }
    if let Some(r) = request {
        o["requestBody"] = r;
    }
    o
}

fn with_name(mut op: Value) -> Value {
    op["parameters"] = json!([name_param()]);
    op
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}, "description": description})
}

fn channel_param() -> Value {
    json!({"name": "channel", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Channel id (default: the node's first channel)"})
}

/// A public chain endpoint with parameters; chain errors add 404 and 409 (not initialised).
fn chain_op(summary: &str, params: Vec<Value>, ok: Value) -> Value {
    let mut o = op(summary, false, None, ("200", ok));
    o["parameters"] = json!(params);
    o["responses"]["404"] = json!({"$ref": "#/components/responses/Error"});
    o["responses"]["409"] = json!({"$ref": "#/components/responses/Error"});
    o
}

fn toml_config(summary: &str, put: bool) -> Value {
    if put {
        json!({
            "summary": summary, "security": [{"adminToken": []}],
            "requestBody": {"required": true, "content": {"application/toml": {"schema": {"type": "string"}}}},
            "responses": {
                "200": {"description": "Saved", "content": {"application/json": {"schema": {"type": "object", "properties": {"saved": {"type": "boolean"}, "applied": {"type": "array", "items": {"type": "string"}}, "restart_required": {"type": "boolean"}}}}}},
                "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}
            }
        })
    } else {
        json!({
            "summary": summary, "security": [{"adminToken": []}],
            "responses": {"200": {"description": "The file", "content": {"application/toml": {"schema": {"type": "string"}}}}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}
        })
    }
}

fn name_param() -> Value {
    json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}})
}

pub fn document() -> Value {
    let json_body = |schema: Value| json!({"required": true, "content": {"application/json": {"schema": schema}}});
    let plugin_ref = json!({"$ref": "#/components/schemas/Plugin"});
    let activation = json!({"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "string"}, "active": {"type": "boolean"}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Joule node API", "version": env!("CARGO_PKG_VERSION"), "description": "Chain (status, transactions, blocks, accounts, state proofs, block stream), configuration, plugin administration (hot swap), crypto services and metrics of a Joule node."},
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer", "description": "The node's admin token (DIR/admin.token or JOULE_ADMIN_TOKEN)."}},
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "code"], "properties": {"error": {"type": "string"}, "code": {"type": "string", "description": "bad_request, bad_manifest, untrusted_plugin, invalid_component, forbidden_import, wrong_world, self_test_failed, unsupported_kind, plugin_call_failed, not_found, conflict, unknown_algorithm, invalid_input, no_token, bad_token, denied, no_keystore, keystore, io, internal, not_initialised, no_such_channel, invalid_block, chain, bad_config, genesis_change, and the transaction rejection codes"}}},
                "Plugin": {"type": "object", "properties": {
                    "name": {"type": "string"}, "kind": {"type": "string", "enum": ["crypto", "consensus", "gateway", "logs"]},
                    "version": {"type": "string"}, "vendor": {"type": "string"}, "description": {"type": "string"},
                    "algorithms": {"type": "array", "items": {"type": "string"}, "description": "kind:id"},
                    "hash": {"type": "string", "description": "SHA-256 of the wasm, hex"}, "active": {"type": "boolean"},
                    "signed": {"type": "string"}, "installed_at": {"type": "integer", "description": "Unix ms"}}},
                "AuditEvent": {"type": "object", "properties": {"at": {"type": "integer"}, "action": {"type": "string", "enum": ["install", "activate", "deactivate", "rollback", "remove", "refuse"]}, "plugin": {"type": "string"}, "version": {"type": "string"}, "detail": {"type": "string"}}},
                "Algorithm": {"type": "object", "properties": {"algorithm": {"type": "object"}, "plugin": {"type": "string"}, "version": {"type": "string"}}},
                "Hash": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "32-byte digest of the channel suite's hash, hex"},
                "Status": {"type": "object", "required": ["channel", "height", "head_hash", "consensus", "crypto_suite", "peers"], "properties": {
                    "channel": {"type": "string"}, "height": {"type": "integer"}, "head_hash": {"$ref": "#/components/schemas/Hash"},
                    "head_timestamp_ms": {"type": "integer"}, "consensus": {"type": "string"}, "crypto_suite": {"type": "string", "description": "gm (SM3 + SM2) or intl (SHA-256 + ECDSA P-256)"},
                    "peers": {"type": "array", "items": {"type": "string"}}, "pending_transactions": {"type": "integer"}, "validator": {"type": "boolean"},
                    "network_id": {"type": ["string", "null"]}, "channels": {"type": "array", "items": {"type": "string"}}}},
                "Payload": {"type": "object", "required": ["kind"], "description": "kind = data {key, value (hex)}, deploy {code, init_args}, call {contract, method, args}, governance {action, ...}; this release executes data", "properties": {"kind": {"type": "string", "enum": ["data", "deploy", "call", "governance"]}}},
                "Transaction": {"type": "object", "required": ["channel", "sender", "nonce", "gas_limit", "sig_alg", "payload", "signature"], "properties": {
                    "channel": {"type": "string"}, "sender": {"type": "string", "description": "SPKI DER, hex"}, "nonce": {"type": "integer"}, "gas_limit": {"type": "integer"},
                    "sig_alg": {"type": "string"}, "payload": {"$ref": "#/components/schemas/Payload"}, "signature": {"type": "string", "description": "hex, over the signing bytes (docs/formats.md)"}}},
                "Receipt": {"type": "object", "properties": {"tx_hash": {"$ref": "#/components/schemas/Hash"}, "status": {"type": "string", "enum": ["success", "reverted", "out_of_gas"]}, "reason": {"type": "string"}, "gas_used": {"type": "integer"}, "events": {"type": "array", "items": {"type": "object", "properties": {"contract": {"type": "string"}, "topic": {"type": "string"}, "data": {"type": "string"}}}}}},
                "Header": {"type": "object", "properties": {"channel": {"type": "string"}, "height": {"type": "integer"}, "parent_hash": {"type": "string"}, "timestamp_ms": {"type": "integer"}, "tx_root": {"type": "string"}, "state_root": {"type": "string"}, "receipts_root": {"type": "string"}, "proposer": {"type": "string"}, "crypto_suite": {"type": "string"}, "seal": {"type": "string"}}},
                "Block": {"type": "object", "properties": {"hash": {"$ref": "#/components/schemas/Hash"}, "header": {"$ref": "#/components/schemas/Header"}, "transactions": {"type": "array", "items": {"$ref": "#/components/schemas/Transaction"}}, "tx_hashes": {"type": "array", "items": {"$ref": "#/components/schemas/Hash"}}, "receipts": {"type": "array", "items": {"$ref": "#/components/schemas/Receipt"}}}},
                "TxRecord": {"type": "object", "properties": {"status": {"type": "string", "enum": ["pending", "committed"]}, "hash": {"type": "string"}, "channel": {"type": "string"}, "transaction": {"$ref": "#/components/schemas/Transaction"}, "receipt": {"$ref": "#/components/schemas/Receipt"}, "block_height": {"type": "integer"}, "block_hash": {"type": "string"}, "index": {"type": "integer"}}},
                "StateProof": {"type": "object", "description": "Sparse Merkle proof (docs/formats.md): siblings from the root down and the terminal met", "properties": {"siblings": {"type": "array", "items": {"type": "string"}}, "terminal": {"type": "object"}}},
                "Account": {"type": "object", "properties": {"id": {"type": "string"}, "height": {"type": "integer"}, "block_hash": {"type": "string"}, "state_root": {"type": "string"}, "account": {"type": ["object", "null"], "properties": {"nonce": {"type": "integer"}, "code_hash": {"type": ["string", "null"]}, "storage_root": {"type": "string"}}}, "account_encoding": {"type": "string"}, "next_nonce": {"type": "integer"}, "proof": {"$ref": "#/components/schemas/StateProof"}}},
                "State": {"type": "object", "properties": {"contract": {"type": "string"}, "key": {"type": "string"}, "key_hash": {"type": "string"}, "value": {"type": "string", "description": "hex; absent when the key has no value"}, "height": {"type": "integer"}, "block_hash": {"type": "string"}, "state_root": {"type": "string"},
                    "proof": {"type": "object", "properties": {"account_encoding": {"type": "string"}, "account": {"$ref": "#/components/schemas/StateProof"}, "storage_root": {"type": "string"}, "storage": {"$ref": "#/components/schemas/StateProof"}}}}}
            }
        },
        "paths": {
            "/v1/health": {"get": op("Liveness and plugin counts", false, None, ("200", json!({"type": "object"})))},
            "/v1/openapi.json": {"get": op("This document", false, None, ("200", json!({"type": "object"})))},
            "/metrics": {"get": {"summary": "Prometheus metrics (text exposition format)", "security": [], "responses": {"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/v1/plugins": {
                "get": op("Installed plugins, every version", true, None, ("200", json!({"type": "array", "items": plugin_ref}))),
                "post": op("Upload and install a plugin (verified, compiled, self-tested; not yet active)", true,
                    Some(json!({"required": true, "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["manifest", "wasm"], "properties": {"manifest": {"type": "string", "description": "The plugin's TOML manifest"}, "wasm": {"type": "string", "format": "binary"}}}}}})),
                    ("201", plugin_ref.clone()))
            },
            "/v1/plugins/audit": {"get": op("Recent plugin changes and refusals", true, None, ("200", json!({"type": "array", "items": {"$ref": "#/components/schemas/AuditEvent"}})))},
            "/v1/plugins/{name}/activate": {"post": with_name(op("Atomically make a version (default: highest) the active one", true, Some(json!({"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {"version": {"type": "string"}}}}}})), ("200", activation.clone())))},
            "/v1/plugins/{name}/deactivate": {"post": with_name(op("Stop routing calls to the plugin (calls in flight finish)", true, None, ("200", activation.clone())))},
            "/v1/plugins/{name}/rollback": {"post": with_name(op("Re-activate the previously active version", true, None, ("200", activation)))},
            "/v1/plugins/{name}/{version}": {"delete": {
                "parameters": [name_param(), {"name": "version", "in": "path", "required": true, "schema": {"type": "string"}}],
                "summary": "Uninstall an inactive version", "security": [{"adminToken": []}],
                "responses": {"204": {"description": "Removed"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}
            }},
            "/v1/keys": {"get": op("Keystore slots and key metadata (public keys, periods; never secrets)", true, None, ("200", json!({"type": "object", "properties": {"slots": {"type": "array"}, "keys": {"type": "array"}}})))},
            "/v1/keys/{module}/{purpose}/rotate": {"post": {
                "parameters": [{"name": "module", "in": "path", "required": true, "schema": {"type": "string"}}, {"name": "purpose", "in": "path", "required": true, "schema": {"type": "string"}}],
                "summary": "Rotate a key slot now: a new period becomes current, old periods stay for verification and decryption",
                "security": [{"adminToken": []}],
                "responses": {"200": {"description": "The new key", "content": {"application/json": {"schema": {"type": "object", "properties": {"module": {"type": "string"}, "purpose": {"type": "string"}, "period": {"type": "integer"}}}}}}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}
            }},
            "/v1/crypto/algorithms": {"get": op("Active algorithms and the plugin serving each", true, None, ("200", json!({"type": "array", "items": {"$ref": "#/components/schemas/Algorithm"}})))},
            "/v1/crypto/hash": {"post": op("Digest through the active plugin for `alg`", true,
                Some(json_body(json!({"type": "object", "required": ["alg"], "properties": {"alg": {"type": "string"}, "data_hex": {"type": "string"}, "data": {"type": "string", "description": "UTF-8 text instead of data_hex"}}}))),
                ("200", json!({"type": "object", "properties": {"alg": {"type": "string"}, "digest_hex": {"type": "string"}}})))},
            "/v1/crypto/verify": {"post": op("Verify a signature through the active plugin for `alg`", true,
                Some(json_body(json!({"type": "object", "required": ["alg", "public_key", "message_hex", "signature_hex"], "properties": {"alg": {"type": "string"}, "public_key": {"type": "string", "description": "SPKI PEM or DER hex"}, "message_hex": {"type": "string"}, "signature_hex": {"type": "string"}, "user_id": {"type": "string"}}}))),
                ("200", json!({"type": "object", "properties": {"valid": {"type": "boolean"}}})))},
            "/v1/status": {"get": chain_op("Chain status of a channel", vec![channel_param()], json!({"$ref": "#/components/schemas/Status"}))},
            "/v1/tx": {"post": {
                "summary": "Submit a signed transaction: canonical bytes (application/octet-stream) or its JSON view (application/json). Routed to the channel it names.",
                "security": [],
                "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}, "application/json": {"schema": {"$ref": "#/components/schemas/Transaction"}}}},
                "responses": {
                    "202": {"description": "Admitted to the pool", "content": {"application/json": {"schema": {"type": "object", "properties": {"hash": {"type": "string"}, "status": {"type": "string", "enum": ["pending"]}}}}}},
                    "400": {"description": "Rejected; code: malformed, wrong_channel, wrong_algorithm, unsupported_payload, gas_over_limit, gas_below_intrinsic, nonce_too_far_ahead, bad_signature", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                    "409": {"description": "Rejected; code: nonce_used, duplicate", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                    "413": {"description": "Rejected; code: too_large", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                    "503": {"description": "Rejected; code: pool_full", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                }
            }},
            "/v1/txs": {"post": {
                "summary": "Submit up to 10 000 transactions in one request: frames of u32 LE length + canonical bytes (application/octet-stream), or a JSON array of transactions. Each gets its own answer, in order.",
                "security": [],
                "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}, "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Transaction"}}}}},
                "responses": {
                    "200": {"description": "Per-transaction answers", "content": {"application/json": {"schema": {"type": "object", "properties": {"accepted": {"type": "integer"}, "rejected": {"type": "integer"}, "results": {"type": "array", "items": {"type": "object", "properties": {"hash": {"type": "string"}, "code": {"type": "string"}, "error": {"type": "string"}}}}}}}}},
                    "400": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}
                }
            }},
            "/v1/tx/{hash}": {"get": chain_op("A transaction: pending, or committed with its receipt and block", vec![path_param("hash", "Transaction hash, hex"), channel_param()], json!({"$ref": "#/components/schemas/TxRecord"}))},
            "/v1/blocks/stream": {"get": {
                "summary": "Server-sent events: a `block` event (JSON: channel, height, hash, parent_hash, timestamp_ms, transactions, state_root) per committed block; `lagged` if the reader fell behind",
                "security": [], "parameters": [channel_param()],
                "responses": {"200": {"description": "Event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}
            }},
            "/v1/blocks/{id}": {"get": {
                "summary": "A block by height, hash or `latest`, with transaction hashes and receipts; `format=bytes` gives the canonical encoding",
                "security": [],
                "parameters": [path_param("id", "Height, block hash (hex) or `latest`"), channel_param(), {"name": "format", "in": "query", "required": false, "schema": {"type": "string", "enum": ["json", "bytes"]}}, {"name": "full", "in": "query", "required": false, "schema": {"type": "boolean"}, "description": "false: header and transaction hashes only"}],
                "responses": {"200": {"description": "The block", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Block"}}, "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}, "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}}
            }},
            "/v1/blocks": {"post": {
                "summary": "Import a sealed block (canonical bytes): validated like a peer's (consensus engine, signatures, re-execution, roots) and committed",
                "security": [{"adminToken": []}], "parameters": [channel_param()],
                "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {"200": {"description": "Committed", "content": {"application/json": {"schema": {"type": "object", "properties": {"height": {"type": "integer"}, "hash": {"type": "string"}}}}}}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}}
            }},
            "/v1/accounts/{id}": {"get": chain_op("An account at the head with its state proof", vec![path_param("id", "Account id (hex hash of the public key) or the public key (SPKI DER hex)"), channel_param()], json!({"$ref": "#/components/schemas/Account"}))},
            "/v1/events": {"get": chain_op("Events of a contract (or data-record sender), optionally of one topic, oldest first, from the events index",
                vec![json!({"name": "contract", "in": "query", "required": true, "schema": {"type": "string"}, "description": "Account id or public key, hex"}),
                     json!({"name": "topic", "in": "query", "required": false, "schema": {"type": "string"}}),
                     json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}}), channel_param()],
                json!({"type": "array", "items": {"type": "object", "properties": {"height": {"type": "integer"}, "index": {"type": "integer"}, "tx_hash": {"type": "string"}, "topic": {"type": "string"}, "data": {"type": "string", "description": "hex"}}}}))},
            "/v1/state/{contract}/{key}": {"get": chain_op("A storage key of an account (contract) at the head; with proof=true, the proofs from the header's state root down to the value",
                vec![path_param("contract", "Account id or public key, hex"), path_param("key", "The storage key; may contain `/`"), channel_param(), json!({"name": "proof", "in": "query", "required": false, "schema": {"type": "boolean"}})],
                json!({"$ref": "#/components/schemas/State"}))},
            "/v1/config/network": {"get": toml_config("network.toml: network id, region, node count, channels (genesis fields and block policy)", false),
                "put": toml_config("Replace network.toml; genesis fields of running channels cannot change (409); a block policy change applies at once", true)},
            "/v1/config/node": {"get": toml_config("node.toml: name, API IP and port, keys (public; private keys stay in their files)", false),
                "put": toml_config("Replace node.toml; applies at the next start", true)}
        }
    })
}
