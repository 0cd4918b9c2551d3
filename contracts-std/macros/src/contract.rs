//! `#[contract]` and `#[contract(library)]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Meta, Pat, PathArguments,
    ReturnType, Token, Type, Visibility,
};

use crate::abi::{SECTION, export_cfg, fields_json, json_str, type_name};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Init,
    Call,
    Query,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Init => "init",
            Kind::Call => "call",
            Kind::Query => "query",
        }
    }
}

enum Guard {
    Owner,
    Role(LitStr),
    NotPaused,
}

/// How a method's return type is handled.
struct Returns {
    /// `Result<T, E>`: the `T` and `E`; otherwise the type itself (or `()`).
    ok: Type,
    error: Option<Type>,
    is_result: bool,
}

struct Method {
    ident: Ident,
    name: String,
    kind: Kind,
    receiver: bool,
    params: Vec<(Ident, Type)>,
    returns: Returns,
}

fn take_attr(attrs: &mut Vec<Attribute>, name: &str) -> Option<Attribute> {
    let pos = attrs.iter().position(|a| a.path().is_ident(name))?;
    Some(attrs.remove(pos))
}

fn parse_guards(attrs: &mut Vec<Attribute>) -> syn::Result<Vec<Guard>> {
    let mut guards = Vec::new();
    while let Some(attr) = take_attr(attrs, "guard") {
        let metas = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
        for meta in metas {
            match &meta {
                Meta::Path(p) if p.is_ident("owner") => guards.push(Guard::Owner),
                Meta::Path(p) if p.is_ident("not_paused") => guards.push(Guard::NotPaused),
                Meta::NameValue(nv) if nv.path.is_ident("role") => match &nv.value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s), ..
                    }) => guards.push(Guard::Role(s.clone())),
                    other => return Err(syn::Error::new_spanned(other, "role = \"name\" takes a string")),
                },
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "expected #[guard(owner)], #[guard(role = \"name\")] or #[guard(not_paused)]",
                    ));
                }
            }
        }
    }
    Ok(guards)
}

fn split_result(ty: &Type) -> Option<(Type, Option<Type>)> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    if seg.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &seg.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    let ok = types.next()?;
    Some((ok, types.next()))
}

fn unit() -> Type {
    syn::parse_quote!(())
}

fn returns_of(output: &ReturnType) -> Returns {
    match output {
        ReturnType::Default => Returns {
            ok: unit(),
            error: None,
            is_result: false,
        },
        ReturnType::Type(_, ty) => match split_result(ty) {
            Some((ok, error)) => Returns {
                ok,
                error,
                is_result: true,
            },
            None => Returns {
                ok: (**ty).clone(),
                error: None,
                is_result: false,
            },
        },
    }
}

fn is_self_type(ty: &Type, name: &Ident) -> bool {
    match ty {
        Type::Path(p) => p.path.is_ident("Self") || p.path.is_ident(name),
        _ => false,
    }
}

fn analyze(f: &mut ImplItemFn, self_name: &Ident, library: bool) -> syn::Result<Option<(Method, Vec<Guard>)>> {
    let is_init = take_attr(&mut f.attrs, "init").is_some();
    let is_query = take_attr(&mut f.attrs, "query").is_some();
    let is_call = take_attr(&mut f.attrs, "call").is_some();
    let guards = parse_guards(&mut f.attrs)?;
    let exported = matches!(f.vis, Visibility::Public(_));
    let receiver = f.sig.receiver().cloned();
    let span_err = |msg: &str| Err(syn::Error::new_spanned(&f.sig.ident, msg));
    if !exported {
        if is_init || is_query || is_call || !guards.is_empty() {
            return span_err("only `pub fn`s are exported: make this method `pub`");
        }
        return Ok(None);
    }
    if !f.sig.generics.params.is_empty() || f.sig.asyncness.is_some() {
        return span_err("an exported method cannot be generic or async");
    }
    let kind = if library {
        if receiver.is_some() || is_init {
            return span_err("a library exports functions without `self` and has no #[init]");
        }
        if !guards.is_empty() {
            return span_err("a library has no state to guard");
        }
        if is_call { Kind::Call } else { Kind::Query }
    } else if is_init {
        if receiver.is_some() {
            return span_err("#[init] is a constructor: no `self`, returning Self or Result<Self, E>");
        }
        if !guards.is_empty() {
            return span_err("#[guard] does not apply to #[init]");
        }
        Kind::Init
    } else {
        match &receiver {
            None => return Ok(None),
            Some(r) if r.reference.is_none() => return span_err("an exported method takes &self or &mut self"),
            Some(r) if r.mutability.is_some() => {
                if is_query {
                    return span_err("a #[query] takes &self");
                }
                Kind::Call
            }
            Some(_) => {
                if is_call && is_query {
                    return span_err("#[call] and #[query] exclude each other");
                }
                if is_call { Kind::Call } else { Kind::Query }
            }
        }
    };
    let name = f.sig.ident.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name).to_string();
    if name.len() > 64 {
        return span_err("a method name is at most 64 characters");
    }
    let mut params = Vec::new();
    for (i, arg) in f.sig.inputs.iter().enumerate() {
        let FnArg::Typed(pt) = arg else { continue };
        if let Type::Reference(_) = &*pt.ty {
            return Err(syn::Error::new_spanned(
                &pt.ty,
                "exported parameters are owned (they are decoded from borsh)",
            ));
        }
        let ident = match &*pt.pat {
            Pat::Ident(pi) => Ident::new(pi.ident.to_string().trim_start_matches("r#"), pi.ident.span()),
            _ => format_ident!("arg{}", i),
        };
        params.push((ident, (*pt.ty).clone()));
    }
    let returns = returns_of(&f.sig.output);
    if kind == Kind::Init {
        let ok = returns.is_result.then_some(&returns.ok);
        let valid = match &f.sig.output {
            ReturnType::Type(_, ty) => is_self_type(ty, self_name) || ok.is_some_and(|t| is_self_type(t, self_name)),
            ReturnType::Default => false,
        };
        if !valid {
            return span_err("#[init] returns Self or Result<Self, E>");
        }
    }
    let method = Method {
        ident: f.sig.ident.clone(),
        name,
        kind,
        receiver: receiver.is_some(),
        params,
        returns,
    };
    Ok(Some((method, guards)))
}

fn guard_stmts(guards: &[Guard]) -> Vec<syn::Stmt> {
    let p = quote!(::joule_contract_std::__private);
    guards
        .iter()
        .map(|g| match g {
            Guard::Owner => syn::parse_quote!(#p::HasOwnable::ownable(self).require_owner();),
            Guard::Role(role) => syn::parse_quote!(#p::HasRoles::roles(self).require_role(#role);),
            Guard::NotPaused => syn::parse_quote!(#p::HasPausable::pausable(self).require_not_paused();),
        })
        .collect()
}

fn abi_line(m: &Method) -> String {
    let returns = if m.kind == Kind::Init {
        "()".to_string()
    } else {
        type_name(&m.returns.ok)
    };
    let error = if m.returns.is_result {
        match &m.returns.error {
            Some(e) => json_str(&type_name(e)),
            None => json_str("?"),
        }
    } else {
        "null".to_string()
    };
    format!(
        "{{\"method\":{},\"kind\":\"{}\",\"args\":{},\"returns\":{},\"error\":{}}}\n",
        json_str(&m.name),
        m.kind.as_str(),
        fields_json(m.params.iter().map(|(i, t)| (i.to_string(), t))),
        json_str(&returns),
        error
    )
}

fn parse_options(attr: TokenStream) -> syn::Result<bool> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let mut library = false;
    for meta in metas {
        match &meta {
            Meta::Path(p) if p.is_ident("library") => library = true,
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "expected #[contract] or #[contract(library)]",
                ));
            }
        }
    }
    Ok(library)
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let library = parse_options(attr)?;
    let mut input: ItemImpl = syn::parse2(item)?;
    if input.trait_.is_some() {
        return Err(syn::Error::new_spanned(
            &input.self_ty,
            "#[contract] goes on an inherent impl block",
        ));
    }
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(&input.generics, "a contract cannot be generic"));
    }
    let self_name = match &*input.self_ty {
        Type::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => p.path.segments[0].ident.clone(),
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "#[contract] goes on `impl Name { ... }`",
            ));
        }
    };
    let mut methods = Vec::new();
    for item in input.items.iter_mut() {
        if let ImplItem::Fn(f) = item
            && let Some((method, guards)) = analyze(f, &self_name, library)?
        {
            let stmts = guard_stmts(&guards);
            if !stmts.is_empty() {
                let mut body = stmts;
                body.append(&mut f.block.stmts);
                f.block.stmts = body;
            }
            methods.push(method);
        }
    }
    let inits: Vec<&Method> = methods.iter().filter(|m| m.kind == Kind::Init).collect();
    if inits.len() > 1 {
        return Err(syn::Error::new_spanned(
            &inits[1].ident,
            "a contract has at most one #[init]",
        ));
    }

    let p = quote!(::joule_contract_std::__private);
    let name_str = self_name.to_string();

    // ABI.
    let mut abi_rest = String::new();
    for m in &methods {
        abi_rest.push_str(&abi_line(m));
    }
    let abi_head = format!("{{\"contract\":{},\"version\":\"", json_str(&name_str));
    let abi_kind = if library { "\",\"library\":true}\n" } else { "\"}\n" };

    // Dispatch.
    let arm = |m: &Method| -> TokenStream {
        let name = &m.name;
        let ident = &m.ident;
        let vars: Vec<Ident> = (0..m.params.len()).map(|i| format_ident!("__arg{}", i)).collect();
        let tys: Vec<&Type> = m.params.iter().map(|(_, t)| t).collect();
        let decode = quote! {
            let (#(#vars,)*): (#(#tys,)*) = #p::decode_args(#name, args)?;
        };
        let invoke = if m.kind == Kind::Init || !m.receiver {
            quote!(let __ret = <#self_name>::#ident(#(#vars),*);)
        } else if m.kind == Kind::Call {
            quote! {
                let mut __state = <#self_name as ::core::default::Default>::default();
                let __ret = __state.#ident(#(#vars),*);
            }
        } else {
            quote! {
                let __state = <#self_name as ::core::default::Default>::default();
                let __ret = __state.#ident(#(#vars),*);
            }
        };
        let finish = match (m.kind == Kind::Init, m.returns.is_result) {
            (true, false) => quote! { let _ = __ret; #p::Result::Ok(#p::Vec::new()) },
            (true, true) => quote! {
                match __ret {
                    #p::Result::Ok(_) => #p::Result::Ok(#p::Vec::new()),
                    #p::Result::Err(e) => #p::Result::Err(#p::error_message(e)),
                }
            },
            (false, false) => quote! { #p::encode_return(#name, &__ret) },
            (false, true) => quote! {
                match __ret {
                    #p::Result::Ok(v) => #p::encode_return(#name, &v),
                    #p::Result::Err(e) => #p::Result::Err(#p::error_message(e)),
                }
            },
        };
        quote! { { #decode #invoke #finish } }
    };
    let init_arm = match inits.first() {
        Some(m) => arm(m),
        None => quote! { { let (): () = #p::decode_args("init", args)?; #p::Result::Ok(#p::Vec::new()) } },
    };
    let mut call_arms = Vec::new();
    let mut query_arms = Vec::new();
    for m in methods.iter().filter(|m| m.kind != Kind::Init) {
        let name = &m.name;
        let body = arm(m);
        call_arms.push(quote!(#name => #body,));
        if m.kind == Kind::Query || library {
            query_arms.push(quote!(#name => #body,));
        } else {
            query_arms.push(quote!(#name => #p::changes_state(#name),));
        }
    }

    // Typed reference for callers.
    let (ref_name, ref_doc, call_fn) = if library {
        (
            format_ident!("{}Lib", self_name),
            format!("Calls the library `{name_str}` deployed at `address` (`calls.library`)."),
            None,
        )
    } else {
        (
            format_ident!("{}Ref", self_name),
            format!("Calls the contract `{name_str}` deployed at `address` (`calls.call` / `calls.query`)."),
            Some(()),
        )
    };
    let ref_methods = methods.iter().filter(|m| m.kind != Kind::Init).map(|m| {
        let ident = &m.ident;
        let name = &m.name;
        let args: Vec<&Ident> = m.params.iter().map(|(i, _)| i).collect();
        let tys: Vec<&Type> = m.params.iter().map(|(_, t)| t).collect();
        let ok = &m.returns.ok;
        let via = match (call_fn, m.kind) {
            (None, _) => quote!(library),
            (Some(()), Kind::Call) => quote!(call),
            (Some(()), _) => quote!(query),
        };
        let doc = format!("`{name}` ({}) through `calls.{via}`.", m.kind.as_str());
        quote! {
            #[doc = #doc]
            #[allow(clippy::too_many_arguments)]
            pub fn #ident(&self, #(#args: #tys),*) -> #p::Result<#ok, ::joule_contract_std::CallError> {
                #p::#via(&self.address, #name, &(#(#args,)*), self.gas)
            }
        }
    });

    let cfg = export_cfg();
    let export_mod = format_ident!("__joule_export_{}", snake(&name_str));
    let export = quote! {
        #cfg
        #[doc(hidden)]
        mod #export_mod {
            pub struct JouleExport;

            impl ::joule_contract_std::bindings::exports::joule::contract::entry::Guest for JouleExport {
                fn init(args: ::std::vec::Vec<u8>) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    ::joule_contract_std::__private::export::<super::#self_name>(
                        ::joule_contract_std::Entry::Init, "init", &args)
                }
                fn call(method: ::std::string::String, args: ::std::vec::Vec<u8>)
                    -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    ::joule_contract_std::__private::export::<super::#self_name>(
                        ::joule_contract_std::Entry::Call, &method, &args)
                }
                fn query(method: ::std::string::String, args: ::std::vec::Vec<u8>)
                    -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    ::joule_contract_std::__private::export::<super::#self_name>(
                        ::joule_contract_std::Entry::Query, &method, &args)
                }
            }

            ::joule_contract_std::export!(JouleExport with_types_in ::joule_contract_std::bindings);
        }

        #cfg
        const _: () = {
            #[unsafe(link_section = #SECTION)]
            #[used]
            static JOULE_ABI: [u8; <#self_name as ::joule_contract_std::Contract>::ABI.len()] =
                #p::abi_bytes(<#self_name as ::joule_contract_std::Contract>::ABI);
        };
    };

    Ok(quote! {
        #input

        impl ::joule_contract_std::Contract for #self_name {
            const NAME: &'static str = #name_str;
            const ABI: &'static str = concat!(#abi_head, env!("CARGO_PKG_VERSION"), #abi_kind, #abi_rest);

            fn dispatch(
                entry: ::joule_contract_std::Entry,
                method: &str,
                args: &[u8],
            ) -> #p::Result<#p::Vec<u8>, #p::String> {
                let _ = (&method, &args);
                match entry {
                    ::joule_contract_std::Entry::Init => #init_arm
                    ::joule_contract_std::Entry::Call => match method {
                        #(#call_arms)*
                        _ => #p::unknown_method(method),
                    },
                    ::joule_contract_std::Entry::Query => match method {
                        #(#query_arms)*
                        _ => #p::unknown_method(method),
                    },
                }
            }
        }

        #[doc = #ref_doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct #ref_name {
            /// The callee's address.
            pub address: ::joule_contract_std::Address,
            /// Gas given to each call (`None`: all that is left).
            pub gas: ::core::option::Option<u64>,
        }

        impl #ref_name {
            /// The callee at `address`, given all the gas left at each call.
            pub const fn new(address: ::joule_contract_std::Address) -> Self {
                Self { address, gas: ::core::option::Option::None }
            }

            /// The same callee, given at most `gas` per call.
            pub const fn with_gas(self, gas: u64) -> Self {
                Self { address: self.address, gas: ::core::option::Option::Some(gas) }
            }

            #(#ref_methods)*
        }

        #export
    })
}
