//! Conversions between Python objects and token ids: the one cache of Python ints for token
//! lists, and reading token ids out of a Python list.
//!
//! # Design notes
//!
//! - **Why a cache.** A list of token ids built from fresh Python ints spends half of a short
//!   `encode`'s time allocating them (2 MB of English, 478k tokens: the list took ~8 ms with
//!   fresh ints); with one shared int per id it costs a reference count per token.
//! - **Bounded.** The cache has slots for ids below `min(vocabulary bound, 2^18)` (every id of
//!   GPT-2, cl100k and o200k), so a vocabulary with a special token at id 60,000,000 still has
//!   2^18 slots, not 60 M; larger ids are made on demand.
//! - **Filled per id on first use (issue 15).** The cache was built whole (every id's int, 200k
//!   for o200k) inside the first call whose ids added up to a quarter of it: the cold benchmark's
//!   0.77 MB of English (171k tokens) paid 200k int allocations in its first `encode`. Now the
//!   slots (8 bytes an id, from `alloc_zeroed`: fresh pages, untouched until an id on them is
//!   used) are null until a list first needs that id, so the first call costs its distinct ids
//!   (~20k for that text), not the vocabulary. A failed allocation (slots or an int) leaves the
//!   slot empty and raises `MemoryError` (tests/test_convert.py). The lookups are prefetched two
//!   stages ahead (the slot 32 ids ahead, its int 16 ahead): `perf` (o200k, English, warm)
//!   showed the loop waiting on the slot load and on the int's reference count line. The
//!   reference count is incremented inline (`ob_refcnt += 1`, what `Py_INCREF` is for the 3.10
//!   limited API this wheel is built for; CPython 3.12+ keep that correct for old stable-ABI
//!   extensions, PEP 683) instead of pyo3's `_Py_IncRef` call. Measured (`perf record`, 40
//!   warm `encode_ordinary` calls, o200k English 0.77 MB, load ~7): the list loop was 13.5% of
//!   the encoder's own samples (`encode_piece`), 7.8% after; fresh processes, first call, CPU
//!   time, load 7-9: list MB/s cold (numpy of the same text beside it) o200k English 36.4 (39.7),
//!   Python 43.2 (41.6), non-Latin 22.9 (25.3); cl100k 40.5 (41.1), 36.2 (45.3), 24.9 (30.9):
//!   the list now costs about what the NumPy array does (before, quiet: 30-40% cold).
//!   Not done: writing the list's items directly (`PyList_SET_ITEM` is not in the limited API:
//!   `PyList_SetItem` is a call per token, ~0.7% of those samples).
//! - **Reading token lists in place (issue 15, decode).** `PyList_GetItem` +
//!   `PyLong_AsUnsignedLong` were 32% of a warm gpt2 non-Latin decode (620k tokens). Where the
//!   interpreter's list and `int` layouts are known and checked against the C API once
//!   ([`int_layout`]: 64-bit CPython 3.10-3.14), an exact `int` of one digit is read in place
//!   and every other item through the C API as before (same values, same errors); the int
//!   objects are prefetched 16 items ahead. The loop is then bound by loading the scattered
//!   int objects (~20 MB for 620k fresh ints). Measured with the decode changes of that step:
//!   gpt2 non-Latin decode 2.13x -> 2.70x tiktoken (`benches/decode_ratio.py`).
//! - **Decode (issue 15).** Profiled with `perf` on 1.9 MB of non-Latin text (cl100k, 827k
//!   tokens): checking the bytes with `String::from_utf8` before Python's decoder made the `str`
//!   was 14% of `decode` (the bytes were validated twice; now `PyUnicode_DecodeUTF8(...,
//!   "replace")` alone), and `PyLong_Check` per item 5% (a function call under the stable ABI:
//!   the int is now read first, its type checked only when that fails). A/B in one process, CPU
//!   time, interleaved with tiktoken, 1 MB texts, load average 21: non-Latin 1.52/1.41/1.24x
//!   tiktoken (gpt2/cl100k/o200k) before, 2.36/2.14/1.81x after; English 3.02/2.64/2.92x before,
//!   3.55/2.80/2.91x after; Python source 2.47/2.39/2.64x before, 2.77/2.53/2.90x after.
//!   Tried and dropped: writing each token's bytes as its id is read (no `Vec` of ids in
//!   between, GIL held): slower, English 2.61/1.83/2.08x, non-Latin 2.16/1.99/1.84x (the opaque
//!   FFI call per item keeps the decoder's state from staying in registers). What is left is
//!   mostly `PyLong_AsUnsignedLong` and `PyList_GetItem` (function calls per token under the
//!   stable ABI) and Python's UTF-8 decoder, which tiktoken pays too. Later: the id table and
//!   the text for Python were reworked (`encoding/decode.rs`'s notes); a 1-D NumPy array of
//!   integers is read here without `tolist` (a list of Python ints, ~1.5 ms a MB of text);
//!   ids in it that are not token ids go through `tolist` and the list path, for the same
//!   errors. Not tried: prefetching the int objects. The same ids as cached ints decode within
//!   7% of fresh ints made in order, and one int repeated only 27% faster (its table entry is
//!   hot too): the ints' cache misses are not where the time goes.
//! - **Reading a long `str` (issue 15, str room).** `PyUnicode_AsUTF8AndSize` (pyo3's
//!   `PyBackedStr`) builds the UTF-8 of a non-ASCII `str` and caches it on the `str` for its
//!   lifetime: `encode_to_numpy` of 20 MB peaked at tokens + the whole text (cl100k "unicode"
//!   38.1 MB against a 37.1 MB budget). [`for_each_str_part`] reads a `str` past 2 Mi characters
//!   a chunk (1 Mi characters) at a time through `PyUnicode_Substring` + `PyUnicode_AsUTF8String`
//!   (freed after) and hands it over up to its last safe cut (`crate::pretok::cut`, the corpus'
//!   and training's rule; one owner), so the parts encode to the tokens of the whole (tests cut
//!   every few characters against tiktoken). ASCII `str`s (`str.isascii`, O(1)) are read whole:
//!   their characters are their UTF-8, no copy. Measured (`benches/bench_memory.py`, 20 MB, load
//!   6-9): extra MB over the baseline / budget, "unicode" text: gpt2 35.2/55.6, p50k 23.5/42.5,
//!   cl100k 18.7/37.1 (was 38.1), o200k 19.0/37.4; every "ascii" cell the same as its "unicode"
//!   one. Cost: CPU time of `encode_to_numpy` on 6 M characters of mostly-ASCII text with some
//!   non-ASCII (cl100k, A/B in one process, fresh `str` each round, load 9-11): 1.07x the
//!   whole-text read with 1 Mi-character chunks, 1.10x with 256 Ki (the substring copy and a
//!   second UTF-8 scan); 1.03x for 3 M characters of non-Latin text (o200k). Texts of at most
//!   2 Mi characters (every cold-benchmark call) are read whole as before. Left: pure CJK text
//!   has no safe cut (the rule reads ASCII context only), so it is read in doubling chunks and
//!   ends whole (no saving, but nothing cached on the `str`); a cut rule for a `\n` between
//!   non-ASCII non-space characters would cover it.
//! - **Tried and dropped: reading a batch while encoding it (issue 15).** For a `list` of `str`
//!   past 256 Ki characters, `encode_batch_to_numpy` started the flat encoder on a thread of its
//!   own at once (blocks planned by characters) while the GIL-holding thread converted the
//!   `str`s to UTF-8 in order (workers waited on a condvar for a document not read yet; woken
//!   every 32 Ki characters), then released the GIL and joined. Exact (tests), CPU time
//!   unchanged (cl100k non-Latin, 2 MB in 1-10 KB documents, 2 threads: 85.7 vs 85.8 ms), but the
//!   wall time was worse than reading the list first, in every interleaved A/B (list streamed vs
//!   a tuple of the same fresh `str`s, 7-11 rounds, medians, load 6-8 on 2 cores): 79.0 vs 66.5,
//!   64.7 vs 60.2, 98.6 vs 83.6 ms (o200k English 1.38x vs 1.88x one thread); again at load 2.5:
//!   49.3 vs 48.5, 52.8 vs 47.5, 48.9 vs 45.1 ms (o200k non-Latin 79.6 vs 78.8). Not understood in
//!   the time left (a third runnable thread on 2 busy cores, the coarse wake-ups, blocks planned
//!   by characters being a third of their bytes for non-Latin text are candidates); to be
//!   measured on a quiet machine before trying again.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

use numpy::{PyArray1, PyArrayMethods, PyUntypedArray};
use pyo3::exceptions::PyOverflowError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyList, PyString};

use crate::vocab::Rank;

/// The most ids any cache holds.
const CACHE_CAP: usize = 1 << 18;

/// Python ints for the ids below a bound, shared by every token list a tokenizer returns: one
/// slot per id, filled the first time a list needs that id (see the module notes).
pub(super) struct IntCache {
    /// How many ids (from 0) the cache has slots for.
    size: usize,
    /// The slots, allocated by the first list (empty if they could not be allocated: every id
    /// is then made on demand).
    slots: OnceLock<Slots>,
}

/// One slot per id: null, or a strong reference to that id's int (owned by the cache).
struct Slots(Box<[AtomicPtr<ffi::PyObject>]>);

impl Slots {
    /// `n` null slots, zeroed by the allocator (fresh pages from the system are not touched
    /// until an id on them is first used), or no slots if they cannot be allocated.
    fn new(n: usize) -> Slots {
        let Ok(layout) = std::alloc::Layout::array::<AtomicPtr<ffi::PyObject>>(n) else {
            return Slots(Box::new([]));
        };
        if layout.size() == 0 {
            return Slots(Box::new([]));
        }
        // SAFETY: the layout has a non-zero size (checked above).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Slots(Box::new([]));
        }
        // SAFETY: `ptr` is a live allocation of `layout`, `Layout::array` of `n` slots, which is
        // the layout `Box<[AtomicPtr<_>]>` frees with; all-zero bytes are a valid `AtomicPtr`
        // (it has the representation of `*mut T`, and zero is the null pointer).
        let slots = unsafe {
            Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                ptr.cast::<AtomicPtr<ffi::PyObject>>(),
                n,
            ))
        };
        Slots(slots)
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        if self
            .0
            .iter()
            .all(|slot| slot.load(Ordering::Relaxed).is_null())
        {
            return;
        }
        // The cache lives in a Python object (a tokenizer), dropped by its deallocator with
        // the interpreter attached; `attach` then costs a check.
        Python::attach(|_py| {
            for slot in self.0.iter() {
                let int = slot.swap(std::ptr::null_mut(), Ordering::Relaxed);
                if !int.is_null() {
                    // SAFETY: the interpreter is attached; a non-null slot holds a strong
                    // reference the cache owns, swapped out here, so released exactly once.
                    unsafe { ffi::Py_DECREF(int) };
                }
            }
        });
    }
}

impl IntCache {
    /// A cache for ids below `bound` (at most [`CACHE_CAP`] of them are cached).
    pub(super) fn new(bound: usize) -> Self {
        IntCache {
            size: bound.min(CACHE_CAP),
            slots: OnceLock::new(),
        }
    }

    /// A new reference to the int of `id`: the cached one, made and cached on first use, or
    /// (past the cache) a fresh one.
    #[inline]
    fn int(
        &self,
        py: Python<'_>,
        slots: &[AtomicPtr<ffi::PyObject>],
        id: Rank,
    ) -> PyResult<*mut ffi::PyObject> {
        let Some(slot) = slots.get(id as usize) else {
            return Ok(new_int(py, u64::from(id))?.into_ptr());
        };
        let int = slot.load(Ordering::Acquire);
        if int.is_null() {
            return fill(py, slot, id);
        }
        // SAFETY: a non-null slot holds a live int the cache keeps a reference to; the GIL is
        // held (`py`), so its reference count may be changed. Inline, as the 3.10 limited API's
        // `Py_INCREF` does (this wheel's ABI; later CPythons keep it correct, immortal objects
        // included: PEP 683); pyo3 calls `_Py_IncRef` instead (see the module notes).
        unsafe { (*int).ob_refcnt += 1 };
        Ok(int)
    }

    /// A new Python list of the ids.
    pub(super) fn list<'py>(&self, py: Python<'py>, ids: &[Rank]) -> PyResult<Bound<'py, PyList>> {
        let slots: &[AtomicPtr<ffi::PyObject>] =
            &self.slots.get_or_init(|| Slots::new(self.size)).0;
        let list = new_list(py, ids.len())?;
        for (i, &id) in ids.iter().enumerate() {
            // Two stages ahead: the slot of a later id, then the int in the slot of a nearer one
            // (its reference count is written below); see the module notes.
            if let Some(&far) = ids.get(i + 2 * AHEAD) {
                prefetch(slots.get(far as usize).map(|s| s as *const AtomicPtr<_>));
            }
            if let Some(&near) = ids.get(i + AHEAD) {
                let int = slots.get(near as usize).map(|s| s.load(Ordering::Relaxed));
                prefetch(int.filter(|p| !p.is_null()).map(|p| p.cast_const()));
            }
            let int = self.int(py, slots, id)?;
            // SAFETY: `i < len(list)`; PyList_SetItem steals the new reference `int` and fails
            // only for a bad index or a non-list, neither possible here.
            if unsafe { ffi::PyList_SetItem(list.as_ptr(), i as ffi::Py_ssize_t, int) } != 0 {
                return Err(PyErr::fetch(py));
            }
        }
        Ok(list)
    }

    /// A new Python list of lists of ids.
    pub(super) fn lists<'py>(
        &self,
        py: Python<'py>,
        batch: &[Vec<Rank>],
    ) -> PyResult<Bound<'py, PyList>> {
        list_of(py, batch.len(), |i| {
            self.list(py, batch.get(i).map(Vec::as_slice).unwrap_or_default())
        })
    }
}

/// How many ids ahead of the one converted its int is prefetched (its slot twice as far).
const AHEAD: usize = 16;

/// A cache hint to load the line at `ptr`.
#[inline(always)]
fn prefetch<T>(ptr: Option<*const T>) {
    if let Some(ptr) = ptr {
        crate::hint::prefetch(ptr);
    }
}

/// Makes the int of `id`, stores it in its (empty) slot and returns a new reference to it.
#[cold]
fn fill(py: Python<'_>, slot: &AtomicPtr<ffi::PyObject>, id: Rank) -> PyResult<*mut ffi::PyObject> {
    let int = new_int(py, u64::from(id))?.into_ptr();
    // The cache's reference, then the caller's.
    // SAFETY: `int` is a live int just made, the GIL is held.
    unsafe { ffi::Py_INCREF(int) };
    match slot.compare_exchange(
        std::ptr::null_mut(),
        int,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Ok(int),
        Err(cached) => {
            // Another thread filled the slot first (only possible without a GIL): use its int.
            // SAFETY: `int` holds the two references taken above, both released here; `cached`
            // is a live int the cache keeps a reference to.
            unsafe {
                ffi::Py_DECREF(int);
                ffi::Py_DECREF(int);
                ffi::Py_INCREF(cached);
            }
            Ok(cached)
        }
    }
}

/// A new Python int, or the `MemoryError` Python raised (pyo3's own constructors panic on a null
/// pointer, "PyObject pointer is null", when the allocation fails under a memory cap).
fn new_int(py: Python<'_>, id: u64) -> PyResult<Bound<'_, PyInt>> {
    // SAFETY: the GIL is held; PyLong_FromUnsignedLongLong returns a new reference, or NULL with
    // an exception set, which `from_owned_ptr_or_err` turns into that exception.
    let int = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyLong_FromUnsignedLongLong(id)) }?;
    // SAFETY: PyLong_FromUnsignedLongLong returns an int.
    Ok(unsafe { int.cast_into_unchecked() })
}

/// A new list of `n` NULL slots (the list deallocator accepts them, so a list dropped before
/// every slot is set is freed cleanly).
fn new_list(py: Python<'_>, n: usize) -> PyResult<Bound<'_, PyList>> {
    let len = ffi::Py_ssize_t::try_from(n)
        .map_err(|_| PyOverflowError::new_err(format!("{n} tokens do not fit a Python list")))?;
    // SAFETY: the GIL is held; PyList_New returns a new list of `len` NULL slots, or NULL with
    // an exception set.
    let list = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyList_New(len)) }?;
    // SAFETY: PyList_New returns a list.
    Ok(unsafe { list.cast_into_unchecked() })
}

/// A new list of `n` items made by `item`, every allocation checked.
fn list_of<'py, T>(
    py: Python<'py>,
    n: usize,
    mut item: impl FnMut(usize) -> PyResult<Bound<'py, T>>,
) -> PyResult<Bound<'py, PyList>> {
    let list = new_list(py, n)?;
    for i in 0..n {
        let value = item(i)?;
        // SAFETY: `i < len`; PyList_SetItem steals the reference (`into_ptr`) and fails only
        // for a bad index or a non-list, neither possible here.
        if unsafe { ffi::PyList_SetItem(list.as_ptr(), i as ffi::Py_ssize_t, value.into_ptr()) }
            != 0
        {
            return Err(PyErr::fetch(py));
        }
    }
    Ok(list)
}

/// Token ids from a Python list (read through the C API: ~4 ns a token instead of ~17 ns with
/// `extract`), a 1-D NumPy array of integers, or any other sequence.
pub(super) fn extract_tokens(tokens: &Bound<'_, PyAny>) -> PyResult<Vec<Rank>> {
    let py = tokens.py();
    let Ok(list) = tokens.cast::<PyList>() else {
        if tokens.cast::<PyUntypedArray>().is_ok() {
            if let Some(ids) = array_tokens(tokens) {
                return Ok(ids);
            }
            // Another dtype, or an id that is not a token id (negative, 2**32 or more): read
            // through `tolist` as before, which raises the same errors as for a list.
            return extract_tokens(&tokens.call_method0("tolist")?);
        }
        return tokens.extract();
    };
    let mut out = Vec::with_capacity(list.len());
    if let Some(tag) = int_layout(py) {
        return list_ints(list, tag, out);
    }
    for i in 0..list.len() {
        // SAFETY: the GIL is held; PyList_GetItem checks the index and returns a borrowed
        // reference or NULL. PyLong_AsUnsignedLong runs no Python code for an int, so the list
        // cannot change under us; anything else goes through `extract` on an owned reference.
        let item = unsafe { ffi::PyList_GetItem(list.as_ptr(), i as ffi::Py_ssize_t) };
        if item.is_null() {
            return Err(PyErr::fetch(py));
        }
        // SAFETY: `item` is a valid borrowed reference.
        out.push(unsafe { item_id(py, item) }?);
    }
    Ok(out)
}

/// The token id of one item of a list, through the C API.
///
/// # Safety
/// The GIL is held and `item` is a valid (borrowed) reference.
unsafe fn item_id(py: Python<'_>, item: *mut ffi::PyObject) -> PyResult<Rank> {
    // The int is read first and its type checked only when that fails: under the stable
    // ABI `PyLong_Check` is a function call (`PyType_GetFlags`), 5% of a decode.
    // SAFETY: `item` is a valid borrowed reference; PyLong_AsUnsignedLong accepts only ints
    // (no `__index__`: it runs no Python code) and sets TypeError for anything else.
    let value = unsafe { ffi::PyLong_AsUnsignedLong(item) };
    if value == std::os::raw::c_ulong::MAX {
        if let Some(err) = PyErr::take(py) {
            // SAFETY: `item` is a valid reference.
            if unsafe { ffi::PyLong_Check(item) } != 0 {
                return Err(err);
            }
            // Not an int (a NumPy integer, say): `extract`, which also words the error.
            // SAFETY: `item` is a valid borrowed reference.
            return unsafe { Bound::from_borrowed_ptr(py, item) }.extract::<Rank>();
        }
    }
    Rank::try_from(value).map_err(|_| {
        PyOverflowError::new_err(format!(
            "token id {value} is out of range (ids are below 2**32)"
        ))
    })
}

/// The word after an object's header of an `int` of one digit (a value in `1..2**30`), where
/// this interpreter's `int` layout is known and checked (see [`int_layout`]).
static INT_LAYOUT: std::sync::OnceLock<Option<isize>> = std::sync::OnceLock::new();

/// Reading ints without a call per item (issue 15: `PyList_GetItem` + `PyLong_AsUnsignedLong`
/// were 32% of a gpt2 non-Latin decode of 620k tokens, ~4.5 ns a token). The limited API has no
/// inline accessors for either, so where the interpreter is a CPython whose layouts are known
/// (64-bit; 3.10-3.11: `ob_size` then 30-bit digits; 3.12-3.14: `lv_tag` = digits << 3 | sign,
/// then the digits; a list's `ob_item` after its `ob_size`), an exact `int` of one digit is
/// read in place and every other item (0, larger ints, `bool`, NumPy integers, anything else)
/// through the C API as before. The layouts are checked once against the C API on known values
/// (a mismatch, a 15-bit-digit build, or another version: the C API for every item).
/// Returns the one-digit tag.
fn int_layout(py: Python<'_>) -> Option<isize> {
    *INT_LAYOUT.get_or_init(|| {
        if cfg!(not(target_pointer_width = "64")) {
            return None;
        }
        let version = py.version_info();
        let tag = match (version.major, version.minor) {
            (3, 10..=11) => 1,
            (3, 12..=14) => 8,
            _ => return None,
        };
        let one_digit: [u64; 7] = [1, 2, 255, 50_256, 199_997, 123_456_789, (1 << 30) - 1];
        let other: [i64; 5] = [0, 1 << 30, 1 << 40, -1, -50_256];
        let mut items = Vec::new();
        for value in one_digit {
            let int = value.into_pyobject(py).ok()?.into_any();
            // SAFETY: `int` is a live `int` object (the GIL is held).
            if unsafe { read_int(int.as_ptr(), tag) } != Some(value as Rank) {
                return None;
            }
            items.push(int);
        }
        for value in other {
            let int = value.into_pyobject(py).ok()?.into_any();
            // SAFETY: as above.
            if unsafe { read_int(int.as_ptr(), tag) }.is_some() {
                return None;
            }
            items.push(int);
        }
        let ok = true.into_pyobject(py).ok()?.to_owned().into_any();
        // SAFETY: as above (`True` is a `bool`, not an exact `int`: never read in place).
        if unsafe { read_int(ok.as_ptr(), tag) }.is_some() {
            return None;
        }
        let list = PyList::new(py, &items).ok()?;
        for (i, item) in items.iter().enumerate() {
            // SAFETY: `list` is a live list of `items.len()` items (the GIL is held).
            if unsafe { list_item(list.as_ptr(), i) } != item.as_ptr() {
                return None;
            }
        }
        Some(tag)
    })
}

/// The value of `item` if it is an exact `int` of one digit (else `None`).
///
/// # Safety
/// The GIL is held, `item` is a live object, and `tag` is from [`int_layout`] (or being checked
/// there): a CPython on a 64-bit target, whose objects start with a reference count and a type
/// pointer (the stable ABI's header), and whose exact `int`s have at least 16 more bytes.
unsafe fn read_int(item: *mut ffi::PyObject, tag: isize) -> Option<Rank> {
    // SAFETY: `item` is live; its type pointer is part of the stable ABI's object header.
    if unsafe { ffi::Py_TYPE(item) } != std::ptr::addr_of_mut!(ffi::PyLong_Type) {
        return None;
    }
    let base = item.cast::<u8>();
    // SAFETY: an exact `int` is at least header (16 bytes) + size or tag word (8) + one digit
    // (4) long on the versions `int_layout` accepts; the reads are aligned (objects are).
    let word = unsafe { base.add(16).cast::<isize>().read() };
    if word != tag {
        return None;
    }
    // SAFETY: as above: the tag says the int has one digit, stored right after the word.
    Some(unsafe { base.add(24).cast::<u32>().read() })
}

/// The `i`-th item of a list, in place (`ob_item[i]`).
///
/// # Safety
/// The GIL is held, `list` is a live list (its exact type or a subclass) of more than `i`
/// items, and the layout was accepted by [`int_layout`] (`ob_item` after the 24-byte
/// variable-size header).
unsafe fn list_item(list: *mut ffi::PyObject, i: usize) -> *mut ffi::PyObject {
    // SAFETY: `ob_item` is at offset 24 of a list (see above) and points to its `len` items.
    unsafe {
        let items = list
            .cast::<u8>()
            .add(24)
            .cast::<*mut *mut ffi::PyObject>()
            .read();
        items.add(i).read()
    }
}

/// [`extract_tokens`] of a list where the `int` layout is known (see [`int_layout`]).
fn list_ints(list: &Bound<'_, PyList>, tag: isize, mut out: Vec<Rank>) -> PyResult<Vec<Rank>> {
    let py = list.py();
    let mut i = 0;
    while i < list.len() {
        let len = list.len();
        while i < len {
            // SAFETY: the GIL is held and `i < len`: no Python code has run since `len` was
            // read (the in-place reads run none), so the list still has `len` items.
            let item = unsafe { list_item(list.as_ptr(), i) };
            if i + AHEAD < len {
                // The ints are scattered objects: their loads were 40% of this loop (`perf`,
                // gpt2 non-Latin decode); the one `AHEAD` items on is asked for now
                // (the int cache's distance).
                // SAFETY: as above, `i + AHEAD < len`.
                crate::hint::prefetch(unsafe { list_item(list.as_ptr(), i + AHEAD) });
            }
            // SAFETY: `item` is a live item of the list; `tag` is from `int_layout`.
            match unsafe { read_int(item, tag) } {
                Some(value) => out.push(value),
                None => {
                    // SAFETY: `item` is a live item; the owned reference keeps it alive even
                    // if `extract` runs Python code (`__index__`) that changes the list.
                    let item = unsafe { Bound::from_borrowed_ptr(py, item) };
                    // SAFETY: `item` is a valid reference (owned here).
                    out.push(unsafe { item_id(py, item.as_ptr()) }?);
                    i += 1;
                    // The list's length is read again before the next item.
                    break;
                }
            }
            i += 1;
        }
    }
    Ok(out)
}

/// The ids of a 1-D NumPy array of integers, when every one is a valid `u32` (else `None`).
fn array_tokens(tokens: &Bound<'_, PyAny>) -> Option<Vec<Rank>> {
    macro_rules! from_dtypes {
        ($($t:ty),*) => {$(
            if let Ok(array) = tokens.cast::<PyArray1<$t>>() {
                let array = array.try_readonly().ok()?;
                let view = array.as_array();
                let mut ids = Vec::new();
                ids.try_reserve_exact(view.len()).ok()?;
                for &id in view.iter() {
                    ids.push(Rank::try_from(id).ok()?);
                }
                return Some(ids);
            }
        )*};
    }
    from_dtypes!(u32, i64, i32, u64, u16, i16, u8, i8);
    None
}

/// Characters of a long non-ASCII `str` converted to UTF-8 at a time (see [`for_each_str_part`]);
/// changed only by the tests (`_fastllm._set_str_chunk_chars`).
static STR_CHUNK_CHARS: AtomicUsize = AtomicUsize::new(1 << 20);

/// Sets the characters converted at a time for a long `str` (at least 2) and returns the previous
/// value: a test hook, so that short test texts are cut in many places.
#[pyfunction]
#[pyo3(name = "_set_str_chunk_chars")]
pub(super) fn set_str_chunk_chars(chars: usize) -> usize {
    STR_CHUNK_CHARS.swap(chars.max(2), Ordering::Relaxed)
}

/// Calls `f` on the UTF-8 of `text`, in order, whole or in parts that together are `text`.
///
/// A short or ASCII `str` is one part: its UTF-8 (an ASCII `str`'s own characters, no copy).
/// A long non-ASCII one, when `cuttable` (the encoding's pieces survive safe cuts, see
/// `crate::pretok::cut`), is read a chunk of characters at a time (`PyUnicode_Substring`, then
/// its UTF-8 as a `bytes`, both freed after), and each chunk is handed over up to its last safe
/// cut in its second half (a chunk without one is read again twice as long; the last is handed
/// over whole). So the parts encode to the tokens of the whole, and the UTF-8 of the whole `str`
/// is never held: `PyUnicode_AsUTF8AndSize` would build it and cache it on the `str` for the
/// `str`'s lifetime (20 MB of text: 20 MB more at the peak, and after). See `encoding.rs`'s notes.
pub(super) fn for_each_str_part(
    text: &Bound<'_, PyString>,
    cuttable: bool,
    mut f: impl FnMut(&str) -> PyResult<()>,
) -> PyResult<()> {
    let py = text.py();
    let chunk = STR_CHUNK_CHARS.load(Ordering::Relaxed).max(2);
    // SAFETY: `text` is a live str and the GIL is held.
    let len = unsafe { ffi::PyUnicode_GetLength(text.as_ptr()) };
    let len = usize::try_from(len).map_err(|_| PyErr::fetch(py))?;
    if !cuttable
        || len <= 2 * chunk
        || text
            .call_method0(pyo3::intern!(py, "isascii"))?
            .is_truthy()?
    {
        return f(text.to_str()?);
    }
    let (mut start, mut want) = (0usize, chunk);
    while start < len {
        let end = start.saturating_add(want).min(len);
        let part = utf8_of(text, start, end)?;
        let bytes = part.as_bytes();
        // SAFETY: `PyUnicode_AsUTF8String` (strict: a lone surrogate raises
        // `UnicodeEncodeError`) returns valid UTF-8.
        let chars = unsafe { std::str::from_utf8_unchecked(bytes) };
        if end == len {
            return f(chars);
        }
        let Some(cut) = crate::pretok::cut::last_safe_cut(bytes, bytes.len() / 2) else {
            want = want.saturating_mul(2);
            continue;
        };
        // A safe cut is before an ASCII byte (`\n`-cut: after the newline; word cut: the space),
        // always a character boundary.
        let head = chars
            .get(..cut)
            .ok_or_else(|| PyOverflowError::new_err("internal error: a cut inside a character"))?;
        f(head)?;
        // Characters are the bytes that do not continue a UTF-8 sequence.
        start += head.bytes().filter(|&b| (b as i8) >= -0x40).count();
        want = chunk;
    }
    Ok(())
}

/// The UTF-8 of characters `start..end` of `text`, as a new `bytes` (nothing cached on `text`).
fn utf8_of<'py>(
    text: &Bound<'py, PyString>,
    start: usize,
    end: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let py = text.py();
    let (start, end) = (
        ffi::Py_ssize_t::try_from(start)?,
        ffi::Py_ssize_t::try_from(end)?,
    );
    // SAFETY: the GIL is held, `text` is a live str and `0 <= start <= end <= len(text)`;
    // PyUnicode_Substring returns a new reference, or NULL with an exception set.
    let sub = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_Substring(text.as_ptr(), start, end))
    }?;
    // SAFETY: `sub` is a live str; PyUnicode_AsUTF8String returns a new reference to a bytes, or
    // NULL with an exception set (UnicodeEncodeError for a lone surrogate).
    let bytes =
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_AsUTF8String(sub.as_ptr())) }?;
    // SAFETY: PyUnicode_AsUTF8String returns a bytes.
    Ok(unsafe { bytes.cast_into_unchecked() })
}
