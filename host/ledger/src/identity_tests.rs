//! A chain with certificates (guide §6.1, §6.3.1), on a native P-256 suite with real
//! X.509: who may send, revocation from the block after, expiry and renewal.

use super::*;
use crate::pool::EvictionReason;
use crate::testkit::{Key, TestCrypto, TestEngine, data_tx, signed_tx};
use joule_pki::{CaSigner, PkiError, Request};
use joule_primitives::{Change, Governance, Hasher, IdentityAction, IdentitySpec, OrganisationSpec, ReceiptStatus};
use std::time::{Duration, SystemTime};

/// Signs as a CA with a test key.
struct Ca<'a>(&'a Key, &'a TestCrypto);

impl CaSigner for Ca<'_> {
    fn public_key(&self) -> &[u8] {
        &self.0.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.1.sign(&self.0.private, message).map_err(|e| PkiError::Signer(e.to_string()))
    }
}

fn now_ms() -> u64 {
    joule_support::now_ms()
}

/// From 2020 for `until` from now.
fn validity(until: Duration) -> joule_pki::x509::time::Validity {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_580_000_000);
    let end = SystemTime::now() + until;
    joule_pki::x509::time::Validity::new(joule_pki::x509::time::Time::try_from(start).unwrap(), joule_pki::x509::time::Time::try_from(end).unwrap())
}

const YEARS: Duration = Duration::from_secs(10 * 365 * 86_400);

struct Consortium {
    suite: Arc<TestCrypto>,
    root: joule_pki::Certificate,
    root_key: Key,
    org_ca: joule_pki::Certificate,
    org_key: Key,
    admin: Key,
    user: Key,
    producer: Chain,
    follower: Chain,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// A certificate of the organisation whose CA is `ca` (key `ca_key`) for `key`, valid from
/// 2020 for `until` from now.
fn issue(suite: &TestCrypto, ca: &joule_pki::Certificate, ca_key: &Key, key: &Key, subject: &str, roles: &[&str], until: Duration) -> Vec<u8> {
    let request = Request { subject: joule_pki::name(subject).unwrap(), public_key: key.public.clone() };
    let cert = joule_pki::issue_end_entity(ca, &Ca(ca_key, suite), &request, roles, validity(until)).unwrap();
    joule_pki::to_der(&cert).unwrap()
}

impl Consortium {
    /// One organisation, `gridco`, whose admin is the one validator; a producer and a
    /// follower.
    fn new() -> Consortium {
        let suite = TestCrypto::p256();
        let (root_key, org_key, admin, user) = (Key::p256(10), Key::p256(11), Key::p256(1), Key::p256(2));
        let root = joule_pki::issue_root(&Ca(&root_key, &suite), "CN=Energy Consortium Root,O=Energy Consortium", validity(YEARS)).unwrap();
        let org_ca = joule_pki::issue_organisation_ca(&root, &Ca(&root_key, &suite), "CN=Grid Co CA,O=Grid Co", &org_key.public, validity(YEARS)).unwrap();
        let admin_cert = issue(&suite, &org_ca, &org_key, &admin, "CN=grid-admin,O=Grid Co", &["admin"], YEARS);
        let mut spec = crate::testkit::spec(&[&admin]);
        spec.crypto_suite = suite.suite().clone();
        spec.identity = Some(IdentitySpec {
            root_certificate: joule_pki::to_der(&root).unwrap(),
            organisations: vec![OrganisationSpec {
                name: "gridco".into(),
                ca_certificate: joule_pki::to_der(&org_ca).unwrap(),
                certificates: vec![admin_cert],
            }],
        });
        let engines: Arc<dyn EngineSource> = Arc::new(Arc::new(TestEngine { suite: suite.clone() }));
        let signer = Arc::new(LocalSigner::new(Zeroizing::new(admin.private.clone()), admin.public.clone(), suite.clone()));
        let policy = BlockPolicy { interval_ms: 100, max_transactions: 100, max_bytes: 1 << 20, produce_empty_blocks: false };
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let producer = Chain::open(dirs.0.path(), &spec, policy.clone(), suite.clone(), engines.clone(), Some(signer)).unwrap();
        let follower = Chain::open(dirs.1.path(), &spec, policy, suite.clone(), engines, None).unwrap();
        Consortium { suite, root, root_key, org_ca, org_key, admin, user, producer, follower, _dirs: dirs }
    }

    fn certificate(&self, key: &Key, subject: &str, roles: &[&str], until: Duration) -> Vec<u8> {
        issue(&self.suite, &self.org_ca, &self.org_key, key, subject, roles, until)
    }

    fn admin_tx(&self, nonce: u64, action: IdentityAction) -> Transaction {
        signed_tx(&self.suite, &self.admin, nonce, Payload::Identity(action))
    }

    /// The producer makes a block at `at_ms`; the follower imports it.
    fn block(&self, at_ms: u64) -> Arc<CommittedBlock> {
        let b = self.producer.produce(at_ms).unwrap().expect("a block");
        self.follower.import(b.block.clone()).unwrap();
        b
    }

    fn account(&self, key: &Key) -> Hash32 {
        Hasher::hash(self.suite.as_ref(), &key.public).unwrap()
    }
}

fn refused(r: Result<Hash32, Rejection>) -> String {
    match r {
        Err(Rejection::NotPermitted(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn only_a_key_its_organisations_admin_certified_may_send() {
    let c = Consortium::new();
    let why = refused(c.producer.submit(data_tx(&c.suite, &c.user, 0, "meter/1", b"1 kWh")));
    assert!(why.contains("no certificate"), "{why}");

    // The user's certificate, recorded by the admin.
    let user_cert = c.certificate(&c.user, "CN=meter-reader,O=Grid Co", &["client"], YEARS);
    c.producer.submit(c.admin_tx(0, IdentityAction::Register { certificate: user_cert.clone() })).unwrap();
    let b1 = c.block(now_ms());
    assert_eq!(b1.receipts[0].status, ReceiptStatus::Success);
    assert_eq!(b1.receipts[0].events[0].topic, "certificate_registered");
    let rec = c.follower.certificate_of(&c.account(&c.user)).unwrap().expect("recorded on the follower too");
    assert_eq!((rec.organisation.as_str(), rec.roles.clone(), rec.registered_at), ("gridco", vec!["client".to_string()], 1));

    // Now it sends, on either node.
    c.follower.submit(data_tx(&c.suite, &c.user, 0, "meter/1", b"1 kWh")).unwrap();
    c.producer.submit(data_tx(&c.suite, &c.user, 0, "meter/1", b"1 kWh")).unwrap();
    assert_eq!(c.block(now_ms()).block.transactions.len(), 1);

    // Recording the same certificate again, a client recording one, a CA's certificate,
    // one from another consortium, garbage: each refused, nothing spent.
    let why = refused(c.producer.submit(c.admin_tx(1, IdentityAction::Register { certificate: user_cert.clone() })));
    assert!(why.contains("recorded serial"), "{why}");
    let other = Key::p256(3);
    let other_cert = c.certificate(&other, "CN=other,O=Grid Co", &["client"], YEARS);
    let why = refused(c.producer.submit(signed_tx(&c.suite, &c.user, 1, Payload::Identity(IdentityAction::Register { certificate: other_cert.clone() }))));
    assert!(why.contains("only an admin"), "{why}");
    let ca_cert = joule_pki::to_der(&c.org_ca).unwrap();
    let why = refused(c.producer.submit(c.admin_tx(1, IdentityAction::Register { certificate: ca_cert })));
    assert!(why.contains("CA"), "{why}");
    let foreign_root_key = Key::p256(20);
    let foreign_root = joule_pki::issue_root(&Ca(&foreign_root_key, &c.suite), "CN=Grid Co CA,O=Grid Co", validity(YEARS)).unwrap();
    let request = Request { subject: joule_pki::name("CN=intruder").unwrap(), public_key: other.public.clone() };
    let forged = joule_pki::issue_end_entity(&foreign_root, &Ca(&foreign_root_key, &c.suite), &request, &["admin"], validity(YEARS)).unwrap();
    let why = refused(c.producer.submit(c.admin_tx(1, IdentityAction::Register { certificate: joule_pki::to_der(&forged).unwrap() })));
    assert!(why.contains("signature"), "a certificate under the organisation's name but not its key: {why}");
    let why = refused(c.producer.submit(c.admin_tx(1, IdentityAction::Register { certificate: vec![0x30, 0x03, 1, 2, 3] })));
    assert!(why.contains("malformed"), "{why}");
    assert_eq!(c.producer.pool_len(), 0);
    // The other key is still nobody.
    assert!(c.producer.certificate_of(&c.account(&other)).unwrap().is_none());
}

#[test]
fn a_revocation_binds_every_node_from_the_block_after_it() {
    let c = Consortium::new();
    let user_cert = c.certificate(&c.user, "CN=meter-reader,O=Grid Co", &["client"], YEARS);
    let serial = joule_pki::facts(&joule_pki::certificate(&user_cert).unwrap()).unwrap().serial;
    c.producer.submit(c.admin_tx(0, IdentityAction::Register { certificate: user_cert })).unwrap();
    c.block(now_ms());
    c.producer.submit(data_tx(&c.suite, &c.user, 0, "meter/1", b"1 kWh")).unwrap();
    c.block(now_ms());

    // The organisation's CRL listing the serial, and its revocation on chain. One
    // transaction per block, so the user's next transaction waits behind the revocation.
    let crl = |number: u64| {
        let revoked = [joule_pki::Revoked { serial: serial.clone(), at: SystemTime::now() - Duration::from_secs(1) }];
        let list =
            joule_pki::issue_crl(&c.org_ca, &Ca(&c.org_key, &c.suite), number, SystemTime::now(), SystemTime::now() + Duration::from_secs(86_400), &revoked)
                .unwrap();
        joule_pki::to_der(&list).unwrap()
    };
    c.producer.set_policy(BlockPolicy { max_transactions: 1, ..c.producer.policy() });
    let first_crl = crl(1);
    c.producer.submit(c.admin_tx(1, IdentityAction::Revoke { organisation: "gridco".into(), serial: serial.clone(), crl: first_crl.clone() })).unwrap();
    let waiting = c.producer.submit(data_tx(&c.suite, &c.user, 1, "meter/1", b"2 kWh")).unwrap();
    let revoked_in = c.block(now_ms());
    assert_eq!(revoked_in.receipts[0].status, ReceiptStatus::Success);
    assert_eq!(revoked_in.receipts[0].events[0].topic, "certificate_revoked");

    // The waiting transaction leaves the pool instead of entering the next block.
    assert!(c.producer.produce(now_ms()).unwrap().is_none());
    match c.producer.pool_status(&waiting) {
        Some(crate::pool::PoolStatus::Evicted(e)) => assert!(matches!(&e.reason, EvictionReason::NotPermitted { why } if why.contains("revoked"))),
        other => panic!("expected an eviction, got {other:?}"),
    }
    // Neither node admits the user any more.
    for chain in [&c.producer, &c.follower] {
        let why = refused(chain.submit(data_tx(&c.suite, &c.user, 1, "meter/1", b"2 kWh")));
        assert!(why.contains(&format!("revoked in block {}", revoked_in.block.header.height)), "{why}");
    }
    // A block that carries it anyway (a faulty producer) is refused on import.
    let signer = c.producer.signer.as_ref().unwrap();
    let bad = data_tx(&c.suite, &c.user, 1, "meter/1", b"2 kWh");
    let mut block = c.producer.assemble(&c.producer.head(), signer.public_key(), vec![bad], None, now_ms()).unwrap().0;
    let seal_hash = c.suite.hash(&block.header.sealing_bytes()).unwrap();
    block.header.seal = c.producer.sign_as_node(&seal_hash.0).unwrap();
    let err = c.follower.import(block).expect_err("a revoked sender's transaction in a block");
    assert!(err.to_string().contains("revoked"), "{err}");
    assert_eq!(c.follower.head().height, revoked_in.block.header.height);

    // Every node serves the CRL; revoking again, or with a CRL number not above the last,
    // is refused.
    let orgs = c.follower.organisations().unwrap();
    assert_eq!((orgs[0].crl.as_ref(), orgs[0].crl_number.as_slice()), (Some(&first_crl), &[1u8][..]));
    let why = refused(c.producer.submit(c.admin_tx(2, IdentityAction::Revoke { organisation: "gridco".into(), serial: serial.clone(), crl: crl(2) })));
    assert!(why.contains("was revoked"), "{why}");
}

#[test]
fn an_expired_certificate_is_refused_and_its_renewal_keeps_the_account() {
    let c = Consortium::new();
    let hour = Duration::from_secs(3600);
    let short = c.certificate(&c.user, "CN=meter-reader,O=Grid Co", &["client"], hour);
    c.producer.submit(c.admin_tx(0, IdentityAction::Register { certificate: short.clone() })).unwrap();
    c.block(now_ms());
    c.producer.submit(data_tx(&c.suite, &c.user, 0, "meter/1", b"1 kWh")).unwrap();
    c.block(now_ms());

    // Two hours on, the certificate has expired: the block leaves its transaction out.
    let later = now_ms() + 2 * 3_600_000;
    let tx = c.producer.submit(data_tx(&c.suite, &c.user, 1, "meter/1", b"2 kWh")).unwrap();
    assert!(c.producer.produce(later).unwrap().is_none());
    match c.producer.pool_status(&tx) {
        Some(crate::pool::PoolStatus::Evicted(e)) => assert!(matches!(&e.reason, EvictionReason::NotPermitted { why } if why.contains("expired"))),
        other => panic!("expected an eviction, got {other:?}"),
    }

    // The renewal: a new certificate for the same key, recorded at that time.
    let renewed = c.certificate(&c.user, "CN=meter-reader,O=Grid Co", &["client"], YEARS);
    c.producer.submit(c.admin_tx(1, IdentityAction::Register { certificate: renewed.clone() })).unwrap();
    let b = c.block(later);
    assert_eq!(b.receipts[0].events[0].topic, "certificate_renewed");
    c.producer.submit(data_tx(&c.suite, &c.user, 1, "meter/1", b"2 kWh")).unwrap();
    let b = c.block(later + 1000);
    assert_eq!(b.receipts[0].status, ReceiptStatus::Success);
    // The same account, its nonce where it was.
    let account = c.account(&c.user);
    let rec = c.follower.certificate_of(&account).unwrap().unwrap();
    assert_eq!(rec.certificate, renewed);
    let first = joule_pki::facts(&joule_pki::certificate(&short).unwrap()).unwrap().serial;
    assert_eq!(rec.superseded, vec![first.clone()], "the renewed certificate's serial is kept");
    // Revoking the key revokes both: a CRL that lists only the current serial is refused.
    let only_current = joule_pki::issue_crl(
        &c.org_ca,
        &Ca(&c.org_key, &c.suite),
        1,
        SystemTime::now(),
        SystemTime::now() + Duration::from_secs(86_400),
        &[joule_pki::Revoked { serial: rec.serial.clone(), at: SystemTime::now() }],
    )
    .unwrap();
    let revoke = IdentityAction::Revoke { organisation: "gridco".into(), serial: rec.serial.clone(), crl: joule_pki::to_der(&only_current).unwrap() };
    let why = refused(c.producer.submit(c.admin_tx(2, revoke)));
    assert!(why.contains(&format!("does not list serial {}", hex::encode(&first))), "{why}");
    let state = c.follower.state(&account, "meter/1", false).unwrap();
    assert_eq!(state.value.as_deref(), Some(&b"2 kWh"[..]));
    assert_eq!(c.follower.account(&account).unwrap().account.map(|a| a.nonce), Some(2));
}

#[test]
fn an_organisation_joins_by_vote_certifies_its_users_and_once_removed_none_of_them_is_accepted() {
    let c = Consortium::new();
    let (wind_key, wind_admin, wind_user) = (Key::p256(30), Key::p256(31), Key::p256(32));
    let wind_ca = joule_pki::issue_organisation_ca(&c.root, &Ca(&c.root_key, &c.suite), "CN=Wind Co CA,O=Wind Co", &wind_key.public, validity(YEARS)).unwrap();
    let wind_admin_cert = issue(&c.suite, &wind_ca, &wind_key, &wind_admin, "CN=wind-admin,O=Wind Co", &["admin"], YEARS);
    let propose = |nonce: u64, changes: Vec<Change>| {
        signed_tx(&c.suite, &c.admin, nonce, Payload::Governance(Governance::Propose { changes, expires_at: 1000, components: vec![] }))
    };

    // A CA the root did not issue (one under the root's name, by another key) is refused
    // at admission, nothing spent.
    let rogue_key = Key::p256(40);
    let fake_root = joule_pki::issue_root(&Ca(&rogue_key, &c.suite), "CN=Energy Consortium Root,O=Energy Consortium", validity(YEARS)).unwrap();
    let rogue = joule_pki::issue_organisation_ca(&fake_root, &Ca(&rogue_key, &c.suite), "CN=Rogue CA,O=Rogue", &rogue_key.public, validity(YEARS)).unwrap();
    let rogue_add = Change::AddOrganisation { name: "rogue".into(), ca_certificate: joule_pki::to_der(&rogue).unwrap(), certificates: vec![] };
    let err = c.producer.submit(propose(0, vec![rogue_add])).expect_err("a CA from another root");
    assert!(err.to_string().contains("signature"), "{err}");
    // Removing the last organisation too.
    let err = c.producer.submit(propose(0, vec![Change::RemoveOrganisation { name: "gridco".into() }])).expect_err("the last organisation");
    assert!(err.to_string().contains("last member organisation"), "{err}");

    // windco joins by vote (one validator: its vote passes it), with its admin.
    let add = Change::AddOrganisation { name: "windco".into(), ca_certificate: joule_pki::to_der(&wind_ca).unwrap(), certificates: vec![wind_admin_cert] };
    c.producer.submit(propose(0, vec![add])).unwrap();
    let b = c.block(now_ms());
    let topics: Vec<&str> = b.receipts[0].events.iter().map(|e| e.topic.as_str()).collect();
    assert!(topics.contains(&"passed") && topics.contains(&"organisation_added") && topics.contains(&"certificate_registered"), "{topics:?}");
    let orgs = c.follower.organisations().unwrap();
    assert_eq!(orgs.iter().map(|o| (o.name.as_str(), o.joined_at)).collect::<Vec<_>>(), vec![("gridco", 0), ("windco", b.block.header.height)]);

    // Its admin certifies its user, who sends.
    let user_cert = issue(&c.suite, &wind_ca, &wind_key, &wind_user, "CN=turbine-7,O=Wind Co", &["client"], YEARS);
    c.producer.submit(signed_tx(&c.suite, &wind_admin, 0, Payload::Identity(IdentityAction::Register { certificate: user_cert }))).unwrap();
    c.block(now_ms());
    c.producer.submit(data_tx(&c.suite, &wind_user, 0, "turbine/7", b"3 MWh")).unwrap();
    assert_eq!(c.block(now_ms()).receipts[0].status, ReceiptStatus::Success);

    // Removed by vote: from the next block neither its user nor its admin is accepted.
    c.producer.submit(propose(1, vec![Change::RemoveOrganisation { name: "windco".into() }])).unwrap();
    let removed = c.block(now_ms());
    assert!(removed.receipts[0].events.iter().any(|e| e.topic == "organisation_removed"));
    for (key, nonce) in [(&wind_user, 1), (&wind_admin, 1)] {
        let why = refused(c.follower.submit(data_tx(&c.suite, key, nonce, "turbine/7", b"4 MWh")));
        assert!(why.contains("organisation windco is not a member"), "{why}");
    }
    // The audit trail: the proposals, votes and changes are the governance account's events.
    let gid = c.suite.hash(crate::governance::NAMESPACE_PREIMAGE).unwrap();
    let trail: Vec<String> = c.follower.events(&gid, None, 100).unwrap().iter().map(|e| e.topic.clone()).collect();
    for topic in ["proposed", "passed", "organisation_added", "organisation_removed"] {
        assert!(trail.iter().any(|t| t == topic), "{topic} in {trail:?}");
    }
    let orgs = c.follower.organisations().unwrap();
    assert_eq!(orgs.iter().find(|o| o.name == "windco").and_then(|o| o.removed_at), Some(removed.block.header.height));
}
