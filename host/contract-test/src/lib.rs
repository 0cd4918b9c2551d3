//! A local test harness for Joule contracts: `cargo test` runs the **compiled** contract
//! (its wasm, as it would be deployed) against an in-memory chain, on the node's own contract
//! runtime (`joule-contract-wasm`, wasmtime) with the node's gas schedule.
//!
//! Where `joule_contract_std::testing` runs a contract natively (fast, with a debugger), this
//! runs exactly what the chain runs: the wasm export, the ABI encoding, cross-contract calls
//! through the VM, the limits, and the gas the node charges. The gas of a [`Receipt`] is the
//! node's: the intrinsic gas of the transaction (1 000 + 16 per byte of its borsh payload,
//! plus `deploy_per_code_byte` per byte of code for a deployment) plus what the contract's
//! code used, capped at the gas limit; [`Receipt::vm_gas`] is the contract's part alone.
//!
//! ```no_run
//! use joule_contract_std::prelude::*;
//! use joule_contract_test::{TestChain, account, load_wasm};
//!
//! let mut chain = TestChain::new();
//! let owner = account(1);
//! let token = chain
//!     .deploy(&load_wasm("energy-token"), &borsh::to_vec(&("Joule".to_string(), "JEN".to_string())).unwrap(), owner)
//!     .unwrap()
//!     .address;
//! let minted: U256 = chain.call_typed(token, "mint", &(account(2), U256::new(1000)), owner).unwrap();
//! let balance: U256 = chain.query_typed(token, "balance_of", &(account(2),)).unwrap();
//! assert_eq!(balance, minted);
//! println!("{}", chain.gas_report());
//! ```
//!
//! The chain: one block context (height, timestamp, channel `test`) that a test moves with
//! [`TestChain::advance_blocks`]; each transaction's sender is an explicit argument (a
//! [`account`] id, or any [`Address`]), with a nonce per sender (a contract's address is the
//! SHA-256 of `joule-contract/1\n ‖ deployer ‖ nonce`, as on a channel whose suite hashes with
//! SHA-256). Every transaction, failed or not, uses its sender's nonce, as on the node.
#![cfg(not(target_arch = "wasm32"))]

use borsh::{BorshDeserialize, BorshSerialize};
use joule_contract::{ContractHost, ContractVm, Entry, Failure, GasSchedule, Invocation};
use joule_contract_wasm::testing::{MemoryHost, unbox};
use joule_contract_wasm::{ContractRuntime, RuntimeConfig};
use joule_primitives::{Event, Hash32, Payload};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use joule_contract_std::Address;
pub use joule_contract_std::testing::RecordedEvent;

/// Intrinsic gas of every transaction (the node's `BASE_GAS`).
pub const BASE_GAS: u64 = 1_000;
/// Intrinsic gas per byte of the borsh-encoded payload (the node's `GAS_PER_PAYLOAD_BYTE`).
pub const GAS_PER_PAYLOAD_BYTE: u64 = 16;
/// The gas limit of a transaction unless [`TestChain::set_gas_limit`] says otherwise: the
/// default `gas-limit` of a channel specification.
pub const DEFAULT_GAS_LIMIT: u64 = 10_000_000;
/// The channel name contracts see.
pub const CHANNEL: &str = "test";
/// Height of a fresh [`TestChain`].
pub const GENESIS_HEIGHT: u64 = 1;
/// Timestamp (Unix ms) of a fresh [`TestChain`]: 2025-01-01T00:00:00Z.
pub const GENESIS_TIME_MS: u64 = 1_735_689_600_000;
/// Milliseconds [`TestChain::advance_blocks`] adds per block unless set otherwise.
pub const DEFAULT_BLOCK_TIME_MS: u64 = 1_000;

/// The test account `[n; 32]`: the same ids as `joule_contract_std::testing::account`, so
/// the native mock tests and these tests speak of the same accounts.
pub const fn account(n: u8) -> Address {
    Address([n; 32])
}

/// The contract runtime every [`TestChain`] of the process shares: each code hash is
/// compiled once per test binary.
fn runtime() -> &'static ContractRuntime {
    static RUNTIME: OnceLock<ContractRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // The wall-clock bound is node-local (never a receipt): generous here, where tests run
        // in parallel on busy machines and the first call of a code compiles it.
        let config = RuntimeConfig { call_timeout: Duration::from_secs(120), ..RuntimeConfig::default() };
        ContractRuntime::new(config).unwrap_or_else(|e| panic!("joule-contract-test: {e}"))
    })
}

/// The gas schedule the harness charges: the node's ([`joule_contract::gas::V1`]).
pub fn schedule() -> &'static GasSchedule {
    runtime().schedule()
}

fn hash32(a: Address) -> Hash32 {
    Hash32(a.0)
}

fn address(h: Hash32) -> Address {
    Address(h.0)
}

fn recorded(e: &Event) -> RecordedEvent {
    RecordedEvent { contract: address(e.contract), name: e.topic.clone(), topics: e.indexed.clone(), data: e.data.clone() }
}

/// How a transaction ended, as its receipt says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Success,
    /// A revert, an `Err` return, a trap, or a refusal by the node (the message says which).
    Reverted(String),
    /// The gas limit was reached: the whole limit is charged.
    OutOfGas,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Success => f.write_str("success"),
            Status::Reverted(m) => write!(f, "reverted: {m}"),
            Status::OutOfGas => f.write_str("out of gas"),
        }
    }
}

/// What a call did: its receipt, with the contract's own gas beside the node's total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub status: Status,
    /// The method's return bytes (borsh); empty on failure.
    pub output: Vec<u8>,
    /// Gas the node charges for the transaction (intrinsic + code + VM, capped at the limit):
    /// the receipt's `gas_used`.
    pub gas_used: u64,
    /// Gas the contract's code used (the VM's part of `gas_used`).
    pub vm_gas: u64,
    /// Events of the transaction, in order (none on failure).
    pub events: Vec<RecordedEvent>,
}

impl Receipt {
    pub fn is_success(&self) -> bool {
        self.status == Status::Success
    }

    /// The revert message, if the call reverted.
    pub fn reason(&self) -> Option<&str> {
        match &self.status {
            Status::Reverted(m) => Some(m),
            _ => None,
        }
    }

    /// The output decoded as an `R`; panics on a failed call or undecodable output.
    pub fn decode<R: BorshDeserialize>(&self) -> R {
        assert!(self.is_success(), "the call failed: {}", self.status);
        R::try_from_slice(&self.output)
            .unwrap_or_else(|e| panic!("cannot decode the output ({} bytes) as {}: {e}", self.output.len(), std::any::type_name::<R>()))
    }

    /// The first event named `name`.
    pub fn event(&self, name: &str) -> Option<&RecordedEvent> {
        self.events.iter().find(|e| e.name == name)
    }
}

/// A successful deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub address: Address,
    /// SHA-256 of the code.
    pub code_hash: [u8; 32],
    /// Gas the node charges (intrinsic + per code byte + `init`).
    pub gas_used: u64,
    /// Gas `init` used.
    pub vm_gas: u64,
    /// Events of `init`, then the node's `deployed`.
    pub events: Vec<RecordedEvent>,
}

/// A failed transaction (deployment, typed call or query).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} (gas used {gas_used})")]
pub struct Failed {
    pub status: Status,
    pub gas_used: u64,
    pub vm_gas: u64,
}

impl Failed {
    /// The revert message, if it reverted.
    pub fn reason(&self) -> Option<&str> {
        match &self.status {
            Status::Reverted(m) => Some(m),
            _ => None,
        }
    }
}

/// A query's answer: the output and the gas the code used (a query has no intrinsic gas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    pub status: Status,
    pub output: Vec<u8>,
    pub gas_used: u64,
}

/// One transaction of the [`GasReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GasEntry {
    pub contract: Address,
    /// The contract's label ([`TestChain::set_label`]) or its short address.
    pub label: String,
    /// The method, or `(deploy)`.
    pub method: String,
    pub status: Status,
    /// The node's total (the receipt's gas).
    pub gas_used: u64,
    /// The contract's code alone.
    pub vm_gas: u64,
}

/// Gas of every transaction a [`TestChain`] ran, in order; `Display` prints one line per
/// transaction, then min / max / mean per method.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GasReport {
    pub entries: Vec<GasEntry>,
}

impl GasReport {
    /// The entries of `method` (on any contract).
    pub fn of(&self, method: &str) -> impl Iterator<Item = &GasEntry> {
        self.entries.iter().filter(move |e| e.method == method)
    }
}

impl fmt::Display for GasReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<20} {:<20} {:>12} {:>12}  status", "contract", "method", "gas used", "vm gas")?;
        for e in &self.entries {
            writeln!(f, "{:<20} {:<20} {:>12} {:>12}  {}", e.label, e.method, e.gas_used, e.vm_gas, e.status)?;
        }
        let mut by_method: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
        for e in &self.entries {
            by_method.entry((e.label.as_str(), e.method.as_str())).or_default().push(e.gas_used);
        }
        writeln!(f, "\n{:<20} {:<20} {:>6} {:>12} {:>12} {:>12}", "contract", "method", "calls", "min", "max", "mean")?;
        for ((label, method), gas) in by_method {
            let (min, max) = (gas.iter().min().copied().unwrap_or(0), gas.iter().max().copied().unwrap_or(0));
            let mean = gas.iter().sum::<u64>() / gas.len().max(1) as u64;
            writeln!(f, "{label:<20} {method:<20} {:>6} {min:>12} {max:>12} {mean:>12}", gas.len())?;
        }
        Ok(())
    }
}

/// The whole state of a [`TestChain`] at one point, for [`TestChain::revert_to`].
#[derive(Debug, Clone)]
pub struct Snapshot {
    storage: BTreeMap<Hash32, BTreeMap<Vec<u8>, Vec<u8>>>,
    events: Vec<Event>,
    codes: BTreeMap<Hash32, Arc<[u8]>>,
    contracts: BTreeMap<Hash32, Hash32>,
    upgrades: BTreeMap<Hash32, Upgradability>,
    nonces: BTreeMap<Address, u64>,
    height: u64,
    timestamp_ms: u64,
}

/// Who may replace a contract's code, and the code it replaced last (the account's
/// `upgrade_authority` and `previous_code_hash` on a node).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Upgradability {
    authority: Option<Address>,
    previous: Option<Hash32>,
}

/// An in-memory chain running compiled contracts on the node's runtime.
pub struct TestChain {
    host: MemoryHost,
    height: u64,
    timestamp_ms: u64,
    block_time_ms: u64,
    gas_limit: u64,
    /// The caller of queries.
    sender: Address,
    nonces: BTreeMap<Address, u64>,
    /// Deployed contracts: address → code hash.
    contracts: BTreeMap<Hash32, Hash32>,
    upgrades: BTreeMap<Hash32, Upgradability>,
    codes: BTreeMap<Hash32, Arc<[u8]>>,
    labels: HashMap<Address, String>,
    report: GasReport,
}

impl Default for TestChain {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TestChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestChain")
            .field("height", &self.height)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("contracts", &self.contracts.len())
            .field("events", &self.host.events().len())
            .finish()
    }
}

impl TestChain {
    /// An empty chain at height [`GENESIS_HEIGHT`], time [`GENESIS_TIME_MS`].
    pub fn new() -> Self {
        runtime();
        TestChain {
            host: MemoryHost::new(),
            height: GENESIS_HEIGHT,
            timestamp_ms: GENESIS_TIME_MS,
            block_time_ms: DEFAULT_BLOCK_TIME_MS,
            gas_limit: DEFAULT_GAS_LIMIT,
            sender: Address::ZERO,
            nonces: BTreeMap::new(),
            contracts: BTreeMap::new(),
            upgrades: BTreeMap::new(),
            codes: BTreeMap::new(),
            labels: HashMap::new(),
            report: GasReport::default(),
        }
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    pub fn set_height(&mut self, height: u64) {
        self.height = height;
    }

    pub fn set_timestamp_ms(&mut self, timestamp_ms: u64) {
        self.timestamp_ms = timestamp_ms;
    }

    /// Milliseconds per block for [`TestChain::advance_blocks`].
    pub fn set_block_time_ms(&mut self, ms: u64) {
        self.block_time_ms = ms;
    }

    /// `n` blocks later: height + n, timestamp + n × block time.
    pub fn advance_blocks(&mut self, n: u64) {
        self.height = self.height.saturating_add(n);
        self.timestamp_ms = self.timestamp_ms.saturating_add(n.saturating_mul(self.block_time_ms));
    }

    /// The gas limit of the next transactions (and queries).
    pub fn set_gas_limit(&mut self, gas_limit: u64) {
        self.gas_limit = gas_limit;
    }

    pub fn gas_limit(&self) -> u64 {
        self.gas_limit
    }

    /// The caller of queries ([`Address::ZERO`] unless set, as over the node's API).
    /// Transactions name their sender.
    pub fn set_sender(&mut self, sender: Address) {
        self.sender = sender;
    }

    /// A name for `contract` in the gas report.
    pub fn set_label(&mut self, contract: Address, label: impl Into<String>) {
        self.labels.insert(contract, label.into());
    }

    /// The next nonce of `sender`.
    pub fn nonce(&self, sender: Address) -> u64 {
        self.nonces.get(&sender).copied().unwrap_or(0)
    }

    /// The address `deployer` would deploy to with its next transaction.
    pub fn next_address(&self, deployer: Address) -> Address {
        address(MemoryHost::sha256(&joule_contract::address_preimage(&hash32(deployer), self.nonce(deployer))))
    }

    fn take_nonce(&mut self, sender: Address) -> u64 {
        let n = self.nonces.entry(sender).or_insert(0);
        *n += 1;
        *n - 1
    }

    fn label(&self, contract: Address) -> String {
        self.labels.get(&contract).cloned().unwrap_or_else(|| {
            let hex: String = contract.0[..4].iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}…")
        })
    }

    fn invocation(&self, entry: Entry, (contract, code_hash): (Hash32, Hash32), method: &str, args: &[u8], sender: Address, gas_limit: u64) -> Invocation {
        Invocation {
            entry,
            contract,
            code_hash,
            method: method.to_string(),
            args: args.to_vec(),
            sender: hash32(sender),
            channel: CHANNEL.to_string(),
            height: self.height,
            timestamp_ms: self.timestamp_ms,
            gas_limit,
        }
    }

    /// Run one invocation on the runtime: (status, output, vm gas).
    fn run(&mut self, call: &Invocation) -> (Status, Vec<u8>, u64) {
        let host: Box<dyn ContractHost> = Box::new(std::mem::take(&mut self.host));
        let (host, result) = runtime().run(host, call);
        self.host = unbox(host).expect("the contract VM handed back another host");
        let outcome = result.unwrap_or_else(|fault| panic!("node fault (not a contract failure) in {:?} {}: {fault}", call.entry, call.method));
        match outcome.result {
            Ok(out) => (Status::Success, out, outcome.gas_used),
            Err(Failure::OutOfGas) => (Status::OutOfGas, vec![], outcome.gas_used),
            Err(Failure::Reverted(m)) => (reverted(m), vec![], outcome.gas_used),
        }
    }

    /// The receipt's gas, as the node's `done`: the whole limit when out of gas, otherwise
    /// intrinsic + extra + VM, capped at the limit.
    fn charged(&self, status: &Status, intrinsic: u64, extra: u64, vm_gas: u64) -> u64 {
        if *status == Status::OutOfGas { self.gas_limit } else { intrinsic.saturating_add(extra).saturating_add(vm_gas).min(self.gas_limit) }
    }

    fn record(&mut self, contract: Address, method: &str, status: &Status, gas_used: u64, vm_gas: u64) {
        let label = self.label(contract);
        self.report.entries.push(GasEntry { contract, label, method: method.to_string(), status: status.clone(), gas_used, vm_gas });
    }

    /// Deploy `wasm` (a core module, as `cargo build --target wasm32-unknown-unknown` makes
    /// it) with `init_args` (borsh: the tuple of the `#[init]` function's parameters) from
    /// `sender`, as the node runs a `Deploy` transaction: intrinsic gas, code gas, the
    /// deployment check, `init`, then the `deployed` event.
    pub fn deploy(&mut self, wasm: &[u8], init_args: &[u8], sender: Address) -> Result<Deployed, Failed> {
        self.deploy_as(wasm, init_args, sender, false)
    }

    /// [`TestChain::deploy`] of an upgradable contract: `sender` becomes its upgrade
    /// authority ([`TestChain::upgrade`]).
    pub fn deploy_upgradable(&mut self, wasm: &[u8], init_args: &[u8], sender: Address) -> Result<Deployed, Failed> {
        self.deploy_as(wasm, init_args, sender, true)
    }

    fn deploy_as(&mut self, wasm: &[u8], init_args: &[u8], sender: Address, upgradable: bool) -> Result<Deployed, Failed> {
        let nonce = self.take_nonce(sender);
        let payload = Payload::Deploy { code: wasm.to_vec(), init_args: init_args.to_vec(), upgradable };
        let intrinsic = intrinsic_gas(&payload);
        let code_gas = schedule().deploy_per_code_byte.saturating_mul(wasm.len() as u64);
        let address_hash = MemoryHost::sha256(&joule_contract::address_preimage(&hash32(sender), nonce));
        let addr = address(address_hash);
        let fail = |chain: &mut Self, status: Status, extra: u64, vm_gas: u64| {
            let gas_used = chain.charged(&status, intrinsic, extra, vm_gas);
            chain.record(addr, "(deploy)", &status, gas_used, vm_gas);
            Err(Failed { status, gas_used, vm_gas })
        };
        if intrinsic.saturating_add(code_gas) > self.gas_limit {
            return fail(self, Status::OutOfGas, 0, 0);
        }
        if let Err(refusal) = runtime().check(wasm) {
            return fail(self, reverted(format!("deployment refused: {refusal}")), code_gas, 0);
        }
        if self.contracts.contains_key(&address_hash) {
            return fail(self, reverted(format!("a contract exists at {address_hash}")), code_gas, 0);
        }
        let code_hash = self.host.add_code(wasm);
        self.codes.insert(code_hash, Arc::from(wasm));
        let events_before = self.host.events().len();
        let call = self.invocation(Entry::Init, (address_hash, code_hash), "", init_args, sender, self.gas_limit - intrinsic - code_gas);
        let (status, _, vm_gas) = self.run(&call);
        if status != Status::Success {
            return fail(self, status, code_gas, vm_gas);
        }
        self.host.add_contract(address_hash, code_hash);
        self.contracts.insert(address_hash, code_hash);
        self.upgrades.insert(address_hash, Upgradability { authority: upgradable.then_some(sender), previous: None });
        self.host.emit(Event { contract: address_hash, topic: "deployed".into(), indexed: vec![code_hash.0.to_vec()], data: sender.0.to_vec() });
        let gas_used = self.charged(&status, intrinsic, code_gas, vm_gas);
        self.record(addr, "(deploy)", &status, gas_used, vm_gas);
        let events = self.host.events()[events_before..].iter().map(recorded).collect();
        Ok(Deployed { address: addr, code_hash: code_hash.0, gas_used, vm_gas, events })
    }

    /// Replace `contract`'s code with `wasm` as the node runs an `Upgrade` transaction from
    /// `sender`: only its upgrade authority may (the deployer of a
    /// [`TestChain::deploy_upgradable`] contract); storage stays; with `migrate_args`
    /// (borsh), the new code's `migrate` method runs; then the node's `upgraded` event
    /// (topics: old and new code hash). A failure changes nothing but the nonce.
    pub fn upgrade(&mut self, contract: Address, wasm: &[u8], migrate_args: Option<&[u8]>, sender: Address) -> Receipt {
        self.take_nonce(sender);
        let contract_hash = hash32(contract);
        let payload = Payload::Upgrade { contract: contract_hash, code: wasm.to_vec(), migrate_args: migrate_args.map(<[u8]>::to_vec) };
        let intrinsic = intrinsic_gas(&payload);
        let code_gas = schedule().deploy_per_code_byte.saturating_mul(wasm.len() as u64);
        let finish = |chain: &mut Self, status: Status, extra: u64, vm_gas: u64, output: Vec<u8>, events: Vec<RecordedEvent>| {
            let gas_used = chain.charged(&status, intrinsic, extra, vm_gas);
            chain.record(contract, "(upgrade)", &status, gas_used, vm_gas);
            Receipt { status, output, gas_used, vm_gas, events }
        };
        if intrinsic.saturating_add(code_gas) > self.gas_limit {
            return finish(self, Status::OutOfGas, 0, 0, vec![], vec![]);
        }
        let old = match self.upgrade_refusal(contract_hash, wasm, sender) {
            Ok(old) => old,
            Err(why) => return finish(self, reverted(why), code_gas, 0, vec![], vec![]),
        };
        let code_hash = self.host.add_code(wasm);
        self.codes.insert(code_hash, Arc::from(wasm));
        self.host.add_contract(contract_hash, code_hash);
        let events_before = self.host.events().len();
        let (mut vm_gas, mut output) = (0, vec![]);
        if let Some(args) = migrate_args {
            let call = self.invocation(Entry::Call, (contract_hash, code_hash), "migrate", args, sender, self.gas_limit - intrinsic - code_gas);
            let (status, out, gas) = self.run(&call);
            if status != Status::Success {
                self.host.add_contract(contract_hash, old);
                return finish(self, status, code_gas, gas, vec![], vec![]);
            }
            (vm_gas, output) = (gas, out);
        }
        self.contracts.insert(contract_hash, code_hash);
        if let Some(u) = self.upgrades.get_mut(&contract_hash) {
            u.previous = Some(old);
        }
        self.host.emit(Event {
            contract: contract_hash,
            topic: "upgraded".into(),
            indexed: vec![old.0.to_vec(), code_hash.0.to_vec()],
            data: sender.0.to_vec(),
        });
        let events = self.host.events()[events_before..].iter().map(recorded).collect();
        finish(self, Status::Success, code_gas, vm_gas, output, events)
    }

    /// Why the node would refuse `sender`'s upgrade of `contract` to `wasm`; otherwise the
    /// code hash it replaces.
    fn upgrade_refusal(&self, contract: Hash32, wasm: &[u8], sender: Address) -> Result<Hash32, String> {
        let old = self.contracts.get(&contract).copied().ok_or_else(|| format!("no contract at {contract}"))?;
        match self.upgrades.get(&contract).and_then(|u| u.authority) {
            Some(a) if a == sender => {}
            Some(_) => return Err(format!("account {} is not the upgrade authority of {contract}", hash32(sender))),
            None => return Err(format!("contract {contract} is not upgradable")),
        }
        runtime().check(wasm).map_err(|refusal| format!("upgrade refused: {refusal}"))?;
        Ok(old)
    }

    /// The code hash (SHA-256) `contract` runs, and the one it ran before its last upgrade.
    pub fn code_hashes(&self, contract: Address) -> Option<([u8; 32], Option<[u8; 32]>)> {
        let h = hash32(contract);
        let code = self.contracts.get(&h)?;
        Some((code.0, self.upgrades.get(&h).and_then(|u| u.previous).map(|p| p.0)))
    }

    /// [`TestChain::deploy`] with the init arguments borsh-encoded here.
    pub fn deploy_with<A: BorshSerialize>(&mut self, wasm: &[u8], init_args: &A, sender: Address) -> Result<Deployed, Failed> {
        self.deploy(wasm, &encode(init_args), sender)
    }

    /// Call `method` of `contract` with `args` (borsh: the tuple of its parameters) as a
    /// transaction from `sender`. On failure the call's writes and events are undone.
    pub fn call(&mut self, contract: Address, method: &str, args: &[u8], sender: Address) -> Receipt {
        self.take_nonce(sender);
        let contract_hash = hash32(contract);
        let payload = Payload::Call { contract: contract_hash, method: method.to_string(), args: args.to_vec() };
        let intrinsic = intrinsic_gas(&payload);
        let (status, output, vm_gas, events) = if intrinsic > self.gas_limit {
            (Status::OutOfGas, vec![], 0, vec![])
        } else if let Some(code_hash) = self.contracts.get(&contract_hash).copied() {
            let events_before = self.host.events().len();
            let call = self.invocation(Entry::Call, (contract_hash, code_hash), method, args, sender, self.gas_limit - intrinsic);
            let (status, output, vm_gas) = self.run(&call);
            let events = self.host.events()[events_before..].iter().map(recorded).collect();
            (status, output, vm_gas, events)
        } else {
            (reverted(format!("no contract at {contract_hash}")), vec![], 0, vec![])
        };
        let gas_used = self.charged(&status, intrinsic, 0, vm_gas);
        self.record(contract, method, &status, gas_used, vm_gas);
        Receipt { status, output, gas_used, vm_gas, events }
    }

    /// [`TestChain::call`] with the arguments borsh-encoded here and the output decoded as an
    /// `R` (`()` for a method that returns nothing); panics if the output is not an `R`.
    pub fn call_typed<R: BorshDeserialize>(&mut self, contract: Address, method: &str, args: &impl BorshSerialize, sender: Address) -> Result<R, Failed> {
        let receipt = self.call(contract, method, &encode(args), sender);
        match receipt.status {
            Status::Success => Ok(receipt.decode()),
            status => Err(Failed { status, gas_used: receipt.gas_used, vm_gas: receipt.vm_gas }),
        }
    }

    /// Run a read-only method as the node's query API does (caller: [`TestChain::set_sender`],
    /// gas limit: [`TestChain::gas_limit`]): nothing is kept, nothing is reported, and the
    /// gas is the code's alone.
    pub fn query(&mut self, contract: Address, method: &str, args: &[u8]) -> QueryResult {
        let contract_hash = hash32(contract);
        let Some(code_hash) = self.contracts.get(&contract_hash).copied() else {
            return QueryResult { status: Status::Reverted(format!("no contract at {contract_hash}")), output: vec![], gas_used: 0 };
        };
        let call = self.invocation(Entry::Query, (contract_hash, code_hash), method, args, self.sender, self.gas_limit);
        let (status, output, gas_used) = self.run(&call);
        QueryResult { status, output, gas_used }
    }

    /// [`TestChain::query`] with typed arguments and result.
    pub fn query_typed<R: BorshDeserialize>(&mut self, contract: Address, method: &str, args: &impl BorshSerialize) -> Result<R, Failed> {
        let q = self.query(contract, method, &encode(args));
        match q.status {
            Status::Success => Ok(R::try_from_slice(&q.output)
                .unwrap_or_else(|e| panic!("cannot decode the output of {method} ({} bytes) as {}: {e}", q.output.len(), std::any::type_name::<R>()))),
            status => Err(Failed { status, gas_used: q.gas_used, vm_gas: q.gas_used }),
        }
    }

    /// Whether a contract is deployed at `contract`.
    pub fn is_contract(&self, contract: Address) -> bool {
        self.contracts.contains_key(&hash32(contract))
    }

    /// A contract's whole storage (raw keys and values).
    pub fn storage(&self, contract: Address) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.host.storage(&hash32(contract))
    }

    /// Every event the chain kept (of successful transactions), in order.
    pub fn events(&self) -> Vec<RecordedEvent> {
        self.host.events().iter().map(recorded).collect()
    }

    /// Gas of every transaction so far (deployments and calls; not queries).
    pub fn gas_report(&self) -> &GasReport {
        &self.report
    }

    /// The state now (storage, events, contracts, nonces, height and time; not the gas
    /// report), to come back to with [`TestChain::revert_to`].
    pub fn snapshot(&self) -> Snapshot {
        let storage = self.contracts.keys().map(|c| (*c, self.host.storage(c))).filter(|(_, s)| !s.is_empty()).collect();
        Snapshot {
            storage,
            events: self.host.events().to_vec(),
            codes: self.codes.clone(),
            contracts: self.contracts.clone(),
            upgrades: self.upgrades.clone(),
            nonces: self.nonces.clone(),
            height: self.height,
            timestamp_ms: self.timestamp_ms,
        }
    }

    /// Back to `snapshot` (which stays usable).
    pub fn revert_to(&mut self, snapshot: &Snapshot) {
        let mut host = MemoryHost::new();
        for code in snapshot.codes.values() {
            host.add_code(code);
        }
        for (contract, code_hash) in &snapshot.contracts {
            host.add_contract(*contract, *code_hash);
        }
        for (contract, entries) in &snapshot.storage {
            for (k, v) in entries {
                host.put(*contract, k, v);
            }
        }
        for e in &snapshot.events {
            host.emit(e.clone());
        }
        self.host = host;
        self.codes = snapshot.codes.clone();
        self.contracts = snapshot.contracts.clone();
        self.upgrades = snapshot.upgrades.clone();
        self.nonces = snapshot.nonces.clone();
        self.height = snapshot.height;
        self.timestamp_ms = snapshot.timestamp_ms;
    }
}

/// Intrinsic gas of a transaction with this payload (the node's `intrinsic_gas`).
pub fn intrinsic_gas(payload: &Payload) -> u64 {
    let len = borsh::to_vec(payload).map(|v| v.len()).unwrap_or(usize::MAX) as u64;
    BASE_GAS.saturating_add(GAS_PER_PAYLOAD_BYTE.saturating_mul(len))
}

/// A revert message cut to the receipt's bound, as the node cuts it.
fn reverted(msg: String) -> Status {
    let mut m = msg;
    let max = joule_contract::limits::MAX_REVERT_MESSAGE_BYTES;
    if m.len() > max {
        let mut cut = max;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
    }
    Status::Reverted(m)
}

fn encode(args: &impl BorshSerialize) -> Vec<u8> {
    borsh::to_vec(args).expect("borsh encoding into a Vec does not fail")
}

/// The directory holding `target/contracts`: the first of `CARGO_MANIFEST_DIR` (of the test
/// being run) or the current directory and their ancestors that has one.
pub fn contracts_dir() -> Option<PathBuf> {
    let start = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).or_else(|| std::env::current_dir().ok())?;
    start.ancestors().map(|d| d.join("target/contracts")).find(|d| d.is_dir())
}

/// The compiled contract `target/contracts/NAME.wasm` (what `cargo xtask contracts` builds),
/// looked for from the test crate's directory upwards; panics, saying how to build it, when
/// there is none.
pub fn load_wasm(name: &str) -> Vec<u8> {
    try_load_wasm(name).unwrap_or_else(|e| panic!("{e}"))
}

/// [`load_wasm`], with the error as a value.
pub fn try_load_wasm(name: &str) -> Result<Vec<u8>, String> {
    let file = format!("{name}.wasm");
    let from = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let Some(dir) = contracts_dir() else {
        return Err(format!(
            "no target/contracts directory above {from}: build the contracts first with `cargo xtask contracts` (or `cargo xtask test`) in the repository, or use build_contract(CRATE_DIR)"
        ));
    };
    let path = dir.join(&file);
    std::fs::read(&path)
        .map_err(|e| format!("cannot read {}: {e}: build the contracts first with `cargo xtask contracts` (or `cargo xtask test`)", path.display()))
}

/// Build the contract crate in `crate_dir` for the wasm target (`cargo build --release
/// --target wasm32-unknown-unknown`, in a clean environment: none of the outer build's
/// flags or target directory) and return its module. Built once per process and crate.
pub fn build_contract(crate_dir: impl AsRef<Path>) -> Vec<u8> {
    try_build_contract(crate_dir).unwrap_or_else(|e| panic!("{e}"))
}

/// [`build_contract`], with the error as a value.
pub fn try_build_contract(crate_dir: impl AsRef<Path>) -> Result<Vec<u8>, String> {
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, Vec<u8>>>> = OnceLock::new();
    let dir = crate_dir.as_ref();
    let dir = dir.canonicalize().map_err(|e| format!("contract crate {}: {e}", dir.display()))?;
    let built = BUILT.get_or_init(Default::default);
    // One build at a time: cargo would serialise them on its lock anyway.
    let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(wasm) = built.get(&dir) {
        return Ok(wasm.clone());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&dir)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown", "--message-format=json-render-diagnostics"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER"] {
        cmd.env_remove(var);
    }
    // The flags `joule contract build` uses, so the harness runs the code a deployment would.
    cmd.env("CARGO_ENCODED_RUSTFLAGS", joule_contract::WASM_RUSTFLAGS.join("\x1f"));
    let out = cmd.output().map_err(|e| format!("cannot run cargo in {}: {e}", dir.display()))?;
    if !out.status.success() {
        return Err(format!("cargo build of the contract in {} failed ({})", dir.display(), out.status));
    }
    let manifest = dir.join("Cargo.toml");
    let mut wasm_path = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let same = msg["manifest_path"].as_str().and_then(|p| Path::new(p).canonicalize().ok()).is_some_and(|p| p == manifest);
        if !same {
            continue;
        }
        let files = msg["filenames"].as_array().into_iter().flatten().filter_map(|f| f.as_str());
        if let Some(f) = files.into_iter().find(|f| f.ends_with(".wasm")) {
            wasm_path = Some(PathBuf::from(f));
        }
    }
    let path = wasm_path.ok_or_else(|| format!("cargo built no .wasm for {} (is its crate-type cdylib?)", dir.display()))?;
    let wasm = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    built.insert(dir, wasm.clone());
    Ok(wasm)
}
