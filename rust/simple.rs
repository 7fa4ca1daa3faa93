//! The book's word-level tokenizer (chapter 2, `SimpleTokenizerV1` and `SimpleTokenizerV2`).
//!
//! Text is split as Python's `re.split(r'([,.:;?_!"()\']|--|\s)', text)` splits it, keeping the
//! punctuation and `--` as tokens and dropping whitespace and empty items. Decoding joins the
//! tokens with spaces and then applies the book's clean-up `re.sub(r'\s+([,.:;?!"()\'])', r'\1',
//! text)`. Both are implemented by hand (one pass over the bytes) and give the same result as the
//! Python regexes on any text, including Python's notion of whitespace (`str.isspace`), which is
//! Rust's `char::is_whitespace` plus the four ASCII separators `\x1c`..`\x1f`.

use rustc_hash::{FxBuildHasher, FxHashSet};
use std::hash::BuildHasher;

use crate::error::py_repr;
use crate::error::{Error, Result};
use crate::vocab::MAX_ID;

/// The splitting regex of the book, for documentation and error messages.
pub const SPLIT_PATTERN: &str = r#"([,.:;?_!"()\']|--|\s)"#;

/// Python's `str.isspace` (and `re`'s `\s` on `str` patterns).
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// The characters before which decoding removes whitespace (`[,.:;?!"()\']`, no `_`).
fn is_cleanup(c: char) -> bool {
    matches!(
        c,
        ',' | '.' | ':' | ';' | '?' | '!' | '"' | '(' | ')' | '\''
    )
}

// Byte classes for the splitter.
const WORD: u8 = 0;
const PUNCT: u8 = 1;
const SPACE: u8 = 2;
const DASH: u8 = 3;
const MAYBE_SPACE: u8 = 4;

const fn byte_classes() -> [u8; 256] {
    let mut table = [WORD; 256];
    let punct = b",.:;?_!\"()'";
    let mut i = 0;
    while i < punct.len() {
        table[punct[i] as usize] = PUNCT;
        i += 1;
    }
    let space = b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f ";
    let mut i = 0;
    while i < space.len() {
        table[space[i] as usize] = SPACE;
        i += 1;
    }
    table[b'-' as usize] = DASH;
    // Lead bytes of the non-ASCII whitespace characters: U+0085 and U+00A0 (0xC2), U+1680
    // (0xE1), U+2000..U+205F (0xE2) and U+3000 (0xE3). Continuation bytes never start a char,
    // so stepping over other non-ASCII bytes one at a time is safe.
    table[0xC2] = MAYBE_SPACE;
    table[0xE1] = MAYBE_SPACE;
    table[0xE2] = MAYBE_SPACE;
    table[0xE3] = MAYBE_SPACE;
    table
}

static CLASSES: [u8; 256] = byte_classes();

/// The length of the non-ASCII whitespace character (Python's `str.isspace`) that `rest` starts
/// with, or 0.
#[cold]
fn multibyte_space_len(rest: &[u8]) -> usize {
    match rest {
        // U+0085, U+00A0
        [0xC2, 0x85 | 0xA0, ..] => 2,
        // U+1680
        [0xE1, 0x9A, 0x80, ..] => 3,
        // U+2000..=U+200A, U+2028, U+2029, U+202F
        [0xE2, 0x80, 0x80..=0x8A | 0xA8 | 0xA9 | 0xAF, ..] => 3,
        // U+205F
        [0xE2, 0x81, 0x9F, ..] => 3,
        // U+3000
        [0xE3, 0x80, 0x80, ..] => 3,
        _ => 0,
    }
}

const HIGH: u64 = 0x8080_8080_8080_8080;

const fn repeat(b: u8) -> u64 {
    b as u64 * 0x0101_0101_0101_0101
}

/// Bit 7 of each byte of the result is set where that byte of `x` is ASCII `[A-Za-z0-9]`:
/// eight bytes classified at once, with no branch (each subtraction stays within its byte).
#[inline(always)]
fn alnum_mask(x: u64) -> u64 {
    let ascii = !x & HIGH;
    let low = x & !HIGH;
    let at_least = |a: u8| (low | HIGH).wrapping_sub(repeat(a)) & HIGH;
    let at_most = |b: u8| (repeat(b) | HIGH).wrapping_sub(low) & HIGH;
    ascii
        & ((at_least(b'a') & at_most(b'z'))
            | (at_least(b'A') & at_most(b'Z'))
            | (at_least(b'0') & at_most(b'9')))
}

/// The index of the first byte at or after `i` that may be a separator: the splitter's hot
/// loop. Letters and digits are skipped eight at a time, which saves the mispredicted exit of a
/// byte loop on nearly every word (about twice as fast on prose); other bytes go through the
/// class table. Kept out of line: inlined, the compiler makes `for_each_token` much slower.
#[inline(never)]
fn skip_word(bytes: &[u8], mut i: usize) -> usize {
    loop {
        let eight = bytes
            .get(i..i + 8)
            .and_then(|c| <[u8; 8]>::try_from(c).ok());
        if let Some(eight) = eight {
            let stop = !alnum_mask(u64::from_le_bytes(eight)) & HIGH;
            if stop == 0 {
                i += 8;
                continue;
            }
            i += (stop.trailing_zeros() / 8) as usize;
        }
        match bytes.get(i) {
            Some(&b) if CLASSES[b as usize] == WORD => i += 1,
            _ => return i,
        }
    }
}

/// The index of the first byte at or after `i` that is not ASCII whitespace.
fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while let Some(&b) = bytes.get(i) {
        if CLASSES[b as usize] != SPACE {
            break;
        }
        i += 1;
    }
    i
}

/// Calls `f` on every token of `text`, in order, as the book's split-and-strip produces them.
pub fn for_each_token<'t>(text: &'t str, mut f: impl FnMut(&'t [u8])) {
    let bytes = text.as_bytes();
    let n = bytes.len();
    let mut start = 0;
    let mut i = 0;
    loop {
        i = skip_word(bytes, i);
        let Some(&b) = bytes.get(i) else { break };
        // (separator length, whether the separator is itself a token)
        let (len, keep) = match CLASSES[b as usize] {
            // A run of ASCII whitespace: the empty items between its bytes are dropped anyway.
            SPACE => (skip_spaces(bytes, i + 1) - i, false),
            PUNCT => (1, true),
            DASH => {
                if bytes.get(i + 1) == Some(&b'-') {
                    (2, true)
                } else {
                    (0, false)
                }
            }
            _ => (
                multibyte_space_len(bytes.get(i..).unwrap_or_default()),
                false,
            ),
        };
        if len == 0 {
            // A single '-' or a non-space non-ASCII character: part of a word.
            i += 1;
            continue;
        }
        if start < i {
            f(&bytes[start..i]);
        }
        if keep {
            f(&bytes[i..i + len]);
        }
        i += len;
        start = i;
    }
    if start < n {
        f(&bytes[start..n]);
    }
}

/// The tokens of `text` (the book's `preprocessed` list).
pub fn split(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    // Tokens are slices at char boundaries, so they are valid UTF-8.
    for_each_token(text, |t| {
        out.push(std::str::from_utf8(t).unwrap_or_default())
    });
    out
}

/// Where a token's text lies in `SimpleTokenizer::bytes`, plus what decoding needs to know.
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
    /// The token contains no whitespace, so it can be copied as a whole.
    plain: bool,
    /// The token starts with a clean-up character (whitespace before it is removed).
    lead_cleanup: bool,
}

impl Span {
    const MISSING: Span = Span {
        start: 0,
        len: u32::MAX,
        plain: true,
        lead_cleanup: false,
    };
}

/// The first (up to) 8 bytes of `key` as a little-endian integer, zero-padded: two
/// overlapping loads instead of a byte loop.
#[inline(always)]
fn prefix(key: &[u8]) -> u64 {
    let n = key.len();
    if n >= 8 {
        return key.first_chunk::<8>().map_or(0, |c| u64::from_le_bytes(*c));
    }
    if n >= 4 {
        let lo = key.first_chunk::<4>().map_or(0, |c| u32::from_le_bytes(*c));
        let hi = key.last_chunk::<4>().map_or(0, |c| u32::from_le_bytes(*c));
        return u64::from(lo) | u64::from(hi) << (8 * (n - 4));
    }
    if n >= 2 {
        let lo = key.first_chunk::<2>().map_or(0, |c| u16::from_le_bytes(*c));
        let hi = key.last_chunk::<2>().map_or(0, |c| u16::from_le_bytes(*c));
        return u64::from(lo) | u64::from(hi) << (8 * (n - 2));
    }
    key.first().map_or(0, |&b| u64::from(b))
}

/// Token text to id, built for `encode`'s cache behaviour: open addressing with linear probing
/// over 16-byte slots that hold a word's first 8 bytes, its length, a hash tag and its id. Most
/// words are found with one cache line touched (a hash map of boxed keys touches three), which
/// matters because a new text keeps reaching vocabulary entries that are not in cache. Longer
/// words compare their tail against the decoder's arena.
struct WordTable {
    shift: u32,
    mask: usize,
    /// `[prefix, meta]`, `meta = tag << 40 | min(len, 255) << 32 | (id + 1)`; `meta == 0` is empty.
    slots: Vec<[u64; 2]>,
    len: usize,
}

impl WordTable {
    fn with_capacity(n: usize) -> Self {
        // Load factor at most 1/2: short probes, and an empty slot always ends a search.
        let size = (2 * n).next_power_of_two().max(16);
        WordTable {
            shift: 64 - size.trailing_zeros(),
            mask: size - 1,
            slots: vec![[0, 0]; size],
            len: 0,
        }
    }

    /// (first slot to probe, the `meta` bits above the id that a match must have)
    #[inline(always)]
    fn place(&self, key: &[u8]) -> (usize, u64) {
        let hash = FxBuildHasher.hash_one(key);
        let tag = (hash & 0xFF_FFFF) << 8 | key.len().min(255) as u64;
        ((hash >> self.shift) as usize, tag << 32)
    }

    /// The id of `key`; `tail(id)` gives the bytes after the first 8 of a stored token.
    #[inline]
    fn get<'a>(&self, key: &[u8], tail: impl Fn(u32) -> &'a [u8]) -> Option<u32> {
        let (mut i, want) = self.place(key);
        let first = prefix(key);
        loop {
            let [stored, meta] = *self.slots.get(i)?;
            if meta == 0 {
                return None;
            }
            if meta & !0xFFFF_FFFF == want && stored == first {
                let id = (meta as u32).wrapping_sub(1);
                if key.len() <= 8 || key.get(8..) == Some(tail(id)) {
                    return Some(id);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Stores `key -> id`; the caller makes sure `key` is not stored yet.
    fn insert(&mut self, key: &[u8], id: u32) {
        let (mut i, want) = self.place(key);
        while let Some(slot) = self.slots.get_mut(i) {
            if slot[1] == 0 {
                *slot = [prefix(key), want | (u64::from(id) + 1)];
                self.len += 1;
                return;
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// The book's `SimpleTokenizerV2` (with an unknown token) or `SimpleTokenizerV1` (without).
pub struct SimpleTokenizer {
    table: WordTable,
    bytes: Vec<u8>,
    spans: Vec<Span>,
    unk_token: Option<String>,
    unk_id: Option<u32>,
}

impl SimpleTokenizer {
    /// Builds a tokenizer from `(token, id)` pairs. Ids must be distinct and in `0..=MAX_ID`;
    /// `unk_token`, when given, must be one of the tokens.
    pub fn new(vocab: Vec<(String, i64)>, unk_token: Option<&str>) -> Result<Self> {
        let mut by_id: Vec<(u32, String)> = Vec::with_capacity(vocab.len());
        for (token, id) in vocab {
            let id = u32::try_from(id)
                .ok()
                .filter(|&id| id <= MAX_ID)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "vocab[{}] = {id}: token ids must be integers in 0..={MAX_ID}",
                        py_repr(&token)
                    ))
                })?;
            by_id.push((id, token));
        }
        by_id.sort_unstable_by_key(|&(id, _)| id);
        if let Some(pair) = by_id.windows(2).find(|p| p[0].0 == p[1].0) {
            return Err(Error::InvalidArgument(format!(
                "vocab maps both {} and {} to id {}; each id must belong to one token",
                py_repr(&pair[0].1),
                py_repr(&pair[1].1),
                pair[0].0
            )));
        }
        let table_len = by_id.last().map_or(0, |&(id, _)| id as usize + 1);
        let mut spans = vec![Span::MISSING; table_len];
        let mut bytes = Vec::new();
        for (id, token) in &by_id {
            let (start, len) = (u32::try_from(bytes.len()), u32::try_from(token.len()));
            let (Ok(start), Ok(len)) = (start, len) else {
                return Err(Error::InvalidArgument(
                    "vocab is too large: its tokens total more than 4 GiB of text".to_string(),
                ));
            };
            bytes.extend_from_slice(token.as_bytes());
            if let Some(span) = spans.get_mut(*id as usize) {
                *span = Span {
                    start,
                    len,
                    plain: !token.chars().any(is_py_space),
                    lead_cleanup: token.chars().next().is_some_and(is_cleanup),
                };
            }
        }
        let mut tokenizer = SimpleTokenizer {
            table: WordTable::with_capacity(by_id.len()),
            bytes,
            spans,
            unk_token: None,
            unk_id: None,
        };
        for (id, token) in &by_id {
            if tokenizer.lookup(token.as_bytes()).is_some() {
                return Err(Error::InvalidArgument(format!(
                    "vocab lists the token {} twice; each token must appear once",
                    py_repr(token)
                )));
            }
            tokenizer.table.insert(token.as_bytes(), *id);
        }
        if let Some(unk) = unk_token {
            tokenizer.unk_id = Some(tokenizer.lookup(unk.as_bytes()).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unk_token {} is not in the vocabulary; add it to the vocabulary (or to \
                     special_tokens), or pass unk_token=None to raise KeyError on unknown words",
                    py_repr(unk)
                ))
            })?);
            tokenizer.unk_token = Some(unk.to_string());
        }
        Ok(tokenizer)
    }

    /// The book's vocabulary: the sorted unique tokens of `text`, then `special_tokens` (a
    /// special token that also occurs in the text keeps only its place at the end, so ids stay
    /// contiguous).
    pub fn from_text(
        text: &str,
        special_tokens: &[String],
        unk_token: Option<&str>,
    ) -> Result<Self> {
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        for special in special_tokens {
            if !seen.insert(special.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "special_tokens lists {} twice; each special token must appear once",
                    py_repr(special)
                )));
            }
        }
        let specials: FxHashSet<&[u8]> = special_tokens.iter().map(|s| s.as_bytes()).collect();
        let mut unique: FxHashSet<&[u8]> = FxHashSet::default();
        let mut any = false;
        for_each_token(text, |t| {
            any = true;
            if !specials.contains(t) {
                unique.insert(t);
            }
        });
        if !any {
            return Err(Error::InvalidArgument(format!(
                "text is empty or only whitespace ({} characters); SimpleTokenizer.from_text \
                 needs text with at least one word to build a vocabulary",
                text.chars().count()
            )));
        }
        let mut words: Vec<&[u8]> = unique.into_iter().collect();
        // Byte order of UTF-8 is code point order, which is how Python's `sorted` orders str.
        words.sort_unstable();
        let mut vocab: Vec<(String, i64)> = Vec::with_capacity(words.len() + special_tokens.len());
        for word in words {
            vocab.push((
                String::from_utf8_lossy(word).into_owned(),
                vocab.len() as i64,
            ));
        }
        for special in special_tokens {
            vocab.push((special.clone(), vocab.len() as i64));
        }
        SimpleTokenizer::new(vocab, unk_token)
    }

    /// The number of tokens in the vocabulary.
    pub fn len(&self) -> usize {
        self.table.len
    }

    pub fn is_empty(&self) -> bool {
        self.table.len == 0
    }

    /// One more than the largest id (the size of an id-indexed table).
    pub fn id_bound(&self) -> usize {
        self.spans.len()
    }

    pub fn unk_token(&self) -> Option<&str> {
        self.unk_token.as_deref()
    }

    /// The bytes of token `id` after its first 8.
    fn tail(&self, id: u32) -> &[u8] {
        match self.spans.get(id as usize) {
            Some(span) => {
                let start = span.start as usize;
                let end = start + span.len as usize;
                self.bytes.get(start + 8..end).unwrap_or_default()
            }
            None => &[],
        }
    }

    #[inline]
    fn lookup(&self, key: &[u8]) -> Option<u32> {
        self.table.get(key, |id| self.tail(id))
    }

    /// The text of token `id`, if there is one.
    pub fn token(&self, id: u32) -> Option<&str> {
        let span = self.spans.get(id as usize)?;
        if span.len == u32::MAX {
            return None;
        }
        let start = span.start as usize;
        let bytes = self.bytes.get(start..start + span.len as usize)?;
        std::str::from_utf8(bytes).ok()
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.lookup(token.as_bytes())
    }

    /// `(token, id)` pairs in id order.
    pub fn vocab(&self) -> Vec<(&str, u32)> {
        (0..self.spans.len() as u32)
            .filter_map(|id| self.token(id).map(|t| (t, id)))
            .collect()
    }

    /// Token ids of `text`; an unknown word becomes the unknown token, or an error without one.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 4 + 1);
        let mut unknown: Option<&[u8]> = None;
        for_each_token(text, |t| match self.lookup(t) {
            Some(id) => out.push(id),
            None => match self.unk_id {
                Some(unk) => out.push(unk),
                None => {
                    unknown.get_or_insert(t);
                }
            },
        });
        match unknown {
            Some(word) => Err(Error::UnknownWord(
                String::from_utf8_lossy(word).into_owned(),
            )),
            None => Ok(out),
        }
    }

    /// The book's decode: tokens joined by spaces, then whitespace before `, . : ; ? ! " ( ) '`
    /// removed. Fails on the first id without a token.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut out: Vec<u8> = Vec::with_capacity(ids.len() * 6);
        // Start of the whitespace run at the end of `out`, if `out` ends with whitespace.
        let mut space_from: Option<usize> = None;
        let mut utf8 = [0u8; 4];
        for (k, &id) in ids.iter().enumerate() {
            let span = self
                .spans
                .get(id as usize)
                .filter(|s| s.len != u32::MAX)
                .ok_or(Error::InvalidToken(id))?;
            let start = span.start as usize;
            let token = self
                .bytes
                .get(start..start + span.len as usize)
                .ok_or(Error::InvalidToken(id))?;
            if k > 0 {
                space_from.get_or_insert(out.len());
                out.push(b' ');
            }
            if span.plain {
                if span.lead_cleanup {
                    if let Some(from) = space_from {
                        out.truncate(from);
                    }
                }
                if !token.is_empty() {
                    out.extend_from_slice(token);
                    space_from = None;
                }
            } else {
                for c in String::from_utf8_lossy(token).chars() {
                    if is_py_space(c) {
                        space_from.get_or_insert(out.len());
                    } else {
                        if is_cleanup(c) {
                            if let Some(from) = space_from {
                                out.truncate(from);
                            }
                        }
                        space_from = None;
                    }
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        // Tokens are whole strings and cuts fall on char boundaries: always valid UTF-8.
        String::from_utf8(out).map_err(|e| Error::InvalidArgument(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<&str> {
        split(text)
    }

    #[test]
    fn prefix_pads_with_zeros() {
        let key = b"abcdefghij";
        for n in 0..=10 {
            let mut expected = [0u8; 8];
            let m = n.min(8);
            expected[..m].copy_from_slice(&key[..m]);
            assert_eq!(prefix(&key[..n]), u64::from_le_bytes(expected), "n={n}");
        }
    }

    #[test]
    fn table_finds_every_word_and_nothing_else() -> Result<()> {
        let words: Vec<String> = (0..5000)
            .map(|i| format!("{}{}", "w".repeat(i % 13), i))
            .chain(["".to_string(), "a".to_string(), "\u{e9}t\u{e9}".to_string()])
            .collect();
        let vocab = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), 3 * i as i64))
            .collect();
        let tok = SimpleTokenizer::new(vocab, None)?;
        assert_eq!(tok.len(), words.len());
        for (i, w) in words.iter().enumerate() {
            assert_eq!(tok.id(w), Some(3 * i as u32), "{w:?}");
            assert_eq!(tok.id(&format!("{w}x")), None);
        }
        assert_eq!(tok.id("wwwwwwwwwwww13"), None);
        Ok(())
    }

    #[test]
    fn alnum_mask_is_exact() {
        for v in 0..=255u8 {
            for pos in 0..8 {
                let mut eight = [b'#'; 8];
                eight[pos] = v;
                let mask = alnum_mask(u64::from_le_bytes(eight));
                let bit = mask >> (8 * pos + 7) & 1;
                assert_eq!(bit == 1, v.is_ascii_alphanumeric(), "byte {v} at {pos}");
                assert_eq!(mask & !(0x80 << (8 * pos)), 0);
            }
        }
    }

    #[test]
    fn multibyte_spaces_are_pythons() {
        let mut buf = [0u8; 4];
        for c in (0x80..=0x10FFFF).filter_map(char::from_u32) {
            let encoded = c.encode_utf8(&mut buf).as_bytes();
            let expected = if is_py_space(c) { c.len_utf8() } else { 0 };
            assert_eq!(multibyte_space_len(encoded), expected, "U+{:04X}", c as u32);
        }
        assert_eq!(multibyte_space_len(&[0xE2, 0x80]), 0);
    }

    #[test]
    fn splits_like_the_book() {
        assert_eq!(
            words("Hello, world. Is this-- a test?"),
            vec!["Hello", ",", "world", ".", "Is", "this", "--", "a", "test", "?"]
        );
        assert_eq!(words("a---b"), vec!["a", "--", "-b"]);
        assert_eq!(words("a-b -"), vec!["a-b", "-"]);
        assert_eq!(words("  \t\n "), Vec::<&str>::new());
        assert_eq!(words(""), Vec::<&str>::new());
        assert_eq!(words("x\u{a0}y\u{3000}z\x1cw"), vec!["x", "y", "z", "w"]);
        assert_eq!(words("é_ü\u{2029}日本"), vec!["é", "_", "ü", "日本"]);
        assert_eq!(words("\"'()"), vec!["\"", "'", "(", ")"]);
    }

    fn book() -> Result<SimpleTokenizer> {
        let specials = vec!["<|endoftext|>".to_string(), "<|unk|>".to_string()];
        SimpleTokenizer::from_text(
            "I HAD always thought Jack Gisburn rather a cheap genius--though a good fellow \
             enough--so it was no great surprise to me to hear that, in the height of his glory.",
            &specials,
            Some("<|unk|>"),
        )
    }

    #[test]
    fn vocabulary_is_sorted_then_specials() -> Result<()> {
        let tok = book()?;
        let vocab = tok.vocab();
        assert_eq!(vocab.first().map(|p| p.0), Some(","));
        assert_eq!(vocab.get(1).map(|p| p.0), Some("--"));
        let n = vocab.len();
        assert_eq!(vocab[n - 2], ("<|endoftext|>", n as u32 - 2));
        assert_eq!(vocab[n - 1], ("<|unk|>", n as u32 - 1));
        assert_eq!(tok.len(), n);
        Ok(())
    }

    #[test]
    fn encodes_and_decodes() -> Result<()> {
        let tok = book()?;
        let ids = tok
            .encode("Jack, a good fellow--hello.")
            .unwrap_or_default();
        let unk = tok.id("<|unk|>");
        assert_eq!(ids.len(), 8);
        assert_eq!(ids.get(6).copied(), unk);
        assert_eq!(tok.decode(&ids)?, "Jack, a good fellow -- <|unk|>.");
        assert_eq!(tok.decode(&[])?, "");
        assert_eq!(tok.decode(&[999]), Err(Error::InvalidToken(999)));
        Ok(())
    }

    #[test]
    fn without_unknown_token_names_the_word() -> Result<()> {
        let tok = SimpleTokenizer::new(vec![("a".into(), 0), ("b".into(), 1)], None)?;
        assert_eq!(tok.encode("a b a"), Ok(vec![0, 1, 0]));
        assert_eq!(tok.encode("a zz b"), Err(Error::UnknownWord("zz".into())));
        Ok(())
    }

    #[test]
    fn cleanup_with_whitespace_inside_tokens() -> Result<()> {
        let vocab = vec![
            ("a \t".to_string(), 0),
            (".".to_string(), 1),
            (" (b".to_string(), 2),
            ("_".to_string(), 3),
            (String::new(), 4),
        ];
        let tok = SimpleTokenizer::new(vocab, None)?;
        // "a \t . (b _  .": every whitespace run before one of , . : ; ? ! " ( ) ' goes.
        assert_eq!(tok.decode(&[0, 1, 2, 3, 4, 1])?, "a.(b _.");
        assert_eq!(tok.decode(&[4, 1])?, ".");
        Ok(())
    }

    #[test]
    fn bad_vocabularies() {
        let dup = SimpleTokenizer::new(vec![("a".into(), 0), ("b".into(), 0)], None);
        assert_eq!(
            dup.err().map(|e| e.to_string()),
            Some("vocab maps both 'a' and 'b' to id 0; each id must belong to one token".into())
        );
        let msg = |r: Result<SimpleTokenizer>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            msg(SimpleTokenizer::new(vec![("a".into(), -1)], None)),
            "vocab['a'] = -1: token ids must be integers in 0..=67108863"
        );
        assert_eq!(
            msg(SimpleTokenizer::new(vec![("a".into(), 0)], Some("<|unk|>"))),
            "unk_token '<|unk|>' is not in the vocabulary; add it to the vocabulary (or to \
             special_tokens), or pass unk_token=None to raise KeyError on unknown words"
        );
        assert_eq!(
            msg(SimpleTokenizer::from_text(" \n", &[], None)),
            "text is empty or only whitespace (2 characters); SimpleTokenizer.from_text needs \
             text with at least one word to build a vocabulary"
        );
        assert_eq!(
            msg(SimpleTokenizer::from_text(
                "a",
                &["x".into(), "x".into()],
                None
            )),
            "special_tokens lists 'x' twice; each special token must appear once"
        );
    }

    #[test]
    fn duplicate_tokens_are_named() {
        let twice = SimpleTokenizer::new(vec![("a".into(), 0), ("a".into(), 1)], None);
        assert_eq!(
            twice.err().map(|e| e.to_string()),
            Some("vocab lists the token 'a' twice; each token must appear once".into())
        );
    }

    #[test]
    fn special_token_in_text_is_not_duplicated() -> Result<()> {
        let specials = vec!["<|endoftext|>".to_string()];
        let tok = SimpleTokenizer::from_text("b <|endoftext|> a", &specials, None)?;
        assert_eq!(tok.vocab(), vec![("a", 0), ("b", 1), ("<|endoftext|>", 2)]);
        Ok(())
    }
}
