//! The data path's bindings: `fastllm._fastllm.SimpleTokenizerCore` (behind
//! `fastllm.SimpleTokenizer`), `token_buffer` and `window_count` (behind
//! `fastllm.sliding_windows`).

use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::{PyKeyError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyList, PyString};

use super::convert::IntCache;
use crate::error::py_repr;
use crate::simple::SimpleTokenizer;
use crate::windows;

fn type_name(item: &Bound<'_, PyAny>) -> String {
    item.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

fn short_repr(item: &Bound<'_, PyAny>) -> String {
    let text = item.repr().map(|r| r.to_string()).unwrap_or_default();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// Calls `f(index, value)` on every item of the 1-D integer sequence `seq` (named `name` in
/// errors). A non-integer item is a `ValueError` naming its position, value and type; an integer
/// beyond `i64` goes to `too_big(index, repr)`.
fn for_each_int(
    seq: &Bound<'_, PyAny>,
    name: &str,
    too_big: impl Fn(usize, String) -> PyErr,
    mut f: impl FnMut(usize, i64) -> PyResult<()>,
) -> PyResult<()> {
    let py = seq.py();
    let mut visit = |index: usize, item: Bound<'_, PyAny>| -> PyResult<()> {
        match item.extract::<i64>() {
            Ok(value) => f(index, value),
            Err(err) if err.is_instance_of::<PyOverflowError>(py) => {
                Err(too_big(index, short_repr(&item)))
            }
            Err(_) => {
                let nested =
                    item.hasattr("__len__").unwrap_or(false) && !item.is_instance_of::<PyString>();
                Err(PyValueError::new_err(if nested {
                    format!(
                        "{name} must be a 1-D sequence of integer token ids, but {name}[{index}] \
                         is a {} ({}); flatten it (or pass one row) first",
                        type_name(&item),
                        short_repr(&item)
                    )
                } else {
                    format!(
                        "{name}[{index}] is {} ({}); token ids must be integers",
                        short_repr(&item),
                        type_name(&item)
                    )
                }))
            }
        }
    };
    if let Ok(list) = seq.cast::<PyList>() {
        for (index, item) in list.iter().enumerate() {
            visit(index, item)?;
        }
    } else {
        let iter = seq.try_iter().map_err(|_| {
            PyValueError::new_err(format!(
                "{name} must be a sequence of integer token ids, got {} ({})",
                short_repr(seq),
                type_name(seq)
            ))
        })?;
        for (index, item) in iter.enumerate() {
            visit(index, item?)?;
        }
    }
    Ok(())
}

fn seq_len_hint(seq: &Bound<'_, PyAny>) -> usize {
    seq.len().unwrap_or(0)
}

/// A Python sequence of token ids as a compact `uint32` NumPy array (the token buffer of
/// `sliding_windows`). `ValueError` names the first item that is not an integer in
/// `0..=4294967295`.
#[pyfunction]
fn token_buffer<'py>(
    py: Python<'py>,
    ids: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    let mut out: Vec<u32> = Vec::with_capacity(seq_len_hint(ids));
    for_each_int(
        ids,
        "ids",
        |index, value| {
            let negative = value.starts_with('-');
            windows::token_out_of_range(index, &value, negative).into()
        },
        |index, value| {
            out.push(windows::token_u32(index, value)?);
            Ok(())
        },
    )?;
    Ok(out.into_pyarray(py))
}

/// The number of windows `sliding_windows` makes, after checking its arguments.
#[pyfunction]
fn window_count(n_tokens: usize, max_length: i64, stride: i64) -> PyResult<usize> {
    Ok(windows::window_spec(n_tokens, max_length, stride)?.n_windows)
}

#[pyclass(frozen, name = "SimpleTokenizerCore", module = "fastllm._fastllm")]
pub struct PySimpleTokenizer {
    inner: SimpleTokenizer,
    /// Python ints for the id lists (see `convert`).
    ints: IntCache,
}

impl PySimpleTokenizer {
    fn wrap(inner: SimpleTokenizer) -> Self {
        let bound = inner.id_bound();
        PySimpleTokenizer {
            inner,
            ints: IntCache::new(bound),
        }
    }

    fn id_list<'py>(&self, py: Python<'py>, ids: &[u32]) -> PyResult<Bound<'py, PyList>> {
        self.ints.list(py, ids)
    }
}

fn vocab_pairs(vocab: &Bound<'_, PyDict>) -> PyResult<Vec<(String, i64)>> {
    let mut pairs = Vec::with_capacity(vocab.len());
    for (key, value) in vocab.iter() {
        let token: String = key.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "vocab keys must be str tokens, got {} ({})",
                short_repr(&key),
                type_name(&key)
            ))
        })?;
        let id: i64 = value.extract().map_err(|_| {
            PyValueError::new_err(format!(
                "vocab[{}] = {}: token ids must be integers in 0..={}",
                py_repr(&token),
                short_repr(&value),
                crate::vocab::MAX_ID
            ))
        })?;
        pairs.push((token, id));
    }
    Ok(pairs)
}

#[pymethods]
impl PySimpleTokenizer {
    /// A tokenizer over `vocab` (`dict[str, int]`); unknown words map to `unk_token`, or raise
    /// `KeyError` when it is `None`.
    #[new]
    #[pyo3(signature = (vocab, unk_token=None))]
    fn new(py: Python<'_>, vocab: &Bound<'_, PyDict>, unk_token: Option<String>) -> PyResult<Self> {
        let pairs = vocab_pairs(vocab)?;
        let inner = py.detach(move || SimpleTokenizer::new(pairs, unk_token.as_deref()))?;
        Ok(PySimpleTokenizer::wrap(inner))
    }

    /// The book's vocabulary of `text`: sorted unique tokens, then `special_tokens`.
    #[staticmethod]
    #[pyo3(signature = (text, special_tokens, unk_token=None))]
    fn from_text(
        py: Python<'_>,
        text: PyBackedStr,
        special_tokens: Vec<String>,
        unk_token: Option<String>,
    ) -> PyResult<Self> {
        let inner =
            py.detach(|| SimpleTokenizer::from_text(&text, &special_tokens, unk_token.as_deref()))?;
        Ok(PySimpleTokenizer::wrap(inner))
    }

    #[getter]
    fn unk_token(&self) -> Option<&str> {
        self.inner.unk_token()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// `dict[str, int]` in id order (a new dict each call).
    fn vocab<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (token, id) in self.inner.vocab() {
            dict.set_item(token, id)?;
        }
        Ok(dict)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.id(token)
    }

    fn id_to_token(&self, id: i64) -> Option<&str> {
        u32::try_from(id).ok().and_then(|id| self.inner.token(id))
    }

    fn encode<'py>(&self, py: Python<'py>, text: PyBackedStr) -> PyResult<Bound<'py, PyList>> {
        let ids = py.detach(|| self.inner.encode(&text))?;
        self.id_list(py, &ids)
    }

    fn encode_to_numpy<'py>(
        &self,
        py: Python<'py>,
        text: PyBackedStr,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let ids = py.detach(|| self.inner.encode(&text))?;
        Ok(ids.into_pyarray(py))
    }

    fn decode(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<String> {
        let invalid =
            |value: String| PyKeyError::new_err(format!("Invalid token for decoding: {value}"));
        let mut tokens: Vec<u32> = Vec::with_capacity(seq_len_hint(ids));
        for_each_int(
            ids,
            "ids",
            |_, value| invalid(value),
            |_, value| {
                tokens.push(u32::try_from(value).map_err(|_| invalid(value.to_string()))?);
                Ok(())
            },
        )?;
        Ok(py.detach(|| self.inner.decode(&tokens))?)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySimpleTokenizer>()?;
    m.add("SIMPLE_SPLIT_PATTERN", crate::simple::SPLIT_PATTERN)?;
    m.add_function(wrap_pyfunction!(token_buffer, m)?)?;
    m.add_function(wrap_pyfunction!(window_count, m)?)?;
    Ok(())
}
