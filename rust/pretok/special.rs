//! [`SpecialMatcher`]: finds special tokens (`<|endoftext|>`, ...) in text, for encoding (which
//! turns the allowed ones into their ids and rejects the disallowed ones) and for training (which
//! cuts them out as document separators).
//!
//! The rule, tiktoken's: the leftmost occurrence wins, and of those that start at the same byte,
//! the longest. Encoding asks for the first match among a subset of the tokens (the allowed or
//! the disallowed ones), which a leftmost-longest automaton cannot answer (a longer token outside
//! the subset would hide a shorter one inside it), so the automaton reports overlapping matches
//! and the search stops once no later match can start at or before the best one found.

use aho_corasick::{AhoCorasick, MatchKind};

use crate::error::{Error, Result};

/// An automaton over a list of special tokens; matches are reported by index into that list.
#[derive(Clone, Debug)]
pub struct SpecialMatcher {
    automaton: AhoCorasick,
    longest: usize,
}

impl SpecialMatcher {
    /// The matcher for `tokens` (non-empty strings; `None` when there are none).
    pub fn new<S: AsRef<str>>(tokens: &[S]) -> Result<Option<Self>> {
        if tokens.is_empty() {
            return Ok(None);
        }
        if let Some(empty) = tokens.iter().find(|t| t.as_ref().is_empty()) {
            return Err(Error::InvalidArgument(format!(
                "special token {:?} is empty; special tokens must be non-empty strings",
                empty.as_ref()
            )));
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(tokens.iter().map(AsRef::as_ref))
            .map_err(|e| Error::InvalidArgument(format!("special tokens: {e}")))?;
        let longest = tokens.iter().map(|t| t.as_ref().len()).max().unwrap_or(0);
        Ok(Some(SpecialMatcher { automaton, longest }))
    }

    /// The first special token in `text[from..]` whose index passes `wanted`, as
    /// `(start, end, index)` with offsets into `text`.
    pub fn find(
        &self,
        text: &str,
        from: usize,
        wanted: impl Fn(usize) -> bool,
    ) -> Option<(usize, usize, usize)> {
        let hay = text.get(from..)?;
        let mut best: Option<(usize, usize, usize)> = None;
        for m in self.automaton.find_overlapping_iter(hay) {
            if let Some((start, _, _)) = best {
                // Matches come in order of their end: none after this one can start at or
                // before `start`.
                if from + m.end() > start + self.longest {
                    break;
                }
            }
            let index = m.pattern().as_usize();
            if !wanted(index) {
                continue;
            }
            let candidate = (from + m.start(), from + m.end(), index);
            best = match best {
                Some(b)
                    if (b.0, std::cmp::Reverse(b.1))
                        <= (candidate.0, std::cmp::Reverse(candidate.1)) =>
                {
                    Some(b)
                }
                _ => Some(candidate),
            };
        }
        best
    }

    /// Calls `f` on the text between special tokens and on each special token, in order:
    /// `f(part, Some(index))` for a token, `f(part, None)` for text (empty parts skipped).
    pub fn for_each_part<'a>(&self, text: &'a str, mut f: impl FnMut(&'a str, Option<usize>)) {
        let mut start = 0;
        while let Some((s, e, index)) = self.find(text, start, |_| true) {
            if let Some(part) = text.get(start..s).filter(|p| !p.is_empty()) {
                f(part, None);
            }
            if let Some(token) = text.get(s..e) {
                f(token, Some(index));
            }
            start = e;
        }
        if let Some(part) = text.get(start..).filter(|p| !p.is_empty()) {
            f(part, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(m: &SpecialMatcher, text: &'a str) -> Vec<(&'a str, Option<usize>)> {
        let mut out = Vec::new();
        m.for_each_part(text, |p, i| out.push((p, i)));
        out
    }

    #[test]
    fn leftmost_then_longest() -> Result<()> {
        let tokens = ["<|a|>", "<|a|><|b|>", "|a|><|b|><|c|>"];
        let Some(m) = SpecialMatcher::new(&tokens)? else {
            return Err(Error::Interrupted);
        };
        let text = "x<|a|><|b|><|c|>y";
        assert_eq!(m.find(text, 0, |_| true), Some((1, 11, 1)));
        // Without the longest, the shorter one at the same start.
        assert_eq!(m.find(text, 0, |i| i != 1), Some((1, 6, 0)));
        // Without both, the one that starts later.
        assert_eq!(m.find(text, 0, |i| i == 2), Some((2, 16, 2)));
        assert_eq!(m.find(text, 2, |i| i != 2), None);
        assert_eq!(
            parts(&m, "x<|a|><|b|>y <|a|>"),
            [
                ("x", None),
                ("<|a|><|b|>", Some(1)),
                ("y ", None),
                ("<|a|>", Some(0))
            ]
        );
        Ok(())
    }

    #[test]
    fn no_tokens_and_empty_tokens() {
        assert!(matches!(SpecialMatcher::new::<&str>(&[]), Ok(None)));
        let empty = SpecialMatcher::new(&["<|a|>", ""]).map(|_| ());
        assert_eq!(
            empty,
            Err(Error::InvalidArgument(
                "special token \"\" is empty; special tokens must be non-empty strings".into()
            ))
        );
    }
}
