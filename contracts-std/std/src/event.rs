//! Typed events (§4.3.4).
//!
//! ```ignore
//! #[event]
//! pub struct Traded {
//!     #[indexed]
//!     pub offer: u64,
//!     #[indexed]
//!     pub buyer: Address,
//!     pub amount: U256,
//! }
//!
//! Traded { offer, buyer, amount }.emit();
//! ```
//!
//! The event's name is the struct's name (its first topic); each `#[indexed]` field (at most
//! three) is one more topic, its borsh bytes (at most 64); the other fields, borsh-encoded
//! one after another (as a tuple), are the data.

use borsh::BorshSerialize;

use crate::sys;

/// An event type; implemented by `#[event]`.
pub trait Event {
    /// The event's name: the struct's name.
    const NAME: &'static str;
    /// The event's ABI line (`{"event":...}` and a newline).
    const ABI: &'static str;

    /// The indexed topics (without the name).
    fn topics(&self) -> Vec<Vec<u8>>;

    /// The borsh data of the fields that are not indexed.
    fn data(&self) -> Vec<u8>;

    /// Emit the event (`events.emit`). In a query, the host traps.
    fn emit(&self) {
        sys::emit(Self::NAME, &self.topics(), &self.data())
    }
}

/// Most bytes of one topic.
pub const MAX_TOPIC_BYTES: usize = 64;

#[doc(hidden)]
pub fn topic<T: BorshSerialize + ?Sized>(event: &str, field: &str, value: &T) -> Vec<u8> {
    let bytes = crate::storage::encode_value(value);
    if bytes.len() > MAX_TOPIC_BYTES {
        crate::revert(format!(
            "event {event}: indexed field {field} is {} bytes, at most {MAX_TOPIC_BYTES}",
            bytes.len()
        ));
    }
    bytes
}

#[doc(hidden)]
pub fn data<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    crate::storage::encode_value(value)
}
