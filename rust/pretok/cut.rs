//! The one rule for where a long text may be cut so that the pieces of the parts are the pieces
//! of the whole (so encoding the parts gives the tokens of the whole, and counting the parts
//! gives the counts of the whole). Training cuts big files into blocks and blocks into units for
//! its threads; the corpus reader cuts long documents into jobs. Both use this rule.
//!
//! # The rule
//!
//! Under the r50k (GPT-2), cl100k and o200k patterns ([`keeps_pieces`]), a text may be cut just
//! before byte `p` ([`safe_at`]) when
//!
//! - **newline cut:** byte `p - 1` is a `\n` between two ASCII graphic chars (`!`..`~`), the one
//!   after it not `/` (`x\ny`, cut after the newline); or
//! - **word cut:** byte `p` is a space between two ASCII letters (`a b`, cut before the space).
//!
//! # Why it keeps the pieces
//!
//! The patterns have no look-behind, so a piece that starts at the cut is found the same without
//! the text before it; it remains to see that a piece of the whole ends at the cut and that the
//! pieces just before it are the same when the text stops there. An alternative that matches at
//! some start in the head also matches there in the whole (the same span) unless it uses `$` or
//! a look-ahead, and those (`\s++$`, `\s+(?!\S)`) only make whitespace pieces.
//!
//! - Newline cut. No alternative matches across a `\n` followed by a non-space (letter, number
//!   and punctuation runs stop at whitespace; o200k's punctuation takes trailing `[\r\n/]*`,
//!   hence no `/` after the newline). The `\n` after a non-space is a piece of its own in the
//!   whole (`\s`, or `\s*[\r\n]` / `\s*[\r\n]+`, as `\s+(?!\S)` backs off to nothing before a
//!   non-space) and in the head (`\s++$`, or the same alternative), or the tail of a punctuation
//!   piece that takes newlines, which stops at the non-newline after it in the whole and at the
//!   end in the head: the same piece.
//! - Word cut. The letter run before the space ends there in the whole (a contraction needs a
//!   `'`, no other alternative takes a letter and then a space) and at the end of the head. In the
//!   whole and in the tail the space starts the piece ` b...` (an optional space or "other" char,
//!   then letters), as `\s+(?!\S)` backs off to nothing before the letter.
//!
//! Longer whitespace runs are not safe (`"  \n"` ends a part as one piece, but is two before a
//! letter), nor is `\r\n` (one cl100k piece). The rule reads ASCII bytes only, which never occur
//! inside a multi-byte UTF-8 sequence, so a cut is a char boundary even in invalid UTF-8, and the
//! parts decode (and replace invalid bytes) exactly as the whole. The tests check every cut of
//! generated text against the regexes themselves and against the hand-written scanners.
//!
//! Special tokens: a cut never falls inside a special token that contains neither `\n` nor a
//! space, so the special tokens found in the parts are those of the whole; a caller that cuts
//! before taking special tokens out checks that ([`keeps_specials`]).

use super::patterns;

/// Whether the rule holds under `pattern` (a resolved pattern).
pub fn keeps_pieces(pattern: &str) -> bool {
    pattern == patterns::R50K || pattern == patterns::CL100K || pattern == patterns::O200K
}

/// Whether cutting text that still holds special tokens keeps them: no cut can fall inside one.
pub fn keeps_specials<S: AsRef<str>>(special_tokens: &[S]) -> bool {
    !special_tokens
        .iter()
        .any(|t| t.as_ref().contains(['\n', ' ']))
}

#[inline]
fn graphic(b: u8) -> bool {
    b.is_ascii_graphic()
}

/// Whether text may be cut just before byte `p` of `bytes`. The context a cut needs (two bytes
/// before `p` and one after for a newline cut, one before and two after for a word cut) must be
/// inside `bytes`: at the end of a buffer that is still filling, a cut is decided once the next
/// bytes are there.
#[inline]
pub fn safe_at(bytes: &[u8], p: usize) -> bool {
    let (Some(before), Some(&b0)) = (p.checked_sub(1), bytes.get(p)) else {
        return false;
    };
    let Some(&b1) = bytes.get(before) else {
        return false;
    };
    if b1 == b'\n' {
        return graphic(b0)
            && b0 != b'/'
            && before
                .checked_sub(1)
                .and_then(|i| bytes.get(i))
                .is_some_and(|&b2| graphic(b2));
    }
    b0 == b' '
        && b1.is_ascii_alphabetic()
        && bytes.get(p + 1).is_some_and(|b| b.is_ascii_alphabetic())
}

/// The last newline cut at or after `from` in `bytes`, else the last word cut there, else
/// `None`. (Newline cuts first: they make parts that end at a line end.)
pub fn last_safe_cut(bytes: &[u8], from: usize) -> Option<usize> {
    let low = from.max(1);
    let base = low - 1;
    let window = bytes.get(base..)?;
    for nl in memchr::memrchr_iter(b'\n', window) {
        let p = base + nl + 1;
        if p >= low && safe_at(bytes, p) {
            return Some(p);
        }
    }
    for sp in memchr::memrchr_iter(b' ', window) {
        let p = base + sp;
        if p >= low && safe_at(bytes, p) {
            return Some(p);
        }
    }
    None
}

/// The first safe cut at or after `from` in `bytes`, or `None`.
pub fn next_safe_cut(bytes: &[u8], from: usize) -> Option<usize> {
    let base = from.saturating_sub(1);
    let window = bytes.get(base..)?;
    for i in memchr::memchr2_iter(b'\n', b' ', window) {
        let at = base + i;
        let p = if bytes.get(at) == Some(&b'\n') {
            at + 1
        } else {
            at
        };
        if p >= from && safe_at(bytes, p) {
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretok::{fast_splitter_for, Kind};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    const PATTERNS: [&str; 3] = [patterns::R50K, patterns::CL100K, patterns::O200K];

    fn engine(i: usize) -> Result<&'static fancy_regex::Regex, String> {
        static ENGINES: OnceLock<Vec<Result<fancy_regex::Regex, String>>> = OnceLock::new();
        let engines = ENGINES.get_or_init(|| {
            PATTERNS
                .iter()
                .map(|p| fancy_regex::Regex::new(p).map_err(|e| e.to_string()))
                .collect()
        });
        match engines.get(i) {
            Some(Ok(regex)) => Ok(regex),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no such pattern".into()),
        }
    }

    fn regex_pieces(i: usize, text: &str) -> Result<Vec<&str>, String> {
        engine(i)?
            .find_iter(text)
            .map(|m| m.map(|m| m.as_str()).map_err(|e| e.to_string()))
            .collect()
    }

    fn fast_pieces(kind: Kind, text: &str) -> Vec<&str> {
        kind.pieces(text).collect()
    }

    /// Pieces of `text` cut at `cuts` (increasing byte offsets), part by part.
    fn pieces_of_parts<'a>(
        text: &'a str,
        cuts: &[usize],
        split: &dyn Fn(&'a str) -> Result<Vec<&'a str>, String>,
    ) -> Result<Vec<&'a str>, String> {
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain([text.len()].iter()) {
            let part = text
                .get(start..cut)
                .ok_or_else(|| format!("cut {cut} inside a character of {text:?}"))?;
            out.extend(split(part)?);
            start = cut;
        }
        Ok(out)
    }

    /// For each pattern, under the regex and the hand-written scanner (where there is one): the
    /// pieces of the whole are those of the parts at every single safe cut and at all at once.
    fn check_cuts(text: &str) -> Result<(), String> {
        let bytes = text.as_bytes();
        let cuts: Vec<usize> = (0..=bytes.len()).filter(|&p| safe_at(bytes, p)).collect();
        for (i, pattern) in PATTERNS.iter().enumerate() {
            let regex = |t| regex_pieces(i, t);
            let whole = regex(text)?;
            let fast = fast_splitter_for(pattern);
            if let Some(kind) = fast {
                if fast_pieces(kind, text) != whole {
                    return Err(format!("{kind:?} differs from the regex on {text:?}"));
                }
            }
            let mut tries: Vec<Vec<usize>> = cuts.iter().map(|&p| vec![p]).collect();
            tries.push(cuts.clone());
            for at in &tries {
                if pieces_of_parts(text, at, &regex)? != whole {
                    return Err(format!("pattern {i}: regex, cuts {at:?} of {text:?}"));
                }
                if let Some(kind) = fast {
                    let split = |t| Ok(fast_pieces(kind, t));
                    if pieces_of_parts(text, at, &split)? != whole {
                        return Err(format!("{kind:?}: cuts {at:?} of {text:?}"));
                    }
                }
            }
        }
        Ok(())
    }

    const PARTS: &[&str] = &[
        "a", "Z", "b", "Bc", "S", "ll", " ", " ", "  ", "\n", "\n", "\r", "\t", "\u{b}", "\u{c}",
        "\u{85}", "\u{a0}", "\u{2028}", "\u{3000}", ".", ":", "(", "-", "\"", "/", "_", "$", "'",
        "'s", "'ll", "1", "23", "234", "é", "ß", "\u{300}", "\u{301}", "中", "😀",
    ];

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 3000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn safe_cuts_keep_the_pieces(parts in proptest::collection::vec(0..PARTS.len(), 0..40)) {
            let text: String = parts.iter().filter_map(|&i| PARTS.get(i).copied()).collect();
            check_cuts(&text).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn safe_cuts_on_code_and_prose() -> Result<(), String> {
        check_cuts(
            "def f(x):\n    return x  \n\nclass A:\n  pass\n\r\nHello world. It's 2024!\n\
             x\ny\n.\n,\n'\ns don't  stop\n\ta b\n\u{a0}c d\n/path/to\na.\n/b\n!\n/x\n/y\n'll\nDON'T\n",
        )?;
        let lines = [
            "def f(x):",
            "    return x  ",
            "class A:  # comment",
            "x = 1;",
            "/path/to/file",
            "'s 've it's DON'T",
            "12345678 numbers 1,000.5",
            "  \t  ",
            "émoji 😀 ünïcödé Привет мир 你好",
            "a.",
            "/b",
            "c\r",
            "end:",
            "",
            ")",
        ];
        let text: String = (0..60)
            .map(|i| lines[i * 7 % lines.len()].to_string() + "\n")
            .collect();
        check_cuts(&text)
    }

    #[test]
    fn finds_the_cuts() {
        let text = b"one two\nthree  four";
        assert_eq!(last_safe_cut(text, 0), Some(8));
        assert_eq!(last_safe_cut(b"one two", 0), Some(3));
        assert_eq!(last_safe_cut(b"one two", 4), None);
        assert_eq!(last_safe_cut(b"  \n\n  ", 0), None);
        assert_eq!(last_safe_cut(b"a\nb c\nd e", 0), Some(6));
        assert_eq!(last_safe_cut(b"a\nb c\nd e", 7), Some(7));
        assert_eq!(last_safe_cut(b"a\nb c\nd e", 8), None);
        assert_eq!(last_safe_cut(b"a \n b", 0), None);
        assert_eq!(last_safe_cut(b"x.\n/y", 0), None);
        assert_eq!(next_safe_cut(text, 0), Some(3));
        assert_eq!(next_safe_cut(text, 4), Some(8));
        assert_eq!(next_safe_cut(text, 9), None);
        assert_eq!(next_safe_cut(b"a\nb", 2), Some(2));
        assert_eq!(next_safe_cut(b"a\nb", 3), None);
        // A cut needs its context inside the bytes given.
        assert!(!safe_at(b"a\n", 2));
        assert!(!safe_at(b"a ", 1));
        assert!(safe_at(b"a b", 1));
    }

    #[test]
    fn which_patterns_and_specials() {
        assert!(keeps_pieces(patterns::R50K) && keeps_pieces(patterns::O200K));
        assert!(!keeps_pieces(r"\S+|\s+"));
        assert!(keeps_specials(&["<|endoftext|>"]));
        assert!(!keeps_specials(&["<|end of text|>"]));
        assert!(!keeps_specials(&["a\nb"]));
    }
}
