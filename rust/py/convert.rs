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

use std::sync::atomic::{AtomicUsize, Ordering};

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
        Some(self.ints.get_or_init(py, || {
            (0..self.size as u64)
                .map(|id| PyInt::new(py, id).unbind())
                .collect()
        }))
    }

    /// A new Python list of the ids.
    pub(super) fn list<'py>(&self, py: Python<'py>, ids: &[Rank]) -> PyResult<Bound<'py, PyList>> {
        match self.ints(py, ids.len()) {
            Some(ints) => PyList::new(
                py,
                ids.iter().map(|&id| match ints.get(id as usize) {
                    Some(int) => int.bind(py).clone(),
                    None => PyInt::new(py, id),
                }),
            ),
            None => PyList::new(py, ids),
        }
    }

    /// A new Python list of lists of ids.
    pub(super) fn lists<'py>(
        &self,
        py: Python<'py>,
        batch: &[Vec<Rank>],
    ) -> PyResult<Bound<'py, PyList>> {
        let lists = batch
            .iter()
            .map(|ids| self.list(py, ids))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, lists)
    }
}

/// Token ids from a Python list (read through the C API: ~4 ns a token instead of ~17 ns with
/// `extract`) or any other sequence.
pub(super) fn extract_tokens(tokens: &Bound<'_, PyAny>) -> PyResult<Vec<Rank>> {
    let py = tokens.py();
    let Ok(list) = tokens.cast::<PyList>() else {
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
        let value = if unsafe { ffi::PyLong_Check(item) } != 0 {
            let value = unsafe { ffi::PyLong_AsUnsignedLong(item) };
            if value == std::os::raw::c_ulong::MAX {
                if let Some(err) = PyErr::take(py) {
                    return Err(err);
                }
            }
            Rank::try_from(value).map_err(|_| {
                PyOverflowError::new_err(format!(
                    "token id {value} is out of range (ids are below 2**32)"
                ))
            })?
        } else {
            // SAFETY: `item` is a valid borrowed reference (checked non-null above).
            unsafe { Bound::from_borrowed_ptr(py, item) }.extract::<Rank>()?
        };
        out.push(value);
    }
    Ok(out)
}
