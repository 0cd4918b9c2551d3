//! Smart contracts as the ledger sees them (guide §4.3).
//!
//! The ledger owns state: accounts, storage trees, events, the code of deployed contracts.
//! A [`ContractVm`] runs contract code against it through [`ContractHost`], which the
//! ledger implements over a block's pending writes. The VM is a plugin-free part of the
//! node (every node must run exactly the code on chain, by its hash), implemented on
//! wasmtime by `joule-contract-wasm`; the ledger never sees wasm.
//!
//! Everything here is consensus: the [`GasSchedule`], the [`limits`] and the address
//! derivation are the same on every node of a channel, and the chain specification names
//! the schedule's version, so changing any of them is a protocol change.

pub mod abi;
pub mod gas;
pub mod limits;

pub use gas::GasSchedule;
use joule_primitives::{Event, Hash32};
use std::any::Any;
use std::sync::Arc;

/// The rustc flags contracts are built with for `wasm32-unknown-unknown`, by `joule
/// contract build` and the test harness (`examples-contracts/.cargo/config.toml` repeats
/// them): the wide-arithmetic instructions for 128- and 256-bit math, and 2 MiB of initial
/// memory, so the standard library's heap has room above rustc's 1 MiB stack and a
/// typical call never grows memory. Part of what makes a build reproducible: the code
/// hash depends on them.
pub const WASM_RUSTFLAGS: &[&str] = &["-Ctarget-feature=+wide-arithmetic", "-Clink-arg=--initial-memory=2097152"];

/// Storage entries as `scan` returns them: (key, value), ascending by key.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Why the host could not serve a request: the node's own failure (a store error, a
/// missing code blob), never the contract's. A call that meets one is abandoned and the
/// block is not produced or imported on this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HostFault(pub String);

/// One storage entry: key and value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A deployed contract, as its account records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractRecord {
    /// The hash (the channel's hash) of the code the contract runs.
    pub code_hash: Hash32,
}

/// The state a contract call reads and writes: implemented by the ledger over the parent
/// block's state plus the writes of the block so far.
///
/// Writes go to the innermost open checkpoint; [`ContractHost::checkpoint`] opens one per
/// call (the VM opens one for every cross-contract call), which the VM then commits (into
/// the enclosing one) or reverts (its writes and events undone).
///
/// `Send + 'static` because the VM keeps the host inside the wasmtime store while a call
/// runs (owned, moved in and out), so no borrowed state crosses into the sandbox.
pub trait ContractHost: Send + 'static {
    fn storage_get(&mut self, contract: &Hash32, key: &[u8]) -> Result<Option<Vec<u8>>, HostFault>;
    /// `None` removes the key.
    fn storage_set(&mut self, contract: &Hash32, key: &[u8], value: Option<&[u8]>) -> Result<(), HostFault>;
    /// Up to `limit` entries with keys starting with `prefix`, ascending, after `after`.
    fn storage_scan(&mut self, contract: &Hash32, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<KeyValue>, HostFault>;
    fn emit(&mut self, event: Event);
    /// The deployed contract at `contract`, if any.
    fn contract(&mut self, contract: &Hash32) -> Result<Option<ContractRecord>, HostFault>;
    /// The code whose hash is `code_hash` (deployed earlier, or in this block).
    fn code(&mut self, code_hash: &Hash32) -> Result<Option<Arc<[u8]>>, HostFault>;
    /// The channel's hash.
    fn hash(&self, data: &[u8]) -> Result<Hash32, HostFault>;
    /// The channel's signature check; a malformed key or signature is `false`.
    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool;
    fn checkpoint(&mut self);
    fn commit_checkpoint(&mut self);
    fn revert_checkpoint(&mut self);
    /// For the ledger to take its own type back after a call.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// Which export runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `init`, once, at deployment.
    Init,
    /// `call`: may write.
    Call,
    /// `query`: read-only.
    Query,
}

/// One top-level call of a contract.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub entry: Entry,
    pub contract: Hash32,
    pub code_hash: Hash32,
    /// Empty for `init`.
    pub method: String,
    pub args: Vec<u8>,
    /// Account id of the transaction's sender (caller and origin of a top-level call).
    pub sender: Hash32,
    pub channel: String,
    pub height: u64,
    pub timestamp_ms: u64,
    /// Gas this call may use.
    pub gas_limit: u64,
}

/// Why a call failed, as its receipt records it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("out of gas")]
    OutOfGas,
    /// A revert, an `err` return, a trap (`unreachable`, a panic, a memory or stack limit):
    /// the message says which.
    #[error("{0}")]
    Reverted(String),
}

/// What a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The method's return bytes, or why it failed (its writes then undone).
    pub result: Result<Vec<u8>, Failure>,
    /// Gas used, on success and failure alike (the limit when out of gas).
    pub gas_used: u64,
}

/// A failure of this node rather than of the contract: the block is abandoned here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VmFault {
    #[error("state: {0}")]
    Host(#[from] HostFault),
    /// A deployed contract's code could not be compiled or instantiated on this node.
    #[error("contract runtime: {0}")]
    Runtime(String),
    /// The call ran past the node's wall-clock safety net (never a receipt: gas bounds
    /// every call, so this means the node is too slow or overloaded).
    #[error("a contract call ran past the node's {0} ms safety limit")]
    Timeout(u64),
}

/// Why code cannot be deployed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeployRefusal(pub String);

/// Runs contract code. Deterministic: the same invocation on the same state gives the same
/// outcome, writes, events and gas on every node.
pub trait ContractVm: Send + Sync {
    /// Whether `code` may be deployed (decodes, uses only the `joule:contract` world,
    /// within the limits). Deterministic.
    fn check(&self, code: &[u8]) -> Result<(), DeployRefusal>;
    /// Run one call with `host` moved in; the host comes back with the call's writes
    /// committed (success) or reverted (failure), in the checkpoint that was current.
    fn run(&self, host: Box<dyn ContractHost>, call: &Invocation) -> (Box<dyn ContractHost>, Result<Outcome, VmFault>);
    /// The gas schedule this VM charges.
    fn schedule(&self) -> &GasSchedule;
}

/// Domain tag of contract addresses.
const ADDRESS_DOMAIN: &[u8] = b"joule-contract/1\n";

/// The bytes whose hash is the address of the contract that `deployer` (an account id)
/// deploys with its transaction of nonce `nonce`: unique per deployment, known before the
/// transaction runs.
pub fn address_preimage(deployer: &Hash32, nonce: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(ADDRESS_DOMAIN.len() + 40);
    out.extend_from_slice(ADDRESS_DOMAIN);
    out.extend_from_slice(&deployer.0);
    out.extend_from_slice(&nonce.to_be_bytes());
    out
}
