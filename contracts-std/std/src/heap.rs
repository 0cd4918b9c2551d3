//! The contract's heap on wasm32: a bump allocator (feature `heap`, on by default).
//!
//! Every call runs in a fresh instance, so a call's heap only has to last that call: what
//! it allocates is given back all at once when the instance goes. Allocation is a pointer
//! bump; freeing or resizing the most recent allocation happens in place (a `Vec` that grows
//! or a temporary buffer costs nothing), and when every block is freed the heap starts
//! over; other freed blocks are left until the call ends (as ink!'s bump allocator leaves
//! all of them). A loop that keeps older blocks alive while freeing newer ones should
//! reuse its buffers.
//!
//! It uses the linear memory the module starts with (above `__heap_base`) before asking
//! for more with `memory.grow`: a contract linked with room to spare
//! (`--initial-memory`, as `joule contract build` links it) never grows its memory in a
//! typical call, which saves the grow's gas and the node the page mapping. Allocation past
//! the channel's memory limit fails the call ("memory limit exceeded").
//!
//! Contracts are single-threaded (wasm32 without threads), which is what makes the cells
//! below sound.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;

const PAGE: usize = 65_536;

/// The bump allocator. `next` is the first free byte (0 until the first allocation),
/// `last` the start of the most recent allocation, `live` the blocks not yet freed.
pub struct BumpHeap {
    next: Cell<usize>,
    last: Cell<usize>,
    live: Cell<usize>,
}

// SAFETY: a contract instance runs on one thread (wasm32-unknown-unknown has no threads).
unsafe impl Sync for BumpHeap {}

unsafe extern "C" {
    /// The first byte after the stack and static data (wasm-ld).
    static __heap_base: u8;
}

impl BumpHeap {
    pub const fn new() -> Self {
        BumpHeap {
            next: Cell::new(0),
            last: Cell::new(0),
            live: Cell::new(0),
        }
    }

    /// Make `[.., end)` addressable, growing memory if needed.
    fn reserve(end: usize) -> bool {
        let have = core::arch::wasm32::memory_size(0).saturating_mul(PAGE);
        if end <= have {
            return true;
        }
        let pages = (end - have).div_ceil(PAGE);
        core::arch::wasm32::memory_grow(0, pages) != usize::MAX
    }

    fn start(&self) -> usize {
        match self.next.get() {
            // Only the symbol's address is taken (safe since Rust 1.82).
            0 => &raw const __heap_base as usize,
            n => n,
        }
    }

    /// Whether `ptr` of `size` bytes is the most recent allocation, ending at `next`.
    fn is_last(&self, ptr: *mut u8, size: usize) -> bool {
        let p = ptr as usize;
        p == self.last.get() && p.checked_add(size) == Some(self.next.get())
    }
}

impl Default for BumpHeap {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: blocks are disjoint (each starts at or after the previous one's end, aligned as
// asked), lie in addressable memory (`reserve`), and a block is only reused once freed.
unsafe impl GlobalAlloc for BumpHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let align = layout.align();
        let Some(start) = self.start().checked_add(align - 1).map(|s| s & !(align - 1)) else {
            return core::ptr::null_mut();
        };
        let Some(end) = start.checked_add(layout.size()) else {
            return core::ptr::null_mut();
        };
        if !Self::reserve(end) {
            return core::ptr::null_mut();
        }
        self.last.set(start);
        self.next.set(end);
        self.live.set(self.live.get() + 1);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let live = self.live.get().saturating_sub(1);
        self.live.set(live);
        if live == 0 {
            // Nothing is allocated: start over (memory stays grown and addressable).
            self.next.set(0);
        } else if self.is_last(ptr, layout.size()) {
            self.next.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.is_last(ptr, layout.size()) {
            let Some(end) = (ptr as usize).checked_add(new_size) else {
                return core::ptr::null_mut();
            };
            if !Self::reserve(end) {
                return core::ptr::null_mut();
            }
            self.next.set(end);
            return ptr;
        }
        // SAFETY: the caller's layout with the new size is valid (GlobalAlloc::realloc's
        // contract); the old block stays valid until copied.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                // The old block is freed (not the most recent: it stays where it is).
                self.live.set(self.live.get().saturating_sub(1));
            }
            new
        }
    }
}
