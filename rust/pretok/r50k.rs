//! The GPT-2 / r50k / p50k pattern, by hand:
//!
//! ```text
//! '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s
//! ```
//!
//! At a piece start `i`, the first alternative that matches wins:
//! - 1: `'` followed by `s`, `d`, `m`, `t`, `ll`, `ve` or `re` (case-sensitive);
//! - 2 to 4: an optional U+0020 and then a maximal run of one class (L, N or other): the space
//!   is taken only when the next char is of that class, and a non-space char starts the run of
//!   its own class, so a `'` that is not a contraction starts a run of "other" chars;
//! - 5 to 7, at whitespace: the maximal whitespace run if it reaches the end of the text; else
//!   the run less its last char if that leaves at least one char (`\s+(?!\S)` backs off one
//!   char, so that the last space can start the next piece); else the one whitespace char.

use super::scan::{contraction_end, run, run_letters, whitespace_end};
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
            if b0 == b' ' {
                if let Some((c1, l1)) = class_at(bytes, i + 1) {
                    match c1 {
                        L => return run_letters(bytes, i + 1 + l1),
                        W => {}
                        _ => return run(bytes, i + 1 + l1, c1),
                    }
                }
            }
            whitespace_end::<Coarse, false, true>(bytes, i, 1)
        }
        N => run(bytes, i + 1, N),
        O => {
            if b0 == b'\'' {
                if let Some(end) = contraction_end::<false>(bytes, i + 1) {
                    return end;
                }
            }
            run(bytes, i + 1, O)
        }
        _ => {
            let (c0, l0) = class_non_ascii(bytes, i, b0);
            match c0 {
                L => run_letters(bytes, i + l0),
                W => whitespace_end::<Coarse, false, true>(bytes, i, l0),
                _ => run(bytes, i + l0, c0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn examples() {
        let cases: &[(&str, &[&str])] = &[
            ("Hello world", &["Hello", " world"]),
            ("I'm   here", &["I", "'m", "  ", " here"]),
            ("a  \tb", &["a", "  ", "\t", "b"]),
            ("x  ", &["x", "  "]),
            (" 's", &[" '", "s"]),
            ("''s", &["''", "s"]),
            ("'ll'LL", &["'ll", "'", "LL"]),
            ("12 345!!", &["12", " 345", "!!"]),
            ("\n\n  def", &["\n\n ", " def"]),
            ("ſ'ſ", &["ſ", "'", "ſ"]),
        ];
        for (text, want) in cases {
            let mut got = Vec::new();
            super::super::split_r50k(text, |p| got.push(p));
            assert_eq!(got, *want, "{text:?}");
        }
    }
}
