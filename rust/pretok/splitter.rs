//! [`Splitter`]: the one way the crate cuts a segment (text between special tokens) into the
//! pieces that BPE merges independently. Encoding (`CoreBpe`) and training (`train`) both use it.
//!
//! # Design notes
//!
//! - **Two engines, one behaviour.** A pattern that is exactly one of the patterns with a
//!   hand-written scanner ([`super::fast_splitter_for`]) is split by that scanner (exactly
//!   equivalent, 7-17x faster, and it does not give up on long whitespace runs); any other
//!   pattern by fancy-regex `find_iter`, with a backtrack limit of 100 M steps. Both report the
//!   same errors ([`Error::InvalidPattern`] when the pattern does not compile,
//!   [`Error::PatternFailed`] when the regex gives up on an input).
//! - **One regex per thread.** A fancy-regex `Regex` and its clones share one program with one
//!   scratch pool that every match takes from and returns to; from two threads that lock's cache
//!   line bounces once per piece. Measured on 20 MB of Python source (training, gpt2 pattern via
//!   the regex): one thread 0.80 s, two threads sharing the regex 0.98 s (clones: the same), two
//!   threads with a regex each 0.43 s. So a thread that splits much text takes its own copy with
//!   [`Splitter::for_thread`] (which compiles the pattern again); `Clone` is deliberately not
//!   implemented, so that sharing by accident does not compile. Encoding splits short texts per
//!   call and shares one `Splitter` across the batch threads (the pool cost is per match there
//!   too, but encode calls are dominated by BPE merging, and the common patterns take the fast
//!   path, which has no shared state).

use super::{fast_splitter_for, Kind};
use crate::error::{Error, Result};

/// Backtracking steps fancy-regex may take for one match before it gives up.
const BACKTRACK_LIMIT: usize = 100_000_000;

/// Splits text into pre-tokenizer pieces: a hand-written scanner for a known pattern, a regex
/// for any other.
pub enum Splitter {
    /// A hand-written scanner.
    Fast(Kind),
    /// fancy-regex, with the (resolved) pattern it was compiled from, for error messages.
    Regex {
        regex: fancy_regex::Regex,
        pattern: String,
    },
}

impl Splitter {
    /// The splitter for `pattern`, a regex (resolve short names first with
    /// [`super::patterns::resolve`]).
    pub fn new(pattern: &str) -> Result<Self> {
        if let Some(kind) = fast_splitter_for(pattern) {
            return Ok(Splitter::Fast(kind));
        }
        let regex = fancy_regex::RegexBuilder::new(pattern)
            .backtrack_limit(BACKTRACK_LIMIT)
            .build()
            .map_err(|e| Error::InvalidPattern {
                pattern: pattern.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Splitter::Regex {
            regex,
            pattern: pattern.to_string(),
        })
    }

    /// A copy for another thread, with its own compiled regex (see the design notes).
    pub fn for_thread(&self) -> Result<Self> {
        match self {
            Splitter::Fast(kind) => Ok(Splitter::Fast(*kind)),
            Splitter::Regex { pattern, .. } => Splitter::new(pattern),
        }
    }

    /// The hand-written scanner, if this splitter uses one.
    pub fn kind(&self) -> Option<Kind> {
        match self {
            Splitter::Fast(kind) => Some(*kind),
            Splitter::Regex { .. } => None,
        }
    }

    /// Calls `f` on each piece of `segment`, in order; the pieces tile `segment`. Stops at the
    /// first error, from the regex or from `f`.
    #[inline]
    pub fn for_each_piece<'a>(
        &self,
        segment: &'a str,
        mut f: impl FnMut(&'a str) -> Result<()>,
    ) -> Result<()> {
        match self {
            Splitter::Fast(kind) => {
                for piece in kind.pieces(segment) {
                    f(piece)?;
                }
                Ok(())
            }
            Splitter::Regex { regex, pattern } => {
                for found in regex.find_iter(segment) {
                    let found = found.map_err(|e| Error::PatternFailed {
                        pattern: pattern.clone(),
                        reason: e.to_string(),
                    })?;
                    f(found.as_str())?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretok::patterns;

    fn pieces(splitter: &Splitter, text: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        splitter.for_each_piece(text, |p| {
            out.push(p.to_string());
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn fast_and_regex_agree() -> Result<()> {
        let text = "Hello world, it's 2024!\n\n  def f(x):\treturn x  ";
        for pattern in [patterns::R50K, patterns::CL100K] {
            let fast = Splitter::new(pattern)?;
            assert!(fast.kind().is_some());
            let regex = Splitter::Regex {
                regex: fancy_regex::Regex::new(pattern).map_err(|e| Error::InvalidPattern {
                    pattern: pattern.into(),
                    reason: e.to_string(),
                })?,
                pattern: pattern.into(),
            };
            assert_eq!(pieces(&fast, text)?, pieces(&regex, text)?);
            assert_eq!(pieces(&fast.for_thread()?, text)?, pieces(&regex, text)?);
        }
        let o200k = Splitter::new(patterns::O200K)?;
        assert_eq!(pieces(&o200k.for_thread()?, "a b")?, ["a", " b"]);
        Ok(())
    }

    #[test]
    fn errors_name_the_pattern() {
        let bad = Splitter::new("(unclosed").map(|_| ());
        assert!(
            matches!(bad, Err(Error::InvalidPattern { ref pattern, .. }) if pattern == "(unclosed")
        );
        let stop = Splitter::new(patterns::R50K)
            .and_then(|s| s.for_each_piece("a b", |_| Err(Error::Interrupted)));
        assert_eq!(stop, Err(Error::Interrupted));
    }
}
