//! `joule crypto …`: every command goes through the active crypto plugins and reads and
//! writes the formats OpenSSL uses (PKCS#8 / SPKI PEM, DER signatures, raw ciphertext).

use super::{GlobalOpts, Negative, read_input, write_output};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use joule_crypto::{AlgorithmKind, CryptoService, pem};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum CryptoCmd {
    /// Generate a key pair; writes the private key as PKCS#8 PEM.
    Keygen {
        #[arg(long)]
        alg: String,
        #[arg(long)]
        out: PathBuf,
        /// Also write the public key (SPKI PEM) here.
        #[arg(long)]
        pub_out: Option<PathBuf>,
    },
    /// Derive the public key (SPKI PEM) from a PKCS#8 private key.
    Pubkey {
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Algorithm; inferred from the key's OID when omitted.
        #[arg(long)]
        alg: Option<String>,
    },
    /// Sign a file; writes a DER signature (raw 64 bytes for Ed25519).
    Sign {
        #[arg(long)]
        alg: String,
        #[arg(long)]
        key: PathBuf,
        /// SM2 distinguishing identifier (default 1234567812345678).
        #[arg(long)]
        id: Option<String>,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a signature: exit 0 valid, 1 invalid, 2 error.
    Verify {
        #[arg(long)]
        alg: String,
        #[arg(long = "pub")]
        public_key: PathBuf,
        #[arg(long)]
        id: Option<String>,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        sig: PathBuf,
    },
    /// Print the hex digest of a file.
    Hash {
        #[arg(long)]
        alg: String,
        #[arg(long = "in")]
        input: PathBuf,
    },
    /// Encrypt: public-key algorithms take `--pub`, ciphers `--key` (hex or a file of raw
    /// bytes) and `--iv` (hex).
    Encrypt(CipherArgs),
    /// Decrypt: public-key algorithms take `--key` (PKCS#8 PEM), ciphers as for encrypt.
    Decrypt(CipherArgs),
    /// List active algorithms and the plugins serving them.
    Algorithms {
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct CipherArgs {
    #[arg(long)]
    alg: String,
    /// Recipient public key (SPKI PEM), for public-key encryption.
    #[arg(long = "pub")]
    public_key: Option<PathBuf>,
    /// Private key (PKCS#8 PEM) for public-key decryption; for ciphers the key as hex, or
    /// a file holding it (hex or raw bytes).
    #[arg(long)]
    key: Option<String>,
    /// IV or nonce, hex.
    #[arg(long, alias = "nonce", default_value = "")]
    iv: String,
    /// Additional authenticated data for AEAD ciphers, hex.
    #[arg(long, default_value = "")]
    aad: String,
    #[arg(long = "in")]
    input: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

pub fn run(g: &GlobalOpts, cmd: CryptoCmd) -> Result<()> {
    let c = g.crypto()?;
    match cmd {
        CryptoCmd::Keygen { alg, out, pub_out } => {
            let kp = c.generate_key(&alg)?;
            write_secret(&out, pem::encode(pem::PRIVATE_KEY, &kp.private_key).as_bytes())?;
            if let Some(p) = pub_out {
                write_output(&p, pem::encode(pem::PUBLIC_KEY, &kp.public_key).as_bytes())?;
            }
            Ok(())
        }
        CryptoCmd::Pubkey { input, out, alg } => {
            let sk = zeroize::Zeroizing::new(pem::decode(pem::PRIVATE_KEY, &read_input(&input)?)?);
            let alg = match alg {
                Some(a) => a,
                None => infer_algorithm(&sk).context("cannot tell the key's algorithm from its OID; pass --alg")?.to_string(),
            };
            let pk = c.public_key(&alg, &sk)?;
            write_output(&out, pem::encode(pem::PUBLIC_KEY, &pk).as_bytes())
        }
        CryptoCmd::Sign { alg, key, id, input, out } => {
            let sk = zeroize::Zeroizing::new(pem::decode(pem::PRIVATE_KEY, &read_input(&key)?)?);
            let sig = c.sign(&alg, &sk, &read_input(&input)?, id.as_deref().map(str::as_bytes))?;
            write_output(&out, &sig)
        }
        CryptoCmd::Verify { alg, public_key, id, input, sig } => {
            let pk = pem::decode(pem::PUBLIC_KEY, &read_input(&public_key)?)?;
            if c.verify(&alg, &pk, &read_input(&input)?, &read_input(&sig)?, id.as_deref().map(str::as_bytes))? {
                println!("Signature valid");
                Ok(())
            } else {
                Err(Negative("Signature invalid".into()).into())
            }
        }
        CryptoCmd::Hash { alg, input } => {
            println!("{}", hex::encode(c.digest(&alg, &read_input(&input)?)?));
            Ok(())
        }
        CryptoCmd::Encrypt(a) => cipher(&c, a, true),
        CryptoCmd::Decrypt(a) => cipher(&c, a, false),
        CryptoCmd::Algorithms { json } => {
            let rows = c.active_algorithms();
            if json {
                let v: Vec<_> = rows.iter().map(|(a, p, v)| serde_json::json!({"algorithm": a, "plugin": p, "version": v})).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (a, p, v) in rows {
                    println!("{:<22} {:<20} {p} {v}  {}", a.kind, a.id, a.standard);
                }
            }
            Ok(())
        }
    }
}

fn cipher(c: &CryptoService, a: CipherArgs, encrypt: bool) -> Result<()> {
    let input = read_input(&a.input)?;
    let is_pke = c.provides(AlgorithmKind::PublicKeyEncryption, &a.alg);
    let out = if is_pke {
        if encrypt {
            let p = a.public_key.context("public-key encryption needs --pub PUBKEY.pem")?;
            c.pke_encrypt(&a.alg, &pem::decode(pem::PUBLIC_KEY, &read_input(&p)?)?, &input)?
        } else {
            let k = a.key.context("public-key decryption needs --key PRIVATE.pem")?;
            let sk = zeroize::Zeroizing::new(pem::decode(pem::PRIVATE_KEY, &read_input(Path::new(&k))?)?);
            c.pke_decrypt(&a.alg, &sk, &input)?
        }
    } else {
        let key = zeroize::Zeroizing::new(symmetric_key(a.key.as_deref().context("a cipher needs --key (hex, or a file)")?)?);
        let iv = hex::decode(&a.iv).context("--iv is not hex")?;
        let aad = hex::decode(&a.aad).context("--aad is not hex")?;
        if encrypt { c.encrypt(&a.alg, &key, &iv, &aad, &input)? } else { c.decrypt(&a.alg, &key, &iv, &aad, &input)? }
    };
    write_output(&a.out, &out)
}

/// A symmetric key given as hex, or as a file holding hex or raw bytes.
fn symmetric_key(arg: &str) -> Result<Vec<u8>> {
    if let Ok(k) = hex::decode(arg)
        && !k.is_empty()
    {
        return Ok(k);
    }
    let path = Path::new(arg);
    if !path.exists() {
        bail!("--key {arg:?} is neither hex nor an existing file");
    }
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(hex::decode(text.trim()).unwrap_or(bytes))
}

/// Write a private key readable by the owner only.
fn write_secret(path: &Path, data: &[u8]) -> Result<()> {
    if path.as_os_str() == "-" {
        return write_output(path, data);
    }
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("create {}", path.display()))?;
    f.write_all(data).with_context(|| format!("write {}", path.display()))
}

/// The algorithm a PKCS#8 key belongs to, from its AlgorithmIdentifier.
pub fn infer_algorithm(pkcs8_der: &[u8]) -> Option<&'static str> {
    use pkcs8::der::Decode;
    let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8_der).ok()?;
    let oid = info.algorithm.oid.to_string();
    let param = info.algorithm.parameters_oid().ok().map(|o| o.to_string());
    match (oid.as_str(), param.as_deref()) {
        ("1.2.840.10045.2.1", Some("1.2.156.10197.1.301")) | ("1.2.156.10197.1.301", _) => Some("sm2"),
        ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => Some("ecdsa-p256"),
        ("1.3.101.112", _) => Some("ed25519"),
        _ => None,
    }
}
