//! The stack-depth instrumentation: a mutable global counts the stack units of the active
//! calls; every defined function adds its cost at entry, traps (by calling the added
//! [`STACK_LIMIT_FUNCTION`]) when the count passes the limit, and subtracts its cost on exit.
//!
//! Instrumenting function entry rather than call sites covers direct calls, `call_indirect`
//! and calls from the host into exports alike, with no thunks and no renumbering: the new
//! function and global are appended after all existing ones, so no index shifts.

use std::convert::Infallible;

use wasm_encoder::reencode::{Error as ReencodeError, Reencode, RoundtripReencoder};
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, Function, FunctionSection, GlobalSection, GlobalType, Instruction, Module, NameMap, NameSection, RawSection,
    TypeSection, ValType,
};
use wasmparser::{FunctionBody, KnownCustom, Name, NameSectionReader, Operator, Parser, Payload, Validator};

use crate::analyse::{Analysis, features, validation_error};
use crate::{Policy, PrepareError, STACK_LIMIT_FUNCTION};

/// A name section with [`STACK_LIMIT_FUNCTION`] merged in.
pub(crate) struct MergedNames {
    pub(crate) section: NameSection,
    /// First function the original section already gave the reserved name, if any.
    pub(crate) reserved: Option<u32>,
}

/// Re-encodes a name section with `limit_index` named [`STACK_LIMIT_FUNCTION`]: added to the
/// function-name subsection, or as a new one in its place (subsections are ordered by id).
pub(crate) fn merged_names(reader: NameSectionReader<'_>, limit_index: u32) -> Result<MergedNames, ReencodeError<Infallible>> {
    let mut section = NameSection::new();
    let mut reserved = None;
    let mut functions_written = false;
    for subsection in reader {
        let subsection = subsection?;
        if !functions_written && subsection_id(&subsection) > FUNCTION_NAMES {
            section.functions(&limit_names(NameMap::new(), limit_index));
            functions_written = true;
        }
        match subsection {
            Name::Function(map) => {
                let mut names = NameMap::new();
                for naming in map {
                    let naming = naming?;
                    if naming.name == STACK_LIMIT_FUNCTION && reserved.is_none() {
                        reserved = Some(naming.index);
                    }
                    // The added function's index is new: a stale entry for it would name it twice.
                    if naming.index != limit_index {
                        names.append(naming.index, naming.name);
                    }
                }
                section.functions(&limit_names(names, limit_index));
                functions_written = true;
            }
            other => RoundtripReencoder.parse_custom_name_subsection(&mut section, other)?,
        }
    }
    if !functions_written {
        section.functions(&limit_names(NameMap::new(), limit_index));
    }
    Ok(MergedNames { section, reserved })
}

const FUNCTION_NAMES: u8 = 1;

fn limit_names(mut names: NameMap, limit_index: u32) -> NameMap {
    names.append(limit_index, STACK_LIMIT_FUNCTION);
    names
}

/// The subsection id, from the name section's definition (and the extended-name proposal).
fn subsection_id(name: &Name<'_>) -> u8 {
    match name {
        Name::Module { .. } => 0,
        Name::Function(_) => FUNCTION_NAMES,
        Name::Local(_) => 2,
        Name::Label(_) => 3,
        Name::Type(_) => 4,
        Name::Table(_) => 5,
        Name::Memory(_) => 6,
        Name::Global(_) => 7,
        Name::Element(_) => 8,
        Name::Data(_) => 9,
        Name::Field(_) => 10,
        Name::Tag(_) => 11,
        Name::Unknown { ty, .. } => *ty,
    }
}

/// Where each known section goes in a module: its position in the binary format's order
/// (which differs from the id order for data count and tags).
fn section_order(id: u8) -> Option<u8> {
    Some(match id {
        1 => 1,   // type
        2 => 2,   // import
        3 => 3,   // function
        4 => 4,   // table
        5 => 5,   // memory
        13 => 6,  // tag
        6 => 7,   // global
        7 => 8,   // export
        8 => 9,   // start
        9 => 10,  // element
        12 => 11, // data count
        10 => 12, // code
        11 => 13, // data
        _ => return None,
    })
}

const TYPE_ORDER: u8 = 1;
const FUNCTION_ORDER: u8 = 3;
const GLOBAL_ORDER: u8 = 7;
const CODE_ORDER: u8 = 12;

/// Everything the rewrite adds, decided before any byte is written.
struct Plan {
    /// Types appended to the type section (block types and the limit function's type).
    new_types: Vec<(Vec<ValType>, Vec<ValType>)>,
    limit_type: u32,
    limit_function: u32,
    height_global: u32,
    max_units: i32,
    /// The wrapper block's type of every defined function, in order.
    block_types: Vec<BlockType>,
}

impl Plan {
    fn new(analysis: &Analysis, policy: &Policy) -> Result<Self, PrepareError> {
        let max_units = i32::try_from(policy.max_stack_units).map_err(|_| PrepareError::StackLimitOutOfRange(policy.max_stack_units))?;
        let mut plan = Plan {
            new_types: Vec::new(),
            limit_type: 0,
            limit_function: analysis.limit_function_index(),
            height_global: analysis.globals,
            max_units,
            block_types: Vec::with_capacity(analysis.function_types.len()),
        };
        plan.limit_type = plan.type_index(analysis, &[])?;
        for &type_index in &analysis.function_types {
            let results: Vec<ValType> = match analysis.types.get(usize::try_from(type_index).unwrap_or(usize::MAX)) {
                Some(Some(func_type)) => func_type.results().iter().map(|&t| RoundtripReencoder.val_type(t)).collect::<Result<_, _>>().map_err(encode_error)?,
                _ => return Err(PrepareError::Instrumentation(format!("type {type_index} is not a function type"))),
            };
            let block_type = match results.as_slice() {
                [] => BlockType::Empty,
                [single] => BlockType::Result(*single),
                _ => BlockType::FunctionType(plan.type_index(analysis, &results)?),
            };
            plan.block_types.push(block_type);
        }
        Ok(plan)
    }

    /// Index of the type `[] -> results`: the first existing one, else one appended.
    fn type_index(&mut self, analysis: &Analysis, results: &[ValType]) -> Result<u32, PrepareError> {
        let existing = analysis.types.iter().position(|t| {
            t.as_ref().is_some_and(|t| {
                t.params().is_empty()
                    && t.results().len() == results.len()
                    && t.results().iter().zip(results).all(|(&a, b)| RoundtripReencoder.val_type(a).is_ok_and(|a| &a == b))
            })
        });
        let index = match existing {
            Some(index) => index,
            None => match self.new_types.iter().position(|(p, r)| p.is_empty() && r.as_slice() == results) {
                Some(position) => analysis.types.len().saturating_add(position),
                None => {
                    self.new_types.push((Vec::new(), results.to_vec()));
                    analysis.types.len().saturating_add(self.new_types.len()).saturating_sub(1)
                }
            },
        };
        u32::try_from(index).map_err(|_| PrepareError::Instrumentation("too many types".into()))
    }

    fn append_types(&self, section: &mut TypeSection) {
        for (params, results) in &self.new_types {
            section.ty().function(params.iter().copied(), results.iter().copied());
        }
    }

    fn append_height_global(&self, section: &mut GlobalSection) {
        section.global(GlobalType { val_type: ValType::I32, mutable: true, shared: false }, &ConstExpr::i32_const(0));
    }

    /// The added function: `[] -> []`, body `unreachable`, so the trap's innermost frame is it.
    fn append_limit_function(&self, code: &mut CodeSection) {
        let mut function = Function::new([]);
        function.instruction(&Instruction::Unreachable);
        function.instruction(&Instruction::End);
        code.function(&function);
    }

    /// Rewrites one body: add the cost and check at entry, wrap the body in a block of the
    /// function's results, turn every `return` into a branch to that block, and subtract the
    /// cost after it. Branches to the function's own label keep their depth and now target the
    /// wrapper block, whose results are the function's, so they need no renumbering.
    fn instrument_function(&self, body: &FunctionBody<'_>, cost: u32, block_type: BlockType) -> Result<Function, PrepareError> {
        let cost = i32::try_from(cost).map_err(|_| PrepareError::Instrumentation(format!("cost {cost} out of range")))?;
        let mut function = RoundtripReencoder.new_function_with_parsed_locals(body).map_err(encode_error)?;
        let height = self.height_global;
        for instruction in [
            Instruction::GlobalGet(height),
            Instruction::I32Const(cost),
            Instruction::I32Add,
            Instruction::GlobalSet(height),
            Instruction::GlobalGet(height),
            Instruction::I32Const(self.max_units),
            Instruction::I32GtU,
            Instruction::If(BlockType::Empty),
            Instruction::Call(self.limit_function),
            Instruction::End,
            Instruction::Block(block_type),
        ] {
            function.instruction(&instruction);
        }
        // Blocks open inside the original body: the wrapper block is `depth` labels out.
        let mut depth: u32 = 0;
        let mut operators = body.get_operators_reader().map_err(|e| validation_error(&e))?;
        while !operators.eof() {
            let operator = operators.read().map_err(|e| validation_error(&e))?;
            match operator {
                Operator::Return => {
                    function.instruction(&Instruction::Br(depth));
                }
                Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } | Operator::TryTable { .. } | Operator::Try { .. } => {
                    depth = depth.saturating_add(1);
                    function.instruction(&RoundtripReencoder.instruction(operator).map_err(encode_error)?);
                }
                Operator::End if depth == 0 => {
                    // The body's own `end` closes the wrapper block; the function ends after the epilogue.
                    for instruction in [
                        Instruction::End,
                        Instruction::GlobalGet(height),
                        Instruction::I32Const(cost),
                        Instruction::I32Sub,
                        Instruction::GlobalSet(height),
                        Instruction::End,
                    ] {
                        function.instruction(&instruction);
                    }
                }
                Operator::End => {
                    depth = depth.saturating_sub(1);
                    function.instruction(&Instruction::End);
                }
                other => {
                    function.instruction(&RoundtripReencoder.instruction(other).map_err(encode_error)?);
                }
            }
        }
        Ok(function)
    }
}

fn encode_error(error: ReencodeError<Infallible>) -> PrepareError {
    PrepareError::Instrumentation(error.to_string())
}

/// Sections the module lacks but the instrumentation needs, emitted where they belong.
struct Missing {
    types: bool,
    functions: bool,
    globals: bool,
    code: bool,
}

impl Missing {
    /// Writes the missing sections that come before a section of order `before`.
    fn flush(&mut self, module: &mut Module, plan: &Plan, before: u8) {
        if self.types && TYPE_ORDER < before {
            let mut section = TypeSection::new();
            plan.append_types(&mut section);
            module.section(&section);
            self.types = false;
        }
        if self.functions && FUNCTION_ORDER < before {
            let mut section = FunctionSection::new();
            section.function(plan.limit_type);
            module.section(&section);
            self.functions = false;
        }
        if self.globals && GLOBAL_ORDER < before {
            let mut section = GlobalSection::new();
            plan.append_height_global(&mut section);
            module.section(&section);
            self.globals = false;
        }
        if self.code && CODE_ORDER < before {
            let mut section = CodeSection::new();
            plan.append_limit_function(&mut section);
            module.section(&section);
            self.code = false;
        }
    }
}

/// Rewrites a module that passed [`crate::check`] (its `analysis`). Sections the
/// instrumentation does not touch, custom sections included, are copied byte for byte and in
/// their order.
pub(crate) fn instrument(code: &[u8], analysis: &Analysis, policy: &Policy) -> Result<Vec<u8>, PrepareError> {
    let plan = Plan::new(analysis, policy)?;
    let mut missing = Missing {
        types: !analysis.has_type_section,
        functions: !analysis.has_function_section,
        globals: !analysis.has_global_section,
        code: !analysis.has_code_section,
    };
    let mut module = Module::new();
    let mut code_section = CodeSection::new();
    let mut code_remaining: u32 = 0;
    let mut defined: usize = 0;
    let mut names_seen = false;

    for payload in Parser::new(0).parse_all(code) {
        let payload = payload.map_err(|e| validation_error(&e))?;
        if let Some(order) = payload.as_section().and_then(|(id, _)| section_order(id)) {
            missing.flush(&mut module, &plan, order);
        }
        match payload {
            Payload::TypeSection(reader) => {
                let mut section = TypeSection::new();
                RoundtripReencoder.parse_type_section(&mut section, reader).map_err(encode_error)?;
                plan.append_types(&mut section);
                module.section(&section);
            }
            Payload::FunctionSection(reader) => {
                let mut section = FunctionSection::new();
                RoundtripReencoder.parse_function_section(&mut section, reader).map_err(encode_error)?;
                section.function(plan.limit_type);
                module.section(&section);
            }
            Payload::GlobalSection(reader) => {
                let mut section = GlobalSection::new();
                RoundtripReencoder.parse_global_section(&mut section, reader).map_err(encode_error)?;
                plan.append_height_global(&mut section);
                module.section(&section);
            }
            Payload::CodeSectionStart { count, .. } => {
                code_remaining = count;
                if code_remaining == 0 {
                    plan.append_limit_function(&mut code_section);
                    module.section(&code_section);
                }
            }
            Payload::CodeSectionEntry(body) => {
                let (Some(&cost), Some(&block_type)) = (analysis.costs.get(defined), plan.block_types.get(defined)) else {
                    return Err(PrepareError::Instrumentation(format!("function body {defined} was not analysed")));
                };
                code_section.function(&plan.instrument_function(&body, cost, block_type)?);
                defined = defined.saturating_add(1);
                code_remaining = code_remaining.saturating_sub(1);
                if code_remaining == 0 {
                    plan.append_limit_function(&mut code_section);
                    module.section(&code_section);
                }
            }
            Payload::CustomSection(reader) if matches!(reader.as_known(), KnownCustom::Name(_)) => {
                let KnownCustom::Name(names) = reader.as_known() else { continue };
                let merged = merged_names(names, plan.limit_function).map_err(|e| PrepareError::NameSection(e.to_string()))?;
                module.section(&merged.section);
                names_seen = true;
            }
            Payload::End(_) => {
                missing.flush(&mut module, &plan, u8::MAX);
                if !names_seen {
                    let mut section = NameSection::new();
                    section.functions(&limit_names(NameMap::new(), plan.limit_function));
                    module.section(&section);
                }
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    let data = code.get(range).ok_or_else(|| PrepareError::Instrumentation(format!("section {id} out of bounds")))?;
                    module.section(&RawSection { id, data });
                }
            }
        }
    }

    let output = module.finish();
    // The rewrite is only correct if its output validates with the same features; refuse
    // rather than hand the node a module it cannot run.
    Validator::new_with_features(features())
        .validate_all(&output)
        .map_err(|e| PrepareError::Instrumentation(format!("the instrumented module does not validate: {e}")))?;
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::analyse;
    use crate::prepare;
    use crate::test_support::{policy, wat};

    fn prepared(text: &str) -> Vec<u8> {
        match prepare(&wat(text), &policy()) {
            Ok(output) => output,
            Err(e) => panic!("prepare failed: {e}"),
        }
    }

    /// Each section as its id, or its name for a custom section, with its contents.
    fn sections(code: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut sections = Vec::new();
        for payload in Parser::new(0).parse_all(code) {
            let payload = payload.expect("parses");
            if let Payload::CustomSection(reader) = &payload {
                sections.push((reader.name().to_string(), reader.data().to_vec()));
            } else if let Some((id, range)) = payload.as_section() {
                sections.push((format!("#{id}"), code[range].to_vec()));
            }
        }
        sections
    }

    fn function_names(code: &[u8]) -> Vec<(u32, String)> {
        let mut names = Vec::new();
        for payload in Parser::new(0).parse_all(code) {
            if let Ok(Payload::CustomSection(reader)) = payload
                && let KnownCustom::Name(reader) = reader.as_known()
            {
                for subsection in reader {
                    if let Ok(Name::Function(map)) = subsection {
                        names.extend(map.into_iter().map(|n| n.map(|n| (n.index, n.name.to_string())).expect("naming")));
                    }
                }
            }
        }
        names
    }

    /// The operators of every defined function body, in order.
    fn bodies(code: &[u8]) -> Vec<Vec<String>> {
        let mut bodies = Vec::new();
        for payload in Parser::new(0).parse_all(code) {
            if let Ok(Payload::CodeSectionEntry(body)) = payload {
                let operators = body.get_operators_reader().expect("operators");
                bodies.push(operators.into_iter().map(|op| format!("{:?}", op.expect("operator"))).collect());
            }
        }
        bodies
    }

    const SECTIONS: &str = r#"(module
        (@custom "first" (before first) "at the start")
        (type $t (func (param i32) (result i32)))
        (import "env" "host" (func $host (param i32)))
        (func $f (type $t) local.get 0 call $g)
        (func $g (param i32) (result i32) local.get 0 i32.const 1 i32.add)
        (table 2 funcref)
        (memory 1)
        (@custom "between" (after memory) "\00\01")
        (global $sp (mut i32) (i32.const 1024))
        (export "f" (func $f))
        (export "memory" (memory 0))
        (elem (i32.const 0) $f $g)
        (data (i32.const 0) "hello")
        (@custom "component-type:test" (after data) "\00\ff\10\80 arbitrary bytes")
        (@producers (language "Rust" "1.95"))
    )"#;

    #[test]
    fn custom_and_untouched_sections_survive_byte_for_byte_in_order() {
        let input = sections(&wat(SECTIONS));
        let output = sections(&prepared(SECTIONS));
        let rewritten = ["#1", "#3", "#6", "#10", "name"];
        let kept = |sections: &[(String, Vec<u8>)]| sections.iter().filter(|(id, _)| !rewritten.contains(&id.as_str())).cloned().collect::<Vec<_>>();
        assert_eq!(kept(&output), kept(&input));
        let order = |sections: &[(String, Vec<u8>)]| sections.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
        assert_eq!(order(&output), order(&input));
        assert!(output.iter().any(|(id, data)| id == "component-type:test" && data == b"\x00\xff\x10\x80 arbitrary bytes"));
    }

    #[test]
    fn the_limit_function_is_appended_and_named() {
        // Imports come first in the index space: $host 0, $f 1, $g 2, so the new function is 3.
        let output = prepared(SECTIONS);
        let names = function_names(&output);
        assert_eq!(names, vec![(0, "host".into()), (1, "f".into()), (2, "g".into()), (3, STACK_LIMIT_FUNCTION.into())]);
        let bodies = bodies(&output);
        assert_eq!(bodies.last().map(Vec::as_slice), Some(&["Unreachable".to_string(), "End".to_string()][..]));
    }

    #[test]
    fn a_module_without_names_gets_a_name_section() {
        let output = prepared(r#"(module (memory 1) (func (export "f")))"#);
        assert_eq!(function_names(&output), vec![(1, STACK_LIMIT_FUNCTION.to_string())]);
    }

    #[test]
    fn names_without_function_names_gain_them_in_subsection_order() {
        // Only a local name: the function-name subsection must come before it.
        let output = prepared(r#"(module (memory 1) (func (param $x i32)))"#);
        assert_eq!(function_names(&output), vec![(1, STACK_LIMIT_FUNCTION.to_string())]);
    }

    #[test]
    fn a_minimal_module_gets_every_section_it_needs() {
        let output = prepared("(module (memory 1))");
        let ids: Vec<String> = sections(&output).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["#1", "#3", "#5", "#6", "#10", "name"]);
    }

    #[test]
    fn prepare_is_deterministic() {
        assert_eq!(prepared(SECTIONS), prepared(SECTIONS));
        assert_eq!(prepared(CONTROL_FLOW), prepared(CONTROL_FLOW));
    }

    #[test]
    fn entry_adds_and_exit_subtracts_the_cost() {
        // 2 params + 3 locals + 4 operands + 2 = 11; the height global is index 1 after $sp.
        let output = prepared(
            "(module (memory 1) (global $sp (mut i32) (i32.const 0)) (func (param i32 i32) (local i32 i32 i32) i32.const 1 i32.const 2 i32.const 3 i32.const 4 i32.add i32.add i32.add drop))",
        );
        let body = bodies(&output).into_iter().next().expect("a body");
        let expected_start = [
            "GlobalGet { global_index: 1 }",
            "I32Const { value: 11 }",
            "I32Add",
            "GlobalSet { global_index: 1 }",
            "GlobalGet { global_index: 1 }",
            "I32Const { value: 32768 }",
            "I32GtU",
            "If { blockty: Empty }",
            "Call { function_index: 1 }",
            "End",
            "Block { blockty: Empty }",
        ];
        assert_eq!(&body[..expected_start.len()], expected_start);
        let expected_end = ["End", "GlobalGet { global_index: 1 }", "I32Const { value: 11 }", "I32Sub", "GlobalSet { global_index: 1 }", "End"];
        assert_eq!(&body[body.len() - expected_end.len()..], expected_end);
    }

    #[test]
    fn returns_become_branches_to_the_wrapper_block() {
        let output = prepared(
            "(module (memory 1) (func (param i32) (result i32) (block (block (return (i32.const 1)))) (if (local.get 0) (then (return (i32.const 2)))) (i32.const 3) return))",
        );
        let body = bodies(&output).into_iter().next().expect("a body");
        let branches: Vec<&String> = body.iter().filter(|op| op.starts_with("Br ") || op.starts_with("Return")).collect();
        assert_eq!(branches, ["Br { relative_depth: 2 }", "Br { relative_depth: 1 }", "Br { relative_depth: 0 }"]);
        assert!(body.iter().any(|op| op == "Block { blockty: Type(I32) }"));
    }

    pub(crate) const CONTROL_FLOW: &str = r#"(module
        (type $pair (func (param i32) (result i32 i64)))
        (memory 1)
        (table 3 funcref)
        (elem (i32.const 0) $double $pair $classify)
        (func $double (param i32) (result i32) local.get 0 i32.const 2 i32.mul)
        ;; multi-value results, `return` inside nested blocks, `br` to the function label
        (func $pair (export "pair") (type $pair)
            (block $outer
                (block $inner
                    (br_if $inner (i32.eqz (local.get 0)))
                    (if (i32.eq (local.get 0) (i32.const 1))
                        (then (return (i32.const 10) (i64.const 11))))
                    (br_if 2 (i32.const 20) (i64.const 21) (i32.eq (local.get 0) (i32.const 2)))
                    (br $outer))
                (return (i32.const 30) (i64.const 31)))
            (i32.const 40) (i64.const 41))
        ;; br_table with a target at the function label, and call_indirect
        (func $classify (export "classify") (param i32) (result i32)
            (block $b
                (block $c
                    (br_table $c $b (local.get 0)))
                (return (call_indirect (param i32) (result i32) (i32.const 5) (i32.const 0))))
            (block $r (result i32)
                (i32.const 7)
                (i32.sub (local.get 0) (i32.const 1))
                (br_table $r 1 $r))
            (i32.const 100)
            i32.add)
        (func $pair_sum (export "pair_sum") (param i32) (result i64) (local i64)
            (call_indirect (type $pair) (local.get 0) (i32.const 1))
            (local.set 1)
            (i64.extend_i32_u)
            (i64.add (local.get 1)))
        (func $loop (export "count") (param i32) (result i32) (local i32)
            (loop $l
                (local.set 1 (i32.add (local.get 1) (i32.const 1)))
                (br_if $l (i32.lt_u (local.get 1) (local.get 0))))
            (local.get 1))
    )"#;

    #[test]
    fn control_flow_with_multi_value_returns_br_table_and_call_indirect_prepares_and_validates() {
        let output = prepared(CONTROL_FLOW);
        assert!(Validator::new_with_features(features()).validate_all(&output).is_ok());
        // Multi-value results get a block type `[] -> [i32 i64]`, appended to the type section.
        let mut types = Vec::new();
        for payload in Parser::new(0).parse_all(&output) {
            if let Ok(Payload::TypeSection(reader)) = payload {
                types.extend(reader.into_iter_err_on_gc_types().map(|t| t.map(|t| (t.params().to_vec(), t.results().to_vec())).expect("type")));
            }
        }
        let wrapper = format!("Block {{ blockty: FuncType({}) }}", types.len() - 1);
        assert_eq!(types.last(), Some(&(vec![], vec![wasmparser::ValType::I32, wasmparser::ValType::I64])));
        assert_eq!(bodies(&output).get(1).and_then(|body| body.get(10)), Some(&wrapper));
        let analysis = analyse(&wat(CONTROL_FLOW), &policy()).map_err(|e| e.to_string());
        assert_eq!(analysis.map(|a| a.costs.len()), Ok(5));
    }

    /// Runs instrumented code on wasmtime (a dev-dependency only) to check the count really
    /// limits the depth, at exactly the computed cost, and changes nothing else.
    mod execution {
        use super::*;
        use wasmtime::{Engine, Instance, Module as CompiledModule, Store, Trap, TypedFunc, WasmBacktrace, WasmParams, WasmResults};

        struct Running {
            store: Store<()>,
            instance: Instance,
        }

        impl Running {
            fn new(code: &[u8]) -> Self {
                let engine = Engine::default();
                let module = CompiledModule::new(&engine, code).expect("compiles");
                let mut store = Store::new(&engine, ());
                let instance = Instance::new(&mut store, &module, &[]).expect("instantiates");
                Running { store, instance }
            }

            fn func<P: WasmParams, R: WasmResults>(&mut self, name: &str) -> TypedFunc<P, R> {
                self.instance.get_typed_func(&mut self.store, name).expect("export")
            }

            fn call<P: WasmParams, R: WasmResults>(&mut self, name: &str, params: P) -> wasmtime::Result<R> {
                let func = self.func::<P, R>(name);
                func.call(&mut self.store, params)
            }
        }

        /// `down(n)` and `early(n)` recurse n times (n + 1 frames) and return n; `early` leaves
        /// through `return` and through a `br` to the function label.
        const RECURSION: &str = r#"(module
            (memory 1)
            (func $down (export "down") (param i32) (result i32)
                (if (result i32) (i32.eqz (local.get 0))
                    (then (i32.const 0))
                    (else (i32.add (call $down (i32.sub (local.get 0) (i32.const 1))) (i32.const 1)))))
            (func $early (export "early") (param i32) (result i32)
                (if (i32.eqz (local.get 0)) (then (return (i32.const 0))))
                (i32.add (call $early (i32.sub (local.get 0) (i32.const 1))) (i32.const 1))
                (br 0)))"#;

        fn assert_stack_limit_trap(result: wasmtime::Result<i32>) {
            let error = match result {
                Ok(value) => panic!("expected a stack-limit trap, got {value}"),
                Err(error) => error,
            };
            assert_eq!(error.downcast_ref::<Trap>(), Some(&Trap::UnreachableCodeReached), "{error:?}");
            let innermost = error.downcast_ref::<WasmBacktrace>().and_then(|trace| trace.frames().first()).and_then(|frame| frame.func_name());
            assert_eq!(innermost, Some(STACK_LIMIT_FUNCTION), "{error:?}");
        }

        #[test]
        fn recursion_traps_exactly_when_frames_times_cost_pass_the_limit() {
            let code = wat(RECURSION);
            let costs = analyse(&code, &policy()).expect("analyses").costs;
            for (export, cost) in [("down", costs[0]), ("early", costs[1])] {
                let frames = 10;
                let mut limited = policy();
                limited.max_stack_units = frames * cost;
                let output = prepare(&code, &limited).expect("prepares");

                // n frames fit: the call succeeds, twice, so the count went back to 0 after each.
                let mut running = Running::new(&output);
                for _ in 0..3 {
                    assert_eq!(running.call::<i32, i32>(export, (frames - 1) as i32).ok(), Some((frames - 1) as i32), "{export}");
                }
                // One frame more traps, inside the stack-limit function.
                assert_stack_limit_trap(running.call::<i32, i32>(export, frames as i32));

                // One unit less and n frames no longer fit.
                limited.max_stack_units = frames * cost - 1;
                let output = prepare(&code, &limited).expect("prepares");
                let mut running = Running::new(&output);
                assert_eq!(running.call::<i32, i32>(export, (frames - 2) as i32).ok(), Some((frames - 2) as i32), "{export}");
                assert_stack_limit_trap(running.call::<i32, i32>(export, (frames - 1) as i32));

                // Uninstrumented, the same call is fine.
                let mut original = Running::new(&code);
                assert_eq!(original.call::<i32, i32>(export, frames as i32).ok(), Some(frames as i32));
            }
        }

        #[test]
        fn instrumented_code_computes_what_the_original_does() {
            let mut original = Running::new(&wat(CONTROL_FLOW));
            let mut instrumented = Running::new(&prepared(CONTROL_FLOW));
            for n in 0..6 {
                let pair = |r: &mut Running| r.call::<i32, (i32, i64)>("pair", n).ok();
                assert_eq!(pair(&mut instrumented), pair(&mut original), "pair({n})");
                let classify = |r: &mut Running| r.call::<i32, i32>("classify", n).ok();
                assert_eq!(classify(&mut instrumented), classify(&mut original), "classify({n})");
                let pair_sum = |r: &mut Running| r.call::<i32, i64>("pair_sum", n).ok();
                assert_eq!(pair_sum(&mut instrumented), pair_sum(&mut original), "pair_sum({n})");
                let count = |r: &mut Running| r.call::<i32, i32>("count", n).ok();
                assert_eq!(count(&mut instrumented), count(&mut original), "count({n})");
            }
            assert_eq!(original.call::<i32, (i32, i64)>("pair", 1).ok(), Some((10, 11)));
            assert_eq!(original.call::<i32, (i32, i64)>("pair", 2).ok(), Some((20, 21)));
            assert_eq!(original.call::<i32, (i32, i64)>("pair", 3).ok(), Some((40, 41)));
            assert_eq!(original.call::<i32, (i32, i64)>("pair", 0).ok(), Some((30, 31)));
            assert_eq!(original.call::<i32, i32>("classify", 0).ok(), Some(10));
            assert_eq!(original.call::<i32, i32>("classify", 1).ok(), Some(107));
            assert_eq!(original.call::<i32, i32>("classify", 2).ok(), Some(7));
        }
    }
}
