//! `ecdh-sm2`: elliptic-curve Diffie-Hellman (the ECC CDH primitive of NIST SP 800-56A rev. 3
//! §5.7.1.2) over the SM2 curve of GB/T 32918.1 / 32918.5 (cofactor 1), on raw keys as the
//! peer-to-peer wire's Noise handshake carries them. This is plain ECDH on the SM2 curve, not
//! the SM2 key exchange protocol of GB/T 32918.3 (which needs identities and a confirmation
//! round that Noise does its own way).
//!
//! - private key: the 32-byte big-endian scalar d, 1 ≤ d < n (n - 1 included: unlike an SM2
//!   signing key, nothing here inverts 1 + d)
//! - public key: the 33-byte compressed SEC1 point (0x02 or 0x03, then x)
//! - shared secret: the 32-byte big-endian x-coordinate of d·Q
//!
//! A peer key must decode to a point of the curve (the curve has prime order, so every point
//! but the identity, which has no 33-byte encoding, is in the group); the product is checked
//! not to be the identity all the same.

use joule_crypto_sdk::Result;
use joule_crypto_sdk::ecdh::{self as sdk, Curve};

/// The algorithm identifier.
pub const ID: &str = "ecdh-sm2";

const CURVE: Curve = Curve {
    id: ID,
    name: "the SM2 curve",
};

/// The compressed public key d·G of a private scalar (the SDK's checks: 1 ≤ d < n).
pub fn public_key(private_key: &[u8]) -> Result<Vec<u8>> {
    sdk::public_key::<sm2::Sm2>(&CURVE, private_key)
}

/// x(d·Q) (the SDK's checks: Q a point of the curve, d·Q not the identity).
pub fn agree(private_key: &[u8], peer_public_key: &[u8]) -> Result<Vec<u8>> {
    sdk::agree::<sm2::Sm2>(&CURVE, private_key, peer_public_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Gm;
    use hex_literal::hex;
    use joule_crypto_sdk::Error;
    use joule_crypto_sdk::Plugin;
    use joule_crypto_sdk::ecdh::{PUBLIC_KEY_SIZE, SCALAR_SIZE};
    use sm2::SecretKey;
    use sm2::elliptic_curve::Curve;
    use sm2::elliptic_curve::sec1::ToSec1Point;

    /// Computed independently of any crypto library: a pure-Python affine double-and-add over
    /// the GB/T 32918.5 curve parameters (p, a, b, n, G), which checks n·G = O, that both
    /// public keys lie on the curve and that a·B = b·A. The scalars are SHA-256 of
    /// "joule ecdh-sm2 kat a" / "... b" (both below n). `python3 tools/sm2-ecdh-kat.py`
    /// prints these values.
    const A: [u8; 32] = hex!("cd238a6b2f8399fdf8b87978b931a23314c529e954955f13e757e126116c13c4");
    const A_PUB: [u8; 33] = hex!("0266cee951b33159e0e766400c96ff5d2f043e616d3ddca6c96542946438b0aeae");
    const B: [u8; 32] = hex!("eee61f44ae574a3d81f94c9cf3d60ae75dd2435e8be540e6cb96fdb0c43376b1");
    const B_PUB: [u8; 33] = hex!("03a0c4523fdcd1780ba1d2f7e9274a1258b13541c543bea91f6d41f0410a209c27");
    const SHARED: [u8; 32] = hex!("633ad040d2812621c8468c301615c5d1024c7d539cfa69bd7bb614169dc2d463");

    #[test]
    fn matches_an_independent_python_computation() {
        assert_eq!(Gm::agreement_public_key(ID, &A).unwrap(), A_PUB);
        assert_eq!(Gm::agreement_public_key(ID, &B).unwrap(), B_PUB);
        assert_eq!(Gm::agree(ID, &A, &B_PUB).unwrap(), SHARED);
        assert_eq!(Gm::agree(ID, &B, &A_PUB).unwrap(), SHARED);
    }

    #[test]
    fn both_sides_agree() {
        for (a, b) in [([1u8; 32], [2u8; 32]), ([0x5a; 32], A)] {
            let (pa, pb) = (public_key(&a).unwrap(), public_key(&b).unwrap());
            assert_eq!(pa.len(), PUBLIC_KEY_SIZE);
            let ab = Gm::agree(ID, &a, &pb).unwrap();
            assert_eq!(ab.len(), SCALAR_SIZE);
            assert_eq!(ab, Gm::agree(ID, &b, &pa).unwrap());
        }
    }

    #[test]
    fn invalid_scalars_are_invalid_keys() {
        let n: [u8; 32] = sm2::Sm2::ORDER.to_be_bytes().into();
        let mut n_minus_1 = n;
        n_minus_1[31] -= 1;
        // (n - 1)·G = -G: x(G) with the other parity (the Python script prints it too).
        assert_eq!(
            Gm::agreement_public_key(ID, &n_minus_1).unwrap(),
            hex!("0332c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7")
        );
        for bad in [&[0u8; 32][..], &n, &[0xff; 32], &[1; 31], &[1; 33], &[]] {
            assert!(
                matches!(Gm::agreement_public_key(ID, bad), Err(Error::InvalidKey(_))),
                "{bad:02x?}"
            );
            assert!(
                matches!(Gm::agree(ID, bad, &B_PUB), Err(Error::InvalidKey(_))),
                "{bad:02x?}"
            );
        }
    }

    #[test]
    fn invalid_peer_points_are_invalid_keys() {
        // x = 2: 8 - 6 + b is not a square mod p (Euler's criterion), so no point has it.
        let mut off_curve = [0u8; 33];
        off_curve[0] = 0x03;
        off_curve[32] = 2;
        let mut x_too_big = [0xffu8; 33];
        x_too_big[0] = 0x02;
        let uncompressed = SecretKey::from_slice(&A).unwrap().public_key().to_sec1_point(false);
        let mut bad_prefix = B_PUB;
        bad_prefix[0] = 0x04;
        for bad in [
            &off_curve[..],
            &x_too_big,
            uncompressed.as_bytes(),
            &bad_prefix,
            &B_PUB[..32],
            &[0x00],
            &[],
        ] {
            assert!(
                matches!(Gm::agree(ID, &A, bad), Err(Error::InvalidKey(_))),
                "{bad:02x?}"
            );
        }
        assert_eq!(Gm::agree("ecdh-p256", &A, &B_PUB), Err(Error::unsupported("ecdh-p256")));
        assert_eq!(Gm::agreement_public_key("sm2", &A), Err(Error::unsupported("sm2")));
    }
}
