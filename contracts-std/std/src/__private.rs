//! Support of the code the macros generate. Not a stable API.

use core::fmt::Display;

use borsh::{BorshDeserialize, BorshSerialize};

pub use crate::access::{HasOwnable, HasPausable, HasRoles};
pub use crate::call::{call, library, query};
pub use crate::contract::{Contract, ContractType, Entry};
pub use crate::event::{Event, data, topic};
pub use crate::storage::{StorageField, field_prefix};
pub use core::result::Result;
pub use std::string::{String, ToString};
pub use std::vec::Vec;

#[cfg(target_arch = "wasm32")]
pub use wit_bindgen;

/// Decode the arguments of `method` (a tuple of its parameters).
pub fn decode_args<T: BorshDeserialize>(method: &str, args: &[u8]) -> Result<T, String> {
    T::try_from_slice(args).map_err(|e| format!("bad arguments for {method}: {e}"))
}

/// Encode a method's result.
pub fn encode_return<T: BorshSerialize + ?Sized>(method: &str, value: &T) -> Result<Vec<u8>, String> {
    borsh::to_vec(value).map_err(|e| format!("cannot encode the result of {method}: {e}"))
}

/// The error of a method returning `Result<_, E>`.
pub fn error_message<E: Display>(error: E) -> String {
    error.to_string()
}

/// `"unknown method NAME"`.
pub fn unknown_method(method: &str) -> Result<Vec<u8>, String> {
    Err(format!("unknown method {method}"))
}

/// `"METHOD changes state: send it as a transaction"`.
pub fn changes_state(method: &str) -> Result<Vec<u8>, String> {
    Err(format!("{method} changes state: send it as a transaction"))
}

/// The ABI string as a byte array (for the `joule-abi/1` custom section).
pub const fn abi_bytes<const N: usize>(abi: &str) -> [u8; N] {
    let bytes = abi.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N && i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// The body of the wasm exports: install the panic hook (a panic reverts with
/// "panic: MSG", so the message survives `panic = "abort"`), then dispatch.
#[cfg(target_arch = "wasm32")]
pub fn export<C: Contract>(entry: Entry, method: &str, args: &[u8]) -> Result<Vec<u8>, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info.payload_as_str().unwrap_or("(no message)");
            crate::sys::revert(&format!("panic: {message}"))
        }))
    });
    C::dispatch(entry, method, args)
}
