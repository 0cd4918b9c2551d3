"""Answers with data in them against the schemas of /v1/openapi.json (.ci/api-contract).

schemathesis meets a chain without transactions, so it never sees a committed transaction,
a receipt, a block with transactions or a state proof. This reads all of them after one data
record was committed, and validates each answer against its operation's schema.

Usage: python responses.py BASE_URL ADMIN_TOKEN TX_HASH (the committed data record)
"""

import json
import sys
import urllib.error
import urllib.request

import jsonschema_rs

base, token, tx_hash = sys.argv[1:4]


def call(method, path, body=None, auth=False):
    req = urllib.request.Request(base + path, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


_, doc = call("GET", "/v1/openapi.json")
failures = []


def check(template, path, method="get", body=None, auth=False, want=200):
    status, answer = call(method.upper(), path, body, auth)
    what = f"{method.upper()} {path}"
    if status != want:
        failures.append(f"{what}: status {status}, expected {want}: {answer}")
        return answer
    schema = doc["paths"][template][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    validator = jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})
    for error in validator.iter_errors(answer):
        failures.append(f"{what}: {error}")
    print(f"responses: {what} -> {status}, {'valid' if validator.is_valid(answer) else 'INVALID'}")
    return answer


tx = check("/v1/tx/{hash}", f"/v1/tx/{tx_hash}")
height, block_hash = tx["block_height"], tx["block_hash"]
sender = tx["transaction"]["sender"]
key = tx["transaction"]["payload"]["key"]
check("/v1/status", "/v1/status")
for path in [f"/v1/blocks/{height}", f"/v1/blocks/{height}?full=false", f"/v1/blocks/{block_hash}", "/v1/blocks/latest"]:
    check("/v1/blocks/{id}", path)
account = check("/v1/accounts/{id}", f"/v1/accounts/{sender}")
check("/v1/accounts/{id}", f"/v1/accounts/{account['id']}")
check("/v1/state/{contract}/{key}", f"/v1/state/{sender}/{key}?proof=true")
check("/v1/state/{contract}/{key}", f"/v1/state/{sender}/no/such/key?proof=true")
check("/v1/state/{contract}/{key}", f"/v1/state/{sender}/{key}")
check("/v1/events", f"/v1/events?contract={sender}")
# The same transaction again: refused alone (409) and in a batch (one answer per transaction).
check("/v1/tx", "/v1/tx", "post", json.dumps(tx["transaction"]).encode(), want=409)
check("/v1/txs", "/v1/txs", "post", json.dumps([tx["transaction"]]).encode())
check("/v1/health", "/v1/health")
for template in ["/v1/plugins", "/v1/plugins/audit", "/v1/keys", "/v1/crypto/algorithms"]:
    check(template, template, auth=True)

if failures:
    print("\n".join(["error: answers that do not fit their schema:"] + failures), file=sys.stderr)
    sys.exit(1)
