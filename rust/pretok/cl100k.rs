//! The cl100k pattern, by hand:
//!
//! ```text
//! '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s
//! ```
//!
//! At a piece start `i`, the first alternative that matches wins:
//! - 1: `'` followed by a contraction, case-insensitively under Unicode simple case folding: `s`
//!   also matches `S` and U+017F LATIN SMALL LETTER LONG S, the other letters only their ASCII
//!   upper case (checked against the engine for every code point in the tests);
//! - 2: a maximal run of letters, optionally preceded by one char that is neither `\r`, `\n`, a
//!   letter nor a digit (whitespace included): that char is taken only when a letter follows;
//! - 3: one to three `\p{N}`;
//! - 4: an optional U+0020, a maximal run of "other" chars, then a maximal run of `\r`/`\n`;
//! - 5 to 8, at whitespace: the maximal whitespace run if it reaches the end of the text; else,
//!   if the run holds a `\r` or `\n`, the run up to and including the last of them; else the
//!   run less its last char if that leaves at least one char; else the one whitespace char.

use super::scan::{contraction_end, digits_end, run, run_letters, whitespace_end};
use super::tables::{class_at, class_non_ascii, Coarse, BYTE_CLASS, L, N, O, W};

/// The end of the piece that starts at `i` (a char boundary of the `str` whose bytes are
/// `bytes`, `i < bytes.len()`); always > `i`.
#[inline]
pub(super) fn piece_end(bytes: &[u8], i: usize) -> usize {
    let Some(&b0) = bytes.get(i) else {
        return bytes.len();
    };
    match BYTE_CLASS[b0 as usize] {
        L => run_letters(bytes, i + 1),
        W => {
            if b0 != b'\r' && b0 != b'\n' {
                match class_at(bytes, i + 1) {
                    Some((L, l1)) => return run_letters(bytes, i + 1 + l1),
                    Some((O, l1)) if b0 == b' ' => {
                        return newlines_end(bytes, run(bytes, i + 1 + l1, O))
                    }
                    _ => {}
                }
            }
            whitespace_end::<Coarse, true, true>(bytes, i, 1)
        }
        N => digits_end::<Coarse>(bytes, i + 1),
        O => {
            if b0 == b'\'' {
                if let Some(end) = contraction_end::<true>(bytes, i + 1) {
                    return end;
                }
            }
            other_end(bytes, i, 1)
        }
        _ => match class_non_ascii(bytes, i, b0) {
            (L, l0) => run_letters(bytes, i + l0),
            (N, l0) => digits_end::<Coarse>(bytes, i + l0),
            (O, l0) => other_end(bytes, i, l0),
            (_, l0) => {
                // Non-ASCII whitespace: never `\r` or `\n`.
                if let Some((L, l1)) = class_at(bytes, i + l0) {
                    return run_letters(bytes, i + l0 + l1);
                }
                whitespace_end::<Coarse, true, true>(bytes, i, l0)
            }
        },
    }
}

/// A piece starting with an "other" char of `l0` bytes at `i`: alternative 2 if a letter
/// follows, else alternative 4 without its space.
#[inline(always)]
fn other_end(bytes: &[u8], i: usize, l0: usize) -> usize {
    match class_at(bytes, i + l0) {
        Some((L, l1)) => run_letters(bytes, i + l0 + l1),
        _ => newlines_end(bytes, run(bytes, i + l0, O)),
    }
}

/// `[\r\n]*+` at `j`.
#[inline(always)]
fn newlines_end(bytes: &[u8], mut j: usize) -> usize {
    while let Some(b'\r' | b'\n') = bytes.get(j) {
        j += 1;
    }
    j
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        let cases: &[(&str, &[&str])] = &[
            ("Hello world", &["Hello", " world"]),
            ("I'M   here", &["I", "'M", "  ", " here"]),
            (
                "'Sx'ſ'LL'lL'Ve'rE",
                &["'S", "x", "'ſ", "'LL", "'lL", "'Ve", "'rE"],
            ),
            ("a  \tb", &["a", "  ", "\tb"]),
            ("x  ", &["x", "  "]),
            ("12345", &["123", "45"]),
            (" !!\n\nx", &[" !!\n\n", "x"]),
            ("!x", &["!x"]),
            ("  \n \n  y", &["  \n \n", " ", " y"]),
            ("\r\n", &["\r\n"]),
            ("a\u{3000}中文", &["a", "\u{3000}中文"]),
        ];
        for (text, want) in cases {
            let mut got = Vec::new();
            super::super::split_cl100k(text, |p| got.push(p));
            assert_eq!(got, *want, "{text:?}");
        }
    }
}
