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
        (status = 400, description = "Not an account id (`bad_request`), or an unknown query parameter (`bad_query`)", body = ErrorBody),
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
        (status = 400, description = "An unknown query parameter or format (`bad_query`)", body = ErrorBody),
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
