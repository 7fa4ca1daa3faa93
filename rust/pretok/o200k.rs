//! The o200k pattern, by hand:
//!
//! ```text
//! [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//! |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//! |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//!
//! Call `UP` the class `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]` and `LOW` the class
//! `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`: Lm, Lo and the marks are in both, and the marks (not `\p{L}`)
//! are also "other" (`[^\s\p{L}\p{N}]`) and may be the optional prefix. Nothing is possessive
//! here, so the backtracking is worked out once, at a piece start `i`:
//!
//! - **Words** (alternatives 1 and 2). At a letter or a mark the prefix is not taken (a mark
//!   taken as prefix and not taken give the same end). At a char that is neither `\r`, `\n`, a
//!   letter nor a digit, followed by a letter or a mark, the prefix is taken. From the word's
//!   first char `p`: let `q` end the maximal run of `UP` chars. If the char at `q` is `\p{Ll}`,
//!   `UP*` keeps the whole run and `LOW+` runs on to the end of the `LOW` run from `q`. Else
//!   `UP*` backs off to the last `LOW` char of the run and `LOW+` takes that one char (the `UP`
//!   chars after it are Lu/Lt, not `LOW`): the word ends after the run's last `LOW` char; if the
//!   run has none, alternative 1 fails and alternative 2 takes the whole run (`LOW*` is empty:
//!   the char at `q` is not `LOW`). Either way the contraction, case-insensitively under simple
//!   case folding (`s` also matches `S` and U+017F; the other letters only their ASCII upper
//!   case: the tests check every code point against the engine), follows if it is there.
//! - **Numbers**: one to three `\p{N}`.
//! - **Punctuation**: an optional U+0020, a maximal run of "other" chars (marks included), then a
//!   maximal run of `\r`, `\n` and `/`.
//! - **Whitespace**, the maximal run from `i`: if it holds a `\r` or `\n`, up to the last of
//!   them (`\s*[\r\n]+`, before `$` is ever looked at); else the whole run if it reaches the end
//!   of the text; else the run less its last char if that leaves one; else the one char.
//!
//! Every scan is a forward pass over one run; a word that backs off leaves only Lu/Lt chars
//! that the next piece takes in one more pass, so each byte is read at most three times.

use super::ucd_o200k::{STAGE1, STAGE2};

/// Class bit: in `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`.
pub(super) const UP: u8 = 1;
/// Class bit: in `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`.
pub(super) const LOW: u8 = 2;
/// Class bit: in `[^\s\p{L}\p{N}]`.
pub(super) const OTHER: u8 = 4;
/// Class bit: in `\p{N}`.
pub(super) const NUM: u8 = 8;

/// The seven classes (a class is its set of bits; 4 bits per code point in `ucd_o200k.rs`).
/// `\s` (Unicode White_Space): no bit.
pub(super) const C_SPACE: u8 = 0;
/// Lu, Lt.
pub(super) const C_UPPER: u8 = UP;
/// Ll.
pub(super) const C_LOWER: u8 = LOW;
/// Lm, Lo (most non-Latin scripts). (This and [`C_MARK`] are only named by the generator.)
#[cfg_attr(not(test), allow(dead_code))]
pub(super) const C_BOTH: u8 = UP | LOW;
/// Mn, Mc, Me.
#[cfg_attr(not(test), allow(dead_code))]
pub(super) const C_MARK: u8 = UP | LOW | OTHER;
/// Anything else: `[^\s\p{L}\p{N}\p{M}]`.
pub(super) const C_OTHER: u8 = OTHER;
/// `\p{N}`.
pub(super) const C_NUM: u8 = NUM;
/// In [`BYTE_CLASS`] only: a byte >= 0x80, part of a multi-byte UTF-8 sequence.
const NA: u8 = 16;

/// The class of each ASCII byte; [`NA`] for bytes >= 0x80.
static BYTE_CLASS: [u8; 256] = build_byte_class();

const fn build_byte_class() -> [u8; 256] {
    let mut t = [NA; 256];
    let mut b = 0u8;
    while b < 0x80 {
        t[b as usize] = match b {
            b'a'..=b'z' => C_LOWER,
            b'A'..=b'Z' => C_UPPER,
            b'0'..=b'9' => C_NUM,
            b'\t'..=b'\r' | b' ' => C_SPACE,
            _ => C_OTHER,
        };
        b += 1;
    }
    t
}

/// The class of a code point: `STAGE1[cp >> 8]` names a block of 256 code points, whose classes
/// `STAGE2` holds at 4 bits each. Code points past `STAGE1` are all [`C_OTHER`].
#[inline(always)]
pub(super) fn class_of(cp: u32) -> u8 {
    let Some(&block) = STAGE1.get((cp >> 8) as usize) else {
        return C_OTHER;
    };
    let byte = STAGE2
        .get(((block as usize) << 7) | ((cp as usize & 0xFF) >> 1))
        .copied()
        .unwrap_or(C_OTHER);
    (byte >> ((cp & 1) << 2)) & 0xF
}

/// Decodes the multi-byte UTF-8 sequence at `i` (lead byte `b0` >= 0x80) and returns its class
/// and length; on bytes that are not a `str`'s char boundary it still returns, meaninglessly.
#[inline(always)]
fn class_non_ascii(bytes: &[u8], i: usize, b0: u8) -> (u8, usize) {
    let b1 = u32::from(bytes.get(i + 1).copied().unwrap_or(0) & 0x3F);
    if b0 < 0xE0 {
        return (class_of((u32::from(b0 & 0x1F) << 6) | b1), 2);
    }
    let b2 = u32::from(bytes.get(i + 2).copied().unwrap_or(0) & 0x3F);
    if b0 < 0xF0 {
        return (class_of((u32::from(b0 & 0x0F) << 12) | (b1 << 6) | b2), 3);
    }
    let b3 = u32::from(bytes.get(i + 3).copied().unwrap_or(0) & 0x3F);
    (
        class_of((u32::from(b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3),
        4,
    )
}

/// The class and UTF-8 length of the char at `i`, or `None` at the end.
#[inline(always)]
pub(super) fn class_at(bytes: &[u8], i: usize) -> Option<(u8, usize)> {
    let b0 = *bytes.get(i)?;
    let c = BYTE_CLASS[b0 as usize];
    if c != NA {
        return Some((c, 1));
    }
    Some(class_non_ascii(bytes, i, b0))
}

/// The end of the piece that starts at `i` (a char boundary of the `str` whose bytes are
/// `bytes`, `i < bytes.len()`); always > `i`.
#[inline]
pub(super) fn piece_end(bytes: &[u8], i: usize) -> usize {
    let Some(&b0) = bytes.get(i) else {
        return bytes.len();
    };
    // ASCII words first, with or without a space before: most pieces of prose and code.
    match b0 {
        b'a'..=b'z' => return contraction_end(bytes, lower_run(bytes, i + 1)),
        b'A'..=b'Z' => return word_end(bytes, i, C_UPPER, 1),
        b' ' => match bytes.get(i + 1) {
            Some(b'a'..=b'z') => return contraction_end(bytes, lower_run(bytes, i + 2)),
            Some(b'A'..=b'Z') => return word_end(bytes, i + 1, C_UPPER, 1),
            _ => {}
        },
        _ => {}
    }
    let (c0, l0) = match BYTE_CLASS[b0 as usize] {
        NA => class_non_ascii(bytes, i, b0),
        c => (c, 1),
    };
    if c0 & (UP | LOW) != 0 {
        // A letter or a mark.
        return word_end(bytes, i, c0, l0);
    }
    if c0 == C_NUM {
        return digits_end(bytes, i + l0);
    }
    // Whitespace or other: the optional prefix of a word, unless it is `\r` or `\n`.
    let next = class_at(bytes, i + l0);
    if b0 != b'\r' && b0 != b'\n' {
        if let Some((c1, l1)) = next {
            if c1 & (UP | LOW) != 0 {
                return word_end(bytes, i + l0, c1, l1);
            }
        }
    }
    if c0 == C_OTHER {
        return punctuation_end(bytes, i + l0);
    }
    if b0 == b' ' {
        if let Some((C_OTHER, l1)) = next {
            return punctuation_end(bytes, i + 1 + l1);
        }
    }
    whitespace_end(bytes, i, l0)
}

/// Alternatives 1 and 2 from the word's first char at `p` (class `c`, `len` bytes, in `UP` or
/// `LOW`), contraction included.
#[inline(always)]
fn word_end(bytes: &[u8], p: usize, mut c: u8, mut len: usize) -> usize {
    let mut j = p;
    // The end of the last `LOW` char of the `UP` run (0: none yet; it is always > `p`).
    let mut low_end = 0;
    while c & UP != 0 {
        j += len;
        if c & LOW != 0 {
            low_end = j;
        }
        match bytes.get(j) {
            Some(&b) if b < 0x80 => {
                c = BYTE_CLASS[b as usize];
                len = 1;
            }
            Some(&b) => (c, len) = class_non_ascii(bytes, j, b),
            None => {
                c = C_SPACE;
                break;
            }
        }
    }
    let end = if c == C_LOWER {
        lower_run(bytes, j + len)
    } else if low_end != 0 {
        low_end
    } else {
        j
    };
    contraction_end(bytes, end)
}

/// The end of the maximal run of `LOW` chars from `j`, 8 ASCII lower-case letters at a time.
#[inline(always)]
fn lower_run(bytes: &[u8], mut j: usize) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    loop {
        while let Some(chunk) = bytes.get(j..).and_then(|rest| rest.first_chunk::<8>()) {
            let x = u64::from_le_bytes(*chunk);
            // Per byte (7 bits, so no carries), the high bit of `ge` says ">= b'a'" and that of
            // `gt` "> b'z'".
            let v = x & !HIGH;
            let ge = v + 0x1f1f_1f1f_1f1f_1f1f;
            let gt = v + 0x0505_0505_0505_0505;
            let stop = !(ge & !gt & !x) & HIGH;
            if stop == 0 {
                j += 8;
                continue;
            }
            j += (stop.trailing_zeros() / 8) as usize;
            break;
        }
        // Byte by byte: the tail, and non-ASCII chars (which may be `LOW`).
        match bytes.get(j) {
            Some(b'a'..=b'z') => j += 1,
            Some(&b) if b >= 0x80 => {
                let (c, len) = class_non_ascii(bytes, j, b);
                if c & LOW == 0 {
                    return j;
                }
                j += len;
            }
            _ => return j,
        }
    }
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` at `j`.
#[inline(always)]
fn contraction_end(bytes: &[u8], j: usize) -> usize {
    if bytes.get(j) != Some(&b'\'') {
        return j;
    }
    let second = |c: u8| {
        bytes
            .get(j + 2)
            .is_some_and(|b| b.to_ascii_lowercase() == c)
    };
    match bytes.get(j + 1).map(u8::to_ascii_lowercase) {
        Some(b's' | b't' | b'm' | b'd') => j + 2,
        Some(b'l') if second(b'l') => j + 3,
        Some(b'r' | b'v') if second(b'e') => j + 3,
        // U+017F LATIN SMALL LETTER LONG S, which folds to `s`.
        Some(0xC5) if bytes.get(j + 2) == Some(&0xBF) => j + 3,
        _ => j,
    }
}

/// `\p{N}{1,3}`, the first digit ending at `j`.
#[inline(always)]
fn digits_end(bytes: &[u8], mut j: usize) -> usize {
    for _ in 0..2 {
        match class_at(bytes, j) {
            Some((C_NUM, len)) => j += len,
            _ => break,
        }
    }
    j
}

/// `[^\s\p{L}\p{N}]+[\r\n/]*` from `j`, just after its first char.
#[inline(always)]
fn punctuation_end(bytes: &[u8], mut j: usize) -> usize {
    while let Some(&b) = bytes.get(j) {
        let (c, len) = match BYTE_CLASS[b as usize] {
            NA => class_non_ascii(bytes, j, b),
            c => (c, 1),
        };
        if c & OTHER == 0 {
            break;
        }
        j += len;
    }
    while let Some(b'\r' | b'\n' | b'/') = bytes.get(j) {
        j += 1;
    }
    j
}

/// `\s*[\r\n]+|\s+(?!\S)|\s+` at `i`, whose whitespace char is `l0` bytes long.
#[inline(always)]
fn whitespace_end(bytes: &[u8], i: usize, l0: usize) -> usize {
    let mut last = i;
    let mut after_newline = match bytes.get(i) {
        Some(b'\r' | b'\n') => i + 1,
        _ => 0,
    };
    let mut j = i + l0;
    let at_end = loop {
        let Some(&b) = bytes.get(j) else {
            break true;
        };
        let (c, len) = match BYTE_CLASS[b as usize] {
            NA => class_non_ascii(bytes, j, b),
            c => (c, 1),
        };
        if c != C_SPACE {
            break false;
        }
        if b == b'\r' || b == b'\n' {
            after_newline = j + 1;
        }
        last = j;
        j += len;
    };
    if after_newline != 0 {
        // `\s*[\r\n]+`: up to the last newline of the run.
        after_newline
    } else if at_end {
        // `\s+(?!\S)` at the end of the text.
        j
    } else if last > i {
        // `\s+(?!\S)`: all but the last char of the run.
        last
    } else {
        // `\s+`: the one char.
        j
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        let cases: &[(&str, &[&str])] = &[
            ("Hello world", &["Hello", " world"]),
            ("HELLO world", &["HELLO", " world"]),
            ("helloWorld", &["hello", "World"]),
            ("I'M   here", &["I'M", "  ", " here"]),
            ("don't'S'ſ", &["don't", "'S'ſ"]),
            ("we'LL've", &["we'LL", "'ve"]),
            ("ABC中DEF x", &["ABC中", "DEF", " x"]),
            ("中文Hello", &["中文Hello"]),
            ("A\u{301}B", &["A\u{301}", "B"]),
            ("\u{301}'s", &["\u{301}'s"]),
            ("!!\u{301}x", &["!!\u{301}", "x"]),
            ("a  \tb", &["a", "  ", "\tb"]),
            ("x  ", &["x", "  "]),
            ("12345", &["123", "45"]),
            (" !!\n\n/x", &[" !!\n\n/", "x"]),
            ("\n  ", &["\n", "  "]),
            ("  \n \n  y", &["  \n \n", " ", " y"]),
            ("\r\n", &["\r\n"]),
            ("a\u{3000}中文", &["a", "\u{3000}中文"]),
        ];
        for (text, want) in cases {
            let mut got = Vec::new();
            super::super::Kind::O200k.split(text, |p| got.push(p));
            assert_eq!(got, *want, "{text:?}");
        }
    }
}
