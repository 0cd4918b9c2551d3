//! The canonical ABI of the `joule:contract` world, served on the core module.
//!
//! A contract is a wit-bindgen core module; the node links its imports by their core
//! signatures and lifts and lowers their arguments itself instead of wrapping the module in
//! a component (whose shim and fixup instances doubled the cost of instantiation and whose
//! lifting allocated on every host call). What this module does is what the canonical ABI
//! specifies for the world's types, with the `utf8` string encoding and `cabi_realloc` as
//! the allocator (what wit-bindgen emits):
//!
//! - `list<u8>` and `string` travel as (pointer, length); a string must be valid UTF-8;
//! - results that do not fit one core value are written at a return pointer the caller
//!   passes, aligned to the type's alignment (4, or 8 for a record with a `u64`);
//! - lists the host returns are allocated in the guest with `cabi_realloc(0, 0, align,
//!   size)`, which runs as the guest's code and so is metered like it;
//! - `option` and `result` are a discriminant byte (0 or 1; anything else traps) followed by
//!   the payload at its alignment.
//!
//! A contract that breaks these rules (a pointer out of bounds, a misaligned return
//! pointer, a bad discriminant, invalid UTF-8) fails its call with a `trap: …` revert, as
//! it did when a component's lifting refused the same values.

use crate::exec::{StoreData, revert};
use wasmtime::{AsContextMut, Caller, Memory, TypedFunc};

pub(crate) type Cx<'a> = Caller<'a, StoreData>;

/// `cabi_realloc(old_ptr, old_len, align, new_len) -> ptr`.
pub(crate) type Realloc = TypedFunc<(i32, i32, i32, i32), i32>;

/// The running instance's memory and allocator, set once it is instantiated.
#[derive(Clone)]
pub(crate) struct Guest {
    pub memory: Memory,
    /// `None` when the module exports no `cabi_realloc`: any call that must allocate in it
    /// (arguments in, a list out) fails with a revert naming the missing export.
    pub realloc: Option<Realloc>,
}

/// The guest of the running call.
pub(crate) fn guest(cx: &mut Cx<'_>) -> wasmtime::Result<Guest> {
    cx.data().guest.clone().ok_or_else(|| wasmtime::format_err!("internal: a host function ran before the instance was set up"))
}

/// Stop the call: the contract handed the host values the canonical ABI does not allow.
pub(crate) fn abi_trap<T>(cx: &mut Cx<'_>, what: &str) -> wasmtime::Result<T> {
    revert(&mut cx.as_context_mut(), format!("trap: {what}"))
}

/// The range `ptr .. ptr + len` of the guest memory of `size` bytes, if it is inside.
pub(crate) fn range(ptr: u32, len: u32, size: usize) -> Option<std::ops::Range<usize>> {
    let start = ptr as usize;
    let end = start.checked_add(len as usize)?;
    (end <= size).then_some(start..end)
}

/// A list or string argument: check it lies in memory and return its range (the caller
/// borrows the bytes from memory, no copy).
pub(crate) fn arg(cx: &mut Cx<'_>, g: &Guest, ptr: i32, len: i32) -> wasmtime::Result<std::ops::Range<usize>> {
    match range(ptr as u32, len as u32, g.memory.data_size(&*cx)) {
        Some(r) => Ok(r),
        None => abi_trap(cx, "list pointer/length out of bounds of memory"),
    }
}

/// A list argument copied out of memory.
pub(crate) fn bytes(cx: &mut Cx<'_>, g: &Guest, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let r = arg(cx, g, ptr, len)?;
    Ok(g.memory.data(&*cx).get(r).map(<[u8]>::to_vec).unwrap_or_default())
}

/// A string argument copied out of memory (valid UTF-8 or a trap).
pub(crate) fn string(cx: &mut Cx<'_>, g: &Guest, ptr: i32, len: i32) -> wasmtime::Result<String> {
    let b = bytes(cx, g, ptr, len)?;
    match String::from_utf8(b) {
        Ok(s) => Ok(s),
        Err(_) => abi_trap(cx, "string is not valid utf-8"),
    }
}

/// A `list<list<u8>>` argument: the (pointer, length) pairs of its elements, each checked.
pub(crate) fn list_of_lists(cx: &mut Cx<'_>, g: &Guest, ptr: i32, len: i32) -> wasmtime::Result<Vec<std::ops::Range<usize>>> {
    if !(ptr as u32).is_multiple_of(4) {
        return abi_trap(cx, "list pointer is not aligned");
    }
    let Some(bytes) = (len as u32).checked_mul(8) else { return abi_trap(cx, "list pointer/length out of bounds of memory") };
    let outer = arg(cx, g, ptr, bytes as i32)?;
    let size = g.memory.data_size(&*cx);
    let mut out = Vec::with_capacity(len as usize);
    let pairs: Vec<(u32, u32)> = {
        let mem = g.memory.data(&*cx);
        mem.get(outer).unwrap_or_default().chunks_exact(8).map(|c| (le32(c, 0), le32(c, 4))).collect()
    };
    for (p, l) in pairs {
        match range(p, l, size) {
            Some(r) => out.push(r),
            None => return abi_trap(cx, "list pointer/length out of bounds of memory"),
        }
    }
    Ok(out)
}

/// An `option<T>` discriminant.
pub(crate) fn discriminant(cx: &mut Cx<'_>, d: i32) -> wasmtime::Result<bool> {
    match d {
        0 => Ok(false),
        1 => Ok(true),
        _ => abi_trap(cx, "invalid discriminant for `option`"),
    }
}

/// Check a return pointer for `size` bytes at `align` before any work is done.
pub(crate) fn ret_area(cx: &mut Cx<'_>, g: &Guest, ptr: i32, size: u32, align: u32) -> wasmtime::Result<usize> {
    if !(ptr as u32).is_multiple_of(align) {
        return abi_trap(cx, "return pointer is not aligned");
    }
    match range(ptr as u32, size, g.memory.data_size(&*cx)) {
        Some(r) => Ok(r.start),
        None => abi_trap(cx, "return pointer out of bounds of memory"),
    }
}

/// Allocate `data.len()` bytes at `align` in the guest (`cabi_realloc`, metered) and copy
/// `data` there; returns the pointer. An empty list still calls the allocator, as the
/// canonical ABI's lowering does.
pub(crate) fn alloc(cx: &mut Cx<'_>, g: &Guest, align: u32, data: &[u8]) -> wasmtime::Result<u32> {
    let Some(realloc) = &g.realloc else {
        return revert(&mut cx.as_context_mut(), "the contract does not export `cabi_realloc`, which the host needs to return data".into());
    };
    let Ok(len) = i32::try_from(data.len()) else { return abi_trap(cx, "a returned list does not fit the 32-bit address space") };
    let ptr = realloc.call(&mut *cx, (0, 0, align as i32, len))? as u32;
    if !ptr.is_multiple_of(align) {
        return abi_trap(cx, "realloc return: result not aligned");
    }
    let Some(r) = range(ptr, len as u32, g.memory.data_size(&*cx)) else { return abi_trap(cx, "realloc return: beyond end of memory") };
    if let Some(dst) = g.memory.data_mut(&mut *cx).get_mut(r) {
        dst.copy_from_slice(data);
    }
    Ok(ptr)
}

/// Write little-endian `bytes` at `at` (inside a checked return area).
pub(crate) fn put(cx: &mut Cx<'_>, g: &Guest, at: usize, bytes: &[u8]) {
    if let Some(dst) = at.checked_add(bytes.len()).and_then(|end| g.memory.data_mut(&mut *cx).get_mut(at..end)) {
        dst.copy_from_slice(bytes);
    }
}

/// Lower a `list<u8>` (or a string) into the return area at `at`: allocate, copy, and write
/// (pointer, length) there.
pub(crate) fn put_list(cx: &mut Cx<'_>, g: &Guest, at: usize, data: &[u8]) -> wasmtime::Result<()> {
    let ptr = alloc(cx, g, 1, data)?;
    let mut pair = [0u8; 8];
    pair[..4].copy_from_slice(&ptr.to_le_bytes());
    pair[4..].copy_from_slice(&(data.len() as u32).to_le_bytes());
    put(cx, g, at, &pair);
    Ok(())
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).and_then(|s| <[u8; 4]>::try_from(s).ok()).map_or(0, u32::from_le_bytes)
}

/// Layout of `result<list<u8>, string>` and `option<list<u8>>`: discriminant at 0, (pointer,
/// length) at 4; 12 bytes, aligned to 4.
pub(crate) const TAGGED_LIST_SIZE: u32 = 12;
/// Layout of `context.call-context`: three lists and a string (8 bytes each), then two
/// `u64`s; 48 bytes, aligned to 8.
pub(crate) const CALL_CONTEXT_SIZE: u32 = 48;

/// Read a `result<list<u8>, string>` an export returned at `ptr`.
pub(crate) fn read_result(memory: &Memory, store: impl wasmtime::AsContext, ptr: i32) -> Result<Result<Vec<u8>, String>, String> {
    let mem = memory.data(&store);
    if !(ptr as u32).is_multiple_of(4) {
        return Err("return pointer is not aligned".into());
    }
    let area = range(ptr as u32, TAGGED_LIST_SIZE, mem.len()).and_then(|r| mem.get(r)).ok_or("return pointer out of bounds of memory")?;
    let (tag, p, l) = (area.first().copied().unwrap_or(u8::MAX), le32(area, 4), le32(area, 8));
    let payload = range(p, l, mem.len()).and_then(|r| mem.get(r)).ok_or("list pointer/length out of bounds of memory")?.to_vec();
    match tag {
        0 => Ok(Ok(payload)),
        1 => String::from_utf8(payload).map(Err).map_err(|_| "string is not valid utf-8".into()),
        _ => Err("invalid discriminant for `result`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn ranges_stay_inside_memory_even_when_the_sum_wraps() {
        assert_eq!(range(0, 0, 0), Some(0..0));
        assert_eq!(range(10, 6, 16), Some(10..16));
        assert_eq!(range(10, 7, 16), None);
        assert_eq!(range(u32::MAX, u32::MAX, usize::MAX), Some(u32::MAX as usize..2 * u32::MAX as usize), "no u32 wrap-around");
        assert_eq!(range(u32::MAX, 2, 1 << 32), None);
    }
}
