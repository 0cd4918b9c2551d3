//! The OpenAPI 3.1 document served at `/v1/openapi.json`. It is not written by hand: each
//! handler carries its operation (`#[utoipa::path]`: parameters, body, every status it
//! answers), the schemas come from the types the handlers serve, and [`super::router`]
//! registers handlers and operations from one list (`utoipa_axum::routes!`). What is added
//! here is what belongs to no single handler: the document's root, the admin token, and
//! the schemas of bodies that are not JSON.

use super::ErrorBody;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem, Paths};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, ToSchema};

/// The security schemes of admin endpoints: a bearer token (the admin token or a user's
/// session), or a user's name and password.
const ADMIN_TOKEN: &str = "adminToken";
const USER_PASSWORD: &str = "userPassword";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Joule node API",
        version = env!("CARGO_PKG_VERSION"),
        description = "Chain (status, transactions, blocks, accounts, state proofs, block stream), configuration, plugin administration \
            (hot swap), crypto services and metrics of a Joule node.\n\nAdmin endpoints take `Authorization: Bearer <token>` (the node's \
            DIR/admin.token or JOULE_ADMIN_TOKEN). Every error answer is JSON `{\"error\": \"...\", \"code\": \"...\"}`: unknown paths \
            answer 404 (`no_route`), unsupported methods 405 (`method_not_allowed`), a body that does not arrive within the node's body \
            timeout 408 (`body_timeout`). Expensive operations wait briefly for a place when the node is running as many as it takes, and \
            answer 503 (`busy`) with `Retry-After` when none frees in time; an address that sent too many wrong admin tokens or passwords is answered 429 (`too_many_failures`) with `Retry-After`.\n\n\
            A node's users (`[[user]]` of node.toml, Argon2id password hashes) sign in with `POST /v1/login` and send the session token as \
            `Authorization: Bearer <token>`, or send `Authorization: Basic` with their name and password; the admin API needs the role `admin`."
    ),
    modifiers(&AdminTokenScheme),
    components(schemas(ErrorBody)),
    tags(
        (name = "node", description = "Liveness, metrics and this document"),
        (name = "chain", description = "Transactions, blocks, accounts and state of the node's channels"),
        (name = "contracts", description = "Smart contracts: description and ABI, read-only calls, live events"),
        (name = "governance", description = "The channel's validators and nodes, and the votes that change them"),
        (name = "pki", description = "Certificates: the consortium root, member organisations, keys' certificates, CRLs"),
        (name = "plugins", description = "Plugin administration: upload, activate, swap, roll back, remove"),
        (name = "keys", description = "The node's keystore"),
        (name = "crypto", description = "Crypto services of the active plugins"),
        (name = "config", description = "The node's configuration files"),
    )
)]
pub struct ApiDoc;

struct AdminTokenScheme;

impl Modify for AdminTokenScheme {
    fn modify(&self, doc: &mut OpenApi) {
        doc.components.get_or_insert_with(Default::default).add_security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The node's admin token (DIR/admin.token or JOULE_ADMIN_TOKEN), or a user's session token (POST /v1/login)."))
                    .build(),
            ),
        );
        doc.components.get_or_insert_with(Default::default).add_security_scheme(
            USER_PASSWORD,
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Basic).description(Some("A user's name and password (`[[user]]` of node.toml).")).build(),
            ),
        );
    }
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.options, &mut item.head, &mut item.patch, &mut item.trace]
        .into_iter()
        .filter_map(Option::as_mut)
}

/// An error answer of the API's error body.
pub fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(<ErrorBody as utoipa::ToSchema>::name()))).build())
        .build()
        .into()
}

/// An error answer that says when to retry (`Retry-After`, in seconds).
fn retry_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let seconds = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1))))
        .description(Some("Seconds to wait before trying again"))
        .build();
    ResponseBuilder::new()
        .description(description)
        .header("Retry-After", seconds)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(<ErrorBody as utoipa::ToSchema>::name()))).build())
        .build()
        .into()
}

/// Every operation of `doc` needs the admin token, and answers 401 without it and 429
/// after too many wrong ones: applied to the operations of the router that
/// [`super::require_token`] guards, so the two agree.
pub fn require_admin_token(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            op.security =
                Some(vec![SecurityRequirement::new(ADMIN_TOKEN, Vec::<String>::new()), SecurityRequirement::new(USER_PASSWORD, Vec::<String>::new())]);
            op.responses.responses.insert(
                "401".into(),
                error_response(
                    "No credentials (`no_token`), a token that is neither the admin token nor a live session's (`bad_token`), a wrong name or password (`bad_credentials`), or a signed request that does not verify (`bad_signature`)",
                ),
            );
            let user_without_role = "a signed-in user without the role admin (`not_permitted`)";
            let forbidden = match op.responses.responses.get("403") {
                Some(RefOr::T(r)) => error_response(&format!("{}; or {user_without_role}", r.description)),
                _ => error_response(&format!("A user without the role admin: {user_without_role}")),
            };
            op.responses.responses.insert("403".into(), forbidden);
            op.responses.responses.insert(
                "429".into(),
                retry_response("Too many wrong admin tokens or passwords from this address within a minute (`too_many_failures`): no credentials are checked until `Retry-After`"),
            );
        }
    }
}

/// The operations of `paths` may answer 503 `busy` (with `Retry-After`): applied to the
/// routes that [`super::guard::shed`] guards, so the two agree. An operation that already
/// answers 503 for a reason of its own keeps it in the description.
pub fn may_be_busy(paths: &mut Paths) {
    const BUSY: &str = "The node is busy with other expensive requests (`busy`): retry after `Retry-After` seconds";
    for item in paths.paths.values_mut() {
        for op in operations_mut(item) {
            let description = match op.responses.responses.get("503") {
                Some(RefOr::T(own)) => format!("{}; or {}{}", own.description, BUSY[..1].to_lowercase(), &BUSY[1..]),
                _ => BUSY.to_string(),
            };
            op.responses.responses.insert("503".into(), retry_response(&description));
        }
    }
}

/// The finishing touches: axum's catch-all `{*key}` is OpenAPI's `{key}`; every operation
/// that reads a body may answer 408 (the body deadline is the router's).
pub fn finish(doc: &mut OpenApi) {
    doc.paths.paths = std::mem::take(&mut doc.paths.paths).into_iter().map(|(p, item)| (p.replace("{*", "{"), item)).collect();
    for item in doc.paths.paths.values_mut() {
        for op in [item.post.as_mut(), item.put.as_mut()].into_iter().flatten() {
            op.responses.responses.insert("408".into(), error_response("The request body did not arrive within the node's body timeout (`body_timeout`)"));
        }
    }
}

/// Bytes of a binary body (`application/octet-stream`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(#[allow(dead_code)] Vec<u8>);

/// TOML text (`application/toml`).
#[derive(ToSchema)]
#[schema(value_type = String)]
pub struct Toml(#[allow(dead_code)] String);

/// A plugin upload, `multipart/form-data`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PluginUpload {
    /// The plugin's TOML manifest.
    #[schema(content_media_type = "application/toml")]
    manifest: String,
    /// The component, as the manifest's `wasm_sha256` hashes it.
    #[schema(value_type = String, format = Binary, content_media_type = "application/wasm")]
    wasm: Vec<u8>,
}

/// One server-sent event of `GET /v1/blocks/stream`: `block` (data: a [`super::chain::BlockEvent`]
/// as JSON, id: the height) or `lagged` (data: `{"missed": n}`) when the reader fell behind.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StreamEvent {
    /// `block` or `lagged`.
    event: Option<String>,
    /// JSON text.
    data: String,
    /// The block height (`block` events).
    id: Option<String>,
}
