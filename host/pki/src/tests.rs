//! The CA's certificates, requests and CRLs with native P-256 keys (the node's SM2 and
//! P-256 plugins, and OpenSSL both ways, are in `tests/all/pki.rs`).

use super::*;
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

struct Key {
    sk: SigningKey,
    spki: Vec<u8>,
}

impl Key {
    fn new(seed: u8) -> Key {
        let mut bytes = [seed; 32];
        bytes[0] = 1;
        let sk = SigningKey::from_slice(&bytes).expect("a scalar");
        let spki = sk.verifying_key().to_public_key_der().expect("spki").as_bytes().to_vec();
        Key { sk, spki }
    }
}

impl CaSigner for Key {
    fn public_key(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let sig: DerSignature = signature::Signer::sign(&self.sk, message);
        Ok(sig.as_bytes().to_vec())
    }
}

struct Native;

impl SignatureCheck for Native {
    fn verify(&self, alg: SigAlg, public_key: &[u8], message: &[u8], signature: &[u8], _: Option<&[u8]>) -> Result<bool, PkiError> {
        assert_eq!(alg, SigAlg::EcdsaP256Sha256);
        let vk = VerifyingKey::from_public_key_der(public_key).map_err(|e| PkiError::Unsupported(e.to_string()))?;
        let Ok(sig) = DerSignature::from_bytes(signature) else { return Ok(false) };
        Ok(signature::Verifier::verify(&vk, message, &sig).is_ok())
    }
}

fn year() -> Validity {
    validity(SystemTime::now() - Duration::from_secs(60), Duration::from_secs(365 * 86_400)).expect("validity")
}

/// A signed PKCS#10 request for `key`'s public key.
fn request(key: &Key, subject: &str) -> Vec<u8> {
    use x509_cert::request::{CertReqInfo, Version};
    let info = CertReqInfo {
        version: Version::V1,
        subject: name(subject).expect("name"),
        public_key: SubjectPublicKeyInfoOwned::from_der(&key.spki).expect("spki"),
        attributes: Default::default(),
    };
    let body = info.to_der().expect("der");
    let sig = key.sign(&body).expect("sign");
    let req = CertReq {
        info,
        algorithm: AlgorithmIdentifierOwned { oid: ECDSA_WITH_SHA256, parameters: None },
        signature: BitString::from_bytes(&sig).expect("bits"),
    };
    req.to_der().expect("der")
}

struct Pki {
    root_key: Key,
    root: Certificate,
    org_key: Key,
    org: Certificate,
    leaf: Certificate,
}

fn pki() -> Pki {
    let (root_key, org_key, leaf_key) = (Key::new(1), Key::new(2), Key::new(3));
    let root = issue_root(&root_key, "CN=Grid Consortium Root,O=Grid Consortium,C=CN", year()).expect("root");
    let org = issue_organisation_ca(&root, &root_key, "CN=Grid Co CA,O=Grid Co,C=CN", &org_key.spki, year()).expect("organisation CA");
    let req = Request::parse(&request(&leaf_key, "CN=meter-1,O=Grid Co,C=CN"), &Native).expect("a valid request");
    let leaf = issue_end_entity(&org, &org_key, &req, &["client"], year()).expect("end entity");
    Pki { root_key, root, org_key, org, leaf }
}

#[test]
fn a_root_organisation_and_end_entity_chain_verifies_and_carries_the_roles() {
    let p = pki();
    verify_chain(&p.leaf, std::slice::from_ref(&p.org), &p.root, SystemTime::now(), &[], &Native).expect("the chain holds");
    assert_eq!(roles(&p.leaf), vec!["client"]);
    assert_eq!(p.leaf.tbs_certificate().issuer(), p.org.tbs_certificate().subject());
    // PEM and DER round trips.
    let pem = to_pem(&p.leaf).expect("pem");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(certificate(pem.as_bytes()).expect("parse pem"), p.leaf);
    assert_eq!(certificate(&to_der(&p.leaf).expect("der")).expect("parse der"), p.leaf);
    // Roles are names: nothing else goes in.
    let req = Request::parse(&request(&Key::new(4), "CN=x"), &Native).expect("request");
    assert!(issue_end_entity(&p.org, &p.org_key, &req, &["a,b"], year()).is_err());
}

#[test]
fn every_link_of_the_chain_matters() {
    let p = pki();
    let now = SystemTime::now();
    // Another consortium's root does not anchor it.
    let other_key = Key::new(9);
    let other = issue_root(&other_key, "CN=Other Root", year()).expect("root");
    assert!(verify_chain(&p.leaf, std::slice::from_ref(&p.org), &other, now, &[], &Native).is_err());
    // Without the organisation's CA there is no path.
    assert!(verify_chain(&p.leaf, &[], &p.root, now, &[], &Native).is_err());
    // A certificate whose signature was tampered with fails.
    let mut der = to_der(&p.leaf).expect("der");
    let n = der.len();
    der[n - 3] ^= 1;
    let forged = Certificate::from_der(&der).expect("still DER");
    assert!(matches!(verify_chain(&forged, std::slice::from_ref(&p.org), &p.root, now, &[], &Native), Err(PkiError::BadSignature(_))));
    // Outside its validity it fails.
    let later = now + Duration::from_secs(2 * 365 * 86_400);
    assert!(verify_chain(&p.leaf, std::slice::from_ref(&p.org), &p.root, later, &[], &Native).unwrap_err().to_string().contains("expired"));
    // A signing key that is not the issuer's is refused before anything is signed.
    let req = Request::parse(&request(&Key::new(5), "CN=meter-2"), &Native).expect("request");
    assert!(issue_end_entity(&p.org, &p.root_key, &req, &[], year()).is_err());
}

#[test]
fn end_entities_issue_nothing_and_an_organisation_ca_issues_no_ca() {
    let p = pki();
    let now = SystemTime::now();
    // The end entity's key signs a "certificate": it is not a CA.
    let leaf_key = Key::new(3);
    let req = Request::parse(&request(&Key::new(6), "CN=rogue"), &Native).expect("request");
    let rogue = issue_end_entity(&p.leaf, &leaf_key, &req, &[], year()).expect("signed anyway");
    let chain = [p.leaf.clone(), p.org.clone()];
    assert!(verify_chain(&rogue, &chain, &p.root, now, &[], &Native).unwrap_err().to_string().contains("not a CA"));
    // An organisation CA's CA (path length 0) does not chain.
    let sub_key = Key::new(7);
    let sub = issue_organisation_ca(&p.org, &p.org_key, "CN=Sub CA", &sub_key.spki, year()).expect("signed anyway");
    let below = issue_end_entity(&sub, &sub_key, &req, &[], year()).expect("end entity");
    let chain = [sub, p.org.clone()];
    assert!(verify_chain(&below, &chain, &p.root, now, &[], &Native).unwrap_err().to_string().contains("deep"));
}

#[test]
fn a_certificate_listed_in_its_issuers_current_crl_is_revoked_and_a_forged_crl_is_ignored() {
    let p = pki();
    let now = SystemTime::now();
    let revoked = Revoked { serial: serial(&p.leaf), at: now - Duration::from_secs(1) };
    let list = issue_crl(&p.org, &p.org_key, 1, now - Duration::from_secs(10), now + Duration::from_secs(3600), std::slice::from_ref(&revoked)).expect("crl");
    let pem = to_pem(&list).expect("pem");
    assert!(pem.starts_with("-----BEGIN X509 CRL-----"));
    let parsed = crl(pem.as_bytes()).expect("parse");
    let err = verify_chain(&p.leaf, std::slice::from_ref(&p.org), &p.root, now, &[parsed], &Native).unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    // An empty CRL revokes nothing.
    let empty = issue_crl(&p.org, &p.org_key, 2, now - Duration::from_secs(10), now + Duration::from_secs(3600), &[]).expect("crl");
    verify_chain(&p.leaf, std::slice::from_ref(&p.org), &p.root, now, &[empty], &Native).expect("not revoked");
    // A CRL under the organisation's name signed by another key is not believed.
    let mut forged = issue_crl(&p.org, &p.org_key, 3, now - Duration::from_secs(10), now + Duration::from_secs(3600), &[revoked]).expect("crl");
    let other = Key::new(8);
    let body = forged.tbs_cert_list.to_der().expect("der");
    forged.signature = BitString::from_bytes(&other.sign(&body).expect("sign")).expect("bits");
    verify_chain(&p.leaf, std::slice::from_ref(&p.org), &p.root, now, &[forged], &Native).expect("a forged CRL revokes nothing");
}

#[test]
fn a_request_must_carry_its_keys_own_signature() {
    let key = Key::new(3);
    let mut der = request(&key, "CN=meter-1");
    let n = der.len();
    der[n - 2] ^= 1;
    assert!(matches!(Request::parse(&der, &Native), Err(PkiError::BadSignature(_)) | Err(PkiError::Malformed { .. })));
    assert!(Request::parse(b"not a request", &Native).is_err());
    let pem = der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, &request(&key, "CN=meter-1")).expect("pem");
    assert_eq!(Request::parse(pem.as_bytes(), &Native).expect("PEM request").subject.to_string(), "CN=meter-1");
}
