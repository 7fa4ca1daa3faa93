//! Training a byte-level BPE vocabulary: count the pre-token pieces of a corpus, then learn merges.
//!
//! ```text
//! texts / files --(split.rs: special tokens out, pattern pieces)--> count.rs: unique pieces
//!   with counts, on all threads --> merge.rs: merge loop --> ranks: 256 bytes, then merges
//! ```
//!
//! Ranks 0..=255 are the single bytes in byte order, then one rank per learned token in the order
//! learned; special tokens get the ids after that. The merge rule and its tie-break (most frequent
//! pair; ties to the smallest `(left id, right id)`) are in [`merge`]'s design notes.
//!
//! # Design notes
//!
//! - **Where the time goes.** Pre-tokenizing every byte of the corpus dominates; the merge loop
//!   only touches the distinct pieces (`merge.rs`). Measured on this 2-core machine (20 MB of
//!   Python source, gpt2 pattern, fancy-regex): splitting alone 0.72 s on one thread, counting
//!   the pieces adds 0.09 s, the merge loop to 32768 tokens 0.12 s. Hence:
//! - **Words.** Under the three known patterns, counting cuts the text into "words" at places
//!   proven to keep the pieces (`split::for_each_word`), counts the words, and runs the regex
//!   once per distinct word: the regex then sees 26% of the Python bytes (39% of English), and
//!   counting takes 0.45 s instead of 0.81 s on one thread. Other patterns split all the text.
//! - **Threads.** Texts are cut into units of ~256 KB (`crate::pretok::cut`); each thread takes
//!   units one at a time, counts into its own maps with keys borrowed from the batch, and the
//!   maps meet in a sharded table, shard by shard in parallel. Each thread compiles its own
//!   regex: fancy-regex clones share one scratch pool, and two threads sharing it were slower
//!   than one (0.98 s vs 0.80 s); with a regex each, two threads take 0.22 s vs 0.45 s.
//! - **Streaming.** [`BpeTrainer::add_texts`] takes one batch at a time (the Python side feeds an
//!   iterable in batches of ~8 MB) and [`BpeTrainer::add_files`] reads files in 32 MB blocks, so
//!   memory is the table of distinct pieces plus one batch, not the corpus.
//! - **Determinism.** The table holds sums, the merge loop is sequential and its choices depend
//!   on counts and token ids only: the same corpus gives the same ranks on any thread count, in
//!   any order of texts.
//! - **Result** (`benches/bench_train.py`, 2 cores): vocabulary 8192 on 4.4 MB of English in
//!   0.07 s (rustbpe 0.21 s, HF tokenizers 0.58 s); 32768 on 20 MB of Python in 0.31-0.37 s
//!   (rustbpe 0.91-0.99 s, HF 2.2 s).
//! - **Pre-tokenizer.** `crate::pretok::Splitter`, as encoding: the hand-written scanner for
//!   r50k/cl100k (measured with it: 0.047 s and 0.165 s on the two tasks; counting then splits
//!   all text, which beats counting words), the pattern's regex (fancy-regex) for any other.

mod count;
pub mod merge;
mod split;

use std::path::PathBuf;

use rustc_hash::FxHashMap;

use crate::encoding::CoreBpe;
use crate::error::{py_repr, Error, Result};
use crate::vocab::{Rank, Ranks, MAX_ID};

use count::PieceTable;
use split::PreTokenizer;

pub use merge::PROGRESS_EVERY;

/// What a trainer has counted so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorpusStats {
    /// Texts added (a file counts as one text).
    pub texts: u64,
    /// Bytes of text added, special tokens excluded.
    pub bytes: u64,
    /// Unique pieces of two bytes or more.
    pub unique_pieces: usize,
}

/// A trained vocabulary: token bytes by rank, special tokens, pattern.
#[derive(Clone, Debug)]
pub struct Trained {
    /// Token bytes by rank: the 256 single bytes, then the learned tokens.
    pub tokens: Vec<Vec<u8>>,
    /// Special tokens with their ids (after the learned tokens), in the order given.
    pub special_tokens: Vec<(String, Rank)>,
    /// The pre-tokenizer regex.
    pub pattern: String,
    /// Merge steps taken (more than the learned tokens when a merge made an existing token).
    pub steps: usize,
}

impl Trained {
    pub fn ranks(&self) -> Ranks {
        self.tokens
            .iter()
            .enumerate()
            .map(|(rank, bytes)| (bytes.clone(), rank as Rank))
            .collect()
    }

    /// The trained vocabulary as an encoding.
    pub fn to_core_bpe(&self) -> Result<CoreBpe> {
        let specials: FxHashMap<String, Rank> = self.special_tokens.iter().cloned().collect();
        CoreBpe::new(self.ranks(), specials, &self.pattern)
    }
}

/// Counts a corpus, then trains a vocabulary of `vocab_size` tokens (special tokens included).
///
/// ```
/// # fn main() -> fastllm::Result<()> {
/// use fastllm::train::BpeTrainer;
/// let mut trainer = BpeTrainer::new(258, "gpt2", vec!["<|endoftext|>".into()], 0)?;
/// trainer.add_texts(&["hello hello<|endoftext|>help"])?;
/// let trained = trainer.train(&mut |_, _| Ok(()))?;
/// assert_eq!(trained.tokens[256], b"el"); // (e, l) ties (h, e) at 3; (101, 108) < (104, 101)
/// assert_eq!(trained.special_tokens, vec![("<|endoftext|>".to_string(), 257)]);
/// # Ok(())
/// # }
/// ```
pub struct BpeTrainer {
    vocab_size: usize,
    special_tokens: Vec<String>,
    pretok: PreTokenizer,
    table: PieceTable,
}

impl BpeTrainer {
    /// `vocab_size` counts every token: 256 bytes, the learned tokens and the special tokens.
    /// `pattern` is a regex or a short name (`"gpt2"`, `"r50k"`, `"cl100k"`, `"o200k"`);
    /// `threads` caps the counting threads (0 = as many as allowed).
    pub fn new(
        vocab_size: usize,
        pattern: &str,
        special_tokens: Vec<String>,
        threads: usize,
    ) -> Result<Self> {
        for (i, special) in special_tokens.iter().enumerate() {
            if special.is_empty() {
                return Err(Error::InvalidArgument(
                    "special token '' is empty; special tokens must be non-empty strings".into(),
                ));
            }
            if let [byte] = special.as_bytes() {
                return Err(Error::InvalidArgument(format!(
                    "special token {} is one byte, and every byte is already a learned token \
                     (rank {byte}); use a longer special token such as '<|endoftext|>'",
                    py_repr(special)
                )));
            }
            if special_tokens
                .get(..i)
                .unwrap_or_default()
                .contains(special)
            {
                return Err(Error::InvalidArgument(format!(
                    "special token {} is given twice",
                    py_repr(special)
                )));
            }
        }
        let least = 256 + special_tokens.len();
        if vocab_size < least {
            return Err(Error::InvalidArgument(format!(
                "vocab_size={vocab_size} is too small: it counts the 256 byte tokens and the {} \
                 special token(s), so it must be at least {least}",
                special_tokens.len()
            )));
        }
        let limit = MAX_ID as usize;
        if vocab_size > limit {
            return Err(Error::InvalidArgument(format!(
                "vocab_size={vocab_size} is too large; the most is {limit}"
            )));
        }
        let pretok = PreTokenizer::new(pattern, &special_tokens)?;
        Ok(BpeTrainer {
            vocab_size,
            special_tokens,
            pretok,
            table: PieceTable::new(threads),
        })
    }

    /// The pre-tokenizer regex.
    pub fn pattern(&self) -> &str {
        self.pretok.pattern()
    }

    /// The threads counting uses.
    pub fn threads(&self) -> usize {
        self.table.threads()
    }

    /// Counts the pieces of `texts` (one batch of a corpus; call as often as needed).
    pub fn add_texts(&mut self, texts: &[&str]) -> Result<()> {
        self.table.add_texts(texts, &self.pretok)
    }

    /// Reads and counts the UTF-8 text files at `paths` (each file is one text; big files are
    /// read in 32 MB blocks under the known patterns). After each batch of about 64 MB,
    /// `progress(files done, bytes counted so far)`; its error stops reading.
    pub fn add_files(
        &mut self,
        paths: &[PathBuf],
        progress: &mut dyn FnMut(usize, u64) -> Result<()>,
    ) -> Result<()> {
        self.table.add_files(paths, &self.pretok, progress)
    }

    pub fn stats(&self) -> CorpusStats {
        CorpusStats {
            texts: self.table.texts,
            bytes: self.table.bytes,
            unique_pieces: self.table.len(),
        }
    }

    /// Learns the merges. `progress(done, target)` (new tokens learned, new tokens wanted) is
    /// called every [`PROGRESS_EVERY`] tokens and at the end; its error stops training.
    ///
    /// Fails on an empty corpus and when a special token equals a learned token's bytes.
    pub fn train(&self, progress: &mut dyn FnMut(usize, usize) -> Result<()>) -> Result<Trained> {
        let stats = self.stats();
        if stats.bytes == 0 {
            return Err(Error::InvalidArgument(format!(
                "the corpus is empty: {} text(s) with no text outside special tokens; pass some \
                 text to train on",
                stats.texts
            )));
        }
        let total = self.table.iter().map(|(piece, _)| piece.len()).sum();
        let n_tokens = self.vocab_size - self.special_tokens.len();
        let merges = merge::learn(self.table.iter(), total, n_tokens, progress)?;
        let tokens = merges.tokens;
        for special in &self.special_tokens {
            if let Some(rank) = tokens.iter().position(|t| t == special.as_bytes()) {
                return Err(Error::InvalidArgument(format!(
                    "special token {} is also a learned token (rank {rank}); text could encode \
                     to either id. Choose special tokens that do not occur as text, such as \
                     '<|endoftext|>'",
                    py_repr(special)
                )));
            }
        }
        let first = tokens.len() as Rank;
        let special_tokens = (first..)
            .zip(&self.special_tokens)
            .map(|(id, s)| (s.clone(), id))
            .collect();
        Ok(Trained {
            tokens,
            special_tokens,
            pattern: self.pretok.pattern().to_string(),
            steps: merges.steps,
        })
    }
}

/// The pre-token pieces of `text` under `pattern` (a regex or a short name), with special tokens
/// from `special_tokens` as pieces of their own, flagged `true`.
pub fn split_pieces(
    pattern: &str,
    special_tokens: &[String],
    text: &str,
) -> Result<Vec<(String, bool)>> {
    let pretok = PreTokenizer::new(pattern, special_tokens)?;
    Ok(pretok
        .pieces(text)?
        .into_iter()
        .map(|(p, special)| (p.to_string(), special))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(texts: &[&str], vocab: usize, threads: usize) -> Result<Trained> {
        let mut trainer = BpeTrainer::new(vocab, "gpt2", vec!["<|endoftext|>".into()], threads)?;
        trainer.add_texts(texts)?;
        trainer.train(&mut |_, _| Ok(()))
    }

    #[test]
    fn trains_and_encodes() -> Result<()> {
        let text = "the cat sat on the mat; the hat".repeat(50);
        let trained = train(&[&text], 266, 0)?;
        assert_eq!(trained.tokens.len() + 1, 266);
        assert_eq!(trained.special_tokens, vec![("<|endoftext|>".into(), 265)]);
        let bpe = trained.to_core_bpe()?;
        let ids = bpe.encode_ordinary("the cat")?;
        assert_eq!(bpe.decode_bytes(&ids)?, b"the cat".to_vec());
        // " the", the most frequent piece, is one token.
        assert_eq!(bpe.encode_ordinary(" the")?.len(), 1);
        Ok(())
    }

    #[test]
    fn same_ranks_on_any_thread_count() -> Result<()> {
        let text = "Some words, some more words; numbers 12345 and 678.\n".repeat(40_000);
        let texts = [text.as_str(), "and<|endoftext|>more"];
        let one = train(&texts, 600, 1)?;
        for threads in [2, 3, 5] {
            assert_eq!(train(&texts, 600, threads)?.tokens, one.tokens);
        }
        Ok(())
    }

    #[test]
    fn errors_name_the_value() -> Result<()> {
        let message = |r: Result<BpeTrainer>| r.map(|_| ()).map_err(|e| e.to_string());
        let specials = vec!["<|a|>".to_string(), "<|b|>".to_string()];
        let small = message(BpeTrainer::new(257, "gpt2", specials.clone(), 0));
        assert_eq!(
            small.map_err(|m| m.contains("vocab_size=257") && m.contains("at least 258")),
            Err(true)
        );
        let twice = message(BpeTrainer::new(
            300,
            "gpt2",
            vec!["<|a|>".into(), "<|a|>".into()],
            0,
        ));
        assert_eq!(twice.map_err(|m| m.contains("'<|a|>'")), Err(true));
        let bad = message(BpeTrainer::new(300, "[", specials, 0));
        assert_eq!(bad.map_err(|m| m.contains("\"[\"")), Err(true));

        let empty = BpeTrainer::new(300, "gpt2", vec!["<|endoftext|>".into()], 0)?;
        let err = empty.train(&mut |_, _| Ok(())).map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string().contains("corpus is empty")),
            Err(true)
        );

        let one_byte = message(BpeTrainer::new(300, "gpt2", vec!["a".into()], 0));
        assert_eq!(
            one_byte.map_err(|m| m.contains("special token 'a' is one byte")),
            Err(true)
        );
        // Special tokens are cut out of the text, so "ab" is never learned from "ab ab ab".
        let mut cut = BpeTrainer::new(300, "gpt2", vec!["ab".into()], 0)?;
        cut.add_texts(&["ab ab xy"])?;
        let trained = cut.train(&mut |_, _| Ok(()))?;
        let learned = [b" x".to_vec(), b" xy".to_vec()];
        assert_eq!(trained.tokens.get(256..), Some(&learned[..]));
        Ok(())
    }

    #[test]
    fn progress_can_stop_training() -> Result<()> {
        let mut trainer = BpeTrainer::new(2000, "gpt2", vec![], 0)?;
        let text = (0..5000).map(|i| format!("w{i} ")).collect::<String>();
        trainer.add_texts(&[&text])?;
        let mut calls = Vec::new();
        let stopped = trainer.train(&mut |done, target| {
            calls.push((done, target));
            if done >= 128 {
                Err(Error::InvalidArgument("stop".into()))
            } else {
                Ok(())
            }
        });
        assert_eq!(
            stopped.map(|_| ()),
            Err(Error::InvalidArgument("stop".into()))
        );
        assert_eq!(calls, vec![(64, 1744), (128, 1744)]);
        Ok(())
    }
}
