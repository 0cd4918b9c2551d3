//! Bounds on what a contract may be and do. Consensus values: every node refuses or traps
//! at exactly the same point.

/// Largest code a deployment may carry (the core wasm module): a deployment transaction
/// must fit the transaction limit (1 MiB) with its arguments.
pub const MAX_CODE_BYTES: usize = 800 << 10;
/// Linear memory a contract instance may grow to (512 pages).
pub const MAX_MEMORY_BYTES: usize = 32 << 20;
/// Elements of any table.
pub const MAX_TABLE_ELEMENTS: u64 = 4_096;
/// Logical stack units a call may use: for each active wasm function, its parameters,
/// locals and deepest operand stack (counted by the deploy-time instrumentation, the same
/// on every machine). A call past it traps with "stack depth exceeded".
pub const MAX_STACK_UNITS: u32 = 32_768;
/// Nested cross-contract and library calls below a transaction's own call.
pub const MAX_CALL_DEPTH: u32 = 8;
pub const MAX_KEY_BYTES: usize = 1024;
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Entries one `scan` may return.
pub const MAX_SCAN_ENTRIES: u32 = 256;
/// An event's name: 1-64 characters of `[A-Za-z0-9_.-]`.
pub const MAX_EVENT_NAME_BYTES: usize = 64;
/// Indexed topics besides the name.
pub const MAX_EVENT_TOPICS: usize = 3;
pub const MAX_EVENT_TOPIC_BYTES: usize = 64;
pub const MAX_EVENT_DATA_BYTES: usize = 16 << 10;
/// Events one transaction may emit, across all its calls.
pub const MAX_EVENTS_PER_TX: usize = 256;
/// Return data of one call (a revert message is cut to [`MAX_REVERT_MESSAGE_BYTES`]).
pub const MAX_RETURN_BYTES: usize = 64 << 10;
pub const MAX_REVERT_MESSAGE_BYTES: usize = 1024;
/// Method names: 1-64 characters of `[A-Za-z0-9_-]` (as transactions carry them).
pub const MAX_METHOD_BYTES: usize = 64;

/// Static bounds on a contract's code, checked at deployment (so compiling, instantiating
/// and instrumenting any deployed contract stays cheap). Functions a module defines:
pub const MAX_FUNCTIONS: u32 = 16_384;
/// Locals of one function, its parameters included.
pub const MAX_LOCALS_PER_FUNCTION: u32 = 1_024;
/// Parameters of one function type.
pub const MAX_PARAMS: u32 = 128;
/// Globals a module defines.
pub const MAX_GLOBALS: u32 = 256;
/// Targets of one `br_table`.
pub const MAX_BR_TABLE_TARGETS: u32 = 4_096;
