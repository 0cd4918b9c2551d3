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

fn name_param() -> Value {
    json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}})
}

pub fn document() -> Value {
    let json_body = |schema: Value| json!({"required": true, "content": {"application/json": {"schema": schema}}});
    let plugin_ref = json!({"$ref": "#/components/schemas/Plugin"});
    let activation = json!({"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "string"}, "active": {"type": "boolean"}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Joule node API", "version": env!("CARGO_PKG_VERSION"), "description": "Health, plugin administration (hot swap), crypto services and metrics of a Joule node."},
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer", "description": "The node's admin token (DIR/admin.token or JOULE_ADMIN_TOKEN)."}},
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "code"], "properties": {"error": {"type": "string"}, "code": {"type": "string", "description": "bad_request, bad_manifest, untrusted_plugin, invalid_component, forbidden_import, wrong_world, self_test_failed, unsupported_kind, plugin_call_failed, not_found, conflict, unknown_algorithm, invalid_input, no_token, bad_token, denied, no_keystore, keystore, io, internal"}}},
                "Plugin": {"type": "object", "properties": {
                    "name": {"type": "string"}, "kind": {"type": "string", "enum": ["crypto", "consensus", "gateway", "logs"]},
                    "version": {"type": "string"}, "vendor": {"type": "string"}, "description": {"type": "string"},
                    "algorithms": {"type": "array", "items": {"type": "string"}, "description": "kind:id"},
                    "hash": {"type": "string", "description": "SHA-256 of the wasm, hex"}, "active": {"type": "boolean"},
                    "signed": {"type": "string"}, "installed_at": {"type": "integer", "description": "Unix ms"}}},
                "AuditEvent": {"type": "object", "properties": {"at": {"type": "integer"}, "action": {"type": "string", "enum": ["install", "activate", "deactivate", "rollback", "remove", "refuse"]}, "plugin": {"type": "string"}, "version": {"type": "string"}, "detail": {"type": "string"}}},
                "Algorithm": {"type": "object", "properties": {"algorithm": {"type": "object"}, "plugin": {"type": "string"}, "version": {"type": "string"}}}
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
                ("200", json!({"type": "object", "properties": {"valid": {"type": "boolean"}}})))}
        }
    })
}
