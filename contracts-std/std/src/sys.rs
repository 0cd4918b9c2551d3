//! The one module through which the library reaches the host: the WIT imports on wasm32,
//! the thread-local mock chain of [`crate::testing`] natively.

use crate::Address;

/// The context of the running call (`context.get`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CallContext {
    pub caller: Address,
    pub origin: Address,
    pub contract: Address,
    pub channel: String,
    pub height: u64,
    pub timestamp_ms: u64,
}

/// Which `calls` import a cross-contract call goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallKind {
    Call,
    Query,
    Library,
}

#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::*;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::mock::*;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::{CallContext, CallKind};
    use crate::Address;
    use crate::bindings::joule::contract::{calls, chain, context, control, events, storage};

    fn address(what: &str, bytes: &[u8]) -> Address {
        match Address::try_from(bytes) {
            Ok(address) => address,
            Err(_) => revert(&format!("host returned a {}-byte {what}, expected 32", bytes.len())),
        }
    }

    pub(crate) fn call_context() -> CallContext {
        let c = context::get();
        CallContext {
            caller: address("caller", &c.caller),
            origin: address("origin", &c.origin),
            contract: address("contract", &c.contract),
            channel: c.channel,
            height: c.height,
            timestamp_ms: c.timestamp_ms,
        }
    }

    pub(crate) fn gas_left() -> u64 {
        context::gas_left()
    }

    pub(crate) fn storage_get(key: &[u8]) -> Option<Vec<u8>> {
        storage::get(key)
    }

    pub(crate) fn storage_has(key: &[u8]) -> bool {
        storage::has(key)
    }

    pub(crate) fn storage_set(key: &[u8], value: &[u8]) {
        storage::set(key, value)
    }

    pub(crate) fn storage_remove(key: &[u8]) {
        storage::remove(key)
    }

    pub(crate) fn storage_scan(prefix: &[u8], after: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        storage::scan(prefix, after, limit)
    }

    pub(crate) fn emit(name: &str, indexed: &[Vec<u8>], data: &[u8]) {
        events::emit(name, indexed, data)
    }

    pub(crate) fn hash(data: &[u8]) -> Vec<u8> {
        chain::hash(data)
    }

    pub(crate) fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        chain::verify(public_key, message, signature)
    }

    pub(crate) fn account_id(public_key: &[u8]) -> Address {
        address("account id", &chain::account_id(public_key))
    }

    pub(crate) fn call(
        kind: CallKind,
        target: &Address,
        method: &str,
        args: &[u8],
        gas: Option<u64>,
    ) -> Result<Vec<u8>, String> {
        match kind {
            CallKind::Call => calls::call(target.as_bytes(), method, args, gas),
            CallKind::Query => calls::query(target.as_bytes(), method, args, gas),
            CallKind::Library => calls::library(target.as_bytes(), method, args, gas),
        }
    }

    pub(crate) fn revert(message: &str) -> ! {
        control::revert(message);
        // `control.revert` never returns; should a host ever return, trap.
        core::arch::wasm32::unreachable()
    }
}
