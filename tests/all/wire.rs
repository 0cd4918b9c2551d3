//! The peer-to-peer wire on the crypto plugins (`joule_node::wire::PluginWire`): the same
//! bytes as the same algorithms natively (`joule_net::NativePrimitives`), handshakes
//! between a node on plugins and one on native code, and no wire without the suite's
//! plugins.

use crate::support::{crypto, registry_with};
use joule_net::secure::{self, Secured};
use joule_net::{NativePrimitives, NodeKey, WirePrimitives, WireSuite};
use joule_node::wire::PluginWire;
use std::sync::Arc;

const SUITES: [WireSuite; 2] = [WireSuite::Intl, WireSuite::Gm];

fn routes(suite: WireSuite) -> (Arc<dyn WirePrimitives>, Arc<dyn WirePrimitives>) {
    (PluginWire::shared(crypto(), suite).expect("the first-party plugins serve the wire"), NativePrimitives::shared(suite))
}

/// AES-256-GCM and SM4-GCM through the plugins (GCTR and GHASH on the host's `accel`)
/// produce the native crates' bytes at every length around the block and frame sizes,
/// open each other's frames, and refuse a flipped bit.
#[test]
fn the_wire_aead_on_plugins_is_byte_for_byte_the_native_one() {
    let data: Vec<u8> = (0..70_000u32).map(|i| (i * 31 + 7) as u8).collect();
    for suite in SUITES {
        let (plugin, native) = routes(suite);
        let key: [u8; 32] = std::array::from_fn(|i| i as u8 ^ 0xa5);
        for (n, len) in [0usize, 1, 15, 16, 17, 255, 256, 511, 512, 513, 4095, 4096, 65_535, 65_536, 65_537, 70_000].into_iter().enumerate() {
            let nonce: [u8; 12] = std::array::from_fn(|i| (i + n) as u8);
            for aad in [&b""[..], b"joule wire", &data[..1000]] {
                let p = &data[..len];
                let sealed = plugin.seal(&key, &nonce, aad, p).expect("plugin seals");
                assert_eq!(Some(&sealed), native.seal(&key, &nonce, aad, p).as_ref(), "{suite}: {len} bytes, {}-byte aad", aad.len());
                assert_eq!(plugin.open(&key, &nonce, aad, &sealed).as_deref(), Some(p), "{suite}: plugin opens its own");
                let mut bad = sealed.clone();
                let i = (len * 7) % bad.len();
                bad[i] ^= 0x10;
                assert_eq!(plugin.open(&key, &nonce, aad, &bad), None, "{suite}: a flipped bit at {i} of {} is refused", bad.len());
            }
        }
    }
}

/// ECDH through the plugins gives the native curves' public keys and shared secrets, and
/// refuses a scalar of zero and a point off the curve.
#[test]
fn key_agreement_on_plugins_matches_the_native_curves() {
    for suite in SUITES {
        let (plugin, native) = routes(suite);
        for seed in 1..=8u8 {
            let a: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(seed) ^ 0x3c);
            let b: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_add(seed).wrapping_mul(7));
            let pb = native.public_key(&b).expect("a valid scalar");
            assert_eq!(plugin.public_key(&b), Some(pb), "{suite}: public key of seed {seed}");
            assert_eq!(plugin.agree(&a, &pb), native.agree(&a, &pb), "{suite}: shared secret of seed {seed}");
            assert!(plugin.agree(&a, &pb).is_some());
        }
        assert_eq!(plugin.public_key(&[0; 32]), None, "{suite}: zero is no key");
        let mut off = [0xffu8; 33];
        off[0] = 2;
        assert_eq!(plugin.agree(&[1; 32], &off), None, "{suite}: a point off the curve");
    }
}

async fn pair(suite: WireSuite, a: &NodeKey, b: &NodeKey) -> (Secured, Secured) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
    let addr = listener.local_addr().expect("address");
    let (accepted, dialled) = tokio::join!(
        async {
            let (s, _) = listener.accept().await.expect("accept");
            secure::handshake(s, false, suite, b, b"joule-test", |_| Ok(())).await
        },
        async {
            let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            secure::handshake(s, true, suite, a, b"joule-test", |_| Ok(())).await
        }
    );
    (dialled.expect("the dialler's handshake"), accepted.expect("the listener's handshake"))
}

/// A node whose wire runs on its plugins and a node on native code complete the Noise
/// handshake each way round and carry multi-frame messages both ways: the plugin route
/// speaks the documented protocol, not a dialect of its own.
#[test]
fn nodes_on_plugins_and_on_native_code_handshake_and_exchange_messages() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        for suite in SUITES {
            let (plugin, native) = routes(suite);
            let on_plugins = NodeKey::generate(plugin).expect("plugin key");
            let on_native = NodeKey::generate(native).expect("native key");
            for (a, b) in [(&on_plugins, &on_native), (&on_native, &on_plugins)] {
                let (mut x, mut y) = pair(suite, a, b).await;
                assert_eq!(x.remote, b.public(), "{suite}: the dialler knows whom it reached");
                assert_eq!(y.remote, a.public(), "{suite}: the listener knows who dialled");
                let message: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
                x.writer.send(&message).await.expect("send");
                assert_eq!(y.reader.recv(1 << 20).await.expect("receive").as_deref(), Some(&message[..]), "{suite}: dialler to listener");
                y.writer.send(&message[..1000]).await.expect("send back");
                assert_eq!(x.reader.recv(1 << 20).await.expect("receive").as_deref(), Some(&message[..1000]), "{suite}: listener to dialler");
            }
        }
    });
}

/// Without the suite's plugin there is no wire: it does not fall back to other code.
#[test]
fn the_wire_does_not_start_without_the_suites_plugins() {
    let registry = registry_with(joule_wasm::Limits::default(), joule_kernel::trust::TrustPolicy::default());
    assert!(registry.load_dir(&crate::support::plugin_dir()).is_empty());
    registry.deactivate("crypto-gm").expect("crypto-gm was active");
    let crypto = joule_crypto::CryptoService::new(registry);
    let e = PluginWire::shared(crypto.clone(), WireSuite::Gm).err().expect("no gm wire without crypto-gm").to_string();
    assert!(e.contains("ecdh-sm2") && e.contains("no active crypto plugin"), "{e}");
    assert!(PluginWire::shared(crypto, WireSuite::Intl).is_ok(), "the intl wire has its plugin");
}

/// `joule:crypto@0.1.1` only adds: a plugin built against 0.1.0 (the fixture keeps that WIT)
/// still installs, passes its self-test and serves its hash, and simply has no key agreement,
/// so it can serve no wire.
#[test]
fn a_plugin_built_against_joule_crypto_0_1_0_still_loads_and_serves_no_key_agreement() {
    use joule_crypto::AlgorithmKind;
    let registry = registry_with(joule_wasm::Limits::default(), joule_kernel::trust::TrustPolicy::default());
    let legacy = crate::support::package(&crate::support::test_plugin_dir().join("crypto-0-1-0.toml"));
    let component = wasmtime::component::Component::new(registry.runtime().engine(), &legacy.wasm).expect("a component");
    let exports: Vec<String> = component.component_type().exports(registry.runtime().engine()).map(|(n, _)| n.to_string()).collect();
    assert!(exports.iter().any(|e| e == "joule:crypto/hash@0.1.0"), "built against 0.1.0: {exports:?}");
    assert!(!exports.iter().any(|e| e.contains("key-agreement")), "{exports:?}");
    registry.install(legacy).expect("a 0.1.0 plugin installs (links, passes its self-test) on a 0.1.1 host");
    registry.activate("crypto-0-1-0", None).expect("and activates");
    let crypto = joule_crypto::CryptoService::new(registry);
    assert_eq!(
        hex::encode(crypto.digest("legacy-sha256", b"abc").expect("its hash is routed to it")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(crypto.algorithms(AlgorithmKind::KeyAgreement).is_empty());
    assert!(PluginWire::shared(crypto, WireSuite::Intl).is_err(), "no wire on it");
}
