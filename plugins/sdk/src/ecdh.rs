//! Elliptic-curve Diffie-Hellman on raw keys, as `joule:crypto/key-agreement` carries them:
//! the ECC CDH primitive of NIST SP 800-56A rev. 3 §5.7.1.2, for any prime-order curve of the
//! RustCrypto `elliptic-curve` family (P-256, the SM2 curve).
//!
//! - private key: the 32-byte big-endian scalar d, 1 ≤ d < n
//! - public key: the 33-byte compressed SEC1 point (0x02 or 0x03, then x)
//! - shared secret: the 32-byte big-endian x-coordinate of d·Q
//!
//! A peer key must decode to a point of the curve (full public-key validation: on a curve of
//! prime order every point but the identity, which has no 33-byte encoding, is in the
//! group); the product is checked not to be the identity all the same, as §5.7.1.2 requires.

use crate::{Error, Result};
use elliptic_curve::group::Group;
use elliptic_curve::point::AffineCoordinates;
use elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
use elliptic_curve::{AffinePoint, CurveArithmetic, FieldBytesSize, ProjectivePoint, PublicKey, SecretKey};

/// Bytes of a private scalar and of the shared secret.
pub const SCALAR_SIZE: usize = 32;
/// Bytes of a compressed public key.
pub const PUBLIC_KEY_SIZE: usize = 33;

/// A curve the primitive runs on, named for error messages.
pub struct Curve {
    /// The algorithm identifier, e.g. `ecdh-p256`.
    pub id: &'static str,
    /// The curve's name, e.g. `P-256`.
    pub name: &'static str,
}

/// d from its 32 big-endian bytes: zero and values ≥ n are `invalid-key`.
fn secret<C>(curve: &Curve, private_key: &[u8]) -> Result<SecretKey<C>>
where
    C: CurveArithmetic,
{
    if private_key.len() != SCALAR_SIZE {
        return Err(Error::key(format!(
            "{} private keys are {SCALAR_SIZE}-byte scalars, got {} bytes",
            curve.id,
            private_key.len()
        )));
    }
    SecretKey::<C>::from_slice(private_key)
        .map_err(|_| Error::key(format!("{} private key is zero or not below the group order", curve.id)))
}

/// Q from its compressed encoding, validated to lie on the curve.
fn peer<C>(curve: &Curve, public_key: &[u8]) -> Result<PublicKey<C>>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    match public_key {
        [0x02 | 0x03, ..] if public_key.len() == PUBLIC_KEY_SIZE => PublicKey::<C>::from_sec1_bytes(public_key)
            .map_err(|_| Error::key(format!("{} public key is not a point of {}", curve.id, curve.name))),
        _ => Err(Error::key(format!(
            "{} public keys are {PUBLIC_KEY_SIZE}-byte compressed SEC1 points",
            curve.id
        ))),
    }
}

/// The compressed public key d·G of a private scalar.
pub fn public_key<C>(curve: &Curve, private_key: &[u8]) -> Result<Vec<u8>>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    Ok(secret::<C>(curve, private_key)?
        .public_key()
        .as_affine()
        .to_sec1_point(true)
        .as_bytes()
        .to_vec())
}

/// x(d·Q), by the curve crate's constant-time scalar multiplication.
pub fn agree<C>(curve: &Curve, private_key: &[u8], peer_public_key: &[u8]) -> Result<Vec<u8>>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let d = secret::<C>(curve, private_key)?;
    let q = peer::<C>(curve, peer_public_key)?;
    let shared = ProjectivePoint::<C>::from(*q.as_affine()) * *d.to_nonzero_scalar();
    if bool::from(shared.is_identity()) {
        return Err(Error::key(format!("{}: the shared point is the identity", curve.id)));
    }
    let shared: AffinePoint<C> = shared.into();
    Ok(shared.x().to_vec())
}
