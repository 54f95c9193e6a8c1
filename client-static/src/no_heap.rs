//! The client's "allocator", which refuses every request. ring (the AES-GCM of keyed
//! sessions' tags) declares `extern crate alloc` for its test helpers even without its
//! `alloc` feature, and a binary that links `alloc` must name a global allocator. bb-client
//! has no heap: nothing in it, bb-proto or bb-zstd allocates (they use no `alloc` API), so
//! this allocator is never called; were it called, the null it returns sends Rust's
//! allocation-error path to abort, never to a heap.

use core::alloc::{GlobalAlloc, Layout};

pub struct NoHeap;

// SAFETY: returning null is GlobalAlloc's documented way to refuse an allocation, and
// dealloc is never given a pointer this allocator returned, as it returns none.
unsafe impl GlobalAlloc for NoHeap {
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_is_refused() {
        for (size, align) in [(1, 1), (4096, 8), (1 << 20, 64)] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: the layout has a non-zero size, as GlobalAlloc::alloc requires.
            let p = unsafe { NoHeap.alloc(layout) };
            assert!(p.is_null());
        }
    }
}
