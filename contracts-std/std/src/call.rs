//! Calls to other contracts and libraries (§4.3.5).
//!
//! `#[contract]` generates a typed `<Name>Ref` (and `<Name>Lib` for `#[contract(library)]`)
//! over these functions; they are also usable directly with any borsh arguments.

use core::fmt;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::sys::{self, CallKind};
use crate::{Address, storage};

/// A failed call to another contract or library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The callee failed (reverted, returned an error, ran out of gas, does not exist, …);
    /// the message is the host's. Only the callee's writes were undone.
    Failed(String),
    /// The callee succeeded but its result does not decode as the expected type.
    BadReturn(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Failed(message) => write!(f, "call failed: {message}"),
            CallError::BadReturn(message) => write!(f, "call returned a bad result: {message}"),
        }
    }
}

impl std::error::Error for CallError {}

fn run<R: BorshDeserialize>(
    kind: CallKind,
    target: &Address,
    method: &str,
    args: &[u8],
    gas: Option<u64>,
) -> Result<R, CallError> {
    let bytes = sys::call(kind, target, method, args, gas).map_err(CallError::Failed)?;
    R::try_from_slice(&bytes).map_err(|e| CallError::BadReturn(format!("{method}: {e}")))
}

/// Run state-changing `method` of the contract at `target` with borsh `args` (a tuple of
/// the parameters), with at most `gas` (all that is left when `None`).
pub fn call<A: BorshSerialize + ?Sized, R: BorshDeserialize>(
    target: &Address,
    method: &str,
    args: &A,
    gas: Option<u64>,
) -> Result<R, CallError> {
    run(CallKind::Call, target, method, &storage::encode_value(args), gas)
}

/// Run read-only `method` of the contract at `target`.
pub fn query<A: BorshSerialize + ?Sized, R: BorshDeserialize>(
    target: &Address,
    method: &str,
    args: &A,
    gas: Option<u64>,
) -> Result<R, CallError> {
    run(CallKind::Query, target, method, &storage::encode_value(args), gas)
}

/// Run `method` of the library at `target`.
pub fn library<A: BorshSerialize + ?Sized, R: BorshDeserialize>(
    target: &Address,
    method: &str,
    args: &A,
    gas: Option<u64>,
) -> Result<R, CallError> {
    run(CallKind::Library, target, method, &storage::encode_value(args), gas)
}

/// The raw form of [`call`], [`query`] and [`library`]: bytes in, bytes out.
pub fn raw(kind: Kind, target: &Address, method: &str, args: &[u8], gas: Option<u64>) -> Result<Vec<u8>, String> {
    let kind = match kind {
        Kind::Call => CallKind::Call,
        Kind::Query => CallKind::Query,
        Kind::Library => CallKind::Library,
    };
    sys::call(kind, target, method, args, gas)
}

/// Which `calls` import [`raw`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `calls.call`.
    Call,
    /// `calls.query`.
    Query,
    /// `calls.library`.
    Library,
}
