//! `fastllm._fastllm.CorpusEncoder`, `tokenize_files` and `count_files`: the Rust corpus runs
//! behind `fastllm.tokenize_files`, `fastllm.count_tokens_in_files` and the `fastllm tokenize` /
//! `fastllm count` commands. The GIL is released for the whole run; about every 100 ms the
//! writer thread takes it back to check for Ctrl-C and call the progress callback (`callback`).
//!
//! Design notes: results come back typed (`TokenizeResult`, `CountResult`), the sidecar as a
//! dict built from the core's value, with no JSON text between (for the stdlib's 1,790 files
//! the sidecar is 518 kB; a dump and load of it as text costs ~8 ms CPU in Python). Arguments are checked once, in the core
//! (output path, shard sizes, layout); this file only converts them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};
use rustc_hash::FxHashMap;
use serde_json::Value;

use super::callback::{run_detached, Caller};
use super::encoding::PyCoreBpe;
use crate::corpus::{
    self, shards, Encoder, Format, Input, Layout, Progress, RunOptions, Settings, ShardSpec,
    ShardWriter,
};
use crate::encoding::CoreBpe;
use crate::error::{Error, Result};
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

    /// An encoder sharing `core`'s Rust core (no copy, no second parse). `vocab_sha256` is the
    /// checksum already verified on load (a bundled encoding); without it the ranks' sha256 is
    /// computed here, in Rust.
    #[staticmethod]
    #[pyo3(signature = (core, name, vocab_sha256=None))]
    fn from_core(
        py: Python<'_>,
        core: &PyCoreBpe,
        name: String,
        vocab_sha256: Option<String>,
    ) -> Self {
        let bpe = Arc::clone(&core.inner);
        let inner = py.detach(move || match vocab_sha256 {
            Some(sha) => Encoder::with_sha256(bpe, name, sha),
            None => Encoder::new(bpe, name),
        });
        PyCorpusEncoder {
            inner: Arc::new(inner),
        }
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

/// What `tokenize_files` wrote (or found up to date), typed; `fastllm.tokenfile` makes its
/// `TokenizeStats` of it.
#[pyclass(frozen, get_all, name = "TokenizeResult", module = "fastllm._fastllm")]
pub struct PyTokenizeResult {
    /// The token file, or the shards' manifest.
    path: PathBuf,
    encoding: String,
    dtype: &'static str,
    tokens: u64,
    documents: u64,
    files: usize,
    input_bytes: u64,
    text_bytes: u64,
    replaced: u64,
    seconds: f64,
    resumed: bool,
    resumed_bytes: u64,
    resumed_text_bytes: u64,
    up_to_date: bool,
    note: Option<String>,
    /// The shard files in order (empty for a single token file).
    shards: Vec<PathBuf>,
    /// The sidecar (or manifest) as a dict, built from the Rust value (no JSON text).
    sidecar: Py<PyAny>,
}

/// What `count_files` counted, typed.
#[pyclass(frozen, get_all, name = "CountResult", module = "fastllm._fastllm")]
pub struct PyCountResult {
    encoding: String,
    tokens: u64,
    documents: u64,
    input_bytes: u64,
    text_bytes: u64,
    replaced: u64,
    seconds: f64,
    /// Per input: `(path, format, bytes, text_bytes, documents, tokens)`.
    files: Vec<(PathBuf, &'static str, u64, u64, u64, u64)>,
}

/// A JSON value as the Python object `json.loads` would give.
fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_pyobject(py)?.into_any(),
            (None, Some(i)) => i.into_pyobject(py)?.into_any(),
            (None, None) => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(text) => PyString::new(py, text).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, to_python(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// Tokenizes files into a token file, or into shards when the shard arguments ask for them.
#[pyfunction]
#[pyo3(signature = (
    encoder, paths, formats, out, *, field, eot, errors, num_threads, resume,
    checkpoint_interval, job_bytes, progress=None, layout="flat", shard_tokens=None,
    val_tokens=None
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
    layout: &str,
    shard_tokens: Option<Bound<'_, PyAny>>,
    val_tokens: Option<Bound<'_, PyAny>>,
) -> PyResult<PyTokenizeResult> {
    let encoder = Arc::clone(&encoder.inner);
    let inputs = inputs(paths, formats)?;
    let settings = settings(&encoder, field, eot, errors)?;
    let spec = shard_spec(layout, shard_tokens, val_tokens)?;
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
    let written = run_detached(py, progress.as_ref(), |caller| {
        corpus::tokenize(
            &encoder,
            &inputs,
            &out,
            &settings,
            &spec,
            &options,
            &mut |p| report(caller, p),
        )
    })?;
    let corpus::Written {
        path,
        meta,
        shards,
        totals,
        run,
    } = written;
    Ok(PyTokenizeResult {
        path,
        encoding: encoder.name().to_string(),
        dtype: encoder.dtype().name(),
        tokens: totals.tokens,
        documents: totals.documents,
        files: totals.files,
        input_bytes: totals.input_bytes,
        text_bytes: totals.text_bytes,
        replaced: totals.replaced,
        seconds: run.seconds,
        resumed: run.resumed,
        resumed_bytes: run.resumed_bytes,
        resumed_text_bytes: run.resumed_text_bytes,
        up_to_date: run.up_to_date,
        note: run.note,
        shards,
        sidecar: to_python(py, &meta)?.unbind(),
    })
}

/// Each input with its identity, as the sidecar and manifest list it (a list of dicts).
#[pyfunction]
fn describe_inputs<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    formats: Vec<String>,
) -> PyResult<Bound<'py, PyAny>> {
    let inputs = inputs(paths, formats)?;
    let described = py.detach(|| corpus::describe_inputs(&inputs))?;
    to_python(py, &Value::Array(described))
}

/// The checks of an output path every run makes before writing (the one owner, for callers
/// that check before starting work elsewhere: the Ray driver).
#[pyfunction]
fn check_output(out: PathBuf) -> PyResult<()> {
    Ok(corpus::check_output(&out, &[])?)
}

/// Counts the tokens of files (per file and in total) without writing them.
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
) -> PyResult<PyCountResult> {
    let encoder = Arc::clone(&encoder.inner);
    let inputs = inputs(paths, formats)?;
    let settings = settings(&encoder, field, eot, errors)?;
    let options = RunOptions {
        threads: num_threads,
        job_bytes,
        ..RunOptions::default()
    };
    let counted = run_detached(py, progress.as_ref(), |caller| {
        corpus::count_files(&encoder, &inputs, &settings, &options, &mut |p| {
            report(caller, p)
        })
    })?;
    let t = counted.totals;
    Ok(PyCountResult {
        encoding: encoder.name().to_string(),
        tokens: t.tokens,
        documents: t.documents,
        input_bytes: t.input_bytes,
        text_bytes: t.text_bytes,
        replaced: t.replaced,
        seconds: counted.seconds,
        files: counted
            .files
            .into_iter()
            .map(|f| {
                let c = f.count;
                (
                    f.path,
                    f.format.name(),
                    f.bytes,
                    c.text_bytes,
                    c.documents,
                    c.tokens,
                )
            })
            .collect(),
    })
}

/// The shard settings as given from Python: `shard_tokens`/`val_tokens` must be whole
/// numbers (not bools) >= 1, with the core's one message (`shards::bad_size`).
fn shard_spec(
    layout: &str,
    shard_tokens: Option<Bound<'_, PyAny>>,
    val_tokens: Option<Bound<'_, PyAny>>,
) -> PyResult<ShardSpec> {
    let size = |name: &str, v: Option<Bound<'_, PyAny>>| -> PyResult<Option<u64>> {
        let Some(v) = v.filter(|v| !v.is_none()) else {
            return Ok(None);
        };
        match v.extract::<u64>() {
            Ok(n) if n >= 1 && !v.is_instance_of::<PyBool>() => Ok(Some(n)),
            _ => Err(shards::bad_size(name, &v.repr()?.to_string()).into()),
        }
    };
    Ok(ShardSpec {
        layout: Layout::parse(layout)?,
        shard_tokens: size("shard_tokens", shard_tokens)?,
        val_tokens: size("val_tokens", val_tokens)?,
    })
}

/// One complete shard of a sharded output.
#[pyclass(frozen, get_all, name = "ShardInfo", module = "fastllm._fastllm")]
pub struct PyShardInfo {
    /// The shard's token file.
    path: PathBuf,
    /// Its document index (`uint64` starts of the documents starting in it, then its length).
    index_path: PathBuf,
    /// `"val"` or `"train"`.
    split: &'static str,
    tokens: u64,
    documents: u64,
    /// File size, header included.
    bytes: u64,
    sha256: String,
}

#[pymethods]
impl PyShardInfo {
    fn __repr__(&self) -> String {
        format!(
            "ShardInfo({:?}, split={:?}, tokens={}, documents={})",
            self.path.display().to_string(),
            self.split,
            self.tokens,
            self.documents
        )
    }
}

impl PyShardInfo {
    fn new(e: &shards::ShardEntry) -> Self {
        PyShardInfo {
            path: e.path.clone(),
            index_path: shards::index_of(&e.path),
            split: e.split,
            tokens: e.tokens,
            documents: e.documents,
            bytes: e.bytes,
            sha256: e.sha256.clone(),
        }
    }
}

/// A complete sharded output: its manifest, as written.
#[pyclass(frozen, get_all, name = "ShardManifest", module = "fastllm._fastllm")]
pub struct PyShardManifest {
    /// The manifest file.
    path: PathBuf,
    layout: String,
    dtype: String,
    token_count: u64,
    document_count: u64,
    shards: Vec<Py<PyShardInfo>>,
    /// The manifest's JSON text.
    json: String,
}

#[pymethods]
impl PyShardManifest {
    fn __repr__(&self) -> String {
        format!(
            "ShardManifest({:?}, {} shards, {} tokens)",
            self.path.display().to_string(),
            self.shards.len(),
            self.token_count
        )
    }
}

fn manifest_object(
    py: Python<'_>,
    path: PathBuf,
    manifest: &Value,
    entries: &[shards::ShardEntry],
) -> PyResult<PyShardManifest> {
    let text = |k: &str| {
        manifest
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let int = |k: &str| manifest.get(k).and_then(Value::as_u64).unwrap_or(0);
    Ok(PyShardManifest {
        path,
        layout: text("layout"),
        dtype: text("dtype"),
        token_count: int("token_count"),
        document_count: int("document_count"),
        shards: entries
            .iter()
            .map(|e| Py::new(py, PyShardInfo::new(e)))
            .collect::<PyResult<_>>()?,
        json: serde_json::to_string_pretty(manifest)
            .map_err(|e| PyValueError::new_err(e.to_string()))?,
    })
}

/// Writes whole documents into shards and a manifest, byte for byte as `fastllm tokenize
/// --shard-tokens/--val-tokens/--layout` does; see `fastllm.tokenfile.ShardWriter`.
#[pyclass(name = "ShardWriter", module = "fastllm._fastllm")]
pub struct PyShardWriter {
    writer: Mutex<Option<ShardWriter>>,
    encoder: Arc<Encoder>,
    settings: Settings,
    out: PathBuf,
}

const FINISHED: &str = "the shard writer is finished";

impl PyShardWriter {
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, Option<ShardWriter>>> {
        self.writer
            .lock()
            .map_err(|_| PyValueError::new_err("the shard writer failed earlier"))
    }

    /// Runs `f` on the open writer (`ValueError` once it is finished or failed).
    fn with_writer<R>(&self, f: impl FnOnce(&mut ShardWriter) -> PyResult<R>) -> PyResult<R> {
        let mut guard = self.lock()?;
        let writer = guard
            .as_mut()
            .ok_or_else(|| PyValueError::new_err(FINISHED))?;
        f(writer)
    }

    /// A figure of the open writer; 0 once it is finished.
    fn peek<R: Default>(&self, f: impl FnOnce(&ShardWriter) -> R) -> R {
        self.lock()
            .ok()
            .and_then(|g| g.as_ref().map(f))
            .unwrap_or_default()
    }
}

#[pymethods]
impl PyShardWriter {
    /// `field` and `errors` are recorded in the manifest's settings (the writer does not read
    /// text). `resume`: the JSON of an earlier writer's [`checkpoint`](Self::checkpoint) of the
    /// same output and settings: the writer goes on after it (`ValueError` starting "cannot
    /// resume" when its shards changed; then start a writer without `resume`).
    #[new]
    #[pyo3(signature = (
        encoder, out, *, layout="flat", shard_tokens=None, val_tokens=None, eot=true,
        field="text".to_string(), errors="strict", resume=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        encoder: &PyCorpusEncoder,
        out: PathBuf,
        layout: &str,
        shard_tokens: Option<Bound<'_, PyAny>>,
        val_tokens: Option<Bound<'_, PyAny>>,
        eot: bool,
        field: String,
        errors: &str,
        resume: Option<&str>,
    ) -> PyResult<Self> {
        let encoder = Arc::clone(&encoder.inner);
        let spec = shard_spec(layout, shard_tokens, val_tokens)?;
        let settings = settings(&encoder, field, eot, errors)?;
        let dtype = encoder.dtype();
        spec.check(&out, dtype, encoder.core().max_token_value())?;
        corpus::check_output(&out, &[])?;
        let names = shards::ShardNames::new(&out);
        let writer = match resume {
            Some(checkpoint) => {
                py.detach(|| resume_writer(&out, &names, spec, dtype, checkpoint))?
            }
            None => {
                for path in names.partials() {
                    let _ = std::fs::remove_file(path);
                }
                ShardWriter::create(&out, spec, dtype)?
            }
        };
        Ok(PyShardWriter {
            writer: Mutex::new(Some(writer)),
            encoder,
            settings,
            out,
        })
    }

    /// Appends whole documents: document `i` is `tokens[doc_offsets[i]:doc_offsets[i + 1]]`
    /// (`doc_offsets` starts at 0 and ends at `len(tokens)`, as `encode_ordinary_arrow`
    /// returns them); the end-of-text token is appended to each when `eot`.
    fn write(
        &self,
        py: Python<'_>,
        tokens: PyReadonlyArray1<'_, u32>,
        doc_offsets: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<()> {
        let tokens = tokens.as_slice()?;
        let offsets = doc_offsets.as_slice()?;
        let eot = self.settings.eot;
        let max_token = self.encoder.core().max_token_value();
        self.with_writer(|writer| {
            Ok(py.detach(|| write_documents(writer, tokens, offsets, eot, max_token))?)
        })
    }

    /// Appends tokens already laid out in the output dtype (little-endian `uint16`/`uint32`
    /// bytes, end-of-text tokens included: nothing is appended); a document starts at each of
    /// `doc_starts` (token offsets into `data`, increasing; tokens before the first continue
    /// the document being written).
    fn write_bytes(
        &self,
        py: Python<'_>,
        data: PyReadonlyArray1<'_, u8>,
        doc_starts: PyReadonlyArray1<'_, u64>,
    ) -> PyResult<()> {
        let data = data.as_slice()?;
        let starts = doc_starts.as_slice()?;
        let max_token = self.encoder.core().max_token_value();
        self.with_writer(
            |writer| Ok(py.detach(|| write_laid_out(writer, data, starts, max_token))?),
        )
    }

    /// Syncs the shard being written and returns, as JSON, what a writer made with
    /// `resume=` needs to go on from here: the complete shards and the one being written.
    fn checkpoint(&self, py: Python<'_>) -> PyResult<String> {
        self.with_writer(|writer| {
            let state = py.detach(|| writer.checkpoint())?;
            let done: Vec<Value> = writer
                .done()
                .iter()
                .map(shards::ShardEntry::to_json)
                .collect();
            let current = state.map_or(Value::Null, |s| s.to_json());
            Ok(serde_json::json!({"done": done, "current": current}).to_string())
        })
    }

    /// Completes the last shard and writes the manifest; returns it. `extra`: a JSON object
    /// whose fields are added to the manifest (the inputs and counts a pipeline knows, e.g.
    /// `input_bytes`, `text_bytes`, `replaced_invalid_utf8`, `inputs`).
    #[pyo3(signature = (extra=None))]
    fn finish(&self, py: Python<'_>, extra: Option<&str>) -> PyResult<PyShardManifest> {
        let extra: Option<serde_json::Map<String, Value>> = extra
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| PyValueError::new_err(format!("extra must be a JSON object: {e}")))?;
        let writer = self
            .lock()?
            .take()
            .ok_or_else(|| PyValueError::new_err(FINISHED))?;
        let spec = writer.spec().clone();
        let dtype = writer.dtype();
        let names = writer.names().clone();
        let head = corpus::shard_identity(&self.encoder, &self.settings, dtype, &spec);
        let mut head = head;
        if let Value::Object(map) = &mut head {
            map.insert(
                "eot_token".into(),
                self.settings.eot.map_or(Value::Null, Value::from),
            );
            map.insert("fastllm_version".into(), env!("CARGO_PKG_VERSION").into());
            map.extend(extra.into_iter().flatten());
        }
        let (manifest, entries) = py.detach(|| -> Result<_> {
            let entries = writer.finish()?;
            let manifest = shards::manifest(&head, &spec, dtype, &entries);
            corpus::write_manifest(&names.manifest(), &manifest)?;
            Ok((manifest, entries))
        })?;
        manifest_object(py, names.manifest(), &manifest, &entries)
    }

    /// Removes the shard being written (the complete ones stay); the writer is finished.
    fn abort(&self) {
        if let Ok(mut guard) = self.writer.lock() {
            if let Some(writer) = guard.take() {
                writer.discard();
            }
        }
    }

    /// Tokens written so far (end-of-text tokens included).
    #[getter]
    fn tokens(&self) -> u64 {
        self.peek(ShardWriter::tokens)
    }

    /// Shards completed so far.
    #[getter]
    fn shards_done(&self) -> usize {
        self.peek(|w| w.done().len())
    }

    /// Documents written so far.
    #[getter]
    fn documents(&self) -> u64 {
        self.peek(ShardWriter::documents)
    }

    #[getter]
    fn out(&self) -> PathBuf {
        self.out.clone()
    }
}

fn write_documents(
    writer: &mut ShardWriter,
    tokens: &[u32],
    offsets: &[i64],
    eot: Option<Rank>,
    max_token: Rank,
) -> Result<()> {
    let bad = |why: String| Error::InvalidArgument(why);
    if offsets.first().is_some_and(|&o| o != 0)
        || offsets
            .last()
            .is_some_and(|&o| usize::try_from(o).ok() != Some(tokens.len()))
        || offsets.windows(2).any(|w| w[0] > w[1])
        || (offsets.is_empty() && !tokens.is_empty())
    {
        return Err(bad(format!(
            "doc_offsets must rise from 0 to len(tokens) = {}, one more than the documents",
            tokens.len()
        )));
    }
    if let Some(&t) = tokens.iter().find(|&&t| t > max_token) {
        return Err(bad(format!(
            "token id {t} is not in the vocabulary (largest id {max_token})"
        )));
    }
    let dtype = writer.dtype();
    let mut bytes = Vec::new();
    let mut starts = Vec::with_capacity(offsets.len());
    let mut n = 0u64;
    for w in offsets.windows(2) {
        let doc = &tokens[w[0] as usize..w[1] as usize];
        starts.push(n);
        shards::lay_out(doc, dtype, &mut bytes)
            .map_err(|t| bad(format!("token id {t} does not fit {}", dtype.name())))?;
        n += doc.len() as u64;
        if let Some(e) = eot {
            shards::lay_out(&[e], dtype, &mut bytes)
                .map_err(|t| bad(format!("token id {t} does not fit {}", dtype.name())))?;
            n += 1;
        }
    }
    writer.write(&bytes, &starts)
}

/// A writer going on from `checkpoint` (see `PyShardWriter::checkpoint`), after checking it.
fn resume_writer(
    out: &std::path::Path,
    names: &shards::ShardNames,
    spec: ShardSpec,
    dtype: corpus::Dtype,
    checkpoint: &str,
) -> Result<ShardWriter> {
    let cannot = |why: String| Error::InvalidArgument(format!("cannot resume: {why}"));
    let v: Value =
        serde_json::from_str(checkpoint).map_err(|e| cannot(format!("bad checkpoint: {e}")))?;
    let done = v
        .get("done")
        .and_then(|d| shards::entries_from_json(d, names))
        .ok_or_else(|| cannot("a shard it completed is missing or changed".into()))?;
    let state = v
        .get("current")
        .and_then(shards::state_from_json)
        .ok_or_else(|| cannot("its state of the shard being written is damaged".into()))?;
    let keep = shards::check_resumable(names, &spec, dtype, &done, &state).map_err(cannot)?;
    // Partial files other than the one of the shard being written are stale.
    for path in names.partials() {
        if path != keep {
            let _ = std::fs::remove_file(path);
        }
    }
    ShardWriter::resume(out, spec, dtype, done, Some(state))
}

/// Checks bytes laid out in the writer's dtype and writes them.
fn write_laid_out(
    writer: &mut ShardWriter,
    data: &[u8],
    starts: &[u64],
    max_token: Rank,
) -> Result<()> {
    let dtype = writer.dtype();
    let size = dtype.itemsize() as usize;
    if data.len() % size != 0 {
        return Err(Error::InvalidArgument(format!(
            "{} bytes are not whole {} tokens",
            data.len(),
            dtype.name()
        )));
    }
    let too_big = data.chunks_exact(size).find_map(|c| {
        let t = match c {
            [a, b] => u32::from(u16::from_le_bytes([*a, *b])),
            [a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
            _ => 0,
        };
        (t > max_token).then_some(t)
    });
    if let Some(t) = too_big {
        return Err(Error::InvalidArgument(format!(
            "token id {t} is not in the vocabulary (largest id {max_token})"
        )));
    }
    writer.write(data, starts)
}

/// `(tokens, doc_starts, text_bytes, replaced)` of one whole text or JSONL file from its raw
/// bytes `data` (a NumPy view of e.g. an Arrow binary value, borrowed: no copy; gzip/zstd told
/// apart by their first bytes), tokenized with the GIL released by the local run's own code
/// (`corpus::encode_file_bytes`): the tokens in the encoder's dtype as little-endian bytes and the
/// documents' token starts, both NumPy arrays owning the Rust buffers. `path` names the file in
/// errors (the local run's texts) and `format` is `"text"` or `"jsonl"`.
#[pyfunction]
#[pyo3(signature = (encoder, data, path, format, field, eot, errors))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn encode_file_bytes<'py>(
    py: Python<'py>,
    encoder: &PyCorpusEncoder,
    data: PyReadonlyArray1<'py, u8>,
    path: PathBuf,
    format: &str,
    field: String,
    eot: bool,
    errors: &str,
) -> PyResult<(
    Bound<'py, PyArray1<u8>>,
    Bound<'py, PyArray1<u64>>,
    u64,
    u64,
)> {
    let settings = settings(&encoder.inner, field, eot, errors)?;
    let input = Input {
        path,
        format: Format::parse(format)?,
    };
    let raw = data.as_slice()?;
    let encoder = &encoder.inner;
    let encoded = py.detach(|| corpus::encode_file_bytes(encoder, &settings, &input, raw))?;
    let text_bytes = encoded.files.iter().map(|(_, c)| c.text_bytes).sum();
    Ok((
        PyArray1::from_vec(py, encoded.bytes),
        PyArray1::from_vec(py, encoded.doc_starts),
        text_bytes,
        encoded.replaced,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCorpusEncoder>()?;
    m.add_class::<PyShardWriter>()?;
    m.add_class::<PyShardInfo>()?;
    m.add_class::<PyShardManifest>()?;
    m.add_class::<PyTokenizeResult>()?;
    m.add_class::<PyCountResult>()?;
    m.add_function(wrap_pyfunction!(tokenize_files, m)?)?;
    m.add_function(wrap_pyfunction!(count_files, m)?)?;
    m.add_function(wrap_pyfunction!(describe_inputs, m)?)?;
    m.add_function(wrap_pyfunction!(check_output, m)?)?;
    m.add_function(wrap_pyfunction!(encode_file_bytes, m)?)?;
    Ok(())
}
