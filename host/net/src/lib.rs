//! The peer-to-peer transport of a channel (guide §4.2, §5.2.3–5.2.4, §10.1).
//!
//! Nodes connect over TCP and run a Noise XX handshake ([`secure`]) with their static
//! network keys, in the channel's suite ([`WireSuite`]: P-256/AES-256-GCM/SHA-256 for
//! `intl`, SM2-curve ECDH/SM4-GCM/SM3 for `gm`), bound by the prologue to the channel and
//! its genesis. Each side checks the other's static key against the channel's node set
//! ([`PeerAuthorizer`]): a stranger is dropped before it can send a message. Messages
//! ([`Message`]) are versioned, encrypted, framed and chunked; every queue is bounded
//! (per-peer send queues, the event queue to the node, message size, a per-peer rate);
//! peers that send garbage, oversized or too many messages, or that the node reports, lose
//! score and are banned ([`Offence`]); pings keep liveness (§10.1).
//!
//! The handshake and every frame run on [`WirePrimitives`]: a node serves them from its
//! crypto plugins; [`NativePrimitives`] (RustCrypto, in process) is the reference they are
//! tested and benchmarked against.
//!
//! [`Network`] is the one implementation: a TLCP (GB/T 38636) backend would replace
//! [`secure::handshake`] and the framing below [`Network`], with the same events.

mod crypto;
mod message;
mod network;
mod score;
pub mod secure;
mod suite;

pub use crypto::{HASH_LEN, NativePrimitives, PUBLIC_KEY_LEN, SCALAR_LEN, TAG_LEN, WirePrimitives};
pub use message::{DecodeError, Message, WIRE_VERSION};
pub use network::{NetConfig, NetCounters, NetError, NetEvent, Network, NodeSet, PeerAuthorizer, PeerInfo, SendError};
pub use score::{BAN_SCORE, Offence, Scores};
pub use suite::{KeyError, NodeKey, PeerKey, WireSuite};

#[cfg(test)]
mod tests;
