//! Reading inputs: plain, gzip or zstd files (told apart by their first bytes) and Parquet string
//! columns, cut into jobs of about `job_bytes` at document, line or safe-cut boundaries; every
//! input checked to be a regular file that does not change while it is read.
//!
//! Design notes (Parquet; `benches/bench_parquet.py`, 2-core dev machine):
//! - Compared: (a) the `parquet` crate (arrow-rs, the Arrow reader, codecs snappy/zstd/gzip only)
//!   in this reader thread, feeding the same jobs as text and JSONL, vs (b) pyarrow in Python
//!   handing Arrow batches to the zero-copy Arrow path (`rust/flat.rs`, `rust/py/arrow.rs`). (b)
//!   would need pyarrow for the CLI, the GIL for each batch and a second job pipeline (resume,
//!   checkpoints, progress); (a) keeps one pipeline, works in `cargo test` without Python, and its
//!   cost is one memcpy of the column's values into the job (a few percent of encoding).
//! - Row groups are streamed in order, in batches sized to ~`job_bytes` of text (from the column
//!   chunk's uncompressed size); pages are read lazily from the file, so memory is a few jobs plus
//!   one page whatever the row-group size.
//! - A resumed run skips the rows done (`Position::offset` counts rows for Parquet); its progress
//!   and `resumed_bytes` count the file's bytes in proportion to the rows (`raw_done_at`), as the
//!   reader does.
//! - Measured (`benches/bench_parquet.py`, 220 MB of text in 54,308 rows, one 72 MB snappy row
//!   group; load 12-25 on the 2 shared cores): 1.06x the same documents as JSONL per CPU second
//!   (rounds 1.23, 1.05, 1.06), after the merge with arch 1.24x (1.31, 1.16; load 13-14;
//!   `benches/results/parquet.json`); peak RSS 109 MB, 102 MB for a quarter of the shard (JSONL
//!   65 MB). The target (>= 0.9x, <= 300 MB) holds without a change to the reader.
//! - Identity: device, inode, size, mtime and the sha256 of the first and last 16 KiB, taken once,
//!   when the run is planned (kept in the journal and the sidecar, so a same-size, same-mtime edit
//!   between a stop and its resume is seen); when the file is opened and when its read ends only
//!   device, inode, size and mtime are compared (a write moves the mtime). Hashing at all three
//!   was 5.8% of the CPU samples of README command 1 (1,790 files of ~18 kB, each hashed whole
//!   three times), once 2.0% (`perf`, 8 runs). The planned identities are taken on all cores. A
//!   plain file is read to at most its planned size plus one byte, so a file growing while read
//!   costs no more memory.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::{Array, LargeStringArray, StringArray, StringViewArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::pretok::cut;

use super::{Format, Input, Position};

/// Bytes hashed at each end of a file for its identity.
const HASH_SPAN: u64 = 16 << 10;

/// What identifies an input's content cheaply: a change between two of these (taken when a run is
/// planned and when the file's read ends) is an error naming the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: u64,
    /// sha256 of the first and the last `HASH_SPAN` bytes (the whole file when it is small).
    pub head_tail_sha256: String,
}

fn kind_of(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

fn not_regular(path: &Path, file_type: &std::fs::FileType) -> Error {
    Error::Io {
        path: path.display().to_string(),
        reason: format!("it is {}; inputs must be regular files", kind_of(file_type)),
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Reads `len` bytes at `offset` without moving the file's position (fewer at the end).
fn read_span(file: &File, offset: u64, len: u64, out: &mut Vec<u8>) -> io::Result<()> {
    let start = out.len();
    out.resize(start + len as usize, 0);
    let mut got = 0usize;
    while let Some(rest) = out.get_mut(start + got..).filter(|r| !r.is_empty()) {
        match read_at(file, rest, offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.truncate(start + got);
    Ok(())
}

/// The identity of the open `file` (a regular file; `path` names it in errors) but its hash:
/// what the checks while a run reads the file compare (see the design notes).
fn stat_of(file: &File, path: &Path) -> Result<Identity> {
    let meta = file.metadata().map_err(|e| io_error(path, &e))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path, &meta.file_type()));
    }
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    #[cfg(unix)]
    let (dev, ino) = {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    };
    #[cfg(not(unix))]
    let (dev, ino) = (0, 0);
    Ok(Identity {
        dev,
        ino,
        size: meta.len(),
        mtime_ns,
        head_tail_sha256: String::new(),
    })
}

/// The identity of the open `file`, with the sha256 of its first and last `HASH_SPAN` bytes.
fn identity_of(file: &File, path: &Path) -> Result<Identity> {
    let mut identity = stat_of(file, path)?;
    let size = identity.size;
    let mut data = Vec::new();
    let spans = if size <= 2 * HASH_SPAN {
        [(0, size), (0, 0)]
    } else {
        [(0, HASH_SPAN), (size - HASH_SPAN, HASH_SPAN)]
    };
    for (offset, len) in spans {
        read_span(file, offset, len, &mut data).map_err(|e| io_error(path, &e))?;
    }
    let mut hasher = Sha256::new();
    hasher.update(size.to_le_bytes());
    hasher.update(&data);
    identity.head_tail_sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(identity)
}

/// Opens `path` for reading if it is a regular file (checked before opening, so a FIFO is never
/// opened: that would wait for a writer).
fn open_regular(path: &Path) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path, &meta.file_type()));
    }
    File::open(path).map_err(|e| io_error(path, &e))
}

/// The identity of each input, in order (on all cores: a corpus of small files spends a few
/// percent of its run here); the first error in input order for a missing or non-regular one.
pub fn identify(inputs: &[Input]) -> Result<Vec<Identity>> {
    crate::parallel::map(inputs, 0, |input| {
        identity_of(&open_regular(&input.path)?, &input.path)
    })
    .into_iter()
    .collect()
}

/// Input bytes done before `position`: the sizes of the files before it plus, inside a file, the
/// share the reader's progress counts there (see [`Reader::read_parquet`] and `open`): the offset
/// for text and JSONL (capped at the file's size: a compressed file's offset counts decompressed
/// bytes) and, for Parquet, where the offset counts rows, the file's size in proportion to the
/// rows done. A resumed run starts its progress from this and reports it as done earlier.
pub fn raw_done_at(inputs: &[Input], identities: &[Identity], position: &Position) -> u64 {
    let before: u64 = identities.iter().take(position.file).map(|i| i.size).sum();
    let (Some(input), Some(planned)) = (inputs.get(position.file), identities.get(position.file))
    else {
        return before;
    };
    let inside = match input.format {
        Format::Parquet if position.offset > 0 => {
            // An unreadable footer counts nothing here: reading the file reports it.
            let total_rows = open_regular(&input.path)
                .ok()
                .and_then(|file| {
                    parquet::file::metadata::ParquetMetaDataReader::new()
                        .parse_and_finish(&file)
                        .ok()
                })
                .map_or(0, |m| {
                    u64::try_from(m.file_metadata().num_rows()).unwrap_or(0)
                });
            row_share(planned.size, position.offset.min(total_rows), total_rows)
        }
        Format::Parquet => 0,
        _ => position.offset.min(planned.size),
    };
    before + inside
}

/// The bytes of a Parquet file of `size` bytes counted done after `rows` of its `total_rows`.
fn row_share(size: u64, rows: u64, total_rows: u64) -> u64 {
    if total_rows == 0 {
        size
    } else {
        (u128::from(size) * u128::from(rows) / u128::from(total_rows)) as u64
    }
}

/// Whether `now` is the identity `planned` (the hashes compared only when `now` has one).
fn same_identity(planned: &Identity, now: &Identity) -> bool {
    (planned.dev, planned.ino, planned.size, planned.mtime_ns)
        == (now.dev, now.ino, now.size, now.mtime_ns)
        && (now.head_tail_sha256.is_empty() || now.head_tail_sha256 == planned.head_tail_sha256)
}

/// The error when `now` (at `when`) differs from `planned`.
fn check_identity(path: &Path, planned: &Identity, now: &Identity, when: &str) -> Result<()> {
    if same_identity(planned, now) {
        return Ok(());
    }
    let what = if planned.dev != now.dev || planned.ino != now.ino {
        "it was replaced by another file".to_string()
    } else if planned.size != now.size {
        format!("its size went from {} to {} bytes", planned.size, now.size)
    } else if planned.mtime_ns != now.mtime_ns {
        "it was modified".to_string()
    } else {
        "its content changed (same size and mtime)".to_string()
    };
    Err(Error::Io {
        path: path.display().to_string(),
        reason: format!("the file changed {when} ({what}); rerun once nothing writes to it"),
    })
}

/// A failed allocation of `bytes` for `path`'s data, as an error instead of an abort.
pub fn out_of_memory(path: &Path, bytes: usize) -> Error {
    Error::OutOfMemory(format!(
        "cannot allocate {bytes} bytes to read {}",
        path.display()
    ))
}

/// How an input file is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Counts the bytes read from the file itself (compressed bytes for compressed files).
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

pub fn io_error(path: &Path, e: &io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Opens `path` for reading its text, decompressing gzip and zstd files (told apart by their
/// first bytes, which are invalid UTF-8, so no text file starts with them); `counter` counts the
/// bytes read from the file itself.
pub fn open(
    mut file: io::Take<File>,
    path: &Path,
    counter: &Arc<AtomicU64>,
) -> Result<(Box<dyn Read + Send>, Compression)> {
    let mut magic = [0u8; 4];
    let mut got = 0;
    while let Some(rest) = magic.get_mut(got..).filter(|r| !r.is_empty()) {
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path, &e)),
        }
    }
    let head = magic.get(..got).unwrap_or_default();
    let compression = compression_of(head);
    counter.fetch_add(got as u64, Ordering::Relaxed);
    let counting = Counting {
        inner: file,
        read: Arc::clone(counter),
    };
    let stream = io::Cursor::new(head.to_vec()).chain(counting);
    let reader: Box<dyn Read + Send> = match compression {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            256 << 10,
            stream,
        ))),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(stream).map_err(|e| io_error(path, &e))?)
        }
    };
    Ok((reader, compression))
}

/// How a file whose first bytes are `head` is stored.
fn compression_of(head: &[u8]) -> Compression {
    match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    }
}

/// A whole file's bytes `raw` (read elsewhere, e.g. by a Ray read task) as its text: decompressed
/// as [`open`] decompresses the file (the same detection and decoders, the same errors naming
/// `path`); borrowed when it is not compressed.
pub fn decompress<'a>(raw: &'a [u8], path: &Path) -> Result<std::borrow::Cow<'a, [u8]>> {
    let mut reader: Box<dyn Read + 'a> = match compression_of(raw.get(..4).unwrap_or(raw)) {
        Compression::None => return Ok(std::borrow::Cow::Borrowed(raw)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(raw).map_err(|e| io_error(path, &e))?)
        }
    };
    let mut data = Vec::new();
    let mut want = raw.len().saturating_mul(4).max(1 << 20);
    while !fill(reader.as_mut(), &mut data, want, path)? {
        want = want.saturating_mul(2);
    }
    Ok(std::borrow::Cow::Owned(data))
}

/// Reads into `data` until it holds `want` bytes or the reader ends; true at the end.
fn fill(reader: &mut dyn Read, data: &mut Vec<u8>, want: usize, path: &Path) -> Result<bool> {
    while data.len() < want {
        let before = data.len();
        let wanted = (want - before).max(64 << 10);
        data.try_reserve(wanted)
            .map_err(|_| out_of_memory(path, before + wanted))?;
        match reader.take(wanted as u64).read_to_end(data) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path, &e)),
        }
        if data.len() == before {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Skips `n` bytes of decompressed text (resuming inside a file).
fn skip(reader: &mut dyn Read, n: u64, path: &Path) -> Result<()> {
    let skipped = io::copy(&mut reader.take(n), &mut io::sink()).map_err(|e| io_error(path, &e))?;
    if skipped < n {
        return Err(Error::Io {
            path: path.display().to_string(),
            reason: format!(
                "file is shorter than when the interrupted run read it ({skipped} < {n} bytes)"
            ),
        });
    }
    Ok(())
}

/// Part of a job: bytes of one input file.
#[derive(Clone, Debug)]
pub struct Segment {
    pub file: usize,
    /// Byte range in the job's data.
    pub start: usize,
    pub end: usize,
    pub format: Format,
    /// Offset of the segment's first byte in the (decompressed) file.
    pub offset: u64,
    /// Line number (from 1) of the segment's first line, for JSONL.
    pub line: u64,
    /// A text segment that begins a document (the file's first segment).
    pub starts_doc: bool,
    /// A text segment that ends a document (the file's last segment).
    pub ends_doc: bool,
    /// Parquet: where each row (document) ends, from the segment's start; empty otherwise.
    pub rows: Vec<usize>,
}

impl Segment {
    /// The rows of file `file` from `start` to the end of `job`'s data, ending at `rows` (from
    /// `start`); `rows_done` counts the file's rows up to the last of them.
    fn parquet(file: usize, start: usize, job: &Job, rows_done: u64, rows: Vec<usize>) -> Self {
        Segment {
            file,
            start,
            end: job.data.len(),
            format: Format::Parquet,
            offset: rows_done - rows.len() as u64,
            line: 0,
            starts_doc: true,
            ends_doc: true,
            rows,
        }
    }
}

/// Input for one encoder thread: bytes of one or more files.
pub struct Job {
    pub data: Vec<u8>,
    pub segments: Vec<Segment>,
    /// Where reading goes on after this job (the resume point once it is written).
    pub end: Position,
    /// Bytes read from the input files so far (compressed bytes for compressed files).
    pub raw_done: u64,
}

/// What the reader produces, in order.
pub enum Item {
    Job(Job),
    /// Reading failed here; nothing after it is read.
    Failed(Error),
}

/// Cuts the inputs from `start` into jobs and hands each to `emit` in order; stops early when
/// `emit` returns false. `raw_before` is the size of the files before `start.file`.
#[allow(clippy::too_many_arguments)]
pub fn read_jobs(
    inputs: &[Input],
    identities: &[Identity],
    field: &str,
    start: &Position,
    raw_before: u64,
    job_bytes: usize,
    threads: usize,
    cuttable: bool,
    emit: &mut dyn FnMut(Item) -> bool,
) {
    let counter = Arc::new(AtomicU64::new(raw_before));
    let total = identities.iter().map(|id| id.size).sum();
    let mut job = Job {
        data: Vec::with_capacity(job_bytes + (job_bytes >> 2)),
        segments: Vec::new(),
        end: start.clone(),
        raw_done: raw_before,
    };
    let mut reader = Reader {
        job_bytes,
        max_job: job_bytes,
        total,
        threads: threads.max(1),
        cuttable,
        counter,
        field,
    };
    for (index, input) in inputs.iter().enumerate().skip(start.file) {
        let resume = if index == start.file {
            start.clone()
        } else {
            Position {
                file: index,
                ..Position::default()
            }
        };
        let Some(planned) = identities.get(index) else {
            emit(Item::Failed(Error::InvalidArgument(
                "internal error: an input without its identity".into(),
            )));
            return;
        };
        let part = Part {
            input,
            planned,
            index,
            resume,
        };
        let result = match input.format {
            Format::Parquet => reader.read_parquet(&part, &mut job, emit),
            _ => reader.read_file(&part, &mut job, emit),
        };
        match result {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                // The segments read before the failure go first, so errors stay in input order
                // (an invalid file before this one is reported first) and the work is kept.
                job.raw_done = reader.counter.load(Ordering::Relaxed);
                if !job.segments.is_empty() && !emit(Item::Job(job)) {
                    return;
                }
                emit(Item::Failed(error));
                return;
            }
        }
    }
    job.end = Position {
        file: inputs.len(),
        ..Position::default()
    };
    job.raw_done = reader.counter.load(Ordering::Relaxed);
    if !job.segments.is_empty() {
        emit(Item::Job(job));
    }
}

/// One input as the reader takes it.
struct Part<'i> {
    input: &'i Input,
    /// Its identity when the run was planned.
    planned: &'i Identity,
    /// Its place among the inputs.
    index: usize,
    /// Where its reading starts.
    resume: Position,
}

impl Part<'_> {
    /// Opens the file, checked to be the one planned; with a second handle on it for the check
    /// once its read ends.
    fn open(&self) -> Result<(File, File)> {
        let path = self.input.path.as_path();
        let file = open_regular(path)?;
        check_identity(
            path,
            self.planned,
            &stat_of(&file, path)?,
            "since the run started",
        )?;
        let probe = file.try_clone().map_err(|e| io_error(path, &e))?;
        Ok((file, probe))
    }
}

struct Reader<'a> {
    /// The size of the job being filled (see [`Reader::retarget`]).
    job_bytes: usize,
    /// The size asked for, kept while most of the input is still to be read.
    max_job: usize,
    /// Bytes of all the inputs (as `counter` counts them).
    total: u64,
    threads: usize,
    /// Whether a long document may be cut at `crate::pretok::cut`'s safe cuts.
    cuttable: bool,
    counter: Arc<AtomicU64>,
    /// The Parquet column (and JSONL field) holding the text.
    field: &'a str,
}

impl Reader<'_> {
    /// Sizes the next jobs by what is left to read: `max_job` while more than `2 * threads`
    /// jobs of it are left, then a `2 * threads`-th of the rest (at least `MIN_TAIL_JOB`), so
    /// the last jobs are small and the encoders finish together instead of one core encoding
    /// the last full job alone. The tokens do not depend on where jobs end.
    fn retarget(&mut self) {
        /// The smallest tail job.
        const MIN_TAIL_JOB: usize = 64 << 10;
        let left = self
            .total
            .saturating_sub(self.counter.load(Ordering::Relaxed));
        let share = usize::try_from(left / (2 * self.threads as u64)).unwrap_or(usize::MAX);
        self.job_bytes = share.clamp(MIN_TAIL_JOB.min(self.max_job), self.max_job);
    }

    /// Sends `job` (when it has anything) and starts a new one with `carry` as its data.
    fn send(
        &self,
        job: &mut Job,
        carry: &[u8],
        end: Position,
        emit: &mut dyn FnMut(Item) -> bool,
    ) -> bool {
        let mut data = Vec::new();
        if data
            .try_reserve(self.job_bytes + (self.job_bytes >> 2) + carry.len())
            .is_err()
        {
            // Nothing after this job is read.
            emit(Item::Failed(Error::OutOfMemory(format!(
                "cannot allocate {} bytes for the next job",
                carry.len() + self.job_bytes
            ))));
            return false;
        }
        data.extend_from_slice(carry);
        let mut full = std::mem::replace(
            job,
            Job {
                data,
                segments: Vec::new(),
                end: end.clone(),
                raw_done: 0,
            },
        );
        full.data
            .truncate(full.data.len() - carry.len().min(full.data.len()));
        full.end = end;
        full.raw_done = self.counter.load(Ordering::Relaxed);
        emit(Item::Job(full))
    }

    /// Ends the file `index`: reading goes on at the next one; a full job is sent (false when
    /// `emit` asked to stop).
    fn file_done(
        &mut self,
        job: &mut Job,
        index: usize,
        emit: &mut dyn FnMut(Item) -> bool,
    ) -> bool {
        // `job.end` is always where reading goes on after the job's last segment.
        job.end = Position {
            file: index + 1,
            ..Position::default()
        };
        self.retarget();
        if job.data.len() >= self.job_bytes {
            let next = job.end.clone();
            return self.send(job, &[], next, emit);
        }
        true
    }

    /// Reads one text or JSONL file into jobs; false when `emit` asked to stop.
    fn read_file(
        &mut self,
        part: &Part<'_>,
        job: &mut Job,
        emit: &mut dyn FnMut(Item) -> bool,
    ) -> Result<bool> {
        /// How much more to read when a full job has no cut yet.
        const GROW: usize = 256 << 10;
        let (input, planned, index, resume) = (part.input, part.planned, part.index, &part.resume);
        let path = input.path.as_path();
        let text = input.format == Format::Text;
        let (file, probe) = part.open()?;
        let raw_start = self.counter.load(Ordering::Relaxed);
        // One byte more than planned: enough to see that the file grew, never more memory.
        let (mut reader, compression) = open(
            file.take(planned.size.saturating_add(1)),
            path,
            &self.counter,
        )?;
        let end_check = |counter: &AtomicU64| -> Result<()> {
            let read = counter.load(Ordering::Relaxed) - raw_start;
            let mut now = stat_of(&probe, path)?;
            if compression == Compression::None
                && read != planned.size
                && same_identity(planned, &now)
            {
                now.size = read; // grew and shrank back, or was read short
            }
            check_identity(path, planned, &now, "while it was read")
        };
        if resume.offset > 0 {
            skip(reader.as_mut(), resume.offset, path)?;
        }
        let mut offset = resume.offset;
        let mut line = resume.line.max(1);
        let mut starts_doc = !resume.in_doc;
        // The current segment is job.data[seg_start..]; cuts are searched from `searched` on.
        let mut seg_start = job.data.len();
        let mut searched = seg_start;
        loop {
            self.retarget();
            let target = if job.data.len() < self.job_bytes {
                self.job_bytes
            } else {
                job.data.len() + GROW
            };
            if fill(reader.as_mut(), &mut job.data, target, path)? {
                end_check(&self.counter)?;
                if text || job.data.len() > seg_start {
                    job.segments.push(Segment {
                        file: index,
                        start: seg_start,
                        end: job.data.len(),
                        format: input.format,
                        offset,
                        line,
                        starts_doc,
                        ends_doc: true,
                        rows: Vec::new(),
                    });
                }
                return Ok(self.file_done(job, index, emit));
            }
            // The job is full: cut the current segment at its last boundary.
            let segment = job.data.get(seg_start..).unwrap_or_default();
            let from = searched.saturating_sub(seg_start);
            let cut = if !text {
                memchr::memrchr(b'\n', segment.get(from..).unwrap_or_default())
                    .map(|i| from + i + 1)
            } else if self.cuttable {
                cut::last_safe_cut(segment, from)
            } else {
                None
            };
            let Some(cut) = cut else {
                let here = Position {
                    file: index,
                    offset,
                    line,
                    in_doc: text && !starts_doc,
                };
                if seg_start > 0 {
                    // Send the earlier files' segments; this one starts the next job.
                    let carry = job.data.get(seg_start..).unwrap_or_default().to_vec();
                    if !self.send(job, &carry, here, emit) {
                        return Ok(false);
                    }
                    seg_start = 0;
                }
                // Read on: memory grows with the longest stretch that has no boundary.
                searched = job.data.len().saturating_sub(2).max(seg_start);
                continue;
            };
            let cut_at = seg_start + cut;
            let head = job.data.get(seg_start..cut_at).unwrap_or_default();
            let lines = if text {
                0
            } else {
                memchr::memchr_iter(b'\n', head).count() as u64
            };
            job.segments.push(Segment {
                file: index,
                start: seg_start,
                end: cut_at,
                format: input.format,
                offset,
                line,
                starts_doc,
                ends_doc: false,
                rows: Vec::new(),
            });
            offset += cut as u64;
            line += lines;
            starts_doc = false;
            let next = Position {
                file: index,
                offset,
                line,
                in_doc: text,
            };
            let carry = job.data.get(cut_at..).unwrap_or_default().to_vec();
            if !self.send(job, &carry, next, emit) {
                return Ok(false);
            }
            seg_start = 0;
            searched = 0;
        }
    }

    /// Reads the string column `self.field` of a Parquet file, one row a document (a null is an
    /// empty document), into jobs; false when `emit` asked to stop.
    fn read_parquet(
        &mut self,
        part: &Part<'_>,
        job: &mut Job,
        emit: &mut dyn FnMut(Item) -> bool,
    ) -> Result<bool> {
        let (input, planned, index, resume) = (part.input, part.planned, part.index, &part.resume);
        let path = input.path.as_path();
        let (file, probe) = part.open()?;
        let bad = |e: parquet::errors::ParquetError| Error::Io {
            path: path.display().to_string(),
            reason: format!("not a readable Parquet file ({e})"),
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(bad)?;
        let schema = Arc::clone(builder.schema());
        let field = self.field;
        let Some((column, found)) = schema.column_with_name(field) else {
            let mut names: Vec<String> = schema
                .fields()
                .iter()
                .take(16)
                .map(|f| format!("{:?}", f.name()))
                .collect();
            if schema.fields().len() > names.len() {
                names.push("...".into());
            }
            let has = if names.is_empty() {
                "it has no columns".to_string()
            } else {
                format!("its columns are {}", names.join(", "))
            };
            return Err(Error::InvalidArgument(format!(
                "{}: no column {field:?} ({has}); pick the text column with --field / field=",
                path.display()
            )));
        };
        if !matches!(
            found.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            return Err(Error::InvalidArgument(format!(
                "{}: column {field:?} holds {}, expected strings; pick the text column with \
                 --field / field=",
                path.display(),
                found.data_type()
            )));
        }
        let metadata = Arc::clone(builder.metadata());
        let total_rows = u64::try_from(metadata.file_metadata().num_rows()).unwrap_or(0);
        // Rows per batch: about a job's worth of text, from the column chunks' sizes.
        let (bytes, rows) = metadata.row_groups().iter().fold((0u64, 0u64), |acc, rg| {
            let bytes = rg
                .columns()
                .get(column)
                .map_or(0, |c| u64::try_from(c.uncompressed_size()).unwrap_or(0));
            (
                acc.0 + bytes,
                acc.1 + u64::try_from(rg.num_rows()).unwrap_or(0),
            )
        });
        let per_row = (bytes / rows.max(1)).max(1);
        let batch_rows = (self.job_bytes as u64 / per_row).clamp(1, 1 << 16) as usize;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
        let skip = usize::try_from(resume.offset).unwrap_or(usize::MAX);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(batch_rows)
            .with_offset(skip)
            .build()
            .map_err(bad)?;
        // Progress counts the file's bytes in proportion to the rows read.
        let raw_base = self.counter.load(Ordering::Relaxed);
        let mut rows_done = resume.offset.min(total_rows);
        let account = |counter: &AtomicU64, rows_done: u64| {
            counter.store(
                raw_base + row_share(planned.size, rows_done, total_rows),
                Ordering::Relaxed,
            );
        };
        account(&self.counter, rows_done);
        let mut seg_start = job.data.len();
        let mut ends: Vec<usize> = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| Error::Io {
                path: path.display().to_string(),
                reason: format!("cannot decode the Parquet data ({e})"),
            })?;
            let Some(array) = batch.columns().first() else {
                continue;
            };
            let n = array.len();
            push_strings(array.as_ref(), &mut job.data, &mut ends, seg_start, path)?;
            rows_done += n as u64;
            account(&self.counter, rows_done);
            self.retarget();
            if job.data.len() >= self.job_bytes {
                let rows = std::mem::take(&mut ends);
                job.segments
                    .push(Segment::parquet(index, seg_start, job, rows_done, rows));
                account(&self.counter, rows_done);
                let next = Position {
                    file: index,
                    offset: rows_done,
                    line: 0,
                    in_doc: false,
                };
                if !self.send(job, &[], next, emit) {
                    return Ok(false);
                }
                seg_start = 0;
            }
        }
        check_identity(path, planned, &stat_of(&probe, path)?, "while it was read")?;
        if !ends.is_empty() {
            job.segments
                .push(Segment::parquet(index, seg_start, job, rows_done, ends));
        }
        account(&self.counter, total_rows);
        Ok(self.file_done(job, index, emit))
    }
}

/// Appends each string of `array` (a null as an empty string) to `data`, and where it ends, from
/// `seg_start`, to `ends`.
fn push_strings(
    array: &dyn Array,
    data: &mut Vec<u8>,
    ends: &mut Vec<usize>,
    seg_start: usize,
    path: &Path,
) -> Result<()> {
    fn push<'s>(
        values: impl Iterator<Item = Option<&'s str>>,
        bytes: usize,
        rows: usize,
        data: &mut Vec<u8>,
        ends: &mut Vec<usize>,
        seg_start: usize,
        path: &Path,
    ) -> Result<()> {
        data.try_reserve(bytes)
            .map_err(|_| out_of_memory(path, data.len() + bytes))?;
        ends.try_reserve(rows)
            .map_err(|_| out_of_memory(path, rows * 8))?;
        for value in values {
            data.extend_from_slice(value.unwrap_or_default().as_bytes());
            ends.push(data.len() - seg_start);
        }
        Ok(())
    }
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        let bytes = a.value_data().len();
        push(a.iter(), bytes, a.len(), data, ends, seg_start, path)
    } else if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        let bytes = a.value_data().len();
        push(a.iter(), bytes, a.len(), data, ends, seg_start, path)
    } else if let Some(a) = any.downcast_ref::<StringViewArray>() {
        let bytes = a.total_bytes_len();
        push(a.iter(), bytes, a.len(), data, ends, seg_start, path)
    } else {
        Err(Error::InvalidArgument(format!(
            "{}: the text column holds {}, expected strings",
            path.display(),
            array.data_type()
        )))
    }
}
