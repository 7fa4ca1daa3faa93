//! Conversions between Python objects and token ids: the one cache of Python ints for token
//! lists, and reading token ids out of a Python list.
//!
//! # Design notes
//!
//! - **Why a cache.** A list of token ids built from fresh Python ints spends half of a short
//!   `encode`'s time allocating them (2 MB of English, 478k tokens: the list took ~8 ms with
//!   fresh ints); with one shared int per id it costs a reference count per token.
//! - **Bounded.** The cache holds ids below `min(vocabulary bound, 2^18)` (every id of GPT-2,
//!   cl100k and o200k), so a vocabulary with a special token at id 60,000,000 still caches 2^18
//!   ints, not 60 M; larger ids are made on demand. It is built lazily, once the ids converted so
//!   far add up to a quarter of its size, so a short text (or a few) never pays for a large
//!   vocabulary's ints, and a program that converts many ids gets the cache after a bounded cost.
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

use std::sync::atomic::{AtomicUsize, Ordering};

use numpy::{PyArray1, PyArrayMethods, PyUntypedArray};
use pyo3::exceptions::PyOverflowError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyInt, PyList};

use crate::vocab::Rank;

/// The most ids any cache holds.
const CACHE_CAP: usize = 1 << 18;

/// Python ints for the ids below a bound, shared by every token list a tokenizer returns.
pub(super) struct IntCache {
    /// How many ids (from 0) the cache holds once built.
    size: usize,
    /// Ids converted without the cache so far (decides when to build it).
    converted: AtomicUsize,
    ints: PyOnceLock<Vec<Py<PyInt>>>,
}

impl IntCache {
    /// A cache for ids below `bound` (at most [`CACHE_CAP`] of them are cached).
    pub(super) fn new(bound: usize) -> Self {
        IntCache {
            size: bound.min(CACHE_CAP),
            converted: AtomicUsize::new(0),
            ints: PyOnceLock::new(),
        }
    }

    /// The cached ints, built now if the ids converted so far (with the `n` of this call) add
    /// up to a quarter of the cache.
    fn ints(&self, py: Python<'_>, n: usize) -> Option<&Vec<Py<PyInt>>> {
        if let Some(ints) = self.ints.get(py) {
            return Some(ints);
        }
        let before = self.converted.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n).saturating_mul(4) < self.size {
            return None;
        }
        if let Some(ints) = self.ints.get(py) {
            return Some(ints);
        }
        // Built fallibly: under a memory cap a failed int allocation leaves the cache unbuilt
        // (ids are then made one by one, each checked) instead of panicking on a null pointer.
        let mut ints = Vec::new();
        ints.try_reserve_exact(self.size).ok()?;
        for id in 0..self.size as u64 {
            match new_int(py, id) {
                Ok(int) => ints.push(int.unbind()),
                Err(_) => return None,
            }
        }
        Some(self.ints.get_or_init(py, || ints))
    }

    /// A new Python list of the ids.
    pub(super) fn list<'py>(&self, py: Python<'py>, ids: &[Rank]) -> PyResult<Bound<'py, PyList>> {
        let ints = self.ints(py, ids.len());
        list_of(py, ids.len(), |i| {
            let id = ids.get(i).copied().unwrap_or(0);
            match ints.and_then(|ints| ints.get(id as usize)) {
                Some(int) => Ok(int.bind(py).clone()),
                None => new_int(py, u64::from(id)),
            }
        })
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

/// A new Python int, or the `MemoryError` Python raised (pyo3's own constructors panic on a null
/// pointer, "PyObject pointer is null", when the allocation fails under a memory cap).
fn new_int(py: Python<'_>, id: u64) -> PyResult<Bound<'_, PyInt>> {
    // SAFETY: the GIL is held; PyLong_FromUnsignedLongLong returns a new reference, or NULL with
    // an exception set, which `from_owned_ptr_or_err` turns into that exception.
    let int = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyLong_FromUnsignedLongLong(id)) }?;
    // SAFETY: PyLong_FromUnsignedLongLong returns an int.
    Ok(unsafe { int.cast_into_unchecked() })
}

/// A new list of `n` items made by `item`, every allocation checked.
fn list_of<'py, T>(
    py: Python<'py>,
    n: usize,
    mut item: impl FnMut(usize) -> PyResult<Bound<'py, T>>,
) -> PyResult<Bound<'py, PyList>> {
    let len = ffi::Py_ssize_t::try_from(n)
        .map_err(|_| PyOverflowError::new_err(format!("{n} tokens do not fit a Python list")))?;
    // SAFETY: the GIL is held; PyList_New returns a new list of `len` NULL slots (which the list
    // deallocator accepts, so an early return below frees it), or NULL with an exception set.
    let list = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyList_New(len)) }?;
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
    // SAFETY: PyList_New returns a list.
    Ok(unsafe { list.cast_into_unchecked() })
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
    for i in 0..list.len() {
        // SAFETY: the GIL is held; PyList_GetItem checks the index and returns a borrowed
        // reference or NULL. PyLong_AsUnsignedLong runs no Python code for an int, so the list
        // cannot change under us; anything else goes through `extract` on an owned reference.
        let item = unsafe { ffi::PyList_GetItem(list.as_ptr(), i as ffi::Py_ssize_t) };
        if item.is_null() {
            return Err(PyErr::fetch(py));
        }
        // The int is read first and its type checked only when that fails: under the stable
        // ABI `PyLong_Check` is a function call (`PyType_GetFlags`), 5% of a decode.
        // SAFETY: `item` is a valid borrowed reference; PyLong_AsUnsignedLong accepts only ints
        // (no `__index__`: it runs no Python code) and sets TypeError for anything else.
        let value = unsafe { ffi::PyLong_AsUnsignedLong(item) };
        if value == std::os::raw::c_ulong::MAX {
            if let Some(err) = PyErr::take(py) {
                if unsafe { ffi::PyLong_Check(item) } != 0 {
                    return Err(err);
                }
                // Not an int (a NumPy integer, say): `extract`, which also words the error.
                // SAFETY: `item` is a valid borrowed reference (checked non-null above).
                out.push(unsafe { Bound::from_borrowed_ptr(py, item) }.extract::<Rank>()?);
                continue;
            }
        }
        let value = Rank::try_from(value).map_err(|_| {
            PyOverflowError::new_err(format!(
                "token id {value} is out of range (ids are below 2**32)"
            ))
        })?;
        out.push(value);
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
