//! Hot swap: versions change atomically under load; rollback, deactivate, remove.

use crate::support::{crypto, package, test_plugin_dir};
use joule_crypto::CryptoError;
use joule_kernel::PluginError;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn tagged(tag: &[u8], data: &[u8]) -> Vec<u8> {
    Sha256::new().chain_update(tag).chain_update(data).finalize().to_vec()
}

fn with_tagged() -> joule_crypto::CryptoService {
    let c = crypto();
    for v in ["tagged-v1", "tagged-v2"] {
        c.registry().install(package(&test_plugin_dir().join(v).join("tagged.toml"))).expect(v);
    }
    c
}

#[test]
fn swapping_under_load_fails_no_call_and_mixes_no_versions() {
    let c = with_tagged();
    c.registry().activate("tagged", Some("0.1.0")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (v1_seen, v2_seen) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (c, stop, v1_seen, v2_seen) = (c.clone(), stop.clone(), v1_seen.clone(), v2_seen.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let data = format!("thread {t} call {i}");
                    let d = c.digest("tagged-sha256", data.as_bytes()).unwrap_or_else(|e| panic!("call {i} of thread {t} failed during a swap: {e}"));
                    if d == tagged(b"v1", data.as_bytes()) {
                        v1_seen.fetch_add(1, Ordering::Relaxed);
                    } else if d == tagged(b"v2", data.as_bytes()) {
                        v2_seen.fetch_add(1, Ordering::Relaxed);
                    } else {
                        panic!("result from neither version: {}", hex::encode(d));
                    }
                    i += 1;
                }
                i
            })
        })
        .collect();
    let start = Instant::now();
    let mut swaps = 0;
    while start.elapsed() < Duration::from_secs(2) || swaps < 200 {
        c.registry().activate("tagged", Some(if swaps % 2 == 0 { "0.2.0" } else { "0.1.0" })).unwrap();
        swaps += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    let calls: u64 = workers.into_iter().map(|w| w.join().expect("worker panicked")).sum();
    let (a, b) = (v1_seen.load(Ordering::Relaxed), v2_seen.load(Ordering::Relaxed));
    assert_eq!(a + b, calls);
    assert!(a > 0 && b > 0, "both versions served calls: v1 {a}, v2 {b}");
    assert!(calls > 1000, "only {calls} calls in {swaps} swaps");
}

#[test]
fn rollback_deactivate_and_remove() {
    let c = with_tagged();
    let reg = c.registry();
    reg.activate("tagged", Some("0.1.0")).unwrap();
    reg.activate("tagged", Some("0.2.0")).unwrap();
    assert_eq!(c.digest("tagged-sha256", b"x").unwrap(), tagged(b"v2", b"x"));
    assert_eq!(reg.rollback("tagged").unwrap().manifest.version, "0.1.0");
    assert_eq!(c.digest("tagged-sha256", b"x").unwrap(), tagged(b"v1", b"x"));
    assert!(matches!(reg.rollback("tagged"), Err(PluginError::NoRollback(_))));
    assert!(matches!(reg.remove("tagged", "0.1.0"), Err(PluginError::Active { .. })));
    reg.deactivate("tagged").unwrap();
    assert!(matches!(c.digest("tagged-sha256", b"x"), Err(CryptoError::UnknownAlgorithm { .. })));
    reg.remove("tagged", "0.2.0").unwrap();
    assert_eq!(reg.list().iter().filter(|p| p.name == "tagged").map(|p| p.version.as_str()).collect::<Vec<_>>(), ["0.1.0"]);
    // The highest remaining version is activated by default.
    reg.activate("tagged", None).unwrap();
    assert_eq!(c.digest("tagged-sha256", b"x").unwrap(), tagged(b"v1", b"x"));
    let actions: Vec<&str> = reg.audit().iter().filter(|a| a.plugin == "tagged").map(|a| a.action).collect();
    assert_eq!(actions, ["install", "install", "activate", "activate", "rollback", "deactivate", "remove", "activate"]);
}

#[test]
fn reinstalling_a_version_with_other_content_is_a_conflict() {
    let c = with_tagged();
    // Same bytes again: a no-op.
    c.registry().install(package(&test_plugin_dir().join("tagged-v1/tagged.toml"))).unwrap();
    // v2's code under v1's version number: refused.
    let mut p = package(&test_plugin_dir().join("tagged-v2/tagged.toml"));
    p.manifest.version = "0.1.0".into();
    assert!(matches!(c.registry().install(p), Err(PluginError::Conflict { .. })));
}
