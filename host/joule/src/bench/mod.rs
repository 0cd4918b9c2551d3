//! `joule bench crypto`: each algorithm through its wasm plugin, through the same Rust
//! crate natively, and through OpenSSL, measured in turns in one run, reported as
//! operations per second and ratios (absolute figures are not comparable across runs on
//! shared machines; ratios measured together are). The native column is only like for
//! like when this binary is built as the plugins are: `cargo build --profile bench-native
//! -p joule` (fat LTO, one codegen unit; docs/BENCHMARKS.md).
//!
//! Every measured call's result is checked (a verification must accept, a digest or
//! ciphertext must match the native crate's): a call that fails ends the benchmark with
//! an error naming the algorithm, the operation and the column, so a failing call can
//! never count as a fast one.
//!
//! Signature verification is measured twice: under one key used again and again (the
//! plugin's key caches at their best: a validator's steady senders), and under a key seen
//! for the first time on every operation (a sender seen once: key parsing, SM2's Z value,
//! no per-key tables) — [`COLD_KEYS`] distinct keys taken in turn.

pub mod contracts;
pub mod identity;
mod libcrypto;
pub mod net;
pub mod network;
pub mod tps;

use crate::cli::GlobalOpts;
use anyhow::{Context, Result, bail, ensure};
use clap::Subcommand;
use joule_crypto::{AlgorithmKind, CryptoService};
use libcrypto::{Libcrypto, Verify};
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
    /// Identity by certificates: committed TPS with and without it, certificates issued
    /// per second.
    Identity(identity::IdentityArgs),
    /// Contracts: the market's trade in wasm vs native, per-call overhead, committed
    /// contract-call TPS against the SM2 verification ceiling.
    Contracts(contracts::ContractsArgs),
    /// The peer transport per suite: Noise handshake time, encrypted throughput against
    /// plain TCP.
    Net(net::NetArgs),
    /// A network of validator processes on loopback against one validator, in the same
    /// run: committed TPS, block interval, submit-to-commit latency; then the sync speed
    /// of a node joining a long chain.
    Network(network::NetworkArgs),
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub alg: String,
    pub op: String,
    pub plugin_ops: f64,
    pub native_ops: f64,
    pub openssl_ops: Option<f64>,
}

/// Distinct key pairs of the cold-key rows, used in turn. `crypto-gm` caches the parsed
/// form of its 8 most recently used verifying keys per instance (`VERIFYING_KEYS` in
/// plugins/crypto-gm/src/sm2_ops.rs), least recently used out first: with this many keys
/// taken in turn, the previous use of a key is always 1023 other keys back, so every
/// operation misses (and no key ever reaches the second use that builds its point table).
/// `crypto-intl` caches its 8 most recently used P-256 verifying keys (and 4 signing keys) the
/// same way, so the same holds for it; `crypto-extra` caches no keys.
pub const COLD_KEYS: usize = 1024;

/// Operation names of the rows.
const WARM_VERIFY: &str = "verify (warm key)";
const COLD_VERIFY: &str = "verify (cold key)";

/// Slices each measurement is cut into (see [`measure`]).
const ROUNDS: u32 = 10;

/// One operation under measurement: its calls and the time they took so far.
struct Meter<'a> {
    what: String,
    op: Box<dyn FnMut() -> Result<()> + 'a>,
    calls: u64,
    time: Duration,
}

impl<'a> Meter<'a> {
    fn new(what: String, op: impl FnMut() -> Result<()> + 'a) -> Self {
        Meter { what, op: Box::new(op), calls: 0, time: Duration::ZERO }
    }

    /// Calls the operation for about `budget` (at least once), checking every result.
    fn run(&mut self, budget: Duration) -> Result<()> {
        let start = Instant::now();
        let mut calls = 0u64;
        while calls == 0 || start.elapsed() < budget {
            (self.op)().with_context(|| format!("{} failed", self.what))?;
            calls += 1;
        }
        self.time += start.elapsed();
        self.calls += calls;
        Ok(())
    }

    fn per_second(&self) -> f64 {
        self.calls as f64 / self.time.as_secs_f64()
    }
}

/// Operations per second of each meter, measured in turns: after 3 untimed calls each,
/// [`ROUNDS`] rounds in which every meter runs for `secs / ROUNDS`, so that a change in the
/// machine's load (other work on a shared machine) weighs on all the columns of a row
/// alike. The first failing call ends the measurement with its error.
fn measure(secs: f64, meters: &mut [Meter<'_>]) -> Result<Vec<f64>> {
    for m in meters.iter_mut() {
        for _ in 0..3 {
            (m.op)().with_context(|| format!("{} failed", m.what))?;
        }
    }
    let slice = Duration::from_secs_f64(secs) / ROUNDS;
    for _ in 0..ROUNDS {
        for m in meters.iter_mut() {
            m.run(slice)?;
        }
    }
    Ok(meters.iter().map(Meter::per_second).collect())
}

/// A verification that must accept.
fn accepted(verdict: bool) -> Result<()> {
    ensure!(verdict, "a valid signature was rejected");
    Ok(())
}

/// `openssl speed` for a public-key algorithm: (sign/s, verify/s).
fn openssl_pk(secs: f64, alg: &str) -> Option<(f64, f64)> {
    let out = Command::new("openssl").args(["speed", "-elapsed", "-seconds", &secs.ceil().max(1.0).to_string(), "-mr", alg]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with("+F"))?;
    let f: Vec<&str> = line.split(':').collect();
    let n = f.len();
    Some((f.get(n.checked_sub(2)?)?.parse().ok()?, f.get(n - 1)?.parse().ok()?))
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

/// A node started by a benchmark (`joule node --dir DIR` of this binary), killed when
/// dropped; its stdout is drained in the background after the listening line.
pub struct BenchNode {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`, from the node's first line.
    pub base: String,
}

impl BenchNode {
    pub fn start(g: &GlobalOpts, dir: &std::path::Path) -> Result<Self> {
        use std::io::{BufRead, BufReader};
        let exe = std::env::current_exe().context("locate the joule binary")?;
        let mut cmd = Command::new(exe);
        if let Some(p) = g.plugin_dir() {
            cmd.arg("--plugin-dir").arg(p);
        }
        if let Some(c) = &g.cache_dir {
            cmd.arg("--cache-dir").arg(c);
        }
        let child = cmd
            .arg("node")
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .context("start the node")?;
        // Owned from here: an early return kills it.
        let mut node = BenchNode { child, base: String::new() };
        let mut lines = BufReader::new(node.child.stdout.take().context("node stdout")?).lines();
        let first = lines.next().transpose()?.unwrap_or_default();
        let Some(base) = first.strip_prefix("joule node listening on ") else {
            bail!("unexpected first line from the node: {first:?}");
        };
        node.base = base.to_string();
        std::thread::spawn(move || for _ in lines {});
        Ok(node)
    }
}

impl Drop for BenchNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(g: &GlobalOpts, cmd: BenchCmd) -> Result<()> {
    let (json, seconds, only) = match cmd {
        BenchCmd::Crypto { json, seconds, only } => (json, seconds, only),
        BenchCmd::Tps(a) => return tps::run(g, a),
        BenchCmd::Identity(a) => return identity::run(g, a),
        BenchCmd::Contracts(a) => return contracts::run(g, a),
        BenchCmd::Net(a) => return net::run(g, a),
        BenchCmd::Network(a) => return network::run(g, a),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        bail!("--seconds must be a positive number");
    }
    if cfg!(debug_assertions) {
        eprintln!("bench crypto: this is a debug build; its native figures mean nothing (see docs/BENCHMARKS.md for the build)");
    }
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

/// Where a row's OpenSSL figure comes from.
enum OpenSsl<'a> {
    /// `openssl speed` (its own key, reused), already run; `None` where it has no figure.
    Speed(Option<f64>),
    /// Measured in process through libcrypto, in turns with the other columns; `None`
    /// without libcrypto.
    InProcess(Option<Box<dyn FnMut() -> Result<()> + 'a>>),
}

/// Measures rows: the plugin, native and (in process) OpenSSL columns in turns.
struct Bench {
    secs: f64,
    rows: Vec<Row>,
}

impl Bench {
    fn row<'a>(
        &mut self,
        alg: &str,
        op: &str,
        plugin: impl FnMut() -> Result<()> + 'a,
        native: impl FnMut() -> Result<()> + 'a,
        openssl: OpenSsl<'a>,
    ) -> Result<()> {
        let mut meters = vec![Meter::new(format!("{alg} {op} through the plugin"), plugin), Meter::new(format!("{alg} {op} in the native crate"), native)];
        let speed = match openssl {
            OpenSsl::Speed(ops) => ops,
            OpenSsl::InProcess(Some(call)) => {
                meters.push(Meter { what: format!("{alg} {op} in OpenSSL"), op: call, calls: 0, time: Duration::ZERO });
                None
            }
            OpenSsl::InProcess(None) => None,
        };
        let ops = measure(self.secs, &mut meters)?;
        self.rows.push(Row { alg: alg.into(), op: op.into(), plugin_ops: ops[0], native_ops: ops[1], openssl_ops: ops.get(2).copied().or(speed) });
        Ok(())
    }
}

/// OpenSSL verifying each cold key in turn, through libcrypto (`None` without it).
fn openssl_cold<'a>(ossl: Option<&'a Libcrypto>, how: Verify, keys: &'a [ColdKey], msg: &'a [u8]) -> OpenSsl<'a> {
    OpenSsl::InProcess(ossl.map(|lib| {
        let mut i = 0;
        Box::new(move || {
            let k = &keys[i % keys.len()];
            i += 1;
            accepted(lib.verify_fresh(how, &k.spki, msg, &k.sig)?)
        }) as Box<dyn FnMut() -> Result<()> + 'a>
    }))
}

/// One sender of the cold-key rows: its public key (DER SubjectPublicKeyInfo, as
/// transactions carry it) and its signature of the message, made by the plugin.
struct ColdKey {
    spki: Vec<u8>,
    sig: Vec<u8>,
}

/// [`COLD_KEYS`] fresh key pairs of `alg` from the plugin, each with its signature of `msg`
/// (made before and outside any measurement).
fn cold_keys(c: &CryptoService, alg: &str, msg: &[u8]) -> Result<Vec<ColdKey>> {
    (0..COLD_KEYS)
        .map(|_| {
            let kp = c.generate_key(alg)?;
            let sig = c.sign(alg, &kp.private_key, msg, None)?;
            Ok(ColdKey { spki: kp.public_key, sig })
        })
        .collect::<Result<_>>()
        .with_context(|| format!("{alg}: generating the cold-key set"))
}

/// The plugin's verification of each cold key in turn, as a [`Meter`] runs it.
fn plugin_cold<'a>(c: &'a CryptoService, alg: &'a str, keys: &'a [ColdKey], msg: &'a [u8]) -> impl FnMut() -> Result<()> + 'a {
    let mut i = 0;
    move || {
        let k = &keys[i % keys.len()];
        i += 1;
        accepted(c.verify(alg, &k.spki, msg, &k.sig, None)?)
    }
}

pub fn crypto_rows(c: &CryptoService, secs: f64, only: Option<&str>) -> Result<Vec<Row>> {
    let want = |alg: &str| only.is_none_or(|o| alg.contains(o));
    let mut b = Bench { secs, rows: vec![] };
    let msg = b"transfer 42 kWh from meter 7 to meter 9 at block 1000".to_vec();
    let ossl = match Libcrypto::open() {
        Ok(l) => {
            eprintln!("bench crypto: cold-key OpenSSL figures from {} (libcrypto.so.3, in process)", l.version);
            Some(l)
        }
        Err(e) => {
            eprintln!("bench crypto: no OpenSSL figures for cold keys: {e:#}");
            None
        }
    };

    if want("sm2") {
        use sm2::dsa::signature::{Signer, Verifier};
        use sm2::pkcs8::{DecodePrivateKey, DecodePublicKey};
        let id = joule_crypto::SM2_DEFAULT_ID;
        let kp = c.generate_key("sm2").context("sm2 (is crypto-gm loaded?)")?;
        let sig = c.sign("sm2", &kp.private_key, &msg, None).context("sm2 sign through the plugin")?;
        let sk = sm2::SecretKey::from_pkcs8_der(&kp.private_key).context("sm2 key")?;
        let signer = sm2::dsa::SigningKey::new(id, &sk).context("sm2 signer")?;
        let vk = signer.verifying_key().clone();
        // Each side accepts the other's signatures before anything is timed.
        let nsig: sm2::dsa::Signature = signer.try_sign(&msg).context("sm2 sign natively")?;
        vk.verify(&msg, &sm2::dsa::Signature::from_der(&sig)?).context("the plugin's sm2 signature fails native verification")?;
        accepted(c.verify("sm2", &kp.public_key, &msg, nsig.to_der().as_bytes(), None)?).context("the native sm2 signature fails the plugin's verification")?;
        let o = openssl_pk(secs, "sm2");
        b.row(
            "sm2",
            WARM_VERIFY,
            || accepted(c.verify("sm2", &kp.public_key, &msg, &sig, None)?),
            || Ok(vk.verify(&msg, &sm2::dsa::Signature::from_der(&sig)?)?),
            OpenSsl::Speed(o.map(|x| x.1)),
        )?;
        let keys = cold_keys(c, "sm2", &msg)?;
        let mut i = 0;
        b.row(
            "sm2",
            COLD_VERIFY,
            plugin_cold(c, "sm2", &keys, &msg),
            || {
                let k = &keys[i % keys.len()];
                i += 1;
                let vk = sm2::dsa::VerifyingKey::new(id, sm2::PublicKey::from_public_key_der(&k.spki)?)?;
                Ok(vk.verify(&msg, &sm2::dsa::Signature::from_der(&k.sig)?)?)
            },
            openssl_cold(ossl.as_ref(), Verify::Sm2 { id: id.as_bytes() }, &keys, &msg),
        )?;
        b.row(
            "sm2",
            "sign",
            || {
                ensure!(!c.sign("sm2", &kp.private_key, &msg, None)?.is_empty(), "empty signature");
                Ok(())
            },
            || {
                let s: sm2::dsa::Signature = signer.try_sign(&msg)?;
                black_box(s);
                Ok(())
            },
            OpenSsl::Speed(o.map(|x| x.0)),
        )?;
    }
    if want("ecdsa-p256") {
        use p256::ecdsa::Signature;
        use p256::ecdsa::signature::{Signer, Verifier};
        use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
        let kp = c.generate_key("ecdsa-p256").context("ecdsa-p256 (is crypto-intl loaded?)")?;
        let sig = c.sign("ecdsa-p256", &kp.private_key, &msg, None).context("ecdsa-p256 sign through the plugin")?;
        let signer = p256::ecdsa::SigningKey::from_pkcs8_der(&kp.private_key).context("p256 key")?;
        let vk = *signer.verifying_key();
        let nsig: Signature = signer.try_sign(&msg).context("p256 sign natively")?;
        vk.verify(&msg, &Signature::from_der(&sig)?).context("the plugin's ecdsa-p256 signature fails native verification")?;
        accepted(c.verify("ecdsa-p256", &kp.public_key, &msg, nsig.to_der().as_bytes(), None)?)
            .context("the native ecdsa-p256 signature fails the plugin's verification")?;
        let o = openssl_pk(secs, "ecdsap256");
        b.row(
            "ecdsa-p256",
            WARM_VERIFY,
            || accepted(c.verify("ecdsa-p256", &kp.public_key, &msg, &sig, None)?),
            || Ok(vk.verify(&msg, &Signature::from_der(&sig)?)?),
            OpenSsl::Speed(o.map(|x| x.1)),
        )?;
        let keys = cold_keys(c, "ecdsa-p256", &msg)?;
        let mut i = 0;
        b.row(
            "ecdsa-p256",
            COLD_VERIFY,
            plugin_cold(c, "ecdsa-p256", &keys, &msg),
            || {
                let k = &keys[i % keys.len()];
                i += 1;
                let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&k.spki)?;
                Ok(vk.verify(&msg, &Signature::from_der(&k.sig)?)?)
            },
            openssl_cold(ossl.as_ref(), Verify::EcdsaP256, &keys, &msg),
        )?;
        b.row(
            "ecdsa-p256",
            "sign",
            || {
                ensure!(!c.sign("ecdsa-p256", &kp.private_key, &msg, None)?.is_empty(), "empty signature");
                Ok(())
            },
            || {
                let s: Signature = signer.try_sign(&msg)?;
                black_box(s);
                Ok(())
            },
            OpenSsl::Speed(o.map(|x| x.0)),
        )?;
    }
    if want("ed25519") && c.provides(AlgorithmKind::Signature, "ed25519") {
        use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
        use ed25519_dalek::{Signature, Signer};
        let kp = c.generate_key("ed25519")?;
        let sig = c.sign("ed25519", &kp.private_key, &msg, None).context("ed25519 sign through the plugin")?;
        let sk = ed25519_dalek::SigningKey::from_pkcs8_der(&kp.private_key).context("ed25519 key")?;
        let vk = sk.verifying_key();
        // Ed25519 is deterministic: both sides must produce the very same signature.
        ensure!(sk.try_sign(&msg)?.to_bytes().as_slice() == sig.as_slice(), "the plugin's ed25519 signature differs from the native crate's");
        vk.verify_strict(&msg, &Signature::from_slice(&sig)?).context("the plugin's ed25519 signature fails native verification")?;
        let o = openssl_pk(secs, "ed25519");
        b.row(
            "ed25519",
            WARM_VERIFY,
            || accepted(c.verify("ed25519", &kp.public_key, &msg, &sig, None)?),
            || Ok(vk.verify_strict(&msg, &Signature::from_slice(&sig)?)?),
            OpenSsl::Speed(o.map(|x| x.1)),
        )?;
        let keys = cold_keys(c, "ed25519", &msg)?;
        let mut i = 0;
        b.row(
            "ed25519",
            COLD_VERIFY,
            plugin_cold(c, "ed25519", &keys, &msg),
            || {
                let k = &keys[i % keys.len()];
                i += 1;
                let vk = ed25519_dalek::VerifyingKey::from_public_key_der(&k.spki)?;
                Ok(vk.verify_strict(&msg, &Signature::from_slice(&k.sig)?)?)
            },
            openssl_cold(ossl.as_ref(), Verify::Ed25519, &keys, &msg),
        )?;
    }
    let big = vec![0x5au8; MIB];
    if want("sm3") {
        use sm3::Digest;
        let expected = sm3::Sm3::digest(&big).to_vec();
        b.row(
            "sm3",
            "digest 1 MiB",
            || digest_matches(&c.digest("sm3", &big)?, &expected),
            || digest_matches(&sm3::Sm3::digest(&big), &expected),
            OpenSsl::Speed(openssl_evp(secs, "sm3", MIB)),
        )?;
    }
    if want("sha256") {
        use sha2::Digest;
        let expected = sha2::Sha256::digest(&big).to_vec();
        b.row(
            "sha256",
            "digest 1 MiB",
            || digest_matches(&c.digest("sha256", &big)?, &expected),
            || digest_matches(&sha2::Sha256::digest(&big), &expected),
            OpenSsl::Speed(openssl_evp(secs, "sha256", MIB)),
        )?;
    }
    let key16 = [7u8; 16];
    let key32 = [7u8; 32];
    let nonce = [9u8; 12];
    if want("sm4-gcm") {
        use aes_gcm::aead::{Aead, KeyInit};
        let native = aes_gcm::AesGcm::<sm4::Sm4, aes_gcm::aead::consts::U12>::new_from_slice(&key16).context("sm4-gcm key")?;
        let expected = native.encrypt((&nonce).into(), big.as_slice()).map_err(|e| anyhow::anyhow!("sm4-gcm native encryption: {e}"))?;
        ensure!(c.encrypt("sm4-gcm", &key16, &nonce, b"", &big)? == expected, "sm4-gcm: the plugin's ciphertext differs from the native crate's");
        b.row(
            "sm4-gcm",
            "encrypt 1 MiB",
            || ciphertext_matches(&c.encrypt("sm4-gcm", &key16, &nonce, b"", &big)?, &expected),
            || ciphertext_matches(&native.encrypt((&nonce).into(), big.as_slice()).map_err(|e| anyhow::anyhow!("{e}"))?, &expected),
            OpenSsl::Speed(openssl_evp(secs, "sm4-gcm", MIB)),
        )?;
    }
    if want("aes-256-gcm") {
        use aes_gcm::aead::{Aead, KeyInit};
        let native = aes_gcm::Aes256Gcm::new_from_slice(&key32).context("aes key")?;
        let expected = native.encrypt((&nonce).into(), big.as_slice()).map_err(|e| anyhow::anyhow!("aes-256-gcm native encryption: {e}"))?;
        ensure!(c.encrypt("aes-256-gcm", &key32, &nonce, b"", &big)? == expected, "aes-256-gcm: the plugin's ciphertext differs from the native crate's");
        b.row(
            "aes-256-gcm",
            "encrypt 1 MiB",
            || ciphertext_matches(&c.encrypt("aes-256-gcm", &key32, &nonce, b"", &big)?, &expected),
            || ciphertext_matches(&native.encrypt((&nonce).into(), big.as_slice()).map_err(|e| anyhow::anyhow!("{e}"))?, &expected),
            OpenSsl::Speed(openssl_evp(secs, "aes-256-gcm", MIB)),
        )?;
    }
    if want("call") {
        use sm3::Digest;
        let expected = sm3::Sm3::digest(b"abc").to_vec();
        b.row(
            "minimal call",
            "sm3 of 3 bytes",
            || digest_matches(&c.digest("sm3", b"abc")?, &expected),
            || digest_matches(&sm3::Sm3::digest(b"abc"), &expected),
            OpenSsl::Speed(None),
        )?;
    }
    Ok(b.rows)
}

fn digest_matches(got: &[u8], expected: &[u8]) -> Result<()> {
    ensure!(got == expected, "wrong digest");
    Ok(())
}

/// The last 16 bytes (a GCM ciphertext's tag), or all of a shorter input.
fn tail(ciphertext: &[u8]) -> &[u8] {
    &ciphertext[ciphertext.len().saturating_sub(16)..]
}

/// Length and tag against the expected ciphertext: the GCM tag covers every ciphertext
/// byte, and comparing 16 bytes costs nothing next to encrypting 1 MiB (the full
/// ciphertexts were compared once before the measurement).
fn ciphertext_matches(got: &[u8], expected: &[u8]) -> Result<()> {
    ensure!(got.len() == expected.len() && tail(got) == tail(expected), "wrong ciphertext");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_call_ends_the_measurement_naming_it() {
        let mut calls = 0;
        let mut meters = [
            Meter::new("sm2 verify (warm key) in the native crate".into(), || Ok(())),
            Meter::new("sm2 verify (warm key) through the plugin".into(), || {
                calls += 1;
                ensure!(calls < 5, "boom");
                Ok(())
            }),
        ];
        let err = measure(0.01, &mut meters).expect_err("the fifth call fails");
        let text = format!("{err:#}");
        assert!(text.contains("sm2 verify (warm key) through the plugin failed") && text.contains("boom"), "{text}");
        drop(meters);
        assert_eq!(calls, 5, "no call after the failing one");
    }

    #[test]
    fn columns_are_measured_in_turns() {
        let order = std::cell::RefCell::new(vec![]);
        let step = |c: char| {
            order.borrow_mut().push(c);
            Ok(())
        };
        let mut meters = [Meter::new("a".into(), || step('a')), Meter::new("b".into(), || step('b'))];
        let ops = measure(0.001, &mut meters).expect("measured");
        assert!(ops.iter().all(|&o| o > 0.0));
        drop(meters);
        let order = order.into_inner();
        // Warm-up, then ROUNDS alternations at least.
        let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(switches >= 2 * ROUNDS as usize - 1, "{switches} switches");
    }

    #[test]
    fn a_rejected_signature_is_a_failure() {
        assert!(accepted(true).is_ok());
        assert!(accepted(false).is_err());
    }

    #[test]
    fn outputs_are_compared_with_the_expected_ones() {
        assert!(digest_matches(&[1, 2], &[1, 2]).is_ok());
        assert!(digest_matches(&[1, 2], &[1, 3]).is_err());
        let expected: Vec<u8> = (0..40).collect();
        assert!(ciphertext_matches(&expected, &expected).is_ok());
        let mut bad_tag = expected.clone();
        bad_tag[39] ^= 1;
        assert!(ciphertext_matches(&bad_tag, &expected).is_err());
        assert!(ciphertext_matches(&expected[..39], &expected).is_err());
        assert!(ciphertext_matches(&[], &[]).is_ok());
        assert!(ciphertext_matches(&[1], &[2]).is_err(), "shorter than a tag: compared whole");
    }
}
