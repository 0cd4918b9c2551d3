//! The deployment policy: what a contract's core module may import and how big it may be,
//! from the `joule:contract` world and the consensus limits.

use joule_contract::limits;
use joule_contract_prepare::FuncType;
use joule_contract_prepare::Policy;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use wit_parser::{LiftLowerAbi, ManglingAndAbi, Resolve};

/// The world a contract is built for.
pub const WORLD: &str = "joule:contract/contract@0.2.0";
/// The interface whose functions a contract exports.
pub const ENTRY_INTERFACE: &str = "joule:contract/entry@0.2.0";
/// The WIT of the world, compiled in: the allowed imports are derived from it, so the
/// policy follows the WIT instead of a hand-kept list.
pub const CONTRACT_WIT: &str = include_str!("../../../wit/contract/contract.wit");

/// The node's policy (consensus: the same on every node).
pub fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| Policy {
        allowed_imports: allowed_imports(),
        max_code_bytes: limits::MAX_CODE_BYTES,
        max_memory_pages: (limits::MAX_MEMORY_BYTES >> 16) as u64,
        max_table_elements: limits::MAX_TABLE_ELEMENTS,
        max_stack_units: limits::MAX_STACK_UNITS,
        max_functions: limits::MAX_FUNCTIONS,
        max_locals_per_function: limits::MAX_LOCALS_PER_FUNCTION,
        max_params: limits::MAX_PARAMS,
        max_globals: limits::MAX_GLOBALS,
        max_br_table_targets: limits::MAX_BR_TABLE_TARGETS,
    })
}

/// The WIT resolved, and the id of the `contract` world in it.
pub fn resolve_world() -> (Resolve, wit_parser::WorldId) {
    let mut resolve = Resolve::default();
    // The WIT is compiled into this crate and covered by its tests: failing here is a
    // build defect, not something a contract or an operator can cause.
    let pkg = resolve.push_str("contract.wit", CONTRACT_WIT).expect("the compiled-in contract WIT parses");
    let world = resolve.select_world(&[pkg], Some("contract")).expect("the WIT has the `contract` world");
    (resolve, world)
}

/// The functions a wit-bindgen core module of the world imports, with their core types:
/// exactly the imports of wit-component's dummy module for the world, with the names
/// wit-bindgen uses (the "legacy" mangling: module `joule:contract/storage@0.2.0`, name
/// `get`) and the canonical ABI's flattening of their WIT types (the host links exactly
/// these; `imports::linker` is tested against the dummy module).
pub fn allowed_imports() -> BTreeMap<(String, String), FuncType> {
    let dummy = dummy_module();
    let mut types = Vec::new();
    let mut out = BTreeMap::new();
    for payload in wasmparser::Parser::new(0).parse_all(&dummy) {
        match payload {
            Ok(wasmparser::Payload::TypeSection(reader)) => {
                for ty in reader.into_iter_err_on_gc_types().flatten() {
                    types.push(ty);
                }
            }
            Ok(wasmparser::Payload::ImportSection(imports)) => {
                for import in imports.into_imports().flatten() {
                    if let wasmparser::TypeRef::Func(t) = import.ty
                        && let Some(ty) = types.get(t as usize)
                    {
                        out.insert((import.module.to_string(), import.name.to_string()), ty.clone());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// wit-component's dummy core module for the world: what wit-bindgen's output imports and
/// exports, with the canonical ABI's core types.
pub fn dummy_module() -> Vec<u8> {
    let (resolve, world) = resolve_world();
    wit_component::dummy_module(&resolve, world, ManglingAndAbi::Legacy(LiftLowerAbi::Sync))
}
