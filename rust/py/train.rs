//! `fastllm._fastllm.BpeTrainer` and `split_pieces`: the Rust trainer behind `fastllm.train_bpe`
//! and the pieces behind `fastllm.train.explain`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyBytes;

use super::callback::run_detached;
use crate::train::{split_pieces as core_split_pieces, BpeTrainer};

/// How often training returns to Python (progress callback, Ctrl-C).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

#[pyclass(name = "BpeTrainer", module = "fastllm._fastllm")]
pub struct PyBpeTrainer {
    inner: BpeTrainer,
}

#[pymethods]
impl PyBpeTrainer {
    #[new]
    #[pyo3(signature = (vocab_size, pat_str, special_tokens, num_threads=0))]
    fn new(
        vocab_size: usize,
        pat_str: &str,
        special_tokens: Vec<String>,
        num_threads: usize,
    ) -> PyResult<Self> {
        Ok(PyBpeTrainer {
            inner: BpeTrainer::new(vocab_size, pat_str, special_tokens, num_threads)?,
        })
    }

    #[getter]
    fn pattern(&self) -> &str {
        self.inner.pattern()
    }

    #[getter]
    fn num_threads(&self) -> usize {
        self.inner.threads()
    }

    /// (texts, bytes, unique pieces) counted so far.
    fn stats(&self) -> (u64, u64, usize) {
        let stats = self.inner.stats();
        (stats.texts, stats.bytes, stats.unique_pieces)
    }

    /// Counts the pieces of a batch of texts (GIL released).
    fn add_texts(&mut self, py: Python<'_>, texts: Vec<PyBackedStr>) -> PyResult<()> {
        let inner = &mut self.inner;
        py.detach(|| {
            let refs: Vec<&str> = texts.iter().map(|t| &**t).collect();
            inner.add_texts(&refs)
        })?;
        Ok(())
    }

    /// Reads and counts UTF-8 text files (GIL released). `progress(files done, bytes counted)`
    /// is called after each batch of about 64 MB; an exception from it (or Ctrl-C) stops
    /// reading.
    #[pyo3(signature = (paths, progress=None))]
    fn add_files(
        &mut self,
        py: Python<'_>,
        paths: Vec<PathBuf>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let inner = &mut self.inner;
        run_detached(py, progress.as_ref(), |caller| {
            inner.add_files(&paths, &mut |files, bytes| caller.call((files, bytes)))
        })
    }

    /// Learns the merges (GIL released) and returns the token bytes by rank. `progress(done,
    /// total)` is called about every 50 ms; an exception from it (or Ctrl-C) stops training.
    #[pyo3(signature = (progress=None))]
    fn train<'py>(
        &self,
        py: Python<'py>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(Vec<Bound<'py, PyBytes>>, usize)> {
        let mut last = Instant::now();
        let inner = &self.inner;
        let trained = run_detached(py, progress.as_ref(), |caller| {
            inner.train(&mut |done, total| {
                if done < total && last.elapsed() < PROGRESS_INTERVAL {
                    return Ok(());
                }
                last = Instant::now();
                caller.call((done, total))
            })
        })?;
        let tokens = trained.tokens.iter().map(|t| PyBytes::new(py, t)).collect();
        Ok((tokens, trained.steps))
    }
}

/// The pre-token pieces of `text` under `pat_str`, each with whether it is a special token.
#[pyfunction]
#[pyo3(signature = (pat_str, text, special_tokens=Vec::new()))]
fn split_pieces(
    py: Python<'_>,
    pat_str: &str,
    text: PyBackedStr,
    special_tokens: Vec<String>,
) -> PyResult<Vec<(String, bool)>> {
    let pattern = pat_str.to_string();
    Ok(py.detach(|| core_split_pieces(&pattern, &special_tokens, &text))?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBpeTrainer>()?;
    m.add_function(wrap_pyfunction!(split_pieces, m)?)?;
    Ok(())
}
