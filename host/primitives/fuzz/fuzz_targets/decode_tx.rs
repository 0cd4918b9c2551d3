//! Any bytes: decoding a transaction never panics, and whatever decodes re-encodes to the
//! same bytes (the encoding is canonical: one value, one byte string).
#![no_main]

use joule_primitives::{Encode, Transaction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = Transaction::decode(data) {
        assert_eq!(tx.encode(), data, "a transaction decoded from bytes it does not encode to");
        assert!(tx.body.signing_bytes().starts_with(b"joule-tx/1\n"));
    }
});
