//! Procedural macros of `joule-contract-std`; use them through that crate
//! (`joule_contract_std::{contract, ContractState, event, contract_type}`), whose
//! documentation describes them. Generated code names `::joule_contract_std`.

mod abi;
mod contract;
mod state;
mod types;

use proc_macro::TokenStream;

/// Export an `impl` block as a contract (or, with `#[contract(library)]`, a library).
///
/// See the `joule-contract-std` crate documentation.
#[proc_macro_attribute]
pub fn contract(attr: TokenStream, item: TokenStream) -> TokenStream {
    contract::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A contract's state: a struct whose fields are storage handles bound to their names.
#[proc_macro_derive(ContractState)]
pub fn derive_contract_state(item: TokenStream) -> TokenStream {
    state::expand(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A typed event: `#[indexed]` fields (at most 3) are topics, the others the data.
#[proc_macro_attribute]
pub fn event(attr: TokenStream, item: TokenStream) -> TokenStream {
    types::expand_event(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A struct or enum used in a contract's interface: derives borsh and puts its shape into
/// the ABI.
#[proc_macro_attribute]
pub fn contract_type(attr: TokenStream, item: TokenStream) -> TokenStream {
    types::expand_contract_type(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
