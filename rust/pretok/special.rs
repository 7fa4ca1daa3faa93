//! [`SpecialMatcher`]: finds special tokens (`<|endoftext|>`, ...) in text, for encoding (which
//! turns the allowed ones into their ids and rejects the disallowed ones) and for training (which
//! cuts them out as document separators).
//!
//! The rule, tiktoken's: the leftmost occurrence wins, and of those that start at the same byte,
//! the longest. Encoding asks for the first match among a subset of the tokens (the allowed or
//! the disallowed ones), which a leftmost-longest automaton cannot answer (a longer token outside
//! the subset would hide a shorter one inside it), so the automaton reports overlapping matches
//! and the search stops once no later match can start at or before the best one found.
//! Successive searches in one text share one pass of the automaton ([`Finder`]): every match is
//! read once, so encoding and training are linear in the text times the number of special
//! tokens that end at one place (two for a long repetitive name with a short one inside it,
//! which was quadratic).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use crate::error::{Error, Result};

/// Special tokens longer than this build a non-DFA automaton (see `SpecialMatcher::new`).
const LONG_TOKEN: usize = 256;

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
        let longest = tokens.iter().map(|t| t.as_ref().len()).max().unwrap_or(0);
        // The DFA that the crate picks for a few tokens costs time quadratic in a long
        // repetitive token (a 128 KB name took 64 s to build); the contiguous NFA is linear.
        let kind = (longest > LONG_TOKEN).then_some(AhoCorasickKind::ContiguousNFA);
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(kind)
            .build(tokens.iter().map(AsRef::as_ref))
            .map_err(|e| Error::InvalidArgument(format!("special tokens: {e}")))?;
        Ok(Some(SpecialMatcher { automaton, longest }))
    }

    /// The first special token in `text[from..]` whose index passes `wanted`, as
    /// `(start, end, index)` with offsets into `text`. For several searches in one text, use
    /// [`finder`](Self::finder) (each call of this scans again).
    pub fn find(
        &self,
        text: &str,
        from: usize,
        wanted: impl Fn(usize) -> bool,
    ) -> Option<(usize, usize, usize)> {
        self.finder(text.get(from..)?, wanted)
            .next_from(0)
            .map(|(s, e, i)| (from + s, from + e, i))
    }

    /// Successive searches in one text, from increasing offsets: each match of the automaton is
    /// read once in all (restarting the search after each token made a long special token with
    /// a short one inside it quadratic: the matches up to the long one's length were read again
    /// after every short one).
    pub fn finder<'m, 'h, F: Fn(usize) -> bool>(
        &'m self,
        text: &'h str,
        wanted: F,
    ) -> Finder<'m, 'h, F> {
        Finder {
            matches: self.automaton.find_overlapping_iter(text),
            longest: self.longest,
            pending: BinaryHeap::new(),
            last_end: 0,
            done: false,
            wanted,
        }
    }

    /// Calls `f` on the text between special tokens and on each special token, in order:
    /// `f(part, Some(index))` for a token, `f(part, None)` for text (empty parts skipped).
    pub fn for_each_part<'a>(&self, text: &'a str, mut f: impl FnMut(&'a str, Option<usize>)) {
        let mut finder = self.finder(text, |_| true);
        let mut start = 0;
        while let Some((s, e, index)) = finder.next_from(start) {
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

/// See [`SpecialMatcher::finder`].
pub struct Finder<'m, 'h, F> {
    /// Every match in the text, overlapping ones included, in order of their end.
    matches: aho_corasick::FindOverlappingIter<'m, 'h>,
    longest: usize,
    /// Wanted matches read but not yet passed, smallest `(start, longest)` first.
    pending: BinaryHeap<Reverse<(usize, Reverse<usize>, usize)>>,
    last_end: usize,
    done: bool,
    wanted: F,
}

impl<F: Fn(usize) -> bool> Finder<'_, '_, F> {
    /// The leftmost wanted special token that starts at or after `from` (the longest of those
    /// that start at the same byte), as `(start, end, index)`. `from` must not decrease from one
    /// call to the next.
    pub fn next_from(&mut self, from: usize) -> Option<(usize, usize, usize)> {
        loop {
            while self
                .pending
                .peek()
                .is_some_and(|Reverse((s, _, _))| *s < from)
            {
                self.pending.pop();
            }
            if let Some(&Reverse((s, Reverse(e), index))) = self.pending.peek() {
                // Matches come in order of their end: once one ends past `s + longest`, none
                // still to come can start at or before `s`.
                if self.done || self.last_end > s + self.longest {
                    return Some((s, e, index));
                }
            } else if self.done {
                return None;
            }
            match self.matches.next() {
                Some(m) => {
                    self.last_end = m.end();
                    let index = m.pattern().as_usize();
                    if m.start() >= from && (self.wanted)(index) {
                        self.pending
                            .push(Reverse((m.start(), Reverse(m.end()), index)));
                    }
                }
                None => self.done = true,
            }
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
    fn long_repetitive_token() -> Result<()> {
        let long = "<".repeat(1 << 17);
        let Some(m) = SpecialMatcher::new(&[long.as_str(), "<|x|>"])? else {
            return Err(Error::Interrupted);
        };
        let text = format!("a{long}b<|x|>");
        assert_eq!(m.find(&text, 0, |_| true), Some((1, 1 + long.len(), 0)));
        assert_eq!(
            m.find(&text, 0, |i| i == 1),
            Some((2 + long.len(), 7 + long.len(), 1))
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
