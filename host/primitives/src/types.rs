//! Ledger types. Field order is the encoding order: never reorder, only append (with a new
//! encoding version where old decoders must refuse).

use crate::encoding::{DecodeError, Encode, MAX_BLOCK_BYTES, MAX_TX_BYTES};
use crate::merkle::{HashError, Hasher};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A 32-byte digest of the channel suite's hash (SM3, SHA-256). JSON: lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, BorshSerialize, BorshDeserialize)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    pub const ZERO: Hash32 = Hash32([0; 32]);

    pub fn from_slice(b: &[u8]) -> Option<Hash32> {
        Some(Hash32(b.try_into().ok()?))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Hash32> {
        Hash32::from_slice(&hex::decode(s.strip_prefix("0x").unwrap_or(s)).ok()?)
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        Hash32::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// `Option<Vec<u8>>` as an optional hex string.
pub mod opt_hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => hex::decode(s.strip_prefix("0x").unwrap_or(&s)).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// `Vec<Vec<u8>>` as a list of hex strings.
pub mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(b: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(b.len()))?;
        for item in b {
            seq.serialize_element(&hex::encode(item))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|s| hex::decode(s.strip_prefix("0x").unwrap_or(s)).map_err(serde::de::Error::custom)).collect()
    }
}

/// Byte strings as hex in JSON views.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        hex::decode(s.strip_prefix("0x").unwrap_or(&s)).map_err(|_| serde::de::Error::custom("expected hex"))
    }
}

/// Identifier of a channel (§5.3): an independent ledger with its own members, consensus,
/// block policy and crypto suite. `[a-z0-9][a-z0-9-]{0,31}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelId(String);

impl ChannelId {
    pub fn new(s: &str) -> Result<ChannelId, DecodeError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok { Ok(ChannelId(s.to_string())) } else { Err(DecodeError::Invalid(format!("channel id {s:?} must match [a-z0-9][a-z0-9-]{{0,31}}"))) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn check(&self) -> Result<(), DecodeError> {
        ChannelId::new(&self.0).map(|_| ())
    }
}

impl TryFrom<String> for ChannelId {
    type Error = DecodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ChannelId::new(&s)
    }
}

impl From<ChannelId> for String {
    fn from(c: ChannelId) -> String {
        c.0
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a channel produces blocks (§5.3 出块策略).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct BlockPolicy {
    pub interval_ms: u64,
    pub max_transactions: u32,
    pub max_bytes: u32,
    pub produce_empty_blocks: bool,
}

/// A change to a channel's membership that its validators approve by vote (§4.2.2 a–b,
/// §5.2.3–5.2.4). It takes effect in the block whose transaction brings the votes for it
/// over half of the voting weight, and applies from the next block on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A validator of the consensus, or a new voting weight for one already in the set.
    AddValidator {
        /// SubjectPublicKeyInfo, DER, in the channel's signature algorithm.
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        public_key: Vec<u8>,
        weight: u64,
    },
    RemoveValidator {
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        public_key: Vec<u8>,
    },
    /// A node that may join the channel's network (§5.2.3).
    AddNode {
        /// A name for people (1-64 characters of [a-z0-9_-]).
        name: String,
        /// Its static network key (33 bytes, compressed SEC1 on the suite's curve).
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        network_key: Vec<u8>,
    },
    /// A node refused by every other from the block after the one that removes it (§5.2.4).
    RemoveNode {
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        network_key: Vec<u8>,
    },
    /// From block `from_height` on, blocks are made and checked by the consensus engine
    /// whose component (a `joule:consensus/engine-plugin` component, in the chain's code
    /// store under this hash) is `component`, configured with `config` (its TOML). Every
    /// node runs exactly these bytes; blocks before stay under the engine of their height.
    SwitchEngine {
        from_height: u64,
        /// The engine's id, for people (`bft`); the component names itself.
        engine: String,
        config: String,
        component: Hash32,
    },
    /// From block `from_height` on, the channel's blocks, transactions and state are hashed
    /// and signed with the crypto suite `suite` (`gm`), and its wire runs on that suite's
    /// Noise protocol. It passes only once every validator has bound a key of `suite`
    /// ([`Payload::BindKey`]); `nodes` lists every node of the channel by name with its
    /// network key on the new suite's curve. Membership changes wait until it is done.
    SwitchSuite { from_height: u64, suite: String, nodes: Vec<crate::NodeSpec> },
    /// Give the account `account` to the key `public_key`: the account (its nonce, its
    /// storage and the history under it) moves to that key's id under the channel's suite,
    /// and only that key sends from it. For an account whose key is lost, or that did not
    /// bind a key before a crypto-suite switch (it is frozen until moved). Not for
    /// contracts or the governance account; the new id must be unused.
    MoveAccount {
        account: Hash32,
        /// SubjectPublicKeyInfo DER, in the channel's signature algorithm.
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        public_key: Vec<u8>,
    },
    /// On a chain with certificates (§5.1.2): `name` becomes a member organisation with the
    /// CA certificate `ca_certificate` (DER, issued by the consortium's root) and the
    /// end-entity certificates `certificates` (DER, its admins' and nodes', issued by that
    /// CA), from the block after. For a member already, its CA certificate is replaced
    /// (what it recorded stays); for one removed before, it rejoins.
    AddOrganisation {
        name: String,
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        ca_certificate: Vec<u8>,
        #[serde(default, with = "hex_list")]
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::openapi::Hex>))]
        certificates: Vec<Vec<u8>>,
    },
    /// The organisation stops being a member: no node accepts its senders' transactions or
    /// its nodes' connections from the block after; its records stay, for the audit.
    RemoveOrganisation { name: String },
}

/// A validator's part in governing the channel. Only the current validators may send
/// these (the transaction's sender key is the validator's key); votes live in the chain's
/// state, so every node counts them alike.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Governance {
    /// Open a proposal of `changes` (applied together, in order) and vote for it. Its id
    /// is the suite hash of `joule-proposal/1\n ‖ Borsh(changes)`; proposing what is already
    /// open is a vote for it.
    Propose {
        changes: Vec<Change>,
        /// The vote counts in blocks below this height.
        expires_at: u64,
        /// Component bytes the changes name by hash, for the chain's code store (not part
        /// of the proposal's id).
        #[serde(default, with = "hex_list")]
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::openapi::Hex>))]
        components: Vec<Vec<u8>>,
    },
    /// Vote for an open proposal (again: a new expiry for one's vote).
    Vote { proposal: Hash32, expires_at: u64 },
    /// Take one's vote back; a proposal without votes is closed.
    Withdraw { proposal: Hash32 },
}

impl Change {
    /// Field limits, as for every decoded transaction.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Change::AddValidator { public_key, weight } => {
                check_len("validator key", public_key.len(), MAX_KEY_BYTES)?;
                if *weight == 0 {
                    return Err(DecodeError::Invalid("a validator's weight must be at least 1 (remove_validator takes one out)".into()));
                }
                Ok(())
            }
            Change::RemoveValidator { public_key } => check_len("validator key", public_key.len(), MAX_KEY_BYTES),
            Change::AddNode { name, network_key } => {
                crate::spec::check_node_name(name)?;
                crate::spec::check_network_key(network_key)
            }
            Change::RemoveNode { network_key } => crate::spec::check_network_key(network_key),
            Change::SwitchEngine { from_height, engine, config, .. } => {
                check_ident("engine", engine)?;
                check_len("engine configuration", config.len(), crate::spec::MAX_CONSENSUS_CONFIG_BYTES)?;
                if *from_height == 0 {
                    return Err(DecodeError::Invalid("an engine switch takes effect from a height above 0".into()));
                }
                Ok(())
            }
            Change::SwitchSuite { from_height, suite, nodes } => {
                check_ident("suite", suite)?;
                if *from_height == 0 {
                    return Err(DecodeError::Invalid("a suite switch takes effect from a height above 0".into()));
                }
                if nodes.len() > crate::spec::MAX_VALIDATORS {
                    return Err(DecodeError::Invalid(format!("a channel has at most {} nodes, not {}", crate::spec::MAX_VALIDATORS, nodes.len())));
                }
                for n in nodes {
                    crate::spec::check_node_name(&n.name)?;
                    crate::spec::check_network_key(&n.network_key)?;
                }
                Ok(())
            }
            Change::MoveAccount { public_key, .. } => check_len("account key", public_key.len(), MAX_KEY_BYTES),
            Change::AddOrganisation { name, ca_certificate, certificates } => {
                crate::spec::check_organisation_name(name)?;
                if ca_certificate.is_empty() {
                    return Err(DecodeError::Invalid("the CA certificate is empty".into()));
                }
                check_len("CA certificate", ca_certificate.len(), crate::spec::MAX_CERTIFICATE_BYTES)?;
                if certificates.len() > 64 {
                    return Err(DecodeError::Invalid(format!("at most 64 certificates join with an organisation, not {}", certificates.len())));
                }
                for c in certificates {
                    if c.is_empty() {
                        return Err(DecodeError::Invalid("a certificate is empty".into()));
                    }
                    check_len("certificate", c.len(), crate::spec::MAX_CERTIFICATE_BYTES)?;
                }
                Ok(())
            }
            Change::RemoveOrganisation { name } => crate::spec::check_organisation_name(name),
        }
    }
}

/// Most changes in one proposal.
pub const MAX_PROPOSAL_CHANGES: usize = 16;

/// The bytes whose suite hash is a proposal's id.
pub fn proposal_preimage(changes: &[Change]) -> Vec<u8> {
    let mut out = b"joule-proposal/1\n".to_vec();
    let _ = borsh::to_writer(&mut out, changes);
    out
}

/// What a transaction does.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// Deploy a contract: `code` is a core wasm module for the `joule:contract` world,
    /// `init_args` (borsh) go to its `init`. The contract's address is the suite hash of
    /// `joule-contract/1\n ‖ sender account id ‖ nonce (u64 BE)`. When `upgradable`, the
    /// sender may later replace the code (`Upgrade`); otherwise nobody can.
    Deploy {
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        code: Vec<u8>,
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        init_args: Vec<u8>,
        #[serde(default)]
        upgradable: bool,
    },
    /// Call a method of a deployed contract.
    Call {
        contract: Hash32,
        method: String,
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        args: Vec<u8>,
    },
    /// Replace a contract's code, keeping its address and storage (§4.3.2). Only the
    /// contract's upgrade authority may send it. With `migrate_args`, the new code's
    /// `migrate` method runs in the same transaction; if it fails, nothing changes.
    Upgrade {
        contract: Hash32,
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        code: Vec<u8>,
        #[serde(default, with = "opt_hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::Hex>))]
        migrate_args: Option<Vec<u8>>,
    },
    /// Put a data record on chain under the sender's namespace (§4.4.1).
    Data {
        key: String,
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        value: Vec<u8>,
    },
    Governance(Governance),
    /// Bind the sender's account to a key of another crypto suite, ahead of a switch to it
    /// ([`Change::SwitchSuite`]): from the switch on, the account is the new suite's hash of
    /// `public_key` and signs with it. `proof` is that key's signature, in `suite`, over
    /// [`bind_key_message`], so nobody binds a key they do not hold. Binding again replaces
    /// the binding; two accounts cannot bind one key.
    BindKey {
        suite: String,
        /// SubjectPublicKeyInfo DER, in the suite's signature algorithm.
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        public_key: Vec<u8>,
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        proof: Vec<u8>,
    },
    /// Certificates on a chain with identity by certificates (§6.1, §6.3.1).
    Identity(IdentityAction),
}

/// What an organisation's admin records on chain about its certificates. The sender must
/// hold a current certificate of the organisation with the role `admin`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityAction {
    /// Record an end-entity certificate (DER) the organisation's CA issued: its key may
    /// send transactions from then on. A certificate for a key already certified by the
    /// organisation replaces the old one (renewal: the account, the key's hash, stays).
    Register {
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        certificate: Vec<u8>,
    },
    /// Revoke the organisation's certificate `serial` (its bytes, as in the certificate).
    /// `crl` is the organisation CA's new CRL (DER), which lists it, with a CRL number
    /// above the last one recorded: every node serves it.
    Revoke {
        organisation: String,
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        serial: Vec<u8>,
        #[serde(with = "hex_bytes")]
        #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
        crl: Vec<u8>,
    },
}

/// Largest CRL a revocation carries.
pub const MAX_CRL_BYTES: usize = 512 << 10;
/// Longest serial number (RFC 5280 §4.1.2.2).
pub const MAX_SERIAL_BYTES: usize = 20;

/// What the new key of a [`Payload::BindKey`] signs: `joule-bind-key/1\n` ‖ Borsh(channel,
/// the account's id under the current suite, suite, the new public key).
pub fn bind_key_message(channel: &ChannelId, account: &Hash32, suite: &str, public_key: &[u8]) -> Vec<u8> {
    let mut out = b"joule-bind-key/1\n".to_vec();
    let _ = borsh::to_writer(&mut out, &(channel, account, suite, public_key));
    out
}

/// Everything a sender signs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct UnsignedTransaction {
    pub channel: ChannelId,
    /// The sender's public key, SubjectPublicKeyInfo DER.
    #[serde(with = "hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
    pub sender: Vec<u8>,
    pub nonce: u64,
    pub gas_limit: u64,
    /// Signature algorithm id (must be the channel suite's).
    pub sig_alg: String,
    pub payload: Payload,
}

/// A signed transaction.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Transaction {
    #[serde(flatten)]
    pub body: UnsignedTransaction,
    #[serde(with = "hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
    pub signature: Vec<u8>,
}

const TX_SIGNING_DOMAIN: &[u8] = b"joule-tx/1\n";
const HEADER_SEALING_DOMAIN: &[u8] = b"joule-header/1\n";

/// Field limits checked on decode and admission.
pub const MAX_KEY_BYTES: usize = 1024;
pub const MAX_SIGNATURE_BYTES: usize = 1024;
pub const MAX_IDENT_BYTES: usize = 64;
pub const MAX_DATA_KEY_BYTES: usize = 256;

fn check_len(field: &str, len: usize, max: usize) -> Result<(), DecodeError> {
    if len > max { Err(DecodeError::Invalid(format!("{field} is {len} bytes, over {max}"))) } else { Ok(()) }
}

fn check_ident(field: &str, s: &str) -> Result<(), DecodeError> {
    if s.is_empty() || s.len() > MAX_IDENT_BYTES || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(DecodeError::Invalid(format!("{field} {s:?} must be 1-{MAX_IDENT_BYTES} chars of [A-Za-z0-9_-]")));
    }
    Ok(())
}

impl UnsignedTransaction {
    /// The bytes the sender signs: a domain tag and the Borsh encoding of the body.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = TX_SIGNING_DOMAIN.to_vec();
        let _ = borsh::to_writer(&mut out, self);
        out
    }

    pub fn sign_with(self, signature: Vec<u8>) -> Transaction {
        Transaction { body: self, signature }
    }
}

impl Transaction {
    /// Transaction hash: the suite hash of the canonical encoding.
    pub fn hash(&self, h: &dyn Hasher) -> Result<Hash32, HashError> {
        h.hash(&self.encode())
    }
}

impl Encode for Transaction {
    const MAX_BYTES: usize = MAX_TX_BYTES;

    fn validate(&self) -> Result<(), DecodeError> {
        let b = &self.body;
        b.channel.check()?;
        check_len("sender", b.sender.len(), MAX_KEY_BYTES)?;
        check_len("signature", self.signature.len(), MAX_SIGNATURE_BYTES)?;
        check_ident("sig_alg", &b.sig_alg)?;
        match &b.payload {
            Payload::Call { method, .. } => check_ident("method", method),
            Payload::Data { key, .. } => {
                if key.is_empty() {
                    return Err(DecodeError::Invalid("data key is empty".into()));
                }
                check_len("data key", key.len(), MAX_DATA_KEY_BYTES)
            }
            Payload::BindKey { suite, public_key, proof } => {
                check_ident("suite", suite)?;
                check_len("bound key", public_key.len(), MAX_KEY_BYTES)?;
                check_len("binding proof", proof.len(), MAX_SIGNATURE_BYTES)
            }
            Payload::Identity(IdentityAction::Register { certificate }) => {
                if certificate.is_empty() {
                    return Err(DecodeError::Invalid("certificate is empty".into()));
                }
                check_len("certificate", certificate.len(), crate::spec::MAX_CERTIFICATE_BYTES)
            }
            Payload::Identity(IdentityAction::Revoke { organisation, serial, crl }) => {
                crate::spec::check_organisation_name(organisation)?;
                if serial.is_empty() {
                    return Err(DecodeError::Invalid("serial number is empty".into()));
                }
                check_len("serial number", serial.len(), MAX_SERIAL_BYTES)?;
                if crl.is_empty() {
                    return Err(DecodeError::Invalid("CRL is empty".into()));
                }
                check_len("CRL", crl.len(), MAX_CRL_BYTES)
            }
            Payload::Governance(Governance::Propose { changes, .. }) => {
                if changes.is_empty() || changes.len() > MAX_PROPOSAL_CHANGES {
                    return Err(DecodeError::Invalid(format!("a proposal has 1-{MAX_PROPOSAL_CHANGES} changes, not {}", changes.len())));
                }
                changes.iter().try_for_each(Change::validate)
            }
            _ => Ok(()),
        }
    }
}

/// A block header. `seal` is the consensus engine's bytes (a signature for PoA, a nonce
/// for PoW); everything else is covered by it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct BlockHeader {
    pub channel: ChannelId,
    pub height: u64,
    pub parent_hash: Hash32,
    pub timestamp_ms: u64,
    pub tx_root: Hash32,
    pub state_root: Hash32,
    pub receipts_root: Hash32,
    /// The proposer's public key (SPKI DER).
    #[serde(with = "hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
    pub proposer: Vec<u8>,
    /// The channel's crypto suite, e.g. `gm` (SM3 + SM2) or `intl` (SHA-256 + ECDSA P-256).
    pub crypto_suite: String,
    #[serde(with = "hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
    pub seal: Vec<u8>,
}

impl BlockHeader {
    /// What the seal covers: a domain tag and the header with an empty seal.
    pub fn sealing_bytes(&self) -> Vec<u8> {
        let mut unsealed = self.clone();
        unsealed.seal.clear();
        let mut out = HEADER_SEALING_DOMAIN.to_vec();
        let _ = borsh::to_writer(&mut out, &unsealed);
        out
    }

    /// Block hash: the suite hash of the seal bytes, which is the seal hash. The seal is
    /// the engine's proof that the block may be committed, not part of what the block is:
    /// a BFT block's seal holds whichever quorum of commit signatures a node collected, and
    /// every node must still name the same block by the same hash.
    pub fn hash(&self, h: &dyn Hasher) -> Result<Hash32, HashError> {
        h.hash(&self.sealing_bytes())
    }
}

impl Encode for BlockHeader {
    const MAX_BYTES: usize = 16 << 10;

    fn validate(&self) -> Result<(), DecodeError> {
        self.channel.check()?;
        check_len("proposer", self.proposer.len(), MAX_KEY_BYTES)?;
        check_ident("crypto_suite", &self.crypto_suite)?;
        check_len("seal", self.seal.len(), 4096)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub transactions: Vec<Transaction>,
}

impl Encode for Block {
    const MAX_BYTES: usize = MAX_BLOCK_BYTES;

    fn validate(&self) -> Result<(), DecodeError> {
        self.header.validate()?;
        for tx in &self.transactions {
            tx.validate()?;
            if tx.body.channel != self.header.channel {
                return Err(DecodeError::Invalid(format!("transaction for channel {} in a block of {}", tx.body.channel, self.header.channel)));
            }
        }
        Ok(())
    }
}

/// An event a contract emitted (§4.3.4): its name (the first topic), up to three more
/// indexed topics, and data.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Event {
    pub contract: Hash32,
    pub topic: String,
    /// Indexed topics after the name, hex.
    #[serde(default, with = "hex_list")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::openapi::Hex>))]
    pub indexed: Vec<Vec<u8>>,
    #[serde(with = "hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
    pub data: Vec<u8>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum ReceiptStatus {
    Success,
    /// The transaction ran and failed; its writes were reverted, its gas was charged.
    Reverted(String),
    OutOfGas,
}

/// The outcome of one transaction in a block.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Receipt {
    pub tx_hash: Hash32,
    /// JSON: `"status": "success"`, with `"reason"` for `reverted`.
    #[serde(flatten)]
    pub status: ReceiptStatus,
    pub gas_used: u64,
    /// What the transaction returned: a call's return bytes (borsh), a deployment's
    /// contract address; empty otherwise and on failure.
    #[serde(default, with = "hex_bytes")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Hex))]
    pub output: Vec<u8>,
    pub events: Vec<Event>,
}

impl Encode for Receipt {
    const MAX_BYTES: usize = MAX_TX_BYTES;
}

/// An account in the global state tree, keyed by the hash of its public key (users) or
/// of its deployment (contracts). Each account has its own storage tree (§4.3.1), whose
/// root it carries.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Account {
    pub nonce: u64,
    /// A contract's code (the suite hash of the deployed module).
    pub code_hash: Option<Hash32>,
    pub storage_root: Hash32,
    /// Who may upgrade this contract's code; `None`: nobody (immutable).
    pub upgrade_authority: Option<Hash32>,
    /// The code this contract ran before its last upgrade.
    pub previous_code_hash: Option<Hash32>,
}

impl Encode for Account {
    const MAX_BYTES: usize = 1024;
}
