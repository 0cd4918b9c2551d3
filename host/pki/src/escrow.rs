//! Key recovery by threshold escrow (guide §6.2.2): a private key split with Shamir's
//! secret sharing among `n` recovery officers, any `k` of whom recover it, fewer learn
//! nothing.
//!
//! The split runs where the key is (its holder's machine): each share is sealed to one
//! officer's public key (SM2 encryption or ECIES-P256, through the plugins: [`Sealer`]),
//! and the [`Escrow`] record — the sealed shares, a digest of each share and of the key —
//! goes on chain as the holder's data record, so every step is a transaction. To recover,
//! a requester (a new key its organisation certified) records a request; each officer
//! opens its share and seals it again to the requester ([`Approval`], a data record of the
//! officer); the requester opens `k` of them, checks each against its digest in the escrow
//! (a share altered anywhere on the way is named), combines them, and checks that the key
//! it got is the escrowed one. With `k − 1` approvals nothing is recovered.
//!
//! Shares are GF(256) Shamir shares of the PKCS#8 bytes (`vsss-rs`): byte 0 is the share's
//! x coordinate (1..=n), the rest one y per secret byte.

use serde::{Deserialize, Serialize};

/// Sealing, digests and keys, by the channel's suite (the node's plugins).
pub trait Sealer {
    /// `plaintext` encrypted to `public_key` (SPKI DER).
    fn seal(&self, public_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String>;
    /// `ciphertext` decrypted with `private_key` (PKCS#8 DER).
    fn open(&self, private_key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, String>;
    /// The suite's hash of `data`.
    fn digest(&self, data: &[u8]) -> Result<Vec<u8>, String>;
    /// The public key (SPKI DER) of a private key (PKCS#8 DER).
    fn public_key(&self, private_key: &[u8]) -> Result<Vec<u8>, String>;
}

/// One officer's part of an escrow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedShare {
    /// The officer's public key (SPKI DER, hex).
    #[serde(with = "hexes")]
    pub officer: Vec<u8>,
    /// The share, sealed to the officer (hex).
    #[serde(with = "hexes")]
    pub sealed: Vec<u8>,
    /// The suite hash of the share (hex).
    #[serde(with = "hexes")]
    pub digest: Vec<u8>,
}

/// What goes on chain when a key is escrowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escrow {
    pub version: u32,
    /// The escrowed key's public key (SPKI DER, hex).
    #[serde(with = "hexes")]
    pub public_key: Vec<u8>,
    /// Shares needed to recover.
    pub threshold: usize,
    pub shares: Vec<SealedShare>,
}

/// An officer's share, sealed again to a requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub version: u32,
    /// Which share of the escrow (its position in `shares`).
    pub index: usize,
    /// The requester's public key (SPKI DER, hex).
    #[serde(with = "hexes")]
    pub requester: Vec<u8>,
    #[serde(with = "hexes")]
    pub sealed: Vec<u8>,
}

/// Why escrow or recovery failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EscrowError {
    #[error("{0}")]
    Invalid(String),
    /// A share does not match its digest in the escrow (altered on chain or on the way).
    #[error("the share of officer {index} does not match its digest in the escrow: it was altered")]
    Tampered { index: usize },
    #[error("{got} of the {need} shares needed: an escrowed key is recovered only with {need} officers' approvals{}", altered(tampered))]
    NotEnough { got: usize, need: usize, tampered: Vec<usize> },
    /// The shares combined to another key than the escrowed one.
    #[error("the shares do not combine to the escrowed key")]
    WrongKey,
    #[error("{0}")]
    Crypto(String),
}

fn altered(tampered: &[usize]) -> String {
    if tampered.is_empty() { String::new() } else { format!(" (the shares of officers {tampered:?} were altered and do not count)") }
}

/// A recovered key, and the officers whose shares were altered (they did not count).
#[derive(Debug, PartialEq, Eq)]
pub struct Recovered {
    /// PKCS#8 DER.
    pub key: Vec<u8>,
    pub tampered: Vec<usize>,
}

/// Split `private_key` (PKCS#8 DER) among `officers` (SPKI DER each), `threshold` of whom
/// recover it.
pub fn escrow(sealer: &dyn Sealer, private_key: &[u8], officers: &[Vec<u8>], threshold: usize) -> Result<Escrow, EscrowError> {
    if threshold < 2 || threshold > officers.len() || officers.len() > 255 {
        return Err(EscrowError::Invalid(format!(
            "a threshold of 2..={} among 2..=255 officers, not {threshold} of {}",
            officers.len().max(2),
            officers.len()
        )));
    }
    for (i, o) in officers.iter().enumerate() {
        if officers[..i].contains(o) {
            return Err(EscrowError::Invalid(format!("officer {i} is listed twice")));
        }
    }
    let public_key = sealer.public_key(private_key).map_err(EscrowError::Crypto)?;
    let shares =
        vsss_rs::Gf256::split_array(threshold, officers.len(), private_key, rand_core::OsRng).map_err(|e| EscrowError::Crypto(format!("split: {e:?}")))?;
    let mut sealed = Vec::with_capacity(shares.len());
    for (officer, share) in officers.iter().zip(shares) {
        let digest = sealer.digest(&share).map_err(EscrowError::Crypto)?;
        let ciphertext = sealer.seal(officer, &share).map_err(EscrowError::Crypto)?;
        sealed.push(SealedShare { officer: officer.clone(), sealed: ciphertext, digest });
    }
    Ok(Escrow { version: 1, public_key, threshold, shares: sealed })
}

/// An officer's approval: its share opened with `officer_key` (PKCS#8 DER) and sealed to
/// `requester` (SPKI DER). The share must match its digest.
pub fn approve(sealer: &dyn Sealer, escrow: &Escrow, officer_key: &[u8], requester: &[u8]) -> Result<Approval, EscrowError> {
    let officer = sealer.public_key(officer_key).map_err(EscrowError::Crypto)?;
    let (index, part) = escrow
        .shares
        .iter()
        .enumerate()
        .find(|(_, s)| s.officer == officer)
        .ok_or_else(|| EscrowError::Invalid("this key is not one of the escrow's officers".into()))?;
    let share = sealer.open(officer_key, &part.sealed).map_err(|e| EscrowError::Crypto(format!("open the share: {e}")))?;
    if sealer.digest(&share).map_err(EscrowError::Crypto)? != part.digest {
        return Err(EscrowError::Tampered { index });
    }
    let sealed = sealer.seal(requester, &share).map_err(EscrowError::Crypto)?;
    Ok(Approval { version: 1, index, requester: requester.to_vec(), sealed })
}

/// The escrowed key (PKCS#8 DER), from the approvals sealed to `requester_key` (PKCS#8
/// DER). Every share is checked against its digest: an altered one is named and does not
/// count (so one dishonest officer cannot block a recovery the others approve); at least
/// `threshold` valid shares from distinct officers are needed; the result must be the
/// escrowed key.
pub fn recover(sealer: &dyn Sealer, escrow: &Escrow, approvals: &[Approval], requester_key: &[u8]) -> Result<Recovered, EscrowError> {
    let requester = sealer.public_key(requester_key).map_err(EscrowError::Crypto)?;
    let mut shares: Vec<(usize, Vec<u8>)> = vec![];
    let mut tampered = vec![];
    for a in approvals {
        if a.requester != requester || shares.iter().any(|(i, _)| *i == a.index) || tampered.contains(&a.index) {
            continue;
        }
        let Some(part) = escrow.shares.get(a.index) else { continue };
        let valid = sealer.open(requester_key, &a.sealed).ok().filter(|share| sealer.digest(share).is_ok_and(|d| d == part.digest));
        match valid {
            Some(share) => shares.push((a.index, share)),
            None => tampered.push(a.index),
        }
    }
    if shares.len() < escrow.threshold {
        return Err(EscrowError::NotEnough { got: shares.len(), need: escrow.threshold, tampered });
    }
    let chosen: Vec<Vec<u8>> = shares.into_iter().take(escrow.threshold).map(|(_, s)| s).collect();
    let key = vsss_rs::Gf256::combine_array(&chosen).map_err(|e| EscrowError::Crypto(format!("combine: {e:?}")))?;
    match sealer.public_key(&key) {
        Ok(pk) if pk == escrow.public_key => Ok(Recovered { key, tampered }),
        _ => Err(EscrowError::WrongKey),
    }
}

mod hexes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};

    /// P-256 keys; "sealing" XORs with a SHA-256 stream of the recipient's public key and
    /// the ciphertext carries a tag: enough to test the protocol's checks natively (the
    /// integration test seals through the plugins' SM2 encryption).
    struct Native;

    fn stream(key: &[u8], n: usize) -> Vec<u8> {
        use sha2::Digest;
        let mut out = vec![];
        let mut counter = 0u32;
        while out.len() < n {
            out.extend(sha2::Sha256::new().chain_update(key).chain_update(counter.to_be_bytes()).finalize());
            counter += 1;
        }
        out.truncate(n);
        out
    }

    impl Sealer for Native {
        fn seal(&self, public_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
            Ok(plaintext.iter().zip(stream(public_key, plaintext.len())).map(|(a, b)| a ^ b).collect())
        }
        fn open(&self, private_key: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, String> {
            let pk = self.public_key(private_key)?;
            self.seal(&pk, ciphertext)
        }
        fn digest(&self, data: &[u8]) -> Result<Vec<u8>, String> {
            use sha2::Digest;
            Ok(sha2::Sha256::digest(data).to_vec())
        }
        fn public_key(&self, private_key: &[u8]) -> Result<Vec<u8>, String> {
            let sk = p256::SecretKey::from_pkcs8_der(private_key).map_err(|e| e.to_string())?;
            Ok(sk.public_key().to_public_key_der().map_err(|e| e.to_string())?.as_bytes().to_vec())
        }
    }

    fn key(seed: u8) -> (Vec<u8>, Vec<u8>) {
        let sk = p256::SecretKey::from_bytes(&[seed; 32].into()).expect("key");
        let der = sk.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec();
        let pk = Native.public_key(&der).expect("pk");
        (der, pk)
    }

    #[test]
    fn k_of_n_officers_recover_the_key_and_k_minus_1_do_not() {
        let (secret, _) = key(1);
        let officers: Vec<(Vec<u8>, Vec<u8>)> = (10..15).map(key).collect();
        let (requester_sk, requester_pk) = key(2);
        let e = escrow(&Native, &secret, &officers.iter().map(|o| o.1.clone()).collect::<Vec<_>>(), 3).expect("escrow");
        assert_eq!((e.threshold, e.shares.len()), (3, 5));
        // The record as it goes on chain, and back.
        let e: Escrow = serde_json::from_str(&serde_json::to_string(&e).expect("json")).expect("json");
        let approvals: Vec<Approval> = [4, 0, 2].iter().map(|&i| approve(&Native, &e, &officers[i].0, &requester_pk).expect("approve")).collect();
        assert_eq!(recover(&Native, &e, &approvals, &requester_sk).expect("3 of 5").key, secret);
        assert_eq!(recover(&Native, &e, &approvals[..2], &requester_sk), Err(EscrowError::NotEnough { got: 2, need: 3, tampered: vec![] }));
        // The same officer twice counts once.
        let twice = [approvals[0].clone(), approvals[0].clone(), approvals[1].clone()];
        assert_eq!(recover(&Native, &e, &twice, &requester_sk), Err(EscrowError::NotEnough { got: 2, need: 3, tampered: vec![] }));
        // Sealed to someone else, they are no use to this requester.
        let (other_sk, _) = key(3);
        assert_eq!(recover(&Native, &e, &approvals, &other_sk), Err(EscrowError::NotEnough { got: 0, need: 3, tampered: vec![] }));
    }

    #[test]
    fn a_tampered_share_is_detected_and_named() {
        let (secret, _) = key(1);
        let officers: Vec<(Vec<u8>, Vec<u8>)> = (10..13).map(key).collect();
        let (requester_sk, requester_pk) = key(2);
        let e = escrow(&Native, &secret, &officers.iter().map(|o| o.1.clone()).collect::<Vec<_>>(), 2).expect("escrow");
        let mut approvals: Vec<Approval> = (0..3).map(|i| approve(&Native, &e, &officers[i].0, &requester_pk).expect("approve")).collect();
        if let Some(b) = approvals[1].sealed.get_mut(5) {
            *b ^= 1;
        }
        // With one honest share besides it: named, and not enough.
        let err = recover(&Native, &e, &approvals[..2], &requester_sk).expect_err("one valid share of two");
        assert_eq!(err, EscrowError::NotEnough { got: 1, need: 2, tampered: vec![1] });
        assert!(err.to_string().contains("officers [1] were altered"), "{err}");
        // With two honest ones, it is named and the key still comes back.
        let r = recover(&Native, &e, &approvals, &requester_sk).expect("two honest officers");
        assert_eq!((r.key, r.tampered), (secret.clone(), vec![1]));
        // Altered in the escrow record itself: the officer notices before sealing it on.
        let mut bad = e.clone();
        bad.shares[0].sealed[3] ^= 1;
        assert_eq!(approve(&Native, &bad, &officers[0].0, &requester_pk), Err(EscrowError::Tampered { index: 0 }));
        // A stranger is no officer; thresholds must make sense.
        assert!(approve(&Native, &e, &key(9).0, &requester_pk).is_err());
        assert!(escrow(&Native, &secret, &[officers[0].1.clone()], 1).is_err());
        assert!(escrow(&Native, &secret, &[officers[0].1.clone(), officers[0].1.clone()], 2).is_err());
    }
}
