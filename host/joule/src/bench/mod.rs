//! `joule bench crypto`: each algorithm through its wasm plugin, through the same Rust
//! crate natively, and through `openssl speed`, measured one after the other in one run,
//! reported as operations per second and ratios (absolute figures are not comparable
//! across runs on shared machines; ratios measured together are).

pub mod tps;

use crate::cli::GlobalOpts;
use anyhow::{Context, Result};
use clap::Subcommand;
use joule_crypto::CryptoService;
use serde::Serialize;
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Plugin vs native vs OpenSSL, per algorithm.
    Crypto {
        /// Print JSON: `[{"alg", "op", "plugin_ops", "native_ops", "openssl_ops"}]`.
        #[arg(long)]
        json: bool,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Only algorithms whose name contains this.
        #[arg(long)]
        only: Option<String>,
    },
    /// One node's committed TPS over HTTP, against the SM2 verification ceiling.
    Tps(tps::TpsArgs),
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub alg: String,
    pub op: String,
    pub plugin_ops: f64,
    pub native_ops: f64,
    pub openssl_ops: Option<f64>,
}

/// Operations per second of `f`, run for about `secs`.
fn rate<R>(secs: f64, mut f: impl FnMut() -> R) -> f64 {
    for _ in 0..3 {
        black_box(f());
    }
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget || n < 10 {
        black_box(f());
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// `openssl speed` for a public-key algorithm: (sign/s, verify/s).
fn openssl_pk(secs: f64, alg: &str) -> Option<(f64, f64)> {
    let out = Command::new("openssl").args(["speed", "-elapsed", "-seconds", &secs.ceil().max(1.0).to_string(), "-mr", alg]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with("+F"))?;
    let f: Vec<&str> = line.split(':').collect();
    let n = f.len();
    Some((f.get(n - 2)?.parse().ok()?, f.get(n - 1)?.parse().ok()?))
}

/// `openssl speed -evp ALG -bytes N`: operations per second on N-byte inputs.
fn openssl_evp(secs: f64, alg: &str, bytes: usize) -> Option<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-elapsed", "-seconds", &secs.ceil().max(1.0).to_string(), "-mr", "-bytes", &bytes.to_string(), "-evp", alg])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with("+F:"))?;
    let per_sec: f64 = line.rsplit(':').next()?.parse().ok()?;
    Some(per_sec / bytes as f64)
}

const MIB: usize = 1 << 20;

pub fn run(g: &GlobalOpts, cmd: BenchCmd) -> Result<()> {
    let (json, seconds, only) = match cmd {
        BenchCmd::Crypto { json, seconds, only } => (json, seconds, only),
        BenchCmd::Tps(a) => return tps::run(g, a),
    };
    let c = g.crypto()?;
    let rows = crypto_rows(&c, seconds, only.as_deref())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{}", table(&rows));
    }
    Ok(())
}

/// A Markdown table of the rows, with ratios.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| algorithm | op | plugin ops/s | native ops/s | openssl ops/s | plugin/native time | plugin vs openssl |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let vs_ossl = r.openssl_ops.map(|o| format!("{:.2}x", r.plugin_ops / o)).unwrap_or_else(|| "n/a".into());
        s += &format!(
            "| {} | {} | {:.0} | {:.0} | {} | {:.2} | {} |\n",
            r.alg,
            r.op,
            r.plugin_ops,
            r.native_ops,
            r.openssl_ops.map(|o| format!("{o:.0}")).unwrap_or_else(|| "n/a".into()),
            r.native_ops / r.plugin_ops,
            vs_ossl
        );
    }
    s
}

pub fn crypto_rows(c: &CryptoService, secs: f64, only: Option<&str>) -> Result<Vec<Row>> {
    let want = |alg: &str| only.is_none_or(|o| alg.contains(o));
    let mut rows = vec![];
    let msg = b"transfer 42 kWh from meter 7 to meter 9 at block 1000".to_vec();

    if want("sm2") {
        let kp = c.generate_key("sm2").context("sm2 (is crypto-gm loaded?)")?;
        let sig = c.sign("sm2", &kp.private_key, &msg, None)?;
        let plugin_verify = rate(secs, || assert!(c.verify("sm2", &kp.public_key, &msg, &sig, None).unwrap_or(false)));
        let plugin_sign = rate(secs, || c.sign("sm2", &kp.private_key, &msg, None));
        use sm2::dsa::signature::{Signer, Verifier};
        use sm2::pkcs8::DecodePrivateKey;
        let sk = sm2::SecretKey::from_pkcs8_der(&kp.private_key).context("sm2 key")?;
        let signer = sm2::dsa::SigningKey::new(joule_crypto::SM2_DEFAULT_ID, &sk).context("sm2 signer")?;
        let nsig: sm2::dsa::Signature = signer.sign(&msg);
        let vk = signer.verifying_key().clone();
        let native_verify = rate(secs, || assert!(vk.verify(&msg, &nsig).is_ok()));
        let native_sign = rate(secs, || Signer::<sm2::dsa::Signature>::sign(&signer, &msg));
        let o = openssl_pk(secs, "sm2");
        rows.push(Row { alg: "sm2".into(), op: "verify".into(), plugin_ops: plugin_verify, native_ops: native_verify, openssl_ops: o.map(|x| x.1) });
        rows.push(Row { alg: "sm2".into(), op: "sign".into(), plugin_ops: plugin_sign, native_ops: native_sign, openssl_ops: o.map(|x| x.0) });
    }
    if want("ecdsa-p256") {
        let kp = c.generate_key("ecdsa-p256").context("ecdsa-p256 (is crypto-intl loaded?)")?;
        let sig = c.sign("ecdsa-p256", &kp.private_key, &msg, None)?;
        let plugin_verify = rate(secs, || assert!(c.verify("ecdsa-p256", &kp.public_key, &msg, &sig, None).unwrap_or(false)));
        let plugin_sign = rate(secs, || c.sign("ecdsa-p256", &kp.private_key, &msg, None));
        use p256::ecdsa::signature::{Signer, Verifier};
        use p256::pkcs8::DecodePrivateKey;
        let signer = p256::ecdsa::SigningKey::from_pkcs8_der(&kp.private_key).context("p256 key")?;
        let nsig: p256::ecdsa::Signature = signer.sign(&msg);
        let vk = *signer.verifying_key();
        let native_verify = rate(secs, || assert!(vk.verify(&msg, &nsig).is_ok()));
        let native_sign = rate(secs, || Signer::<p256::ecdsa::Signature>::sign(&signer, &msg));
        let o = openssl_pk(secs, "ecdsap256");
        rows.push(Row { alg: "ecdsa-p256".into(), op: "verify".into(), plugin_ops: plugin_verify, native_ops: native_verify, openssl_ops: o.map(|x| x.1) });
        rows.push(Row { alg: "ecdsa-p256".into(), op: "sign".into(), plugin_ops: plugin_sign, native_ops: native_sign, openssl_ops: o.map(|x| x.0) });
    }
    if want("ed25519") && c.provides(joule_crypto::AlgorithmKind::Signature, "ed25519") {
        let kp = c.generate_key("ed25519")?;
        let sig = c.sign("ed25519", &kp.private_key, &msg, None)?;
        let plugin_verify = rate(secs, || assert!(c.verify("ed25519", &kp.public_key, &msg, &sig, None).unwrap_or(false)));
        use ed25519_dalek::Signer;
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let sk = ed25519_dalek::SigningKey::from_pkcs8_der(&kp.private_key).context("ed25519 key")?;
        let nsig = sk.sign(&msg);
        let vk = sk.verifying_key();
        let native_verify = rate(secs, || assert!(vk.verify_strict(&msg, &nsig).is_ok()));
        let o = openssl_pk(secs, "ed25519");
        rows.push(Row { alg: "ed25519".into(), op: "verify".into(), plugin_ops: plugin_verify, native_ops: native_verify, openssl_ops: o.map(|x| x.1) });
    }
    let big = vec![0x5au8; MIB];
    if want("sm3") {
        use sm3::Digest;
        rows.push(Row {
            alg: "sm3".into(),
            op: "digest 1 MiB".into(),
            plugin_ops: rate(secs, || c.digest("sm3", &big)),
            native_ops: rate(secs, || sm3::Sm3::digest(&big)),
            openssl_ops: openssl_evp(secs, "sm3", MIB),
        });
    }
    if want("sha256") {
        use sha2::Digest;
        rows.push(Row {
            alg: "sha256".into(),
            op: "digest 1 MiB".into(),
            plugin_ops: rate(secs, || c.digest("sha256", &big)),
            native_ops: rate(secs, || sha2::Sha256::digest(&big)),
            openssl_ops: openssl_evp(secs, "sha256", MIB),
        });
    }
    let key16 = [7u8; 16];
    let key32 = [7u8; 32];
    let nonce = [9u8; 12];
    if want("sm4-gcm") {
        use aes_gcm::aead::{Aead, KeyInit};
        let native = aes_gcm::AesGcm::<sm4::Sm4, aes_gcm::aead::consts::U12>::new_from_slice(&key16).context("sm4-gcm key")?;
        rows.push(Row {
            alg: "sm4-gcm".into(),
            op: "encrypt 1 MiB".into(),
            plugin_ops: rate(secs, || c.encrypt("sm4-gcm", &key16, &nonce, b"", &big)),
            native_ops: rate(secs, || native.encrypt((&nonce).into(), big.as_slice())),
            openssl_ops: openssl_evp(secs, "sm4-gcm", MIB),
        });
    }
    if want("aes-256-gcm") {
        use aes_gcm::aead::{Aead, KeyInit};
        let native = aes_gcm::Aes256Gcm::new_from_slice(&key32).context("aes key")?;
        rows.push(Row {
            alg: "aes-256-gcm".into(),
            op: "encrypt 1 MiB".into(),
            plugin_ops: rate(secs, || c.encrypt("aes-256-gcm", &key32, &nonce, b"", &big)),
            native_ops: rate(secs, || native.encrypt((&nonce).into(), big.as_slice())),
            openssl_ops: openssl_evp(secs, "aes-256-gcm", MIB),
        });
    }
    if want("call") {
        use sm3::Digest;
        rows.push(Row {
            alg: "minimal call".into(),
            op: "sm3 of 3 bytes".into(),
            plugin_ops: rate(secs, || c.digest("sm3", b"abc")),
            native_ops: rate(secs, || sm3::Sm3::digest(b"abc")),
            openssl_ops: None,
        });
    }
    Ok(rows)
}
