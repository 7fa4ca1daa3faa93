//! `fastllm._fastllm.CoreBPE`: the Rust `CoreBpe` behind the Python `fastllm.Encoding`.

use std::collections::HashMap;
use std::path::PathBuf;

use std::sync::Arc;

use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use rustc_hash::FxHashMap;

use super::convert::{extract_tokens, for_each_str_part, set_str_chunk_chars, IntCache};
use crate::bpe::PieceMemo;
use crate::encoding::{CoreBpe, SpecialSet, Text};
use crate::flat;
use crate::pretok::cut;
use crate::vocab::{self, Rank, Ranks};

#[pyclass(frozen, name = "CoreBPE", module = "fastllm._fastllm")]
pub struct PyCoreBpe {
    pub(super) inner: Arc<CoreBpe>,
    /// Python ints for the token lists (see `convert`).
    ints: IntCache,
    /// Whether text may be encoded in parts cut at safe cuts (`crate::pretok::cut`): the pattern
    /// keeps its pieces there and no special token spans one.
    cuttable: bool,
}

impl PyCoreBpe {
    fn wrap(inner: CoreBpe) -> Self {
        let bound = inner.max_token_value() as usize + 1;
        let names: Vec<&str> = inner.special_tokens().map(|(name, _)| name).collect();
        let cuttable = cut::keeps_pieces(inner.pattern()) && cut::keeps_specials(&names);
        PyCoreBpe {
            ints: IntCache::new(bound),
            cuttable,
            inner: Arc::new(inner),
        }
    }

    fn to_list<'py>(&self, py: Python<'py>, tokens: &[Rank]) -> PyResult<Bound<'py, PyList>> {
        self.ints.list(py, tokens)
    }

    fn to_lists<'py>(&self, py: Python<'py>, batch: &[Vec<Rank>]) -> PyResult<Bound<'py, PyList>> {
        self.ints.lists(py, batch)
    }
}

fn specials_map(special_tokens: HashMap<String, Rank>) -> FxHashMap<String, Rank> {
    special_tokens.into_iter().collect()
}

fn path_text(path: &std::path::Path) -> String {
    path.display().to_string()
}

impl PyCoreBpe {
    fn special_sets(
        &self,
        allowed: &Bound<'_, PyAny>,
        disallowed: &Bound<'_, PyAny>,
    ) -> PyResult<(SpecialSet, SpecialSet)> {
        // The string "all" stands for every special token (for `disallowed`: every one not
        // allowed), so the default `disallowed_special="all"` costs no set of names per call
        // (with 40 k special tokens that set made each `encode("hi")` take 0.2 s).
        let is_all = |v: &Bound<'_, PyAny>| v.extract::<PyBackedStr>().is_ok_and(|s| &*s == "all");
        let allowed = if is_all(allowed) {
            self.inner.all_specials()
        } else {
            self.special_set(allowed)?
        };
        let disallowed = if is_all(disallowed) {
            allowed.complement()
        } else {
            self.special_set(disallowed)?
        };
        Ok((allowed, disallowed))
    }

    fn special_set(&self, names: &Bound<'_, PyAny>) -> PyResult<SpecialSet> {
        let mut owned: Vec<PyBackedStr> = Vec::new();
        for item in names.try_iter()? {
            let item = item?;
            owned.push(item.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "special token names must be str, got {}",
                    item.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?);
        }
        Ok(self.inner.special_set(owned.iter().map(|s| &**s)))
    }
}

#[pymethods]
impl PyCoreBpe {
    /// Builds an encoding from a `dict[bytes, int]` of mergeable ranks.
    #[new]
    #[pyo3(signature = (mergeable_ranks, special_tokens, pat_str))]
    fn new(
        py: Python<'_>,
        mergeable_ranks: &Bound<'_, PyDict>,
        special_tokens: HashMap<String, Rank>,
        pat_str: &str,
    ) -> PyResult<Self> {
        let mut ranks = Ranks::default();
        ranks.reserve(mergeable_ranks.len());
        for (key, value) in mergeable_ranks.iter() {
            let token = key.cast::<PyBytes>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "mergeable_ranks keys must be bytes, got {}",
                    key.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?;
            ranks.insert(token.as_bytes().to_vec(), value.extract()?);
        }
        let pattern = pat_str.to_string();
        let specials = specials_map(special_tokens);
        let inner = py.detach(move || CoreBpe::new(ranks, specials, &pattern))?;
        Ok(PyCoreBpe::wrap(inner))
    }

    /// Loads a `.tiktoken` rank file, checking its sha256 when `expected_sha256` is given.
    #[staticmethod]
    #[pyo3(signature = (path, special_tokens, pat_str, expected_sha256=None))]
    fn from_tiktoken_file(
        py: Python<'_>,
        path: PathBuf,
        special_tokens: HashMap<String, Rank>,
        pat_str: &str,
        expected_sha256: Option<&str>,
    ) -> PyResult<Self> {
        let specials = specials_map(special_tokens);
        let pattern = pat_str.to_string();
        let expected = expected_sha256.map(str::to_string);
        let inner = py.detach(move || {
            let source = path_text(&path);
            let data = vocab::read_vocab_file(&source)?;
            if let Some(expected) = expected {
                vocab::verify_sha256(&data, &expected, &source)?;
            }
            let ranks = vocab::parse_tiktoken(&data, &source)?;
            CoreBpe::new(ranks, specials, &pattern)
        })?;
        Ok(PyCoreBpe::wrap(inner))
    }

    /// Builds an encoding from the contents of a `.tiktoken` file (used to unpickle).
    #[staticmethod]
    #[pyo3(signature = (data, special_tokens, pat_str))]
    fn from_tiktoken_bytes(
        py: Python<'_>,
        data: &[u8],
        special_tokens: HashMap<String, Rank>,
        pat_str: &str,
    ) -> PyResult<Self> {
        let specials = specials_map(special_tokens);
        let pattern = pat_str.to_string();
        let data = data.to_vec();
        let inner = py.detach(move || {
            let ranks = vocab::parse_tiktoken(&data, "<tiktoken bytes>")?;
            CoreBpe::new(ranks, specials, &pattern)
        })?;
        Ok(PyCoreBpe::wrap(inner))
    }

    /// Loads GPT-2's original `vocab.bpe` + `encoder.json` pair.
    #[staticmethod]
    #[pyo3(signature = (vocab_bpe_path, encoder_json_path, special_tokens, pat_str))]
    fn from_data_gym(
        py: Python<'_>,
        vocab_bpe_path: PathBuf,
        encoder_json_path: PathBuf,
        special_tokens: HashMap<String, Rank>,
        pat_str: &str,
    ) -> PyResult<Self> {
        let specials = specials_map(special_tokens);
        let pattern = pat_str.to_string();
        let inner = py.detach(move || {
            let (bpe_source, json_source) =
                (path_text(&vocab_bpe_path), path_text(&encoder_json_path));
            let bpe = vocab::read_file(&bpe_source)?;
            let json = vocab::read_file(&json_source)?;
            let ranks = vocab::parse_data_gym(&bpe, &bpe_source, &json, &json_source)?;
            CoreBpe::new(ranks, specials, &pattern)
        })?;
        Ok(PyCoreBpe::wrap(inner))
    }

    #[getter]
    fn pattern(&self) -> &str {
        self.inner.pattern()
    }

    #[getter]
    fn max_token_value(&self) -> Rank {
        self.inner.max_token_value()
    }

    #[getter]
    fn n_mergeable(&self) -> usize {
        self.inner.ranks().len()
    }

    fn special_tokens(&self) -> HashMap<String, Rank> {
        self.inner
            .special_tokens()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// The mergeable ranks as a new `dict[bytes, int]`.
    fn mergeable_ranks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (token, rank) in self.inner.ranks() {
            dict.set_item(PyBytes::new(py, token), rank)?;
        }
        Ok(dict)
    }

    /// The ranks in `.tiktoken` format.
    fn tiktoken_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let data = py.detach(|| vocab::format_tiktoken(self.inner.ranks()));
        PyBytes::new(py, &data)
    }

    // ---- encoding ----

    fn encode_ordinary<'py>(
        &self,
        py: Python<'py>,
        text: PyBackedStr,
    ) -> PyResult<Bound<'py, PyList>> {
        let tokens = py.detach(|| self.inner.encode_ordinary(&text))?;
        self.to_list(py, &tokens)
    }

    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: PyBackedStr,
        allowed_special: &Bound<'py, PyAny>,
        disallowed_special: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let (allowed, disallowed) = self.special_sets(allowed_special, disallowed_special)?;
        let tokens = py.detach(|| self.inner.encode(&text, &allowed, &disallowed))?;
        self.to_list(py, &tokens)
    }

    /// Encodes into a NumPy array. A long non-ASCII `str` is read and encoded in parts cut at
    /// safe cuts (`convert::for_each_str_part`), so the UTF-8 of the whole is never held (nor
    /// cached on the `str`); the parts share one piece memo and one output.
    fn encode_to_numpy<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyString>,
        allowed_special: &Bound<'py, PyAny>,
        disallowed_special: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<Rank>>> {
        let (allowed, disallowed) = self.special_sets(allowed_special, disallowed_special)?;
        let mut tokens: Vec<Rank> = Vec::new();
        let mut memo = PieceMemo::default();
        let mut first = true;
        for_each_str_part(text, self.cuttable, |part| {
            if std::mem::take(&mut first) {
                // At most one token a byte; pages never written are never resident. A first
                // part shorter than the text (a long non-ASCII str) grows as needed.
                let _ = tokens.try_reserve_exact(part.len() + 1);
            }
            py.detach(|| {
                self.inner
                    .encode_with(part, &allowed, &disallowed, &mut memo, &mut tokens)
            })?;
            Ok(())
        })?;
        tokens.shrink_to_fit();
        Ok(tokens.into_pyarray(py))
    }

    fn count_tokens(
        &self,
        py: Python<'_>,
        text: PyBackedStr,
        allowed_special: &Bound<'_, PyAny>,
        disallowed_special: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let (allowed, disallowed) = self.special_sets(allowed_special, disallowed_special)?;
        Ok(py.detach(|| {
            self.inner
                .encode(&text, &allowed, &disallowed)
                .map(|t| t.len())
        })?)
    }

    #[pyo3(signature = (texts, allowed_special, disallowed_special, num_threads=0))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        allowed_special: &Bound<'py, PyAny>,
        disallowed_special: &Bound<'py, PyAny>,
        num_threads: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        let threads = crate::parallel::checked_threads("num_threads", num_threads)?;
        let (allowed, disallowed) = self.special_sets(allowed_special, disallowed_special)?;
        let batch = py.detach(|| {
            let refs: Vec<&str> = texts.iter().map(|t| &**t).collect();
            self.inner
                .encode_batch(&refs, &allowed, &disallowed, threads)
        })?;
        self.to_lists(py, &batch)
    }

    #[pyo3(signature = (texts, allowed_special, disallowed_special, num_threads=0))]
    #[allow(clippy::type_complexity)]
    fn encode_batch_to_numpy<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        allowed_special: &Bound<'py, PyAny>,
        disallowed_special: &Bound<'py, PyAny>,
        num_threads: i64,
    ) -> PyResult<(Bound<'py, PyArray1<Rank>>, Bound<'py, PyArray1<i64>>)> {
        let threads = crate::parallel::checked_threads("num_threads", num_threads)?;
        let (allowed, disallowed) = self.special_sets(allowed_special, disallowed_special)?;
        let out = py.detach(|| {
            let refs: Vec<&str> = texts.iter().map(|t| &**t).collect();
            let docs: &[&str] = &refs;
            // The flat encoder writes every document's tokens in order into one buffer (no
            // per-document Vecs, which peaked at twice the tokens) and balances by bytes.
            flat::encode_flat(&[&docs], None, threads, |text, memo, out| {
                self.inner
                    .encode_with(text, &allowed, &disallowed, memo, out)
            })
        })?;
        Ok((out.tokens.into_pyarray(py), out.offsets.into_pyarray(py)))
    }

    #[pyo3(signature = (texts, num_threads=0))]
    fn encode_ordinary_batch<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        num_threads: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        let threads = crate::parallel::checked_threads("num_threads", num_threads)?;
        let batch = py.detach(|| {
            let refs: Vec<&str> = texts.iter().map(|t| &**t).collect();
            self.inner.encode_ordinary_batch(&refs, threads)
        })?;
        self.to_lists(py, &batch)
    }

    /// tiktoken's `encode_with_unstable`: (stable tokens, completions sorted).
    fn encode_with_unstable<'py>(
        &self,
        py: Python<'py>,
        text: PyBackedStr,
        allowed_special: &Bound<'py, PyAny>,
        disallowed_special: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let (allowed, disallowed) = self.special_sets(allowed_special, disallowed_special)?;
        let (stable, completions) = py.detach(|| {
            self.inner
                .encode_with_unstable(&text, &allowed, &disallowed)
        })?;
        let completions: Vec<Vec<Rank>> = completions.into_iter().collect();
        Ok((self.to_list(py, &stable)?, self.to_lists(py, &completions)?))
    }

    /// tiktoken's `_encode_bytes`: bytes that may not be valid UTF-8.
    fn encode_bytes<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let tokens = py.detach(|| self.inner.encode_bytes(data))?;
        self.to_list(py, &tokens)
    }

    fn encode_single_token(&self, piece: &[u8]) -> PyResult<Rank> {
        Ok(self.inner.encode_single_token(piece)?)
    }

    fn encode_single_piece(&self, py: Python<'_>, piece: &[u8]) -> PyResult<Vec<Rank>> {
        let piece = piece.to_vec();
        Ok(py.detach(|| self.inner.encode_single_piece(&piece))?)
    }

    // ---- decoding ----

    fn decode_bytes<'py>(
        &self,
        py: Python<'py>,
        tokens: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let tokens = extract_tokens(tokens)?;
        let data = py.detach(|| self.inner.decode_bytes(&tokens))?;
        Ok(PyBytes::new(py, &data))
    }

    /// Decodes to `str`, replacing invalid UTF-8: `bytes.decode("utf-8", "replace")` without the
    /// intermediate `bytes`. Mostly-ASCII text and invalid UTF-8 go to Python's UTF-8 decoder
    /// (checking the bytes in Rust first, then converting them with `PyString::new`, took 14% of
    /// a non-Latin decode: the bytes were validated twice); mostly non-ASCII text is converted
    /// to UTF-16 without the GIL and made a `str` by Python's UTF-16 decoder (see
    /// `encoding/decode.rs`).
    fn decode_replace<'py>(
        &self,
        py: Python<'py>,
        tokens: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyString>> {
        let tokens = extract_tokens(tokens)?;
        match py.detach(|| self.inner.decode_text(&tokens))? {
            Text::Utf8(data) => decode_utf8_replace(py, &data),
            Text::Utf16(units) => decode_utf16(py, &units),
        }
    }

    fn decode_single_token_bytes<'py>(
        &self,
        py: Python<'py>,
        token: Rank,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(
            py,
            self.inner.decode_single_token_bytes(token)?,
        ))
    }

    fn decode_tokens_bytes<'py>(
        &self,
        py: Python<'py>,
        tokens: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        extract_tokens(tokens)?
            .iter()
            .map(|&t| Ok(PyBytes::new(py, self.inner.decode_single_token_bytes(t)?)))
            .collect()
    }

    #[pyo3(signature = (batch, num_threads=0))]
    fn decode_bytes_batch<'py>(
        &self,
        py: Python<'py>,
        batch: Vec<Vec<Rank>>,
        num_threads: i64,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let threads = crate::parallel::checked_threads("num_threads", num_threads)?;
        let decoded = py.detach(|| self.inner.decode_bytes_batch(&batch, threads))?;
        Ok(decoded.iter().map(|d| PyBytes::new(py, d)).collect())
    }

    fn token_byte_values<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.inner
            .token_byte_values()
            .into_iter()
            .map(|t| PyBytes::new(py, t))
            .collect()
    }
}

/// `data.decode("utf-8", "replace")`, by Python's decoder.
fn decode_utf8_replace<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = pyo3::ffi::Py_ssize_t::try_from(data.len()).map_err(|_| {
        pyo3::exceptions::PyOverflowError::new_err(format!(
            "{} bytes do not fit a Python str",
            data.len()
        ))
    })?;
    // SAFETY: the GIL is held; `data` is valid for `len` bytes and the error handler name is a
    // NUL-terminated C string. PyUnicode_DecodeUTF8 returns a new reference to a str, or NULL
    // with an exception set, which `from_owned_ptr_or_err` turns into that exception.
    let text = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyUnicode_DecodeUTF8(data.as_ptr().cast(), len, c"replace".as_ptr()),
        )
    }?;
    // SAFETY: PyUnicode_DecodeUTF8 returns a str.
    Ok(unsafe { text.cast_into_unchecked() })
}

/// A `str` of UTF-16 code units that are valid UTF-16 (made from valid UTF-8), by Python's
/// UTF-16 decoder.
fn decode_utf16<'py>(py: Python<'py>, units: &[u16]) -> PyResult<Bound<'py, PyString>> {
    let len = units
        .len()
        .checked_mul(2)
        .and_then(|n| pyo3::ffi::Py_ssize_t::try_from(n).ok())
        .ok_or_else(|| {
            pyo3::exceptions::PyOverflowError::new_err(format!(
                "{} characters do not fit a Python str",
                units.len()
            ))
        })?;
    // The units are in this machine's byte order; a byte order given (not 0) also keeps a
    // leading U+FEFF as text instead of reading it as a byte order mark.
    let mut byteorder: std::os::raw::c_int = if cfg!(target_endian = "little") {
        -1
    } else {
        1
    };
    // SAFETY: the GIL is held; `units` is valid for `len` bytes, `errors` NULL means strict
    // (never used: the units are valid UTF-16) and `byteorder` points to a live int.
    // PyUnicode_DecodeUTF16 returns a new reference to a str, or NULL with an exception set,
    // which `from_owned_ptr_or_err` turns into that exception.
    let text = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyUnicode_DecodeUTF16(
                units.as_ptr().cast(),
                len,
                std::ptr::null(),
                &mut byteorder,
            ),
        )
    }?;
    // SAFETY: PyUnicode_DecodeUTF16 returns a str.
    Ok(unsafe { text.cast_into_unchecked() })
}

/// The bytes of a vocabulary file, decompressed if it is zstd-compressed, checked against
/// `expected_sha256` (of the decompressed bytes) when given.
#[pyfunction]
#[pyo3(signature = (path, expected_sha256=None))]
fn read_vocab_file<'py>(
    py: Python<'py>,
    path: PathBuf,
    expected_sha256: Option<&str>,
) -> PyResult<Bound<'py, PyBytes>> {
    let expected = expected_sha256.map(str::to_string);
    let data = py.detach(move || {
        let source = path_text(&path);
        let data = vocab::read_vocab_file(&source)?;
        if let Some(expected) = expected {
            vocab::verify_sha256(&data, &expected, &source)?;
        }
        Ok::<_, crate::error::Error>(data)
    })?;
    Ok(PyBytes::new(py, &data))
}

/// Sets the process-wide cap on threads a call may use (0 = the number of cores, at most 1024).
#[pyfunction]
fn set_num_threads(threads: i64) -> PyResult<()> {
    crate::parallel::set_max_threads(crate::parallel::checked_threads("threads", threads)?);
    Ok(())
}

/// The process-wide cap on threads a call may use.
#[pyfunction]
fn get_num_threads() -> usize {
    crate::parallel::max_threads()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCoreBpe>()?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(read_vocab_file, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(set_str_chunk_chars, m)?)?;
    Ok(())
}
