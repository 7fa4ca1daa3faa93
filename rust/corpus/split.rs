//! Where a long document may be cut so that encoding the parts gives the tokens of the whole.
//!
//! BPE merges inside pre-tokenizer pieces only, so a cut between two pieces changes nothing. A
//! cut is safe when the pieces that touch it are the same whether or not the text goes on, for
//! the r50k (GPT-2), cl100k and o200k patterns:
//!
//! - after a `\n` that has an ASCII graphic character (`!`..`~`) on both sides (`x\ny`), the one
//!   after it not `/`: the newline is a one-character piece in the whole text (`\s+`, or
//!   `\s*[\r\n]` for cl100k, `\s*[\r\n]+` for o200k) and in the first part (`\s+(?!\S)`, or
//!   `\s++$`), or part of a `.\n` punctuation piece that stops there either way (o200k's takes
//!   `[\r\n/]*`, hence no `/`); the next piece starts fresh at `y`;
//! - before a space between two ASCII letters (`a b`): a letter run ends at the space and the
//!   space starts a ` b...` piece, in the whole text and in the parts.
//!
//! Longer whitespace runs are not safe (`"  \n"` at the end of a part is one piece, but two
//! before a letter), nor is `\r\n` (one cl100k piece). Both rules look at ASCII bytes only, which
//! never occur inside a multi-byte UTF-8 sequence, so the parts also decode (and replace invalid
//! bytes) exactly as the whole. The tests check every rule against the regexes themselves.

use crate::pretok::Kind;

#[inline]
fn graphic(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// Whether text may be cut just before byte `p` of `bytes` (a cut needs two bytes of context
/// before `p` and one or two after it, all inside `bytes`).
#[inline]
pub fn safe_at(bytes: &[u8], p: usize) -> bool {
    if p < 2 {
        return false;
    }
    let (Some(&b2), Some(&b1), Some(&b0)) = (bytes.get(p - 2), bytes.get(p - 1), bytes.get(p))
    else {
        return false;
    };
    if b1 == b'\n' && graphic(b2) && graphic(b0) && b0 != b'/' {
        return true;
    }
    b0 == b' '
        && b1.is_ascii_alphabetic()
        && bytes.get(p + 1).is_some_and(|b| b.is_ascii_alphabetic())
}

/// The last safe cut `p` with `from <= p` in `bytes` (needing its context inside `bytes`), for a
/// pattern that has such cuts; `None` when there is none or the pattern is unknown.
pub fn last_safe_cut(kind: Option<Kind>, bytes: &[u8], from: usize) -> Option<usize> {
    kind?;
    let low = from.max(2);
    // Newline cuts first (one memrchr per line), then word cuts in the same window.
    let window = bytes.get(low.saturating_sub(1)..)?;
    for nl in memchr::memrchr_iter(b'\n', window) {
        let p = low.saturating_sub(1) + nl + 1;
        if p >= low && safe_at(bytes, p) {
            return Some(p);
        }
    }
    for sp in memchr::memrchr_iter(b' ', window) {
        let p = low.saturating_sub(1) + sp;
        if p >= low && safe_at(bytes, p) {
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns;
    use proptest::prelude::*;

    fn regex_pieces(pattern: &str, text: &str) -> Vec<String> {
        let regex = fancy_regex::Regex::new(pattern).map_err(|e| e.to_string());
        let Ok(regex) = regex else {
            return vec!["<bad regex>".into()];
        };
        regex
            .find_iter(text)
            .map(|m| m.map(|m| m.as_str().to_string()).unwrap_or_default())
            .collect()
    }

    fn fast_pieces(kind: Kind, text: &str) -> Vec<String> {
        kind.pieces(text).map(str::to_string).collect()
    }

    /// For every safe cut of `text`, the pieces of the two parts are the pieces of the whole,
    /// under the regexes and the hand-written splitters.
    fn check_all_cuts(text: &str) -> std::result::Result<(), TestCaseError> {
        let bytes = text.as_bytes();
        for (kind, pattern) in [
            (Kind::R50k, patterns::R50K),
            (Kind::Cl100k, patterns::CL100K),
            (Kind::O200k, patterns::O200K),
        ] {
            let whole = regex_pieces(pattern, text);
            prop_assert_eq!(&fast_pieces(kind, text), &whole);
            for p in 0..=bytes.len() {
                if !safe_at(bytes, p) {
                    continue;
                }
                let (Some(a), Some(b)) = (text.get(..p), text.get(p..)) else {
                    return Err(TestCaseError::fail(format!("cut {p} inside a character")));
                };
                let mut parts = regex_pieces(pattern, a);
                parts.extend(regex_pieces(pattern, b));
                prop_assert_eq!(
                    &parts,
                    &whole,
                    "regex {:?} cut at {} of {:?}",
                    kind,
                    p,
                    text
                );
                let mut fast = fast_pieces(kind, a);
                fast.extend(fast_pieces(kind, b));
                prop_assert_eq!(&fast, &whole, "fast {:?} cut at {} of {:?}", kind, p, text);
            }
        }
        Ok(())
    }

    const ALPHABET: &[&str] = &[
        "a", "Z", "b", " ", " ", "\n", "\n", "\r", "\t", ".", "'", "'s", "'ll", "1", "23", "é",
        "ß", "中", "😀", "\u{a0}", "\u{2028}", "-", "\"", "/", "_", "$", "\u{300}",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn safe_cuts_keep_the_pieces(parts in proptest::collection::vec(0..ALPHABET.len(), 0..40)) {
            let text: String = parts.iter().filter_map(|&i| ALPHABET.get(i).copied()).collect();
            check_all_cuts(&text)?;
        }
    }

    #[test]
    fn safe_cuts_on_real_text() -> std::result::Result<(), TestCaseError> {
        let text = "def f(x):\n    return x  \n\nclass A:\n  pass\n\r\nHello world. It's 2024!\n\
                    x\ny\n.\n,\n'\ns don't  stop\n\ta b\n\u{a0}c d\n!\n/x\n/y";
        check_all_cuts(text)
    }

    #[test]
    fn finds_the_last_cut() {
        let text = b"one two\nthree  four";
        assert_eq!(last_safe_cut(Some(Kind::R50k), text, 0), Some(8));
        assert_eq!(last_safe_cut(Some(Kind::R50k), b"one two", 0), Some(3));
        assert_eq!(last_safe_cut(Some(Kind::R50k), b"one two", 4), None);
        assert_eq!(last_safe_cut(None, text, 0), None);
        assert_eq!(last_safe_cut(Some(Kind::Cl100k), b"  \n\n  ", 0), None);
    }
}
