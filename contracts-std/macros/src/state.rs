//! `#[derive(ContractState)]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, Type};

use crate::abi::{SECTION, export_cfg};

fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

pub fn expand(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "a ContractState struct cannot be generic",
        ));
    }
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => f.named.iter().collect::<Vec<_>>(),
            Fields::Unit => Vec::new(),
            Fields::Unnamed(_) => {
                return Err(syn::Error::new_spanned(
                    name,
                    "ContractState needs named fields (their names are their keys)",
                ));
            }
        },
        _ => return Err(syn::Error::new_spanned(name, "ContractState is derived for structs")),
    };
    let p = quote!(::joule_contract_std::__private);
    let mut inits = Vec::new();
    let mut extra = Vec::new();
    let mut seen = (false, false, false);
    let cfg = export_cfg();
    for field in &fields {
        let Some(ident) = &field.ident else { continue };
        let ty = &field.ty;
        let key = ident.to_string();
        let key = key.strip_prefix("r#").unwrap_or(&key).to_string();
        inits.push(quote! { #ident: <#ty as #p::StorageField>::at(#p::field_prefix(&prefix, #key)) });
        let access = match last_segment(ty).as_deref() {
            Some("Ownable") if !seen.0 => {
                seen.0 = true;
                Some(quote! {
                    impl #p::HasOwnable for #name {
                        fn ownable(&self) -> &::joule_contract_std::access::Ownable { &self.#ident }
                    }
                })
            }
            Some("Roles") if !seen.1 => {
                seen.1 = true;
                Some(quote! {
                    impl #p::HasRoles for #name {
                        fn roles(&self) -> &::joule_contract_std::access::Roles { &self.#ident }
                    }
                })
            }
            Some("Pausable") if !seen.2 => {
                seen.2 = true;
                Some(quote! {
                    impl #p::HasPausable for #name {
                        fn pausable(&self) -> &::joule_contract_std::access::Pausable { &self.#ident }
                    }
                })
            }
            _ => None,
        };
        if let Some(access) = access {
            extra.push(access);
            extra.push(quote! {
                #cfg
                const _: () = {
                    #[unsafe(link_section = #SECTION)]
                    #[used]
                    static JOULE_ABI: [u8; <#ty>::EVENTS_ABI.len()] = #p::abi_bytes(<#ty>::EVENTS_ABI);
                };
            });
        }
    }
    Ok(quote! {
        impl #p::StorageField for #name {
            fn at(prefix: #p::Vec<u8>) -> Self {
                let _ = &prefix;
                #name { #(#inits,)* }
            }
        }

        /// Binds the fields under the root of the contract's store; reads nothing.
        impl ::core::default::Default for #name {
            fn default() -> Self {
                <#name as #p::StorageField>::at(#p::Vec::new())
            }
        }

        impl ::joule_contract_std::storage::ContractState for #name {}

        #(#extra)*
    })
}
