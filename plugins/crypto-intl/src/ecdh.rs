//! `ecdh-p256`: the elliptic-curve cryptography cofactor Diffie-Hellman primitive of NIST
//! SP 800-56A rev. 3 §5.7.1.2 over P-256 (cofactor 1), on raw keys as the peer-to-peer wire's
//! Noise handshake carries them.
//!
//! - private key: the 32-byte big-endian scalar d, 1 ≤ d < n
//! - public key: the 33-byte compressed SEC1 point (0x02 or 0x03, then x)
//! - shared secret: the 32-byte big-endian x-coordinate of d·Q
//!
//! A peer key must decode to a point of the curve (full public-key validation: the curve has
//! prime order, so every point but the identity, which has no 33-byte encoding, is in the
//! group); the product is checked not to be the identity all the same, as §5.7.1.2 requires.

use joule_crypto_sdk::Result;
use joule_crypto_sdk::ecdh::{self as sdk, Curve};

/// The algorithm identifier.
pub const ID: &str = "ecdh-p256";

const CURVE: Curve = Curve { id: ID, name: "P-256" };

/// The compressed public key d·G of a private scalar (the SDK's checks: 1 ≤ d < n).
pub fn public_key(private_key: &[u8]) -> Result<Vec<u8>> {
    sdk::public_key::<p256::NistP256>(&CURVE, private_key)
}

/// x(d·Q) (the SDK's checks: Q a point of the curve, d·Q not the identity).
pub fn agree(private_key: &[u8], peer_public_key: &[u8]) -> Result<Vec<u8>> {
    sdk::agree::<p256::NistP256>(&CURVE, private_key, peer_public_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Intl;
    use hex_literal::hex;
    use joule_crypto_sdk::Error;
    use joule_crypto_sdk::Plugin;
    use joule_crypto_sdk::ecdh::{PUBLIC_KEY_SIZE, SCALAR_SIZE};
    use p256::PublicKey;
    use p256::elliptic_curve::Curve;
    use p256::elliptic_curve::sec1::ToSec1Point;

    /// NIST CAVS 14.1 "KAS ECC CDH primitive" test vectors (KAS_ECC_CDH_PrimitiveTest.txt),
    /// [P-256] COUNT = 0: dIUT, QCAVS (y = ...a4ac is even: prefix 02), ZIUT; QIUT
    /// (y = ...5141 is odd: prefix 03) is dIUT's public key.
    const D_IUT: [u8; 32] = hex!("7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534");
    const Q_CAVS: [u8; 33] = hex!("02700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287");
    const Q_IUT: [u8; 33] = hex!("03ead218590119e8876b29146ff89ca61770c4edbbf97d38ce385ed281d8a6b230");
    const Z_IUT: [u8; 32] = hex!("46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b");

    #[test]
    fn nist_cavs_ecc_cdh_p256_vector() {
        assert_eq!(Intl::agreement_public_key(ID, &D_IUT).unwrap(), Q_IUT);
        assert_eq!(Intl::agree(ID, &D_IUT, &Q_CAVS).unwrap(), Z_IUT);
        // The uncompressed QCAVS decodes to the same point: the compressed form is right.
        let uncompressed = hex!(
            "04700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287"
            "db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac"
        );
        assert_eq!(
            PublicKey::from_sec1_bytes(&uncompressed).unwrap(),
            PublicKey::from_sec1_bytes(&Q_CAVS).unwrap()
        );
    }

    #[test]
    fn both_sides_agree() {
        for (a, b) in [([1u8; 32], [2u8; 32]), ([0x5a; 32], D_IUT)] {
            let (pa, pb) = (public_key(&a).unwrap(), public_key(&b).unwrap());
            assert_eq!(pa.len(), PUBLIC_KEY_SIZE);
            let ab = Intl::agree(ID, &a, &pb).unwrap();
            assert_eq!(ab.len(), SCALAR_SIZE);
            assert_eq!(ab, Intl::agree(ID, &b, &pa).unwrap());
        }
    }

    #[test]
    fn invalid_scalars_are_invalid_keys() {
        let n: [u8; 32] = p256::NistP256::ORDER.to_be_bytes().into();
        let mut n_minus_1 = n;
        n_minus_1[31] -= 1;
        assert!(Intl::agreement_public_key(ID, &n_minus_1).is_ok());
        for bad in [&[0u8; 32][..], &n, &[0xff; 32], &[1; 31], &[1; 33], &[]] {
            assert!(
                matches!(Intl::agreement_public_key(ID, bad), Err(Error::InvalidKey(_))),
                "{bad:02x?}"
            );
            assert!(
                matches!(Intl::agree(ID, bad, &Q_CAVS), Err(Error::InvalidKey(_))),
                "{bad:02x?}"
            );
        }
    }

    #[test]
    fn invalid_peer_points_are_invalid_keys() {
        // x = 1: 1 - 3 + b is not a square mod p (Euler's criterion), so no point has it.
        // (x = 0 would not do: b is a square, and (0, ±√b) are points of P-256.)
        let mut off_curve = [0u8; 33];
        off_curve[0] = 0x02;
        off_curve[32] = 1;
        let mut x_too_big = [0xffu8; 33];
        x_too_big[0] = 0x03;
        let uncompressed = p256::SecretKey::from_slice(&D_IUT)
            .unwrap()
            .public_key()
            .to_sec1_point(false);
        let mut bad_prefix = Q_CAVS;
        bad_prefix[0] = 0x04;
        for bad in [
            &off_curve[..],
            &x_too_big,
            uncompressed.as_bytes(),
            &bad_prefix,
            &Q_CAVS[..32],
            &[0x00],
            &[],
        ] {
            assert!(
                matches!(Intl::agree(ID, &D_IUT, bad), Err(Error::InvalidKey(_))),
                "{bad:02x?}"
            );
        }
        assert_eq!(
            Intl::agree("ecdh-sm2", &D_IUT, &Q_CAVS),
            Err(Error::unsupported("ecdh-sm2"))
        );
        assert_eq!(
            Intl::agreement_public_key("ecdsa-p256", &D_IUT),
            Err(Error::unsupported("ecdsa-p256"))
        );
    }
}
