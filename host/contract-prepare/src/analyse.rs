//! One validating pass over the module: the policy's rules, wasmparser's validation with
//! exactly the allowed features, and what instrumentation needs (types, counts, frame costs).

use wasmparser::{
    BinaryReaderError, Encoding, FuncToValidate, FuncType, FuncValidatorAllocations, FunctionBody, KnownCustom, Operator, Parser, Payload, TypeRef,
    ValidPayload, Validator, ValidatorResources, WasmFeatures,
};

use crate::{Policy, PrepareError, instrument};

/// Stack units every call costs besides its params, locals and operands (return address,
/// frame link), as in wasm-instrument.
const FRAME_OVERHEAD: u64 = 2;

/// The wasm features a contract may use: what rustc emits for wasm32 and nothing the node
/// cannot meter or run deterministically. The validator itself refuses everything else.
pub(crate) fn features() -> WasmFeatures {
    WasmFeatures::WASM1 // MVP with floats, mutable globals
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::WIDE_ARITHMETIC
}

/// What instrumentation needs to know about a module that passed the check.
#[derive(Debug, Default)]
pub(crate) struct Analysis {
    /// Every type, by index; `None` for a non-function type (there are none without GC).
    pub(crate) types: Vec<Option<FuncType>>,
    pub(crate) imported_functions: u32,
    /// Type index of every defined function, in order.
    pub(crate) function_types: Vec<u32>,
    /// Globals (all defined: global imports are refused).
    pub(crate) globals: u32,
    /// Stack units of every defined function, in order.
    pub(crate) costs: Vec<u32>,
    pub(crate) has_type_section: bool,
    pub(crate) has_function_section: bool,
    pub(crate) has_global_section: bool,
    pub(crate) has_code_section: bool,
}

impl Analysis {
    /// Index the stack-limit function will get: after every existing function.
    pub(crate) fn limit_function_index(&self) -> u32 {
        // Bounded by max_functions (u32) plus the imports, both checked.
        self.imported_functions.saturating_add(u32::try_from(self.function_types.len()).unwrap_or(u32::MAX))
    }
}

pub(crate) fn analyse(code: &[u8], policy: &Policy) -> Result<Analysis, PrepareError> {
    if code.len() > policy.max_code_bytes {
        return Err(PrepareError::CodeTooLarge { size: code.len(), max: policy.max_code_bytes });
    }
    if i32::try_from(policy.max_stack_units).is_err() {
        return Err(PrepareError::StackLimitOutOfRange(policy.max_stack_units));
    }
    let mut analysis = Analysis::default();
    let mut validator = Validator::new_with_features(features());
    let mut allocations = FuncValidatorAllocations::default();
    let mut memories: u64 = 0;
    for payload in Parser::new(0).parse_all(code) {
        let payload = payload.map_err(|e| if e.offset() < 8 { PrepareError::NotAModule(e.message().to_string()) } else { validation_error(&e) })?;
        analysis.rules(&payload, policy, &mut memories)?;
        match validator.payload(&payload).map_err(|e| validation_error(&e))? {
            ValidPayload::Func(to_validate, body) => {
                let cost = function_cost(to_validate, &body, &mut allocations, &analysis, policy)?;
                analysis.costs.push(cost);
            }
            ValidPayload::End(_) => {
                if memories != 1 {
                    return Err(PrepareError::MemoryCount { count: memories });
                }
            }
            ValidPayload::Ok | ValidPayload::Parser(_) => {}
        }
    }
    Ok(analysis)
}

impl Analysis {
    /// The policy's rules on one section, before the validator sees it (so a memory import is
    /// refused as an import, not as a second memory).
    fn rules(&mut self, payload: &Payload<'_>, policy: &Policy, memories: &mut u64) -> Result<(), PrepareError> {
        match payload {
            Payload::Version { encoding: Encoding::Component, .. } => return Err(PrepareError::Component),
            Payload::StartSection { .. } => return Err(PrepareError::StartSection),
            Payload::TypeSection(reader) => {
                self.has_type_section = true;
                for group in reader.clone() {
                    let group = group.map_err(|e| validation_error(&e))?;
                    for sub_type in group.into_types() {
                        self.types.push(match sub_type.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(func_type) => Some(func_type),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.clone().into_imports() {
                    let import = import.map_err(|e| validation_error(&e))?;
                    let kind = match import.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => None,
                        TypeRef::Table(_) => Some("table"),
                        TypeRef::Memory(_) => Some("memory"),
                        TypeRef::Global(_) => Some("global"),
                        TypeRef::Tag(_) => Some("tag"),
                    };
                    let named = || (import.module.to_string(), import.name.to_string());
                    if let Some(kind) = kind {
                        let (module, name) = named();
                        return Err(PrepareError::ImportNotFunction { module, name, kind });
                    }
                    let Some(expected) = policy.allowed_imports.get(&named()) else {
                        let (module, name) = named();
                        return Err(PrepareError::ImportNotAllowed { module, name });
                    };
                    let found = match import.ty {
                        TypeRef::Func(t) | TypeRef::FuncExact(t) => self.func_type(t),
                        _ => None,
                    };
                    if found != Some(expected) {
                        let (module, name) = named();
                        let found = found.map_or_else(|| "(no function type)".to_string(), signature);
                        return Err(PrepareError::ImportType { module, name, expected: signature(expected), found });
                    }
                    self.imported_functions = self.imported_functions.saturating_add(1);
                }
            }
            Payload::FunctionSection(reader) => {
                self.has_function_section = true;
                let count = u64::from(reader.count());
                if count > u64::from(policy.max_functions) {
                    return Err(PrepareError::TooManyFunctions { count, max: policy.max_functions });
                }
                for type_index in reader.clone() {
                    let type_index = type_index.map_err(|e| validation_error(&e))?;
                    let params = self.func_type(type_index).map_or(0, |t| t.params().len());
                    let params = u64::try_from(params).unwrap_or(u64::MAX);
                    if params > u64::from(policy.max_params) {
                        let index = self.imported_functions.saturating_add(u32::try_from(self.function_types.len()).unwrap_or(u32::MAX));
                        return Err(PrepareError::TooManyParams { index, count: params, max: policy.max_params });
                    }
                    self.function_types.push(type_index);
                }
            }
            Payload::MemorySection(reader) => {
                *memories = memories.saturating_add(u64::from(reader.count()));
                if *memories != 1 {
                    return Err(PrepareError::MemoryCount { count: *memories });
                }
                for memory in reader.clone() {
                    let memory = memory.map_err(|e| validation_error(&e))?;
                    if memory.initial > policy.max_memory_pages {
                        return Err(PrepareError::MemoryTooLarge { pages: memory.initial, max: policy.max_memory_pages });
                    }
                }
            }
            Payload::TableSection(reader) => {
                for (index, table) in (0u32..).zip(reader.clone()) {
                    let table = table.map_err(|e| validation_error(&e))?;
                    if table.ty.initial > policy.max_table_elements {
                        return Err(PrepareError::TableTooLarge { index, elements: table.ty.initial, max: policy.max_table_elements });
                    }
                }
            }
            Payload::GlobalSection(reader) => {
                self.has_global_section = true;
                let count = u64::from(reader.count());
                if count > u64::from(policy.max_globals) {
                    return Err(PrepareError::TooManyGlobals { count, max: policy.max_globals });
                }
                self.globals = reader.count();
            }
            Payload::CodeSectionStart { .. } => self.has_code_section = true,
            Payload::CustomSection(reader) => {
                if let KnownCustom::Name(names) = reader.as_known() {
                    // The same merge prepare does, so a module check accepts always prepares.
                    let names = instrument::merged_names(names, self.limit_function_index()).map_err(|e| PrepareError::NameSection(e.to_string()))?;
                    if let Some(index) = names.reserved {
                        return Err(PrepareError::ReservedName { index });
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn func_type(&self, type_index: u32) -> Option<&FuncType> {
        self.types.get(usize::try_from(type_index).ok()?)?.as_ref()
    }
}

/// Validates one function body and returns its stack units: params + declared locals + the
/// deepest operand stack + [`FRAME_OVERHEAD`].
/// A function type as WAT spells it: `(func (param i32 i32) (result i32))`.
fn signature(t: &FuncType) -> String {
    let list = |kind: &str, types: &[wasmparser::ValType]| {
        if types.is_empty() { String::new() } else { format!(" ({kind} {})", types.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")) }
    };
    format!("(func{}{})", list("param", t.params()), list("result", t.results()))
}

fn function_cost(
    to_validate: FuncToValidate<ValidatorResources>,
    body: &FunctionBody<'_>,
    allocations: &mut FuncValidatorAllocations,
    analysis: &Analysis,
    policy: &Policy,
) -> Result<u32, PrepareError> {
    let index = to_validate.index;
    let params = analysis.func_type(to_validate.ty).map_or(0, |t| t.params().len());
    let params = u64::try_from(params).unwrap_or(u64::MAX);
    let mut validator = to_validate.into_validator(std::mem::take(allocations));

    let mut declared = Vec::new();
    let mut locals_reader = body.get_locals_reader().map_err(|e| validation_error(&e))?;
    for _ in 0..locals_reader.get_count() {
        let offset = locals_reader.original_position();
        let (count, ty) = locals_reader.read().map_err(|e| validation_error(&e))?;
        declared.push((offset, count, ty));
    }
    let locals: u64 = declared.iter().map(|&(_, count, _)| u64::from(count)).sum();
    let total_locals = params.saturating_add(locals);
    if total_locals > u64::from(policy.max_locals_per_function) {
        return Err(PrepareError::TooManyLocals { index, count: total_locals, max: policy.max_locals_per_function });
    }
    for (offset, count, ty) in declared {
        validator.define_locals(offset, count, ty).map_err(|e| validation_error(&e))?;
    }

    let mut max_height: u32 = 0;
    let mut operators = body.get_operators_reader().map_err(|e| validation_error(&e))?;
    while !operators.eof() {
        let (operator, offset) = operators.read_with_offset().map_err(|e| validation_error(&e))?;
        validator.op(offset, &operator).map_err(|e| validation_error(&e))?;
        operator_rules(index, &operator, policy)?;
        max_height = max_height.max(validator.operand_stack_height());
    }
    operators.finish().map_err(|e| validation_error(&e))?;
    *allocations = validator.into_allocations();

    let units = total_locals.saturating_add(u64::from(max_height)).saturating_add(FRAME_OVERHEAD);
    match u32::try_from(units) {
        Ok(units) if units <= policy.max_stack_units => Ok(units),
        _ => Err(PrepareError::FrameTooLarge { index, units, max: policy.max_stack_units }),
    }
}

/// The per-instruction rules the feature set alone does not express.
fn operator_rules(index: u32, operator: &Operator<'_>, policy: &Policy) -> Result<(), PrepareError> {
    let refused = match operator {
        Operator::TableGrow { .. } => "table.grow",
        Operator::TableFill { .. } => "table.fill",
        Operator::TableSet { .. } => "table.set",
        Operator::BrTable { targets } if targets.len() > policy.max_br_table_targets => {
            return Err(PrepareError::BrTableTooLarge { index, count: targets.len(), max: policy.max_br_table_targets });
        }
        _ => return Ok(()),
    };
    Err(PrepareError::InstructionNotAllowed { index, instruction: refused })
}

/// Names the proposal behind a validator error when it is a disabled feature, so the author
/// learns what to turn off rather than a validator's wording.
pub(crate) fn validation_error(error: &BinaryReaderError) -> PrepareError {
    let message = error.message();
    let offset = error.offset();
    const FEATURES: &[(&str, &str)] = &[
        ("relaxed SIMD support", "relaxed SIMD instructions"),
        ("SIMD support", "SIMD instructions"),
        ("shared-everything-threads", "shared-everything threads"),
        ("threads", "threads, shared memories and atomics"),
        ("tail calls", "tail calls (`return_call`)"),
        ("legacy exceptions", "exceptions"),
        ("exceptions", "exceptions"),
        ("function references", "typed function references"),
        ("gc proposal", "GC types and instructions"),
        ("gc support", "GC types and instructions"),
        ("memory64", "64-bit memories and tables (memory64)"),
        ("multiple memories", "multiple memories"),
        ("custom page sizes", "custom page sizes"),
        ("stack switching", "stack-switching instructions"),
        ("memory control", "memory-control instructions"),
        ("custom descriptors", "custom descriptors"),
    ];
    let disabled =
        message.contains("not enabled") || message.contains("must be enabled") || message.contains("not supported") || message.starts_with("multiple memories");
    if disabled && let Some(&(_, what)) = FEATURES.iter().find(|(needle, _)| message.contains(needle)) {
        return PrepareError::FeatureNotAllowed { what, offset };
    }
    PrepareError::Invalid { message: message.to_string(), offset }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{policy, wat};
    use crate::{check, prepare};

    fn refused(text: &str) -> PrepareError {
        let code = wat(text);
        let checked = check(&code, &policy());
        let prepared = prepare(&code, &policy());
        match (checked, prepared) {
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "check and prepare disagree");
                a
            }
            other => panic!("expected both check and prepare to refuse, got {other:?}"),
        }
    }

    #[test]
    fn an_import_outside_the_world_is_refused_by_name() {
        let error = refused(r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (memory 1))"#);
        assert_eq!(error, PrepareError::ImportNotAllowed { module: "wasi_snapshot_preview1".into(), name: "fd_write".into() });
        let message = error.to_string();
        assert!(message.contains("wasi_snapshot_preview1") && message.contains("fd_write"), "{message}");
    }

    #[test]
    fn an_allowed_import_passes() {
        let code = wat(r#"(module (import "env" "host" (func (param i32))) (memory 1) (func (export "f") i32.const 1 call 0))"#);
        assert_eq!(check(&code, &policy()), Ok(()));
        assert!(prepare(&code, &policy()).is_ok());
    }

    #[test]
    fn an_allowed_import_of_another_type_is_refused_with_both_types() {
        let error = refused(r#"(module (import "env" "host" (func (param i64) (result i32))) (memory 1))"#);
        assert_eq!(
            error,
            PrepareError::ImportType {
                module: "env".into(),
                name: "host".into(),
                expected: "(func (param i32))".into(),
                found: "(func (param i64) (result i32))".into()
            }
        );
    }

    #[test]
    fn an_allowed_name_imported_as_a_global_is_refused() {
        let error = refused(r#"(module (import "env" "host" (global i32)) (memory 1))"#);
        assert!(matches!(error, PrepareError::ImportNotFunction { kind: "global", .. }), "{error}");
    }

    #[test]
    fn a_start_section_is_refused() {
        let error = refused("(module (memory 1) (func $s) (start $s))");
        assert_eq!(error, PrepareError::StartSection);
    }

    #[test]
    fn simd_is_refused() {
        let error = refused("(module (memory 1) (func (result i32) v128.const i64x2 1 2 i32x4.extract_lane 0))");
        assert!(error.to_string().contains("SIMD instructions are not allowed"), "{error}");
        let error = refused("(module (memory 1) (func (param v128)))");
        assert!(error.to_string().contains("SIMD instructions are not allowed"), "{error}");
    }

    #[test]
    fn other_proposals_are_refused_by_name() {
        let cases = [
            ("(module (memory 1) (func $f return_call $f))", "tail calls"),
            ("(module (memory 1 1 shared) (func (result i32) i32.const 0 i32.atomic.load))", "threads"),
            ("(module (memory i64 1))", "memory64"),
            ("(module (memory 1) (tag))", "exceptions"),
        ];
        for (text, what) in cases {
            let error = refused(text);
            assert!(matches!(error, PrepareError::FeatureNotAllowed { .. }) && error.to_string().contains(what), "{text}: {error}");
        }
    }

    #[test]
    fn the_memory_must_be_one_defined_memory() {
        let error = refused("(module (memory 1) (memory 1))");
        assert_eq!(error, PrepareError::MemoryCount { count: 2 });
        let error = refused(r#"(module (import "env" "memory" (memory 1)))"#);
        assert_eq!(error, PrepareError::ImportNotFunction { module: "env".into(), name: "memory".into(), kind: "memory" });
        let error = refused("(module (func))");
        assert_eq!(error, PrepareError::MemoryCount { count: 0 });
    }

    #[test]
    fn a_memory_over_the_maximum_is_refused() {
        let error = refused("(module (memory 513))");
        assert_eq!(error, PrepareError::MemoryTooLarge { pages: 513, max: 512 });
        assert_eq!(check(&wat("(module (memory 512))"), &policy()), Ok(()));
    }

    #[test]
    fn a_table_over_the_maximum_is_refused() {
        let error = refused("(module (memory 1) (table 4097 funcref))");
        assert_eq!(error, PrepareError::TableTooLarge { index: 0, elements: 4097, max: 4096 });
    }

    #[test]
    fn too_many_locals_are_refused() {
        // 2 params + 1023 locals = 1025.
        let error = refused(&format!("(module (memory 1) (func (param i32 i32) (local {}) (local i64)))", "i32 ".repeat(1022)));
        assert_eq!(error, PrepareError::TooManyLocals { index: 0, count: 1025, max: 1024 });
        assert_eq!(error.to_string(), "function 0 has 1025 locals, over 1024");
    }

    #[test]
    fn too_many_params_are_refused() {
        let params = "i32 ".repeat(129);
        let error = refused(&format!("(module (memory 1) (func (param {params})))"));
        assert_eq!(error, PrepareError::TooManyParams { index: 0, count: 129, max: 128 });
    }

    #[test]
    fn too_many_functions_and_globals_are_refused() {
        let mut small = policy();
        small.max_functions = 2;
        small.max_globals = 1;
        let code = wat("(module (memory 1) (func) (func) (func))");
        assert_eq!(check(&code, &small), Err(PrepareError::TooManyFunctions { count: 3, max: 2 }));
        let code = wat("(module (memory 1) (global i32 (i32.const 0)) (global i32 (i32.const 0)))");
        assert_eq!(check(&code, &small), Err(PrepareError::TooManyGlobals { count: 2, max: 1 }));
    }

    #[test]
    fn a_large_br_table_is_refused() {
        let mut small = policy();
        small.max_br_table_targets = 2;
        let code = wat("(module (memory 1) (func (param i32) (block (block (block (local.get 0) (br_table 0 1 2 2))))))");
        assert_eq!(check(&code, &small), Err(PrepareError::BrTableTooLarge { index: 0, count: 3, max: 2 }));
    }

    #[test]
    fn table_growth_is_refused() {
        let error = refused("(module (memory 1) (table 1 funcref) (func (result i32) ref.null func i32.const 1 table.grow 0))");
        assert_eq!(error, PrepareError::InstructionNotAllowed { index: 0, instruction: "table.grow" });
        let error = refused("(module (memory 1) (table 1 funcref) (func i32.const 0 ref.null func i32.const 1 table.fill 0))");
        assert_eq!(error, PrepareError::InstructionNotAllowed { index: 0, instruction: "table.fill" });
        let error = refused("(module (memory 1) (table 1 funcref) (func i32.const 0 ref.null func table.set 0))");
        assert_eq!(error, PrepareError::InstructionNotAllowed { index: 0, instruction: "table.set" });
    }

    #[test]
    fn oversize_code_is_refused_before_parsing() {
        let mut small = policy();
        small.max_code_bytes = 16;
        let garbage = vec![0xff; 17];
        assert_eq!(check(&garbage, &small), Err(PrepareError::CodeTooLarge { size: 17, max: 16 }));
        assert_eq!(PrepareError::CodeTooLarge { size: 3_000_000, max: 2_097_152 }.to_string(), "code is 3000000 bytes, over 2097152");
    }

    #[test]
    fn garbage_is_not_a_module() {
        for garbage in [&b""[..], b"hello, world", b"\0asm\x02\0\0\0"] {
            let error = check(garbage, &policy()).err();
            assert!(matches!(&error, Some(PrepareError::NotAModule(message)) if !message.is_empty()), "{error:?}");
        }
        let error = check(b"\0asm\x01\0\0\0\x01\x05", &policy()).err();
        assert!(error.is_some_and(|e| !e.to_string().is_empty()));
    }

    #[test]
    fn a_component_is_refused() {
        let code = wat("(component)");
        assert_eq!(check(&code, &policy()), Err(PrepareError::Component));
    }

    #[test]
    fn the_reserved_name_is_refused() {
        let error = refused(r#"(module (memory 1) (func $joule-stack-limit-exceeded unreachable))"#);
        assert_eq!(error, PrepareError::ReservedName { index: 0 });
    }

    #[test]
    fn the_allowed_features_pass() {
        let code = wat(r#"(module
            (memory 1)
            (table 2 funcref)
            (global $g (mut i32) (i32.const 0))
            (data $d "abc")
            (elem $e func $f)
            (func $f (param i32 i64) (result i64 i32)
                local.get 1 local.get 0
                i32.extend8_s
                f64.const 1.5 i64.trunc_sat_f64_s drop
                i32.const 0 i32.const 0 i32.const 3 memory.init $d
                i32.const 0 i32.const 1 i32.const 1 memory.copy
                i32.const 0 i32.const 0 i32.const 1 table.init $e
                elem.drop $e
                ref.null extern drop
                i64.const 1 i64.const 2 i64.mul_wide_u drop drop
                global.get $g global.set $g))"#);
        assert_eq!(check(&code, &policy()), Ok(()));
    }

    #[test]
    fn the_cost_is_params_locals_operands_and_frame() {
        // 2 params + 3 locals + an operand stack 4 deep + 2 = 11.
        let code = wat(
            "(module (memory 1) (func (param i32 i32) (local i32 i64 f32) i32.const 1 i32.const 2 i32.const 3 i32.const 4 i32.add i32.add i32.add drop) (func))",
        );
        let analysis = analyse(&code, &policy());
        assert_eq!(analysis.map(|a| a.costs), Ok(vec![11, 2]));
    }

    #[test]
    fn a_frame_over_the_limit_is_refused() {
        let mut small = policy();
        small.max_stack_units = 10;
        let code =
            wat("(module (memory 1) (func (param i32 i32) (local i32 i32 i32) i32.const 1 i32.const 2 i32.const 3 i32.const 4 i32.add i32.add i32.add drop))");
        assert_eq!(check(&code, &small), Err(PrepareError::FrameTooLarge { index: 0, units: 11, max: 10 }));
        small.max_stack_units = u32::MAX;
        assert_eq!(check(&code, &small), Err(PrepareError::StackLimitOutOfRange(u32::MAX)));
    }
}
