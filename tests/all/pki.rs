//! The consortium CA (`joule-pki`) on the crypto plugins, against OpenSSL both ways, in
//! both suites: OpenSSL accepts the chains Joule issues and rejects a certificate once
//! Joule's CRL lists it; Joule issues from requests OpenSSL made and verifies chains
//! OpenSSL made.

use crate::support::{crypto, tempdir, tool};
use joule_crypto::{CryptoService, KeyPair};
use joule_pki::{CaSigner, PkiError, Request, Revoked, SigAlg, SignatureCheck, Sm2Id};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

/// A CA key held by the test, signing through the plugins.
struct PluginKey {
    crypto: CryptoService,
    alg: SigAlg,
    pair: KeyPair,
}

impl PluginKey {
    fn new(crypto: &CryptoService, alg: SigAlg) -> PluginKey {
        PluginKey { crypto: crypto.clone(), alg, pair: crypto.generate_key(alg.plugin_algorithm()).expect("a key from the plugins") }
    }
}

impl CaSigner for PluginKey {
    fn public_key(&self) -> &[u8] {
        &self.pair.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let id = if self.alg == SigAlg::Sm2Sm3 { Sm2Id::default().plugin_id() } else { None };
        self.crypto.sign(self.alg.plugin_algorithm(), &self.pair.private_key, message, id).map_err(|e| PkiError::Signer(e.to_string()))
    }
}

struct PluginCheck(CryptoService);

impl SignatureCheck for PluginCheck {
    fn verify(&self, alg: SigAlg, public_key: &[u8], message: &[u8], signature: &[u8], sm2_id: Option<&[u8]>) -> Result<bool, PkiError> {
        self.0.verify(alg.plugin_algorithm(), public_key, message, signature, sm2_id).map_err(|e| PkiError::Signer(e.to_string()))
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `openssl ARGS`: exit status and everything it printed.
fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().expect("run openssl");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn year() -> joule_pki::x509::time::Validity {
    joule_pki::validity(SystemTime::now() - Duration::from_secs(60), Duration::from_secs(365 * 86_400)).expect("validity")
}

/// The EC key generation options of a suite's curve for `openssl genpkey`.
fn curve(alg: SigAlg) -> &'static str {
    match alg {
        SigAlg::Sm2Sm3 => "ec_paramgen_curve:SM2",
        SigAlg::EcdsaP256Sha256 => "ec_paramgen_curve:P-256",
    }
}

fn digest(alg: SigAlg) -> &'static str {
    match alg {
        SigAlg::Sm2Sm3 => "-sm3",
        SigAlg::EcdsaP256Sha256 => "-sha256",
    }
}

#[test]
fn openssl_accepts_the_chains_joule_issues_from_its_requests_and_rejects_what_joule_revoked() {
    let crypto = crypto();
    let check = PluginCheck(crypto.clone());
    for alg in [SigAlg::Sm2Sm3, SigAlg::EcdsaP256Sha256] {
        let d = tempdir();
        let p = |n: &str| d.path().join(n);
        let (root_key, org_key) = (PluginKey::new(&crypto, alg), PluginKey::new(&crypto, alg));
        let root = joule_pki::issue_root(&root_key, "CN=Grid Consortium Root,O=Grid Consortium,C=CN", year()).expect("root");
        let org = joule_pki::issue_organisation_ca(&root, &root_key, "CN=Grid Co CA,O=Grid Co,C=CN", &org_key.pair.public_key, year()).expect("org CA");
        // The end entity's key and request are OpenSSL's.
        tool("openssl", &["genpkey", "-algorithm", "EC", "-pkeyopt", curve(alg), "-out", s(&p("leaf.key"))]);
        tool("openssl", &["req", "-new", "-key", s(&p("leaf.key")), digest(alg), "-subj", "/C=CN/O=Grid Co/CN=meter-1", "-out", s(&p("leaf.csr"))]);
        let req = Request::parse(&std::fs::read(p("leaf.csr")).expect("csr"), &check).expect("Joule accepts OpenSSL's request");
        assert_eq!(req.subject.to_string(), "CN=meter-1,O=Grid Co,C=CN");
        let leaf = joule_pki::issue_end_entity(&org, &org_key, &req, &["client"], year()).expect("leaf");
        for (name, cert) in [("root.pem", &root), ("org.pem", &org), ("leaf.pem", &leaf)] {
            std::fs::write(p(name), joule_pki::to_pem(cert).expect("pem")).expect("write");
        }
        let verify = |crl: Option<&Path>| {
            let (root, org, leaf) = (p("root.pem"), p("org.pem"), p("leaf.pem"));
            let mut args = vec!["verify", "-CAfile", s(&root), "-untrusted", s(&org)];
            if let Some(c) = crl {
                args.extend(["-crl_check", "-CRLfile", s(c)]);
            }
            args.push(s(&leaf));
            openssl(&args)
        };
        let (ok, out) = verify(None);
        assert!(ok && out.contains("leaf.pem: OK"), "{alg:?}: openssl verify: {out}");
        let (ok, out) = openssl(&["x509", "-in", s(&p("leaf.pem")), "-noout", "-subject"]);
        assert!(ok && out.contains("OU = client"), "{out}");

        // The organisation's CRL: empty, then listing the leaf.
        let now = SystemTime::now();
        let empty = joule_pki::issue_crl(&org, &org_key, 1, now - Duration::from_secs(30), now + Duration::from_secs(3600), &[]).expect("crl");
        std::fs::write(p("crl.pem"), joule_pki::to_pem(&empty).expect("pem")).expect("write");
        let (ok, out) = verify(Some(&p("crl.pem")));
        assert!(ok, "{alg:?}: an empty CRL: {out}");
        let (ok, out) = openssl(&["crl", "-in", s(&p("crl.pem")), "-CAfile", s(&p("org.pem")), "-noout"]);
        assert!(ok && out.contains("verify OK"), "{alg:?}: openssl crl: {out}");
        let revoked = Revoked { serial: joule_pki::serial(&leaf), at: now - Duration::from_secs(1) };
        let list = joule_pki::issue_crl(&org, &org_key, 2, now - Duration::from_secs(30), now + Duration::from_secs(3600), &[revoked]).expect("crl");
        std::fs::write(p("crl.pem"), joule_pki::to_pem(&list).expect("pem")).expect("write");
        let (ok, out) = verify(Some(&p("crl.pem")));
        assert!(!ok && out.contains("revoked"), "{alg:?}: a revoked leaf: {out}");
        // Joule reaches the same verdicts.
        joule_pki::verify_chain(&leaf, std::slice::from_ref(&org), &root, now, &[empty], &check).expect("valid");
        assert!(joule_pki::verify_chain(&leaf, std::slice::from_ref(&org), &root, now, &[list], &check).is_err());
    }
}

#[test]
fn joule_verifies_the_chains_openssl_makes_and_refuses_them_under_another_root() {
    let crypto = crypto();
    let check = PluginCheck(crypto.clone());
    for alg in [SigAlg::Sm2Sm3, SigAlg::EcdsaP256Sha256] {
        let d = tempdir();
        let p = |n: &str| d.path().join(n);
        for k in ["root", "org", "leaf"] {
            tool("openssl", &["genpkey", "-algorithm", "EC", "-pkeyopt", curve(alg), "-out", s(&p(&format!("{k}.key")))]);
        }
        std::fs::write(p("ca.ext"), "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n").expect("write");
        std::fs::write(p("leaf.ext"), "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n").expect("write");
        tool(
            "openssl",
            &["req", "-x509", "-new", "-key", s(&p("root.key")), digest(alg), "-days", "30", "-subj", "/CN=OpenSSL Root", "-out", s(&p("root.pem"))],
        );
        tool("openssl", &["req", "-new", "-key", s(&p("org.key")), digest(alg), "-subj", "/CN=OpenSSL Org CA", "-out", s(&p("org.csr"))]);
        tool(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                s(&p("org.csr")),
                "-CA",
                s(&p("root.pem")),
                "-CAkey",
                s(&p("root.key")),
                digest(alg),
                "-days",
                "30",
                "-extfile",
                s(&p("ca.ext")),
                "-out",
                s(&p("org.pem")),
            ],
        );
        tool("openssl", &["req", "-new", "-key", s(&p("leaf.key")), digest(alg), "-subj", "/CN=meter-9", "-out", s(&p("leaf.csr"))]);
        tool(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                s(&p("leaf.csr")),
                "-CA",
                s(&p("org.pem")),
                "-CAkey",
                s(&p("org.key")),
                digest(alg),
                "-days",
                "30",
                "-extfile",
                s(&p("leaf.ext")),
                "-out",
                s(&p("leaf.pem")),
            ],
        );
        let read = |n: &str| joule_pki::certificate(&std::fs::read(p(n)).expect("read")).expect("Joule parses OpenSSL's certificate");
        let (root, org, leaf) = (read("root.pem"), read("org.pem"), read("leaf.pem"));
        joule_pki::verify_chain(&leaf, std::slice::from_ref(&org), &root, SystemTime::now(), &[], &check).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        let other_key = PluginKey::new(&crypto, alg);
        let other = joule_pki::issue_root(&other_key, "CN=OpenSSL Root", year()).expect("root");
        assert!(
            joule_pki::verify_chain(&leaf, std::slice::from_ref(&org), &other, SystemTime::now(), &[], &check).is_err(),
            "a root of the same name but another key"
        );
    }
}

/// A transaction of `payload` from `kp` on channel `grid`, in the gm suite.
fn gm_tx(gm: &joule_crypto::SuiteCrypto, kp: &KeyPair, nonce: u64, payload: joule_primitives::Payload) -> joule_primitives::Transaction {
    use joule_primitives::ChainCrypto;
    let body = joule_primitives::UnsignedTransaction {
        channel: joule_primitives::ChannelId::new("grid").expect("channel"),
        sender: kp.public_key.clone(),
        nonce,
        gas_limit: 100_000,
        sig_alg: "sm2".into(),
        payload,
    };
    let sig = gm.sign(&kp.private_key, &body.signing_bytes()).expect("sign");
    body.sign_with(sig)
}

#[test]
fn a_gm_chain_with_certificates_admits_only_certified_senders_and_refuses_a_revoked_one_from_the_next_block() {
    use crate::support::{NodeProcess, data_tx, init_node, suite};
    use joule_primitives::{Hasher, IdentityAction, Payload};
    let crypto = crypto();
    let gm = suite("gm");
    let d = tempdir();
    let p = |n: &str| d.path().join(n);
    let (root_key, org_key) = (PluginKey::new(&crypto, SigAlg::Sm2Sm3), PluginKey::new(&crypto, SigAlg::Sm2Sm3));
    let root = joule_pki::issue_root(&root_key, "CN=Energy Consortium Root,O=Energy Consortium", year()).expect("root");
    let org = joule_pki::issue_organisation_ca(&root, &root_key, "CN=Grid Co CA,O=Grid Co", &org_key.pair.public_key, year()).expect("org CA");
    let (admin, user) = (crypto.generate_key("sm2").expect("key"), crypto.generate_key("sm2").expect("key"));
    let leaf = |kp: &KeyPair, subject: &str, role: &str| {
        let request = Request { subject: joule_pki::name(subject).expect("name"), public_key: kp.public_key.clone() };
        joule_pki::issue_end_entity(&org, &org_key, &request, &[role], year()).expect("leaf")
    };
    let admin_cert = leaf(&admin, "CN=grid-admin,O=Grid Co", "admin");
    let user_cert = leaf(&user, "CN=meter-reader,O=Grid Co", "client");
    let pem = |c: &joule_pki::Certificate| joule_pki::to_pem(c).expect("pem");

    // The genesis: the root, one organisation and its admin, in network.toml.
    let node_dir = p("node");
    init_node(&node_dir, &["--block-interval-ms", "100", "--channel", "grid", "--crypto-suite", "gm"]);
    let mut network = std::fs::read_to_string(node_dir.join("network.toml")).expect("network.toml");
    network.push_str(&format!(
        "\n[channel.identity]\nroot-certificate = \"\"\"\n{}\"\"\"\n\n[[channel.identity.organisation]]\nname = \"gridco\"\nca-certificate = \"\"\"\n{}\"\"\"\ncertificates = [\"\"\"\n{}\"\"\"]\n",
        pem(&root),
        pem(&org),
        pem(&admin_cert)
    ));
    std::fs::write(node_dir.join("network.toml"), network).expect("write");
    let node = NodeProcess::start(&node_dir, &[]);
    let (status, v) = node.get("/v1/pki?channel=grid");
    assert_eq!((status, v["certificates"].as_bool(), v["organisations"][0]["name"].as_str()), (200, Some(true), Some("gridco")), "{v}");

    // Nobody without a certificate sends.
    let (status, v) = node.submit(&data_tx(&gm, &user, "grid", 0, "meter/1", b"1 kWh"));
    assert_eq!((status, v["code"].as_str()), (403, Some("not_permitted")), "{v}");
    assert!(v["error"].as_str().unwrap_or("").contains("no certificate"), "{v}");

    // The admin records the user's certificate; then the user sends.
    let committed = |tx: &joule_primitives::Transaction| {
        let (status, v) = node.submit(tx);
        assert_eq!(status, 202, "{v}");
        let r = node.wait_tx(v["hash"].as_str().expect("hash"));
        assert_eq!(r["receipt"]["status"], "success", "{r}");
        r
    };
    committed(&gm_tx(&gm, &admin, 0, Payload::Identity(IdentityAction::Register { certificate: joule_pki::to_der(&user_cert).expect("der") })));
    let account = gm.hash(&user.public_key).expect("account");
    let (status, v) = node.get(&format!("/v1/pki/certificates/{account}?channel=grid"));
    assert_eq!((status, v["organisation"].as_str(), v["roles"][0].as_str()), (200, Some("gridco"), Some("client")), "{v}");
    committed(&data_tx(&gm, &user, "grid", 0, "meter/1", b"1 kWh"));

    // The organisation revokes it with its CRL; from the next block the user is refused.
    let now = SystemTime::now();
    let revoked = Revoked { serial: joule_pki::serial(&user_cert), at: now - Duration::from_secs(1) };
    let list = joule_pki::issue_crl(&org, &org_key, 1, now - Duration::from_secs(30), now + Duration::from_secs(86_400), &[revoked]).expect("crl");
    let r = committed(&gm_tx(
        &gm,
        &admin,
        1,
        Payload::Identity(IdentityAction::Revoke {
            organisation: "gridco".into(),
            serial: joule_pki::serial(&user_cert),
            crl: joule_pki::to_der(&list).expect("der"),
        }),
    ));
    let (status, v) = node.submit(&data_tx(&gm, &user, "grid", 1, "meter/1", b"2 kWh"));
    assert_eq!((status, v["code"].as_str()), (403, Some("not_permitted")), "{v}");
    assert!(v["error"].as_str().unwrap_or("").contains(&format!("revoked in block {}", r["block_height"])), "{v} {r}");

    // Every node serves the CRL it recorded, which OpenSSL checks against the CA.
    std::fs::write(p("org.pem"), pem(&org)).expect("write");
    std::fs::write(p("user.pem"), pem(&user_cert)).expect("write");
    std::fs::write(p("root.pem"), pem(&root)).expect("write");
    std::fs::write(p("crl.pem"), node.get_bytes("/v1/pki/organisations/gridco/crl?channel=grid&format=pem")).expect("write");
    let (ok, out) = openssl(&["crl", "-in", s(&p("crl.pem")), "-CAfile", s(&p("org.pem")), "-noout"]);
    assert!(ok && out.contains("verify OK"), "{out}");
    let (ok, out) =
        openssl(&["verify", "-CAfile", s(&p("root.pem")), "-untrusted", s(&p("org.pem")), "-crl_check", "-CRLfile", s(&p("crl.pem")), s(&p("user.pem"))]);
    assert!(!ok && out.contains("revoked"), "{out}");
    let (status, v) = node.get("/v1/pki/organisations/nobody/crl?channel=grid");
    assert_eq!((status, v["code"].as_str()), (404, Some("not_found")), "{v}");
}

#[test]
fn openssl_accepts_the_requests_joule_makes_in_both_suites() {
    let crypto = crypto();
    for alg in [SigAlg::Sm2Sm3, SigAlg::EcdsaP256Sha256] {
        let d = tempdir();
        let pair = crypto.generate_key(alg.plugin_algorithm()).expect("key");
        let key = joule_node::ca::LocalKey { crypto: &crypto, algorithm: alg.plugin_algorithm(), pair: &pair };
        let der = joule_pki::request(&key, "CN=meter-3,O=Grid Co,C=CN").expect("request");
        let path = d.path().join("req.pem");
        std::fs::write(&path, joule_crypto::pem::encode("CERTIFICATE REQUEST", &der)).expect("write");
        let (ok, out) = openssl(&["req", "-verify", "-in", s(&path), "-noout", "-subject"]);
        assert!(ok && out.contains("verify OK") && out.contains("CN = meter-3"), "{alg:?}: openssl req -verify: {out}");
        // A flipped bit in the signed body is caught.
        let mut bad = der.clone();
        let at = bad.len() / 2;
        bad[at] ^= 1;
        std::fs::write(&path, joule_crypto::pem::encode("CERTIFICATE REQUEST", &bad)).expect("write");
        let (ok, out) = openssl(&["req", "-verify", "-in", s(&path), "-noout"]);
        assert!(!ok, "{alg:?}: a tampered request: {out}");
        assert!(Request::parse(&bad, &PluginCheck(crypto.clone())).is_err(), "{alg:?}: Joule refuses it too");
    }
}
