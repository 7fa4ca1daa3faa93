//! The scanning steps that the hand-written scanners (`r50k.rs`, `cl100k.rs`, `o200k.rs`)
//! share, each written once: maximal runs of one class ([`run`], [`run_letters`]), 8 ASCII
//! letters at a time ([`ascii_letters`]), contractions ([`contraction_end`]), `\p{N}{1,3}`
//! ([`digits_end`]) and whitespace runs ([`space_run`]). Generic over the class table
//! ([`Classes`]) or a `const` flag and `#[inline(always)]`, so that each scanner gets its own
//! copy, as fast as the hand-copied code was (`tests::bench_against_fancy_regex`, before and after).

use super::tables::{class_at_in, class_non_ascii, decode_class, Classes, BYTE_CLASS, L, NA};

/// The end of the maximal run of chars of class `k` that starts at `i`.
#[inline(always)]
pub(super) fn run(bytes: &[u8], mut i: usize, k: u8) -> usize {
    while let Some(&b) = bytes.get(i) {
        let c = BYTE_CLASS[b as usize];
        if c == k {
            i += 1;
        } else if c == NA {
            let (c, len) = class_non_ascii(bytes, i, b);
            if c != k {
                return i;
            }
            i += len;
        } else {
            return i;
        }
    }
    i
}

/// [`run`] for letters: the same result, 8 ASCII bytes at a time ([`ascii_letters`]), so that a
/// word of up to 7 letters costs one well-predicted step instead of a branch per letter.
#[inline(always)]
pub(super) fn run_letters(bytes: &[u8], i: usize) -> usize {
    let j = ascii_letters::<true>(bytes, i);
    match bytes.get(j) {
        // An ASCII non-letter ends the run; a non-ASCII char may still be a letter, and fewer
        // than 8 bytes are left byte by byte.
        Some(&b) if b < 0x80 && j + 8 <= bytes.len() => j,
        _ => run(bytes, j, L),
    }
}

/// From `j`, skips 8 ASCII letters at a time (SWAR) while 8 bytes are left and all 8 are
/// letters: lower case only, or either case with `FOLD`. Returns the first byte that is not
/// (ASCII, or not a letter), or where fewer than 8 bytes are left.
#[inline(always)]
pub(super) fn ascii_letters<const FOLD: bool>(bytes: &[u8], mut j: usize) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(j..).and_then(|rest| rest.first_chunk::<8>()) {
        let x = u64::from_le_bytes(*chunk);
        // With `FOLD`, fold ASCII upper case onto lower case; then, per byte (7 bits, so no
        // carries), the high bit of `ge` says ">= b'a'" and that of `gt` "> b'z'".
        let v = if FOLD {
            (x | 0x2020_2020_2020_2020) & !HIGH
        } else {
            x & !HIGH
        };
        let ge = v + 0x1f1f_1f1f_1f1f_1f1f;
        let gt = v + 0x0505_0505_0505_0505;
        let stop = !(ge & !gt & !x) & HIGH;
        if stop == 0 {
            j += 8;
            continue;
        }
        return j + (stop.trailing_zeros() / 8) as usize;
    }
    j
}

/// `'(?:[sdmt]|ll|ve|re)` at `j`, just after the `'`: the end of the contraction, if any;
/// with `FOLD`, `(?i:...)` under Unicode simple case folding: `s` also matches `S` and U+017F
/// LATIN SMALL LETTER LONG S, the other letters only their ASCII upper case.
#[inline(always)]
pub(super) fn contraction_end<const FOLD: bool>(bytes: &[u8], j: usize) -> Option<usize> {
    let fold = |b: u8| if FOLD { b.to_ascii_lowercase() } else { b };
    let second = |c: u8| bytes.get(j + 1).is_some_and(|&b| fold(b) == c);
    match fold(*bytes.get(j)?) {
        b's' | b'd' | b'm' | b't' => Some(j + 1),
        b'l' if second(b'l') => Some(j + 2),
        b'v' | b'r' if second(b'e') => Some(j + 2),
        // U+017F, which folds to `s`.
        0xC5 if FOLD && bytes.get(j + 1) == Some(&0xBF) => Some(j + 2),
        _ => None,
    }
}

/// `\p{N}{1,3}` in table `T`, the first digit ending at `j`.
#[inline(always)]
pub(super) fn digits_end<T: Classes>(bytes: &[u8], mut j: usize) -> usize {
    for _ in 0..2 {
        match class_at_in::<T>(bytes, j) {
            Some((c, len)) if c == T::NUM => j += len,
            _ => break,
        }
    }
    j
}

/// The whitespace alternatives at `i`, whose whitespace char (class `T::SPACE`) is `l0` bytes
/// long: `\s++$` or `\s+(?!\S)` at the end of the text (the maximal run), with `NEWLINES`
/// `\s*[\r\n]` (up to the run's last newline; before the end of the text is looked at unless
/// `END_FIRST`), else `\s+(?!\S)` (all but the last char of the run, if that leaves one), else
/// `\s` (the one char). r50k: no newlines; cl100k: `\s++$` first; o200k: newlines first.
#[inline(always)]
pub(super) fn whitespace_end<T: Classes, const NEWLINES: bool, const END_FIRST: bool>(
    bytes: &[u8],
    i: usize,
    l0: usize,
) -> usize {
    let mut last = i;
    let mut after_newline = match bytes.get(i) {
        Some(b'\r' | b'\n') if NEWLINES => i + 1,
        _ => 0,
    };
    let mut j = i + l0;
    let at_end = loop {
        let Some(&b) = bytes.get(j) else {
            break true;
        };
        let (c, len) = match T::byte_class()[b as usize] {
            c if c == T::NA => decode_class::<T>(bytes, j, b),
            c => (c, 1),
        };
        if c != T::SPACE {
            break false;
        }
        if NEWLINES && (b == b'\r' || b == b'\n') {
            after_newline = j + 1;
        }
        last = j;
        j += len;
    };
    if END_FIRST && at_end {
        j
    } else if after_newline != 0 {
        after_newline
    } else if at_end || last == i {
        j
    } else {
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretok::tables::{class_at, N};

    #[test]
    fn runs() {
        let s = "héllo wörld";
        assert_eq!(run(s.as_bytes(), 0, L), "héllo".len());
        assert_eq!(run(s.as_bytes(), 0, N), 0);
        assert_eq!(run("٣１2x".as_bytes(), 0, N), "٣１2".len());
        assert_eq!(class_at(b"", 0), None);
        for text in [
            "",
            "a",
            "abcdefgh",
            "abcdefghi",
            "abcdefgh1",
            "abcdefgh é",
            "ab@[`{Zz",
            "AZaz",
            "abcdefgXYZéèñ中x",
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-",
            "x\u{80}",
            "xy\u{301}",
            "abcdefg\u{7f}",
        ] {
            for i in 0..text.len() {
                if text.is_char_boundary(i) {
                    assert_eq!(
                        run_letters(text.as_bytes(), i),
                        run(text.as_bytes(), i, L),
                        "{text:?} {i}"
                    );
                }
            }
        }
        for b in 0..0x80u8 {
            let text = [b'a', b'b', b'c', b, b'd', b'e', b'f', b'g', b'h', b'i'];
            assert_eq!(
                run_letters(&text, 0),
                if b.is_ascii_alphabetic() { 10 } else { 3 },
                "{b}"
            );
        }
    }
}
