//! Many documents encoded into one flat token buffer plus offsets, on all cores, with bounded
//! extra memory: the path behind `Encoding.encode_ordinary_arrow`.
//!
//! Design notes: the documents are cut into blocks of about `block_bytes` of text (a document is
//! never split). Worker threads take blocks in order from an atomic counter and encode each into
//! its own small buffer; the calling thread appends finished blocks to the output in input
//! order. A worker does not start a block more than `window` blocks ahead of the one being
//! appended, so the blocks waiting to be appended hold at most ~8 MiB of text's worth of tokens
//! whatever the corpus size: the peak is the output plus that window, where encoding every
//! document into its own `Vec` and concatenating at the end (`encode_batch_flat`) peaks at twice
//! the output. There is no barrier between waves of blocks, so a slow block only delays the
//! append, not the other workers. The output reserves one token per byte (+ EOT per document),
//! the most there can be, so it never moves; untouched pages are never resident, and it is
//! shrunk at the end. Threads are scoped to the call, as in `crate::parallel` (fork safety).
//!
//! Issue 15 (machine at load average 15-23 on 2 cores while measuring, so wall-clock batch
//! figures could not be taken; memory and CPU time only):
//! - `encode_batch_to_numpy` / `encode_ordinary_batch_to_numpy` now run here too
//!   ([`encode_flat`] takes the per-document encoder, so special tokens work): no per-document
//!   `Vec`s and no final concatenation (the old list path peaked at twice the tokens).
//! - Blocks are sized by bytes from the call's total (about `BLOCKS_PER_CORE` per thread, within
//!   16 KiB..1 MiB): a 5 MB batch was 5 blocks of 1 MiB on 2 threads (3 + 2: one core idle for a
//!   fifth of the call), now ~32.
//! - Workers reuse the buffers of appended blocks (`Shared::spare`): with a fresh buffer per
//!   block the flat path used 17% more CPU than the list path (CPU time, interleaved in one
//!   process, 6 MB of Python source, cl100k), as each block's buffer is a fresh mmap whose pages
//!   all fault on first touch.
//! - Not done: cutting one long document at safe points (`crate::pretok::cut`) across blocks;
//!   a parked worker pool (scoped threads cost tens of microseconds per call, measured as noise).
//!
//! Issue 15, batch room (CPU time per phase, interleaved in one process, 2 MB cut into 1-10 KB
//! documents, load average 5-7 on 2 cores: walls not usable):
//! - Why non-Latin batch barely scaled: the encoder's piece memo (`bpe::PieceMemo`) started
//!   empty for every document, so 1-10 KB documents lost most of its repeats. One thread's batch
//!   cost 1.61x the CPU of one call on the same text for cl100k non-Latin (95.4 vs 59.3 ms),
//!   1.54x for o200k (108.1 vs 70.0 ms); English 0.95x. Now each worker keeps one memo (the
//!   scratch `S` of [`encode_flat`]) for all its documents: one-thread batch 67.1 vs 64.6 ms
//!   (cl100k non-Latin), 77.7 vs 80.2 ms (o200k), English unchanged. Two threads cost ~12% more
//!   CPU than one (two memos warm up, each on half the text).
//! - Extracting the list of `str` (UTF-8 of each, borrowed; CPython builds and caches it for a
//!   non-ASCII str) runs with the GIL before the parallel part: 5-7 ms of CPU per 2 MB of
//!   non-Latin text (0.6 ms English), serial. Overlapping it (a [`Docs`] whose `text` waits for
//!   the reader, encoder started first) was tried and dropped: slower in wall time, see
//!   `py/convert.rs`'s notes.

use std::collections::BTreeMap;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use crate::encoding::CoreBpe;
use crate::error::{Error, Result};
use crate::parallel;
use crate::vocab::Rank;

/// Text of this many bytes, in all, may be encoded ahead of what has been appended.
const WINDOW_BYTES: usize = 8 << 20;
/// Blocks per thread that fit in the window.
const BLOCKS_PER_THREAD: usize = 4;
/// Blocks per thread a call is cut into when its text is small enough (balance: the last block
/// of one thread is at most ~1/16 of its share).
const BLOCKS_PER_CORE: usize = 16;
/// Block sizes: at least this (per-block overhead), at most that (window).
const MIN_BLOCK: usize = 16 << 10;
const MAX_BLOCK: usize = 1 << 20;

/// Documents read by index: an Arrow string column, a list of strings...
pub trait Docs: Sync {
    /// The number of documents.
    fn count(&self) -> usize;
    /// The size of document `i` in bytes (used to cut blocks; 0 for a null).
    fn byte_len(&self, i: usize) -> usize;
    /// The text of document `i` (a null is the empty string); checked here, on a worker thread.
    fn text(&self, i: usize) -> Result<&str>;
}

impl Docs for &[&str] {
    fn count(&self) -> usize {
        self.len()
    }
    fn byte_len(&self, i: usize) -> usize {
        self.get(i).map_or(0, |t| t.len())
    }
    fn text(&self, i: usize) -> Result<&str> {
        self.get(i)
            .copied()
            .ok_or_else(|| Error::InvalidArgument(format!("no document {i}")))
    }
}

/// The tokens of all documents, concatenated: document `i` (counting across all parts) is
/// `tokens[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FlatTokens {
    pub tokens: Vec<Rank>,
    pub offsets: Vec<i64>,
}

/// A block: documents `rows` of part `part`.
struct Block {
    part: usize,
    rows: Range<usize>,
}

/// An encoded block: its tokens and the token count of each of its documents.
type Encoded = (Vec<Rank>, Vec<usize>);

fn plan(parts: &[&dyn Docs], block_bytes: usize) -> (Vec<Block>, usize, usize) {
    let mut blocks = Vec::new();
    let (mut total_bytes, mut total_docs) = (0usize, 0usize);
    for (part, docs) in parts.iter().enumerate() {
        let n = docs.count();
        total_docs += n;
        let (mut start, mut bytes) = (0, 0usize);
        for i in 0..n {
            let len = docs.byte_len(i);
            total_bytes = total_bytes.saturating_add(len);
            bytes = bytes.saturating_add(len);
            if bytes >= block_bytes {
                blocks.push(Block {
                    part,
                    rows: start..i + 1,
                });
                (start, bytes) = (i + 1, 0);
            }
        }
        if start < n {
            blocks.push(Block {
                part,
                rows: start..n,
            });
        }
    }
    (blocks, total_bytes, total_docs)
}

/// Block size for `total` bytes of text on `threads` threads: about `BLOCKS_PER_CORE` blocks per
/// thread, so that the last blocks finish close together, within `MIN_BLOCK..=MAX_BLOCK`.
fn block_bytes(total: usize, threads: usize) -> usize {
    let most = (WINDOW_BYTES / (threads * BLOCKS_PER_THREAD)).clamp(MIN_BLOCK, MAX_BLOCK);
    (total / (threads * BLOCKS_PER_CORE)).clamp(MIN_BLOCK, most)
}

/// Room for `extra` more items in `v` (amortised growth), or `MemoryError`.
fn try_grow<T>(v: &mut Vec<T>, extra: usize, what: &str) -> Result<()> {
    v.try_reserve(extra).map_err(|_| {
        Error::OutOfMemory(format!(
            "cannot allocate {} more x {} bytes for {what}",
            extra,
            std::mem::size_of::<T>()
        ))
    })
}

fn encode_block<S>(
    encode_doc: &(impl Fn(&str, &mut S, &mut Vec<Rank>) -> Result<()> + Sync),
    docs: &dyn Docs,
    rows: Range<usize>,
    eot: Option<Rank>,
    (mut tokens, mut lens): Encoded,
    scratch: &mut S,
) -> Result<Encoded> {
    tokens.clear();
    lens.clear();
    let bytes: usize = rows.clone().map(|i| docs.byte_len(i)).sum();
    // Growth is fallible throughout (allocation failure is `MemoryError`, never an abort); the
    // encoder grows `tokens` fallibly as it goes.
    try_grow(&mut tokens, bytes / 3 + rows.len(), "a block's tokens")?;
    try_grow(&mut lens, rows.len(), "a block's documents")?;
    for i in rows {
        let before = tokens.len();
        encode_doc(docs.text(i)?, scratch, &mut tokens)?;
        if let Some(eot) = eot {
            try_grow(&mut tokens, 1, "a block's tokens")?;
            tokens.push(eot);
        }
        lens.push(tokens.len() - before);
    }
    Ok((tokens, lens))
}

/// Encodes every document of every part, ignoring special tokens, appending `eot` after each
/// document when given; on up to `threads` threads (0 = as many as allowed).
pub fn encode_ordinary_flat(
    bpe: &CoreBpe,
    parts: &[&dyn Docs],
    eot: Option<Rank>,
    threads: usize,
) -> Result<FlatTokens> {
    encode_flat(parts, eot, threads, |text, memo, out| {
        bpe.encode_ordinary_with(text, memo, out)
    })
}

/// [`encode_ordinary_flat`] with each document encoded by `encode_doc` (which appends its
/// tokens), e.g. with special tokens allowed. Each thread keeps one scratch `S` (the encoder's
/// piece memo) for all the documents it encodes.
pub fn encode_flat<S: Default>(
    parts: &[&dyn Docs],
    eot: Option<Rank>,
    threads: usize,
    encode_doc: impl Fn(&str, &mut S, &mut Vec<Rank>) -> Result<()> + Sync,
) -> Result<FlatTokens> {
    let threads = parallel::effective_threads(threads, usize::MAX);
    let total: usize = parts
        .iter()
        .map(|docs| (0..docs.count()).map(|i| docs.byte_len(i)).sum::<usize>())
        .sum();
    let block_bytes = block_bytes(total, threads);
    let (blocks, total_bytes, total_docs) = plan(parts, block_bytes);
    let window = (WINDOW_BYTES / block_bytes).max(threads * BLOCKS_PER_THREAD);
    let mut out = FlatTokens::default();
    let most = total_bytes.saturating_add(if eot.is_some() { total_docs } else { 0 });
    // Too large to reserve (a huge column on a small machine): grow as needed instead.
    let _ = out.tokens.try_reserve_exact(most);
    out.offsets
        .try_reserve_exact(total_docs + 1)
        .map_err(|e| Error::InvalidArgument(format!("{total_docs} documents: {e}")))?;
    out.offsets.push(0);
    let mut append = |(tokens, lens): &Encoded| -> Result<()> {
        let mut end = out.tokens.len();
        try_grow(&mut out.tokens, tokens.len(), "the tokens")?;
        out.tokens.extend_from_slice(tokens);
        for &len in lens {
            end += len;
            out.offsets.push(end as i64);
        }
        Ok(())
    };
    let encode = |b: &Block, spare: Encoded, scratch: &mut S| match parts.get(b.part) {
        Some(docs) => encode_block(&encode_doc, *docs, b.rows.clone(), eot, spare, scratch),
        None => Err(Error::InvalidArgument(
            "internal error: no such part".into(),
        )),
    };
    if threads <= 1 || blocks.len() <= 1 {
        let (mut spare, mut scratch) = (Encoded::default(), S::default());
        for block in &blocks {
            spare = encode(block, spare, &mut scratch)?;
            append(&spare)?;
        }
    } else {
        run_ordered(&blocks, threads, window, encode, append)?;
    }
    out.tokens.shrink_to_fit();
    Ok(out)
}

/// The blocks that are done and not yet appended, and the index of the next one to append.
struct Shared {
    done: BTreeMap<usize, Result<Encoded>>,
    next_to_append: usize,
    /// Appended blocks' buffers, for workers to reuse: a fresh buffer per block would be fresh
    /// memory whose pages all fault on first touch (blocks are over glibc's mmap threshold).
    spare: Vec<Encoded>,
}

/// Runs `encode` on `threads` worker threads, at most `window` blocks ahead of the next one to
/// append, and `append`s the results in order on the calling thread. Stops at the first error
/// (in input order).
fn run_ordered<S: Default>(
    blocks: &[Block],
    threads: usize,
    window: usize,
    encode: impl Fn(&Block, Encoded, &mut S) -> Result<Encoded> + Sync,
    mut append: impl FnMut(&Encoded) -> Result<()>,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let shared = Mutex::new(Shared {
        done: BTreeMap::new(),
        next_to_append: 0,
        spare: Vec::new(),
    });
    let changed = Condvar::new();
    let lock = || shared.lock().unwrap_or_else(PoisonError::into_inner);
    let worker = || {
        let mut scratch = S::default();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(block) = blocks.get(i) else { break };
            let spare = {
                let mut state = lock();
                while i >= state.next_to_append + window && !stop.load(Ordering::Relaxed) {
                    state = changed.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
                state.spare.pop().unwrap_or_default()
            };
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let result = catch_unwind(AssertUnwindSafe(|| encode(block, spare, &mut scratch)))
                .unwrap_or_else(|_| {
                    // The scratch may be half updated: start a new one.
                    scratch = S::default();
                    Err(Error::InvalidArgument(
                        "internal error: an encoder thread panicked".into(),
                    ))
                });
            lock().done.insert(i, result);
            changed.notify_all();
        }
    };
    std::thread::scope(|scope| {
        // A thread that cannot be started (a process or memory limit) is not used: fewer
        // workers share the blocks. With none at all, the calling thread encodes them itself.
        let started = (0..threads)
            .map_while(|_| std::thread::Builder::new().spawn_scoped(scope, worker).ok())
            .count();
        if started == 0 {
            let (mut spare, mut scratch) = (Encoded::default(), S::default());
            for block in blocks {
                spare = encode(block, spare, &mut scratch)?;
                append(&spare)?;
            }
            return Ok(());
        }
        let mut result = Ok(());
        for i in 0..blocks.len() {
            let encoded = {
                let mut state = lock();
                loop {
                    if let Some(encoded) = state.done.remove(&i) {
                        break encoded;
                    }
                    state = changed.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
            };
            match encoded {
                Ok(encoded) => {
                    if let Err(e) = append(&encoded) {
                        result = Err(e);
                        break;
                    }
                    let mut state = lock();
                    state.next_to_append = i + 1;
                    state.spare.push(encoded);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            changed.notify_all();
        }
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
            let _guard = lock();
            changed.notify_all();
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxHashMap;

    fn bpe() -> Result<CoreBpe> {
        let mut ranks = crate::vocab::Ranks::default();
        for b in 0..=255u8 {
            ranks.insert(vec![b], Rank::from(b));
        }
        for (i, t) in ["he", "ll", "hell", "hello", " w", "or", " wor", " world"]
            .iter()
            .enumerate()
        {
            ranks.insert(t.as_bytes().to_vec(), 256 + i as Rank);
        }
        CoreBpe::new(ranks, FxHashMap::default(), "r50k")
    }

    fn expected(bpe: &CoreBpe, texts: &[&str], eot: Option<Rank>) -> Result<FlatTokens> {
        let mut out = FlatTokens {
            tokens: Vec::new(),
            offsets: vec![0],
        };
        for text in texts {
            out.tokens.extend(bpe.encode_ordinary(text)?);
            out.tokens.extend(eot);
            out.offsets.push(out.tokens.len() as i64);
        }
        Ok(out)
    }

    /// A part whose document `bad` is not valid (as a malformed Arrow column would be).
    struct Failing<'a>(&'a [&'a str], usize);

    impl Docs for Failing<'_> {
        fn count(&self) -> usize {
            self.0.len()
        }
        fn byte_len(&self, i: usize) -> usize {
            self.0.get(i).map_or(0, |t| t.len())
        }
        fn text(&self, i: usize) -> Result<&str> {
            if i == self.1 {
                return Err(Error::InvalidArgument(format!("row {i} is bad")));
            }
            Ok(self.0.get(i).copied().unwrap_or_default())
        }
    }

    #[test]
    fn equals_one_by_one() -> Result<()> {
        let bpe = bpe()?;
        let owned: Vec<String> = (0..1500)
            .map(|i| "hello world ".repeat(i % 97) + &i.to_string())
            .collect();
        let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
        let (a, b) = texts.split_at(1234);
        for threads in [1, 2, 3, 8] {
            for eot in [None, Some(300)] {
                let empty: &[&str] = &[];
                let parts: [&dyn Docs; 3] = [&a, &empty, &b];
                let got = encode_ordinary_flat(&bpe, &parts, eot, threads)?;
                assert_eq!(got, expected(&bpe, &texts, eot)?);
            }
        }
        let none = encode_ordinary_flat(&bpe, &[], None, 2)?;
        assert_eq!((none.tokens.len(), none.offsets), (0, vec![0]));
        Ok(())
    }

    #[test]
    fn first_error_in_order() -> Result<()> {
        let bpe = bpe()?;
        let owned: Vec<String> = (0..20_000).map(|i| format!("hello {i} world")).collect();
        let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
        for threads in [1, 4] {
            let parts: [&dyn Docs; 2] = [&Failing(&texts, 19_000), &Failing(&texts, 7)];
            let err = encode_ordinary_flat(&bpe, &parts, None, threads);
            assert_eq!(err, Err(Error::InvalidArgument("row 19000 is bad".into())));
        }
        Ok(())
    }
}
