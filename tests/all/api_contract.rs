//! The HTTP API against its own OpenAPI document (`/v1/openapi.json`): the router serves
//! exactly the documented operations; every answer's status is one its operation lists;
//! every error answer, whoever produced it (handler, extractor, router), is the JSON error
//! body `{"error", "code"}`. `.ci/api-contract` adds schemathesis and promtool on top.

use crate::support::{NodeProcess, init_node, tempdir};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// A request: method, path with query, headers, body.
struct Req<'a> {
    method: &'a str,
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
    token: Option<&'a str>,
}

/// Status, `Allow` header, body (JSON when it parses, else a string).
fn send(node: &NodeProcess, r: &Req) -> (u16, Option<String>, Value) {
    let mut b = ureq::http::Request::builder().method(r.method.to_uppercase().as_str()).uri(format!("{}{}", node.base, r.path));
    if let Some(t) = r.token {
        b = b.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(ct) = &r.content_type {
        b = b.header("Content-Type", ct);
    }
    let req = b.body(r.body.clone()).expect("request");
    let mut resp = NodeProcess::agent().run(req).unwrap_or_else(|e| panic!("{} {}: {e}", r.method, r.path));
    let status = resp.status().as_u16();
    let allow = resp.headers().get("allow").and_then(|v| v.to_str().ok()).map(str::to_string);
    let is_stream = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"));
    // The block stream never ends: its headers are the answer.
    let text = if is_stream { String::new() } else { resp.body_mut().with_config().limit(64 << 20).read_to_string().unwrap_or_default() };
    (status, allow, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn is_error_body(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.len() == 2 && o.get("error").is_some_and(Value::is_string) && o.get("code").is_some_and(Value::is_string))
}

/// The documented operations: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = vec![];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

/// A value for each path parameter this API has; a new one must be added here.
fn path_value(name: &str) -> &'static str {
    match name {
        "name" => "no-such-plugin",
        "version" => "9.9.9",
        "hash" | "contract" | "address" | "account" => "00000000000000000000000000000000000000000000000000000000000000aa",
        "id" => "0",
        "key" => "meter/1",
        "module" => "nobody",
        "purpose" => "nothing",
        "organisation" => "no-such-org",
        other => panic!("path parameter {other:?} is new: give the contract test a value for it"),
    }
}

fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("closing brace") + open;
        out.push_str(&rest[..open]);
        out.push_str(path_value(&rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    out + rest
}

fn params(op: &Value, place: &str) -> Vec<Value> {
    op["parameters"].as_array().map(|ps| ps.iter().filter(|p| p["in"] == place).cloned().collect()).unwrap_or_default()
}

/// Required query parameters, with values.
fn required_query(op: &Value) -> String {
    let q: Vec<String> = params(op, "query")
        .iter()
        .filter(|p| p["required"] == true)
        .map(|p| {
            let name = p["name"].as_str().expect("name");
            format!("{name}={}", path_value(name))
        })
        .collect();
    if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) }
}

/// A body of each documented content type that is wrong for the operation (or none).
fn bodies(op: &Value) -> Vec<(Option<String>, Vec<u8>)> {
    let Some(content) = op["requestBody"]["content"].as_object() else { return vec![(None, vec![])] };
    let mut out: Vec<(Option<String>, Vec<u8>)> = content
        .keys()
        .map(|ct| {
            let body = match ct.as_str() {
                "application/json" => b"{\"unexpected\": true}".to_vec(),
                "application/toml" => b"not = [toml".to_vec(),
                "multipart/form-data" => {
                    return (
                        Some("multipart/form-data; boundary=x".into()),
                        b"--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--x--\r\n".to_vec(),
                    );
                }
                _ => b"\x00\x01 not what this takes".to_vec(),
            };
            (Some(ct.clone()), body)
        })
        .collect();
    if op["requestBody"]["required"] != true {
        out.push((None, vec![]));
    }
    out
}

fn documented_statuses(op: &Value) -> BTreeSet<u16> {
    op["responses"].as_object().expect("responses").keys().map(|s| s.parse().expect("numeric status")).collect()
}

fn started_node() -> (tempfile::TempDir, NodeProcess, Value) {
    let d = tempdir();
    init_node(d.path(), &["--block-interval-ms", "200"]);
    // The sweep sends wrong tokens on purpose, far more than one address may send a minute.
    let node = NodeProcess::start(d.path(), &["--admin-auth-max-failures", "1000000"]);
    let (s, doc) = node.get("/v1/openapi.json");
    assert_eq!(s, 200, "{doc}");
    (d, node, doc)
}

#[test]
fn the_document_describes_every_answer_of_every_route() {
    let (_d, node, doc) = started_node();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["adminToken"],
        json!({"type": "http", "scheme": "bearer", "description": "The node's admin token (DIR/admin.token or JOULE_ADMIN_TOKEN), or a user's session token (POST /v1/login)."})
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["userPassword"],
        json!({"type": "http", "scheme": "basic", "description": "A user's name and password (`[[user]]` of node.toml)."})
    );
    let error_schema = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error_schema["required"], json!(["error", "code"]), "{error_schema}");
    let ops = operations(&doc);
    assert!(ops.len() >= 29, "{} operations", ops.len());
    let mut secured = 0;
    for (m, p, op) in &ops {
        let statuses = documented_statuses(op);
        assert!(statuses.iter().any(|s| (200..300).contains(s)), "{m} {p}: no success answer");
        for (status, resp) in op["responses"].as_object().unwrap() {
            assert!(resp["description"].as_str().is_some_and(|d| !d.is_empty()), "{m} {p} {status}: no description");
            if !status.starts_with('2') {
                assert_eq!(resp["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody", "{m} {p} {status}: not the error body");
            }
        }
        let admin = op["security"] == json!([{"adminToken": []}, {"userPassword": []}]);
        secured += admin as usize;
        // Signing in answers 401 to a wrong password without being an admin operation.
        let signs_in = p == "/v1/login";
        assert_eq!(admin || signs_in, statuses.contains(&401), "{m} {p}: needs the token exactly when it documents 401");
        if !params(op, "query").is_empty() || !params(op, "path").is_empty() {
            assert!(statuses.contains(&400), "{m} {p}: query and path parameters can be refused (400)");
        }
    }
    assert!(secured >= 17, "{secured} admin operations");

    // Each documented path serves exactly its documented methods: the others answer 405
    // with `Allow` listing the documented ones.
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p, _)| p).collect();
    for p in paths {
        let documented: BTreeSet<&str> = ops.iter().filter(|(_, q, _)| q == p).map(|(m, _, _)| m.as_str()).collect();
        let url = concrete(p);
        for m in METHODS {
            if documented.contains(m) {
                continue;
            }
            let (s, allow, body) = send(&node, &Req { method: m, path: url.clone(), content_type: None, body: vec![], token: Some(&node.token) });
            assert_eq!((s, body["code"].as_str()), (405, Some("method_not_allowed")), "{m} {p}: {body}");
            assert!(is_error_body(&body), "{m} {p}: {body}");
            let mut allowed: BTreeSet<String> = allow.unwrap_or_default().split(',').map(|a| a.trim().to_lowercase()).filter(|a| !a.is_empty()).collect();
            allowed.remove("head");
            assert_eq!(allowed, documented.iter().map(|m| m.to_string()).collect(), "{m} {p}: Allow");
        }
    }
    // Around the documented paths, nothing else is served.
    for p in [
        "/",
        "/v1",
        "/v1/",
        "/v2/health",
        "/v1/plugin",
        "/v1/plugins/x/y/z",
        "/v1/keys/x",
        "/v1/keys/x/y",
        "/v1/crypto",
        "/v1/config",
        "/v1/state/aa",
        "/metrics/x",
    ] {
        for m in ["get", "post"] {
            let (s, _, body) = send(&node, &Req { method: m, path: p.into(), content_type: None, body: vec![], token: Some(&node.token) });
            assert_eq!((s, body["code"].as_str()), (404, Some("no_route")), "{m} {p}: {body}");
            assert!(is_error_body(&body), "{m} {p}: {body}");
        }
    }
}

#[test]
fn every_operation_answers_only_documented_statuses_with_and_without_the_token() {
    let (_d, node, doc) = started_node();
    let mut seen = BTreeSet::new();
    for (m, p, op) in operations(&doc) {
        let statuses = documented_statuses(&op);
        let admin = op["security"].is_array();
        let base = concrete(&p);
        let query = required_query(&op);
        let mut requests = vec![];
        for (content_type, body) in bodies(&op) {
            requests.push((format!("{base}{query}"), content_type.clone(), body.clone()));
        }
        // A query parameter the operation does not take.
        requests.push((format!("{base}{}unexpected=1", if query.is_empty() { "?" } else { "&" }), None, vec![]));
        // Path parameters that are not what they should be.
        if p.contains('{') {
            let bad: String = p.split('/').map(|seg| if seg.starts_with('{') { "%FF%FE" } else { seg }).collect::<Vec<_>>().join("/");
            requests.push((format!("{bad}{query}"), None, vec![]));
            let odd: String = p.split('/').map(|seg| if seg.starts_with('{') { "zz" } else { seg }).collect::<Vec<_>>().join("/");
            requests.push((format!("{odd}{query}"), None, vec![]));
        }
        for (path, content_type, body) in requests {
            for token in [None, Some("wrong-token-wrong-token"), Some(node.token.as_str())] {
                let r = Req { method: &m, path: path.clone(), content_type: content_type.clone(), body: body.clone(), token };
                let (s, _, answer) = send(&node, &r);
                let what = format!("{m} {path} ({content_type:?}, token {token:?}): {s} {answer}");
                assert!(statuses.contains(&s), "{what}: undocumented status (documented: {statuses:?})");
                if admin && token != Some(node.token.as_str()) {
                    let code = if token.is_none() { "no_token" } else { "bad_token" };
                    assert_eq!((s, answer["code"].as_str()), (401, Some(code)), "{what}");
                }
                if s >= 400 {
                    assert!(is_error_body(&answer), "{what}: not the error body");
                }
                seen.insert(s);
            }
        }
    }
    // The sweep reached handlers, not only the guards.
    for s in [200, 400, 401, 404] {
        assert!(seen.contains(&s), "no operation answered {s}: {seen:?}");
    }
}

#[test]
fn malformed_requests_get_the_json_error_body() {
    let (_d, node, _) = started_node();
    let token = node.token.clone();
    let req = |method: &'static str, path: &str, content_type: Option<&str>, body: &[u8]| {
        let r = Req { method, path: path.into(), content_type: content_type.map(str::to_string), body: body.to_vec(), token: Some(&token) };
        let (s, allow, v) = send(&node, &r);
        assert!(is_error_body(&v), "{method} {path}: {s} {v}");
        (s, allow, v["code"].as_str().unwrap_or_default().to_string(), v["error"].as_str().unwrap_or_default().to_string())
    };
    // Query parameters: unknown, malformed, missing.
    let (s, _, code, error) = req("get", "/v1/status?chanel=grid", None, b"");
    assert_eq!((s, code.as_str()), (400, "bad_query"), "{error}");
    assert!(error.contains("chanel"), "{error}");
    assert_eq!(req("get", "/v1/blocks/0?format=xml", None, b"").0, 400);
    assert_eq!(req("get", "/v1/blocks/0?full=maybe", None, b"").2, "bad_query");
    assert_eq!(req("get", "/v1/events", None, b"").2, "bad_query");
    assert_eq!(req("get", "/v1/events?contract=00&limit=-1", None, b"").2, "bad_query");
    assert_eq!(req("get", "/v1/blocks/stream?from=1", None, b"").2, "bad_query");
    assert_eq!(req("get", "/v1/state/00/k?proof=yes", None, b"").2, "bad_query");
    // Path parameters: not UTF-8, not a hash, no such resource, no such route.
    assert_eq!(req("get", "/v1/state/%FF/k", None, b"").2, "bad_path");
    assert_eq!(req("post", "/v1/plugins/%FF/deactivate", None, b"").2, "bad_path");
    assert_eq!(req("get", "/v1/tx/zz", None, b"").0, 400);
    assert_eq!(req("get", "/v1/blocks/999999", None, b"").2, "not_found");
    let (s, _, code, _) = req("get", "/v1/nope", None, b"");
    assert_eq!((s, code.as_str()), (404, "no_route"));
    // Methods: 405 with `Allow`, before the token is checked.
    let (s, allow, code, _) = req("delete", "/v1/health", None, b"");
    assert_eq!((s, code.as_str()), (405, "method_not_allowed"));
    assert_eq!(allow.as_deref(), Some("GET,HEAD"));
    let r = Req { method: "put", path: "/v1/plugins".into(), content_type: None, body: vec![], token: None };
    assert_eq!(send(&node, &r).0, 405);
    // JSON bodies: wrong content type, not JSON, wrong shape.
    let activate = "/v1/plugins/crypto-gm/activate";
    assert_eq!(req("post", activate, Some("text/plain"), b"{}").0, 415);
    assert_eq!(req("post", activate, Some("application/json"), b"{").2, "bad_json");
    assert_eq!(req("post", activate, Some("application/json"), br#"{"version": 1}"#).2, "invalid_body");
    let (s, _, code, _) = req("post", "/v1/crypto/hash", Some("application/json"), br#"{"alg": "sm3", "data": "a", "data_hex": "00"}"#);
    assert_eq!((s, code.as_str()), (400, "bad_request"), "both inputs");
    // Bodies over the limit.
    let (s, _, code, _) = req("post", "/v1/tx", Some("application/octet-stream"), &vec![0u8; 5 << 20]);
    assert_eq!((s, code.as_str()), (413, "too_large"));
    // Multipart: no boundary, a broken stream, a missing part.
    assert_eq!(req("post", "/v1/plugins", Some("multipart/form-data"), b"").2, "bad_multipart");
    assert_eq!(
        req("post", "/v1/plugins", Some("multipart/form-data; boundary=x"), b"--x\r\nContent-Disposition: form-data; name=\"wasm\"\r\n\r\nab").2,
        "bad_multipart"
    );
    let (s, _, _, error) =
        req("post", "/v1/plugins", Some("multipart/form-data; boundary=x"), b"--x\r\nContent-Disposition: form-data; name=\"wasm\"\r\n\r\nab\r\n--x--\r\n");
    assert_eq!(s, 400, "{error}");
    assert!(error.contains("manifest"), "{error}");
}
