//! The ABI a contract carries in its own code: the standard contract library's macros write
//! it into the wasm custom section `joule-abi/1`, one JSON object per line (the linker
//! concatenates the sections of every crate). Reading it needs no wasm engine, so the node
//! and the CLI describe any deployed contract from its code alone.

/// Name of the custom section holding the ABI lines.
pub const ABI_SECTION: &str = "joule-abi/1";

/// The contents of every custom section named `name`, concatenated in order. `None` when
/// `code` is not a wasm module (garbage is answered, never trusted).
pub fn custom_section(code: &[u8], name: &str) -> Option<Vec<u8>> {
    let rest = code.strip_prefix(b"\0asm\x01\0\0\0")?;
    let mut r = Cursor(rest);
    let mut out = Vec::new();
    while !r.0.is_empty() {
        let id = r.byte()?;
        let size = usize::try_from(r.leb()?).ok()?;
        let body = r.take(size)?;
        if id == 0 {
            let mut s = Cursor(body);
            let n = usize::try_from(s.leb()?).ok()?;
            if s.take(n)? == name.as_bytes() {
                out.extend_from_slice(s.0);
            }
        }
    }
    Some(out)
}

/// The ABI lines of `code`, each a JSON document as the macros wrote it; empty when the
/// code has none (a contract built without the standard library).
pub fn abi_lines(code: &[u8]) -> Vec<String> {
    let Some(section) = custom_section(code, ABI_SECTION) else { return vec![] };
    String::from_utf8_lossy(&section).lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

// ---------------------------------------------------------------------------------------
// JSON ⇄ borsh, from the ABI.
// ---------------------------------------------------------------------------------------

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Why the ABI could not be read, or a value not transcoded. Every message names the
/// argument (or the part of a value: `offer.price`, `items[2]`) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbiError {
    #[error("the ABI is malformed: {0}")]
    Malformed(String),
    #[error("the contract has no method `{method}` (its methods: {available})")]
    UnknownMethod { method: String, available: String },
    #[error("the contract has no event `{0}`")]
    UnknownEvent(String),
    #[error("type `{0}` is not in the ABI and not a type the transcoder knows")]
    UnknownType(String),
    #[error("`{method}` takes {expected} argument(s) ({signature}), {got} given")]
    Arity { method: String, expected: usize, got: usize, signature: String },
    #[error("{path}: expected {expected}, got {got}")]
    Value { path: String, expected: String, got: String },
    #[error("cannot decode {what}: {reason}")]
    Decode { what: String, reason: String },
}

/// A named, typed field: a method's parameter, an event's or a struct's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The normalized Rust type, e.g. `u64`, `Option<Address>`, `(u64, U256)`.
    pub ty: String,
}

/// A method of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    pub name: String,
    /// `init`, `call` or `query`.
    pub kind: String,
    pub args: Vec<Field>,
    /// The type of a successful result (`()` for none).
    pub returns: String,
    /// The error type of a method returning `Result` (its message is the revert reason).
    pub error: Option<String>,
}

impl Method {
    /// `name(a: u64, b: String) -> u64`.
    pub fn signature(&self) -> String {
        let args: Vec<String> = self.args.iter().map(|f| format!("{}: {}", f.name, f.ty)).collect();
        let mut s = format!("{}({})", self.name, args.join(", "));
        if self.returns != "()" {
            s.push_str(&format!(" -> {}", self.returns));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(" / error {e}"));
        }
        s
    }
}

/// An event the contract emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDef {
    pub name: String,
    /// Fields carried as topics (each its own borsh bytes).
    pub indexed: Vec<Field>,
    /// Fields carried in the data (borsh of their tuple).
    pub data: Vec<Field>,
}

/// A variant of an enum type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    /// Named fields, or `0`, `1`, … for a tuple variant; empty for a unit variant.
    pub fields: Vec<Field>,
}

/// A user type (`#[contract_type]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeDef {
    Struct(Vec<Field>),
    Enum(Vec<Variant>),
}

/// A contract's ABI, read from its ABI lines: what the JSON transcoding follows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Abi {
    pub contract: Option<String>,
    pub version: Option<String>,
    /// A library (`#[contract(library)]`).
    pub library: bool,
    pub methods: Vec<Method>,
    pub events: Vec<EventDef>,
    pub types: BTreeMap<String, TypeDef>,
    lines: Vec<Value>,
}

fn str_of(v: &Value, key: &str, line: &Value) -> Result<String, AbiError> {
    v.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| AbiError::Malformed(format!("no string `{key}` in {line}")))
}

fn fields_of(v: &Value, key: &str, line: &Value) -> Result<Vec<Field>, AbiError> {
    let list = v.get(key).and_then(Value::as_array).ok_or_else(|| AbiError::Malformed(format!("no list `{key}` in {line}")))?;
    list.iter().map(|f| Ok(Field { name: str_of(f, "name", line)?, ty: str_of(f, "type", line)? })).collect()
}

impl Abi {
    /// Read ABI lines (as [`abi_lines`] gives them). Unknown kinds of line are kept in the
    /// document but otherwise ignored; a repeated method, event or type keeps its first line.
    pub fn from_lines(lines: &[String]) -> Result<Abi, AbiError> {
        let mut abi = Abi::default();
        for line in lines {
            let v: Value = serde_json::from_str(line).map_err(|e| AbiError::Malformed(format!("{line:?} is not JSON: {e}")))?;
            if let Some(name) = v.get("contract").and_then(Value::as_str) {
                if abi.contract.is_none() {
                    abi.contract = Some(name.to_string());
                    abi.version = v.get("version").and_then(Value::as_str).map(str::to_string);
                    abi.library = v.get("library").and_then(Value::as_bool).unwrap_or(false);
                }
            } else if let Some(name) = v.get("method").and_then(Value::as_str) {
                if abi.methods.iter().any(|m| m.name == name) {
                    continue;
                }
                abi.methods.push(Method {
                    name: name.to_string(),
                    kind: str_of(&v, "kind", &v)?,
                    args: fields_of(&v, "args", &v)?,
                    returns: v.get("returns").and_then(Value::as_str).unwrap_or("()").to_string(),
                    error: v.get("error").and_then(Value::as_str).map(str::to_string),
                });
            } else if let Some(name) = v.get("event").and_then(Value::as_str) {
                if abi.events.iter().any(|e| e.name == name) {
                    continue;
                }
                abi.events.push(EventDef { name: name.to_string(), indexed: fields_of(&v, "indexed", &v)?, data: fields_of(&v, "data", &v)? });
            } else if let Some(name) = v.get("type").and_then(Value::as_str) {
                if abi.types.contains_key(name) {
                    continue;
                }
                let def = match v.get("kind").and_then(Value::as_str) {
                    Some("struct") => TypeDef::Struct(fields_of(&v, "fields", &v)?),
                    Some("enum") => {
                        let list = v.get("variants").and_then(Value::as_array).ok_or_else(|| AbiError::Malformed(format!("no list `variants` in {v}")))?;
                        TypeDef::Enum(list.iter().map(|x| Ok(Variant { name: str_of(x, "name", &v)?, fields: fields_of(x, "fields", &v)? })).collect::<Result<
                            _,
                            AbiError,
                        >>(
                        )?)
                    }
                    other => return Err(AbiError::Malformed(format!("type {name} has kind {other:?}, expected \"struct\" or \"enum\""))),
                };
                abi.types.insert(name.to_string(), def);
            }
            abi.lines.push(v);
        }
        Ok(abi)
    }

    /// The ABI from JSON objects (as `GET /v1/contracts/{address}` serves them).
    pub fn from_values(values: &[Value]) -> Result<Abi, AbiError> {
        Abi::from_lines(&values.iter().map(Value::to_string).collect::<Vec<_>>())
    }

    /// The ABI a contract's code carries; empty when it has none.
    pub fn from_code(code: &[u8]) -> Result<Abi, AbiError> {
        Abi::from_lines(&abi_lines(code))
    }

    /// Whether there is nothing in it (code built without the standard library).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The ABI as one JSON document: `{"contract", "version", "library", "methods",
    /// "events", "types", "$defs"}`, each list holding the lines as the macros wrote them, with
    /// a JSON Schema (see [`Abi::json_schema`]) added: `schema` to each method argument and
    /// event field, `returns_schema` to each method, and in `$defs` every user type's schema
    /// (what the `{"$ref": "#/$defs/Name"}` in those schemas point to, the document being
    /// their root). A type the transcoder does not know has the schema `false`.
    pub fn to_json(&self) -> Value {
        let with_schemas = |fields: Option<&mut Value>| {
            for f in fields.and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(ty) = f.get("type").and_then(Value::as_str) {
                    let schema = self.field_schema(ty);
                    if let Some(o) = f.as_object_mut() {
                        o.insert("schema".into(), schema);
                    }
                }
            }
        };
        let pick = |key: &str| {
            let lines = self.lines.iter().filter(|l| l.get(key).is_some()).cloned().map(|mut l| {
                match key {
                    "method" => {
                        with_schemas(l.get_mut("args"));
                        let returns = l.get("returns").and_then(Value::as_str).unwrap_or("()").to_string();
                        if let Some(o) = l.as_object_mut() {
                            o.insert("returns_schema".into(), self.field_schema(&returns));
                        }
                    }
                    "event" => {
                        with_schemas(l.get_mut("indexed"));
                        with_schemas(l.get_mut("data"));
                    }
                    _ => {}
                }
                l
            });
            Value::Array(lines.collect())
        };
        let defs: Map<String, Value> = self.types.iter().map(|(name, def)| (name.clone(), self.def_schema(def).unwrap_or(Value::Bool(false)))).collect();
        serde_json::json!({
            "contract": self.contract,
            "version": self.version,
            "library": self.library,
            "methods": pick("method"),
            "events": pick("event"),
            "types": pick("type"),
            "$defs": defs,
        })
    }

    /// The method called `name`.
    pub fn method(&self, name: &str) -> Result<&Method, AbiError> {
        self.methods.iter().find(|m| m.name == name).ok_or_else(|| AbiError::UnknownMethod {
            method: name.to_string(),
            available: if self.methods.is_empty() { "none".to_string() } else { self.methods.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ") },
        })
    }

    /// The `#[init]` method, if the contract has one.
    pub fn init(&self) -> Option<&Method> {
        self.methods.iter().find(|m| m.kind == "init")
    }

    /// The event called `name`.
    pub fn event(&self, name: &str) -> Result<&EventDef, AbiError> {
        self.events.iter().find(|e| e.name == name).ok_or_else(|| AbiError::UnknownEvent(name.to_string()))
    }

    /// The borsh arguments of `method` (the encoding of the tuple of its parameters) from
    /// JSON values, by position; or from one JSON object whose keys are the parameters' names.
    pub fn encode_args(&self, method: &str, args: &[Value]) -> Result<Vec<u8>, AbiError> {
        let m = self.method(method)?;
        self.encode_fields(&m.name, &m.args, args, &m.signature())
    }

    /// The arguments of the `#[init]` method (none when the contract has no init).
    pub fn encode_init(&self, args: &[Value]) -> Result<Vec<u8>, AbiError> {
        match self.init() {
            Some(m) => self.encode_fields(&m.name, &m.args, args, &m.signature()),
            None => self.encode_fields("init", &[], args, "init()"),
        }
    }

    fn encode_fields(&self, method: &str, params: &[Field], args: &[Value], signature: &str) -> Result<Vec<u8>, AbiError> {
        let named = match args {
            [Value::Object(o)] if !params.is_empty() && o.len() == params.len() && params.iter().all(|p| o.contains_key(&p.name)) => {
                // A single struct parameter given positionally has its own field names,
                // which would not all be the parameter's name.
                Some(o)
            }
            _ => None,
        };
        if named.is_none() && args.len() != params.len() {
            return Err(AbiError::Arity { method: method.to_string(), expected: params.len(), got: args.len(), signature: signature.to_string() });
        }
        let mut out = Vec::new();
        for (i, p) in params.iter().enumerate() {
            let v = match named {
                Some(o) => &o[&p.name],
                None => &args[i],
            };
            let ty = self.parse_type(&p.ty)?;
            self.encode_value(&ty, v, &format!("argument `{}` of {method}", p.name), &mut out)?;
        }
        Ok(out)
    }

    /// A value of type `ty` (a normalized type string) decoded from its borsh bytes: a
    /// method's result (`()` gives null). All the bytes must be used.
    pub fn decode(&self, ty: &str, bytes: &[u8]) -> Result<Value, AbiError> {
        let t = self.parse_type(ty)?;
        let mut r = Reader { bytes, pos: 0 };
        let v = self.decode_value(&t, &mut r, ty)?;
        r.finish(ty)?;
        Ok(v)
    }

    /// The result of `method`, decoded.
    pub fn decode_result(&self, method: &str, bytes: &[u8]) -> Result<Value, AbiError> {
        let m = self.method(method)?;
        if m.kind == "init" {
            return Ok(Value::Null);
        }
        self.decode(&m.returns, bytes).map_err(|e| match e {
            AbiError::Decode { what, reason } => AbiError::Decode { what: format!("the result of {method} ({what})"), reason },
            e => e,
        })
    }

    /// The data of event `name` (the borsh of the tuple of its non-indexed fields) as a JSON
    /// object of those fields.
    pub fn decode_event(&self, name: &str, data: &[u8]) -> Result<Value, AbiError> {
        let e = self.event(name)?;
        let mut r = Reader { bytes: data, pos: 0 };
        let mut out = Map::new();
        for f in &e.data {
            let t = self.parse_type(&f.ty)?;
            out.insert(f.name.clone(), self.decode_value(&t, &mut r, &format!("field `{}` of event {name}", f.name))?);
        }
        r.finish(&format!("event {name}"))?;
        Ok(Value::Object(out))
    }

    /// Event `name` whole: its indexed fields (from the topics after the name, each the borsh
    /// of its field) and its data fields, as one JSON object.
    pub fn decode_event_with_topics(&self, name: &str, indexed: &[Vec<u8>], data: &[u8]) -> Result<Value, AbiError> {
        let e = self.event(name)?;
        let Value::Object(mut out) = self.decode_event(name, data)? else { unreachable!("decode_event gives an object") };
        for (f, bytes) in e.indexed.iter().zip(indexed) {
            let t = self.parse_type(&f.ty)?;
            let what = format!("indexed field `{}` of event {name}", f.name);
            let mut r = Reader { bytes, pos: 0 };
            let v = self.decode_value(&t, &mut r, &what)?;
            r.finish(&what)?;
            out.insert(f.name.clone(), v);
        }
        Ok(Value::Object(out))
    }

    /// Encode one JSON value of type `ty` (a normalized type string); `what` names it in errors.
    pub fn encode(&self, ty: &str, value: &Value, what: &str) -> Result<Vec<u8>, AbiError> {
        let t = self.parse_type(ty)?;
        let mut out = Vec::new();
        self.encode_value(&t, value, what, &mut out)?;
        Ok(out)
    }

    fn parse_type(&self, s: &str) -> Result<Ty, AbiError> {
        let mut p = TypeParser { s: s.as_bytes(), pos: 0 };
        let t = p.ty().ok_or_else(|| AbiError::UnknownType(s.to_string()))?;
        p.ws();
        if p.pos != p.s.len() {
            return Err(AbiError::UnknownType(s.to_string()));
        }
        self.check_known(&t, s)?;
        Ok(t)
    }

    fn check_known(&self, t: &Ty, whole: &str) -> Result<(), AbiError> {
        match t {
            Ty::Named(n) if !self.types.contains_key(n) => Err(AbiError::UnknownType(if n == whole { n.clone() } else { format!("{n} (in {whole})") })),
            Ty::Vec(t) | Ty::Option(t) | Ty::Array(t, _) => self.check_known(t, whole),
            Ty::Map(k, v) => {
                self.check_known(k, whole)?;
                self.check_known(v, whole)
            }
            Ty::Tuple(ts) => ts.iter().try_for_each(|t| self.check_known(t, whole)),
            _ => Ok(()),
        }
    }

    fn type_def(&self, name: &str) -> Result<&TypeDef, AbiError> {
        self.types.get(name).ok_or_else(|| AbiError::UnknownType(name.to_string()))
    }

    fn encode_value(&self, t: &Ty, v: &Value, path: &str, out: &mut Vec<u8>) -> Result<(), AbiError> {
        let wrong = |expected: String| AbiError::Value { path: path.to_string(), expected, got: describe(v) };
        match t {
            Ty::Unit => match v {
                Value::Null => Ok(()),
                Value::Array(a) if a.is_empty() => Ok(()),
                _ => Err(wrong("null (the unit type)".into())),
            },
            Ty::Bool => {
                out.push(u8::from(v.as_bool().ok_or_else(|| wrong("true or false".into()))?));
                Ok(())
            }
            Ty::Int { bytes, signed } => {
                let le = int_from_json(v, *bytes, *signed).map_err(|_| wrong(int_expectation(*bytes, *signed)))?;
                out.extend_from_slice(&le);
                Ok(())
            }
            Ty::Float(bytes) => {
                let f = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                }
                .filter(|f| !f.is_nan())
                .ok_or_else(|| wrong(format!("an f{} number", bytes * 8)))?;
                if *bytes == 4 {
                    out.extend_from_slice(&(f as f32).to_le_bytes());
                } else {
                    out.extend_from_slice(&f.to_le_bytes());
                }
                Ok(())
            }
            Ty::Decimal => {
                let s = match v {
                    Value::String(s) => s.trim().to_string(),
                    Value::Number(n) if n.is_u64() => n.to_string(),
                    _ => return Err(wrong("a Decimal as a string like \"12.5\" (at most 18 decimal places, not negative)".into())),
                };
                let le = decimal_from_str(&s).ok_or_else(|| wrong("a Decimal as a string like \"12.5\" (at most 18 decimal places, not negative)".into()))?;
                out.extend_from_slice(&le);
                Ok(())
            }
            Ty::String => {
                let s = v.as_str().ok_or_else(|| wrong("a string".into()))?;
                push_len(out, s.len(), path)?;
                out.extend_from_slice(s.as_bytes());
                Ok(())
            }
            Ty::Address => {
                let b = bytes_from_json(v, Some(32)).map_err(|e| wrong(format!("an address: 64 hex digits{e}")))?;
                out.extend_from_slice(&b);
                Ok(())
            }
            Ty::Array(inner, n) if **inner == (Ty::Int { bytes: 1, signed: false }) => {
                let b = bytes_from_json(v, Some(*n)).map_err(|e| wrong(format!("{n} bytes as {} hex digits{e}", n * 2)))?;
                out.extend_from_slice(&b);
                Ok(())
            }
            Ty::Vec(inner) if **inner == (Ty::Int { bytes: 1, signed: false }) => {
                let b = bytes_from_json(v, None).map_err(|e| wrong(format!("bytes as a hex string{e}")))?;
                push_len(out, b.len(), path)?;
                out.extend_from_slice(&b);
                Ok(())
            }
            Ty::Array(inner, n) => {
                let a = v.as_array().filter(|a| a.len() == *n).ok_or_else(|| wrong(format!("an array of {n} elements")))?;
                for (i, x) in a.iter().enumerate() {
                    self.encode_value(inner, x, &format!("{path}[{i}]"), out)?;
                }
                Ok(())
            }
            Ty::Vec(inner) => {
                let a = v.as_array().ok_or_else(|| wrong("an array".into()))?;
                push_len(out, a.len(), path)?;
                for (i, x) in a.iter().enumerate() {
                    self.encode_value(inner, x, &format!("{path}[{i}]"), out)?;
                }
                Ok(())
            }
            Ty::Map(k, val) => {
                let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
                match v {
                    Value::Object(o) if **k == Ty::String => {
                        for (key, x) in o {
                            let mut kb = Vec::new();
                            self.encode_value(k, &Value::String(key.clone()), &format!("{path} key {key:?}"), &mut kb)?;
                            let mut vb = Vec::new();
                            self.encode_value(val, x, &format!("{path}.{key}"), &mut vb)?;
                            pairs.push((kb, vb));
                        }
                    }
                    Value::Array(a) => {
                        for (i, pair) in a.iter().enumerate() {
                            let [key, x] = pair.as_array().map(Vec::as_slice).unwrap_or_default() else {
                                return Err(AbiError::Value { path: format!("{path}[{i}]"), expected: "a [key, value] pair".into(), got: describe(pair) });
                            };
                            let mut kb = Vec::new();
                            self.encode_value(k, key, &format!("{path}[{i}] key"), &mut kb)?;
                            let mut vb = Vec::new();
                            self.encode_value(val, x, &format!("{path}[{i}] value"), &mut vb)?;
                            pairs.push((kb, vb));
                        }
                    }
                    _ => return Err(wrong("a map: an object (string keys) or an array of [key, value] pairs".into())),
                }
                push_len(out, pairs.len(), path)?;
                for (kb, vb) in pairs {
                    out.extend(kb);
                    out.extend(vb);
                }
                Ok(())
            }
            Ty::Option(inner) => {
                if v.is_null() {
                    out.push(0);
                    Ok(())
                } else {
                    out.push(1);
                    self.encode_value(inner, v, path, out)
                }
            }
            Ty::Tuple(ts) => {
                let a = v.as_array().filter(|a| a.len() == ts.len()).ok_or_else(|| wrong(format!("an array of {} elements (a tuple)", ts.len())))?;
                for (i, (t, x)) in ts.iter().zip(a).enumerate() {
                    self.encode_value(t, x, &format!("{path}.{i}"), out)?;
                }
                Ok(())
            }
            Ty::Named(name) => match self.type_def(name)? {
                TypeDef::Struct(fields) => self.encode_struct(name, fields, v, path, out),
                TypeDef::Enum(variants) => {
                    let names = variants.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ");
                    let (vname, body) = match v {
                        Value::String(s) => (s.as_str(), None),
                        Value::Object(o) if o.len() == 1 => {
                            let (k, b) = o.iter().next().expect("one entry");
                            (k.as_str(), Some(b))
                        }
                        _ => return Err(wrong(format!("a {name}: \"Variant\" or {{\"Variant\": fields}}, one of {names}"))),
                    };
                    let (i, variant) = variants.iter().enumerate().find(|(_, x)| x.name == vname).ok_or_else(|| AbiError::Value {
                        path: path.to_string(),
                        expected: format!("a variant of {name}: {names}"),
                        got: format!("{vname:?}"),
                    })?;
                    let index = u8::try_from(i).map_err(|_| AbiError::Malformed(format!("enum {name} has over 256 variants")))?;
                    out.push(index);
                    let path = format!("{path}.{vname}");
                    match body {
                        None | Some(Value::Null) if variant.fields.is_empty() => Ok(()),
                        None => Err(AbiError::Value {
                            path,
                            expected: format!("the fields of {name}::{vname}: {{\"{vname}\": ...}}"),
                            got: "the bare variant name".into(),
                        }),
                        Some(b) => self.encode_struct(&format!("{name}::{vname}"), &variant.fields, b, &path, out),
                    }
                }
            },
        }
    }

    /// A struct (or an enum variant's fields): an object by field names; a tuple struct as
    /// an array, or its only field's value.
    fn encode_struct(&self, name: &str, fields: &[Field], v: &Value, path: &str, out: &mut Vec<u8>) -> Result<(), AbiError> {
        let tuple = is_tuple(fields);
        if tuple && fields.len() == 1 {
            // Its only field's value (as decoding writes it, even when that is an array), or
            // that value in an array of one.
            let t = self.parse_type(&fields[0].ty)?;
            let mut direct = Vec::new();
            return match self.encode_value(&t, v, path, &mut direct) {
                Ok(()) => {
                    out.extend(direct);
                    Ok(())
                }
                Err(e) => match v.as_array().map(Vec::as_slice) {
                    Some([x]) => self.encode_value(&t, x, &format!("{path}.0"), out).map_err(|_| e),
                    _ => Err(e),
                },
            };
        }
        let expectation = || {
            if tuple {
                format!("{name} as an array of {} elements", fields.len())
            } else {
                format!("{name} as an object with {}", fields.iter().map(|f| format!("\"{}\"", f.name)).collect::<Vec<_>>().join(", "))
            }
        };
        let wrong = || AbiError::Value { path: path.to_string(), expected: expectation(), got: describe(v) };
        match v {
            Value::Object(o) if !tuple => {
                if let Some(extra) = o.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
                    return Err(AbiError::Value {
                        path: format!("{path}.{extra}"),
                        expected: format!("no such field: {}", expectation()),
                        got: "an extra field".into(),
                    });
                }
                for f in fields {
                    let x = o.get(&f.name);
                    let t = self.parse_type(&f.ty)?;
                    let x = match (x, &t) {
                        (Some(x), _) => x,
                        (None, Ty::Option(_)) => &Value::Null,
                        (None, _) => {
                            return Err(AbiError::Value {
                                path: format!("{path}.{}", f.name),
                                expected: format!("a {}", f.ty),
                                got: "nothing (the field is missing)".into(),
                            });
                        }
                    };
                    self.encode_value(&t, x, &format!("{path}.{}", f.name), out)?;
                }
                Ok(())
            }
            Value::Array(a) if tuple || a.len() == fields.len() => {
                if a.len() != fields.len() {
                    return Err(wrong());
                }
                for (f, x) in fields.iter().zip(a) {
                    let t = self.parse_type(&f.ty)?;
                    self.encode_value(&t, x, &format!("{path}.{}", f.name), out)?;
                }
                Ok(())
            }
            _ => Err(wrong()),
        }
    }

    fn decode_value(&self, t: &Ty, r: &mut Reader, what: &str) -> Result<Value, AbiError> {
        Ok(match t {
            Ty::Unit => Value::Null,
            Ty::Bool => match r.byte(what)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(AbiError::Decode { what: what.to_string(), reason: format!("a bool is 0 or 1, not {b}") }),
            },
            Ty::Int { bytes, signed } => int_to_json(r.take(*bytes, what)?, *signed),
            Ty::Float(4) => {
                let b = r.take(4, what)?;
                serde_json::Number::from_f64(f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes")))).map_or(Value::Null, Value::Number)
            }
            Ty::Float(_) => {
                let b = r.take(8, what)?;
                serde_json::Number::from_f64(f64::from_le_bytes(b.try_into().expect("8 bytes"))).map_or(Value::Null, Value::Number)
            }
            Ty::Decimal => Value::String(decimal_to_string(r.take(32, what)?)),
            Ty::String => {
                let n = r.len(what)?;
                let b = r.take(n, what)?;
                Value::String(String::from_utf8(b.to_vec()).map_err(|_| AbiError::Decode { what: what.to_string(), reason: "the string is not UTF-8".into() })?)
            }
            Ty::Address => Value::String(hex::encode(r.take(32, what)?)),
            Ty::Array(inner, n) if **inner == (Ty::Int { bytes: 1, signed: false }) => Value::String(hex::encode(r.take(*n, what)?)),
            Ty::Vec(inner) if **inner == (Ty::Int { bytes: 1, signed: false }) => {
                let n = r.len(what)?;
                Value::String(hex::encode(r.take(n, what)?))
            }
            Ty::Array(inner, n) => Value::Array((0..*n).map(|i| self.decode_value(inner, r, &format!("{what}[{i}]"))).collect::<Result<_, _>>()?),
            Ty::Vec(inner) => {
                let n = r.len(what)?;
                let mut a = Vec::with_capacity(n.min(4096));
                for i in 0..n {
                    a.push(self.decode_value(inner, r, &format!("{what}[{i}]"))?);
                }
                Value::Array(a)
            }
            Ty::Map(k, v) => {
                let n = r.len(what)?;
                let mut pairs = Vec::with_capacity(n.min(4096));
                for i in 0..n {
                    let key = self.decode_value(k, r, &format!("{what} key {i}"))?;
                    let val = self.decode_value(v, r, &format!("{what} value {i}"))?;
                    pairs.push((key, val));
                }
                if **k == Ty::String {
                    Value::Object(pairs.into_iter().map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v)).collect())
                } else {
                    Value::Array(pairs.into_iter().map(|(k, v)| Value::Array(vec![k, v])).collect())
                }
            }
            Ty::Option(inner) => match r.byte(what)? {
                0 => Value::Null,
                1 => self.decode_value(inner, r, what)?,
                b => return Err(AbiError::Decode { what: what.to_string(), reason: format!("an Option's tag is 0 or 1, not {b}") }),
            },
            Ty::Tuple(ts) => Value::Array(ts.iter().enumerate().map(|(i, t)| self.decode_value(t, r, &format!("{what}.{i}"))).collect::<Result<_, _>>()?),
            Ty::Named(name) => match self.type_def(name)? {
                TypeDef::Struct(fields) => self.decode_struct(fields, r, what)?,
                TypeDef::Enum(variants) => {
                    let i = r.byte(what)?;
                    let v = variants
                        .get(usize::from(i))
                        .ok_or_else(|| AbiError::Decode { what: what.to_string(), reason: format!("{name} has no variant {i}") })?;
                    if v.fields.is_empty() {
                        Value::String(v.name.clone())
                    } else {
                        let body = self.decode_struct(&v.fields, r, &format!("{what}.{}", v.name))?;
                        Value::Object(Map::from_iter([(v.name.clone(), body)]))
                    }
                }
            },
        })
    }

    fn decode_struct(&self, fields: &[Field], r: &mut Reader, what: &str) -> Result<Value, AbiError> {
        let tuple = is_tuple(fields);
        let mut values = Vec::with_capacity(fields.len());
        for f in fields {
            let t = self.parse_type(&f.ty)?;
            values.push(self.decode_value(&t, r, &format!("{what}.{}", f.name))?);
        }
        Ok(match (tuple, values.len()) {
            (true, 1) => values.pop().expect("one value"),
            (true, _) => Value::Array(values),
            (false, _) => Value::Object(fields.iter().map(|f| f.name.clone()).zip(values).collect()),
        })
    }
}

// ---------------------------------------------------------------------------------------
// JSON Schema of the JSON forms.
// ---------------------------------------------------------------------------------------

/// The JSON Schema dialect of [`Abi::json_schema`] and of the schemas in [`Abi::to_json`].
pub const JSON_SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Hex digits, with an optional `0x` (what the transcoder reads; it writes lower-case, no `0x`).
const HEX: &str = "[0-9a-fA-F]";

impl Abi {
    /// A JSON Schema (2020-12) of the JSON form of `ty` (a normalized type string): the form
    /// the transcoder writes (every value [`Abi::decode`] gives validates), each value the
    /// schema admits being one [`Abi::encode`] reads — except that a pattern bounds a 128- or
    /// 256-bit integer's, or a Decimal's, number of digits, not its value (the range is in the
    /// `description`). The other spellings the transcoder also reads (a number as a string, an
    /// array of byte values, a struct as an array, `{"Unit": null}`) are not in it.
    ///
    /// The schema stands alone: `$schema`, and `$defs` with every user type it reaches (user
    /// types are always `{"$ref": "#/$defs/Name"}`, so recursive types are fine).
    pub fn json_schema(&self, ty: &str) -> Result<Value, AbiError> {
        let t = self.parse_type(ty)?;
        let Value::Object(mut schema) = self.schema_of(&t) else { unreachable!("a type's schema is an object") };
        let mut defs = Map::new();
        let mut todo = Vec::new();
        named_types(&t, &mut todo);
        while let Some(name) = todo.pop() {
            if defs.contains_key(&name) {
                continue;
            }
            let def = self.type_def(&name)?;
            let fields: Vec<&Field> = match def {
                TypeDef::Struct(fields) => fields.iter().collect(),
                TypeDef::Enum(variants) => variants.iter().flat_map(|v| &v.fields).collect(),
            };
            for f in fields {
                named_types(&self.parse_type(&f.ty)?, &mut todo);
            }
            defs.insert(name.clone(), self.def_schema(def)?);
        }
        let mut out = Map::new();
        out.insert("$schema".into(), JSON_SCHEMA_DIALECT.into());
        out.append(&mut schema);
        if !defs.is_empty() {
            out.insert("$defs".into(), Value::Object(defs.into_iter().collect::<BTreeMap<_, _>>().into_iter().collect()));
        }
        Ok(Value::Object(out))
    }

    /// The schema of a field's type inside the ABI document (user types referenced into its
    /// top-level `$defs`); `false` (no value) for a type the transcoder does not know.
    fn field_schema(&self, ty: &str) -> Value {
        self.parse_type(ty).map(|t| self.schema_of(&t)).unwrap_or(Value::Bool(false))
    }

    /// The schema of a user type (what `$defs` holds for it).
    fn def_schema(&self, def: &TypeDef) -> Result<Value, AbiError> {
        match def {
            TypeDef::Struct(fields) => self.fields_schema(fields),
            // An enum without variants has no value.
            TypeDef::Enum(variants) if variants.is_empty() => Ok(Value::Bool(false)),
            TypeDef::Enum(variants) => {
                let one_of = variants
                    .iter()
                    .map(|v| {
                        Ok(if v.fields.is_empty() {
                            serde_json::json!({ "const": v.name })
                        } else {
                            serde_json::json!({
                                "type": "object",
                                "properties": { v.name.clone(): self.fields_schema(&v.fields)? },
                                "required": [v.name],
                                "additionalProperties": false,
                            })
                        })
                    })
                    .collect::<Result<Vec<_>, AbiError>>()?;
                Ok(serde_json::json!({ "oneOf": one_of }))
            }
        }
    }

    /// A struct's (or an enum variant's) fields, as [`Abi::encode_struct`] reads them and
    /// `decode_struct` writes them: an object by field names (an `Option` field may be left
    /// out), a tuple struct as an array, or its only field's value.
    fn fields_schema(&self, fields: &[Field]) -> Result<Value, AbiError> {
        let types = fields.iter().map(|f| self.parse_type(&f.ty)).collect::<Result<Vec<_>, _>>()?;
        if is_tuple(fields) {
            let mut schemas: Vec<Value> = types.iter().map(|t| self.schema_of(t)).collect();
            return Ok(if schemas.len() == 1 { schemas.pop().expect("one field") } else { tuple_schema(schemas) });
        }
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (f, t) in fields.iter().zip(&types) {
            if !matches!(t, Ty::Option(_)) {
                required.push(Value::String(f.name.clone()));
            }
            properties.insert(f.name.clone(), self.schema_of(t));
        }
        let mut schema = Map::new();
        schema.insert("type".into(), "object".into());
        schema.insert("properties".into(), Value::Object(properties));
        if !required.is_empty() {
            schema.insert("required".into(), Value::Array(required));
        }
        schema.insert("additionalProperties".into(), false.into());
        Ok(Value::Object(schema))
    }

    /// The schema of a parsed type; user types are `$ref`s to `#/$defs/Name`.
    fn schema_of(&self, t: &Ty) -> Value {
        use serde_json::json;
        let string = |pattern: String| json!({ "type": "string", "pattern": pattern });
        match t {
            Ty::Unit => json!({ "type": "null" }),
            Ty::Bool => json!({ "type": "boolean" }),
            Ty::Int { bytes, signed } if *bytes <= 8 => {
                let bits = bytes * 8;
                if *signed {
                    json!({ "type": "integer", "minimum": i64::MIN >> (64 - bits), "maximum": i64::MAX >> (64 - bits) })
                } else {
                    json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX >> (64 - bits) })
                }
            }
            Ty::Int { bytes, signed } => {
                let bits = bytes * 8;
                let (name, lo, hi) = if *signed {
                    (format!("i{bits}"), format!("-{}", limbs_to_decimal(&pow2_limbs(bits - 1, 0))), limbs_to_decimal(&pow2_limbs(bits - 1, -1)))
                } else {
                    (format!("u{bits}"), "0".to_string(), limbs_to_decimal(&pow2_limbs(bits, -1)))
                };
                let digits = lo.trim_start_matches('-').len().max(hi.len());
                let sign = if *signed { "-?" } else { "" };
                json!({
                    "type": "string",
                    "pattern": format!("^(0|{sign}[1-9][0-9]{{0,{}}})$", digits - 1),
                    "description": format!("{name}: an integer {lo} to {hi}, as a decimal string"),
                })
            }
            Ty::Float(_) => json!({ "type": "number" }),
            Ty::Decimal => {
                let int_digits = limbs_to_decimal(&pow2_limbs(256, -1)).len() - DECIMAL_PLACES;
                json!({
                    "type": "string",
                    "pattern": format!("^(0|[1-9][0-9]{{0,{}}})(\\.[0-9]{{1,{DECIMAL_PLACES}}})?$", int_digits - 1),
                    "description": format!("a Decimal: not negative, at most {DECIMAL_PLACES} decimal places, below 2^256 / 10^{DECIMAL_PLACES}"),
                })
            }
            Ty::String => json!({ "type": "string" }),
            Ty::Address => string(format!("^(0x)?{HEX}{{64}}$")),
            Ty::Array(inner, n) if **inner == (Ty::Int { bytes: 1, signed: false }) => string(format!("^(0x)?{HEX}{{{}}}$", n * 2)),
            Ty::Vec(inner) if **inner == (Ty::Int { bytes: 1, signed: false }) => string(format!("^(0x)?({HEX}{{2}})*$")),
            Ty::Array(inner, n) => json!({ "type": "array", "items": self.schema_of(inner), "minItems": n, "maxItems": n }),
            Ty::Vec(inner) => json!({ "type": "array", "items": self.schema_of(inner) }),
            Ty::Map(k, v) if **k == Ty::String => json!({ "type": "object", "additionalProperties": self.schema_of(v) }),
            Ty::Map(k, v) => json!({ "type": "array", "items": tuple_schema(vec![self.schema_of(k), self.schema_of(v)]) }),
            Ty::Option(inner) => json!({ "anyOf": [{ "type": "null" }, self.schema_of(inner)] }),
            Ty::Tuple(ts) => tuple_schema(ts.iter().map(|t| self.schema_of(t)).collect()),
            Ty::Named(name) => json!({ "$ref": format!("#/$defs/{name}") }),
        }
    }
}

/// An array of exactly these elements.
fn tuple_schema(items: Vec<Value>) -> Value {
    let n = items.len();
    serde_json::json!({ "type": "array", "prefixItems": items, "minItems": n, "maxItems": n })
}

/// Whether `fields` are a tuple's (`0`, `1`, …).
fn is_tuple(fields: &[Field]) -> bool {
    !fields.is_empty() && fields.iter().enumerate().all(|(i, f)| f.name == i.to_string())
}

/// The user types `t` names directly.
fn named_types(t: &Ty, out: &mut Vec<String>) {
    match t {
        Ty::Named(n) => out.push(n.clone()),
        Ty::Vec(t) | Ty::Option(t) | Ty::Array(t, _) => named_types(t, out),
        Ty::Map(k, v) => {
            named_types(k, out);
            named_types(v, out);
        }
        Ty::Tuple(ts) => ts.iter().for_each(|t| named_types(t, out)),
        _ => {}
    }
}

/// A parsed type string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ty {
    Unit,
    Bool,
    /// `u8`…`u128`, `i8`…`i128`, `U128`, `I128`, `U256`, `I256`: little-endian, fixed width.
    Int {
        bytes: usize,
        signed: bool,
    },
    Float(usize),
    Decimal,
    String,
    Address,
    Vec(Box<Ty>),
    Array(Box<Ty>, usize),
    Option(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    Tuple(Vec<Ty>),
    Named(String),
}

struct TypeParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl TypeParser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.ws();
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':') {
            self.pos += 1;
        }
        (self.pos > start).then(|| String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn ty(&mut self) -> Option<Ty> {
        if self.eat(b'(') {
            let mut elems = Vec::new();
            if self.eat(b')') {
                return Some(Ty::Unit);
            }
            loop {
                elems.push(self.ty()?);
                if self.eat(b')') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
                if self.eat(b')') {
                    break;
                }
            }
            return Some(Ty::Tuple(elems));
        }
        if self.eat(b'[') {
            let inner = self.ty()?;
            if !self.eat(b';') {
                return None;
            }
            let n = self.ident()?.parse().ok()?;
            return self.eat(b']').then(|| Ty::Array(Box::new(inner), n));
        }
        if self.eat(b'&') {
            return self.ty();
        }
        let name = self.ident()?;
        let name = name.rsplit("::").next().unwrap_or(&name).to_string();
        let mut args = Vec::new();
        if self.eat(b'<') {
            loop {
                args.push(self.ty()?);
                if self.eat(b'>') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        let int = |bytes, signed| Some(Ty::Int { bytes, signed });
        let mut one = || if args.len() == 1 { args.pop().map(Box::new) } else { None };
        match name.as_str() {
            "bool" => Some(Ty::Bool),
            "u8" => int(1, false),
            "u16" => int(2, false),
            "u32" => int(4, false),
            "u64" => int(8, false),
            "u128" | "U128" => int(16, false),
            "U256" => int(32, false),
            "i8" => int(1, true),
            "i16" => int(2, true),
            "i32" => int(4, true),
            "i64" => int(8, true),
            "i128" | "I128" => int(16, true),
            "I256" => int(32, true),
            "f32" => Some(Ty::Float(4)),
            "f64" => Some(Ty::Float(8)),
            "Decimal" => Some(Ty::Decimal),
            "String" | "str" => Some(Ty::String),
            "Address" => Some(Ty::Address),
            "Vec" | "VecDeque" | "BTreeSet" | "HashSet" => one().map(Ty::Vec),
            "Option" => one().map(Ty::Option),
            "Box" => one().map(|b| *b),
            "BTreeMap" | "HashMap" if args.len() == 2 => {
                let v = args.pop()?;
                let k = args.pop()?;
                Some(Ty::Map(Box::new(k), Box::new(v)))
            }
            _ if args.is_empty() => Some(Ty::Named(name)),
            _ => None,
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], AbiError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or_else(|| AbiError::Decode {
            what: what.to_string(),
            reason: format!("needs {n} more bytes at offset {}, {} left", self.pos, self.bytes.len() - self.pos),
        })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self, what: &str) -> Result<u8, AbiError> {
        Ok(self.take(1, what)?[0])
    }

    fn len(&mut self, what: &str) -> Result<usize, AbiError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
    }

    fn finish(&self, what: &str) -> Result<(), AbiError> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(AbiError::Decode { what: what.to_string(), reason: format!("{} bytes left over after the value", self.bytes.len() - self.pos) })
        }
    }
}

fn push_len(out: &mut Vec<u8>, n: usize, path: &str) -> Result<(), AbiError> {
    let n = u32::try_from(n).map_err(|_| AbiError::Value { path: path.to_string(), expected: "at most 2^32-1 elements".into(), got: format!("{n}") })?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// A short description of a JSON value for error messages.
fn describe(v: &Value) -> String {
    let s = v.to_string();
    let s = if s.len() > 60 { format!("{}…", &s[..s.floor_char_boundary(60)]) } else { s };
    let kind = match v {
        Value::Null => return "null".into(),
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "the number",
        Value::String(_) => "the string",
        Value::Array(_) => "the array",
        Value::Object(_) => "the object",
    };
    format!("{kind} {s}")
}

fn int_expectation(bytes: usize, signed: bool) -> String {
    let bits = bytes * 8;
    let name = if signed { format!("i{bits}") } else { format!("u{bits}") };
    let (lo, hi) = if signed {
        let hi = limbs_to_decimal(&pow2_limbs(bits - 1, -1));
        (format!("-{}", limbs_to_decimal(&pow2_limbs(bits - 1, 0))), hi)
    } else {
        ("0".to_string(), limbs_to_decimal(&pow2_limbs(bits, -1)))
    };
    let form = if bytes <= 8 { "a number (or a decimal string)" } else { "a decimal string (or a number)" };
    format!("an integer {lo} to {hi} ({name}) as {form}")
}

/// 2^bits + delta (delta -1 or 0), as little-endian u32 limbs.
fn pow2_limbs(bits: usize, delta: i32) -> Vec<u32> {
    let mut l = vec![0u32; bits / 32 + 1];
    l[bits / 32] = 1 << (bits % 32);
    if delta < 0 {
        // Subtract one.
        for x in l.iter_mut() {
            let (v, borrow) = x.overflowing_sub(1);
            *x = v;
            if !borrow {
                break;
            }
        }
    }
    l
}

/// Decimal digits (no sign) to little-endian u32 limbs, `None` when not digits.
fn decimal_to_limbs(s: &str) -> Option<Vec<u32>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut limbs: Vec<u32> = vec![0];
    for b in s.bytes() {
        let mut carry = u64::from(b - b'0');
        for l in limbs.iter_mut() {
            let v = u64::from(*l) * 10 + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
        if limbs.len() > 16 {
            return None; // over 512 bits: out of any range here
        }
    }
    Some(limbs)
}

fn limbs_to_decimal(limbs: &[u32]) -> String {
    let mut l: Vec<u32> = limbs.to_vec();
    let mut digits = Vec::new();
    while l.iter().any(|x| *x != 0) {
        let mut rem = 0u64;
        for x in l.iter_mut().rev() {
            let v = (rem << 32) | u64::from(*x);
            *x = (v / 10) as u32;
            rem = v % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        return "0".into();
    }
    digits.reverse();
    String::from_utf8(digits).expect("digits")
}

fn limbs_to_le(limbs: &[u32], bytes: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    if out[bytes.min(out.len())..].iter().any(|b| *b != 0) {
        return None;
    }
    out.resize(bytes, 0);
    Some(out)
}

fn le_to_limbs(le: &[u8]) -> Vec<u32> {
    le.chunks(4).map(|c| c.iter().rev().fold(0u32, |a, b| (a << 8) | u32::from(*b))).collect()
}

fn negate(le: &mut [u8]) {
    let mut carry = true;
    for b in le.iter_mut() {
        let (v, c) = (!*b).overflowing_add(u8::from(carry));
        *b = v;
        carry = c;
    }
}

/// An integer of `bytes` little-endian bytes from JSON: a number or a decimal string.
fn int_from_json(v: &Value, bytes: usize, signed: bool) -> Result<Vec<u8>, ()> {
    let text = match v {
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        Value::String(s) => s.trim().replace('_', ""),
        _ => return Err(()),
    };
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let limbs = decimal_to_limbs(digits).ok_or(())?;
    let magnitude = limbs_to_le(&limbs, bytes).ok_or(())?;
    let top_set = magnitude[bytes - 1] & 0x80 != 0;
    if !signed {
        if neg && magnitude.iter().any(|b| *b != 0) {
            return Err(());
        }
        return Ok(magnitude);
    }
    let mut le = magnitude;
    if neg {
        // Up to 2^(bits-1): the magnitude's top bit may be set only for exactly that value.
        if top_set && (le[bytes - 1] != 0x80 || le[..bytes - 1].iter().any(|b| *b != 0)) {
            return Err(());
        }
        negate(&mut le);
    } else if top_set {
        return Err(());
    }
    Ok(le)
}

/// JSON of a little-endian integer: a number up to 64 bits, a decimal string above.
fn int_to_json(le: &[u8], signed: bool) -> Value {
    let neg = signed && le.last().is_some_and(|b| b & 0x80 != 0);
    let mut mag = le.to_vec();
    if neg {
        negate(&mut mag);
    }
    let digits = limbs_to_decimal(&le_to_limbs(&mag));
    let text = if neg { format!("-{digits}") } else { digits };
    if le.len() <= 8 {
        if let Ok(n) = text.parse::<i64>() {
            return Value::from(n);
        }
        if let Ok(n) = text.parse::<u64>() {
            return Value::from(n);
        }
    }
    Value::String(text)
}

const DECIMAL_PLACES: usize = 18;

/// A Decimal ("12.5") to its atomics (value × 10^18), 32 bytes little-endian.
fn decimal_from_str(s: &str) -> Option<Vec<u8>> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > DECIMAL_PLACES || (int.is_empty() && frac.is_empty()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int = if int.is_empty() { "0" } else { int };
    let digits = format!("{int}{frac}{}", "0".repeat(DECIMAL_PLACES - frac.len()));
    limbs_to_le(&decimal_to_limbs(&digits)?, 32)
}

/// Atomics (32 bytes little-endian) to a Decimal string: "12.5", "3", "0.000000000000000001".
fn decimal_to_string(le: &[u8]) -> String {
    let digits = limbs_to_decimal(&le_to_limbs(le));
    let digits = format!("{digits:0>19}");
    let (int, frac) = digits.split_at(digits.len() - DECIMAL_PLACES);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") }
}

/// Bytes from a hex string (optional `0x`), or an array of numbers 0-255. The error text is
/// appended to the expectation.
fn bytes_from_json(v: &Value, len: Option<usize>) -> Result<Vec<u8>, String> {
    let b = match v {
        Value::String(s) => {
            let h = s.trim();
            let h = h.strip_prefix("0x").unwrap_or(h);
            hex::decode(h).map_err(|e| format!(" (not hex: {e})"))?
        }
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| " (an array holds numbers 0-255)".to_string())?,
        _ => return Err(String::new()),
    };
    match len {
        Some(n) if b.len() != n => Err(format!(" ({} bytes given)", b.len())),
        _ => Ok(b),
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    /// Unsigned LEB128, at most 5 bytes (a u32).
    fn leb(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..5 {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![name.len() as u8];
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(payload);
        let mut s = vec![0, body.len() as u8];
        s.extend(body);
        s
    }

    #[test]
    fn sections_of_the_same_name_are_concatenated() {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend(section(ABI_SECTION, b"{\"a\":1}\n"));
        m.extend(section("other", b"x"));
        m.extend(section(ABI_SECTION, b"{\"b\":2}\n"));
        assert_eq!(abi_lines(&m), vec!["{\"a\":1}".to_string(), "{\"b\":2}".to_string()]);
    }

    #[test]
    fn garbage_and_truncated_modules_give_nothing() {
        assert_eq!(custom_section(b"not wasm", ABI_SECTION), None);
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend(section(ABI_SECTION, b"{}\n"));
        m.truncate(m.len() - 2);
        assert_eq!(custom_section(&m, ABI_SECTION), None);
        assert!(abi_lines(&m).is_empty());
    }

    // ---- transcoding ----

    use serde_json::json;

    fn abi() -> Abi {
        let lines = [
            r#"{"contract":"Market","version":"0.1.0"}"#,
            r#"{"method":"new","kind":"init","args":[{"name":"fee","type":"Decimal"}],"returns":"()","error":"String"}"#,
            r#"{"method":"trade","kind":"call","args":[{"name":"offer","type":"u64"},{"name":"to","type":"Address"}],"returns":"U256","error":"String"}"#,
            r#"{"method":"post","kind":"call","args":[{"name":"offer","type":"Offer"}],"returns":"(u64, U256)","error":null}"#,
            r#"{"method":"touch","kind":"call","args":[],"returns":"()","error":null}"#,
            r#"{"type":"Offer","kind":"struct","fields":[{"name":"price","type":"Decimal"},{"name":"memo","type":"Option<String>"},{"name":"side","type":"Side"}]}"#,
            r#"{"type":"Side","kind":"enum","variants":[{"name":"Buy","fields":[]},{"name":"Sell","fields":[{"name":"min","type":"u8"}]},{"name":"Swap","fields":[{"name":"0","type":"u16"},{"name":"1","type":"bool"}]}]}"#,
            r#"{"type":"Wrapped","kind":"struct","fields":[{"name":"0","type":"u32"}]}"#,
            r#"{"event":"Traded","indexed":[{"name":"offer","type":"u64"},{"name":"buyer","type":"Address"}],"data":[{"name":"amount","type":"U256"},{"name":"note","type":"String"}]}"#,
            r#"{"event":"Traded","indexed":[],"data":[]}"#,
        ];
        Abi::from_lines(&lines.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn round_trip(ty: &str, v: Value, bytes: &[u8]) {
        let a = abi();
        let enc = a.encode(ty, &v, "x").unwrap_or_else(|e| panic!("{ty} {v}: {e}"));
        assert_eq!(enc, bytes, "{ty} {v}");
        assert_eq!(a.decode(ty, &enc).unwrap(), v, "{ty}");
    }

    fn err(ty: &str, v: Value) -> String {
        abi().encode(ty, &v, "argument `x`").unwrap_err().to_string()
    }

    #[test]
    fn the_abi_is_read() {
        let a = abi();
        assert_eq!(a.contract.as_deref(), Some("Market"));
        assert_eq!(a.version.as_deref(), Some("0.1.0"));
        assert_eq!(a.methods.len(), 4);
        assert_eq!(a.init().unwrap().name, "new");
        assert_eq!(a.method("trade").unwrap().signature(), "trade(offer: u64, to: Address) -> U256 / error String");
        assert_eq!(a.events.len(), 1, "a repeated event keeps its first line");
        assert!(matches!(a.types["Side"], TypeDef::Enum(ref v) if v.len() == 3));
        let doc = a.to_json();
        assert_eq!(doc["contract"], "Market");
        assert_eq!(doc["methods"].as_array().unwrap().len(), 4);
        assert_eq!(doc["types"].as_array().unwrap().len(), 3);
        assert_eq!(doc["events"].as_array().unwrap().len(), 1);
        let e = a.method("nope").unwrap_err().to_string();
        assert!(e.contains("no method `nope`") && e.contains("trade"), "{e}");
        assert!(Abi::from_lines(&["{not json".to_string()]).is_err());
        assert!(Abi::from_lines(&[r#"{"method":"m","kind":"call"}"#.to_string()]).is_err());
    }

    #[test]
    fn integers_round_trip() {
        round_trip("u8", json!(255), &[255]);
        round_trip("u16", json!(513), &[1, 2]);
        round_trip("u32", json!(7), &[7, 0, 0, 0]);
        round_trip("u64", json!(u64::MAX), &[255; 8]);
        round_trip("i8", json!(-1), &[255]);
        round_trip("i32", json!(-2), &[254, 255, 255, 255]);
        round_trip("i64", json!(i64::MIN), &i64::MIN.to_le_bytes());
        round_trip("u128", json!(u128::MAX.to_string()), &[255; 16]);
        round_trip("U128", json!("5"), &5u128.to_le_bytes());
        round_trip("i128", json!(i128::MIN.to_string()), &i128::MIN.to_le_bytes());
        round_trip("I128", json!("-7"), &(-7i128).to_le_bytes());
        let mut max = [255u8; 32];
        round_trip("U256", json!("115792089237316195423570985008687907853269984665640564039457584007913129639935"), &max);
        max[31] = 0x7f;
        round_trip("I256", json!("57896044618658097711785492504343953926634992332820282019728792003956564819967"), &max);
        let mut min = [0u8; 32];
        min[31] = 0x80;
        round_trip("I256", json!("-57896044618658097711785492504343953926634992332820282019728792003956564819968"), &min);
        round_trip("I256", json!("-1"), &[255; 32]);
        let mut ten18 = [0u8; 32];
        ten18[..8].copy_from_slice(&1_000_000_000_000_000_000u64.to_le_bytes());
        round_trip("U256", json!("1000000000000000000"), &ten18);
        // Other accepted forms.
        let a = abi();
        assert_eq!(a.encode("u64", &json!("42"), "x").unwrap(), 42u64.to_le_bytes());
        assert_eq!(a.encode("U256", &json!(42), "x").unwrap()[0], 42);
        assert_eq!(a.encode("i16", &json!("-300"), "x").unwrap(), (-300i16).to_le_bytes());
        assert_eq!(a.encode("u128", &json!("1_000"), "x").unwrap(), 1000u128.to_le_bytes());
    }

    #[test]
    fn integers_out_of_range_or_of_the_wrong_type_are_refused() {
        let e = err("u8", json!(300));
        assert!(e.contains("argument `x`") && e.contains("0 to 255") && e.contains("300"), "{e}");
        assert!(err("u8", json!(-1)).contains("0 to 255"));
        assert!(err("i8", json!(128)).contains("-128 to 127"));
        assert!(err("i8", json!(-129)).contains("-128 to 127"));
        assert!(abi().encode("i8", &json!(-128), "x").is_ok());
        assert!(err("u64", json!("18446744073709551616")).contains("u64"));
        assert!(err("u64", json!(1.5)).contains("the number 1.5"));
        assert!(err("u64", json!("12abc")).contains("u64"));
        assert!(err("u32", json!(true)).contains("a boolean"));
        assert!(
            err("U256", json!("115792089237316195423570985008687907853269984665640564039457584007913129639936")).contains("U256")
                || err("U256", json!("115792089237316195423570985008687907853269984665640564039457584007913129639936")).contains("u256")
        );
        assert!(err("I128", json!(i128::MAX.to_string() + "0")).contains("i128"));
        assert!(err("u128", json!("-1")).contains("u128"));
    }

    #[test]
    fn decimals_round_trip() {
        let le = |atomics: u128| {
            let mut b = [0u8; 32];
            b[..16].copy_from_slice(&atomics.to_le_bytes());
            b.to_vec()
        };
        round_trip("Decimal", json!("12.5"), &le(12_500_000_000_000_000_000));
        round_trip("Decimal", json!("3"), &le(3_000_000_000_000_000_000));
        round_trip("Decimal", json!("0"), &le(0));
        round_trip("Decimal", json!("0.000000000000000001"), &le(1));
        let a = abi();
        assert_eq!(a.encode("Decimal", &json!(".5"), "x").unwrap(), le(500_000_000_000_000_000));
        assert_eq!(a.encode("Decimal", &json!(7), "x").unwrap(), le(7_000_000_000_000_000_000));
        assert_eq!(a.encode("Decimal", &json!("1.50"), "x").unwrap(), le(1_500_000_000_000_000_000));
        for bad in [json!("-1"), json!("1.0000000000000000001"), json!("abc"), json!("1.2.3"), json!(""), json!(1.5)] {
            assert!(err("Decimal", bad.clone()).contains("a Decimal"), "{bad}");
        }
    }

    #[test]
    fn bytes_strings_and_addresses_round_trip() {
        round_trip("String", json!("héllo"), &[6, 0, 0, 0, b'h', 0xc3, 0xa9, b'l', b'l', b'o']);
        round_trip("bool", json!(true), &[1]);
        round_trip("bool", json!(false), &[0]);
        round_trip("Vec<u8>", json!("00ff"), &[2, 0, 0, 0, 0, 0xff]);
        round_trip("[u8; 3]", json!("010203"), &[1, 2, 3]);
        round_trip("Address", json!("ab".repeat(32)), &[0xab; 32]);
        round_trip("()", json!(null), &[]);
        let a = abi();
        assert_eq!(a.encode("Address", &json!(format!("0x{}", "01".repeat(32))), "x").unwrap(), [1; 32]);
        assert_eq!(a.encode("Vec<u8>", &json!([1, 2]), "x").unwrap(), [2, 0, 0, 0, 1, 2]);
        let e = err("Address", json!("zz".repeat(32)));
        assert!(e.contains("argument `x`") && e.contains("64 hex digits") && e.contains("not hex"), "{e}");
        assert!(err("Address", json!("ab")).contains("1 bytes given"));
        assert!(err("Vec<u8>", json!("abc")).contains("not hex"));
        assert!(err("[u8; 3]", json!("01")).contains("3 bytes"));
        assert!(err("String", json!(5)).contains("a string"));
        assert!(err("bool", json!("true")).contains("true or false"));
        assert!(a.decode("bool", &[2]).unwrap_err().to_string().contains("0 or 1"));
        assert!(a.decode("String", &[1, 0, 0, 0, 0xff]).unwrap_err().to_string().contains("UTF-8"));
    }

    #[test]
    fn containers_round_trip() {
        round_trip("Option<u8>", json!(null), &[0]);
        round_trip("Option<u8>", json!(9), &[1, 9]);
        round_trip("Vec<u16>", json!([1, 2]), &[2, 0, 0, 0, 1, 0, 2, 0]);
        round_trip(
            "(u64, U256)",
            json!([1, "2"]),
            &[
                &1u64.to_le_bytes()[..],
                &{
                    let mut b = [0u8; 32];
                    b[0] = 2;
                    b
                }[..],
            ]
            .concat(),
        );
        round_trip("(u8,)", json!([4]), &[4]);
        round_trip("[u32; 2]", json!([1, 2]), &[1, 0, 0, 0, 2, 0, 0, 0]);
        round_trip("Vec<Option<String>>", json!([null, "a"]), &[2, 0, 0, 0, 0, 1, 1, 0, 0, 0, b'a']);
        round_trip("BTreeMap<String, u8>", json!({"a": 1, "b": 2}), &[2, 0, 0, 0, 1, 0, 0, 0, b'a', 1, 1, 0, 0, 0, b'b', 2]);
        round_trip("BTreeMap<u8, bool>", json!([[1, true]]), &[1, 0, 0, 0, 1, 1]);
        assert!(err("(u8, u8)", json!([1])).contains("2 elements"));
        assert!(err("Vec<u8>", json!({})).contains("hex"));
        let e = err("Vec<u16>", json!([1, "x"]));
        assert!(e.starts_with("argument `x`[1]:"), "{e}");
    }

    #[test]
    fn structs_and_enums_round_trip() {
        let half = {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&500_000_000_000_000_000u64.to_le_bytes());
            b
        };
        let mut bytes = half.to_vec();
        bytes.extend([1, 2, 0, 0, 0, b'h', b'i', 1, 7]);
        round_trip("Offer", json!({"price": "0.5", "memo": "hi", "side": {"Sell": {"min": 7}}}), &bytes);
        let mut bytes = half.to_vec();
        bytes.extend([0, 0]);
        round_trip("Offer", json!({"price": "0.5", "memo": null, "side": "Buy"}), &bytes);
        round_trip("Side", json!({"Swap": [3, true]}), &[2, 3, 0, 1]);
        round_trip("Wrapped", json!(5), &[5, 0, 0, 0]);
        let a = abi();
        // A missing Option field is None; a struct may be given as an array of its fields.
        assert_eq!(a.encode("Offer", &json!({"price": "0.5", "side": "Buy"}), "x").unwrap(), bytes);
        assert_eq!(a.encode("Offer", &json!(["0.5", null, "Buy"]), "x").unwrap(), bytes);
        let e = err("Offer", json!({"price": "0.5", "side": "Hold"}));
        assert!(e.contains("argument `x`.side") && e.contains("Buy, Sell, Swap") && e.contains("Hold"), "{e}");
        let e = err("Offer", json!({"price": "0.5", "side": "Buy", "colour": 1}));
        assert!(e.contains("argument `x`.colour"), "{e}");
        let e = err("Offer", json!({"side": "Buy"}));
        assert!(e.contains("argument `x`.price") && e.contains("missing"), "{e}");
        let e = err("Offer", json!({"price": "0.5", "side": {"Sell": {"min": 300}}}));
        assert!(e.contains("argument `x`.side.Sell.min") && e.contains("0 to 255"), "{e}");
        assert!(err("Side", json!("Sell")).contains("fields of Side::Sell"));
        assert!(a.decode("Side", &[9]).unwrap_err().to_string().contains("no variant 9"));
        assert!(matches!(a.encode("Unknown", &json!(1), "x"), Err(AbiError::UnknownType(_))));
        assert!(matches!(a.encode("Vec<Unknown>", &json!([]), "x"), Err(AbiError::UnknownType(_))));
    }

    #[test]
    fn method_arguments_by_position_or_name() {
        let a = abi();
        let to = "cd".repeat(32);
        let mut want = 5u64.to_le_bytes().to_vec();
        want.extend([0xcd; 32]);
        assert_eq!(a.encode_args("trade", &[json!(5), json!(to)]).unwrap(), want);
        assert_eq!(a.encode_args("trade", &[json!({"to": to, "offer": "5"})]).unwrap(), want);
        assert_eq!(a.encode_args("touch", &[]).unwrap(), Vec::<u8>::new());
        let e = a.encode_args("trade", &[json!(5)]).unwrap_err().to_string();
        assert!(e.contains("takes 2 argument(s)") && e.contains("offer: u64, to: Address") && e.contains("1 given"), "{e}");
        let e = a.encode_args("trade", &[json!(5), json!("nothex")]).unwrap_err().to_string();
        assert!(e.starts_with("argument `to` of trade:"), "{e}");
        // One struct parameter given positionally, by its fields.
        let offer = json!({"price": "1", "side": "Buy"});
        let pos = a.encode_args("post", std::slice::from_ref(&offer)).unwrap();
        assert_eq!(a.encode_args("post", &[json!({"offer": offer})]).unwrap(), pos);
        // Init.
        let mut fee = [0u8; 32];
        fee[..8].copy_from_slice(&10_000_000_000_000_000u64.to_le_bytes());
        assert_eq!(a.encode_init(&[json!("0.01")]).unwrap(), fee);
        assert!(Abi::default().encode_init(&[]).unwrap().is_empty());
        assert!(Abi::default().encode_init(&[json!(1)]).is_err());
    }

    #[test]
    fn results_and_events_are_decoded() {
        let a = abi();
        let mut r = [0u8; 32];
        r[0] = 9;
        assert_eq!(a.decode_result("trade", &r).unwrap(), json!("9"));
        assert_eq!(a.decode_result("touch", &[]).unwrap(), json!(null));
        let e = a.decode_result("trade", &r[..31]).unwrap_err().to_string();
        assert!(e.contains("the result of trade") && e.contains("needs 32 more bytes"), "{e}");
        assert!(a.decode("u8", &[1, 2]).unwrap_err().to_string().contains("1 bytes left over"));
        let mut data = r.to_vec();
        data.extend([2, 0, 0, 0, b'o', b'k']);
        assert_eq!(a.decode_event("Traded", &data).unwrap(), json!({"amount": "9", "note": "ok"}));
        assert_eq!(
            a.decode_event_with_topics("Traded", &[7u64.to_le_bytes().to_vec(), vec![1; 32]], &data).unwrap(),
            json!({"offer": 7, "buyer": "01".repeat(32), "amount": "9", "note": "ok"})
        );
        assert!(matches!(a.decode_event("Nope", &[]), Err(AbiError::UnknownEvent(_))));
    }

    #[test]
    fn layouts_match_borsh() {
        #[derive(borsh::BorshSerialize)]
        enum Side {
            #[allow(dead_code)]
            Buy,
            Sell {
                min: u8,
            },
        }
        let a = abi();
        let v = (5u64, Some("x".to_string()), vec![1u16, 2], Side::Sell { min: 3 }, -4i128, [7u8; 3]);
        let want = borsh::to_vec(&v).unwrap();
        let got =
            a.encode("(u64, Option<String>, Vec<u16>, Side, i128, [u8; 3])", &json!([5, "x", [1, 2], {"Sell": {"min": 3}}, "-4", "070707"]), "x").unwrap();
        assert_eq!(got, want);
    }

    // ---- JSON Schema ----

    /// A regular expression of the subset the schemas use: anchored, literals, `\.`, classes
    /// with ranges, groups with `|`, and `?`, `*`, `+`, `{m}`, `{m,n}`.
    #[derive(Debug)]
    enum Re {
        Char(char),
        Class(Vec<(char, char)>),
        Group(Vec<Vec<Re>>),
        Repeat(Box<Re>, usize, Option<usize>),
    }

    fn parse_re(pattern: &str) -> Re {
        let body = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')).unwrap_or_else(|| panic!("{pattern} is not anchored"));
        let c: Vec<char> = body.chars().collect();
        let mut pos = 0;
        let alts = parse_alts(&c, &mut pos);
        assert_eq!(pos, c.len(), "{pattern}: unbalanced");
        Re::Group(alts)
    }

    fn parse_alts(c: &[char], pos: &mut usize) -> Vec<Vec<Re>> {
        let mut alts = vec![vec![]];
        while *pos < c.len() && c[*pos] != ')' {
            let atom = match c[*pos] {
                '|' => {
                    *pos += 1;
                    alts.push(vec![]);
                    continue;
                }
                '(' => {
                    *pos += 1;
                    let g = parse_alts(c, pos);
                    assert_eq!(c.get(*pos), Some(&')'));
                    *pos += 1;
                    Re::Group(g)
                }
                '[' => {
                    *pos += 1;
                    let mut ranges = vec![];
                    while c[*pos] != ']' {
                        let lo = c[*pos];
                        if c[*pos + 1] == '-' {
                            ranges.push((lo, c[*pos + 2]));
                            *pos += 3;
                        } else {
                            ranges.push((lo, lo));
                            *pos += 1;
                        }
                    }
                    *pos += 1;
                    Re::Class(ranges)
                }
                '\\' => {
                    *pos += 2;
                    Re::Char(c[*pos - 1])
                }
                ch => {
                    assert!(!"*+?{}$^.]".contains(ch), "unsupported {ch:?}");
                    *pos += 1;
                    Re::Char(ch)
                }
            };
            let (min, max) = match c.get(*pos) {
                Some('?') => (0, Some(1)),
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('{') => {
                    let end = *pos + c[*pos..].iter().position(|x| *x == '}').expect("}");
                    let inner: String = c[*pos + 1..end].iter().collect();
                    *pos = end;
                    match inner.split_once(',') {
                        Some((m, n)) => (m.parse().unwrap(), Some(n.parse().unwrap())),
                        None => (inner.parse().unwrap(), Some(inner.parse().unwrap())),
                    }
                }
                _ => {
                    alts.last_mut().unwrap().push(atom);
                    continue;
                }
            };
            *pos += 1;
            alts.last_mut().unwrap().push(Re::Repeat(Box::new(atom), min, max));
        }
        alts
    }

    fn match_seq(seq: &[Re], s: &[char], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        match seq.split_first() {
            None => k(i),
            Some((first, rest)) => match_one(first, s, i, &mut |j| match_seq(rest, s, j, k)),
        }
    }

    fn match_one(r: &Re, s: &[char], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        match r {
            Re::Char(c) => s.get(i) == Some(c) && k(i + 1),
            Re::Class(ranges) => s.get(i).is_some_and(|c| ranges.iter().any(|(lo, hi)| lo <= c && c <= hi)) && k(i + 1),
            Re::Group(alts) => alts.iter().any(|alt| match_seq(alt, s, i, k)),
            Re::Repeat(r, min, max) => repeat(r, *min, *max, 0, s, i, k),
        }
    }

    fn repeat(r: &Re, min: usize, max: Option<usize>, n: usize, s: &[char], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        if max.is_none_or(|m| n < m) && match_one(r, s, i, &mut |j| j != i && repeat(r, min, max, n + 1, s, j, k)) {
            return true;
        }
        n >= min && k(i)
    }

    fn matches_pattern(pattern: &str, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        match_one(&parse_re(pattern), &chars, 0, &mut |j| j == chars.len())
    }

    /// Whether `v` is valid under `schema` (of the subset the schemas use), `$ref`s resolved in
    /// `root`. Any other keyword fails the test.
    fn valid(root: &Value, schema: &Value, v: &Value) -> bool {
        let o = match schema {
            Value::Bool(b) => return *b,
            Value::Object(o) => o,
            _ => panic!("not a schema: {schema}"),
        };
        let num = |x: &Value| x.as_i64().map(i128::from).or_else(|| x.as_u64().map(i128::from));
        let mut ok = true;
        for (key, s) in o {
            ok &= match key.as_str() {
                "$schema" | "$defs" | "description" => true,
                "$ref" => {
                    let name = s.as_str().unwrap().strip_prefix("#/$defs/").expect("a $defs reference");
                    valid(root, root["$defs"].get(name).unwrap_or_else(|| panic!("no $defs/{name}")), v)
                }
                "type" => match s.as_str().unwrap() {
                    "null" => v.is_null(),
                    "boolean" => v.is_boolean(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "number" => v.is_number(),
                    "string" => v.is_string(),
                    "array" => v.is_array(),
                    "object" => v.is_object(),
                    t => panic!("type {t}"),
                },
                "const" => v == s,
                "minimum" => num(v).is_none_or(|n| n >= num(s).unwrap()),
                "maximum" => num(v).is_none_or(|n| n <= num(s).unwrap()),
                "pattern" => v.as_str().is_none_or(|x| matches_pattern(s.as_str().unwrap(), x)),
                "minItems" => v.as_array().is_none_or(|a| a.len() as u64 >= s.as_u64().unwrap()),
                "maxItems" => v.as_array().is_none_or(|a| a.len() as u64 <= s.as_u64().unwrap()),
                "prefixItems" => v.as_array().is_none_or(|a| a.iter().zip(s.as_array().unwrap()).all(|(x, s)| valid(root, s, x))),
                "items" => {
                    let skip = o.get("prefixItems").and_then(Value::as_array).map_or(0, Vec::len);
                    v.as_array().is_none_or(|a| a.iter().skip(skip).all(|x| valid(root, s, x)))
                }
                "properties" => v.as_object().is_none_or(|m| m.iter().all(|(k, x)| s.get(k).is_none_or(|s| valid(root, s, x)))),
                "required" => v.as_object().is_none_or(|m| s.as_array().unwrap().iter().all(|k| m.contains_key(k.as_str().unwrap()))),
                "additionalProperties" => v.as_object().is_none_or(|m| {
                    let props = o.get("properties").and_then(Value::as_object);
                    m.iter().filter(|(k, _)| props.is_none_or(|p| !p.contains_key(*k))).all(|(_, x)| valid(root, s, x))
                }),
                "anyOf" => s.as_array().unwrap().iter().any(|s| valid(root, s, v)),
                "oneOf" => s.as_array().unwrap().iter().filter(|s| valid(root, s, v)).count() == 1,
                k => panic!("the validator does not know `{k}`"),
            };
        }
        ok
    }

    #[test]
    fn the_test_regex_matches_as_a_regex_does() {
        assert!(matches_pattern("^(0x)?[0-9a-f]{4}$", "0xab01"));
        assert!(matches_pattern("^(0x)?[0-9a-f]{4}$", "ab01"));
        assert!(!matches_pattern("^(0x)?[0-9a-f]{4}$", "ab0"));
        assert!(!matches_pattern("^(0x)?[0-9a-f]{4}$", "0xab012"));
        assert!(matches_pattern("^([0-9]{2})*$", ""));
        assert!(!matches_pattern("^([0-9]{2})*$", "123"));
        assert!(matches_pattern("^(0|-?[1-9][0-9]{0,2})(\\.[0-9]{1,2})?$", "-120.05"));
        assert!(!matches_pattern("^(0|-?[1-9][0-9]{0,2})(\\.[0-9]{1,2})?$", "-1200"));
        assert!(!matches_pattern("^(0|-?[1-9][0-9]{0,2})(\\.[0-9]{1,2})?$", "01"));
        assert!(!matches_pattern("^a\\.b$", "axb"));
    }

    fn schema_abi() -> Abi {
        let mut a = abi();
        let extra = [
            r#"{"type":"Position","kind":"struct","fields":[{"name":"owner","type":"Address"},{"name":"size","type":"U256"},{"name":"price","type":"Decimal"},{"name":"stop","type":"Option<Decimal>"},{"name":"fills","type":"Vec<(u64, U256)>"},{"name":"tags","type":"Option<Vec<String>>"},{"name":"side","type":"Side"}]}"#,
            r#"{"type":"Tree","kind":"struct","fields":[{"name":"value","type":"u8"},{"name":"children","type":"Vec<Tree>"}]}"#,
            r#"{"type":"Pair","kind":"struct","fields":[{"name":"0","type":"u8"},{"name":"1","type":"bool"}]}"#,
            r#"{"type":"Points","kind":"struct","fields":[{"name":"0","type":"Vec<u16>"}]}"#,
            r#"{"type":"Empty","kind":"struct","fields":[]}"#,
            r#"{"type":"Never","kind":"enum","variants":[]}"#,
            r#"{"type":"Broken","kind":"struct","fields":[{"name":"x","type":"Mystery"}]}"#,
        ];
        let more = Abi::from_lines(&extra.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        a.types.extend(more.types);
        a
    }

    /// For each `(type, value, wrong)`: the value's JSON as the transcoder writes it validates
    /// under the type's schema; `wrong` is refused by both the schema and the transcoder.
    fn check_schema(a: &Abi, ty: &str, value: Value, wrong: &[Value]) {
        let schema = a.json_schema(ty).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(schema["$schema"], JSON_SCHEMA_DIALECT);
        let written = a.decode(ty, &a.encode(ty, &value, "x").unwrap_or_else(|e| panic!("{ty} {value}: {e}"))).unwrap();
        assert!(valid(&schema, &schema, &written), "{ty}: {written} should be valid under {schema}");
        for w in wrong {
            assert!(!valid(&schema, &schema, w), "{ty}: {w} should not be valid under {schema}");
            assert!(a.encode(ty, w, "x").is_err(), "{ty}: the transcoder reads {w}");
        }
    }

    #[test]
    fn each_schema_admits_what_the_transcoder_writes_and_refuses_the_wrong() {
        let a = schema_abi();
        let big = |s: &str| json!(s);
        check_schema(&a, "()", json!(null), &[json!(1), json!("")]);
        check_schema(&a, "bool", json!(true), &[json!("true"), json!(1)]);
        check_schema(&a, "u8", json!(255), &[json!(256), json!(-1), json!(1.5)]);
        check_schema(&a, "u8", json!(0), &[]);
        check_schema(&a, "i8", json!(-128), &[json!(-129), json!(128)]);
        check_schema(&a, "u16", json!(65535), &[json!(65536)]);
        check_schema(&a, "i32", json!(i32::MIN), &[json!(i64::from(i32::MAX) + 1)]);
        check_schema(&a, "u64", json!(u64::MAX), &[json!(-1), json!(true)]);
        check_schema(&a, "i64", json!(i64::MIN), &[json!(u64::MAX), json!(0.5)]);
        check_schema(&a, "u128", big(&u128::MAX.to_string()), &[json!("-1"), json!("12abc"), json!(format!("1{}", "0".repeat(39)))]);
        check_schema(&a, "U128", big("0"), &[json!(null)]);
        check_schema(&a, "i128", big(&i128::MIN.to_string()), &[json!("1.5"), json!(format!("-1{}", "0".repeat(39)))]);
        check_schema(&a, "I128", big("-7"), &[json!("--7")]);
        check_schema(
            &a,
            "U256",
            big("115792089237316195423570985008687907853269984665640564039457584007913129639935"),
            &[json!("-1"), json!(format!("1{}", "0".repeat(78)))],
        );
        check_schema(&a, "I256", big("-57896044618658097711785492504343953926634992332820282019728792003956564819968"), &[json!("1e3"), json!([1])]);
        check_schema(&a, "I256", big("-1"), &[]);
        check_schema(&a, "f64", json!(1.5), &[json!("x"), json!(null)]);
        check_schema(&a, "Decimal", json!("12.5"), &[json!("-1"), json!("1.0000000000000000001"), json!("1.2.3"), json!(""), json!(1.5)]);
        check_schema(&a, "Decimal", json!("0.000000000000000001"), &[json!(format!("1{}", "0".repeat(60)))]);
        check_schema(&a, "Decimal", json!("3"), &[]);
        check_schema(&a, "String", json!("héllo"), &[json!(5), json!(null)]);
        check_schema(&a, "Address", json!(format!("0x{}", "AB".repeat(32))), &[json!("ab"), json!("zz".repeat(32)), json!(format!("{}0", "ab".repeat(32)))]);
        check_schema(&a, "Vec<u8>", json!("00ff"), &[json!("abc"), json!("xx"), json!(7)]);
        check_schema(&a, "Vec<u8>", json!(""), &[]);
        check_schema(&a, "[u8; 3]", json!("010203"), &[json!("01"), json!("01020304")]);
        check_schema(&a, "Option<u8>", json!(null), &[json!(300), json!("a")]);
        check_schema(&a, "Option<u8>", json!(9), &[]);
        check_schema(&a, "Vec<u16>", json!([1, 2]), &[json!([1, "x"]), json!({})]);
        check_schema(&a, "Vec<Option<String>>", json!([null, "a"]), &[json!([1])]);
        check_schema(&a, "(u64, U256)", json!([1, "2"]), &[json!([1]), json!([1, "2", 3]), json!(["x", "2"])]);
        check_schema(&a, "(u8,)", json!([4]), &[json!(4)]);
        check_schema(&a, "[u32; 2]", json!([1, 2]), &[json!([1, 2, 3]), json!([1])]);
        check_schema(&a, "BTreeMap<String, u8>", json!({"a": 1, "b": 2}), &[json!({"a": 300}), json!("a")]);
        check_schema(&a, "BTreeMap<u8, bool>", json!([[1, true]]), &[json!([[1]]), json!([[1, "x"]])]);
        check_schema(
            &a,
            "Offer",
            json!({"price": "0.5", "memo": "hi", "side": {"Sell": {"min": 7}}}),
            &[json!({"price": "0.5", "side": "Hold"}), json!({"side": "Buy"}), json!({"price": "0.5", "side": "Buy", "colour": 1})],
        );
        check_schema(&a, "Offer", json!({"price": "0.5", "side": "Buy"}), &[]);
        check_schema(&a, "Side", json!("Buy"), &[json!("Sell"), json!({"Buy": null, "Sell": {"min": 1}}), json!({"Sell": {"min": 300}})]);
        check_schema(&a, "Side", json!({"Swap": [3, true]}), &[json!({"Swap": [3]})]);
        check_schema(&a, "Wrapped", json!(5), &[json!("x"), json!([5, 6])]);
        check_schema(&a, "Pair", json!([1, true]), &[json!([1]), json!({"0": 1, "1": true})]);
        check_schema(&a, "Points", json!([1, 2]), &[json!(["x"])]);
        check_schema(&a, "Empty", json!({}), &[json!({"x": 1})]);
        check_schema(
            &a,
            "Tree",
            json!({"value": 1, "children": [{"value": 2, "children": []}]}),
            &[json!({"value": 1, "children": [{"value": 256, "children": []}]})],
        );
        check_schema(
            &a,
            "Position",
            json!({"owner": "01".repeat(32), "size": "7", "price": "1.25", "fills": [[1, "2"]], "side": "Buy"}),
            &[json!({
                "owner": "01".repeat(32),
                "size": "7",
                "price": "1.25",
                "stop": "-1",
                "fills": [],
                "side": "Buy"
            })],
        );
        // An enum without variants has no value; a type the transcoder does not know, no schema.
        assert_eq!(a.json_schema("Never").unwrap()["$defs"]["Never"], json!(false));
        assert!(matches!(a.json_schema("Mystery"), Err(AbiError::UnknownType(_))));
        assert!(matches!(a.json_schema("Broken"), Err(AbiError::UnknownType(_))));
        assert!(matches!(a.json_schema("Vec<"), Err(AbiError::UnknownType(_))));
    }

    #[test]
    fn the_schema_of_a_struct_is_as_written() {
        let int256 = "^(0|[1-9][0-9]{0,77})$";
        let decimal = "^(0|[1-9][0-9]{0,59})(\\.[0-9]{1,18})?$";
        let u256 = json!({
            "type": "string",
            "pattern": int256,
            "description": "u256: an integer 0 to 115792089237316195423570985008687907853269984665640564039457584007913129639935, as a decimal string",
        });
        let dec = json!({
            "type": "string",
            "pattern": decimal,
            "description": "a Decimal: not negative, at most 18 decimal places, below 2^256 / 10^18",
        });
        let want = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": "#/$defs/Position",
            "$defs": {
                "Position": {
                    "type": "object",
                    "properties": {
                        "owner": {"type": "string", "pattern": "^(0x)?[0-9a-fA-F]{64}$"},
                        "size": u256,
                        "price": dec,
                        "stop": {"anyOf": [{"type": "null"}, dec]},
                        "fills": {"type": "array", "items": {
                            "type": "array",
                            "prefixItems": [{"type": "integer", "minimum": 0, "maximum": u64::MAX}, u256],
                            "minItems": 2,
                            "maxItems": 2,
                        }},
                        "tags": {"anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}}]},
                        "side": {"$ref": "#/$defs/Side"},
                    },
                    "required": ["owner", "size", "price", "fills", "side"],
                    "additionalProperties": false,
                },
                "Side": {"oneOf": [
                    {"const": "Buy"},
                    {
                        "type": "object",
                        "properties": {"Sell": {
                            "type": "object",
                            "properties": {"min": {"type": "integer", "minimum": 0, "maximum": 255}},
                            "required": ["min"],
                            "additionalProperties": false,
                        }},
                        "required": ["Sell"],
                        "additionalProperties": false,
                    },
                    {
                        "type": "object",
                        "properties": {"Swap": {
                            "type": "array",
                            "prefixItems": [{"type": "integer", "minimum": 0, "maximum": 65535}, {"type": "boolean"}],
                            "minItems": 2,
                            "maxItems": 2,
                        }},
                        "required": ["Swap"],
                        "additionalProperties": false,
                    },
                ]},
            },
        });
        let got = schema_abi().json_schema("Position").unwrap();
        assert_eq!(got, want, "{}", serde_json::to_string_pretty(&got).unwrap());
        // Signed: the sign, and the digits of the larger magnitude.
        let i128s = schema_abi().json_schema("i128").unwrap();
        assert_eq!(i128s["pattern"], "^(0|-?[1-9][0-9]{0,38})$");
        assert_eq!(schema_abi().json_schema("i16").unwrap()["minimum"], -32768);
        // A recursive type refers to itself.
        let tree = schema_abi().json_schema("Vec<Tree>").unwrap();
        assert_eq!(tree["items"], json!({"$ref": "#/$defs/Tree"}));
        assert_eq!(tree["$defs"]["Tree"]["properties"]["children"], json!({"type": "array", "items": {"$ref": "#/$defs/Tree"}}));
        assert_eq!(tree["$defs"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn the_abi_document_carries_the_schemas() {
        let a = abi();
        let doc = a.to_json();
        let trade = &doc["methods"][1];
        assert_eq!(trade["method"], "trade");
        assert_eq!(trade["args"][0], json!({"name": "offer", "type": "u64", "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX}}));
        assert_eq!(trade["args"][1]["schema"], json!({"type": "string", "pattern": "^(0x)?[0-9a-fA-F]{64}$"}));
        assert_eq!(trade["returns"], "U256");
        assert_eq!(trade["returns_schema"]["pattern"], "^(0|[1-9][0-9]{0,77})$");
        assert_eq!(trade["error"], "String", "the fields of the line are kept");
        assert_eq!(doc["methods"][2]["args"][0]["schema"], json!({"$ref": "#/$defs/Offer"}));
        assert_eq!(doc["methods"][3]["returns_schema"], json!({"type": "null"}));
        let traded = &doc["events"][0];
        assert_eq!(traded["indexed"][1]["schema"], json!({"type": "string", "pattern": "^(0x)?[0-9a-fA-F]{64}$"}));
        assert_eq!(traded["data"][1], json!({"name": "note", "type": "String", "schema": {"type": "string"}}));
        assert_eq!(doc["$defs"].as_object().unwrap().keys().collect::<Vec<_>>(), ["Offer", "Side", "Wrapped"]);
        assert_eq!(doc["types"][0]["fields"][0], json!({"name": "price", "type": "Decimal"}), "type lines are as written");
        // The document is the root of its schemas: what the transcoder writes validates.
        let offer = a.decode("Offer", &a.encode("Offer", &json!({"price": "2", "side": {"Swap": [1, false]}}), "x").unwrap()).unwrap();
        assert!(valid(&doc, &doc["methods"][2]["args"][0]["schema"], &offer));
        assert!(!valid(&doc, &doc["methods"][2]["args"][0]["schema"], &json!({"price": "2"})));
        let mut data = vec![9u8];
        data.extend([0; 31]);
        data.extend([2, 0, 0, 0, b'o', b'k']);
        let fields = a.decode_event("Traded", &data).unwrap();
        for f in traded["data"].as_array().unwrap() {
            assert!(valid(&doc, &f["schema"], &fields[f["name"].as_str().unwrap()]), "{f}");
        }
        // A type the transcoder does not know: no value.
        let odd = Abi::from_lines(&[r#"{"method":"m","kind":"call","args":[{"name":"x","type":"Mystery"}],"returns":"()"}"#.to_string()]).unwrap();
        assert_eq!(odd.to_json()["methods"][0]["args"][0]["schema"], json!(false));
        assert_eq!(Abi::default().to_json()["$defs"], json!({}));
    }

    #[test]
    fn a_one_field_tuple_struct_is_read_as_written() {
        let a = schema_abi();
        round_trip_in(&a, "Points", json!([1, 2]), &[2, 0, 0, 0, 1, 0, 2, 0]);
        assert_eq!(a.encode("Points", &json!([[1, 2]]), "x").unwrap(), [2, 0, 0, 0, 1, 0, 2, 0], "or in an array of one");
        assert_eq!(a.encode("Wrapped", &json!([5]), "x").unwrap(), [5, 0, 0, 0]);
        let e = a.encode("Wrapped", &json!("x"), "argument `x`").unwrap_err().to_string();
        assert!(e.starts_with("argument `x`:") && e.contains("u32"), "{e}");
    }

    fn round_trip_in(a: &Abi, ty: &str, v: Value, bytes: &[u8]) {
        let enc = a.encode(ty, &v, "x").unwrap_or_else(|e| panic!("{ty} {v}: {e}"));
        assert_eq!(enc, bytes, "{ty} {v}");
        assert_eq!(a.decode(ty, &enc).unwrap(), v, "{ty}");
    }
}
