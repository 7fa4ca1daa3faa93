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
//! - Serial and idle parts of a run (issue 15; `perf record -k CLOCK_MONOTONIC` per thread and
//!   `strace -f -T` of the stdlib run, load 7-10 on the 2 shared cores, so wall figures are
//!   inflated): encoder threads 82% of the run's CPU (about the batch call's CPU for the same
//!   text), the calling thread 11% (Python's input resolution, its share of the identity hashes,
//!   page-cache writes 1.8%, the sidecar), the reader 5% (read copies, 0.7% zeroing the job
//!   buffer: `read_to_end` through the counting wrapper initializes it), the identity helper 2.4%
//!   (sha256 2.2% in all). Tried and dropped: one piece memo per encoder thread for
//!   all its jobs, as the batch call keeps one per worker (file/batch CPU 1.10-1.15 against
//!   1.03-1.06 with one memo per 1 MiB job, interleaved, load 3: a job holds enough repeats).
//!   Kept: (1) jobs shrink to a `2 N`-th of what is left to read (>= 64 KiB) near the end (`source::Reader::retarget`),
//!   so the encoders finish together instead of one encoding the last full job alone;
//!   (2) the end of a run: removing the old token file of a rerun took 16-28 ms of the
//!   writing thread (freeing its page cache), now 0.03 ms (its pages are freed on a detached
//!   helper that holds it open, 2-5 ms there); the token file's last sync runs beside the
//!   index's and the sidecar's (three waits for the disk at once, not one after another); the
//!   first checkpoint, before anything is written, no longer syncs; background syncs every
//!   4 MiB (was 16) leave less for the last one. `bench_corpus.py` at load 4.5-9 does not tell
//!   them apart: CPU ratio 0.87 and 0.97 before, 0.89, 0.90 and 0.92 after (these three with
//!   the per-thread memo; wall 0.66-1.24 on both sides); at load 1-2, interleaved pairs of
//!   runs, main 0.70/0.87, 0.80/0.91, 0.81/0.85 (wall/CPU), this 0.71/0.79, 0.79/0.87,
//!   0.81/0.90: no gain the bench can see yet (the strace figures above are at load 9, where
//!   the removal cost most); the lead's quiet rerun decides.
//!   Left: Python's `_prepare` (one `os.stat` and format check per file, 20-29 ms CPU for
//!   1,790 files at that load) runs before Rust starts and is serial; the
//!   identity hashes (2.2%) keep their 16 KiB spans, since changing them changes every sidecar.
//! - Resumable by construction: results are written in input order, so "everything before this
//!   input position is written" is one position; checkpoints record it with the counts
//!   (`output`). Output files get their final names only when complete.
//! - One driver (`drive`) for both outputs: the single token file (`output::TokenFile`) and
//!   the shards (`shards::Sharded`) are two [`Output`]s whose sinks (`output::Writer`,
//!   `ShardWriter`) take the same writes; planning, resuming, the journal, progress and the
//!   summary are written once. File formats on disk are unchanged by the fold (same keys, and
//!   `serde_json` writes them sorted).
//! - Results are typed ([`Written`], [`Counted`]); the bindings build Python objects of them,
//!   with no JSON text in between. An output path is checked once, here ([`check_output`]),
//!   since this layer writes it.

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
use crate::error::{py_repr, Error, Result};
use crate::pretok;
use crate::vocab::{self, Rank};

use output::Counts;

pub use output::Paths;
pub use shards::{shard_identity, write_manifest, Layout, ShardEntry, ShardSpec, ShardWriter};
pub use work::{Encoded, FileCount};

/// One whole text or JSONL file's raw bytes (gzip, zstd or plain, read elsewhere: a Ray actor's
/// input) tokenized as a run reading the file tokenizes it: the same decompression, UTF-8 and
/// JSONL reading and encoding code, so the tokens, counts and errors are the local run's.
pub fn encode_file_bytes(
    encoder: &Encoder,
    settings: &Settings,
    input: &Input,
    raw: &[u8],
) -> Result<Encoded> {
    let text = source::decompress(raw, &input.path)?;
    work::encode_file(encoder.core(), settings, input, &text, encoder.dtype())
}

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

/// The one check of an output path (a token file, or the name shards are made from), before
/// anything is written: its directory exists, it is not a directory, not a device, FIFO or
/// socket, and not one of `inputs` (writing it would destroy that input).
pub fn check_output(out: &Path, inputs: &[Input]) -> Result<()> {
    let shown = out.display().to_string();
    if out.is_dir() {
        return Err(Error::OutputIsDirectory(shown));
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(Error::OutputDirMissing {
                path: shown,
                dir: dir.display().to_string(),
            });
        }
    }
    let Ok(meta) = std::fs::metadata(out) else {
        return Ok(()); // not there yet: it cannot be an input
    };
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "the output {} exists and is not a regular file (a device, FIFO or socket); name a \
             file to write",
            py_repr(&shown)
        )));
    }
    // Only inputs of the same file name can be the same file (a link under another name is
    // not looked for); their real paths are compared.
    let real = std::fs::canonicalize(out).ok();
    let name = real.as_deref().and_then(Path::file_name);
    let is_input = inputs.iter().any(|input| {
        input.path.file_name() == name
            && std::fs::canonicalize(&input.path).ok().as_deref() == real.as_deref()
    });
    if is_input {
        return Err(Error::InvalidArgument(format!(
            "the output {} is one of the inputs: writing it would destroy that input; name \
             another output file",
            py_repr(&shown)
        )));
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

/// A run's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub tokens: u64,
    pub documents: u64,
    /// Input files.
    pub files: usize,
    /// Bytes of the input files (compressed bytes for compressed files).
    pub input_bytes: u64,
    /// Bytes of text read (decompressed).
    pub text_bytes: u64,
    /// Invalid UTF-8 sequences read as U+FFFD.
    pub replaced: u64,
}

impl Totals {
    /// The totals a sidecar or manifest records (the one reader of these fields).
    fn of_meta(meta: &Value) -> Self {
        let int = |k: &str| meta.get(k).and_then(Value::as_u64).unwrap_or(0);
        Totals {
            tokens: int("token_count"),
            documents: int("document_count"),
            files: meta
                .get("inputs")
                .and_then(Value::as_array)
                .map_or(0, Vec::len),
            input_bytes: int("input_bytes"),
            text_bytes: int("text_bytes"),
            replaced: int("replaced_invalid_utf8"),
        }
    }
}

/// How a tokenize run went, besides what it wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    /// A complete output of the same inputs, encoding and settings was there: nothing was done.
    pub up_to_date: bool,
    /// It went on from an earlier run's checkpoint.
    pub resumed: bool,
    /// Input bytes done before this run (all of them when up to date).
    pub resumed_bytes: u64,
    /// Text bytes (decompressed) the earlier run had done.
    pub resumed_text_bytes: u64,
    pub seconds: f64,
    /// Why earlier work could not be reused, when there was some.
    pub note: Option<String>,
}

/// What a tokenize run wrote (or found up to date).
#[derive(Clone, Debug)]
pub struct Written {
    /// The token file, or the shards' manifest.
    pub path: PathBuf,
    /// The sidecar, or the manifest, as on disk.
    pub meta: Value,
    /// The shard files in order (none for a single token file).
    pub shards: Vec<PathBuf>,
    pub totals: Totals,
    pub run: Run,
}

/// One input's counts (see [`count_files`]).
#[derive(Clone, Debug)]
pub struct FileTotal {
    pub path: PathBuf,
    pub format: Format,
    /// The file's size.
    pub bytes: u64,
    pub count: FileCount,
}

/// What [`count_files`] counted.
#[derive(Clone, Debug)]
pub struct Counted {
    pub totals: Totals,
    pub files: Vec<FileTotal>,
    pub seconds: f64,
}

/// One kind of output of a tokenize run: the single token file ([`output::TokenFile`]) or
/// numbered shards ([`shards::Sharded`]). The driver ([`drive`]) does everything else once:
/// planning, resuming, the journal, progress and the summary.
trait Output {
    type Sink: Sink;
    /// What [`Output::resumable`] finds in a journal for [`Output::open`].
    type Resume;
    /// The file that names the output: the token file, or the manifest.
    fn path(&self) -> PathBuf;
    /// What must match for a rerun to reuse work.
    fn identity(&self, encoder: &Encoder, settings: &Settings) -> Value;
    /// The journal's path and kind.
    fn journal(&self) -> (PathBuf, &'static str);
    /// The complete output of this `identity` and these `inputs`, if it is there: its sidecar
    /// or manifest, and its shard files.
    fn up_to_date(&self, identity: &Value, inputs: &[Value]) -> Option<(Value, Vec<PathBuf>)>;
    /// Why earlier work is lost when there is no journal, if there is any.
    fn no_journal(&self) -> Option<String> {
        None
    }
    /// What `journal` (identity and inputs checked, at `counts`) gives to go on from, or why
    /// it cannot be.
    fn resumable(
        &self,
        journal: &Value,
        counts: &Counts,
    ) -> std::result::Result<Self::Resume, String>;
    /// The sink: going on from `resume` at `counts`, or (None) fresh, what earlier runs left
    /// removed.
    fn open(&self, resume: Option<Self::Resume>, counts: &Counts) -> Result<Self::Sink>;
    /// Completes the output; `head` holds the identity and the run's summary fields. The meta
    /// as written, and the shard files.
    fn finish(
        &self,
        sink: Self::Sink,
        head: Value,
        counts: &Counts,
    ) -> Result<(Value, Vec<PathBuf>)>;
}

/// Where an [`Output`]'s tokens are written, in input order.
trait Sink {
    /// Appends tokens laid out in the dtype; a document starts at each of `doc_starts` (token
    /// offsets into `bytes`).
    fn write(&mut self, bytes: &[u8], doc_starts: &[u64]) -> Result<()>;
    /// Complete pieces (shards) so far: a new one is checkpointed at once.
    fn pieces(&self) -> usize {
        0
    }
    /// Flushes and syncs what is written; the journal fields that describe it beyond the
    /// position and the counts.
    fn sync(&mut self) -> Result<Vec<(&'static str, Value)>>;
}

/// What every run's writing side keeps: the counts, where reading is, and the progress callback.
struct Tally<'a> {
    counts: Counts,
    position: Position,
    raw_done: u64,
    total: u64,
    progress: &'a mut dyn FnMut(&Progress) -> Result<()>,
}

impl Tally<'_> {
    fn add(&mut self, done: pipeline::Done) {
        self.counts.add(&done.encoded);
        self.position = done.end;
        self.raw_done = done.raw_done;
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

struct CountHandler<'a> {
    tally: Tally<'a>,
}

impl pipeline::Handler for CountHandler<'_> {
    fn done(&mut self, done: pipeline::Done) -> Result<()> {
        self.tally.add(done);
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        self.tally.report()
    }
}

/// Writes results into a [`Sink`] and checkpoints them in the journal.
struct WriteHandler<'a, S: Sink> {
    sink: S,
    tally: Tally<'a>,
    /// The journal's fixed fields (identity, kind, version, inputs).
    head: Value,
    journal: PathBuf,
    last_checkpoint: Instant,
    every: Duration,
    pieces: usize,
}

impl<S: Sink> WriteHandler<'_, S> {
    /// Syncs the sink, then records how far it goes (atomically).
    fn checkpoint(&mut self) -> Result<()> {
        let extra = self.sink.sync()?;
        let mut journal = self.head.clone();
        if let Value::Object(map) = &mut journal {
            map.insert(
                "position".into(),
                output::position_json(&self.tally.position),
            );
            map.insert("counts".into(), self.tally.counts.to_json());
            for (key, value) in extra {
                map.insert(key.into(), value);
            }
        }
        let data = serde_json::to_vec(&journal)
            .map_err(|e| Error::InvalidArgument(format!("journal: {e}")))?;
        output::write_atomic(&self.journal, &data)?;
        self.last_checkpoint = Instant::now();
        self.pieces = self.sink.pieces();
        Ok(())
    }

    /// `result`, after a checkpoint when it is an error (the work written so far stays
    /// resumable; a failing disk may refuse even this).
    fn keep<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            let _ = self.checkpoint();
        }
        result
    }
}

impl<S: Sink> pipeline::Handler for WriteHandler<'_, S> {
    fn done(&mut self, done: pipeline::Done) -> Result<()> {
        self.sink
            .write(&done.encoded.bytes, &done.encoded.doc_starts)?;
        self.tally.add(done);
        if self.sink.pieces() != self.pieces || self.last_checkpoint.elapsed() >= self.every {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        self.tally.report()
    }
}

#[allow(clippy::too_many_arguments)]
fn plan<'a>(
    encoder: &'a Encoder,
    settings: &'a Settings,
    inputs: &'a [Input],
    identities: &'a [source::Identity],
    start: &'a Position,
    raw_before: u64,
    dtype: Option<Dtype>,
    options: &RunOptions,
) -> pipeline::Plan<'a> {
    pipeline::Plan {
        bpe: &encoder.bpe,
        settings,
        inputs,
        identities,
        start,
        raw_before,
        dtype,
        threads: crate::parallel::effective_threads(options.threads, usize::MAX),
        job_bytes: options.job_bytes.max(1),
        cuttable: encoder.cuttable(),
    }
}

/// Tokenizes `inputs` into the token file `out` (plus `out.idx` and `out.json`).
pub fn tokenize_files(
    encoder: &Encoder,
    inputs: &[Input],
    out: &Path,
    settings: &Settings,
    options: &RunOptions,
    progress: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Written> {
    let spec = ShardSpec::unsharded();
    tokenize(encoder, inputs, out, settings, &spec, options, progress)
}

/// Tokenizes `inputs` into the token file `out`, or into numbered shards named after it and
/// their manifest when `spec` asks for shards (see [`shards`]).
pub fn tokenize(
    encoder: &Encoder,
    inputs: &[Input],
    out: &Path,
    settings: &Settings,
    spec: &ShardSpec,
    options: &RunOptions,
    progress: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Written> {
    let started = Instant::now();
    check_inputs(inputs, settings, encoder)?;
    check_output(out, inputs)?;
    if spec.sharded() {
        let output = shards::Sharded::new(out, spec.clone(), encoder)?;
        drive(
            &output, encoder, inputs, settings, options, progress, started,
        )
    } else {
        let output = output::TokenFile::new(out, encoder.dtype());
        drive(
            &output, encoder, inputs, settings, options, progress, started,
        )
    }
}

/// The one way a tokenize run goes, whatever its [`Output`]: an up-to-date output is left as
/// it is; else the run goes on from the journal of a stopped one when it may (or starts over
/// and says why), checkpoints as it writes, and completes the output.
fn drive<O: Output>(
    output: &O,
    encoder: &Encoder,
    inputs: &[Input],
    settings: &Settings,
    options: &RunOptions,
    progress: &mut dyn FnMut(&Progress) -> Result<()>,
    started: Instant,
) -> Result<Written> {
    let identities = source::identify(inputs)?;
    let described = output::describe_inputs(inputs, &identities);
    let identity = output.identity(encoder, settings);
    let total = total_bytes(&described);
    if options.resume {
        if let Some((meta, shards)) = output.up_to_date(&identity, &described) {
            let totals = Totals::of_meta(&meta);
            progress(&Progress {
                bytes_done: total,
                bytes_total: total,
                tokens: totals.tokens,
                documents: totals.documents,
            })?;
            let run = Run {
                up_to_date: true,
                resumed_bytes: total,
                seconds: started.elapsed().as_secs_f64(),
                ..Run::default()
            };
            return Ok(Written {
                path: output.path(),
                meta,
                shards,
                totals,
                run,
            });
        }
    }
    let (journal, kind) = output.journal();
    let mut note = None;
    let mut resume = None;
    if options.resume {
        match output::read_json(&journal) {
            None => note = output.no_journal(),
            Some(old) => {
                let point = output::resume_point(&old, &journal, kind, &identity, &described)
                    .and_then(|(position, counts)| {
                        Ok((output.resumable(&old, &counts)?, position, counts))
                    });
                match point {
                    Ok(point) => resume = Some(point),
                    Err(why) => note = Some(format!("cannot resume the earlier run: {why}")),
                }
            }
        }
    }
    let resumed = resume.is_some();
    let (sink, position, counts) = match resume {
        Some((state, position, counts)) => (output.open(Some(state), &counts)?, position, counts),
        None => {
            let counts = Counts {
                per_file: vec![work::FileCount::default(); inputs.len()],
                ..Counts::default()
            };
            (output.open(None, &counts)?, Position::default(), counts)
        }
    };
    let raw_before: u64 = described
        .iter()
        .take(position.file)
        .filter_map(|v| v.get("bytes").and_then(Value::as_u64))
        .sum();
    // Parquet positions count rows: the reader's own figure, not the offset.
    let resumed_bytes = source::raw_done_at(inputs, &identities, &position);
    let resumed_text_bytes = counts.text_bytes;
    let mut head = identity.clone();
    if let Value::Object(map) = &mut head {
        map.insert("kind".into(), kind.into());
        map.insert("version".into(), 1.into());
        map.insert("inputs".into(), Value::Array(described.clone()));
    }
    let pieces = sink.pieces();
    let start = position.clone();
    let mut handler = WriteHandler {
        sink,
        tally: Tally {
            counts,
            position,
            raw_done: resumed_bytes,
            total,
            progress,
        },
        head,
        journal,
        last_checkpoint: Instant::now(),
        every: options.checkpoint_every,
        pieces,
    };
    handler.checkpoint()?;
    let plan = plan(
        encoder,
        settings,
        inputs,
        &identities,
        &start,
        raw_before,
        Some(encoder.dtype()),
        options,
    );
    let ran = pipeline::run(&plan, &mut handler);
    handler.keep(ran)?;
    handler.tally.raw_done = total;
    let reported = handler.tally.report();
    handler.keep(reported)?;
    let WriteHandler { sink, tally, .. } = handler;
    let counts = tally.counts;
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
    let (meta, shards) = output.finish(sink, head, &counts)?;
    let run = Run {
        up_to_date: false,
        resumed,
        resumed_bytes: if resumed { resumed_bytes } else { 0 },
        resumed_text_bytes,
        seconds: started.elapsed().as_secs_f64(),
        note,
    };
    Ok(Written {
        path: output.path(),
        totals: Totals::of_meta(&meta),
        meta,
        shards,
        run,
    })
}

/// Counts the tokens of `inputs` (per file and in total) without writing them.
pub fn count_files(
    encoder: &Encoder,
    inputs: &[Input],
    settings: &Settings,
    options: &RunOptions,
    progress: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Counted> {
    let started = Instant::now();
    check_inputs(inputs, settings, encoder)?;
    let identities = source::identify(inputs)?;
    let total = identities.iter().map(|id| id.size).sum();
    let mut handler = CountHandler {
        tally: Tally {
            counts: Counts {
                per_file: vec![work::FileCount::default(); inputs.len()],
                ..Counts::default()
            },
            position: Position::default(),
            raw_done: 0,
            total,
            progress,
        },
    };
    let start = Position::default();
    let plan = plan(
        encoder,
        settings,
        inputs,
        &identities,
        &start,
        0,
        None,
        options,
    );
    pipeline::run(&plan, &mut handler)?;
    handler.tally.raw_done = total;
    handler.tally.report()?;
    let counts = handler.tally.counts;
    let files = inputs
        .iter()
        .zip(&identities)
        .zip(&counts.per_file)
        .map(|((input, id), &count)| FileTotal {
            path: input.path.clone(),
            format: input.format,
            bytes: id.size,
            count,
        })
        .collect();
    Ok(Counted {
        totals: Totals {
            tokens: counts.tokens,
            documents: counts.documents,
            files: inputs.len(),
            input_bytes: total,
            text_bytes: counts.text_bytes,
            replaced: counts.replaced,
        },
        files,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Each input with its identity (size, mtime, sha256 of head and tail), as sidecars and
/// manifests list it; for callers that write the output themselves (the Ray driver).
pub fn describe_inputs(inputs: &[Input]) -> Result<Vec<Value>> {
    Ok(output::describe_inputs(inputs, &source::identify(inputs)?))
}
