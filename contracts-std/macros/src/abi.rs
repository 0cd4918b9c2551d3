//! ABI strings: normalized type names and JSON lines.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::{GenericArgument, PathArguments, Type};

/// The custom section every ABI line goes to.
pub const SECTION: &str = "joule-abi/1";

/// The `cfg` under which ABI sections and the wasm export are emitted.
pub fn export_cfg() -> TokenStream {
    quote!(#[allow(unexpected_cfgs)] #[cfg(all(target_arch = "wasm32", not(feature = "no-export")))])
}

/// A JSON string literal of `s`.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The normalized Rust spelling of a type: last path segments only, `, ` between
/// arguments, references dropped: `Vec<u8>`, `Option<Address>`, `(u64, U256)`, `[u8; 32]`.
pub fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(seg) => {
                let mut out = seg.ident.to_string();
                if let PathArguments::AngleBracketed(args) = &seg.arguments {
                    let inner: Vec<String> = args
                        .args
                        .iter()
                        .filter_map(|a| match a {
                            GenericArgument::Type(t) => Some(type_name(t)),
                            GenericArgument::Const(c) => Some(compact(c.to_token_stream())),
                            GenericArgument::Lifetime(_) => None,
                            other => Some(compact(other.to_token_stream())),
                        })
                        .collect();
                    if !inner.is_empty() {
                        out.push('<');
                        out.push_str(&inner.join(", "));
                        out.push('>');
                    }
                }
                out
            }
            None => compact(ty.to_token_stream()),
        },
        Type::Tuple(t) => {
            let elems: Vec<String> = t.elems.iter().map(type_name).collect();
            match elems.len() {
                0 => "()".to_string(),
                1 => format!("({},)", elems[0]),
                _ => format!("({})", elems.join(", ")),
            }
        }
        Type::Array(a) => format!("[{}; {}]", type_name(&a.elem), compact(a.len.to_token_stream())),
        Type::Slice(s) => format!("[{}]", type_name(&s.elem)),
        Type::Reference(r) => type_name(&r.elem),
        Type::Paren(p) => type_name(&p.elem),
        Type::Group(g) => type_name(&g.elem),
        other => compact(other.to_token_stream()),
    }
}

fn compact(tokens: TokenStream) -> String {
    let s = tokens.to_string();
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            let keep = out.ends_with(|p: char| p.is_alphanumeric() || p == '_')
                && chars.peek().is_some_and(|n| n.is_alphanumeric() || *n == '_');
            if keep {
                out.push(' ');
            }
            continue;
        }
        out.push(c);
        if c == ',' || c == ';' {
            out.push(' ');
        }
    }
    out
}

/// `[{"name":..,"type":..},...]`.
pub fn fields_json<'a>(fields: impl IntoIterator<Item = (String, &'a Type)>) -> String {
    let items: Vec<String> = fields
        .into_iter()
        .map(|(name, ty)| format!("{{\"name\":{},\"type\":{}}}", json_str(&name), json_str(&type_name(ty))))
        .collect();
    format!("[{}]", items.join(","))
}

/// A `#[used]` static in the ABI custom section holding `line` (a literal string).
pub fn literal_section(line: &str) -> TokenStream {
    let cfg = export_cfg();
    let bytes = syn::LitByteStr::new(line.as_bytes(), Span::call_site());
    let len = line.len();
    quote! {
        #cfg
        const _: () = {
            #[unsafe(link_section = #SECTION)]
            #[used]
            static JOULE_ABI: [u8; #len] = *#bytes;
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(src: &str) -> String {
        type_name(&syn::parse_str::<Type>(src).unwrap())
    }

    #[test]
    fn type_names_are_normalized() {
        assert_eq!(name("u64"), "u64");
        assert_eq!(name("std::string::String"), "String");
        assert_eq!(name("Vec < u8 >"), "Vec<u8>");
        assert_eq!(name("Option<joule_contract_std::Address>"), "Option<Address>");
        assert_eq!(name("(u64, U256)"), "(u64, U256)");
        assert_eq!(name("(u64,)"), "(u64,)");
        assert_eq!(name("()"), "()");
        assert_eq!(name("[u8; 32]"), "[u8; 32]");
        assert_eq!(name("&'a str"), "str");
        assert_eq!(
            name("BTreeMap<String, Vec<(u8, bool)>>"),
            "BTreeMap<String, Vec<(u8, bool)>>"
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(json_str("\u{1}"), r#""\u0001""#);
    }
}
