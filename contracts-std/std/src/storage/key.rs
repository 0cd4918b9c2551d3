//! Order-preserving key encodings: the byte order of encoded keys is the natural order of
//! the keys, so a [`crate::Map`] iterates (through `storage.scan`) in key order.

use core::fmt;

use crate::Address;
use crate::math::{I128, I256, U128, U256};

/// Why stored key bytes do not decode as the map's key type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A type usable as a [`crate::Map`] key.
///
/// Encodings (all order-preserving, and self-delimiting so that tuples compose):
///
/// | key | encoding |
/// |---|---|
/// | `u8`..`u128`, `U128`, `U256` | big-endian bytes |
/// | `i8`..`i128`, `I128`, `I256` | big-endian bytes with the sign bit flipped |
/// | `bool` | one byte, 0 or 1 |
/// | `Address`, `[u8; N]` | the bytes |
/// | `String`, `str`, `Vec<u8>`, `[u8]` | the bytes with each `0x00` written `0x00 0xff`, then `0x00 0x00` |
/// | `Option<T>` | `0x00` for `None`, `0x01 ‖ T` for `Some` |
/// | `(A, B)`, `(A, B, C)`, `(A, B, C, D)` | the components one after another |
/// | `()` | nothing |
///
/// So `Map<u64, _>` iterates numerically, `Map<String, _>` lexicographically by bytes, and
/// `Map<(Address, u64), _>` by address, then number; [`crate::Map::prefix_iter`] with an
/// `Address` visits one address's entries.
pub trait StorageKey {
    /// Append the encoding of `self` to `out`.
    fn encode_key(&self, out: &mut Vec<u8>);

    /// Read one key from the front of `input`, advancing it. Unsized and borrowed keys
    /// (`str`, `[u8]`, `&T`), usable only to look entries up, keep the default: an error.
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyError>
    where
        Self: Sized,
    {
        let _ = input;
        Err(KeyError(format!(
            "a {} key cannot be decoded",
            core::any::type_name::<Self>()
        )))
    }
}

/// The encoding of `key`.
pub fn encode_key<K: StorageKey + ?Sized>(key: &K) -> Vec<u8> {
    let mut out = Vec::new();
    key.encode_key(&mut out);
    out
}

fn take<'a>(input: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], KeyError> {
    if input.len() < n {
        return Err(KeyError(format!(
            "key too short for a {what}: {} of {n} bytes",
            input.len()
        )));
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn take_array<const N: usize>(input: &mut &[u8], what: &str) -> Result<[u8; N], KeyError> {
    let mut out = [0u8; N];
    out.copy_from_slice(take(input, N, what)?);
    Ok(out)
}

macro_rules! unsigned_key {
    ($($t:ty),*) => {$(
        impl StorageKey for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn decode_key(input: &mut &[u8]) -> Result<Self, KeyError> {
                Ok(<$t>::from_be_bytes(take_array(input, stringify!($t))?))
            }
        }
    )*};
}

unsigned_key!(u8, u16, u32, u64, u128, U128, U256);

macro_rules! signed_key {
    ($($t:ty),*) => {$(
        impl StorageKey for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                let mut bytes = self.to_be_bytes();
                bytes[0] ^= 0x80;
                out.extend_from_slice(&bytes);
            }
            fn decode_key(input: &mut &[u8]) -> Result<Self, KeyError> {
                let mut bytes = take_array(input, stringify!($t))?;
                bytes[0] ^= 0x80;
                Ok(<$t>::from_be_bytes(bytes))
            }
        }
    )*};
}

signed_key!(i8, i16, i32, i64, i128, I128, I256);

impl StorageKey for bool {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }

    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyError> {
        match take(input, 1, "bool")?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(KeyError(format!("not a bool key byte: {b}"))),
        }
    }
}

impl StorageKey for Address {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyError> {
        Ok(Address(take_array(input, "Address")?))
    }
}

impl<const N: usize> StorageKey for [u8; N] {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }

    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyError> {
        take_array(input, "byte array")
    }
}

fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

fn decode_bytes(input: &mut &[u8]) -> Result<Vec<u8>, KeyError> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match input.get(i) {
            None => return Err(KeyError("unterminated byte-string key".into())),
            Some(0) => match input.get(i + 1) {
                Some(0) => {
                    *input = &input[i + 2..];
                    return Ok(out);
                }
                Some(0xff) => {
                    out.push(0);
                    i += 2;
                }
                _ => return Err(KeyError("bad escape in a byte-string key".into())),
            },
            Some(&b) => {
                out.push(b);
                i += 1;
            }
        }
    }
}

impl StorageKey for [u8] {
    fn encode_key(&self, out: &mut Vec<u8>) {
        encode_bytes(self, out)
    }
}

impl StorageKey for Vec<u8> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        encode_bytes(self, out)
    }

    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyError> {
        decode_bytes(input)
    }
}

impl StorageKey for str {
    fn encode_key(&self, out: &mut Vec<u8>) {
        encode_bytes(self.as_bytes(), out)
    }
}

impl StorageKey for String {
    fn encode_key(&self, out: &mut Vec<u8>) {
        encode_bytes(self.as_bytes(), out)
    }

    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyError> {
        String::from_utf8(decode_bytes(input)?).map_err(|e| KeyError(format!("string key is not UTF-8: {e}")))
    }
}

impl<T: StorageKey + ?Sized> StorageKey for &T {
    fn encode_key(&self, out: &mut Vec<u8>) {
        (**self).encode_key(out)
    }
}

impl<T: StorageKey> StorageKey for Option<T> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode_key(out)
            }
        }
    }

    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyError> {
        match take(input, 1, "Option")?[0] {
            0 => Ok(None),
            1 => Ok(Some(T::decode_key(input)?)),
            b => Err(KeyError(format!("not an Option key tag: {b}"))),
        }
    }
}

impl StorageKey for () {
    fn encode_key(&self, _: &mut Vec<u8>) {}

    fn decode_key(_: &mut &[u8]) -> Result<Self, KeyError> {
        Ok(())
    }
}

macro_rules! tuple_key {
    ($($n:tt $t:ident),*) => {
        impl<$($t: StorageKey),*> StorageKey for ($($t,)*) {
            fn encode_key(&self, out: &mut Vec<u8>) {
                $(self.$n.encode_key(out);)*
            }
            fn decode_key(input: &mut &[u8]) -> Result<Self, KeyError> {
                Ok(($($t::decode_key(input)?,)*))
            }
        }
    };
}

tuple_key!(0 A);
tuple_key!(0 A, 1 B);
tuple_key!(0 A, 1 B, 2 C);
tuple_key!(0 A, 1 B, 2 C, 3 D);

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_by_encoding<K: StorageKey + Clone>(keys: &[K]) -> Vec<K> {
        let mut encoded: Vec<(Vec<u8>, K)> = keys.iter().map(|k| (encode_key(k), k.clone())).collect();
        encoded.sort_by(|a, b| a.0.cmp(&b.0));
        encoded.into_iter().map(|(_, k)| k).collect()
    }

    fn round_trip<K: StorageKey + PartialEq + core::fmt::Debug>(key: K) {
        let bytes = encode_key(&key);
        let mut input = bytes.as_slice();
        assert_eq!(K::decode_key(&mut input).unwrap(), key);
        assert!(input.is_empty());
    }

    #[test]
    fn integer_keys_order_numerically() {
        let keys = [0u64, 1, 2, 9, 10, 255, 256, 1 << 40, u64::MAX];
        assert_eq!(sorted_by_encoding(&keys), keys);
        let keys = [i64::MIN, -300, -1, 0, 1, 2, 300, i64::MAX];
        assert_eq!(sorted_by_encoding(&keys), keys);
        let keys = [I256::MIN, I256::new(-5), I256::ZERO, I256::ONE, I256::MAX];
        assert_eq!(sorted_by_encoding(&keys), keys);
        let keys = [U256::ZERO, U256::new(7), U256::from_words(1, 0), U256::MAX];
        assert_eq!(sorted_by_encoding(&keys), keys);
        for k in keys {
            round_trip(k);
        }
        round_trip(-5i8);
        round_trip(I128::new(-9));
        round_trip(U128::new(9));
    }

    #[test]
    fn byte_string_keys_order_lexicographically_and_compose() {
        let keys: Vec<String> = ["", "\0", "\0\0", "a", "a\0", "a\0b", "ab", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(sorted_by_encoding(&keys), keys);
        let keys = [
            ("a".to_string(), 9u8),
            ("a".to_string(), 10),
            ("a\0".to_string(), 0),
            ("ab".to_string(), 0),
        ];
        assert_eq!(sorted_by_encoding(&keys), keys);
        for k in keys {
            round_trip(k);
        }
        round_trip((Address([3; 32]), Some(7u32), true, vec![0u8, 255, 0]));
        round_trip(Option::<u8>::None);
        assert_eq!(encode_key("abc"), encode_key(&"abc".to_string()));
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert!(u64::decode_key(&mut &[1u8, 2][..]).is_err());
        assert!(String::decode_key(&mut &b"abc"[..]).is_err());
        assert!(String::decode_key(&mut &[0u8, 7][..]).is_err());
        assert!(bool::decode_key(&mut &[2u8][..]).is_err());
        assert!(<&str>::decode_key(&mut &[0u8, 0][..]).is_err());
    }
}
