//! The gas schedule: what each wasm operator and each host call costs. Version 1.
//!
//! Wasm operators are counted by wasmtime's fuel (1 gas = 1 fuel) with the operator costs
//! [`GasSchedule::operator`] gives; everything the host does for a contract is charged
//! explicitly, before the work when its size is known: a base cost per call plus a cost
//! per byte moved across the sandbox boundary or stored. The figures are documented in
//! `docs/contracts.md`; the chain specification names the version, so a node with another
//! schedule refuses the chain.

/// Costs of everything but plain wasm operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GasSchedule {
    pub version: u32,
    /// Every host call, on top of its own cost.
    pub host_call: u64,
    /// Instantiating a contract for a call (code already compiled), plus per byte of code.
    pub instantiate: u64,
    pub instantiate_per_code_byte: u64,
    /// Storage read (`get`, `has`), plus per byte of key and of value returned.
    pub storage_read: u64,
    pub storage_read_per_byte: u64,
    /// Storage write (`set`, `remove`), plus per byte of key and value.
    pub storage_write: u64,
    pub storage_write_per_byte: u64,
    /// `scan`, plus per entry returned, plus per byte returned.
    pub storage_scan: u64,
    pub storage_scan_per_entry: u64,
    /// An event, plus per byte of name, topics and data.
    pub event: u64,
    pub event_per_byte: u64,
    /// The suite's hash, plus per byte hashed.
    pub hash: u64,
    pub hash_per_byte: u64,
    /// One signature check, plus per byte of message.
    pub verify: u64,
    /// A cross-contract or library call, on top of the callee's own gas.
    pub call: u64,
    /// Per byte of arguments and results passed to and from a contract.
    pub per_io_byte: u64,
    /// Deploying, per byte of code (stored for ever), on top of the payload's bytes.
    pub deploy_per_code_byte: u64,
    /// Each 64 KiB page of linear memory grown.
    pub memory_grow_per_page: u8,
    /// `call` and `call_indirect` operators (wasm function calls, not host calls).
    pub wasm_call: u8,
}

/// Version 1 of the schedule. The host-call figures are first estimates aiming at about one
/// gas per nanosecond of work on the reference machine (operators cost 1); calibrating them
/// against measurements (`joule bench contracts`) is a schedule change, i.e. version 2.
pub const V1: GasSchedule = GasSchedule {
    version: 1,
    host_call: 100,
    instantiate: 5_000,
    instantiate_per_code_byte: 0,
    storage_read: 2_000,
    storage_read_per_byte: 3,
    storage_write: 5_000,
    storage_write_per_byte: 30,
    storage_scan: 2_000,
    storage_scan_per_entry: 500,
    event: 1_000,
    event_per_byte: 10,
    hash: 200,
    hash_per_byte: 5,
    verify: 60_000,
    call: 10_000,
    per_io_byte: 1,
    deploy_per_code_byte: 20,
    memory_grow_per_page: 255,
    wasm_call: 4,
};

impl GasSchedule {
    /// The schedule a chain specification's version names, if this node has it.
    pub fn by_version(version: u32) -> Option<&'static GasSchedule> {
        (version == V1.version).then_some(&V1)
    }

    /// `base + per_byte × bytes`, saturating: a charge can exceed any gas limit, never wrap.
    pub fn cost(base: u64, per_byte: u64, bytes: usize) -> u64 {
        base.saturating_add(per_byte.saturating_mul(bytes as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_versions_resolve() {
        assert_eq!(GasSchedule::by_version(1), Some(&V1));
        assert_eq!(GasSchedule::by_version(0), None);
        assert_eq!(GasSchedule::by_version(2), None);
    }

    #[test]
    fn costs_saturate_instead_of_wrapping() {
        assert_eq!(GasSchedule::cost(10, 2, 5), 20);
        assert_eq!(GasSchedule::cost(10, u64::MAX, 2), u64::MAX);
    }
}
