//! Deploy-time preparation of a contract's core wasm module.
//!
//! [`check`] is what admission runs: the module must be a core module using only the wasm
//! features and imports a contract may use, within the policy's limits. [`prepare`] checks and
//! then instruments the module so that its stack depth is bounded by a count the module keeps
//! itself (the same on every machine) rather than by the native stack, whose use differs
//! between compilers and machines. The node links the result's imports by their core signatures (the canonical ABI of the
//! `joule:contract` world) and runs it as a core module.
//!
//! Everything here is deterministic: the same bytes and policy give the same verdict and the
//! same output on every node, since both are consensus.
//!
//! The stack limiter follows the idea of paritytech's wasm-instrument stack limiter (MIT or
//! Apache-2.0), rewritten on wasmparser and wasm-encoder (its parity-wasm base cannot parse
//! what current rustc emits) and moved from call sites to function entry.

mod analyse;
mod instrument;

use std::collections::BTreeMap;

pub use wasmparser::FuncType;

/// Version of the preparation (validation rules + instrumentation). Consensus: the node keys
/// its compiled-code cache on it.
pub const PREPARE_VERSION: u32 = 1;

/// Name (in the module's `name` section) of the function the stack check calls when the limit
/// is exceeded; its body is `unreachable`, so the runtime recognises a stack-limit trap by the
/// innermost frame's function name.
pub const STACK_LIMIT_FUNCTION: &str = "joule-stack-limit-exceeded";

/// What a contract module may be. Consensus values: every node must use the same policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// (module, name) pairs a contract may import, each a function of exactly this type (the
    /// node links them by their core signatures, so a mistyped import is refused here rather
    /// than failing every node at its first call).
    pub allowed_imports: BTreeMap<(String, String), FuncType>,
    /// Largest module, in bytes (checked before parsing).
    pub max_code_bytes: usize,
    /// Largest initial (minimum) memory, in 64 KiB pages.
    pub max_memory_pages: u64,
    /// Largest initial (minimum) size of any table, in elements.
    pub max_table_elements: u64,
    /// Logical stack units a call may use: for every active function, its parameters, locals,
    /// deepest operand stack and a frame overhead of 2. At most `i32::MAX`.
    pub max_stack_units: u32,
    /// Functions the module may define.
    pub max_functions: u32,
    /// Locals of one function, its parameters included.
    pub max_locals_per_function: u32,
    /// Parameters of one function.
    pub max_params: u32,
    /// Globals the module may define.
    pub max_globals: u32,
    /// Targets of one `br_table` (its default not counted).
    pub max_br_table_targets: u32,
}

/// Why a module was refused. Messages name what to change, for the contract's author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    #[error("code is {size} bytes, over {max}")]
    CodeTooLarge { size: usize, max: usize },
    #[error("not a wasm module: {0}")]
    NotAModule(String),
    #[error("the code is a component; deploy the core wasm module (the node componentizes it)")]
    Component,
    #[error("{what} are not allowed (at byte offset {offset})")]
    FeatureNotAllowed { what: &'static str, offset: usize },
    #[error("invalid wasm module: {message} (at byte offset {offset})")]
    Invalid { message: String, offset: usize },
    #[error("the module has a start section (not allowed: it would run at instantiation, outside gas metering)")]
    StartSection,
    #[error("import `{module}`.`{name}` is not in the joule:contract world")]
    ImportNotAllowed { module: String, name: String },
    #[error(
        "import `{module}`.`{name}` has type {found}, but the joule:contract world's is {expected} (build the contract with a matching joule-contract-std)"
    )]
    ImportType { module: String, name: String, expected: String, found: String },
    #[error("import `{module}`.`{name}` is a {kind}, but a contract may import only functions (define memories, tables and globals in the module)")]
    ImportNotFunction { module: String, name: String, kind: &'static str },
    #[error("the module defines {count} memories; it must define exactly one")]
    MemoryCount { count: u64 },
    #[error("the memory starts at {pages} pages, over {max}")]
    MemoryTooLarge { pages: u64, max: u64 },
    #[error("table {index} starts with {elements} elements, over {max}")]
    TableTooLarge { index: u32, elements: u64, max: u64 },
    #[error("the module defines {count} functions, over {max}")]
    TooManyFunctions { count: u64, max: u32 },
    #[error("the module defines {count} globals, over {max}")]
    TooManyGlobals { count: u64, max: u32 },
    #[error("function {index} has {count} params, over {max}")]
    TooManyParams { index: u32, count: u64, max: u32 },
    #[error("function {index} has {count} locals, over {max}")]
    TooManyLocals { index: u32, count: u64, max: u32 },
    #[error("function {index} has a br_table with {count} targets, over {max}")]
    BrTableTooLarge { index: u32, count: u32, max: u32 },
    #[error("function {index} uses `{instruction}` (not allowed: tables must stay within their declared size)")]
    InstructionNotAllowed { index: u32, instruction: &'static str },
    #[error("function {index} needs {units} stack units for one call, over the limit of {max}")]
    FrameTooLarge { index: u32, units: u64, max: u32 },
    #[error("the `name` section is malformed: {0}")]
    NameSection(String),
    #[error("function {index} is named `{STACK_LIMIT_FUNCTION}`, a name reserved for the stack limit")]
    ReservedName { index: u32 },
    #[error("the policy's max_stack_units {0} is over {max}", max = i32::MAX)]
    StackLimitOutOfRange(u32),
    #[error("instrumentation failed: {0}")]
    Instrumentation(String),
}

/// Check without instrumenting (what admission runs): size, then a core module valid with only
/// the allowed features (MVP with floats, mutable globals, sign extension, saturating
/// conversions, bulk memory, multi-value, reference types, wide arithmetic); no start section;
/// only allowed function imports; exactly one defined memory; and the policy's limits on
/// memory, tables, functions, params, locals, globals, `br_table` targets and one call's stack
/// units. `table.grow`, `table.fill` and `table.set` are refused. A module that passes always
/// prepares.
pub fn check(code: &[u8], policy: &Policy) -> Result<(), PrepareError> {
    analyse::analyse(code, policy).map(drop)
}

/// Check, then return the instrumented core module: every defined function adds its stack units
/// to a new global at entry (calling [`STACK_LIMIT_FUNCTION`], which traps, past
/// `max_stack_units`) and subtracts them on exit. Other sections are kept as they are.
pub fn prepare(code: &[u8], policy: &Policy) -> Result<Vec<u8>, PrepareError> {
    let analysis = analyse::analyse(code, policy)?;
    instrument::instrument(code, &analysis, policy)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::Policy;

    /// The policy of the tests: the node's values, with `env`.`host` and `env`.`other` allowed.
    pub(crate) fn policy() -> Policy {
        Policy {
            allowed_imports: [("env", "host"), ("env", "other")]
                .into_iter()
                .map(|(m, n)| ((m.to_string(), n.to_string()), wasmparser::FuncType::new([wasmparser::ValType::I32], [])))
                .collect(),
            max_code_bytes: 2 << 20,
            max_memory_pages: 512,
            max_table_elements: 4_096,
            max_stack_units: 32_768,
            max_functions: 20_000,
            max_locals_per_function: 1_024,
            max_params: 128,
            max_globals: 512,
            max_br_table_targets: 4_096,
        }
    }

    pub(crate) fn wat(text: &str) -> Vec<u8> {
        match wat::parse_str(text) {
            Ok(bytes) => bytes,
            Err(e) => panic!("test module does not parse: {e}"),
        }
    }
}
