//! A consortium's certificate authority (guide §6.1, §3.11–3.13): X.509 v3 certificates
//! and CRLs, built with RustCrypto's `x509-cert` and signed by a [`CaSigner`] (the node backs
//! it with its crypto plugins and keystore, so the CA never holds a private key and every
//! signature is a plugin's). Signatures are checked through a [`SignatureCheck`] likewise.
//!
//! The hierarchy: a root CA per consortium (self-signed), an intermediate CA per
//! organisation (path length 0), and end-entity certificates issued from PKCS#10 requests
//! whose own signature verifies. Two signature algorithms, one per crypto suite:
//! SM2-with-SM3 (OID 1.2.156.10197.1.501, keys on the SM2 curve 1.2.156.10197.1.301) and
//! ECDSA-with-SHA256 (1.2.840.10045.4.3.2, keys on P-256). An end entity's roles are
//! `organizationalUnitName` attributes of its subject (as Hyperledger Fabric's node OUs:
//! `OU=client`, `OU=admin`, `OU=peer`), so they need no private extension and every X.509
//! tool shows them. Byte-level details: `docs/formats.md`, "Certificates".

use const_oid::ObjectIdentifier;
use der::asn1::{BitString, OctetString};
use der::referenced::OwnedToRef;
use der::{Decode, DecodePem, Encode, EncodePem};
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey, SubjectPublicKeyInfoOwned};
use std::str::FromStr;
use std::time::{Duration, SystemTime};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, BasicConstraints, CrlNumber, KeyUsage, KeyUsages, SubjectKeyIdentifier};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::request::CertReq;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

pub mod escrow;

/// The X.509 types the API speaks in (names, validity, CRLs).
pub use x509_cert as x509;
pub use x509_cert::Certificate;

/// SM2 signature with SM3 (GB/T 35276, GM/T 0006).
pub const SM2_WITH_SM3: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.501");
/// The SM2 curve, as an EC public key's parameters.
pub const SM2_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.301");
/// ECDSA with SHA-256 (RFC 5758).
pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// NIST P-256, as an EC public key's parameters.
pub const P256_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ORGANIZATIONAL_UNIT: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Bytes that are not what they claim (DER, PEM, a name).
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// A key or signature of an algorithm neither suite uses.
    #[error("unsupported algorithm: {0}")]
    Unsupported(String),
    /// A signature did not verify.
    #[error("the signature of {0} does not verify")]
    BadSignature(String),
    /// The signer or checker failed (a plugin, the keystore).
    #[error("signing: {0}")]
    Signer(String),
    /// A chain that does not hold: why.
    #[error("{0}")]
    Rejected(String),
}

fn malformed(what: &'static str) -> impl Fn(der::Error) -> PkiError {
    move |e| PkiError::Malformed { what, reason: e.to_string() }
}

fn builder_error(e: x509_cert::builder::Error) -> PkiError {
    match e {
        x509_cert::builder::Error::Signature(s) => PkiError::Signer(s.to_string()),
        other => PkiError::Malformed { what: "certificate fields", reason: other.to_string() },
    }
}

/// A signature algorithm of a crypto suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigAlg {
    /// `gm`: SM2 with SM3 (the default distinguishing id `1234567812345678`).
    Sm2Sm3,
    /// `intl`: ECDSA on P-256 with SHA-256.
    EcdsaP256Sha256,
}

impl SigAlg {
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            SigAlg::Sm2Sm3 => SM2_WITH_SM3,
            SigAlg::EcdsaP256Sha256 => ECDSA_WITH_SHA256,
        }
    }

    /// The crypto plugins' name for it.
    pub fn plugin_algorithm(self) -> &'static str {
        match self {
            SigAlg::Sm2Sm3 => "sm2",
            SigAlg::EcdsaP256Sha256 => "ecdsa-p256",
        }
    }

    /// The algorithm of a signature's identifier.
    pub fn of_signature(alg: &AlgorithmIdentifierOwned) -> Result<SigAlg, PkiError> {
        match alg.oid {
            o if o == SM2_WITH_SM3 => Ok(SigAlg::Sm2Sm3),
            o if o == ECDSA_WITH_SHA256 => Ok(SigAlg::EcdsaP256Sha256),
            o => Err(PkiError::Unsupported(format!("signature algorithm {o}"))),
        }
    }

    /// The algorithm that signs with a key, from its SubjectPublicKeyInfo (an EC key's
    /// curve).
    pub fn of_key(spki: &SubjectPublicKeyInfoOwned) -> Result<SigAlg, PkiError> {
        if spki.algorithm.oid != EC_PUBLIC_KEY {
            return Err(PkiError::Unsupported(format!("public key algorithm {}", spki.algorithm.oid)));
        }
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        match curve {
            Some(c) if c == SM2_CURVE => Ok(SigAlg::Sm2Sm3),
            Some(c) if c == P256_CURVE => Ok(SigAlg::EcdsaP256Sha256),
            Some(c) => Err(PkiError::Unsupported(format!("curve {c}"))),
            None => Err(PkiError::Unsupported("an EC key without a named curve".into())),
        }
    }
}

/// The SM2 distinguishing identifier a CA signs with (SM2 hashes it into every signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sm2Id {
    /// The empty identifier: what OpenSSL 3.0 writes into X.509 and checks CA certificates
    /// and CRLs under, so `openssl verify` accepts the chains with no options.
    #[default]
    OpenSsl,
    /// `1234567812345678`, as GM/T 0015 and GB/T 35276 name it. OpenSSL 3.0 then verifies an
    /// end entity only with `-vfyopt distid:1234567812345678`, and no CA certificate.
    Standard,
}

impl Sm2Id {
    /// The identifier as the crypto plugins take it (`None`: their default, the standard).
    pub fn plugin_id(self) -> Option<&'static [u8]> {
        match self {
            Sm2Id::OpenSsl => Some(b""),
            Sm2Id::Standard => None,
        }
    }
}

/// A CA's signing key, wherever it is held: its public key and a signature over a message
/// (an SM2 key signs with the [`Sm2Id`] its CA is configured with).
pub trait CaSigner {
    /// SubjectPublicKeyInfo, DER.
    fn public_key(&self) -> &[u8];
    /// The signature (DER, as X.509 carries it) over `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError>;
}

/// Signature checks (the node's crypto plugins).
pub trait SignatureCheck {
    /// Whether `signature` (DER) by the key `public_key` (SPKI DER) over `message` verifies
    /// under `alg`; `sm2_id`: the SM2 distinguishing identifier (`None`: the standard
    /// `1234567812345678`; ignored by ECDSA).
    fn verify(&self, alg: SigAlg, public_key: &[u8], message: &[u8], signature: &[u8], sm2_id: Option<&[u8]>) -> Result<bool, PkiError>;
}

/// Verify a signature in a certificate, request or CRL. An SM2 signature is accepted under
/// either [`Sm2Id`]: the standard identifier (GM/T 0015) or the empty one OpenSSL 3.0 uses,
/// so Joule reads what either kind of CA made.
fn verifies(check: &dyn SignatureCheck, alg: SigAlg, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<bool, PkiError> {
    if check.verify(alg, public_key, message, signature, None)? {
        return Ok(true);
    }
    Ok(alg == SigAlg::Sm2Sm3 && check.verify(alg, public_key, message, signature, Some(b""))?)
}

/// The signer as `x509-cert`'s builders take it: the key's SPKI and the algorithm. The
/// signature itself is made between `finalize` and `assemble`, by the [`CaSigner`].
struct BuilderKey {
    spki: Vec<u8>,
    alg: SigAlg,
}

#[derive(Clone)]
struct SpkiDer(Vec<u8>);

impl EncodePublicKey for SpkiDer {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        der::Document::try_from(self.0.as_slice()).map_err(spki::Error::from)
    }
}

impl signature::Keypair for BuilderKey {
    type VerifyingKey = SpkiDer;

    fn verifying_key(&self) -> SpkiDer {
        SpkiDer(self.spki.clone())
    }
}

impl DynSignatureAlgorithmIdentifier for BuilderKey {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(AlgorithmIdentifierOwned { oid: self.alg.oid(), parameters: None })
    }
}

impl BuilderKey {
    fn of(signer: &dyn CaSigner) -> Result<BuilderKey, PkiError> {
        let spki = SubjectPublicKeyInfoOwned::from_der(signer.public_key()).map_err(malformed("signer public key"))?;
        Ok(BuilderKey { spki: signer.public_key().to_vec(), alg: SigAlg::of_key(&spki)? })
    }
}

/// Sign what a builder finalised and assemble the result.
fn sign_with<B: Builder>(mut builder: B, signer: &dyn CaSigner) -> Result<B::Output, PkiError> {
    let key = BuilderKey::of(signer)?;
    let body = builder.finalize(&key).map_err(builder_error)?;
    let signature = signer.sign(&body)?;
    let bits = BitString::from_bytes(&signature).map_err(malformed("signature"))?;
    builder.assemble(bits, &key).map_err(builder_error)
}

/// What kind of certificate a profile makes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A consortium's root: self-signed, a CA of any depth.
    Root,
    /// An organisation's CA, issued by the root: it issues end entities only.
    Organisation,
    /// An end entity (a user, a node): signs, issues nothing.
    EndEntity,
}

/// The extensions of each kind (RFC 5280 §4.2): key identifiers, basic constraints and key
/// usage, all CA ones critical.
struct Profile {
    kind: Kind,
    subject: Name,
    issuer: Option<Name>,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, subject: &Name) -> Name {
        self.issuer.clone().unwrap_or_else(|| subject.clone())
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: spki::SubjectPublicKeyInfoRef<'_>,
        issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut out: Vec<Extension> = vec![];
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        let issuer_ski = SubjectKeyIdentifier::try_from(issuer_spk)?;
        out.push((&ski).to_extension(tbs.subject(), &out)?);
        out.push((&AuthorityKeyIdentifier { key_identifier: Some(issuer_ski.0.clone()), ..Default::default() }).to_extension(tbs.subject(), &out)?);
        let (ca, path_len, usage) = match self.kind {
            Kind::Root => (true, None, KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature),
            Kind::Organisation => (true, Some(0), KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature),
            Kind::EndEntity => (false, None, KeyUsages::DigitalSignature | KeyUsages::NonRepudiation),
        };
        let mut bc = (&BasicConstraints { ca, path_len_constraint: path_len }).to_extension(tbs.subject(), &out)?;
        bc.critical = true;
        out.push(bc);
        let mut ku = (&KeyUsage(usage)).to_extension(tbs.subject(), &out)?;
        ku.critical = true;
        out.push(ku);
        Ok(out)
    }
}

/// A distinguished name from its RFC 4514 string (`CN=Grid Co Root,O=Grid Co,C=CN`).
pub fn name(s: &str) -> Result<Name, PkiError> {
    Name::from_str(s).map_err(|e| PkiError::Malformed { what: "distinguished name", reason: e.to_string() })
}

/// A random positive 64-bit serial number (RFC 5280 allows up to 20 octets; a leading
/// zero bit keeps it positive).
pub fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| PkiError::Signer(format!("no OS randomness: {e}")))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::new(&bytes).map_err(malformed("serial number"))
}

/// The validity from `not_before` for `lifetime`.
pub fn validity(not_before: SystemTime, lifetime: Duration) -> Result<Validity, PkiError> {
    let start = Time::try_from(not_before).map_err(malformed("validity"))?;
    let end = Time::try_from(not_before + lifetime).map_err(malformed("validity"))?;
    Ok(Validity::new(start, end))
}

/// A consortium's root CA certificate, self-signed by `signer`.
pub fn issue_root(signer: &dyn CaSigner, subject: &str, validity: Validity) -> Result<Certificate, PkiError> {
    let spki = SubjectPublicKeyInfoOwned::from_der(signer.public_key()).map_err(malformed("root public key"))?;
    let profile = Profile { kind: Kind::Root, subject: name(subject)?, issuer: None };
    let builder = CertificateBuilder::new(profile, random_serial()?, validity, spki).map_err(builder_error)?;
    sign_with(builder, signer)
}

/// An organisation's CA certificate for the key `public_key` (SPKI DER), issued by the
/// root `issuer` with its key `signer`.
pub fn issue_organisation_ca(
    issuer: &Certificate,
    signer: &dyn CaSigner,
    subject: &str,
    public_key: &[u8],
    validity: Validity,
) -> Result<Certificate, PkiError> {
    issue(issuer, signer, Kind::Organisation, name(subject)?, public_key, validity)
}

/// An end entity's certificate for a checked request (see [`Request::parse`]), with
/// `roles` as `OU` attributes added to the requested subject, issued by an organisation's
/// CA `issuer` with its key `signer`.
pub fn issue_end_entity(issuer: &Certificate, signer: &dyn CaSigner, request: &Request, roles: &[&str], validity: Validity) -> Result<Certificate, PkiError> {
    let mut subject = request.subject.to_string();
    for role in roles {
        if role.is_empty() || !role.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(PkiError::Malformed { what: "role", reason: format!("{role:?}: roles are [A-Za-z0-9_-]+") });
        }
        subject = if subject.is_empty() { format!("OU={role}") } else { format!("OU={role},{subject}") };
    }
    issue(issuer, signer, Kind::EndEntity, name(&subject)?, &request.public_key, validity)
}

fn issue(issuer: &Certificate, signer: &dyn CaSigner, kind: Kind, subject: Name, public_key: &[u8], validity: Validity) -> Result<Certificate, PkiError> {
    if issuer.tbs_certificate().subject_public_key_info().to_der().map_err(malformed("issuer key"))? != signer.public_key() {
        return Err(PkiError::Rejected("the signing key is not the issuer certificate's".into()));
    }
    let spki = SubjectPublicKeyInfoOwned::from_der(public_key).map_err(malformed("subject public key"))?;
    SigAlg::of_key(&spki)?;
    let profile = Profile { kind, subject, issuer: Some(issuer.tbs_certificate().subject().clone()) };
    let builder = CertificateBuilder::new(profile, random_serial()?, validity, spki).map_err(builder_error)?;
    sign_with(builder, signer)
}

/// A PKCS#10 request (DER) for `subject`, signed by the key it asks to certify (an SM2 key
/// signs with whatever identifier `signer` uses; Joule accepts either).
pub fn request(signer: &dyn CaSigner, subject: &str) -> Result<Vec<u8>, PkiError> {
    use x509_cert::request::{CertReqInfo, Version};
    let key = BuilderKey::of(signer)?;
    let info = CertReqInfo {
        version: Version::V1,
        subject: name(subject)?,
        public_key: SubjectPublicKeyInfoOwned::from_der(signer.public_key()).map_err(malformed("public key"))?,
        attributes: Default::default(),
    };
    let signature = signer.sign(&info.to_der().map_err(malformed("request"))?)?;
    let req = CertReq {
        info,
        algorithm: AlgorithmIdentifierOwned { oid: key.alg.oid(), parameters: None },
        signature: BitString::from_bytes(&signature).map_err(malformed("signature"))?,
    };
    req.to_der().map_err(malformed("request"))
}

/// A certification request whose signature verified: the subject it asks for and its key.
#[derive(Debug, Clone)]
pub struct Request {
    pub subject: Name,
    /// SubjectPublicKeyInfo, DER.
    pub public_key: Vec<u8>,
}

impl Request {
    /// A PKCS#10 request (PEM or DER) whose signature, by the key it carries, verifies.
    pub fn parse(bytes: &[u8], check: &dyn SignatureCheck) -> Result<Request, PkiError> {
        let req = match std::str::from_utf8(bytes).ok().filter(|s| s.trim_start().starts_with("-----BEGIN")) {
            Some(pem) => CertReq::from_pem(pem.trim()).map_err(malformed("certification request (PEM)"))?,
            None => CertReq::from_der(bytes).map_err(malformed("certification request"))?,
        };
        let public_key = req.info.public_key.to_der().map_err(malformed("request public key"))?;
        let alg = SigAlg::of_signature(&req.algorithm)?;
        if SigAlg::of_key(&req.info.public_key)? != alg {
            return Err(PkiError::Rejected("the request's signature algorithm does not fit its key".into()));
        }
        let body = req.info.to_der().map_err(malformed("certification request info"))?;
        let sig = req.signature.as_bytes().ok_or_else(|| PkiError::Malformed { what: "request signature", reason: "unused bits".into() })?;
        if !verifies(check, alg, &public_key, &body, sig)? {
            return Err(PkiError::BadSignature("the certification request".into()));
        }
        Ok(Request { subject: req.info.subject, public_key })
    }
}

/// A certificate revoked, for a CRL.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The serial number's bytes (as `SerialNumber::as_bytes`).
    pub serial: Vec<u8>,
    pub at: SystemTime,
}

/// The CRL of the CA `issuer` listing `revoked`, number `number` (monotonic per CA), valid
/// from `this_update` until `next_update`. Its authority key identifier is the issuer's
/// subject key identifier (so a verifier finds the CRL of an intermediate CA; `x509-cert`'s
/// builder copies the issuer's own authority key identifier, which names the root).
pub fn issue_crl(
    issuer: &Certificate,
    signer: &dyn CaSigner,
    number: u64,
    this_update: SystemTime,
    next_update: SystemTime,
    revoked: &[Revoked],
) -> Result<CertificateList, PkiError> {
    let issuer_tbs = issuer.tbs_certificate();
    if issuer_tbs.subject_public_key_info().to_der().map_err(malformed("issuer key"))? != signer.public_key() {
        return Err(PkiError::Rejected("the signing key is not the issuer certificate's".into()));
    }
    let key = BuilderKey::of(signer)?;
    let name = issuer_tbs.subject().clone();
    let ski = match key_identifier(issuer) {
        Some(id) => id,
        None => SubjectKeyIdentifier::try_from(issuer_tbs.subject_public_key_info().owned_to_ref()).map_err(malformed("key identifier"))?.0,
    };
    let number = CrlNumber(der::asn1::Uint::new(&number.to_be_bytes()).map_err(malformed("CRL number"))?);
    let aki = AuthorityKeyIdentifier { key_identifier: Some(ski), ..Default::default() };
    let extensions: Vec<Extension> =
        vec![(&number).to_extension(&name, &[]).map_err(malformed("CRL number"))?, (&aki).to_extension(&name, &[]).map_err(malformed("key identifier"))?];
    let entries = revoked
        .iter()
        .map(|r| {
            Ok(RevokedCert {
                serial_number: SerialNumber::new(&r.serial).map_err(malformed("serial number"))?,
                revocation_date: Time::try_from(r.at).map_err(malformed("revocation time"))?,
                crl_entry_extensions: None,
            })
        })
        .collect::<Result<Vec<_>, PkiError>>()?;
    let signature_algorithm = AlgorithmIdentifierOwned { oid: key.alg.oid(), parameters: None };
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: signature_algorithm.clone(),
        issuer: name,
        this_update: Time::try_from(this_update).map_err(malformed("CRL time"))?,
        next_update: Some(Time::try_from(next_update).map_err(malformed("CRL time"))?),
        revoked_certificates: if entries.is_empty() { None } else { Some(entries) },
        crl_extensions: Some(extensions),
    };
    let signature = signer.sign(&tbs.to_der().map_err(malformed("CRL"))?)?;
    Ok(CertificateList { tbs_cert_list: tbs, signature_algorithm, signature: BitString::from_bytes(&signature).map_err(malformed("signature"))? })
}

/// A certificate from PEM or DER.
pub fn certificate(bytes: &[u8]) -> Result<Certificate, PkiError> {
    match std::str::from_utf8(bytes).ok().filter(|s| s.trim_start().starts_with("-----BEGIN")) {
        Some(pem) => Certificate::from_pem(pem.trim()).map_err(malformed("certificate (PEM)")),
        None => Certificate::from_der(bytes).map_err(malformed("certificate")),
    }
}

/// A CRL from PEM or DER.
pub fn crl(bytes: &[u8]) -> Result<CertificateList, PkiError> {
    match std::str::from_utf8(bytes).ok().filter(|s| s.trim_start().starts_with("-----BEGIN")) {
        Some(pem) => CertificateList::from_pem(pem.trim()).map_err(malformed("CRL (PEM)")),
        None => CertificateList::from_der(bytes).map_err(malformed("CRL")),
    }
}

/// PEM of a certificate or CRL.
pub fn to_pem<T: EncodePem>(value: &T) -> Result<String, PkiError> {
    value.to_pem(der::pem::LineEnding::LF).map_err(malformed("PEM"))
}

/// DER of a certificate or CRL.
pub fn to_der<T: Encode>(value: &T) -> Result<Vec<u8>, PkiError> {
    value.to_der().map_err(malformed("DER"))
}

/// The roles an end entity's certificate carries: its subject's `OU` values.
pub fn roles(cert: &Certificate) -> Vec<String> {
    let mut out = vec![];
    for atv in cert.tbs_certificate().subject().iter() {
        if atv.oid == ORGANIZATIONAL_UNIT
            && let Ok(s) = atv
                .value
                .decode_as::<der::asn1::Utf8StringRef<'_>>()
                .map(|s| s.to_string())
                .or_else(|_| atv.value.decode_as::<der::asn1::PrintableStringRef<'_>>().map(|s| s.to_string()))
        {
            out.push(s);
        }
    }
    out
}

/// The serial number's bytes.
pub fn serial(cert: &Certificate) -> Vec<u8> {
    cert.tbs_certificate().serial_number().as_bytes().to_vec()
}

fn check_signature(
    what: &str,
    alg: &AlgorithmIdentifierOwned,
    body: &[u8],
    signature: &BitString,
    issuer_key: &[u8],
    check: &dyn SignatureCheck,
) -> Result<(), PkiError> {
    let alg = SigAlg::of_signature(alg)?;
    let sig = signature.as_bytes().ok_or_else(|| PkiError::Malformed { what: "signature", reason: "unused bits".into() })?;
    if verifies(check, alg, issuer_key, body, sig)? { Ok(()) } else { Err(PkiError::BadSignature(what.into())) }
}

fn within(what: &str, validity: &Validity, at: SystemTime) -> Result<(), PkiError> {
    if at < validity.not_before.to_system_time() {
        return Err(PkiError::Rejected(format!("{what} is not valid before {}", validity.not_before)));
    }
    if at > validity.not_after.to_system_time() {
        return Err(PkiError::Rejected(format!("{what} expired at {}", validity.not_after)));
    }
    Ok(())
}

fn basic_constraints(cert: &Certificate) -> Result<Option<BasicConstraints>, PkiError> {
    Ok(cert.tbs_certificate().get_extension::<BasicConstraints>().map_err(malformed("basic constraints"))?.map(|(_, bc)| bc))
}

/// Check that `leaf` chains through `intermediates` (nearest first) to the trusted `root`
/// at time `at`: names chain, every signature verifies, every certificate is within its
/// validity, each issuer is a CA whose path length allows it, and no certificate is listed
/// in its issuer's CRL among `crls` (a CRL is used only when its own signature verifies
/// and it is current at `at`).
pub fn verify_chain(
    leaf: &Certificate,
    intermediates: &[Certificate],
    root: &Certificate,
    at: SystemTime,
    crls: &[CertificateList],
    check: &dyn SignatureCheck,
) -> Result<(), PkiError> {
    let root_tbs = root.tbs_certificate();
    let root_body = root_tbs.to_der().map_err(malformed("root"))?;
    let root_key = root_tbs.subject_public_key_info().to_der().map_err(malformed("root key"))?;
    check_signature("the root certificate", root.signature_algorithm(), &root_body, root.signature(), &root_key, check)?;
    within("the root certificate", root_tbs.validity(), at)?;
    let mut chain: Vec<&Certificate> = vec![leaf];
    chain.extend(intermediates.iter());
    chain.push(root);
    for (depth, pair) in chain.windows(2).enumerate() {
        let (cert, issuer) = (pair[0], pair[1]);
        let what = if depth == 0 { "the certificate".to_string() } else { format!("intermediate {depth}") };
        let tbs = cert.tbs_certificate();
        if tbs.issuer() != issuer.tbs_certificate().subject() {
            return Err(PkiError::Rejected(format!("{what} is issued by {}, not by {}", tbs.issuer(), issuer.tbs_certificate().subject())));
        }
        let issuer_key = issuer.tbs_certificate().subject_public_key_info().to_der().map_err(malformed("issuer key"))?;
        check_signature(&what, cert.signature_algorithm(), &tbs.to_der().map_err(malformed("certificate"))?, cert.signature(), &issuer_key, check)?;
        within(&what, tbs.validity(), at)?;
        match basic_constraints(issuer)? {
            Some(bc) if bc.ca => {
                // Path length: how many CAs may follow the issuer below it.
                if let Some(max) = bc.path_len_constraint
                    && depth > usize::from(max)
                {
                    return Err(PkiError::Rejected(format!("{} may issue CAs {max} deep, and the chain is deeper", issuer.tbs_certificate().subject())));
                }
            }
            _ => return Err(PkiError::Rejected(format!("{} is not a CA", issuer.tbs_certificate().subject()))),
        }
        for list in crls.iter().filter(|c| c.tbs_cert_list.issuer == *issuer.tbs_certificate().subject()) {
            let body = list.tbs_cert_list.to_der().map_err(malformed("CRL"))?;
            if check_signature("the CRL", &list.signature_algorithm, &body, &list.signature, &issuer_key, check).is_err() {
                continue;
            }
            if list.tbs_cert_list.this_update.to_system_time() > at {
                continue;
            }
            if list
                .tbs_cert_list
                .revoked_certificates
                .iter()
                .flatten()
                .any(|r| r.serial_number == *tbs.serial_number() && r.revocation_date.to_system_time() <= at)
            {
                return Err(PkiError::Rejected(format!("{what} (serial {}) is revoked", tbs.serial_number())));
            }
        }
    }
    Ok(())
}

/// What a chain records of a certificate, read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The subject's key, SubjectPublicKeyInfo DER.
    pub public_key: Vec<u8>,
    pub serial: Vec<u8>,
    /// Subject and issuer, RFC 4514.
    pub subject: String,
    pub issuer: String,
    pub roles: Vec<String>,
    /// The validity, Unix milliseconds (before 1970: 0).
    pub not_before_ms: u64,
    pub not_after_ms: u64,
    /// Whether it is a CA's (basic constraints `cA`).
    pub ca: bool,
    /// The key's point in compressed SEC1 form (33 bytes), as a node's network key is
    /// written; `None` for a key that is not an EC point of 32-byte coordinates.
    pub compressed_point: Option<Vec<u8>>,
}

/// The compressed SEC1 form of an EC point given compressed or uncompressed (the parity
/// of y picks the prefix; no curve arithmetic).
pub fn compress_point(point: &[u8]) -> Option<Vec<u8>> {
    match point {
        [0x02 | 0x03, rest @ ..] if rest.len() == 32 => Some(point.to_vec()),
        [0x04, rest @ ..] if rest.len() == 64 => {
            let (x, y) = rest.split_at(32);
            let odd = y.last().is_some_and(|b| b & 1 == 1);
            Some([&[if odd { 0x03 } else { 0x02 }][..], x].concat())
        }
        _ => None,
    }
}

/// The SubjectPublicKeyInfo (DER) of an EC point (compressed or not) on `alg`'s curve: how
/// a node's network key is certified.
pub fn ec_public_key(alg: SigAlg, point: &[u8]) -> Result<Vec<u8>, PkiError> {
    if compress_point(point).is_none() {
        return Err(PkiError::Malformed { what: "EC point", reason: format!("{} bytes, not a compressed or uncompressed point", point.len()) });
    }
    let curve = match alg {
        SigAlg::Sm2Sm3 => SM2_CURVE,
        SigAlg::EcdsaP256Sha256 => P256_CURVE,
    };
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned { oid: EC_PUBLIC_KEY, parameters: Some(der::Any::from(&curve)) },
        subject_public_key: BitString::from_bytes(point).map_err(malformed("EC point"))?,
    };
    spki.to_der().map_err(malformed("public key"))
}

/// Unix milliseconds of a certificate or CRL time.
pub fn unix_ms(t: &Time) -> u64 {
    t.to_system_time().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A time as Unix milliseconds.
pub fn at_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// The facts of `cert`.
pub fn facts(cert: &Certificate) -> Result<Facts, PkiError> {
    let tbs = cert.tbs_certificate();
    Ok(Facts {
        public_key: tbs.subject_public_key_info().to_der().map_err(malformed("subject public key"))?,
        serial: serial(cert),
        subject: tbs.subject().to_string(),
        issuer: tbs.issuer().to_string(),
        roles: roles(cert),
        not_before_ms: unix_ms(&tbs.validity().not_before),
        not_after_ms: unix_ms(&tbs.validity().not_after),
        ca: basic_constraints(cert)?.is_some_and(|bc| bc.ca),
        compressed_point: tbs.subject_public_key_info().subject_public_key.as_bytes().and_then(compress_point),
    })
}

/// Check that `list` is `issuer`'s CRL: the issuer's name and a signature by its key.
pub fn verify_crl(list: &CertificateList, issuer: &Certificate, check: &dyn SignatureCheck) -> Result<(), PkiError> {
    let issuer_tbs = issuer.tbs_certificate();
    if list.tbs_cert_list.issuer != *issuer_tbs.subject() {
        return Err(PkiError::Rejected(format!("the CRL is issued by {}, not by {}", list.tbs_cert_list.issuer, issuer_tbs.subject())));
    }
    let key = issuer_tbs.subject_public_key_info().to_der().map_err(malformed("issuer key"))?;
    let body = list.tbs_cert_list.to_der().map_err(malformed("CRL"))?;
    check_signature("the CRL", &list.signature_algorithm, &body, &list.signature, &key, check)
}

/// A CRL's number (its `cRLNumber` extension, big-endian bytes without leading zeros).
pub fn crl_number(list: &CertificateList) -> Result<Option<Vec<u8>>, PkiError> {
    for ext in list.tbs_cert_list.crl_extensions.iter().flatten() {
        if ext.extn_id == const_oid::db::rfc5280::ID_CE_CRL_NUMBER {
            let n = CrlNumber::from_der(ext.extn_value.as_bytes()).map_err(malformed("CRL number"))?;
            return Ok(Some(n.0.as_bytes().iter().skip_while(|b| **b == 0).copied().collect()));
        }
    }
    Ok(None)
}

/// Whether `list` names the serial number `serial` (bytes as in the certificate).
pub fn crl_lists(list: &CertificateList, serial: &[u8]) -> bool {
    list.tbs_cert_list.revoked_certificates.iter().flatten().any(|r| r.serial_number.as_bytes() == serial)
}

/// The key identifier a certificate names itself by (its subject key identifier).
pub fn key_identifier(cert: &Certificate) -> Option<OctetString> {
    cert.tbs_certificate().get_extension::<SubjectKeyIdentifier>().ok().flatten().map(|(_, ski)| ski.0)
}

#[cfg(test)]
mod tests;
