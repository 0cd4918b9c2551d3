//! The plugin manifest: what a plugin claims to be, bound to its exact bytes.
//!
//! A plugin ships as two files, `NAME.wasm` (a component, or a core module that carries
//! wit-bindgen's component-type section) and `NAME.toml` (this manifest). The manifest
//! names the plugin, its kind (which WIT world it must implement), its version and vendor,
//! the algorithms it provides, and the SHA-256 of the wasm file. A vendor may sign the
//! manifest; since the manifest carries the wasm hash, the signature covers the code.
//!
//! This crate is deliberately small (no wasmtime) so the build tooling and vendors'
//! packing step can use it without building the node.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Errors reading, checking or packing a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid TOML: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("manifest field `{field}`: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("wasm content hash mismatch: manifest says {expected}, file hashes to {actual}")]
    HashMismatch { expected: String, actual: String },
    #[error("cannot turn the core module into a component: {0}")]
    Componentize(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A vector the host checks before activating a plugin, for algorithms the host has no
/// published vectors of its own for (a vendor's private algorithm). Byte fields are hex.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KnownAnswer {
    /// `kind:id`, e.g. `hash:acme-hash`.
    pub algorithm: String,
    /// Hash or cipher input, or the signed message.
    #[serde(default)]
    pub input: String,
    /// Expected digest or ciphertext.
    #[serde(default)]
    pub output: String,
    /// Cipher key (raw) or SPKI public key for signatures.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub aad: String,
    /// A signature that must verify under `key` over `input`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
}

/// A vendor's signature over [`Manifest::signing_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VendorSignature {
    /// `ed25519` or `sm2` (SM2 with SM3 and the default user ID).
    pub algorithm: String,
    /// The vendor's public key, SubjectPublicKeyInfo DER in hex.
    pub public_key: String,
    /// The signature in hex (raw for Ed25519, DER for SM2).
    pub value: String,
}

/// The manifest as written in `NAME.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    pub name: String,
    /// The plugin kind, which decides the WIT world the component must target (`crypto`,
    /// `consensus`, …). The node checks it against the kinds registered with its kernel.
    pub kind: String,
    pub version: String,
    pub vendor: String,
    #[serde(default)]
    pub description: String,
    /// `class:id` for everything the plugin provides, e.g. `hash:sm3`, `signature:sm2`,
    /// `consensus:poa`. The plugin's kind says which classes it may provide.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Lowercase hex SHA-256 of the wasm file.
    #[serde(default)]
    pub wasm_sha256: String,
    #[serde(default, rename = "known-answer", skip_serializing_if = "Vec::is_empty")]
    pub known_answers: Vec<KnownAnswer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<VendorSignature>,
}

/// A manifest's description is shown in listings and the audit trail, not a place for data.
pub const MAX_DESCRIPTION: usize = 1024;

/// Domain separation for manifest signatures, so a manifest signature can never be
/// mistaken for a signature over anything else.
const SIGNING_DOMAIN: &[u8] = b"joule-plugin-manifest/1\n";

impl Manifest {
    /// Parse and check a manifest's fields (names, version, algorithm syntax).
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let m: Manifest = toml::from_str(text)?;
        m.validate()?;
        Ok(m)
    }

    pub fn to_toml(&self) -> String {
        // Serialising a struct of strings and vectors cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Field checks that do not need the wasm bytes.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let ident = |field: &'static str, v: &str| {
            let ok = !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
                && v.as_bytes()[0].is_ascii_alphanumeric();
            if ok { Ok(()) } else { Err(ManifestError::Field { field, reason: format!("{v:?} must be 1-64 chars of [a-z0-9_-], starting alphanumeric") }) }
        };
        ident("name", &self.name)?;
        parse_version(&self.version)
            .ok_or_else(|| ManifestError::Field { field: "version", reason: format!("{:?} is not MAJOR.MINOR.PATCH", self.version) })?;
        if self.vendor.trim().is_empty() || self.vendor.len() > 128 {
            return Err(ManifestError::Field { field: "vendor", reason: "must be 1-128 characters".into() });
        }
        if self.description.len() > MAX_DESCRIPTION {
            return Err(ManifestError::Field {
                field: "description",
                reason: format!("is {} bytes, over the limit of {MAX_DESCRIPTION}", self.description.len()),
            });
        }
        ident("kind", &self.kind)?;
        for a in &self.algorithms {
            let (class, id) = a.split_once(':').ok_or_else(|| ManifestError::Field { field: "algorithms", reason: format!("{a:?} is not `class:id`") })?;
            ident("algorithms", class)?;
            ident("algorithms", id)?;
        }
        if !self.wasm_sha256.is_empty() && (self.wasm_sha256.len() != 64 || hex::decode(&self.wasm_sha256).is_err()) {
            return Err(ManifestError::Field { field: "wasm-sha256", reason: "must be 64 hex digits".into() });
        }
        for k in &self.known_answers {
            if !self.algorithms.contains(&k.algorithm) {
                return Err(ManifestError::Field { field: "known-answer", reason: format!("vector for {:?}, which the plugin does not list", k.algorithm) });
            }
            for (f, v) in [("input", &k.input), ("output", &k.output), ("key", &k.key), ("nonce", &k.nonce), ("aad", &k.aad), ("signature", &k.signature)] {
                if hex::decode(v).is_err() {
                    return Err(ManifestError::Field { field: "known-answer", reason: format!("{f} of {:?} is not hex", k.algorithm) });
                }
            }
        }
        Ok(())
    }

    /// `(major, minor, patch)` of the version; valid after [`Manifest::parse`].
    pub fn semver(&self) -> (u64, u64, u64) {
        parse_version(&self.version).unwrap_or_default()
    }

    /// The bytes a vendor signs: a domain tag, then the manifest without its signature as
    /// compact JSON with fields in declaration order (deterministic for a given manifest).
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        let mut out = SIGNING_DOMAIN.to_vec();
        // A struct of strings and vectors always serialises.
        out.extend(serde_json::to_vec(&unsigned).unwrap_or_default());
        out
    }

    /// Check that `wasm` is the code this manifest describes.
    pub fn check_wasm(&self, wasm: &[u8]) -> Result<(), ManifestError> {
        let actual = sha256_hex(wasm);
        if self.wasm_sha256 != actual {
            return Err(ManifestError::HashMismatch { expected: self.wasm_sha256.clone(), actual });
        }
        Ok(())
    }
}

/// `(major, minor, patch)` of a `MAJOR.MINOR.PATCH` version without leading zeros.
pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.').map(|p| if p.is_empty() || (p.len() > 1 && p.starts_with('0')) { None } else { p.parse::<u64>().ok() });
    let r = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(r)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// True when the bytes are a component (rather than a core module): layer 1 in the header.
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[0..4] == *b"\0asm" && bytes[4..8] == [0x0d, 0x00, 0x01, 0x00]
}

/// Turn a core module built with wit-bindgen into a component; components pass through.
pub fn componentize(bytes: &[u8]) -> Result<Vec<u8>, ManifestError> {
    if is_component(bytes) {
        return Ok(bytes.to_vec());
    }
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(bytes)
        .and_then(|mut enc| enc.encode())
        .map_err(|e| ManifestError::Componentize(format!("{e:#}")))
}

/// Package a built plugin: componentize `wasm`, fill in version and hash, and write
/// `OUT_DIR/NAME.wasm` and `OUT_DIR/NAME.toml`. Returns the manifest written (unsigned).
pub fn pack(wasm: &[u8], mut manifest: Manifest, out_dir: &Path) -> Result<(Manifest, PathBuf), ManifestError> {
    let component = componentize(wasm)?;
    manifest.wasm_sha256 = sha256_hex(&component);
    manifest.signature = None;
    manifest.validate()?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ManifestError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let wasm_path = out_dir.join(format!("{}.wasm", manifest.name));
    std::fs::write(&wasm_path, &component).map_err(io(&wasm_path))?;
    let toml_path = out_dir.join(format!("{}.toml", manifest.name));
    std::fs::write(&toml_path, manifest.to_toml()).map_err(io(&toml_path))?;
    Ok((manifest, toml_path))
}

/// The version a crate's `DIR/Cargo.toml` declares: its `[package] version`, or, when that
/// says `version.workspace = true`, the `[workspace.package] version` of its workspace, the
/// directory named by `package.workspace` or else the nearest directory from `DIR` upwards
/// (`DIR` included) whose `Cargo.toml` has a `[workspace]` table, as cargo finds it. `None`
/// when the file cannot be read or parsed, has no `[package]`, declares no version, or the
/// workspace gives none. Used by the build tooling and `joule plugin pack` when a plugin's
/// `plugin.toml` has no `version` of its own.
pub fn cargo_package_version(dir: &Path) -> Option<String> {
    fn read(dir: &Path) -> Option<toml::Table> {
        toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).ok()?).ok()
    }
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let cargo_toml = read(&dir)?;
    let package = cargo_toml.get("package")?.as_table()?;
    match package.get("version")? {
        toml::Value::String(v) => Some(v.clone()),
        toml::Value::Table(t) if t.get("workspace").and_then(toml::Value::as_bool) == Some(true) => {
            let root = match package.get("workspace").and_then(toml::Value::as_str) {
                Some(path) => read(&dir.join(path))?,
                None => dir.ancestors().filter_map(read).find(|t| t.contains_key("workspace"))?,
            };
            Some(root.get("workspace")?.get("package")?.get("version")?.as_str()?.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest::parse(
            r#"
name = "crypto-gm"
kind = "crypto"
version = "0.1.0"
vendor = "Joule"
algorithms = ["hash:sm3", "signature:sm2"]
"#,
        )
        .expect("valid manifest")
    }

    #[test]
    fn a_description_longer_than_the_limit_is_refused_naming_the_field() {
        let with = |n: usize| format!("name = \"a\"\nkind = \"crypto\"\nversion = \"1.0.0\"\nvendor = \"v\"\ndescription = \"{}\"", "d".repeat(n));
        assert!(Manifest::parse(&with(MAX_DESCRIPTION)).is_ok());
        let e = Manifest::parse(&with(MAX_DESCRIPTION + 1)).expect_err("over the limit");
        assert!(matches!(e, ManifestError::Field { field: "description", .. }), "{e}");
    }

    #[test]
    fn rejects_bad_fields() {
        for bad in [
            "name = \"Bad Name\"\nkind = \"crypto\"\nversion = \"0.1.0\"\nvendor = \"v\"",
            "name = \"a\"\nkind = \"crypto\"\nversion = \"1.0\"\nvendor = \"v\"",
            "name = \"a\"\nkind = \"crypto\"\nversion = \"01.0.0\"\nvendor = \"v\"",
            "name = \"a\"\nkind = \"Rocket Ship\"\nversion = \"1.0.0\"\nvendor = \"v\"",
            "name = \"a\"\nkind = \"crypto\"\nversion = \"1.0.0\"\nvendor = \"v\"\nalgorithms = [\"Hash:sm3\"]",
            "name = \"a\"\nkind = \"crypto\"\nversion = \"1.0.0\"\nvendor = \"v\"\nalgorithms = [\"sm3\"]",
            "name = \"a\"\nkind = \"crypto\"\nversion = \"1.0.0\"\nvendor = \"v\"\nsurprise = 1",
        ] {
            assert!(Manifest::parse(bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn signing_bytes_ignore_signature_but_cover_hash() {
        let mut m = sample();
        m.wasm_sha256 = "00".repeat(32);
        let a = m.signing_bytes();
        m.signature = Some(VendorSignature { algorithm: "ed25519".into(), public_key: "aa".into(), value: "bb".into() });
        assert_eq!(a, m.signing_bytes());
        m.wasm_sha256 = "11".repeat(32);
        assert_ne!(a, m.signing_bytes());
        let round = Manifest::parse(&m.to_toml()).expect("round trip");
        assert_eq!(round, m);
    }

    #[test]
    fn hash_check() {
        let mut m = sample();
        m.wasm_sha256 = sha256_hex(b"code");
        assert!(m.check_wasm(b"code").is_ok());
        assert!(matches!(m.check_wasm(b"c0de"), Err(ManifestError::HashMismatch { .. })));
    }

    #[test]
    fn provided_entries_are_class_colon_id() {
        let m =
            |kind: &str, alg: &str| Manifest::parse(&format!("name = \"p\"\nkind = \"{kind}\"\nversion = \"0.1.0\"\nvendor = \"v\"\nalgorithms = [\"{alg}\"]"));
        assert!(m("consensus", "consensus:poa").is_ok());
        assert!(m("crypto", "hash:sm3").is_ok());
        // Which classes a kind may provide is the kind's business, checked at install.
        assert!(m("gateway", "policy:rbac").is_ok());
        assert!(m("consensus", "consensus:Bad Name").is_err());
        assert!(m("crypto", "sm3").unwrap_err().to_string().contains("not `class:id`"));
        assert!(m("Crypto", "hash:sm3").is_err());
    }

    #[test]
    fn cargo_package_version_reads_the_package_or_its_workspace() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let write = |rel: &str, text: &str| {
            let dir = tmp.path().join(rel);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("Cargo.toml"), text).expect("write Cargo.toml");
            dir
        };
        let root = write(".", "[workspace]\nmembers = [\"own\", \"inherits\", \"nested/deep\"]\n\n[workspace.package]\nversion = \"2.3.4\"\n");
        let own = write("own", "[package]\nname = \"own\"\nversion = \"1.0.0\"\n");
        assert_eq!(cargo_package_version(&own).as_deref(), Some("1.0.0"));
        // `version.workspace = true`: the nearest enclosing workspace's version, however deep.
        let inherits = write("inherits", "[package]\nname = \"inherits\"\nversion.workspace = true\n");
        assert_eq!(cargo_package_version(&inherits).as_deref(), Some("2.3.4"));
        let deep = write("nested/deep", "[package]\nname = \"deep\"\nversion = { workspace = true }\n");
        assert_eq!(cargo_package_version(&deep).as_deref(), Some("2.3.4"));
        // A crate that is its own workspace (like the vendor example) stops the search at itself.
        let alone = write("alone", "[package]\nname = \"alone\"\nversion.workspace = true\n\n[workspace]\n\n[workspace.package]\nversion = \"0.9.0\"\n");
        assert_eq!(cargo_package_version(&alone).as_deref(), Some("0.9.0"));
        // `package.workspace` names the workspace root explicitly.
        let elsewhere = write("x/y", "[package]\nname = \"y\"\nworkspace = \"../..\"\nversion.workspace = true\n");
        assert_eq!(cargo_package_version(&elsewhere).as_deref(), Some("2.3.4"));
        // No version anywhere: None, never a made-up default.
        let silent = write("silent", "[package]\nname = \"silent\"\n");
        assert_eq!(cargo_package_version(&silent), None);
        write("bare", "[workspace]\n");
        let orphan = write("bare/orphan", "[package]\nname = \"orphan\"\nversion.workspace = true\n");
        assert_eq!(cargo_package_version(&orphan), None, "the nearest workspace has no [workspace.package] version");
        assert_eq!(cargo_package_version(&root), None, "a virtual manifest has no [package]");
        assert_eq!(cargo_package_version(&tmp.path().join("missing")), None);
    }
}
