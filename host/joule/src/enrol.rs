//! Certificates for the sample parties of `joule up --certificates`: each key applies to an
//! organisation (round robin over the nodes, each the CA of its own) and that node's admin
//! approves, as `joule ca apply` and `joule ca approve` would; the parties transact once
//! every node has committed their certificates.

use anyhow::{Context, Result, ensure};
use joule_client::ApiClient;
use joule_crypto::{CryptoService, KeyPair};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

pub(crate) struct Enroller {
    /// Each node's admin client and its organisation.
    orgs: Vec<(ApiClient, String)>,
    crypto: CryptoService,
    algorithm: String,
    next: Cell<usize>,
    /// Approvals not yet known committed everywhere: the organisation (node) that admitted
    /// each, and its transaction.
    pending: RefCell<Vec<(usize, String)>>,
    pub issued: Cell<usize>,
    pub spent: Cell<Duration>,
}

impl Enroller {
    pub fn new(orgs: Vec<(ApiClient, String)>, crypto: CryptoService, algorithm: &str) -> Enroller {
        Enroller {
            orgs,
            crypto,
            algorithm: algorithm.into(),
            next: Cell::new(0),
            pending: RefCell::default(),
            issued: Cell::new(0),
            spent: Cell::new(Duration::ZERO),
        }
    }

    /// Apply for `kp` as `CN=name` with `role`, and approve it.
    pub fn enrol(&self, kp: &KeyPair, name: &str, role: &str) -> Result<()> {
        let started = Instant::now();
        let i = self.next.get() % self.orgs.len().max(1);
        self.next.set(i + 1);
        let (api, org) = self.orgs.get(i).context("no organisation to enrol with")?;
        let key = joule_node::ca::LocalKey { crypto: &self.crypto, algorithm: &self.algorithm, pair: kp };
        let der = joule_pki::request(&key, &format!("CN={name},O={org}")).with_context(|| format!("a request for {name}"))?;
        let csr = joule_crypto::pem::encode("CERTIFICATE REQUEST", &der);
        let a = api.post_json("/v1/pki/applications", &json!({"organisation": org, "csr": csr, "roles": [role], "applicant": {"name": name}}))?;
        let id = a["id"].as_str().context("the application has no id")?;
        let done = api.post_json(&format!("/v1/pki/applications/{id}/approve"), &json!({"days": 30}))?;
        self.pending.borrow_mut().push((i, done["tx"].as_str().context("the approval has no transaction")?.to_string()));
        self.issued.set(self.issued.get() + 1);
        self.spent.set(self.spent.get() + started.elapsed());
        Ok(())
    }

    /// Wait until every node committed the certificates approved so far: each on the node
    /// that admitted it (the others hear of it by gossip), then every node of `apis` up to
    /// the highest block among them.
    pub fn settle(&self, apis: &[&ApiClient]) -> Result<()> {
        let started = Instant::now();
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        let mut top = 0u64;
        for (i, tx) in &pending {
            let (api, _) = self.orgs.get(*i).context("no such organisation")?;
            let r = api.wait_for_tx(tx, Duration::from_secs(60)).with_context(|| format!("a certificate's transaction on {}", api.base))?;
            ensure!(r["receipt"]["status"] == "success", "a certificate was not recorded: {}", r["receipt"]);
            top = top.max(r["block_height"].as_u64().unwrap_or(0));
        }
        for api in apis {
            let deadline = Instant::now() + Duration::from_secs(60);
            while api.get("/v1/status")?["height"].as_u64().unwrap_or(0) < top {
                ensure!(Instant::now() < deadline, "{} did not reach block {top} in 60 s", api.base);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.spent.set(self.spent.get() + started.elapsed());
        Ok(())
    }
}
