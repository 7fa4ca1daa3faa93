//! The one cache hint of the crate: [`prefetch`] (the bucket merge of long pieces in
//! `bpe.rs`, the int cache of token lists in `py/convert.rs`).

/// Asks the CPU to load the cache line at `ptr` (x86_64; nothing elsewhere).
#[inline(always)]
pub fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is only a cache hint: it
        // reads nothing and cannot fault, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}
