//! Counting pre-token pieces: one table of unique pieces with their counts, filled batch by batch
//! on all allowed threads.
//!
//! A batch is cut into units (see [`PreTokenizer::units`]); each thread takes units one at a time
//! and counts pieces into its own maps (keys borrowed from the batch, no allocation), one map per
//! shard of the table; under the known patterns it counts words first and splits each distinct
//! word once (see [`super::split::for_each_word`]). Then each shard of the table takes the counts
//! of its part from every thread, the shards in parallel. Counts are sums, so the table does not
//! depend on the thread count. Pieces of one byte are not counted: they hold no pair, so they
//! cannot change training.

use std::hash::BuildHasher;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rustc_hash::{FxBuildHasher, FxHashMap};

use super::split::{for_each_word, PreTokenizer};
use crate::error::{Error, Result};
use crate::parallel;
use crate::pretok::cut;

/// Bytes of file text read before counting them (bounds memory for big inputs).
const FILE_BATCH_BYTES: usize = 64 << 20;
/// Files are read in blocks of about this size, cut at `crate::pretok::cut`'s safe cuts; under a
/// pattern where cutting is not proven safe, whole.
const FILE_BLOCK_BYTES: usize = 32 << 20;

/// Unique pieces (two bytes or more) with their counts, sharded by hash.
pub(crate) struct PieceTable {
    shards: Vec<FxHashMap<Box<[u8]>, u64>>,
    threads: usize,
    /// Texts added (a file counts as one).
    pub(crate) texts: u64,
    /// Bytes of text added, special tokens excluded.
    pub(crate) bytes: u64,
}

fn shard_of(piece: &[u8], shards: usize) -> usize {
    // The high bits: the maps use the low ones.
    ((FxBuildHasher.hash_one(piece) >> 40) as usize) % shards.max(1)
}

/// One thread's counts of one batch, one map per shard of the table; keys borrow the batch.
type Local<'a> = Vec<FxHashMap<&'a [u8], u64>>;

/// Adds `n` to the count of `piece` (pieces of one byte are not counted).
fn add<'a>(local: &mut Local<'a>, piece: &'a str, n: u64) {
    let piece = piece.as_bytes();
    if piece.len() < 2 {
        return;
    }
    let shards = local.len();
    let shard = if shards == 1 {
        0
    } else {
        shard_of(piece, shards)
    };
    if let Some(map) = local.get_mut(shard) {
        *map.entry(piece).or_insert(0) += n;
    }
}

impl PieceTable {
    /// A table counted on up to `threads` threads (0 = as many as allowed).
    pub(crate) fn new(threads: usize) -> Self {
        let threads = parallel::effective_threads(threads, usize::MAX);
        PieceTable {
            shards: (0..threads).map(|_| FxHashMap::default()).collect(),
            threads,
            texts: 0,
            bytes: 0,
        }
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// The number of unique pieces of two bytes or more.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// Every unique piece with its count, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, &v)| (&**k, v)))
    }

    /// Counts the pieces of `texts`.
    pub(crate) fn add_texts(&mut self, texts: &[&str], pretok: &PreTokenizer) -> Result<()> {
        self.texts += texts.len() as u64;
        self.count_texts(texts, pretok)
    }

    fn count_texts(&mut self, texts: &[&str], pretok: &PreTokenizer) -> Result<()> {
        let mut units = Vec::with_capacity(texts.len());
        for text in texts {
            pretok.units(text, &mut units);
        }
        self.bytes += units.iter().map(|u| u.len() as u64).sum::<u64>();
        self.count_units(&units, pretok)
    }

    fn count_units(&mut self, units: &[&str], pretok: &PreTokenizer) -> Result<()> {
        let n_shards = self.shards.len();
        // A thread for every ~256 KB at most: a thread costs a spawn and a regex compilation.
        let bytes: usize = units.iter().map(|u| u.len()).sum();
        let threads = parallel::effective_threads(self.threads, units.len())
            .min(bytes.div_ceil(super::split::UNIT_BYTES).max(1));
        let next = AtomicUsize::new(0);
        let workers: Vec<usize> = (0..threads).collect();
        let counted: Vec<Result<Local<'_>>> = parallel::map(&workers, threads, |_| {
            // Each thread its own regex (see `PreTokenizer`).
            let own = if threads > 1 {
                Some(pretok.for_thread()?)
            } else {
                None
            };
            let pretok = own.as_ref().unwrap_or(pretok);
            let mut local: Local<'_> = (0..n_shards).map(|_| FxHashMap::default()).collect();
            if let Some(rule) = pretok.words() {
                // Count words, then split each distinct word once (see `split::for_each_word`).
                let mut words: FxHashMap<&str, u64> = FxHashMap::default();
                while let Some(unit) = units.get(next.fetch_add(1, Ordering::Relaxed)) {
                    for_each_word(unit, rule, |word| *words.entry(word).or_insert(0) += 1);
                }
                for (word, n) in words {
                    pretok.for_each_piece(word, &mut |piece| add(&mut local, piece, n))?;
                }
            } else {
                while let Some(unit) = units.get(next.fetch_add(1, Ordering::Relaxed)) {
                    pretok.for_each_piece(unit, &mut |piece| add(&mut local, piece, 1))?;
                }
            }
            Ok(local)
        });
        // Transpose: for each shard, the maps of every worker.
        let mut per_shard: Vec<Vec<FxHashMap<&[u8], u64>>> =
            (0..n_shards).map(|_| Vec::with_capacity(threads)).collect();
        for local in counted {
            for (shard, map) in per_shard.iter_mut().zip(local?) {
                shard.push(map);
            }
        }
        let jobs: Vec<Mutex<Job<'_, '_>>> = self
            .shards
            .iter_mut()
            .zip(per_shard)
            .map(Mutex::new)
            .collect();
        parallel::map(&jobs, self.threads, |job| {
            let mut job = job.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let (table, maps) = &mut *job;
            for map in std::mem::take(maps) {
                table.reserve(map.len() / 4);
                for (piece, count) in map {
                    match table.get_mut(piece) {
                        Some(total) => *total += count,
                        None => {
                            table.insert(piece.into(), count);
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// Reads and counts the files at `paths` (UTF-8 text; one file is one text). After each
    /// batch, `progress(files done, bytes counted so far)`; its error stops reading.
    pub(crate) fn add_files(
        &mut self,
        paths: &[PathBuf],
        pretok: &PreTokenizer,
        progress: &mut dyn FnMut(usize, u64) -> Result<()>,
    ) -> Result<()> {
        let block = pretok.cuttable().then_some(FILE_BLOCK_BYTES);
        let mut batch: Vec<String> = Vec::new();
        let mut batch_bytes = 0;
        for (done, path) in paths.iter().enumerate() {
            read_blocks(path, block, |text| {
                batch_bytes += text.len();
                batch.push(text);
                if batch_bytes >= FILE_BATCH_BYTES {
                    let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
                    self.count_texts(&refs, pretok)?;
                    batch.clear();
                    batch_bytes = 0;
                    progress(done, self.bytes)?;
                }
                Ok(())
            })?;
            self.texts += 1;
        }
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        self.count_texts(&refs, pretok)?;
        progress(paths.len(), self.bytes)
    }
}

type Job<'t, 'a> = (
    &'t mut FxHashMap<Box<[u8]>, u64>,
    Vec<FxHashMap<&'a [u8], u64>>,
);

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn not_utf8(path: &Path, offset: u64) -> Error {
    Error::InvalidArgument(format!(
        "{} is not UTF-8 text: invalid byte at offset {offset}; train on text files only (or \
         decode the file and pass its text)",
        path.display(),
    ))
}

fn utf8(path: &Path, bytes: Vec<u8>, offset: u64) -> Result<String> {
    String::from_utf8(bytes)
        .map_err(|e| not_utf8(path, offset + e.utf8_error().valid_up_to() as u64))
}

/// Calls `f` on the text of the file at `path`: whole, or in blocks of about `block` bytes cut
/// at safe cuts (`crate::pretok::cut::last_safe_cut`; a block grows until it has one).
fn read_blocks(
    path: &Path,
    block: Option<usize>,
    mut f: impl FnMut(String) -> Result<()>,
) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let Some(block) = block else {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io_error(path, e))?;
        return f(utf8(path, bytes, 0)?);
    };
    // `buffer` holds the file from byte `offset` on; it has no safe cut before `searched`.
    // Cuts are found on bytes (a cut is next to ASCII bytes, so it is a char boundary even in
    // invalid UTF-8) and each byte is validated once, when its block is handed on.
    let mut buffer: Vec<u8> = Vec::new();
    let mut offset = 0u64;
    let mut searched = 0usize;
    loop {
        let start = buffer.len();
        buffer.resize(start + block.max(1), 0);
        let mut filled = start;
        while filled < buffer.len() {
            match file.read(buffer.get_mut(filled..).unwrap_or_default()) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(path, e)),
            }
        }
        let at_end = filled < buffer.len();
        buffer.truncate(filled);
        if at_end {
            return if buffer.is_empty() {
                Ok(())
            } else {
                f(utf8(path, buffer, offset)?)
            };
        }
        // A newline at the very end is decided once the next byte is read.
        match cut::last_safe_cut(&buffer, searched.saturating_sub(2)) {
            Some(cut) => {
                let tail = buffer.split_off(cut);
                let head = std::mem::replace(&mut buffer, tail);
                let head_offset = offset;
                offset += cut as u64;
                searched = buffer.len();
                f(utf8(path, head, head_offset)?)?;
            }
            // No safe cut yet (one very long line): read on into the same buffer.
            None => searched = buffer.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_of(t: &PieceTable) -> Vec<(Vec<u8>, u64)> {
        let mut all: Vec<(Vec<u8>, u64)> = t.iter().map(|(k, v)| (k.to_vec(), v)).collect();
        all.sort();
        all
    }

    #[test]
    fn counts_do_not_depend_on_threads() -> Result<()> {
        let pretok = PreTokenizer::new("gpt2", &["<|endoftext|>".to_string()])?;
        let text = "hello world, hello there<|endoftext|>the world\n".repeat(20_000);
        let texts = [text.as_str(), "hello", "", "a b c"];
        let mut tables = Vec::new();
        for threads in [1, 2, 3, 8] {
            let mut table = PieceTable::new(threads);
            table.add_texts(&texts, &pretok)?;
            tables.push(table_of(&table));
        }
        let differ = tables.iter().filter(|t| *t != &tables[0]).count();
        assert_eq!(differ, 0);
        let hello = tables[0].iter().find(|(k, _)| k == b"hello").map(|e| e.1);
        // "hello" starts each repetition and is the second text; " hello" is another piece.
        assert_eq!(hello, Some(20_001));
        let specials = tables[0]
            .iter()
            .filter(|(k, _)| k.starts_with(b"<|"))
            .count();
        assert_eq!(specials, 0);
        Ok(())
    }

    #[test]
    fn files_match_texts() -> Result<()> {
        let pretok = PreTokenizer::new("gpt2", &[])?;
        let dir = std::env::temp_dir().join(format!("fastllm-count-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let text = "def f(x):\n    return x\nclass A:\n  pass\n".repeat(30_000);
        let path = dir.join("a.py");
        std::fs::write(&path, &text).map_err(|e| io_error(&path, e))?;
        let mut from_file = PieceTable::new(2);
        let mut calls = Vec::new();
        from_file.add_files(std::slice::from_ref(&path), &pretok, &mut |files, bytes| {
            calls.push((files, bytes));
            Ok(())
        })?;
        assert_eq!(calls, vec![(1, text.len() as u64)]);
        let mut from_text = PieceTable::new(2);
        from_text.add_texts(&[&text], &pretok)?;
        assert_eq!(table_of(&from_file), table_of(&from_text));
        assert_eq!((from_file.texts, from_file.bytes), (1, text.len() as u64));

        let bad = dir.join("bad.bin");
        std::fs::write(&bad, b"ok\xff").map_err(|e| io_error(&bad, e))?;
        let none = &mut |_: usize, _: u64| Ok(());
        let err = from_file
            .add_files(&[bad], &pretok, none)
            .map_err(|e| e.to_string());
        assert_eq!(
            err.map_err(|e| e.contains("bad.bin is not UTF-8 text: invalid byte at offset 2")),
            Err(true)
        );
        let missing = from_file.add_files(&[dir.join("missing")], &pretok, none);
        assert!(matches!(missing, Err(Error::Io { .. })));
        std::fs::remove_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        Ok(())
    }

    #[test]
    fn blocks_are_cut_at_safe_places() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("fastllm-blocks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let text =
            "déf f(x):\n    return x  # ünï\nx = 1\ny = 'é'\nclass A:\n  pass\n\n".repeat(300);
        let path = dir.join("a.py");
        std::fs::write(&path, &text).map_err(|e| io_error(&path, e))?;
        for block in [1, 7, 100, 4096, 1 << 20] {
            let mut blocks = Vec::new();
            read_blocks(&path, Some(block), |b| {
                blocks.push(b);
                Ok(())
            })?;
            assert_eq!(blocks.concat(), text, "block {block}");
            let mut end = 0;
            for b in blocks.iter().take(blocks.len().saturating_sub(1)) {
                // Each block but the last ends at a safe cut of the text.
                end += b.len();
                assert!(cut::safe_at(text.as_bytes(), end));
            }
            let expect_many = usize::from(block < text.len());
            assert_eq!(usize::from(blocks.len() > 1), expect_many, "block {block}");
        }
        let mut bad = text.clone().into_bytes();
        bad.splice(5000..5000, [0xff]);
        std::fs::write(&path, &bad).map_err(|e| io_error(&path, e))?;
        let err = read_blocks(&path, Some(100), |_| Ok(())).map_err(|e| e.to_string());
        assert_eq!(
            err.map_err(|e| e.contains("invalid byte at offset 5000")),
            Err(true)
        );
        std::fs::remove_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        Ok(())
    }
}

/// Benchmarks, ignored by default. Give them a text file:
/// `FASTLLM_TRAIN_BENCH=file cargo test --release --lib train::count::bench -- --ignored
/// --nocapture`.
#[cfg(test)]
mod bench {
    use super::*;
    use std::time::{Duration, Instant};

    fn text() -> Result<Option<String>> {
        let Ok(path) = std::env::var("FASTLLM_TRAIN_BENCH") else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(Path::new(&path), e))?;
        Ok(Some(text))
    }

    /// Where counting spends its time: splitting, counting, the whole table; one and two threads.
    #[test]
    #[ignore]
    fn bench_count() -> Result<()> {
        let Some(text) = text()? else { return Ok(()) };
        for pattern in ["gpt2", "cl100k"] {
            let pretok = PreTokenizer::new(pattern, &[])?;
            let mut units = Vec::new();
            pretok.units(&text, &mut units);
            let start = Instant::now();
            let mut n = 0usize;
            for unit in &units {
                pretok.for_each_piece(unit, &mut |p| n += p.len())?;
            }
            let split = start.elapsed();
            let start = Instant::now();
            let mut map: FxHashMap<&[u8], u64> = FxHashMap::default();
            for unit in &units {
                pretok.for_each_piece(unit, &mut |p| {
                    if p.len() > 1 {
                        *map.entry(p.as_bytes()).or_insert(0) += 1;
                    }
                })?;
            }
            let counted = start.elapsed();
            let mut tables = Vec::new();
            for threads in [1, 2] {
                let start = Instant::now();
                let mut table = PieceTable::new(threads);
                table.add_texts(&[&text], &pretok)?;
                tables.push(start.elapsed());
            }
            println!(
                "{pattern}: {n} bytes, {} units, {} unique; split {split:?}, split+count \
                 {counted:?}, table on 1 / 2 threads {tables:?}",
                units.len(),
                map.len()
            );
        }
        Ok(())
    }

    /// The merge loop alone (best of 7), vocabularies 8192 and 32768, gpt2 pattern.
    #[test]
    #[ignore]
    fn bench_learn() -> Result<()> {
        let Some(text) = text()? else { return Ok(()) };
        let pretok = PreTokenizer::new("gpt2", &[])?;
        let mut table = PieceTable::new(0);
        table.add_texts(&[&text], &pretok)?;
        let total = table.iter().map(|(p, _)| p.len()).sum();
        for n in [8192, 32768] {
            let mut best = Duration::MAX;
            for _ in 0..7 {
                let start = Instant::now();
                crate::train::merge::learn(table.iter(), total, n, &mut |_, _| Ok(()))?;
                best = best.min(start.elapsed());
            }
            println!("vocab {n}: merge loop {best:?} on {total} symbols");
        }
        Ok(())
    }
}
