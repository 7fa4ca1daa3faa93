//! Pre-tokenization, the one way the crate makes pieces: the patterns and their short names
//! ([`patterns`]), the [`Splitter`] (a hand-written scanner for a known pattern, fancy-regex for
//! any other), the special-token matcher ([`SpecialMatcher`]) and the one rule for where a text
//! may be cut without changing its pieces ([`cut`]). Encoding, training and the corpus reader
//! all use these; none of them splits or cuts text another way.
//!
//! The rest of this file dispatches to the hand-written scanners ([`Kind`]; `r50k.rs`,
//! `cl100k.rs`, `o200k.rs`), exactly equivalent to fancy-regex's `find_iter` on their patterns, without a
//! regex engine; the notes below are theirs.
//!
//! # Design notes
//!
//! - **Shape.** All three patterns are a leftmost-first alternation that matches at least one
//!   char at every position, so `find_iter`'s pieces tile the text and each piece is decided at
//!   its start: one `piece_end(bytes, start) -> end` per pattern (`r50k.rs`, `cl100k.rs`,
//!   `o200k.rs`) dispatches on the class of the first byte (a 256-entry table) and scans one
//!   maximal run. Every bit of backtracking in the patterns reduces to a bounded look-ahead (the
//!   char after an optional space or "other" char; the one or two letters of a contraction) or
//!   to a position remembered while scanning a run (`\s+(?!\S)` = the run less its last char;
//!   `\s*[\r\n]` = the run up to its last newline), so each byte is looked at O(1) times: linear
//!   time on any input, no allocation, no `unsafe`, no panics (all reads are `get`s).
//! - **Classes.** `\p{L}`, `\p{N}`, `\s` and "other" come from `tables.rs`: ASCII by the byte
//!   table, the rest by a two-stage table (`ucd.rs`: an 804-byte block index and 133 distinct
//!   blocks of 256 code points at 2 bits each, 9.3 KB in all), generated from the classification
//!   of every code point by the regex engine itself, so the Unicode version is the engine's
//!   (16.0.0 with regex-syntax 0.8.12). One test re-derives all 1,112,064 scalar values from the
//!   engine and compares; another checks that `ucd.rs` is exactly what the generator makes today
//!   (it fails when a `regex-syntax` update changes Unicode: regenerate with
//!   `FASTLLM_REGEN_UCD=1`). Note `\s` is White_Space: U+000B, U+000C, U+0085 are in it,
//!   U+001C..U+001F and U+180E are not; the case-insensitive `s` of cl100k's contractions also
//!   matches U+017F (and nothing folds to `d`, `m`, `t`, `l`, `v`, `e`, `r` but their ASCII case).
//! - **Speed.** Letter runs, the bulk of prose, are scanned 8 bytes at a time (SWAR in
//!   `run_letters`): that alone took English from ~420 to ~750 MB/s, as most words then end
//!   inside one well-predicted step. A SWAR scan of space runs gave nothing measurable on Python
//!   source and was dropped; what remains is about one unpredictable branch per piece.
//!   Measured on this 2-core machine (release, one core, `cargo test --release --lib
//!   pretok::tests::bench -- --ignored --nocapture`), MB/s of UTF-8, ours vs fancy-regex
//!   `find_iter`, r50k / cl100k:
//!   English-like prose 740 vs 57 / 727 vs 44; Python stdlib sources (4.7 MB) 496 vs 33 /
//!   486 vs 29; CJK/Cyrillic/Arabic/Devanagari mix 415 vs 57 / 413 vs 55.
//! - **o200k** (`o200k.rs`, tests in `tests_o200k.rs`): nothing in its pattern is possessive and
//!   its words split letters by case class (`[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*` then
//!   `[\p{Ll}\p{Lm}\p{Lo}\p{M}]+`), so it has its own generated table (`ucd_o200k.rs`, 4 bits per
//!   code point, 21.5 KB, same generator-and-staleness tests) and works its backtracking out
//!   once (a word backs off to the last char of its upper-case run that is also lower-case).
//!   Same bench, same run (machine loaded, so ranges over three runs), MB/s ours vs fancy-regex:
//!   English 230-460 vs 20-42, Python stdlib 146-278 vs 15-27, non-Latin 146-260 vs 47; the
//!   cl100k scanner in the same runs: 290-490, 150-290, 140-265. Every 1 MB pathological input
//!   (`tests_o200k::bench_pathological`) takes 0.2-13 ms, 4 MB 3.7-6x that (noise; no shape
//!   grows faster). fancy-regex cannot run o200k on 1 MB of spaces (with or without a letter
//!   after): those are checked by scaling from 64 KB as above.
//! - **API.** A callback ([`split_r50k`], [`split_cl100k`], [`Kind::split`]), an iterator
//!   ([`Kind::pieces`]) and [`Kind::piece_end`], all on `&str` pieces that tile the input. As
//!   with the regex, `$` is the end of the `&str` given: split each segment between special
//!   tokens separately.
//! - **Equivalence.** `tests.rs` compares with fancy-regex `find_iter` on the Python standard
//!   library's sources, every string of up to 4 chars over a 14-char alphabet, proptest strings
//!   over an adversarial alphabet and arbitrary Unicode, every code point in contraction /
//!   prefix / run contexts, and 1 MB pathological inputs; a structural test checks that each
//!   piece is decided by at most one whitespace run past its end (so splitting is linear).
//! - **Where the regex cannot follow.** fancy-regex gives up ("Max stack size exceeded for
//!   backtracking", a fixed 1,000,000-entry stack) on a whitespace run of about a million chars
//!   that does not reach the end of the text (`\s+(?!\S)` takes a stack entry per char), so
//!   the regex path errors there where this module returns the pieces the pattern
//!   defines; the tests check those inputs by scaling from 64 KB, where the regex runs.

mod cl100k;
pub mod cut;
mod o200k;
pub mod patterns;
mod r50k;
mod special;
mod splitter;
mod tables;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_o200k;
mod ucd;
mod ucd_o200k;

pub use special::SpecialMatcher;
pub use splitter::Splitter;

/// A pattern with a hand-written splitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// [`patterns::R50K`] (GPT-2, r50k_base, p50k_base).
    R50k,
    /// [`patterns::CL100K`].
    Cl100k,
    /// [`patterns::O200K`].
    O200k,
}

/// The hand-written splitter for `pattern`, if it is exactly one of the patterns that have one.
pub fn fast_splitter_for(pattern: &str) -> Option<Kind> {
    if pattern == patterns::R50K {
        Some(Kind::R50k)
    } else if pattern == patterns::CL100K {
        Some(Kind::Cl100k)
    } else if pattern == patterns::O200K {
        Some(Kind::O200k)
    } else {
        None
    }
}

impl Kind {
    /// The pattern this splitter is equivalent to.
    pub fn pattern(self) -> &'static str {
        match self {
            Kind::R50k => patterns::R50K,
            Kind::Cl100k => patterns::CL100K,
            Kind::O200k => patterns::O200K,
        }
    }

    /// The end (a byte offset) of the piece that starts at byte offset `start` of `text`, where
    /// `start` is 0 or the end of the previous piece. Returns `text.len()` when `start` is at or
    /// past the end.
    #[inline]
    pub fn piece_end(self, text: &str, start: usize) -> usize {
        let bytes = text.as_bytes();
        if start >= bytes.len() {
            return bytes.len();
        }
        let end = match self {
            Kind::R50k => r50k::piece_end(bytes, start),
            Kind::Cl100k => cl100k::piece_end(bytes, start),
            Kind::O200k => o200k::piece_end(bytes, start),
        };
        end.min(bytes.len())
    }

    /// Calls `f` on each piece of `text`, in order; the pieces tile `text`.
    #[inline]
    pub fn split<'a>(self, text: &'a str, f: impl FnMut(&'a str)) {
        match self {
            Kind::R50k => split_r50k(text, f),
            Kind::Cl100k => split_cl100k(text, f),
            Kind::O200k => split_o200k(text, f),
        }
    }

    /// The pieces of `text`, in order; they tile `text`.
    pub fn pieces(self, text: &str) -> Pieces<'_> {
        Pieces {
            text,
            pos: 0,
            kind: self,
        }
    }
}

/// Calls `f` on each piece of `text` under [`patterns::R50K`], in order.
#[inline]
pub fn split_r50k<'a>(text: &'a str, f: impl FnMut(&'a str)) {
    split_with(text, f, r50k::piece_end);
}

/// Calls `f` on each piece of `text` under [`patterns::CL100K`], in order.
#[inline]
pub fn split_cl100k<'a>(text: &'a str, f: impl FnMut(&'a str)) {
    split_with(text, f, cl100k::piece_end);
}

/// Calls `f` on each piece of `text` under [`patterns::O200K`], in order.
#[inline]
pub fn split_o200k<'a>(text: &'a str, f: impl FnMut(&'a str)) {
    split_with(text, f, o200k::piece_end);
}

#[inline(always)]
fn split_with<'a>(text: &'a str, mut f: impl FnMut(&'a str), end_of: fn(&[u8], usize) -> usize) {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let end = end_of(bytes, start);
        // `end` is a char boundary in `start + 1..=len` by construction; `get` only guards it.
        let Some(piece) = text.get(start..end) else {
            break;
        };
        f(piece);
        start = end;
    }
}

/// Iterator over the pieces of a text; see [`Kind::pieces`].
#[derive(Clone, Debug)]
pub struct Pieces<'a> {
    text: &'a str,
    pos: usize,
    kind: Kind,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        if self.pos >= self.text.len() {
            return None;
        }
        let end = self.kind.piece_end(self.text, self.pos);
        let piece = self.text.get(self.pos..end)?;
        self.pos = end;
        Some(piece)
    }
}

impl std::iter::FusedIterator for Pieces<'_> {}
