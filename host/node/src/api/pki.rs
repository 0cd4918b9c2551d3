//! A channel's certificates over HTTP (guide §6.1, §6.3.1): the consortium's root, the
//! member organisations with their CA certificates, a key's current certificate, and each
//! organisation's last CRL (DER or PEM), from the chain state after the head block, so
//! every node answers the same.
//!
//! Recording and revoking certificates are transactions an organisation's admin signs
//! (`POST /v1/tx` with an `identity` payload).

use super::extract::{Json, Path, Query};
use super::{ApiError, ErrorBody, bad, blocking};
use crate::Node;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use joule_ledger::identity::CertRecord;
use joule_primitives::Hash32;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// A member organisation.
#[derive(Serialize, ToSchema)]
pub struct OrganisationView {
    name: String,
    /// Its CA's subject, RFC 4514.
    ca_subject: String,
    /// Its CA certificate, PEM.
    ca_certificate: String,
    /// The block that made it a member (0: genesis).
    joined_at: u64,
    /// The number of its last CRL recorded on chain (hex; empty: none yet).
    crl_number: String,
    /// The block that removed it (absent: a member).
    #[serde(skip_serializing_if = "Option::is_none")]
    removed_at: Option<u64>,
}

/// The channel's certificate setting.
#[derive(Serialize, ToSchema)]
pub struct PkiView {
    /// Whether senders need certificates (the chain's genesis sets identity).
    certificates: bool,
    /// The consortium's root CA certificate, PEM.
    root_certificate: Option<String>,
    organisations: Vec<OrganisationView>,
}

fn pem(label: &str, der: &[u8]) -> String {
    joule_crypto::pem::encode(label, der)
}

fn not_found(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "not_found", what)
}

/// The consortium's root certificate and the member organisations.
#[utoipa::path(get, path = "/v1/pki", tag = "pki", params(super::chain::ChannelQuery),
    responses(
        (status = 200, description = "The root and the organisations (none when the channel has no certificates)", body = PkiView),
        (status = 400, description = "An unknown query parameter (`bad_query`)", body = ErrorBody),
        (status = 404, description = "This node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels: not initialised (`not_initialised`)", body = ErrorBody),
        (status = 500, description = "The node failed to read its store (`internal`)", body = ErrorBody),
        (status = 503, description = "The channel's storage failed and is recovering (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn pki(State(node): State<Arc<Node>>, Query(q): Query<super::chain::ChannelQuery>) -> Result<Json<PkiView>, ApiError> {
    let c = super::chain::chain(&node, q.channel.as_deref())?;
    let view = blocking(move || {
        let organisations = c
            .organisations()?
            .into_iter()
            .map(|o| OrganisationView {
                ca_certificate: pem("CERTIFICATE", &o.ca_certificate),
                name: o.name,
                ca_subject: o.ca_subject,
                joined_at: o.joined_at,
                crl_number: hex::encode(o.crl_number),
                removed_at: o.removed_at,
            })
            .collect();
        Ok(PkiView { certificates: c.identity().is_some(), root_certificate: c.identity().map(|r| pem("CERTIFICATE", r.root_certificate())), organisations })
    })
    .await?;
    Ok(Json(view))
}

/// A key's current certificate.
#[derive(Serialize, ToSchema)]
pub struct CertificateView {
    /// The account: the suite hash of the certified key.
    account: Hash32,
    #[serde(flatten)]
    record: CertRecord,
    /// The certificate, PEM.
    certificate_pem: String,
}

/// The current certificate of an account (a key), with whether it is revoked.
#[utoipa::path(get, path = "/v1/pki/certificates/{account}", tag = "pki",
    params(("account" = String, Path, description = "The account id (64 hex digits)", pattern = "^(0x)?[0-9a-fA-F]{64}$"), super::chain::ChannelQuery),
    responses(
        (status = 200, description = "The certificate record", body = CertificateView),
        (status = 400, description = "Not an account id (`bad_request`), a path that is not UTF-8 (`bad_path`), or an unknown query parameter (`bad_query`)", body = ErrorBody),
        (status = 404, description = "No certificate for the account (`not_found`), or the node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels: not initialised (`not_initialised`)", body = ErrorBody),
        (status = 500, description = "The node failed to read its store (`internal`)", body = ErrorBody),
        (status = 503, description = "The channel's storage failed and is recovering (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn certificate(
    State(node): State<Arc<Node>>,
    Path(account): Path<String>,
    Query(q): Query<super::chain::ChannelQuery>,
) -> Result<Json<CertificateView>, ApiError> {
    let c = super::chain::chain(&node, q.channel.as_deref())?;
    let account = Hash32::from_hex(&account).ok_or_else(|| bad(format!("{account:?} is not an account id (64 hex digits)")))?;
    let record =
        blocking(move || c.certificate_of(&account)?.ok_or_else(|| not_found(format!("account {account} has no certificate on this channel")))).await?;
    Ok(Json(CertificateView { account, certificate_pem: pem("CERTIFICATE", &record.certificate), record }))
}

/// How to encode a CRL.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CrlQuery {
    /// The channel (default: the node's first).
    channel: Option<String>,
    /// `der` (the default, `application/pkix-crl`) or `pem`.
    format: Option<CrlFormat>,
}

#[derive(Deserialize, Default, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CrlFormat {
    #[default]
    Der,
    Pem,
}

/// An organisation's last CRL recorded on chain (with its last revocation), as its CA
/// signed it: `openssl crl -inform DER -in FILE -CAfile CA -noout` checks it.
#[utoipa::path(get, path = "/v1/pki/organisations/{organisation}/crl", tag = "pki",
    params(("organisation" = String, Path, description = "The organisation's name"), CrlQuery),
    responses(
        (status = 200, description = "The CRL: DER (`application/pkix-crl`) or, with `format=pem`, PEM (`application/x-pem-file`)",
            content((Vec<u8> = "application/pkix-crl"), (String = "application/x-pem-file"))),
        (status = 400, description = "An unknown query parameter or format (`bad_query`), or a path that is not UTF-8 (`bad_path`)", body = ErrorBody),
        (status = 404, description = "No such member organisation, or it has revoked nothing yet (`not_found`), or the node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels: not initialised (`not_initialised`)", body = ErrorBody),
        (status = 500, description = "The node failed to read its store (`internal`)", body = ErrorBody),
        (status = 503, description = "The channel's storage failed and is recovering (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn crl(State(node): State<Arc<Node>>, Path(organisation): Path<String>, Query(q): Query<CrlQuery>) -> Result<Response, ApiError> {
    let c = super::chain::chain(&node, q.channel.as_deref())?;
    let der = blocking(move || {
        let org = c.organisations()?.into_iter().find(|o| o.name == organisation);
        let org = org.ok_or_else(|| not_found(format!("{organisation:?} is not a member organisation of this channel")))?;
        org.crl.ok_or_else(|| not_found(format!("organisation {organisation} has revoked nothing yet, so it has recorded no CRL")))
    })
    .await?;
    Ok(match q.format.unwrap_or_default() {
        CrlFormat::Der => ([(header::CONTENT_TYPE, "application/pkix-crl")], der).into_response(),
        CrlFormat::Pem => ([(header::CONTENT_TYPE, "application/x-pem-file")], pem("X509 CRL", &der)).into_response(),
    })
}

impl From<crate::ca::CaError> for ApiError {
    fn from(e: crate::ca::CaError) -> Self {
        use crate::ca::CaError;
        match e {
            CaError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, "bad_request", m),
            CaError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, "not_found", m),
            CaError::Conflict(m) => ApiError(StatusCode::CONFLICT, "conflict", m),
            CaError::TooMany(m) => ApiError(StatusCode::SERVICE_UNAVAILABLE, "too_many_applications", m),
            CaError::Rejected(r) => r.into(),
            CaError::Internal(m) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", m),
        }
    }
}

/// A certificate application (§6.1.1).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRequest {
    /// The member organisation asked to certify.
    organisation: String,
    /// A PKCS#10 request (PEM), signed by the key to certify: `openssl req -new -key KEY
    /// -subj /CN=…` or `joule ca apply` makes one. The private key never travels.
    csr: String,
    /// The roles asked for (`client`, `admin`, `peer`): the reviewer may change them.
    #[serde(default)]
    roles: Vec<String>,
    /// Who the applicant is, for the reviewer.
    #[serde(default)]
    applicant: crate::ca::Applicant,
}

/// Apply for a certificate: kept until an admin of the organisation reviews it.
///
/// Anyone may apply; nothing is issued without an admin's approval. Keep the returned `id`:
/// `GET /v1/pki/applications/{id}` shows the outcome and, once approved, the certificate.
#[utoipa::path(post, path = "/v1/pki/applications", tag = "pki", params(super::chain::ChannelQuery),
    request_body(content = ApplicationRequest, description = "The request and who is asking"),
    responses(
        (status = 201, description = "Kept for review", body = crate::ca::Application),
        (status = 400, description = "A request that does not parse or whose signature does not verify, an unknown organisation, a bad role or an over-long field (`bad_request`), a channel without certificates, an unknown query parameter (`bad_query`) or a body that is not JSON (`bad_json`)", body = ErrorBody),
        (status = 404, description = "This node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "The node has no channels: not initialised (`not_initialised`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 415, description = "A body that is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (`invalid_body`)", body = ErrorBody),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
        (status = 503, description = "Too many applications wait for review (`too_many_applications`), or the channel's storage failed (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn apply(
    State(node): State<Arc<Node>>,
    Query(q): Query<super::chain::ChannelQuery>,
    Json(req): Json<ApplicationRequest>,
) -> Result<(StatusCode, Json<crate::ca::Application>), ApiError> {
    let c = super::chain::chain(&node, q.channel.as_deref())?;
    let a = blocking(move || Ok(node.applications.submit(&c, &node.crypto, &req.organisation, &req.csr, req.roles, req.applicant)?)).await?;
    Ok((StatusCode::CREATED, Json(a)))
}

/// An application and its outcome (with the certificate once approved).
#[utoipa::path(get, path = "/v1/pki/applications/{id}", tag = "pki",
    params(("id" = String, Path, description = "The application's id (32 hex digits)")),
    responses(
        (status = 200, description = "The application", body = crate::ca::Application),
        (status = 400, description = "A path that is not UTF-8 (`bad_path`)", body = ErrorBody),
        (status = 404, description = "No such application (`not_found`)", body = ErrorBody),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
    ))]
pub async fn application(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Result<Json<crate::ca::Application>, ApiError> {
    Ok(Json(blocking(move || Ok(node.applications.get(&id)?)).await?))
}

/// Every application this node keeps, newest first (for the reviewing admin).
#[utoipa::path(get, path = "/v1/pki/applications", tag = "pki",
    responses(
        (status = 200, description = "The applications", body = Vec<crate::ca::Application>),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
    ))]
pub async fn applications(State(node): State<Arc<Node>>) -> Result<Json<Vec<crate::ca::Application>>, ApiError> {
    Ok(Json(blocking(move || Ok(node.applications.list()?)).await?))
}

/// An admin's approval.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The roles to certify (default: those asked for).
    #[serde(default)]
    roles: Option<Vec<String>>,
    /// Days the certificate is valid (default 365).
    #[serde(default = "default_days")]
    days: u32,
}

fn default_days() -> u32 {
    365
}

/// Approve an application: this node issues the certificate with its organisation's CA key
/// and records it on chain in a transaction it signs (it must hold the organisation's
/// `admin` role).
#[utoipa::path(post, path = "/v1/pki/applications/{id}/approve", tag = "pki",
    params(("id" = String, Path, description = "The application's id (32 hex digits)")),
    request_body(content = Approval, description = "Roles and lifetime"),
    responses(
        (status = 200, description = "Issued and admitted to the pool", body = crate::ca::Application),
        (status = 400, description = "A bad role or lifetime (`bad_request`), a path that is not UTF-8 (`bad_path`), or a body that is not JSON (`bad_json`)", body = ErrorBody),
        (status = 403, description = "This node's key may not record certificates of the organisation (`not_permitted`)", body = ErrorBody),
        (status = 404, description = "No such application (`not_found`)", body = ErrorBody),
        (status = 409, description = "Reviewed already, or this node does not hold the organisation's CA key (`conflict`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 415, description = "A body that is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (`invalid_body`)", body = ErrorBody),
        (status = 429, description = "This node has as many transactions in the pool as one sender may (`sender_limit`)", body = ErrorBody),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The pool is full (`pool_full`), or the channel's storage failed (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn approve(State(node): State<Arc<Node>>, Path(id): Path<String>, Json(a): Json<Approval>) -> Result<Json<crate::ca::Application>, ApiError> {
    let done = blocking(move || {
        let channel = node.applications.get(&id)?.channel;
        let c = super::chain::chain(&node, Some(&channel))?;
        Ok(node.applications.approve(&c, &node.crypto, node.keystore.as_ref(), &id, a.roles, a.days)?)
    })
    .await?;
    Ok(Json(done))
}

/// An admin's rejection.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// Why, for the applicant (≤ 256 bytes).
    reason: String,
}

/// Reject an application, saying why.
#[utoipa::path(post, path = "/v1/pki/applications/{id}/reject", tag = "pki",
    params(("id" = String, Path, description = "The application's id (32 hex digits)")),
    request_body(content = Rejection, description = "The reason"),
    responses(
        (status = 200, description = "Rejected", body = crate::ca::Application),
        (status = 400, description = "An over-long reason (`bad_request`), a path that is not UTF-8 (`bad_path`), or a body that is not JSON (`bad_json`)", body = ErrorBody),
        (status = 404, description = "No such application (`not_found`)", body = ErrorBody),
        (status = 409, description = "Reviewed already (`conflict`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 415, description = "A body that is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (`invalid_body`)", body = ErrorBody),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
    ))]
pub async fn reject(State(node): State<Arc<Node>>, Path(id): Path<String>, Json(r): Json<Rejection>) -> Result<Json<crate::ca::Application>, ApiError> {
    Ok(Json(blocking(move || Ok(node.applications.reject(&id, r.reason)?)).await?))
}

/// The certificate of an account to act on.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateAction {
    /// The account (64 hex digits), or empty with `network_key`.
    #[serde(default)]
    account: String,
    /// Instead of `account`: a node's network key (compressed point, hex), for its `peer`
    /// certificate.
    #[serde(default)]
    network_key: Option<String>,
    /// For renewals: days the new certificate is valid (default 365).
    #[serde(default = "default_days")]
    days: u32,
}

/// The account an action names: by id, or by the network key its `peer` certificate
/// certifies.
fn target(c: &joule_ledger::chain::Chain, a: &CertificateAction) -> Result<Hash32, ApiError> {
    match (&a.network_key, a.account.is_empty()) {
        (Some(k), true) => {
            let key = hex::decode(k)
                .ok()
                .filter(|k| k.len() == joule_primitives::NETWORK_KEY_BYTES)
                .ok_or_else(|| bad(format!("{k:?} is not a network key (66 hex digits)")))?;
            c.peer_account(&key)?.ok_or_else(|| not_found(format!("no peer certificate certifies network key {k}")))
        }
        (None, false) => Hash32::from_hex(&a.account).ok_or_else(|| bad(format!("{:?} is not an account id (64 hex digits)", a.account))),
        _ => Err(bad("give an account or a network_key, one of them")),
    }
}

/// Revoke an account's current certificate: this node signs its organisation's new CRL
/// (the last one's entries and this serial) and records both on chain. From the block after,
/// no node admits the account's transactions.
#[utoipa::path(post, path = "/v1/pki/revocations", tag = "pki", params(super::chain::ChannelQuery),
    request_body(content = CertificateAction, description = "The account or network key (`days` is ignored)"),
    responses(
        (status = 202, description = "The revocation, admitted to the pool; `pem` is the new CRL", body = crate::ca::Issued),
        (status = 400, description = "Not an account id or network key, or both or neither given (`bad_request`), an unknown query parameter (`bad_query`), or a body that is not JSON (`bad_json`)", body = ErrorBody),
        (status = 403, description = "This node's key may not revoke the organisation's certificates (`not_permitted`)", body = ErrorBody),
        (status = 404, description = "The account (or network key) has no certificate (`not_found`), or the node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "Revoked already, this node does not hold the organisation's CA key (`conflict`), or the node has no channels (`not_initialised`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 415, description = "A body that is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (`invalid_body`)", body = ErrorBody),
        (status = 429, description = "This node has as many transactions in the pool as one sender may (`sender_limit`)", body = ErrorBody),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The pool is full (`pool_full`), or the channel's storage failed (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn revoke(
    State(node): State<Arc<Node>>,
    Query(q): Query<super::chain::ChannelQuery>,
    Json(a): Json<CertificateAction>,
) -> Result<(StatusCode, Json<crate::ca::Issued>), ApiError> {
    let c = super::chain::chain(&node, q.channel.as_deref())?;
    let done = blocking(move || {
        let account = target(&c, &a)?;
        Ok(crate::ca::revoke(&c, node.keystore.as_ref(), &account)?)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(done)))
}

/// Renew an account's certificate (§6.1.4): the same subject and key, a new serial and
/// validity, recorded on chain; the account stays.
#[utoipa::path(post, path = "/v1/pki/renewals", tag = "pki", params(super::chain::ChannelQuery),
    request_body(content = CertificateAction, description = "The account and the new lifetime"),
    responses(
        (status = 202, description = "The new certificate, admitted to the pool; `pem` is the certificate", body = crate::ca::Issued),
        (status = 400, description = "Not an account id or network key, both or neither given, or a bad lifetime (`bad_request`), an unknown query parameter (`bad_query`), or a body that is not JSON (`bad_json`)", body = ErrorBody),
        (status = 403, description = "This node's key may not record the organisation's certificates (`not_permitted`)", body = ErrorBody),
        (status = 404, description = "The account (or network key) has no certificate (`not_found`), or the node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "Revoked, this node does not hold the organisation's CA key (`conflict`), or the node has no channels (`not_initialised`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 415, description = "A body that is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (`invalid_body`)", body = ErrorBody),
        (status = 429, description = "This node has as many transactions in the pool as one sender may (`sender_limit`)", body = ErrorBody),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The pool is full (`pool_full`), or the channel's storage failed (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn renew(
    State(node): State<Arc<Node>>,
    Query(q): Query<super::chain::ChannelQuery>,
    Json(a): Json<CertificateAction>,
) -> Result<(StatusCode, Json<crate::ca::Issued>), ApiError> {
    let c = super::chain::chain(&node, q.channel.as_deref())?;
    let done = blocking(move || {
        let account = target(&c, &a)?;
        Ok(crate::ca::renew(&c, node.keystore.as_ref(), &account, a.days)?)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(done)))
}

/// A new organisation's request for its CA certificate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationRequest {
    /// The organisation's name (1-64 characters of [a-z0-9_-]).
    name: String,
    /// A PKCS#10 request (PEM) signed by the organisation's CA key (`joule org init`).
    csr: String,
    /// Days the CA certificate is valid (default 3650).
    #[serde(default = "ten_years")]
    days: u32,
}

fn ten_years() -> u32 {
    3650
}

/// A CA certificate issued by the consortium's root.
#[derive(Serialize, ToSchema)]
pub struct OrganisationCertificate {
    /// PEM.
    certificate: String,
}

/// Certify a new organisation's CA with the consortium's root key (held by this node): the
/// organisation then makes its bundle (`joule org bundle`) and joins when the validators
/// vote it in (`add_organisation`).
#[utoipa::path(post, path = "/v1/pki/organisations", tag = "pki", params(super::chain::ChannelQuery),
    request_body(content = OrganisationRequest, description = "The organisation and its CA's request"),
    responses(
        (status = 200, description = "The CA certificate", body = OrganisationCertificate),
        (status = 400, description = "A bad name, lifetime or request, a channel without certificates (`bad_request`), an unknown query parameter (`bad_query`), or a body that is not JSON (`bad_json`)", body = ErrorBody),
        (status = 404, description = "This node does not serve the channel (`no_such_channel`)", body = ErrorBody),
        (status = 409, description = "This node does not hold the root CA key (`conflict`), or has no channels (`not_initialised`)", body = ErrorBody),
        (status = 413, description = "Body over the limit (`too_large`)", body = ErrorBody),
        (status = 415, description = "A body that is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (`invalid_body`)", body = ErrorBody),
        (status = 500, description = "The node failed (`internal`)", body = ErrorBody),
        (status = 503, description = "The channel's storage failed (`storage_failed`)", body = ErrorBody),
    ))]
pub async fn certify_organisation(
    State(node): State<Arc<Node>>,
    Query(q): Query<super::chain::ChannelQuery>,
    Json(r): Json<OrganisationRequest>,
) -> Result<Json<OrganisationCertificate>, ApiError> {
    let c = super::chain::chain(&node, q.channel.as_deref())?;
    let certificate = blocking(move || Ok(crate::ca::certify_organisation(&c, &node.crypto, node.keystore.as_ref(), &r.name, &r.csr, r.days)?)).await?;
    Ok(Json(OrganisationCertificate { certificate }))
}
