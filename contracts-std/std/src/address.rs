use core::fmt;
use core::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};

/// A 32-byte account id: an account (the suite hash of its public key) or a contract.
///
/// Borsh-encoded as its 32 bytes; displayed and parsed as 64 lowercase hex digits (an
/// optional `0x` prefix and upper case are accepted when parsing).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize)]
#[borsh(crate = "borsh")]
pub struct Address(pub [u8; 32]);

impl Address {
    /// The all-zero address (no account has it).
    pub const ZERO: Address = Address([0; 32]);

    /// The address of the given bytes.
    pub const fn new(bytes: [u8; 32]) -> Self {
        Address(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 32 bytes, by value.
    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// The account id of a public key (SubjectPublicKeyInfo DER), by the channel's suite
    /// (`chain.account-id`; SHA-256 of the key in the mock chain).
    pub fn from_public_key(spki: &[u8]) -> Address {
        crate::sys::account_id(spki)
    }
}

impl From<[u8; 32]> for Address {
    fn from(bytes: [u8; 32]) -> Self {
        Address(bytes)
    }
}

impl From<Address> for [u8; 32] {
    fn from(address: Address) -> Self {
        address.0
    }
}

impl AsRef<[u8]> for Address {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl TryFrom<&[u8]> for Address {
    type Error = ParseAddressError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        <[u8; 32]>::try_from(bytes)
            .map(Address)
            .map_err(|_| ParseAddressError::Length(bytes.len()))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

/// Why a string or a byte slice is not an [`Address`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseAddressError {
    /// Not 32 bytes (64 hex digits); the length found, in bytes or digits.
    Length(usize),
    /// A character that is not a hex digit, at this position.
    Digit(usize),
}

impl fmt::Display for ParseAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseAddressError::Length(n) => write!(f, "an address is 32 bytes (64 hex digits), not {n}"),
            ParseAddressError::Digit(at) => write!(f, "not a hex digit at position {at}"),
        }
    }
}

impl std::error::Error for ParseAddressError {}

impl FromStr for Address {
    type Err = ParseAddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("0x").unwrap_or(s).as_bytes();
        if hex.len() != 64 {
            return Err(ParseAddressError::Length(hex.len()));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let digit = |at: usize| -> Result<u8, ParseAddressError> {
                match hex[at] {
                    c @ b'0'..=b'9' => Ok(c - b'0'),
                    c @ b'a'..=b'f' => Ok(c - b'a' + 10),
                    c @ b'A'..=b'F' => Ok(c - b'A' + 10),
                    _ => Err(ParseAddressError::Digit(at)),
                }
            };
            *byte = (digit(2 * i)? << 4) | digit(2 * i + 1)?;
        }
        Ok(Address(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let a = Address([0xab; 32]);
        let s = a.to_string();
        assert_eq!(s, "ab".repeat(32));
        assert_eq!(s.parse::<Address>(), Ok(a));
        assert_eq!(format!("0x{}", s.to_uppercase()).parse::<Address>(), Ok(a));
        assert_eq!("abc".parse::<Address>(), Err(ParseAddressError::Length(3)));
        assert_eq!(
            format!("{}zz", "00".repeat(31)).parse::<Address>(),
            Err(ParseAddressError::Digit(62))
        );
        assert_eq!(format!("{a:?}"), format!("Address({s})"));
        assert_eq!(borsh::to_vec(&a).unwrap(), vec![0xab; 32]);
        assert_eq!(Address::try_from(&[1u8; 31][..]), Err(ParseAddressError::Length(31)));
    }

    #[test]
    fn from_public_key_is_the_suite_hash() {
        let id = Address::from_public_key(b"key");
        assert_eq!(id.as_bytes().to_vec(), crate::crypto::hash(b"key"));
    }
}
