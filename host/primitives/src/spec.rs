//! A channel's chain specification: the genesis fields that define its ledger (§5.3).
//!
//! Its canonical encoding (`docs/formats.md`) is what block 0 commits to: block 0's
//! `parent_hash` is the suite hash of [`ChainSpec::encode`]. So nodes with different
//! specifications never share a chain, and renaming a field of the operator's
//! configuration files changes nothing on chain: only this type's bytes count.

use crate::encoding::{DecodeError, Encode};
use crate::merkle::{HashError, Hasher};
use crate::suite::CryptoSuite;
use crate::types::{ChannelId, Hash32, MAX_IDENT_BYTES, MAX_KEY_BYTES, hex_bytes};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// A validator of the channel's consensus.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ValidatorSpec {
    /// SubjectPublicKeyInfo, DER.
    #[serde(with = "hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
    pub public_key: Vec<u8>,
    /// Voting weight; 1 for plain PoA.
    pub weight: u64,
}

/// A node of the channel (§3.8: a consortium chain's predefined set of nodes): who may
/// connect to the channel's peer-to-peer network.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct NodeSpec {
    /// A name for people (1-64 characters of [a-z0-9_-]).
    pub name: String,
    /// The node's static network key: a compressed SEC1 point (33 bytes) on the suite's
    /// curve (P-256 for `intl`, SM2 for `gm`), as its Noise handshakes present it.
    #[serde(with = "hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
    pub network_key: Vec<u8>,
}

/// Length of a node's network key.
pub const NETWORK_KEY_BYTES: usize = 33;

/// Who may deploy contracts on a channel (§4.3.2).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployPolicy {
    Anyone,
    /// The channel's validators (their node keys' accounts).
    Validators,
    /// These account ids.
    Accounts(Vec<Hash32>),
}

impl DeployPolicy {
    /// Whether `account` may deploy, given the validators' account ids.
    pub fn allows(&self, account: &Hash32, validator_accounts: &[Hash32]) -> bool {
        match self {
            DeployPolicy::Anyone => true,
            DeployPolicy::Validators => validator_accounts.contains(account),
            DeployPolicy::Accounts(list) => list.contains(account),
        }
    }
}

/// A member organisation of a chain with certificates, at genesis.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct OrganisationSpec {
    /// 1-64 characters of [a-z0-9_-].
    pub name: String,
    /// The organisation's CA certificate (DER), issued by the consortium's root.
    #[serde(with = "hex_bytes")]
    pub ca_certificate: Vec<u8>,
    /// End-entity certificates (DER) the chain starts with, issued by the organisation's
    /// CA: its admins and its validators' node keys.
    #[serde(with = "crate::types::hex_list")]
    pub certificates: Vec<Vec<u8>>,
}

/// Identity by certificates (guide §6.3.1): every transaction's sender holds a current
/// certificate of a member organisation, recorded on chain.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct IdentitySpec {
    /// The consortium's root CA certificate (DER, self-signed).
    #[serde(with = "hex_bytes")]
    pub root_certificate: Vec<u8>,
    pub organisations: Vec<OrganisationSpec>,
}

/// Largest certificate a chain records.
pub const MAX_CERTIFICATE_BYTES: usize = 16 << 10;
/// Most organisations a channel lists at genesis.
pub const MAX_ORGANISATIONS: usize = 256;

/// The fields that define a channel's ledger, fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ChainSpec {
    pub channel: ChannelId,
    /// All three names (suite id, hash, signature) are committed, so a suite whose
    /// algorithms changed is another chain.
    pub crypto_suite: CryptoSuite,
    /// The consensus engine id a plugin provides, e.g. `poa`.
    pub consensus: String,
    /// The engine's configuration (TOML text), passed to its `configure`.
    pub consensus_config: String,
    /// Largest gas limit a transaction may declare (燃料限制).
    pub gas_limit: u64,
    /// Most gas the transactions of one block may use: a transaction is included only if
    /// the gas used before it plus its own limit fits.
    pub block_gas_limit: u64,
    /// Version of the contract gas schedule (docs/contracts.md); a node without it refuses
    /// the chain.
    pub gas_schedule: u32,
    /// Who may deploy contracts.
    pub contract_deployers: DeployPolicy,
    /// Unix milliseconds: block 0's timestamp.
    pub genesis_time_ms: u64,
    pub validators: Vec<ValidatorSpec>,
    /// The nodes that may join the channel's network; empty for a chain of one node that
    /// talks to no peers.
    pub nodes: Vec<NodeSpec>,
    /// Identity by certificates; `None`: any key may send (accounts are keys). Encoded
    /// after the other fields only when set, so the chains made before it kept their
    /// genesis hash ([`Encode::encode`] below).
    #[borsh(skip)]
    #[serde(default)]
    pub identity: Option<IdentitySpec>,
}

/// Largest consensus configuration text.
pub const MAX_CONSENSUS_CONFIG_BYTES: usize = 64 << 10;
/// Most validators a channel may list.
pub const MAX_VALIDATORS: usize = 1024;

impl ChainSpec {
    /// Block 0's parent hash: the suite hash of the canonical encoding.
    pub fn hash(&self, h: &dyn Hasher) -> Result<Hash32, HashError> {
        h.hash(&self.encode())
    }
}

fn ident(what: &str, s: &str) -> Result<(), DecodeError> {
    let ok = !s.is_empty() && s.len() <= MAX_IDENT_BYTES && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(DecodeError::Invalid(format!("{what} {s:?} must be 1-{MAX_IDENT_BYTES} characters of [a-z0-9_-]"))) }
}

pub(crate) fn check_organisation_name(name: &str) -> Result<(), DecodeError> {
    ident("organisation name", name)
}

pub(crate) fn check_node_name(name: &str) -> Result<(), DecodeError> {
    ident("node name", name)
}

pub(crate) fn check_network_key(key: &[u8]) -> Result<(), DecodeError> {
    if key.len() != NETWORK_KEY_BYTES || !matches!(key.first(), Some(2 | 3)) {
        return Err(DecodeError::Invalid(format!("a network key is a compressed point of {NETWORK_KEY_BYTES} bytes (02 or 03 first)")));
    }
    Ok(())
}

impl Encode for ChainSpec {
    const MAX_BYTES: usize = 1 << 20;

    /// `version ‖ Borsh(fields before identity)`, then `Borsh(IdentitySpec)` when set.
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![crate::encoding::ENCODING_VERSION];
        // Writing into a Vec cannot fail.
        let _ = borsh::to_writer(&mut out, self);
        if let Some(identity) = &self.identity {
            let _ = borsh::to_writer(&mut out, identity);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if version != crate::encoding::ENCODING_VERSION {
            return Err(DecodeError::Version(version));
        }
        if bytes.len() > Self::MAX_BYTES {
            return Err(DecodeError::TooLarge { got: bytes.len(), limit: Self::MAX_BYTES });
        }
        let mut rest = body;
        let mut spec = <ChainSpec as BorshDeserialize>::deserialize(&mut rest).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            spec.identity = Some(borsh::from_slice::<IdentitySpec>(rest).map_err(|e| DecodeError::Malformed(e.to_string()))?);
        }
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), DecodeError> {
        ChannelId::new(self.channel.as_str())?;
        ident("crypto suite", &self.crypto_suite.id)?;
        ident("hash algorithm", &self.crypto_suite.hash)?;
        ident("signature algorithm", &self.crypto_suite.signature)?;
        ident("consensus engine", &self.consensus)?;
        if self.consensus_config.len() > MAX_CONSENSUS_CONFIG_BYTES {
            return Err(DecodeError::Invalid(format!("consensus configuration is over {MAX_CONSENSUS_CONFIG_BYTES} bytes")));
        }
        if self.block_gas_limit < self.gas_limit {
            return Err(DecodeError::Invalid(format!("block gas limit {} is below the transaction gas limit {}", self.block_gas_limit, self.gas_limit)));
        }
        if let DeployPolicy::Accounts(list) = &self.contract_deployers
            && list.len() > MAX_VALIDATORS
        {
            return Err(DecodeError::Invalid(format!("at most {MAX_VALIDATORS} contract deployers may be listed")));
        }
        if self.validators.is_empty() || self.validators.len() > MAX_VALIDATORS {
            return Err(DecodeError::Invalid(format!("a chain needs 1-{MAX_VALIDATORS} validators, not {}", self.validators.len())));
        }
        for (i, v) in self.validators.iter().enumerate() {
            if v.public_key.is_empty() || v.public_key.len() > MAX_KEY_BYTES {
                return Err(DecodeError::Invalid(format!("validator {i}: public key must be 1-{MAX_KEY_BYTES} bytes")));
            }
            if v.weight == 0 {
                return Err(DecodeError::Invalid(format!("validator {i}: weight must be at least 1")));
            }
        }
        if self.nodes.len() > MAX_VALIDATORS {
            return Err(DecodeError::Invalid(format!("at most {MAX_VALIDATORS} nodes may be listed")));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            ident("node name", &n.name)?;
            if n.network_key.len() != NETWORK_KEY_BYTES || !matches!(n.network_key.first(), Some(2 | 3)) {
                return Err(DecodeError::Invalid(format!("node {i} ({}): a network key is a compressed point of {NETWORK_KEY_BYTES} bytes", n.name)));
            }
            if self.nodes[..i].iter().any(|o| o.name == n.name || o.network_key == n.network_key) {
                return Err(DecodeError::Invalid(format!("node {i} ({}): its name or network key is listed twice", n.name)));
            }
        }
        if let Some(id) = &self.identity {
            let cert = |what: &str, c: &[u8]| {
                if c.is_empty() || c.len() > MAX_CERTIFICATE_BYTES {
                    return Err(DecodeError::Invalid(format!("{what}: a certificate is 1-{MAX_CERTIFICATE_BYTES} bytes of DER")));
                }
                Ok(())
            };
            cert("the root certificate", &id.root_certificate)?;
            if id.organisations.is_empty() || id.organisations.len() > MAX_ORGANISATIONS {
                return Err(DecodeError::Invalid(format!("a chain with certificates lists 1-{MAX_ORGANISATIONS} organisations")));
            }
            for (i, o) in id.organisations.iter().enumerate() {
                ident("organisation name", &o.name)?;
                if id.organisations[..i].iter().any(|p| p.name == o.name) {
                    return Err(DecodeError::Invalid(format!("organisation {} is listed twice", o.name)));
                }
                cert(&format!("organisation {}", o.name), &o.ca_certificate)?;
                if o.certificates.len() > MAX_VALIDATORS {
                    return Err(DecodeError::Invalid(format!("organisation {}: at most {MAX_VALIDATORS} certificates at genesis", o.name)));
                }
                for c in &o.certificates {
                    cert(&format!("a certificate of organisation {}", o.name), c)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ChainSpec {
        ChainSpec {
            channel: ChannelId::new("grid").expect("channel"),
            crypto_suite: CryptoSuite::named("gm").expect("suite"),
            consensus: "poa".into(),
            consensus_config: String::new(),
            gas_limit: 10_000_000,
            block_gas_limit: 1_000_000_000,
            gas_schedule: 1,
            contract_deployers: DeployPolicy::Validators,
            genesis_time_ms: 1_700_000_000_000,
            validators: vec![ValidatorSpec { public_key: vec![1; 91], weight: 1 }],
            nodes: vec![],
            identity: None,
        }
    }

    #[test]
    fn a_chain_without_certificates_keeps_the_encoding_it_had_before_identity_existed() {
        let s = spec();
        let mut before = vec![crate::encoding::ENCODING_VERSION];
        borsh::to_writer(&mut before, &s).expect("borsh");
        assert_eq!(s.encode(), before, "no option tag, no trailing bytes");
        assert_eq!(ChainSpec::decode(&before).expect("decodes"), s);
    }

    #[test]
    fn identity_follows_the_fields_and_changes_the_genesis() {
        let mut s = spec();
        let plain = s.encode();
        s.identity = Some(IdentitySpec {
            root_certificate: vec![0x30; 40],
            organisations: vec![OrganisationSpec { name: "gridco".into(), ca_certificate: vec![0x30; 40], certificates: vec![vec![0x30; 50]] }],
        });
        let bytes = s.encode();
        assert!(bytes.starts_with(&plain) && bytes.len() > plain.len());
        assert_eq!(ChainSpec::decode(&bytes).expect("decodes"), s);
        // Bytes after it, or a truncated one, do not decode.
        assert!(ChainSpec::decode(&[bytes.as_slice(), &[0]].concat()).is_err());
        assert!(ChainSpec::decode(&bytes[..bytes.len() - 1]).is_err());
        // An organisation named twice is refused.
        if let Some(id) = &mut s.identity {
            id.organisations.push(id.organisations[0].clone());
        }
        assert!(ChainSpec::decode(&s.encode()).is_err());
    }
}
