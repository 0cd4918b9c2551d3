//! The context of the running call: who calls, on which contract, channel and block.
//!
//! Each function asks the host (`context.get`); none caches.

use crate::{Address, sys};

/// Account id of the immediate caller: the transaction's sender, or the calling contract
/// for a cross-contract call.
pub fn caller() -> Address {
    sys::call_context().caller
}

/// Account id of the transaction's sender, whoever called in between.
pub fn origin() -> Address {
    sys::call_context().origin
}

/// This contract's own account id.
pub fn contract() -> Address {
    sys::call_context().contract
}

/// The channel the transaction runs on.
pub fn channel() -> String {
    sys::call_context().channel
}

/// Height of the block being executed.
pub fn height() -> u64 {
    sys::call_context().height
}

/// The block's timestamp (Unix milliseconds): the only clock a contract sees.
pub fn timestamp_ms() -> u64 {
    sys::call_context().timestamp_ms
}

/// Gas still available to this call.
pub fn gas_left() -> u64 {
    sys::gas_left()
}

/// Abort the call: its writes and events are undone and the receipt is `reverted` with
/// `message` (the host keeps at most 1 KiB). Never returns.
///
/// In native tests (the mock chain) this unwinds with the message, which
/// [`crate::testing`]'s entry points turn back into `Err(message)`.
pub fn revert(message: impl AsRef<str>) -> ! {
    sys::revert(message.as_ref())
}

/// Revert with `message` unless `condition` holds.
pub fn require(condition: bool, message: impl AsRef<str>) {
    if !condition {
        revert(message)
    }
}
