//! `fastllm._fastllm.CorpusEncoder`, `tokenize_files` and `count_files`: the Rust corpus runs
//! behind `fastllm.tokenize_files`, `fastllm.count_tokens_in_files` and the `fastllm tokenize` /
//! `fastllm count` commands. The GIL is released for the whole run; about every 100 ms the
//! writer thread takes it back to check for Ctrl-C and call the progress callback (`callback`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rustc_hash::FxHashMap;

use super::callback::{run_detached, Caller};
use crate::corpus::{self, Encoder, Format, Input, Progress, RunOptions, Settings};
use crate::encoding::CoreBpe;
use crate::error::Result;
use crate::vocab::{self, Rank};

#[pyclass(frozen, name = "CorpusEncoder", module = "fastllm._fastllm")]
pub struct PyCorpusEncoder {
    inner: Arc<Encoder>,
}

#[pymethods]
impl PyCorpusEncoder {
    /// Builds the encoder from an encoding's `.tiktoken` bytes, special tokens and pattern.
    #[new]
    #[pyo3(signature = (name, tiktoken_bytes, special_tokens, pat_str))]
    fn new(
        py: Python<'_>,
        name: String,
        tiktoken_bytes: Vec<u8>,
        special_tokens: HashMap<String, Rank>,
        pat_str: String,
    ) -> PyResult<Self> {
        let specials: FxHashMap<String, Rank> = special_tokens.into_iter().collect();
        let inner = py.detach(move || -> Result<Encoder> {
            let ranks = vocab::parse_tiktoken(&tiktoken_bytes, &name)?;
            let bpe = CoreBpe::new(ranks, specials, &pat_str)?;
            Ok(Encoder::new(Arc::new(bpe), name))
        })?;
        Ok(PyCorpusEncoder {
            inner: Arc::new(inner),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    #[getter]
    fn vocab_sha256(&self) -> &str {
        self.inner.vocab_sha256()
    }

    #[getter]
    fn dtype(&self) -> &'static str {
        self.inner.dtype().name()
    }

    #[getter]
    fn eot_token(&self) -> Option<Rank> {
        self.inner.eot_token()
    }
}

fn inputs(paths: Vec<PathBuf>, formats: Vec<String>) -> PyResult<Vec<Input>> {
    if paths.len() != formats.len() {
        return Err(PyValueError::new_err(format!(
            "{} paths but {} formats",
            paths.len(),
            formats.len()
        )));
    }
    paths
        .into_iter()
        .zip(formats)
        .map(|(path, format)| {
            Ok(Input {
                path,
                format: Format::parse(&format)?,
            })
        })
        .collect()
}

fn settings(encoder: &Encoder, field: String, eot: bool, errors: &str) -> PyResult<Settings> {
    let replace_errors = match errors {
        "strict" => false,
        "replace" => true,
        other => {
            return Err(PyValueError::new_err(format!(
                "errors must be 'strict' or 'replace', got {other:?}"
            )))
        }
    };
    let eot = if eot {
        Some(encoder.eot_token().ok_or_else(|| {
            PyValueError::new_err(format!(
                "encoding {:?} has no <|endoftext|> token to end documents with; pass eot=False \
                 (--no-eot)",
                encoder.name()
            ))
        })?)
    } else {
        None
    };
    Ok(Settings {
        field,
        eot,
        replace_errors,
    })
}

/// `progress(bytes_done, bytes_total, tokens, documents)` through `caller`.
fn report(caller: &mut Caller<'_>, p: &Progress) -> Result<()> {
    caller.call((p.bytes_done, p.bytes_total, p.tokens, p.documents))
}

/// Tokenizes files into a token file; returns its sidecar (plus a `"run"` entry) as JSON.
#[pyfunction]
#[pyo3(signature = (
    encoder, paths, formats, out, *, field, eot, errors, num_threads, resume,
    checkpoint_interval, job_bytes, progress=None
))]
#[allow(clippy::too_many_arguments)]
fn tokenize_files(
    py: Python<'_>,
    encoder: &PyCorpusEncoder,
    paths: Vec<PathBuf>,
    formats: Vec<String>,
    out: PathBuf,
    field: String,
    eot: bool,
    errors: &str,
    num_threads: usize,
    resume: bool,
    checkpoint_interval: f64,
    job_bytes: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let encoder = Arc::clone(&encoder.inner);
    let inputs = inputs(paths, formats)?;
    let settings = settings(&encoder, field, eot, errors)?;
    let checkpoint_every = Duration::try_from_secs_f64(checkpoint_interval).map_err(|_| {
        PyValueError::new_err(format!(
            "checkpoint_interval must be a number of seconds >= 0, got {checkpoint_interval}"
        ))
    })?;
    let options = RunOptions {
        threads: num_threads,
        job_bytes,
        checkpoint_every,
        resume,
    };
    let summary = run_detached(py, progress.as_ref(), |caller| {
        corpus::tokenize_files(&encoder, &inputs, &out, &settings, &options, &mut |p| {
            report(caller, p)
        })
    })?;
    Ok(summary.to_string())
}

/// Counts the tokens of files (per file and in total) without writing them; returns JSON.
#[pyfunction]
#[pyo3(signature = (
    encoder, paths, formats, *, field, eot, errors, num_threads, job_bytes, progress=None
))]
#[allow(clippy::too_many_arguments)]
fn count_files(
    py: Python<'_>,
    encoder: &PyCorpusEncoder,
    paths: Vec<PathBuf>,
    formats: Vec<String>,
    field: String,
    eot: bool,
    errors: &str,
    num_threads: usize,
    job_bytes: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let encoder = Arc::clone(&encoder.inner);
    let inputs = inputs(paths, formats)?;
    let settings = settings(&encoder, field, eot, errors)?;
    let options = RunOptions {
        threads: num_threads,
        job_bytes,
        ..RunOptions::default()
    };
    let summary = run_detached(py, progress.as_ref(), |caller| {
        corpus::count_files(&encoder, &inputs, &settings, &options, &mut |p| {
            report(caller, p)
        })
    })?;
    Ok(summary.to_string())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCorpusEncoder>()?;
    m.add_function(wrap_pyfunction!(tokenize_files, m)?)?;
    m.add_function(wrap_pyfunction!(count_files, m)?)?;
    Ok(())
}
