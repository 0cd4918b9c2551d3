//! Hostile or broken plugins are refused, or contained to their own call, while every
//! other call keeps working.

use crate::support::{crypto_with, package, plugin_dir, test_plugin_dir};
use joule_crypto::{CryptoError, CryptoService};
use joule_kernel::{PluginError, PluginPackage};
use joule_plugin_manifest::{Manifest, sha256_hex};
use joule_wasm::Limits;
use std::time::{Duration, Instant};

fn limits() -> Limits {
    Limits { call_timeout: Duration::from_millis(300), max_memory_bytes: 64 << 20, ..Limits::default() }
}

fn with_hostile() -> CryptoService {
    let c = crypto_with(limits());
    c.registry().install(package(&test_plugin_dir().join("hostile.toml"))).expect("hostile plugin passes its self-test");
    c.registry().activate("hostile", None).expect("activate");
    c
}

fn call_failure(e: CryptoError) -> String {
    match e {
        CryptoError::Plugin(PluginError::Call { reason, .. }) => reason,
        other => panic!("expected a contained plugin call failure, got {other}"),
    }
}

/// A package for hand-made wasm, with a correct hash so the bytes themselves are judged.
fn raw_package(name: &str, wasm: Vec<u8>) -> PluginPackage {
    let manifest = Manifest {
        name: name.into(),
        kind: "crypto".into(),
        version: "0.1.0".into(),
        vendor: "test".into(),
        description: String::new(),
        algorithms: vec!["hash:x".into()],
        wasm_sha256: sha256_hex(&wasm),
        known_answers: vec![],
        signature: None,
    };
    PluginPackage { manifest, wasm }
}

fn healthy(c: &CryptoService) {
    assert_eq!(hex::encode(c.digest("sm3", b"abc").expect("sm3 still works")), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
}

#[test]
fn infinite_loop_hits_the_deadline_while_other_calls_proceed() {
    let c = with_hostile();
    let other = c.clone();
    let busy = std::thread::spawn(move || {
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < Duration::from_millis(500) {
            assert_eq!(other.digest("sha256", b"abc").expect("sha256 during the loop").len(), 32);
            n += 1;
        }
        n
    });
    let start = Instant::now();
    let reason = call_failure(c.digest("hostile-hash", b"loop").unwrap_err());
    let took = start.elapsed();
    assert!(reason.contains("time budget"), "{reason}");
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(5), "stopped after {took:?}");
    assert!(busy.join().expect("no panic") > 10, "other calls ran during the loop");
    // The plugin itself still serves well-behaved calls (on a fresh instance).
    assert_eq!(hex::encode(c.digest("hostile-hash", b"abc").unwrap()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    healthy(&c);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let c = with_hostile();
    let reason = call_failure(c.digest("hostile-hash", b"bomb").unwrap_err());
    assert!(reason.contains("memory limit of 64 MiB"), "{reason}");
    assert_eq!(c.digest("hostile-hash", b"abc").unwrap().len(), 32);
    healthy(&c);
}

#[test]
fn trap_is_an_error_for_that_call_only() {
    let c = with_hostile();
    for _ in 0..3 {
        let reason = call_failure(c.digest("hostile-hash", b"trap").unwrap_err());
        assert!(reason.contains("trapped"), "{reason}");
        assert_eq!(c.digest("hostile-hash", b"abc").unwrap().len(), 32);
    }
    healthy(&c);
}

#[test]
fn wrong_world_is_refused() {
    let c = crypto_with(limits());
    // A valid component that exports nothing of the crypto world.
    let wasm = wat::parse_str("(component)").unwrap();
    let e = c.registry().install(raw_package("empty", wasm)).unwrap_err();
    assert!(matches!(e, PluginError::WrongWorld { .. }), "{e}");
    assert!(e.to_string().contains("joule:crypto/plugin@0.1.1"), "{e}");
    // A core module without wit-bindgen's type section becomes a component that exports
    // nothing the world needs.
    let core = wat::parse_str("(module (func (export \"digest\")))").unwrap();
    let e = c.registry().install(raw_package("core", core)).unwrap_err();
    assert!(matches!(e, PluginError::WrongWorld { .. }), "{e}");
    assert!(e.to_string().contains("joule:crypto/provider@0.1.1"), "names what is missing: {e}");
    healthy(&c);
}

#[test]
fn wasi_imports_are_refused() {
    let c = crypto_with(limits());
    let wasm = wat::parse_str(r#"(component (import "wasi:random/random@0.2.0" (instance (export "get-random-u64" (func (result u64))))))"#).unwrap();
    let e = c.registry().install(raw_package("wasi", wasm)).unwrap_err();
    assert!(matches!(e, PluginError::ForbiddenImport { .. }), "{e}");
    assert!(e.to_string().contains("wasi:random/random@0.2.0"), "{e}");
    let wasm = wat::parse_str(r#"(component (import "wasi:clocks/wall-clock@0.2.0" (instance)))"#).unwrap();
    assert!(matches!(c.registry().install(raw_package("clock", wasm)), Err(PluginError::ForbiddenImport { .. })));
    healthy(&c);
}

#[test]
fn corrupted_bytes_are_refused() {
    let c = crypto_with(limits());
    let good = std::fs::read(plugin_dir().join("crypto-gm.wasm")).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    for b in &mut flipped[mid..mid + 64] {
        *b ^= 0xa5;
    }
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 3);
    for (name, wasm) in [("flipped", flipped), ("truncated", truncated), ("garbage", b"\0asm\x0d\0\x01\0not really".to_vec())] {
        let e = c.registry().install(raw_package(name, wasm)).unwrap_err();
        assert!(matches!(e, PluginError::Invalid { .. }), "{name}: {e}");
    }
    healthy(&c);
}

#[test]
fn manifest_hash_mismatch_is_refused_before_compiling() {
    let c = crypto_with(limits());
    let mut pkg = package(&plugin_dir().join("crypto-gm.toml"));
    pkg.wasm.push(0);
    let e = c.registry().install(pkg).unwrap_err();
    assert!(e.to_string().contains("wasm content hash mismatch"), "{e}");
    // Nothing was installed under that name's version beyond the real one.
    assert_eq!(c.registry().list().iter().filter(|p| p.name == "crypto-gm").count(), 1);
    healthy(&c);
}

#[test]
fn a_plugin_that_claims_sm3_but_computes_something_else_is_refused() {
    let c = crypto_with(limits());
    let e = c.registry().install(package(&test_plugin_dir().join("fake-sm3.toml"))).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PluginError::SelfTest { .. }), "{text}");
    assert!(text.contains("hash:sm3") && text.contains("GB/T 32905"), "names the failing case: {text}");
    assert!(c.registry().list().iter().all(|p| p.name != "fake-sm3"));
    // The refusal is in the audit trail.
    assert!(c.registry().audit().iter().any(|a| a.action == "refuse" && a.plugin == "fake-sm3"));
    healthy(&c);
}

/// A package of `kind` for hand-made wasm, providing `algorithm`, with a correct hash.
fn kind_package(name: &str, kind: &str, algorithm: &str, wasm: Vec<u8>) -> PluginPackage {
    let mut p = raw_package(name, wasm);
    p.manifest.kind = kind.into();
    p.manifest.algorithms = vec![algorithm.into()];
    p
}

#[test]
fn entropy_is_granted_to_crypto_plugins_and_refused_to_consensus_engines() {
    let reg = crate::support::registry_with(limits(), joule_kernel::trust::TrustPolicy::default());
    const ENTROPY: &str = "joule:crypto/entropy@0.1.0";
    let importing = |import: &str| {
        wat::parse_str(format!(r#"(component (import "{import}" (instance (export "random-bytes" (func (param "len" u32) (result (list u8)))))))"#)).unwrap()
    };

    // A consensus engine that would draw randomness (so nodes would disagree): refused at
    // install, by the import's name, before anything of it runs.
    let e = reg.install(kind_package("dice-engine", "consensus", "consensus:dice", importing(ENTROPY))).unwrap_err();
    match &e {
        PluginError::ForbiddenImport { name, import, world } => {
            assert_eq!((name.as_str(), import.as_str(), world.as_str()), ("dice-engine", ENTROPY, "joule:consensus/engine-plugin@0.2.0"))
        }
        other => panic!("expected a forbidden import, got {other}"),
    }
    assert!(reg.list().iter().all(|p| p.name != "dice-engine"), "nothing installed");
    assert!(reg.audit().iter().any(|a| a.action == "refuse" && a.plugin == "dice-engine" && a.detail.contains(ENTROPY)));
    // The import is what is refused: the same component without it gets past the import
    // check (and fails only for implementing nothing of the world).
    let bare = wat::parse_str("(component)").unwrap();
    let e = reg.install(kind_package("bare-engine", "consensus", "consensus:bare", bare)).unwrap_err();
    assert!(matches!(e, PluginError::WrongWorld { .. }), "{e}");

    // The crypto world grants it: the same import passes the import check there…
    let e = reg.install(kind_package("dice-hash", "crypto", "hash:dice", importing(ENTROPY))).unwrap_err();
    assert!(matches!(e, PluginError::WrongWorld { .. }), "entropy is granted to crypto plugins, got {e}");
    // …and the first-party crypto plugins, which generate keys with it, import it and install.
    let gm = package(&plugin_dir().join("crypto-gm.toml"));
    let component = wasmtime::component::Component::new(reg.runtime().engine(), &gm.wasm).unwrap();
    // (They are built against joule:crypto@0.1.1; a 0.1.0 import, above, is granted too.)
    const ENTROPY_NOW: &str = "joule:crypto/entropy@0.1.1";
    assert!(component.component_type().imports(reg.runtime().engine()).any(|(name, _)| name == ENTROPY_NOW), "crypto-gm imports {ENTROPY_NOW}");
    reg.install(gm).expect("crypto-gm, importing entropy, installs");
}
