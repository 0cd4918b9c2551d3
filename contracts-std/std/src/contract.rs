//! What `#[contract]` implements.

/// The three exports of the `entry` interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    /// `entry.init`: deployment.
    Init,
    /// `entry.call`: a state-changing method.
    Call,
    /// `entry.query`: a read-only method.
    Query,
}

/// A contract (or library): implemented by `#[contract]` on its `impl` block.
pub trait Contract {
    /// The contract's name: the `impl` block's type.
    const NAME: &'static str;
    /// Its ABI lines (the contract line and one line per method), as embedded in the
    /// `joule-abi/1` custom section of the wasm.
    const ABI: &'static str;

    /// The generated dispatch: decode `args` for `method`, run it, encode its result. An
    /// `Err` reverts the call. `method` is ignored for [`Entry::Init`].
    fn dispatch(entry: Entry, method: &str, args: &[u8]) -> Result<Vec<u8>, String>;
}

/// A struct or enum of a contract's interface: implemented by `#[contract_type]`, which
/// also derives borsh for it.
pub trait ContractType {
    /// Its ABI line (`{"type":...}` and a newline).
    const ABI: &'static str;
}
