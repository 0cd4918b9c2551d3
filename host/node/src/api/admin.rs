//! Admin endpoints of plugins (upload, activate, swap, roll back, remove, audit), keys
//! and crypto services. The router guards them with the admin token, and the document
//! adds the token and its 401 to each of them (`openapi::require_admin_token`).

use super::extract::{Body, Json, Multipart, Path};
use super::guard::Permit;
use super::{ApiError, ErrorBody, bad, blocking};
use crate::Node;
use crate::keystore::{KeyRef, Slot};
use axum::extract::State;
use axum::http::StatusCode;
use joule_crypto::{AlgorithmInfo, AlgorithmKind, pem};
use joule_kernel::{AuditEvent, PluginPackage, PluginSummary};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};

/// Installed plugins, every version.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", responses((status = 200, description = "The installed plugins", body = Vec<PluginSummary>)))]
pub async fn list_plugins(State(node): State<Arc<Node>>) -> Json<Vec<PluginSummary>> {
    Json(node.registry().list())
}

/// Recent plugin changes and refusals, oldest first.
#[utoipa::path(get, path = "/v1/plugins/audit", tag = "plugins", responses((status = 200, description = "The audit trail", body = Vec<AuditEvent>)))]
pub async fn audit(State(node): State<Arc<Node>>) -> Json<Vec<AuditEvent>> {
    Json(node.registry().audit())
}

/// The most a manifest may take: names, algorithms, a short description and known-answer
/// vectors fit in far less.
pub const MAX_MANIFEST_BYTES: usize = 64 << 10;

/// Upload and install a plugin.
///
/// Verified, compiled and self-tested; not yet active.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins",
    request_body(content = inline(super::openapi::PluginUpload), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Already installed with the same content: nothing changed", body = PluginSummary),
        (status = 201, description = "Installed (inactive)", body = PluginSummary),
        (status = 400, description = "Not a form with exactly the parts `manifest` and `wasm` (`bad_multipart`, `bad_request`), or a bad manifest (`bad_manifest`)", body = ErrorBody),
        (status = 403, description = "Refused by the node's trust policy (`untrusted_plugin`)", body = ErrorBody),
        (status = 409, description = "This name and version is installed with other content (`conflict`)", body = ErrorBody),
        (status = 413, description = "Over the upload limit (`too_large`)", body = ErrorBody),
        (status = 422, description = "Not a valid component of its kind: `invalid_component`, `forbidden_import`, `wrong_world`, `self_test_failed`, `unsupported_kind`", body = ErrorBody),
        (status = 500, description = "Storing the plugin failed (`io`); it is not installed", body = ErrorBody),
        (status = 507, description = "The disk is full (`storage_full`); the plugin is not installed", body = ErrorBody),
    ))]
pub async fn upload_plugin(
    State(node): State<Arc<Node>>,
    permit: Permit,
    Multipart(mut form): Multipart,
) -> Result<(StatusCode, Json<PluginSummary>), ApiError> {
    let (mut manifest, mut wasm) = (None, None);
    while let Some(field) = form.next_field().await? {
        match field.name() {
            Some("manifest") => {
                let bytes = field.bytes().await?;
                if bytes.len() > MAX_MANIFEST_BYTES {
                    return Err(ApiError(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        format!("the manifest is {} bytes, over the limit of {MAX_MANIFEST_BYTES}", bytes.len()),
                    ));
                }
                manifest = Some(String::from_utf8(bytes.to_vec()).map_err(|_| bad("manifest is not UTF-8"))?)
            }
            Some("wasm") => wasm = Some(field.bytes().await?.to_vec()),
            other => return Err(bad(format!("unexpected form field {other:?} (expected `manifest` and `wasm`)"))),
        }
    }
    let (Some(manifest), Some(wasm)) = (manifest, wasm) else {
        return Err(bad("the form needs both a `manifest` and a `wasm` part"));
    };
    let reg = node.registry().clone();
    // Hashing, compiling and self-testing, off the async workers.
    let (name, version, fresh) = permit
        .blocking(move || {
            let pkg = PluginPackage::from_parts(&manifest, wasm)?;
            let (name, version) = (pkg.manifest.name.clone(), pkg.manifest.version.clone());
            let (_, fresh) = reg.install_once(pkg)?;
            Ok((name, version, fresh))
        })
        .await?;
    let summary = node
        .registry()
        .list()
        .into_iter()
        .find(|p| p.name == name && p.version == version)
        .ok_or_else(|| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("plugin {name} {version} was installed but is not listed")))?;
    Ok((if fresh { StatusCode::CREATED } else { StatusCode::OK }, Json(summary)))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct ActivateBody {
    /// The version to activate; default: the highest installed.
    version: Option<String>,
}

/// A plugin's state after a change.
#[derive(Serialize, ToSchema)]
pub struct Activation {
    name: String,
    /// The active version (absent after a deactivation).
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    active: bool,
}

/// Atomically make a version (default: the highest) the active one.
#[utoipa::path(post, path = "/v1/plugins/{name}/activate", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    request_body(content = Option<ActivateBody>, description = "Optional (as is `null`): without it, the highest version"),
    responses(
        (status = 200, description = "Active", body = Activation),
        (status = 400, description = "The body is not JSON (`bad_json`), or the name is not UTF-8 (`bad_path`)", body = ErrorBody),
        (status = 404, description = "No such plugin or version (`not_found`)", body = ErrorBody),
        (status = 409, description = "The version does not serve an algorithm or engine a channel or the keystore uses, which the active one does (`in_use`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 415, description = "A body that is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (`invalid_body`)", body = ErrorBody),
        (status = 500, description = "The active set could not be saved (`io`); nothing changed", body = ErrorBody),
        (status = 507, description = "The disk is full (`storage_full`); nothing changed", body = ErrorBody),
    ))]
pub async fn activate(State(node): State<Arc<Node>>, Path(name): Path<String>, body: Option<Json<Option<ActivateBody>>>) -> Result<Json<Activation>, ApiError> {
    let version = body.and_then(|b| b.0).unwrap_or_default().version;
    let p = node.registry().activate(&name, version.as_deref())?;
    Ok(Json(Activation { name: p.manifest.name.clone(), version: Some(p.manifest.version.clone()), active: true }))
}

// Handlers that take no body still read it (`_body`), so keep-alive connections whose
// client sent one stay usable.
/// Stop routing calls to the plugin (calls in flight finish).
///
/// Refused while it serves an algorithm or engine a channel (or the keystore) uses and no
/// other active plugin does.
#[utoipa::path(post, path = "/v1/plugins/{name}/deactivate", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses(
        (status = 200, description = "Inactive", body = Activation),
        (status = 400, description = "The name is not UTF-8 (`bad_path`)", body = ErrorBody),
        (status = 404, description = "No such plugin (`not_found`)", body = ErrorBody),
        (status = 409, description = "It serves a channel's suite or engine (or the keystore's cipher) and no other active plugin does; the message names the channel (`in_use`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 500, description = "The active set could not be saved (`io`); nothing changed", body = ErrorBody),
        (status = 507, description = "The disk is full (`storage_full`); nothing changed", body = ErrorBody),
    ))]
pub async fn deactivate(State(node): State<Arc<Node>>, Path(name): Path<String>, _body: Body) -> Result<Json<Activation>, ApiError> {
    node.registry().deactivate(&name)?;
    Ok(Json(Activation { name, version: None, active: false }))
}

/// Re-activate the previously active version.
#[utoipa::path(post, path = "/v1/plugins/{name}/rollback", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses(
        (status = 200, description = "The previous version is active again", body = Activation),
        (status = 400, description = "The name is not UTF-8 (`bad_path`)", body = ErrorBody),
        (status = 404, description = "No such plugin (`not_found`)", body = ErrorBody),
        (status = 409, description = "No earlier version to roll back to (`conflict`), or it lacks what a channel or the keystore uses (`in_use`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 500, description = "The active set could not be saved (`io`); nothing changed", body = ErrorBody),
        (status = 507, description = "The disk is full (`storage_full`); nothing changed", body = ErrorBody),
    ))]
pub async fn rollback(State(node): State<Arc<Node>>, Path(name): Path<String>, _body: Body) -> Result<Json<Activation>, ApiError> {
    let p = node.registry().rollback(&name)?;
    Ok(Json(Activation { name: p.manifest.name.clone(), version: Some(p.manifest.version.clone()), active: true }))
}

/// Uninstall an inactive version.
#[utoipa::path(delete, path = "/v1/plugins/{name}/{version}", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name"), ("version" = String, Path, description = "The version to remove")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "A path parameter is not UTF-8 (`bad_path`)", body = ErrorBody),
        (status = 404, description = "No such plugin or version (`not_found`)", body = ErrorBody),
        (status = 409, description = "The version is active; deactivate it first (`conflict`), or it serves a channel or the keystore (`in_use`)", body = ErrorBody),
    ))]
pub async fn remove(State(node): State<Arc<Node>>, Path((name, version)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    node.registry().remove(&name, &version)?;
    Ok(StatusCode::NO_CONTENT)
}

/// An active algorithm and the plugin serving it.
#[derive(Serialize, ToSchema)]
pub struct Algorithm {
    algorithm: AlgorithmInfo,
    plugin: String,
    version: String,
}

/// Active algorithms and the plugin serving each.
#[utoipa::path(get, path = "/v1/crypto/algorithms", tag = "crypto", responses((status = 200, description = "The active algorithms", body = Vec<Algorithm>)))]
pub async fn algorithms(State(node): State<Arc<Node>>) -> Json<Vec<Algorithm>> {
    Json(node.crypto.active_algorithms().into_iter().map(|(algorithm, plugin, version)| Algorithm { algorithm, plugin, version }).collect())
}

/// What to hash: `alg` and exactly one of `data_hex` (bytes, hex) and `data` (UTF-8 text).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashBody {
    alg: String,
    data_hex: Option<String>,
    data: Option<String>,
}

/// The schema says what the handler accepts: one of the two inputs (the other absent or null).
impl utoipa::PartialSchema for HashBody {
    fn schema() -> RefOr<Schema> {
        let input = |given: &str, pattern: Option<&str>, other: &str| {
            ObjectBuilder::new()
                .property("alg", ObjectBuilder::new().schema_type(Type::String))
                .property(given, ObjectBuilder::new().schema_type(Type::String).pattern(pattern))
                .property(other, ObjectBuilder::new().schema_type(Type::Null))
                .required("alg")
                .required(given)
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .item(input("data_hex", Some("^([0-9a-fA-F]{2})*$"), "data"))
            .item(input("data", None, "data_hex"))
            .description(Some("`alg` and exactly one of `data_hex` (bytes, hex) and `data` (UTF-8 text)"))
            .into()
    }
}

impl ToSchema for HashBody {}

#[derive(Serialize, ToSchema)]
pub struct Digest {
    alg: String,
    digest_hex: String,
}

/// The JSON body of the crypto services: every problem with it is a 400 (`bad_request`),
/// except one over the body limit (413).
fn crypto_body<T>(body: Result<Json<T>, ApiError>, expected: &str) -> Result<T, ApiError> {
    match body {
        Ok(Json(b)) => Ok(b),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(e),
        Err(e) if e.code() == "invalid_body" => Err(bad(format!("{expected}: {}", e.2))),
        Err(e) => Err(bad(e.2)),
    }
}

/// Digest through the active plugin for `alg`.
#[utoipa::path(post, path = "/v1/crypto/hash", tag = "crypto",
    request_body = HashBody,
    responses(
        (status = 200, description = "The digest", body = Digest),
        (status = 400, description = "Not JSON of this shape (`bad_request`), an unknown algorithm (`unknown_algorithm`) or input the plugin refused (`invalid_input`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 500, description = "The call could not run (`internal`)", body = ErrorBody),
        (status = 502, description = "The plugin call failed (`plugin_call_failed`)", body = ErrorBody),
    ))]
pub async fn hash(State(node): State<Arc<Node>>, permit: Permit, body: Result<Json<HashBody>, ApiError>) -> Result<Json<Digest>, ApiError> {
    let b = crypto_body(body, "expected `alg` and exactly one of `data_hex` (hex) and `data` (text)")?;
    let data = match (b.data_hex, b.data) {
        (Some(h), None) => hex::decode(h).map_err(|_| bad("data_hex is not hex"))?,
        (None, Some(t)) => t.into_bytes(),
        _ => return Err(bad("give exactly one of data_hex and data")),
    };
    let c = node.crypto.clone();
    let alg = b.alg.clone();
    let d = permit.blocking(move || c.digest(&alg, &data).map_err(ApiError::from)).await?;
    Ok(Json(Digest { alg: b.alg, digest_hex: hex::encode(d) }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    alg: String,
    /// SubjectPublicKeyInfo as PEM text or DER hex.
    public_key: String,
    #[schema(pattern = "^([0-9a-fA-F]{2})*$")]
    message_hex: String,
    #[schema(pattern = "^([0-9a-fA-F]{2})*$")]
    signature_hex: String,
    /// SM2's distinguishing identifier (default: the standard's).
    user_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Verdict {
    valid: bool,
}

/// Verify a signature through the active plugin for `alg`.
#[utoipa::path(post, path = "/v1/crypto/verify", tag = "crypto",
    request_body = VerifyBody,
    responses(
        (status = 200, description = "Whether the signature is valid", body = Verdict),
        (status = 400, description = "Not JSON of this shape (`bad_request`), an unknown algorithm (`unknown_algorithm`) or a key or input the plugin refused (`invalid_input`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 500, description = "The call could not run (`internal`)", body = ErrorBody),
        (status = 502, description = "The plugin call failed (`plugin_call_failed`)", body = ErrorBody),
    ))]
pub async fn verify(State(node): State<Arc<Node>>, permit: Permit, body: Result<Json<VerifyBody>, ApiError>) -> Result<Json<Verdict>, ApiError> {
    let b = crypto_body(body, "expected `alg`, `public_key`, `message_hex`, `signature_hex` and optionally `user_id`")?;
    let pk = match hex::decode(&b.public_key) {
        Ok(der) => der,
        Err(_) => pem::decode(pem::PUBLIC_KEY, b.public_key.as_bytes()).map_err(|e| bad(format!("public_key: {e}")))?,
    };
    let msg = hex::decode(&b.message_hex).map_err(|_| bad("message_hex is not hex"))?;
    let sig = hex::decode(&b.signature_hex).map_err(|_| bad("signature_hex is not hex"))?;
    let c = node.crypto.clone();
    let valid = permit.blocking(move || c.verify(&b.alg, &pk, &msg, &sig, b.user_id.as_deref().map(str::as_bytes)).map_err(ApiError::from)).await?;
    Ok(Json(Verdict { valid }))
}

fn keystore(node: &Node) -> Result<Arc<crate::keystore::Keystore>, ApiError> {
    node.keystore.clone().ok_or_else(|| ApiError(StatusCode::CONFLICT, "no_keystore", "this node runs without a keystore (start it with --keystore)".into()))
}

/// One period's key: its metadata and public key, never its secret.
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    module: String,
    purpose: String,
    period: u64,
    algorithm: String,
    kind: AlgorithmKind,
    /// Unix seconds.
    created_at: u64,
    /// Unix seconds; set when a newer period replaced this one.
    retired_at: Option<u64>,
    /// SubjectPublicKeyInfo DER, hex (asymmetric keys).
    public_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Keys {
    slots: Vec<Slot>,
    keys: Vec<KeyView>,
}

/// Keystore slots and key metadata.
///
/// Public keys, periods, creation and retirement; never secrets.
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses(
        (status = 200, description = "Slots and keys", body = Keys),
        (status = 409, description = "The node runs without a keystore (`no_keystore`)", body = ErrorBody),
        (status = 500, description = "The keystore could not be read (`keystore`, `internal`)", body = ErrorBody),
    ))]
pub async fn keys(State(node): State<Arc<Node>>) -> Result<Json<Keys>, ApiError> {
    let ks = keystore(&node)?;
    let (slots, keys) = blocking(move || Ok((ks.slots()?, ks.keys()?))).await?;
    let keys = keys
        .into_iter()
        .map(|k| KeyView {
            module: k.module,
            purpose: k.purpose,
            period: k.period,
            algorithm: k.algorithm,
            kind: k.kind,
            created_at: k.created_at,
            retired_at: k.retired_at,
            public_key: k.public_key,
        })
        .collect();
    Ok(Json(Keys { slots, keys }))
}

/// Rotate a key slot now.
///
/// A new period becomes current; old periods stay for verification and decryption.
#[utoipa::path(post, path = "/v1/keys/{module}/{purpose}/rotate", tag = "keys",
    params(("module" = String, Path, description = "The slot's module"), ("purpose" = String, Path, description = "The slot's purpose")),
    responses(
        (status = 200, description = "The new key", body = KeyRef),
        (status = 400, description = "The slot's algorithm is not available (`unknown_algorithm`, `invalid_input`), or a path parameter is not UTF-8 (`bad_path`)", body = ErrorBody),
        (status = 404, description = "No such slot (`not_found`)", body = ErrorBody),
        (status = 409, description = "The node runs without a keystore (`no_keystore`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 500, description = "The keystore could not be written, or no randomness (`keystore`, `entropy`, `internal`)", body = ErrorBody),
        (status = 502, description = "The plugin call failed (`plugin_call_failed`)", body = ErrorBody),
    ))]
pub async fn rotate_key(
    State(node): State<Arc<Node>>,
    Path((module, purpose)): Path<(String, String)>,
    permit: Permit,
    _body: Body,
) -> Result<Json<KeyRef>, ApiError> {
    let ks = keystore(&node)?;
    Ok(Json(permit.blocking(move || Ok(ks.rotate(&module, &purpose)?)).await?))
}
