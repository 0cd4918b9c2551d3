//! `#[event]` and `#[contract_type]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Fields, Item, ItemStruct};

use crate::abi::{fields_json, json_str, literal_section};

fn no_args(attr: TokenStream, what: &str) -> syn::Result<()> {
    if attr.is_empty() {
        Ok(())
    } else {
        Err(syn::Error::new_spanned(attr, format!("#[{what}] takes no arguments")))
    }
}

fn field_list(fields: &Fields) -> Vec<(String, &syn::Type)> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = f.ident.as_ref().map(|i| i.to_string()).unwrap_or_else(|| i.to_string());
            (name.strip_prefix("r#").unwrap_or(&name).to_string(), &f.ty)
        })
        .collect()
}

pub fn expand_event(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    no_args(attr, "event")?;
    let mut input: ItemStruct = syn::parse2(item)?;
    let name = input.ident.clone();
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(&input.generics, "an event cannot be generic"));
    }
    let name_str = name.to_string();
    if name_str.len() > 64 {
        return Err(syn::Error::new_spanned(&name, "an event name is at most 64 characters"));
    }
    if matches!(input.fields, Fields::Unnamed(_)) {
        return Err(syn::Error::new_spanned(&name, "an event needs named fields (or none)"));
    }
    let mut indexed = Vec::new();
    let mut data = Vec::new();
    for field in input.fields.iter_mut() {
        let before = field.attrs.len();
        field.attrs.retain(|a| !a.path().is_ident("indexed"));
        let is_indexed = field.attrs.len() != before;
        let Some(ident) = field.ident.clone() else { continue };
        if is_indexed {
            indexed.push((ident, field.ty.clone()));
        } else {
            data.push((ident, field.ty.clone()));
        }
    }
    if indexed.len() > 3 {
        return Err(syn::Error::new_spanned(
            &name,
            "an event has at most 3 #[indexed] fields",
        ));
    }
    let label = |v: &[(syn::Ident, syn::Type)]| -> Vec<(String, syn::Type)> {
        v.iter()
            .map(|(i, t)| {
                let s = i.to_string();
                (s.strip_prefix("r#").unwrap_or(&s).to_string(), t.clone())
            })
            .collect()
    };
    let indexed_l = label(&indexed);
    let data_l = label(&data);
    let line = format!(
        "{{\"event\":{},\"indexed\":{},\"data\":{}}}\n",
        json_str(&name_str),
        fields_json(indexed_l.iter().map(|(n, t)| (n.clone(), t))),
        fields_json(data_l.iter().map(|(n, t)| (n.clone(), t)))
    );
    let section = literal_section(&line);
    let p = quote!(::joule_contract_std::__private);
    let topic_names = indexed_l.iter().map(|(n, _)| n.clone());
    let topic_fields = indexed.iter().map(|(i, _)| i);
    let data_fields = data.iter().map(|(i, _)| i);
    Ok(quote! {
        #input

        impl #p::Event for #name {
            const NAME: &'static str = #name_str;
            const ABI: &'static str = #line;

            fn topics(&self) -> #p::Vec<#p::Vec<u8>> {
                ::std::vec![#(#p::topic(#name_str, #topic_names, &self.#topic_fields)),*]
            }

            fn data(&self) -> #p::Vec<u8> {
                #p::data(&(#(&self.#data_fields,)*))
            }
        }

        impl #name {
            /// Emit this event (`events.emit`).
            pub fn emit(&self) {
                <Self as #p::Event>::emit(self)
            }
        }

        #section
    })
}

pub fn expand_contract_type(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    no_args(attr, "contract_type")?;
    let input: Item = syn::parse2(item)?;
    let (name, generics, line) = match &input {
        Item::Struct(s) => {
            let line = format!(
                "{{\"type\":{},\"kind\":\"struct\",\"fields\":{}}}\n",
                json_str(&s.ident.to_string()),
                fields_json(field_list(&s.fields))
            );
            (&s.ident, &s.generics, line)
        }
        Item::Enum(e) => {
            let variants: Vec<String> = e
                .variants
                .iter()
                .map(|v| {
                    format!(
                        "{{\"name\":{},\"fields\":{}}}",
                        json_str(&v.ident.to_string()),
                        fields_json(field_list(&v.fields))
                    )
                })
                .collect();
            let line = format!(
                "{{\"type\":{},\"kind\":\"enum\",\"variants\":[{}]}}\n",
                json_str(&e.ident.to_string()),
                variants.join(",")
            );
            (&e.ident, &e.generics, line)
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "#[contract_type] goes on a struct or an enum",
            ));
        }
    };
    let section = literal_section(&line);
    let p = quote!(::joule_contract_std::__private);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    Ok(quote! {
        #[derive(::joule_contract_std::borsh::BorshSerialize, ::joule_contract_std::borsh::BorshDeserialize)]
        #[borsh(crate = "::joule_contract_std::borsh")]
        #input

        impl #impl_generics #p::ContractType for #name #ty_generics #where_clause {
            const ABI: &'static str = #line;
        }

        #section
    })
}
