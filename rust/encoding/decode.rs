//! Token ids back to bytes (the [`Decoder`] table), and those bytes as text ready for Python.
//!
//! # Design notes (issue 15: decode >= 2.5x tiktoken on English, code and non-Latin text)
//!
//! Profiled with `perf` (o200k_base, 1 MB of English, 224k tokens): ids to bytes was the largest
//! part of `decode`, and 73% of it was two dependent cache misses per token: the id's span
//! (8 bytes an id in a 1.6 MB table) and then its bytes (in an arena laid out in hash-map order).
//!
//! - **One 16-byte entry per id, short tokens inline.** A token of at most 15 bytes is stored in
//!   its entry (its length in the last byte), so a token costs one aligned 16-byte load and one
//!   16-byte store; the loads of successive tokens do not depend on each other, so they overlap.
//!   Longer tokens (rare: runs of spaces or dashes) are in an arena the entry points into.
//!   The table is 16 bytes an id (o200k 3.2 MB), dense up to `2 * tokens + 1024` ids; ids past
//!   that (a vocabulary with one special token at 60,000,000) are looked up in a sorted list, so
//!   a sparse vocabulary never costs 16 bytes for each missing id.
//! - **Text for Python.** Python's UTF-8 decoder is fast on ASCII runs but decodes a multi-byte
//!   character at a time: 1 MB of the non-Latin sample took 3.0 ms to become a `str`, half of
//!   fastllm's whole non-Latin decode, while its UTF-16 decoder made the same `str` from UTF-16 in
//!   0.22 ms (`PyUnicode_DecodeUTF16` is in the stable ABI; building the `str` in place with
//!   `PyUnicode_New` is not). So a decode whose sampled tokens are mostly non-ASCII bytes is made
//!   UTF-16 here, without the GIL, from a second table made with the first: each token that is
//!   whole characters in at most 7 code units has them inline (16 bytes an id, like the bytes);
//!   other tokens (split characters: byte-level BPE cuts many CJK characters in two or three)
//!   go through a byte-at-a-time UTF-8 decoder that checks the standard's well-formed
//!   sequences. Bytes that are not valid UTF-8, and mostly-ASCII text, go to Python's UTF-8
//!   decoder as before, so `errors="replace"` is Python's own, byte for byte.
//!   Which path a decode takes is chosen from 16 runs of 96 tokens spread over the list (was
//!   three runs of 512: start, middle, end; the 1 MB non-Latin sample of decode_ratio.py starts
//!   with a script cl100k cuts into bytes, 32% whole there, 96% overall, so cl100k took the
//!   UTF-8 path): cl100k non-Latin 2.27-2.28x tiktoken before, 3.30x after
//!   (`taskset -c 1 python benches/decode_ratio.py --rounds 5 --kinds non_latin`, load 7.5).
//!   gpt2 stays on Python's UTF-8 decoder (56% whole): with the threshold at 50% instead of 80
//!   it took the UTF-16 path and fell from 2.27x to 1.83x (same command, load 5).
//!   Tried and dropped: checking and converting the decoded bytes in Rust (std's `from_utf8` and
//!   `encode_utf16`, then encoding_rs's converter): 4.5-6 ms for that 1 MB, slower than Python's
//!   own decoder on this mixed-script text.
//! - **gpt2's non-Latin text (phase 6).** `perf` of a warm gpt2 decode of the 1 MB non-Latin
//!   sample (620k tokens, 56% whole characters; 72% of its characters are two-byte ones):
//!   reading the list 32% (`PyLong_AsUnsignedLong` 20%: now read in place, see
//!   `py/convert.rs`), Python's UTF-8 decoder 24%, `decode_into` 18%, page faults ~10%.
//!   Such text (mostly non-ASCII, under [`WHOLE_SHARE`] whole) now takes [`Path::Transcode`]:
//!   the bytes, then [`utf8_to_utf16`], whose inner loop takes ASCII and two-byte characters
//!   without a branch on which of the two (`i += 1 + two`; the first, branchy version
//!   mispredicted at every word and was slower than Python's decoder); three- and four-byte
//!   characters and every invalid byte take the full check, and invalid UTF-8 goes to Python's
//!   decoder as before. Measured in one process, A/B by path (CPU time, median of 9, load 8.8):
//!   gpt2 non-Latin 7.78 ms transcoded vs 8.30 through Python's decoder vs 9.83 through the
//!   UTF-16 table; cl100k 8.83 vs 7.64 vs 5.98, o200k 7.06 vs 6.35 vs 4.29 (so cl100k and o200k
//!   keep the table). With the list read in place: `decode_ratio.py --rounds 5` (taskset -c 1,
//!   load 8.5-10.3) gpt2 non-Latin 2.13x -> 2.70x, every cell 2.70-4.04x; `--rounds 9` (load
//!   7.1 -> 5.9): 9/9 cells >= 2.5x, lowest gpt2 non-Latin 2.68x. Cold (`benches/cold.py
//!   --only decode --procs 3 --cpu 0 --peers fastllm tiktoken`, `report.py --clock cpu`, load
//!   4-7, noisy: the same command before this step gave gpt2 non-Latin 2.6x, after 2.1x): 3/9,
//!   worst cl100k non-Latin 1.74x. fastllm's first call is 20-40% slower than its warm third
//!   call (tiktoken's ~10%): the fresh pages of the id list, the bytes and the `str`, and the
//!   tables out of cache, weigh more in a 3-5 ms call than in tiktoken's 10-15 ms. Not done.
//!   The transcoder's loop is bound by its carried dependency (the next load's address is the
//!   last character's length): about 3 ns a character; a per-token table of partial characters
//!   (lead and trailing bytes beside the whole units) would take the split tokens a token at a
//!   time, not done.

use crate::error::{try_reserve, Error, Result};
use crate::vocab::Rank;

/// Longest token stored inline in its entry.
const INLINE: usize = 15;
/// Tag (an entry's last byte) of an id whose bytes are in the arena.
const LONG: u8 = 0xFE;
/// Tag of an id with no token.
const MISSING: u8 = 0xFF;
/// Tokens decoded between two checks that the output has room for their inline entries.
const BLOCK: usize = 256;

type Entry = [u8; INLINE + 1];

/// Token id to bytes.
pub(super) struct Decoder {
    /// Entry of each id below `dense.len()` (see the module notes).
    dense: Vec<Entry>,
    /// The bytes of the tokens not stored inline.
    arena: Vec<u8>,
    /// Ids at or past `dense.len()`, sorted: (id, start, length) in `arena`.
    sparse: Vec<(Rank, u32, u32)>,
    /// The UTF-16 of each id below `dense.len()` (see [`Decoder::units`]).
    utf16: std::sync::OnceLock<Vec<Units>>,
}

/// Up to [`UNITS`] UTF-16 code units of a token, their count in the last element
/// ([`NOT_WHOLE`]: the token is not whole characters, or has more units).
type Units = [u16; UNITS + 1];
const UNITS: usize = 7;
const NOT_WHOLE: u16 = u16::MAX;

impl Decoder {
    /// A decoder for `(id, bytes)` pairs; of pairs with one id the first is kept.
    /// `check_duplicate(bytes, id, first)` is called for each later pair with an id already
    /// taken (`first`: the bytes first given to it); an `Err` stops the build.
    pub(super) fn new<'a>(
        entries: impl Iterator<Item = (&'a [u8], Rank)> + Clone,
        max_id: Rank,
        mut check_duplicate: impl FnMut(&[u8], Rank, &[u8]) -> Result<()>,
    ) -> Result<Self> {
        let count = entries.clone().count();
        let dense_len = (max_id as usize + 1).min(count.saturating_mul(2).saturating_add(1024));
        let mut dense: Vec<Entry> = Vec::new();
        try_reserve(
            &mut dense,
            dense_len,
            &format!("the decoder table of ids below {dense_len}"),
        )?;
        let mut missing = [0; INLINE + 1];
        missing[INLINE] = MISSING;
        dense.resize(dense_len, missing);
        let mut decoder = Decoder {
            dense,
            arena: Vec::new(),
            sparse: Vec::new(),
            utf16: std::sync::OnceLock::new(),
        };
        let mut far: Vec<(Rank, &[u8])> = Vec::new();
        for (bytes, id) in entries {
            let Some(entry) = decoder.dense.get(id as usize) else {
                try_reserve(&mut far, 1, "the decoder's far ids")?;
                far.push((id, bytes));
                continue;
            };
            if entry[INLINE] != MISSING {
                check_duplicate(bytes, id, decoder.get(id).unwrap_or_default())?;
                continue;
            }
            let entry = if bytes.len() <= INLINE {
                let mut entry = [0; INLINE + 1];
                entry[..bytes.len()].copy_from_slice(bytes);
                entry[INLINE] = bytes.len() as u8;
                entry
            } else {
                let (start, len) = decoder.store(bytes)?;
                let mut entry = [0; INLINE + 1];
                entry[..4].copy_from_slice(&start.to_le_bytes());
                entry[4..8].copy_from_slice(&len.to_le_bytes());
                entry[INLINE] = LONG;
                entry
            };
            if let Some(slot) = decoder.dense.get_mut(id as usize) {
                *slot = entry;
            }
        }
        // Stable: of two pairs with one far id, the first stays first.
        far.sort_by_key(|&(id, _)| id);
        try_reserve(&mut decoder.sparse, far.len(), "the decoder's far ids")?;
        let mut previous: Option<(Rank, &[u8])> = None;
        for (id, bytes) in far {
            if let Some((first_id, first)) = previous {
                if first_id == id {
                    check_duplicate(bytes, id, first)?;
                    continue;
                }
            }
            let (start, len) = decoder.store(bytes)?;
            decoder.sparse.push((id, start, len));
            previous = Some((id, bytes));
        }
        // Made now, not on the first decode that needs it: the first call is the one that
        // counts (cold benchmark: o200k's table made by the first non-Latin decode made it
        // slower than tiktoken's).
        decoder.units();
        Ok(decoder)
    }

    /// Appends `bytes` to the arena: their start and length there.
    fn store(&mut self, bytes: &[u8]) -> Result<(u32, u32)> {
        let start = u32::try_from(self.arena.len());
        let len = u32::try_from(bytes.len());
        let (Ok(start), Ok(len)) = (start, len) else {
            return Err(Error::InvalidArgument(
                "the tokens' bytes add up to more than 4 GiB".to_string(),
            ));
        };
        try_reserve(&mut self.arena, bytes.len(), "the decoder's long tokens")?;
        self.arena.extend_from_slice(bytes);
        Ok((start, len))
    }

    fn span(&self, start: u32, len: u32) -> Option<&[u8]> {
        self.arena
            .get(start as usize..start as usize + len as usize)
    }

    /// The bytes of `token`, if it has any.
    pub(super) fn get(&self, token: Rank) -> Option<&[u8]> {
        let Some(entry) = self.dense.get(token as usize) else {
            let i = self
                .sparse
                .binary_search_by_key(&token, |&(id, _, _)| id)
                .ok()?;
            let &(_, start, len) = self.sparse.get(i)?;
            return self.span(start, len);
        };
        match entry[INLINE] {
            MISSING => None,
            LONG => {
                let [a, b, c, d, e, f, g, h, ..] = *entry;
                self.span(
                    u32::from_le_bytes([a, b, c, d]),
                    u32::from_le_bytes([e, f, g, h]),
                )
            }
            len => entry.get(..usize::from(len)),
        }
    }

    /// Appends the bytes of `tokens` to `out`; `InvalidToken` for an id with no token.
    pub(super) fn decode_into(&self, tokens: &[Rank], out: &mut Vec<u8>) -> Result<()> {
        for block in tokens.chunks(BLOCK) {
            grow(out, BLOCK * (INLINE + 1))?;
            for &token in block {
                match self.dense.get(token as usize) {
                    Some(entry) if usize::from(entry[INLINE]) <= INLINE => {
                        // The whole entry is copied (one 16-byte store; the room was reserved
                        // for the block), then the padding cut off again.
                        let end = out.len() + usize::from(entry[INLINE]);
                        out.extend_from_slice(entry);
                        out.truncate(end);
                    }
                    _ => {
                        let bytes = self.get(token).ok_or(Error::InvalidToken(token))?;
                        // Keeps room for the rest of the block's inline entries too.
                        grow(out, bytes.len() + BLOCK * (INLINE + 1))?;
                        out.extend_from_slice(bytes);
                    }
                }
            }
        }
        Ok(())
    }
}

impl Decoder {
    /// The UTF-16 table: for each id below `dense.len()` whose bytes are whole characters of
    /// valid UTF-8 in at most [`UNITS`] code units, those units (empty if it cannot be
    /// allocated: every token then takes the byte-at-a-time path).
    fn units(&self) -> &[Units] {
        self.utf16.get_or_init(|| {
            let mut table: Vec<Units> = Vec::new();
            if table.try_reserve_exact(self.dense.len()).is_err() {
                return table;
            }
            let mut not_whole = [0; UNITS + 1];
            not_whole[UNITS] = NOT_WHOLE;
            let mut units = Vec::with_capacity(4 * UNITS);
            for id in 0..self.dense.len() {
                let mut entry = not_whole;
                // Seven code units are at most 21 bytes of UTF-8.
                if let Some(bytes) = self.get(id as Rank).filter(|b| b.len() <= 3 * UNITS) {
                    units.clear();
                    let mut state = Utf8::default();
                    if bytes.iter().all(|&b| state.feed(b, &mut units))
                        && state.need == 0
                        && units.len() <= UNITS
                    {
                        entry[..units.len()].copy_from_slice(&units);
                        entry[UNITS] = units.len() as u16;
                    }
                }
                table.push(entry);
            }
            table
        })
    }

    /// The text of `tokens` as UTF-16 code units, or `None` if their bytes are not valid UTF-8;
    /// `InvalidToken` for an id with no token (unless invalid UTF-8 came first).
    pub(super) fn decode_utf16(&self, tokens: &[Rank]) -> Result<Option<Vec<u16>>> {
        let table = self.units();
        let mut out: Vec<u16> = Vec::new();
        try_reserve(&mut out, tokens.len() * 2 + 64, "the decoded text")?;
        let mut state = Utf8::default();
        for block in tokens.chunks(BLOCK) {
            grow(&mut out, BLOCK * (UNITS + 1))?;
            for &token in block {
                if state.need == 0 {
                    if let Some(units) = table.get(token as usize) {
                        if usize::from(units[UNITS]) <= UNITS {
                            // As in `decode_into`: one 16-byte copy, the padding cut off.
                            let end = out.len() + usize::from(units[UNITS]);
                            out.extend_from_slice(units);
                            out.truncate(end);
                            continue;
                        }
                    }
                }
                let bytes = self.get(token).ok_or(Error::InvalidToken(token))?;
                // At most one code unit per byte.
                grow(&mut out, bytes.len() + BLOCK * (UNITS + 1))?;
                for &byte in bytes {
                    if !state.feed(byte, &mut out) {
                        return Ok(None);
                    }
                }
            }
        }
        Ok((state.need == 0).then_some(out))
    }
}

/// A UTF-8 decoder a byte at a time (the standard's well-formed sequences, Table 3-7: no
/// overlong forms, no surrogates, nothing past U+10FFFF), writing UTF-16.
#[derive(Default)]
struct Utf8 {
    /// Continuation bytes still needed by the character begun.
    need: u8,
    code: u32,
    /// Bounds of the next continuation byte.
    lower: u8,
    upper: u8,
}

impl Utf8 {
    /// Takes one byte; `false` if the bytes so far are not the start of valid UTF-8.
    fn feed(&mut self, byte: u8, out: &mut Vec<u16>) -> bool {
        if self.need == 0 {
            let (need, code, lower, upper) = match byte {
                0x00..=0x7F => {
                    out.push(u16::from(byte));
                    return true;
                }
                0xC2..=0xDF => (1, byte & 0x1F, 0x80, 0xBF),
                0xE0 => (2, byte & 0x0F, 0xA0, 0xBF),
                0xED => (2, byte & 0x0F, 0x80, 0x9F),
                0xE1..=0xEF => (2, byte & 0x0F, 0x80, 0xBF),
                0xF0 => (3, byte & 0x07, 0x90, 0xBF),
                0xF4 => (3, byte & 0x07, 0x80, 0x8F),
                0xF1..=0xF3 => (3, byte & 0x07, 0x80, 0xBF),
                _ => return false,
            };
            *self = Utf8 {
                need,
                code: u32::from(code),
                lower,
                upper,
            };
            return true;
        }
        if byte < self.lower || byte > self.upper {
            return false;
        }
        self.lower = 0x80;
        self.upper = 0xBF;
        self.code = (self.code << 6) | u32::from(byte & 0x3F);
        self.need -= 1;
        if self.need == 0 {
            match u16::try_from(self.code) {
                Ok(unit) => out.push(unit),
                Err(_) => {
                    let c = self.code - 0x1_0000;
                    out.push(0xD800 | (c >> 10) as u16);
                    out.push(0xDC00 | (c & 0x3FF) as u16);
                }
            }
        }
        true
    }
}

/// Makes room for `extra` more items in `out`, doubling (fallibly: `MemoryError`, not an abort).
fn grow<T>(out: &mut Vec<T>, extra: usize) -> Result<()> {
    if out.capacity() - out.len() >= extra {
        return Ok(());
    }
    let want = extra.max(out.len());
    out.try_reserve(want)
        .map_err(|_| Error::OutOfMemory(format!("cannot grow the decoded text past {}", out.len())))
}

/// Decoded bytes as Python should make them into a `str` (see the module notes).
#[derive(Debug, PartialEq, Eq)]
pub enum Text {
    /// For Python's UTF-8 decoder: mostly ASCII, or not valid UTF-8.
    Utf8(Vec<u8>),
    /// Valid UTF-8, mostly multi-byte characters, as UTF-16 code units.
    Utf16(Vec<u16>),
}

/// Text with at least one non-ASCII byte in this many goes to UTF-16.
const NON_ASCII_SHARE: usize = 8;

/// Tokens sampled to choose how a decode makes its text: [`RUNS`] runs of this many, spread
/// evenly from the start to the end.
const SAMPLE: usize = 96;
/// See [`SAMPLE`]. Three runs (start, middle, end) misjudged a 1 MB mixed-script text whose
/// first script cl100k cuts into bytes (32% whole there, 96% over the whole text).
const RUNS: usize = 16;

impl Text {
    pub(super) fn new(decoder: &Decoder, tokens: &[Rank]) -> Result<Text> {
        let path = choose(decoder, tokens);
        if path == Path::Units {
            if let Some(units) = decoder.decode_utf16(tokens)? {
                return Ok(Text::Utf16(units));
            }
        }
        let mut bytes = Vec::new();
        try_reserve(&mut bytes, tokens.len() * 4 + 256, "the decoded bytes")?;
        decoder.decode_into(tokens, &mut bytes)?;
        if path == Path::Transcode {
            let mut units = Vec::new();
            try_reserve(&mut units, bytes.len(), "the decoded text")?;
            if utf8_to_utf16(&bytes, &mut units) {
                return Ok(Text::Utf16(units));
            }
        }
        Ok(Text::Utf8(bytes))
    }
}

/// How [`Text::new`] makes the text of a decode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    /// Bytes for Python's UTF-8 decoder (mostly ASCII).
    Utf8,
    /// UTF-16 from the table of whole-character tokens ([`Decoder::decode_utf16`]).
    Units,
    /// Bytes, then UTF-16 from them ([`utf8_to_utf16`]): mostly non-ASCII text whose tokens
    /// are often parts of characters.
    Transcode,
}

/// Appends the UTF-16 of `bytes` to `out` (which has room for `bytes.len()` more units);
/// `false` (and `out` of no use) if `bytes` is not valid UTF-8 (the standard's well-formed
/// sequences, Table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF).
fn utf8_to_utf16(bytes: &[u8], out: &mut Vec<u16>) -> bool {
    let start = out.len();
    // At most one unit per byte: written by index, the rest cut off at the end.
    out.resize(start + bytes.len(), 0);
    let Some(dst) = out.get_mut(start..) else {
        return false;
    };
    let (mut i, mut j) = (0, 0);
    let n = bytes.len();
    while i < n {
        // ASCII and two-byte characters (most non-Latin scripts but CJK) without a branch on
        // which of the two: a branchy loop mispredicted at every word (see the module notes).
        while let Some(&[b0, b1]) = bytes.get(i..i + 2) {
            let two = (0xC2..=0xDF).contains(&b0);
            if (b0 >= 0x80 && !two) || (two && (b1 as i8) >= -64) {
                // A longer character or not UTF-8: the full check below.
                break;
            }
            if b0 < 0x80 && b1 < 0x80 {
                // An ASCII run, 16 bytes at a time while they are all ASCII.
                if let (Some(chunk), Some(to)) = (bytes.get(i..i + 16), dst.get_mut(j..j + 16)) {
                    let word =
                        u128::from_le_bytes(<[u8; 16]>::try_from(chunk).unwrap_or([0x80; 16]));
                    if word & 0x8080_8080_8080_8080_8080_8080_8080_8080 == 0 {
                        for (d, &s) in to.iter_mut().zip(chunk) {
                            *d = u16::from(s);
                        }
                        i += 16;
                        j += 16;
                        continue;
                    }
                }
            }
            let pair = (u16::from(b0 & 0x1F) << 6) | u16::from(b1 & 0x3F);
            let Some(d) = dst.get_mut(j) else {
                return false;
            };
            *d = if two { pair } else { u16::from(b0) };
            i += 1 + usize::from(two);
            j += 1;
        }
        let Some(&b0) = bytes.get(i) else {
            break;
        };
        if b0 < 0x80 {
            // The last byte.
            let Some(d) = dst.get_mut(j) else {
                return false;
            };
            *d = u16::from(b0);
            i += 1;
            j += 1;
            continue;
        }
        let cont = |k: usize| bytes.get(i + k).map_or(0, |&b| b);
        let is_cont = |b: u8| (b as i8) < -64;
        let unit = if b0 < 0xE0 {
            let b1 = cont(1);
            if b0 < 0xC2 || !is_cont(b1) {
                return false;
            }
            i += 2;
            (u16::from(b0 & 0x1F) << 6) | u16::from(b1 & 0x3F)
        } else if b0 < 0xF0 {
            let (b1, b2) = (cont(1), cont(2));
            let (lower, upper) = match b0 {
                0xE0 => (0xA0, 0xBF),
                0xED => (0x80, 0x9F),
                _ => (0x80, 0xBF),
            };
            if b1 < lower || b1 > upper || !is_cont(b2) {
                return false;
            }
            i += 3;
            (u16::from(b0 & 0x0F) << 12) | (u16::from(b1 & 0x3F) << 6) | u16::from(b2 & 0x3F)
        } else {
            let (b1, b2, b3) = (cont(1), cont(2), cont(3));
            let (lower, upper) = match b0 {
                0xF0 => (0x90, 0xBF),
                0xF1..=0xF3 => (0x80, 0xBF),
                0xF4 => (0x80, 0x8F),
                _ => return false,
            };
            if b1 < lower || b1 > upper || !is_cont(b2) || !is_cont(b3) {
                return false;
            }
            i += 4;
            let code = (u32::from(b0 & 0x07) << 18)
                | (u32::from(b1 & 0x3F) << 12)
                | (u32::from(b2 & 0x3F) << 6)
                | u32::from(b3 & 0x3F);
            let c = code - 0x1_0000;
            // Four bytes make two units: there is room (units <= bytes read).
            let Some(d) = dst.get_mut(j) else {
                return false;
            };
            *d = 0xD800 | (c >> 10) as u16;
            j += 1;
            0xDC00 | (c & 0x3FF) as u16
        };
        let Some(d) = dst.get_mut(j) else {
            return false;
        };
        *d = unit;
        j += 1;
    }
    out.truncate(start + j);
    true
}

/// How to make the text of `tokens`: UTF-16 when at least one byte in [`NON_ASCII_SHARE`] of
/// the sampled tokens' bytes is not ASCII: from the table when at least [`WHOLE_SHARE`] percent
/// of the sampled tokens are whole characters (cl100k 96% of the non-Latin sample, o200k 98%),
/// else transcoded from the bytes (gpt2 cuts many characters into bytes: 56% whole, where the
/// table's byte-at-a-time path is slower than Python's decoder).
fn choose(decoder: &Decoder, tokens: &[Rank]) -> Path {
    let end = tokens.len();
    let step = end.saturating_sub(SAMPLE) / (RUNS - 1);
    let sample: Vec<Rank> = if end <= SAMPLE * RUNS {
        tokens.to_vec()
    } else {
        (0..RUNS)
            .flat_map(|run| {
                let start = run * step;
                tokens.get(start..start + SAMPLE).unwrap_or_default()
            })
            .copied()
            .collect()
    };
    let mut bytes = Vec::new();
    // An id with no token is reported by the decode that follows.
    let _ = decoder.decode_into(&sample, &mut bytes);
    let non_ascii = non_ascii_bytes(&bytes);
    if non_ascii == 0 || non_ascii * NON_ASCII_SHARE < bytes.len() {
        return Path::Utf8;
    }
    let table = decoder.units();
    let whole = sample
        .iter()
        .filter(|&&id| {
            table
                .get(id as usize)
                .is_some_and(|u| u[UNITS] != NOT_WHOLE)
        })
        .count();
    if whole * 100 >= sample.len() * WHOLE_SHARE {
        Path::Units
    } else {
        Path::Transcode
    }
}

/// See [`choose`].
const WHOLE_SHARE: usize = 80;

/// How many bytes of `bytes` are not ASCII (a word at a time: their top bits).
fn non_ascii_bytes(bytes: &[u8]) -> usize {
    let words = bytes.chunks_exact(8);
    let tail = words.remainder().iter().filter(|&&b| b >= 0x80).count();
    let top_bits = words
        .map(|w| {
            let word = <[u8; 8]>::try_from(w).map_or(0, u64::from_ne_bytes);
            (word & 0x8080_8080_8080_8080).count_ones() as usize
        })
        .sum::<usize>();
    top_bits + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder(pairs: &[(&[u8], Rank)]) -> Decoder {
        let max = pairs.iter().map(|p| p.1).max().unwrap_or(0);
        Decoder::new(pairs.iter().copied(), max, |_, id, _| {
            Err(Error::InvalidArgument(format!("duplicate {id}")))
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn short_long_sparse_and_missing_ids() {
        let long = [b'x'; 40];
        let d = decoder(&[
            (b"a", 0),
            (b"", 1),
            (&long, 3),
            (b"0123456789abcde", 4),
            (b"far", 9_000_000),
        ]);
        assert!(d.dense.len() < 2000);
        assert_eq!(d.get(0), Some(&b"a"[..]));
        assert_eq!(d.get(1), Some(&b""[..]));
        assert_eq!(d.get(2), None);
        assert_eq!(d.get(3), Some(&long[..]));
        assert_eq!(d.get(4), Some(&b"0123456789abcde"[..]));
        assert_eq!(d.get(9_000_000), Some(&b"far"[..]));
        assert_eq!(d.get(8_999_999), None);
        let mut out = Vec::new();
        let ids: Vec<Rank> = [4, 0, 3, 1, 9_000_000, 0].repeat(300);
        d.decode_into(&ids, &mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        let one = [&b"0123456789abcde"[..], b"a", &long, b"far", b"a"].concat();
        assert_eq!(out, one.repeat(300));
        assert_eq!(
            d.decode_into(&[0, 2], &mut out),
            Err(Error::InvalidToken(2))
        );
        assert_eq!(
            d.decode_into(&[7_000_000], &mut out),
            Err(Error::InvalidToken(7_000_000))
        );
    }

    #[test]
    fn first_of_two_pairs_with_one_id_is_kept() {
        let pairs: &[(&[u8], Rank)] = &[(b"a", 1), (b"b", 1), (b"c", 5_000_000), (b"d", 5_000_000)];
        let mut seen = Vec::new();
        let d = Decoder::new(pairs.iter().copied(), 5_000_000, |later, id, first| {
            seen.push((later.to_vec(), id, first.to_vec()));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.get(1), Some(&b"a"[..]));
        assert_eq!(d.get(5_000_000), Some(&b"c"[..]));
        assert_eq!(
            seen,
            vec![
                (b"b".to_vec(), 1, b"a".to_vec()),
                (b"d".to_vec(), 5_000_000, b"c".to_vec())
            ]
        );
    }

    /// Every byte, and multi-byte tokens that are whole characters, split characters, or both.
    fn text_decoder() -> (Decoder, Vec<Vec<u8>>) {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for t in [
            "中",
            "文的",
            "€",
            "🎉",
            "é",
            " 和",
            "abcdefgh",
            "中文中文中文中文",
        ] {
            tokens.push(t.as_bytes().to_vec());
        }
        tokens.push("中".as_bytes()[..2].to_vec());
        tokens.push([&"文".as_bytes()[2..], "的".as_bytes()].concat());
        tokens.push("🎉".as_bytes()[1..].to_vec());
        let pairs: Vec<(&[u8], Rank)> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_slice(), i as Rank))
            .collect();
        (decoder(&pairs), tokens)
    }

    fn expected(tokens: &[Vec<u8>], ids: &[Rank]) -> Option<Vec<u16>> {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&i| tokens[i as usize].clone())
            .collect();
        std::str::from_utf8(&bytes)
            .ok()
            .map(|s| s.encode_utf16().collect())
    }

    #[test]
    fn utf16_equals_std_on_valid_and_invalid_sequences() {
        let (d, tokens) = text_decoder();
        let n = tokens.len() as Rank;
        let cases: Vec<Vec<Rank>> = vec![
            vec![],
            vec![256, 257, 258, 259, 260, 261, 262, 263],
            vec![264, 0xAD, 265, 0xA4, 0xBD, 266, 0xF0],
            vec![0xE4, 0xB8],
            vec![0xED, 0xA0, 0x80],
            vec![0xE0, 0x80, 0x80],
            vec![0xF4, 0x90, 0x80, 0x80],
            vec![0xC0, 0x80],
            vec![0xF0, 0x9F, 0x8E, 0x89],
        ];
        for ids in &cases {
            assert_eq!(d.decode_utf16(ids), Ok(expected(&tokens, ids)), "{ids:?}");
        }
        // A deterministic pseudo-random walk over the tokens, biased to the multi-byte ones.
        let mut x = 12345u64;
        for len in 0..600 {
            let ids: Vec<Rank> = (0..len % 40)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let r = (x >> 33) as Rank;
                    if r % 3 == 0 {
                        r % n
                    } else {
                        0x80 + r % 0x80
                    }
                })
                .collect();
            let ids: Vec<Rank> = ids
                .iter()
                .map(|&i| if i % 5 == 0 { 256 + i % (n - 256) } else { i })
                .collect();
            assert_eq!(d.decode_utf16(&ids), Ok(expected(&tokens, &ids)), "{ids:?}");
        }
        assert_eq!(d.decode_utf16(&[256, 5000]), Err(Error::InvalidToken(5000)));
    }

    #[test]
    fn text_goes_to_utf16_only_when_valid_and_mostly_non_ascii() {
        let (d, tokens) = text_decoder();
        let cjk: Vec<Rank> = [256, 257, 263, 258, 259].repeat(50);
        assert_eq!(
            Text::new(&d, &cjk),
            Ok(Text::Utf16(expected(&tokens, &cjk).unwrap_or_default()))
        );
        let english: Vec<Rank> = b"plain English with one "
            .iter()
            .map(|&b| Rank::from(b))
            .chain([260])
            .collect();
        let bytes: Vec<u8> = english
            .iter()
            .flat_map(|&i| tokens[i as usize].clone())
            .collect();
        assert_eq!(Text::new(&d, &english), Ok(Text::Utf8(bytes)));
        let mut invalid = cjk.clone();
        invalid.push(0xE4);
        let bytes: Vec<u8> = invalid
            .iter()
            .flat_map(|&i| tokens[i as usize].clone())
            .collect();
        assert_eq!(Text::new(&d, &invalid), Ok(Text::Utf8(bytes)));
        assert_eq!(Text::new(&d, &[]), Ok(Text::Utf8(Vec::new())));
        // Split characters at the start, whole ones after (87% of the tokens): the sample is
        // spread over the whole list, not only its start, middle and end.
        let mixed: Vec<Rank> = [0xE4, 0xB8, 0xAD]
            .repeat(200)
            .into_iter()
            .chain([256, 257].repeat(2000))
            .collect();
        assert_eq!(
            Text::new(&d, &mixed),
            Ok(Text::Utf16(expected(&tokens, &mixed).unwrap_or_default()))
        );
        for n in 0..40 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let slow = bytes.iter().filter(|&&b| b >= 0x80).count();
            assert_eq!(non_ascii_bytes(&bytes), slow);
        }
    }
    #[test]
    fn transcode_equals_std_on_valid_and_invalid_sequences() {
        let valid = [
            "a",
            " ",
            "é",
            "Ж",
            "中",
            "🎉",
            "\u{7F}",
            "\u{80}",
            "\u{7FF}",
            "\u{800}",
            "\u{D7FF}",
            "\u{E000}",
            "\u{FFFF}",
            "\u{10000}",
            "\u{10FFFF}",
            "abcdefghijklmnopqrstuvwxyz",
            "слово ",
            "中文的 ",
        ];
        let invalid: [&[u8]; 14] = [
            &[0x80],
            &[0xBF],
            &[0xC0, 0x80],
            &[0xC1, 0xBF],
            &[0xC2],
            &[0xE0, 0x80, 0x80],
            &[0xE0, 0x9F, 0xBF],
            &[0xED, 0xA0, 0x80],
            &[0xE4, 0xB8],
            &[0xF0, 0x8F, 0xBF, 0xBF],
            &[0xF0, 0x9F, 0x8E],
            &[0xF4, 0x90, 0x80, 0x80],
            &[0xF5, 0x80, 0x80, 0x80],
            &[0xFF],
        ];
        let mut x = 987_654_321u64;
        let mut next = |m: usize| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as usize % m
        };
        for round in 0..4000 {
            let mut bytes = Vec::new();
            for _ in 0..round % 50 {
                if next(40) == 0 {
                    bytes.extend_from_slice(invalid[next(invalid.len())]);
                } else {
                    bytes.extend_from_slice(valid[next(valid.len())].as_bytes());
                }
            }
            let expected: Option<Vec<u16>> = std::str::from_utf8(&bytes)
                .ok()
                .map(|s| s.encode_utf16().collect());
            let mut out = vec![7u16];
            let ok = utf8_to_utf16(&bytes, &mut out);
            assert_eq!(ok, expected.is_some(), "{bytes:?}");
            if let Some(units) = expected {
                assert_eq!(out[0], 7);
                assert_eq!(&out[1..], &units[..], "{bytes:?}");
            }
        }
    }
}
