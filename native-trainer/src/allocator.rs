//! The process allocator of the `brainmvp` binary (feature `jemalloc`, on by default): jemalloc,
//! set up so that the large activations of 3-D models reuse memory instead of faulting pages in.
//!
//! A 96³ activation is 28–450 MB, allocated and freed at every layer. glibc returns every block
//! over 32 MB to the system at once, and the next allocation faults each of its pages in again
//! (zeroed by the kernel): a 226 MB add took 182 ms that way, against 32 ms with the pages kept.
//! Here jemalloc keeps freed pages for reuse and never hands them back (`dirty_decay_ms:-1`),
//! also for blocks over 8 MiB (`oversize_threshold:0`; by default those go to an arena that
//! hands them back at once). jemalloc zeroes a reused block for `calloc` by dropping its pages
//! (`MADV_DONTNEED`), which brings the page faults back for every zero-filled tensor; so
//! [`Allocator::alloc_zeroed`] allocates and writes the zeros itself. The cost: the process's
//! resident memory stays at its peak instead of shrinking between steps. `_RJEM_MALLOC_CONF` in
//! the environment overrides the settings.

use std::alloc::{GlobalAlloc, Layout};

/// jemalloc's settings, which `main.rs` exports as jemalloc's `malloc_conf` symbol (a binary's
/// own static is always linked; it is read before `main`).
pub const JEMALLOC_CONF: &[u8] = b"oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1\0";

/// jemalloc, with zeroed allocations filled by `memset` (see the module documentation).
pub struct Allocator;

// SAFETY: every call goes to jemalloc with the caller's layout; `alloc_zeroed` zeroes exactly the
// `layout.size()` bytes jemalloc returned.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        tikv_jemallocator::Jemalloc.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let block = tikv_jemallocator::Jemalloc.alloc(layout);
        if !block.is_null() {
            std::ptr::write_bytes(block, 0, layout.size());
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        tikv_jemallocator::Jemalloc.dealloc(block, layout)
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        tikv_jemallocator::Jemalloc.realloc(block, layout, new_size)
    }
}
