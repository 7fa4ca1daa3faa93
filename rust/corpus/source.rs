//! Reading inputs: plain, gzip or zstd files (told apart by their first bytes), cut into jobs of
//! about `job_bytes` at document, line or safe-cut boundaries.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::pretok::cut;

use super::{Format, Input, Position};

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
pub fn open(path: &Path, counter: &Arc<AtomicU64>) -> Result<Box<dyn Read + Send>> {
    let mut file = File::open(path).map_err(|e| io_error(path, &e))?;
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
    let compression = match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    };
    counter.fetch_add(got as u64, Ordering::Relaxed);
    let counting = Counting {
        inner: file,
        read: Arc::clone(counter),
    };
    let stream = io::Cursor::new(head.to_vec()).chain(counting);
    Ok(match compression {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            256 << 10,
            stream,
        ))),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(stream).map_err(|e| io_error(path, &e))?)
        }
    })
}

/// Reads into `data` until it holds `want` bytes or the reader ends; true at the end.
fn fill(reader: &mut dyn Read, data: &mut Vec<u8>, want: usize, path: &Path) -> Result<bool> {
    while data.len() < want {
        let before = data.len();
        let wanted = (want - before).max(64 << 10) as u64;
        match reader.take(wanted).read_to_end(data) {
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
pub fn read_jobs(
    inputs: &[Input],
    start: &Position,
    raw_before: u64,
    job_bytes: usize,
    cuttable: bool,
    emit: &mut dyn FnMut(Item) -> bool,
) {
    let counter = Arc::new(AtomicU64::new(raw_before));
    let mut job = Job {
        data: Vec::with_capacity(job_bytes + (job_bytes >> 2)),
        segments: Vec::new(),
        end: start.clone(),
        raw_done: raw_before,
    };
    let mut reader = Reader {
        job_bytes,
        cuttable,
        counter,
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
        let result = reader.read_file(input, index, &resume, &mut job, emit);
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

struct Reader {
    job_bytes: usize,
    /// Whether a long document may be cut at `crate::pretok::cut`'s safe cuts.
    cuttable: bool,
    counter: Arc<AtomicU64>,
}

impl Reader {
    /// Sends `job` (when it has anything) and starts a new one with `carry` as its data.
    fn send(
        &self,
        job: &mut Job,
        carry: &[u8],
        end: Position,
        emit: &mut dyn FnMut(Item) -> bool,
    ) -> bool {
        let mut data = Vec::with_capacity(self.job_bytes + (self.job_bytes >> 2) + carry.len());
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

    /// Reads one file into jobs; false when `emit` asked to stop.
    fn read_file(
        &mut self,
        input: &Input,
        index: usize,
        resume: &Position,
        job: &mut Job,
        emit: &mut dyn FnMut(Item) -> bool,
    ) -> Result<bool> {
        /// How much more to read when a full job has no cut yet.
        const GROW: usize = 256 << 10;
        let path = input.path.as_path();
        let text = input.format == Format::Text;
        let mut reader = open(path, &self.counter)?;
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
            let target = if job.data.len() < self.job_bytes {
                self.job_bytes
            } else {
                job.data.len() + GROW
            };
            if fill(reader.as_mut(), &mut job.data, target, path)? {
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
                    });
                }
                // `job.end` is always where reading goes on after the job's last segment.
                job.end = Position {
                    file: index + 1,
                    ..Position::default()
                };
                if job.data.len() >= self.job_bytes {
                    let next = job.end.clone();
                    return Ok(self.send(job, &[], next, emit));
                }
                return Ok(true);
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
}
