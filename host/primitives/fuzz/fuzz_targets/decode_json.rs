//! Any bytes as the JSON view of a transaction (what `POST /v1/tx` accepts): never a
//! panic; a parsed transaction that passes validation round-trips through its canonical
//! encoding.
#![no_main]

use joule_primitives::{Encode, Transaction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = serde_json::from_slice::<Transaction>(data)
        && tx.validate().is_ok()
    {
        assert_eq!(Transaction::decode(&tx.encode()).as_ref(), Ok(&tx));
    }
});
