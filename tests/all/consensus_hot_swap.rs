//! A channel follows its consensus engine's plugin versions: an operator activates a new
//! version of the engine under a running chain and the next block is made by it; a
//! rollback returns the next block to the old one. No restart, no gap in the chain.

use crate::support::{crypto, data_tx, package, plugin_dir, suite, tempdir};
use joule_consensus_wasm::PluginEngineSource;
use joule_ledger::chain::{BlockSigner, Chain, LocalSigner};
use joule_node::config::{BlockPolicyConfig, ChannelConfig, ValidatorConfig};
use joule_primitives::ChannelId;
use std::sync::Arc;

fn channel(validator: &[u8]) -> ChannelConfig {
    ChannelConfig {
        id: ChannelId::new("grid").unwrap(),
        crypto_suite: "gm".into(),
        consensus: "poa".into(),
        consensus_config: String::new(),
        gas_limit: 1_000_000,
        block_gas_limit: 1_000_000_000,
        gas_schedule: 1,
        contract_deployers: Default::default(),
        genesis_time_ms: 1_700_000_000_000,
        validators: vec![ValidatorConfig { public_key: hex::encode(validator), weight: 1 }],
        block_policy: BlockPolicyConfig { interval_ms: 100, max_transactions: 100, max_bytes: 1 << 20, produce_empty_blocks: false },
        nodes: vec![],
        identity: None,
    }
}

#[test]
fn a_newly_activated_engine_version_makes_the_next_block_and_a_rollback_the_one_after() {
    let c = crypto();
    let reg = c.registry().clone();
    let poa = |r: &joule_kernel::PluginRegistry| r.route("consensus", "consensus", "poa").map(|p| p.manifest.version.clone());
    assert_eq!(poa(&reg).as_deref(), Some("0.1.0"), "the first-party consensus-poa is active");

    // A channel opened as `joule_node::open_chain` opens it, keeping hold of its engine
    // source to ask which plugin version it is bound to.
    let kp = c.generate_key("sm2").unwrap();
    let config = channel(&kp.public_key);
    let spec = config.spec().unwrap();
    let s = suite("gm");
    let source = Arc::new(PluginEngineSource::new(reg.clone(), &spec.consensus, Arc::new(s.clone()), Vec::new(), spec.channel.as_str()));
    let signer: Arc<dyn BlockSigner> = Arc::new(LocalSigner::new(kp.private_key.clone(), kp.public_key.clone(), Arc::new(s.clone())));
    let d = tempdir();
    let chain = Chain::open(d.path(), &spec, config.policy(), Arc::new(s.clone()), source.clone(), Some(signer)).unwrap();
    let mut nonce = 0;
    let mut block = |chain: &Chain, at: u64| {
        chain.submit(data_tx(&s, &kp, "grid", nonce, "meter/1", format!("{nonce} kWh").as_bytes())).unwrap();
        nonce += 1;
        let b = chain.produce(1_700_000_000_000 + at).unwrap().expect("a block");
        assert_eq!(b.block.transactions.len(), 1);
        b.block.header.height
    };
    let bound = || source.bound_to().map(|(name, version)| format!("{name} {version}"));

    assert_eq!(block(&chain, 100), 1);
    assert_eq!(bound().as_deref(), Some("consensus-poa 0.1.0"));
    let v1_engine = chain.engine().unwrap();
    assert!(Arc::ptr_eq(&v1_engine, &chain.engine().unwrap()), "without an activation the binding is reused, not made again per block");

    // Version 0.2.0: the same engine repacked under a new version, as an upgrade ships.
    let mut v2 = package(&plugin_dir().join("consensus-poa.toml"));
    v2.manifest.version = "0.2.0".into();
    reg.install(v2).expect("0.2.0 installs");
    assert_eq!(poa(&reg).as_deref(), Some("0.1.0"), "installing does not activate");
    reg.activate("consensus-poa", Some("0.2.0")).unwrap();
    assert_eq!(poa(&reg).as_deref(), Some("0.2.0"));
    assert_eq!(bound().as_deref(), Some("consensus-poa 0.1.0"), "the channel rebinds when it next needs its engine, not before");

    assert_eq!(block(&chain, 200), 2, "the chain goes on across the swap");
    assert_eq!(bound().as_deref(), Some("consensus-poa 0.2.0"), "block 2 was made by the newly active version");
    let v2_engine = chain.engine().unwrap();
    assert!(!Arc::ptr_eq(&v1_engine, &v2_engine), "the channel's engine was bound again");
    assert_eq!(block(&chain, 300), 3);
    assert!(Arc::ptr_eq(&v2_engine, &chain.engine().unwrap()), "and that binding stays while 0.2.0 is active");

    // Roll back: the next block is the old version's again.
    assert_eq!(reg.rollback("consensus-poa").unwrap().manifest.version, "0.1.0");
    assert_eq!(poa(&reg).as_deref(), Some("0.1.0"));
    assert_eq!(block(&chain, 400), 4);
    assert_eq!(bound().as_deref(), Some("consensus-poa 0.1.0"), "block 4 was made by the version rolled back to");
    assert!(!Arc::ptr_eq(&v2_engine, &chain.engine().unwrap()));

    // Every block, whichever version sealed it, is one chain: it reopens at the same head.
    let head = chain.head();
    drop(chain);
    let reopened = joule_node::open_chain(d.path(), &config, &c, None).unwrap();
    assert_eq!((reopened.head().height, reopened.head().hash), (4, head.hash));
    let actions: Vec<(&str, String)> = reg
        .audit()
        .iter()
        .filter(|a| a.plugin == "consensus-poa")
        .map(|a| (a.action, a.version.clone()))
        .skip_while(|(a, v)| (*a, v.as_str()) != ("install", "0.2.0"))
        .collect();
    assert_eq!(actions, [("install", "0.2.0".into()), ("activate", "0.2.0".into()), ("rollback", "0.1.0".into())]);
}
