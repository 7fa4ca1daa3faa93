//! Large-corpus preprocessing: text and JSONL files (plain, `.gz`, `.zst`) to a flat token file
//! with a document index and a JSON sidecar (`fastllm tokenize`), or to token counts
//! (`fastllm count`).
//!
//! Design notes (measured on the 2-core dev machine, `benches/bench_corpus.py`, gpt2):
//! - A reader thread cuts the inputs into ~1 MiB jobs (small files packed together, long
//!   documents cut where encoding the parts gives the tokens of the whole, `crate::pretok::cut`); N encoder
//!   threads decode (strict or U+FFFD), parse JSONL, encode with `CoreBpe::encode_ordinary_into`
//!   and lay the tokens out in the output dtype; the calling thread writes results in input order
//!   (a reorder buffer keyed by job number). Scoped threads, no pool (forked DataLoader workers).
//! - Memory is bounded by permits: at most `2 N + 2` jobs (≤ 64) exist at once, queued, being
//!   encoded or waiting behind a slower one. Tokenizing 1 GB peaks at 72 MB RSS (34 MB of it
//!   the interpreter and fastllm), whatever the input size.
//! - Throughput: the Python stdlib (31.5 MB, 1,790 files) file -> `.bin` at 223-228 MB/s, i.e.
//!   0.95-1.00x `encode_ordinary_batch_to_numpy` on the same text already in memory
//!   (224-236 MB/s) and 11x a nanoGPT-style tiktoken + `np.memmap` script (20 MB/s); 1 GB of
//!   long documents at ~300 MB/s. What is left between file -> `.bin` and the in-memory batch is
//!   fixed cost per run and per file (stat, open, sidecar), ~10 ms for the stdlib; reading, UTF-8
//!   validation, dtype conversion and writing are a few percent. Syncing the token file runs on a helper thread every 16 MiB,
//!   so the final sync before the rename waits for little.
//! - Resumable by construction: results are written in input order, so "everything before this
//!   input position is written" is one position; checkpoints record it with the counts
//!   (`output`). Output files get their final names only when complete.

mod output;
mod pipeline;
pub mod shards;
mod source;
mod work;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::encoding::CoreBpe;
use crate::error::{Error, Result};
use crate::pretok;
use crate::vocab::{self, Rank};

pub use output::Paths;
pub use shards::{Layout, ShardEntry, ShardSpec, ShardWriter};

/// How an input file holds its documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The whole file is one document.
    Text,
    /// One JSON object per line; its text field is one document (blank lines are skipped).
    Jsonl,
    /// A Parquet file; each row of its string column (the text field) is one document, a null
    /// an empty one.
    Parquet,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "text" => Ok(Format::Text),
            "jsonl" => Ok(Format::Jsonl),
            "parquet" => Ok(Format::Parquet),
            other => Err(Error::InvalidArgument(format!(
                "format must be 'text', 'jsonl' or 'parquet', got {other:?}"
            ))),
        }
    }
}

/// One input file.
#[derive(Clone, Debug)]
pub struct Input {
    pub path: PathBuf,
    pub format: Format,
}

impl Input {
    pub fn display(&self) -> String {
        self.path.display().to_string()
    }
}

/// The token file's element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    U16,
    U32,
}

impl Dtype {
    /// `uint16` when every token id fits, else `uint32`.
    pub fn for_max_token(max_token: Rank) -> Self {
        if max_token <= u16::MAX as Rank {
            Dtype::U16
        } else {
            Dtype::U32
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::U16 => "uint16",
            Dtype::U32 => "uint32",
        }
    }

    pub fn itemsize(self) -> u64 {
        match self {
            Dtype::U16 => 2,
            Dtype::U32 => 4,
        }
    }
}

/// Where reading is (or goes on): the input, the byte offset in its decompressed text, the line
/// number there (JSONL) and whether a text document was already started (resuming inside it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub file: usize,
    pub offset: u64,
    pub line: u64,
    pub in_doc: bool,
}

/// What decides the tokens, besides the encoding and the inputs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The JSONL field (Parquet column) holding the text.
    pub field: String,
    /// Appended after each document.
    pub eot: Option<Rank>,
    /// Invalid UTF-8 becomes U+FFFD (counted) instead of an error.
    pub replace_errors: bool,
}

impl Settings {
    fn describe(&self) -> Value {
        json!({
            "field": self.field,
            "eot": self.eot.is_some(),
            "errors": if self.replace_errors { "replace" } else { "strict" },
        })
    }
}

/// An encoding ready for corpus runs, with what identifies it in a sidecar. It holds the
/// encoding's core by `Arc`, so a Python `Encoding` and its corpus encoder can share one core.
pub struct Encoder {
    bpe: Arc<CoreBpe>,
    name: String,
    vocab_sha256: String,
}

impl Encoder {
    /// An encoder for `bpe` (owned or shared); the sha256 of its ranks is computed here.
    pub fn new(bpe: impl Into<Arc<CoreBpe>>, name: String) -> Self {
        let bpe = bpe.into();
        let vocab_sha256 = vocab::sha256_hex(&vocab::format_tiktoken(bpe.ranks()));
        Self::with_sha256(bpe, name, vocab_sha256)
    }

    /// An encoder for `bpe` whose ranks' sha256 (of their `.tiktoken` form) the caller knows
    /// already (a bundled encoding checked on load), which spares serializing the ranks.
    pub fn with_sha256(bpe: Arc<CoreBpe>, name: String, vocab_sha256: String) -> Self {
        Encoder {
            bpe,
            name,
            vocab_sha256,
        }
    }

    /// The shared encoding core.
    pub fn core(&self) -> &Arc<CoreBpe> {
        &self.bpe
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// sha256 of the mergeable ranks in `.tiktoken` form (for a bundled encoding: of its file).
    pub fn vocab_sha256(&self) -> &str {
        &self.vocab_sha256
    }

    pub fn dtype(&self) -> Dtype {
        Dtype::for_max_token(self.bpe.max_token_value())
    }

    /// The id of `<|endoftext|>`, if the encoding has it.
    pub fn eot_token(&self) -> Option<Rank> {
        self.bpe
            .special_tokens()
            .find(|&(name, _)| name == "<|endoftext|>")
            .map(|(_, id)| id)
    }

    fn describe(&self) -> Value {
        let specials: serde_json::Map<String, Value> = self
            .bpe
            .special_tokens()
            .map(|(name, id)| (name.to_string(), Value::from(id)))
            .collect();
        json!({
            "name": self.name,
            "vocab_sha256": self.vocab_sha256,
            "n_vocab": u64::from(self.bpe.max_token_value()) + 1,
            "pattern": self.bpe.pattern(),
            "special_tokens": specials,
        })
    }

    /// Whether long documents may be cut without changing their tokens.
    fn cuttable(&self) -> bool {
        pretok::cut::keeps_pieces(self.bpe.pattern())
    }
}

/// How a run is carried out (none of this changes the tokens).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Encoder threads; 0 = as many as allowed (see `parallel::max_threads`).
    pub threads: usize,
    /// Target input bytes per job.
    pub job_bytes: usize,
    /// Time between checkpoints.
    pub checkpoint_every: Duration,
    /// Reuse earlier work (an up-to-date output, or a partial one).
    pub resume: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            threads: 0,
            job_bytes: 1 << 20,
            checkpoint_every: Duration::from_secs(5),
            resume: true,
        }
    }
}

/// Where a run is, for progress bars.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Bytes of the input files read and written out (compressed bytes for compressed files).
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub tokens: u64,
    pub documents: u64,
}

fn check_inputs(inputs: &[Input], settings: &Settings, encoder: &Encoder) -> Result<()> {
    if inputs.is_empty() {
        return Err(Error::InvalidArgument("no input files".into()));
    }
    if settings
        .eot
        .is_some_and(|t| t > encoder.bpe.max_token_value())
    {
        return Err(Error::InvalidArgument(
            "end-of-text token out of range".into(),
        ));
    }
    Ok(())
}

fn total_bytes(described: &[Value]) -> u64 {
    described
        .iter()
        .filter_map(|v| v.get("bytes").and_then(Value::as_u64))
        .sum()
}

fn inputs_summary(described: &[Value], per_file: &[work::FileCount]) -> Vec<Value> {
    described
        .iter()
        .zip(per_file)
        .map(|(d, c)| {
            let mut d = d.clone();
            if let Value::Object(map) = &mut d {
                map.insert("tokens".into(), c.tokens.into());
                map.insert("documents".into(), c.documents.into());
                map.insert("text_bytes".into(), c.text_bytes.into());
            }
            d
        })
        .collect()
}

struct TokenizeHandler<'a> {
    writer: output::Writer,
    progress: &'a mut dyn FnMut(&Progress) -> Result<()>,
    total: u64,
}

impl TokenizeHandler<'_> {
    fn report(&mut self) -> Result<()> {
        let p = Progress {
            bytes_done: self.writer.raw_done,
            bytes_total: self.total,
            tokens: self.writer.counts.tokens,
            documents: self.writer.counts.documents,
        };
        (self.progress)(&p)
    }
}

impl pipeline::Handler for TokenizeHandler<'_> {
    fn done(&mut self, done: pipeline::Done) -> Result<()> {
        self.writer.write(&done.encoded, &done.end)?;
        self.writer.raw_done = done.raw_done;
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        self.report()
    }
}

/// Tokenizes `inputs` into the token file `out` (plus `out.idx` and `out.json`), returning the
/// sidecar with a `"run"` entry (seconds, whether it resumed, why not).
pub fn tokenize_files(
    encoder: &Encoder,
    inputs: &[Input],
    out: &Path,
    settings: &Settings,
    options: &RunOptions,
    progress: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Value> {
    let started = Instant::now();
    check_inputs(inputs, settings, encoder)?;
    let paths = output::Paths::new(out);
    check_output_dir(out)?;
    let dtype = encoder.dtype();
    let identities = source::identify(inputs)?;
    let described = output::describe_inputs(inputs, &identities);
    let identity = output::identity(encoder, settings, dtype);
    let total = total_bytes(&described);
    let start = output::plan_start(
        &paths,
        &identity,
        &described,
        options.resume,
        dtype.itemsize(),
    );
    let (resume, note) = match start {
        output::Start::UpToDate(mut meta) => {
            if let Value::Object(map) = &mut meta {
                map.insert(
                    "run".into(),
                    json!({"up_to_date": true, "seconds": started.elapsed().as_secs_f64(),
                           "resumed_bytes": total, "note": null}),
                );
            }
            let tokens = meta.get("token_count").and_then(Value::as_u64).unwrap_or(0);
            let documents = meta
                .get("document_count")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            progress(&Progress {
                bytes_done: total,
                bytes_total: total,
                tokens,
                documents,
            })?;
            return Ok(meta);
        }
        output::Start::Resume(position, counts) => (Some((position, counts)), None),
        output::Start::Fresh(note) => {
            output::remove_partials(&paths)?;
            (None, note)
        }
    };
    let start_position = resume.as_ref().map(|(p, _)| p.clone()).unwrap_or_default();
    let raw_before: u64 = described
        .iter()
        .take(start_position.file)
        .filter_map(|v| v.get("bytes").and_then(Value::as_u64))
        .sum();
    let resumed_bytes = raw_before
        + start_position.offset.min(
            described
                .get(start_position.file)
                .and_then(|v| v.get("bytes").and_then(Value::as_u64))
                .unwrap_or(0),
        );
    let resumed = resume.is_some();
    let resumed_text_bytes = resume.as_ref().map_or(0, |(_, c)| c.text_bytes);
    let writer = output::Writer::open(
        output::Paths::new(out),
        &identity,
        &described,
        dtype,
        options.checkpoint_every,
        resume,
    )?;
    let mut handler = TokenizeHandler {
        writer,
        progress,
        total,
    };
    handler.writer.raw_done = raw_before;
    let plan = pipeline::Plan {
        bpe: &encoder.bpe,
        settings,
        inputs,
        identities: &identities,
        start: &start_position,
        raw_before,
        dtype: Some(dtype),
        threads: crate::parallel::effective_threads(options.threads, usize::MAX),
        job_bytes: options.job_bytes.max(1),
        cuttable: encoder.cuttable(),
    };
    if let Err(error) = pipeline::run(&plan, &mut handler) {
        // Keep everything written so far resumable (a failing disk may refuse even this).
        let _ = handler.writer.checkpoint();
        return Err(error);
    }
    handler.writer.raw_done = total;
    if let Err(error) = handler.report() {
        let _ = handler.writer.checkpoint();
        return Err(error);
    }
    let counts = handler.writer.counts.clone();
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut sidecar = identity;
    if let Value::Object(map) = &mut sidecar {
        map.insert("kind".into(), output::SIDECAR_KIND.into());
        map.insert("version".into(), 1.into());
        map.insert("token_file".into(), file_name(&paths.bin).into());
        map.insert("token_count".into(), counts.tokens.into());
        map.insert("document_count".into(), counts.documents.into());
        map.insert(
            "eot_token".into(),
            settings.eot.map_or(Value::Null, Value::from),
        );
        map.insert(
            "index".into(),
            json!({
                "file": file_name(&paths.idx),
                "dtype": "uint64",
                "entries": counts.documents + 1,
                "meaning": "token offset where each document starts, then the token count: \
                            document i is tokens[index[i]:index[i + 1]]",
            }),
        );
        map.insert("input_bytes".into(), total.into());
        map.insert("text_bytes".into(), counts.text_bytes.into());
        map.insert("replaced_invalid_utf8".into(), counts.replaced.into());
        map.insert(
            "inputs".into(),
            Value::Array(inputs_summary(&described, &counts.per_file)),
        );
        map.insert("fastllm_version".into(), env!("CARGO_PKG_VERSION").into());
    }
    handler.writer.finish(&sidecar)?;
    if let Value::Object(map) = &mut sidecar {
        map.insert(
            "run".into(),
            json!({
                "up_to_date": false,
                "resumed": resumed,
                "resumed_bytes": if resumed { resumed_bytes } else { 0 },
                "resumed_text_bytes": resumed_text_bytes,
                "seconds": started.elapsed().as_secs_f64(),
                "note": note,
            }),
        );
    }
    Ok(sidecar)
}

struct CountHandler<'a> {
    per_file: Vec<work::FileCount>,
    tokens: u64,
    documents: u64,
    replaced: u64,
    raw_done: u64,
    total: u64,
    progress: &'a mut dyn FnMut(&Progress) -> Result<()>,
}

impl CountHandler<'_> {
    fn report(&mut self) -> Result<()> {
        let p = Progress {
            bytes_done: self.raw_done,
            bytes_total: self.total,
            tokens: self.tokens,
            documents: self.documents,
        };
        (self.progress)(&p)
    }
}

impl pipeline::Handler for CountHandler<'_> {
    fn done(&mut self, done: pipeline::Done) -> Result<()> {
        let e = &done.encoded;
        self.tokens += e.tokens;
        self.documents += e.doc_starts.len() as u64;
        self.replaced += e.replaced;
        for &(file, add) in &e.files {
            if let Some(slot) = self.per_file.get_mut(file) {
                slot.tokens += add.tokens;
                slot.documents += add.documents;
                slot.text_bytes += add.text_bytes;
            }
        }
        self.raw_done = done.raw_done;
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        self.report()
    }
}

/// Counts the tokens of `inputs` (per file and in total) without writing them.
pub fn count_files(
    encoder: &Encoder,
    inputs: &[Input],
    settings: &Settings,
    options: &RunOptions,
    progress: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Value> {
    let started = Instant::now();
    check_inputs(inputs, settings, encoder)?;
    let identities = source::identify(inputs)?;
    let described = output::describe_inputs(inputs, &identities);
    let total = total_bytes(&described);
    let mut handler = CountHandler {
        per_file: vec![work::FileCount::default(); inputs.len()],
        tokens: 0,
        documents: 0,
        replaced: 0,
        raw_done: 0,
        total,
        progress,
    };
    let start = Position::default();
    let plan = pipeline::Plan {
        bpe: &encoder.bpe,
        settings,
        inputs,
        identities: &identities,
        start: &start,
        raw_before: 0,
        dtype: None,
        threads: crate::parallel::effective_threads(options.threads, usize::MAX),
        job_bytes: options.job_bytes.max(1),
        cuttable: encoder.cuttable(),
    };
    pipeline::run(&plan, &mut handler)?;
    handler.raw_done = total;
    handler.report()?;
    let text_bytes: u64 = handler.per_file.iter().map(|c| c.text_bytes).sum();
    Ok(json!({
        "encoding": encoder.describe(),
        "settings": settings.describe(),
        "token_count": handler.tokens,
        "document_count": handler.documents,
        "input_bytes": total,
        "text_bytes": text_bytes,
        "replaced_invalid_utf8": handler.replaced,
        "inputs": inputs_summary(&described, &handler.per_file),
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

fn check_output_dir(out: &Path) -> Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(Error::Write {
                path: out.display().to_string(),
                reason: format!(
                    "the directory {} does not exist; create it first",
                    dir.display()
                ),
            });
        }
    }
    Ok(())
}

const SHARD_JOURNAL_KIND: &str = "fastllm-shards-journal";

/// What must match for a rerun of a sharded output to reuse work.
pub fn shard_identity(
    encoder: &Encoder,
    settings: &Settings,
    dtype: Dtype,
    spec: &ShardSpec,
) -> Value {
    let mut v = output::identity(encoder, settings, dtype);
    if let Value::Object(map) = &mut v {
        map.insert(
            "sharding".into(),
            json!({
                "layout": spec.layout.name(),
                "shard_tokens": spec.shard_tokens,
                "val_tokens": spec.val_tokens,
            }),
        );
    }
    v
}

/// Removes what an earlier sharded run left under the names of `names` (partial shards, the
/// journal, and the shards an old manifest or journal lists), before starting over.
fn remove_old_shards(names: &shards::ShardNames) -> Result<()> {
    let mut doomed = vec![names.journal(), names.manifest()];
    for listing in [names.manifest(), names.journal()] {
        if let Some(v) = output::read_json(&listing) {
            let key = if listing == names.manifest() {
                "shards"
            } else {
                "done"
            };
            for (i, item) in v
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let split = item.get("split").and_then(Value::as_str).unwrap_or("train");
                let path = names.shard(i, split);
                doomed.push(shards::index_of(&path));
                doomed.push(path);
            }
        }
    }
    for path in names.partials() {
        doomed.push(path);
    }
    for path in doomed {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(output::write_error(&path, &e)),
        }
    }
    Ok(())
}

struct ShardHandler<'a> {
    writer: ShardWriter,
    counts: output::Counts,
    position: Position,
    raw_done: u64,
    head: Value,
    journal: PathBuf,
    last_checkpoint: Instant,
    every: Duration,
    progress: &'a mut dyn FnMut(&Progress) -> Result<()>,
    total: u64,
}

impl ShardHandler<'_> {
    fn checkpoint(&mut self) -> Result<()> {
        let state = self.writer.checkpoint()?;
        let mut journal = self.head.clone();
        if let Value::Object(map) = &mut journal {
            map.insert("position".into(), output::position_json(&self.position));
            map.insert("counts".into(), self.counts.to_json());
            map.insert(
                "done".into(),
                Value::Array(self.writer.done().iter().map(ShardEntry::to_json).collect()),
            );
            map.insert(
                "current".into(),
                state.map_or(Value::Null, |s| {
                    json!({"tokens": s.tokens, "doc_starts": s.doc_starts, "open_doc": s.open_doc})
                }),
            );
        }
        let data = serde_json::to_vec(&journal)
            .map_err(|e| Error::InvalidArgument(format!("journal: {e}")))?;
        output::write_atomic(&self.journal, &data)?;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    fn report(&mut self) -> Result<()> {
        let p = Progress {
            bytes_done: self.raw_done,
            bytes_total: self.total,
            tokens: self.counts.tokens,
            documents: self.counts.documents,
        };
        (self.progress)(&p)
    }
}

impl pipeline::Handler for ShardHandler<'_> {
    fn done(&mut self, done: pipeline::Done) -> Result<()> {
        let shards_before = self.writer.done().len();
        self.writer
            .write(&done.encoded.bytes, &done.encoded.doc_starts)?;
        self.counts.add(&done.encoded);
        self.position = done.end;
        self.raw_done = done.raw_done;
        if self.writer.done().len() != shards_before || self.last_checkpoint.elapsed() >= self.every
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        self.report()
    }
}

/// The shard being written, as a journal keeps it (`ShardState::to_json`); null: none.
pub fn shard_state_from_json(v: &Value) -> Option<shards::ShardState> {
    if v.is_null() {
        return Some(shards::ShardState::default());
    }
    Some(shards::ShardState {
        tokens: v.get("tokens")?.as_u64()?,
        doc_starts: v
            .get("doc_starts")?
            .as_array()?
            .iter()
            .map(Value::as_u64)
            .collect::<Option<Vec<u64>>>()?,
        open_doc: match v.get("open_doc")? {
            Value::Null => None,
            other => Some(other.as_u64()?),
        },
    })
}

/// Tokenizes `inputs` into numbered shards next to `out` and their manifest (see
/// [`shards`]); returns the manifest with a `"run"` entry.
pub fn tokenize_shards(
    encoder: &Encoder,
    inputs: &[Input],
    out: &Path,
    settings: &Settings,
    spec: &ShardSpec,
    options: &RunOptions,
    progress: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Value> {
    let started = Instant::now();
    check_inputs(inputs, settings, encoder)?;
    check_output_dir(out)?;
    let dtype = encoder.dtype();
    spec.check(out, dtype, encoder.bpe.max_token_value())?;
    let names = shards::ShardNames::new(out);
    let identities = source::identify(inputs)?;
    let described = output::describe_inputs(inputs, &identities);
    let identity = shard_identity(encoder, settings, dtype, spec);
    let total = total_bytes(&described);
    let same_inputs = |v: &Value, key: &str| {
        v.get(key).and_then(Value::as_array).is_some_and(|old| {
            old.len() == described.len()
                && old
                    .iter()
                    .zip(&described)
                    .all(|(a, b)| output::same_input(Some(a), Some(b)))
        })
    };
    if options.resume {
        if let Some(mut manifest) = output::read_json(&names.manifest()) {
            let same = manifest.get("kind").and_then(Value::as_str) == Some(shards::MANIFEST_KIND)
                && ["encoding", "settings", "dtype", "sharding"]
                    .iter()
                    .all(|k| manifest.get(k) == identity.get(k))
                && same_inputs(&manifest, "inputs")
                && manifest
                    .get("shards")
                    .and_then(|s| shards::entries_from_json(s, &names))
                    .is_some();
            if same {
                let tokens = manifest
                    .get("token_count")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let documents = manifest
                    .get("document_count")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                progress(&Progress {
                    bytes_done: total,
                    bytes_total: total,
                    tokens,
                    documents,
                })?;
                if let Value::Object(map) = &mut manifest {
                    map.insert(
                        "run".into(),
                        json!({"up_to_date": true, "seconds": started.elapsed().as_secs_f64(),
                               "resumed_bytes": total, "note": null}),
                    );
                }
                return Ok(manifest);
            }
        }
    }
    let mut note = None;
    let mut resume = None;
    if options.resume {
        if let Some(journal) = output::read_json(&names.journal()) {
            let point = output::resume_point(
                &journal,
                &names.journal(),
                SHARD_JOURNAL_KIND,
                &identity,
                &described,
            )
            .and_then(|(position, counts)| {
                let done = journal
                    .get("done")
                    .and_then(|d| shards::entries_from_json(d, &names))
                    .ok_or("a shard it completed is missing or changed")?;
                let state = journal
                    .get("current")
                    .and_then(shard_state_from_json)
                    .ok_or("its state of the shard being written is damaged")?;
                Ok((position, counts, done, state))
            });
            match point {
                Ok(point) => resume = Some(point),
                Err(why) => note = Some(format!("cannot resume the earlier run: {why}")),
            }
        }
    }
    let (start_position, counts, writer) = match resume {
        Some((position, counts, done, state)) => {
            let writer = ShardWriter::resume(out, spec.clone(), dtype, done, Some(state));
            match writer {
                Ok(w) => (position, counts, w),
                Err(error) => return Err(error),
            }
        }
        None => {
            remove_old_shards(&names)?;
            let counts = output::Counts {
                per_file: vec![work::FileCount::default(); inputs.len()],
                ..output::Counts::default()
            };
            (
                Position::default(),
                counts,
                ShardWriter::create(out, spec.clone(), dtype)?,
            )
        }
    };
    let resumed = counts.tokens > 0 || start_position != Position::default();
    let resumed_text_bytes = counts.text_bytes;
    let raw_before: u64 = described
        .iter()
        .take(start_position.file)
        .filter_map(|v| v.get("bytes").and_then(Value::as_u64))
        .sum();
    let resumed_bytes = raw_before
        + start_position.offset.min(
            described
                .get(start_position.file)
                .and_then(|v| v.get("bytes").and_then(Value::as_u64))
                .unwrap_or(0),
        );
    let mut head = identity.clone();
    if let Value::Object(map) = &mut head {
        map.insert("kind".into(), SHARD_JOURNAL_KIND.into());
        map.insert("version".into(), 1.into());
        map.insert("inputs".into(), Value::Array(described.clone()));
    }
    let mut handler = ShardHandler {
        writer,
        counts,
        position: start_position.clone(),
        raw_done: raw_before,
        head,
        journal: names.journal(),
        last_checkpoint: Instant::now(),
        every: options.checkpoint_every,
        progress,
        total,
    };
    handler.checkpoint()?;
    let plan = pipeline::Plan {
        bpe: &encoder.bpe,
        settings,
        inputs,
        identities: &identities,
        start: &start_position,
        raw_before,
        dtype: Some(dtype),
        threads: crate::parallel::effective_threads(options.threads, usize::MAX),
        job_bytes: options.job_bytes.max(1),
        cuttable: encoder.cuttable(),
    };
    if let Err(error) = pipeline::run(&plan, &mut handler) {
        let _ = handler.checkpoint();
        return Err(error);
    }
    handler.raw_done = total;
    if let Err(error) = handler.report() {
        let _ = handler.checkpoint();
        return Err(error);
    }
    let counts = handler.counts.clone();
    let entries = handler.writer.finish()?;
    let mut head = identity;
    if let Value::Object(map) = &mut head {
        map.insert(
            "eot_token".into(),
            settings.eot.map_or(Value::Null, Value::from),
        );
        map.insert("input_bytes".into(), total.into());
        map.insert("text_bytes".into(), counts.text_bytes.into());
        map.insert("replaced_invalid_utf8".into(), counts.replaced.into());
        map.insert(
            "inputs".into(),
            Value::Array(inputs_summary(&described, &counts.per_file)),
        );
        map.insert("fastllm_version".into(), env!("CARGO_PKG_VERSION").into());
    }
    let mut manifest = shards::manifest(&head, spec, dtype, &entries);
    write_manifest(&names.manifest(), &manifest)?;
    let _ = std::fs::remove_file(names.journal());
    if let Value::Object(map) = &mut manifest {
        map.insert(
            "run".into(),
            json!({
                "up_to_date": false,
                "resumed": resumed,
                "resumed_bytes": if resumed { resumed_bytes } else { 0 },
                "resumed_text_bytes": resumed_text_bytes,
                "seconds": started.elapsed().as_secs_f64(),
                "note": note,
            }),
        );
    }
    Ok(manifest)
}

/// Each input with its identity (size, mtime, sha256 of head and tail), as sidecars and
/// manifests list it; for callers that write the output themselves (the Ray driver).
pub fn describe_inputs(inputs: &[Input]) -> Result<Vec<Value>> {
    Ok(output::describe_inputs(inputs, &source::identify(inputs)?))
}

/// Writes a shard manifest atomically.
pub fn write_manifest(path: &Path, manifest: &Value) -> Result<()> {
    let data = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::InvalidArgument(format!("manifest: {e}")))?;
    output::write_atomic(path, &data)
}
