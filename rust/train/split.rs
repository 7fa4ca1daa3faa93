//! Pre-tokenization for training: special tokens are cut out of the text first (they are document
//! separators, never training text), then each segment is split into pieces by the pattern, with
//! `crate::pretok`'s [`Splitter`] and [`SpecialMatcher`], as encoding splits.
//!
//! Long segments are also cut into units of about [`UNIT_BYTES`] for the counting threads, at
//! `crate::pretok::cut`'s safe cuts, and units into words for counting (see [`for_each_word`]);
//! both only under the three known patterns, where the proofs hold. A text under any other
//! pattern is one unit, split whole.

use crate::error::Result;
use crate::pretok::{cut, patterns, SpecialMatcher, Splitter};

/// Target size of one unit of counting work.
pub(crate) const UNIT_BYTES: usize = 1 << 18;

/// Special tokens out, then pieces: the training pre-tokenizer.
///
/// Each counting thread needs its own copy ([`PreTokenizer::for_thread`]): a regex splitter is
/// compiled once per thread (see the design notes of `crate::pretok::Splitter`; measured here on
/// 20 MB of Python source: one thread 0.80 s, two threads sharing the regex 0.98 s, two threads
/// with a regex each 0.43 s).
pub(crate) struct PreTokenizer {
    pattern: String,
    splitter: Splitter,
    specials: Option<SpecialMatcher>,
    /// Whether cutting at safe cuts keeps the pieces (known pattern) and the special tokens (none
    /// contains a newline or a space), so that text may be cut before special tokens are out.
    cuttable: bool,
    /// How to cut text into words that keep the pieces, for a known pattern.
    words: Option<Words>,
}

impl PreTokenizer {
    /// `pattern` is a regex or a short name (`"gpt2"`, `"r50k"`, `"cl100k"`, `"o200k"`).
    pub(crate) fn new(pattern: &str, special_tokens: &[String]) -> Result<Self> {
        let pattern = patterns::resolve(pattern).to_string();
        let splitter = Splitter::new(&pattern)?;
        let specials = SpecialMatcher::new(special_tokens)?;
        let words = if pattern == patterns::R50K {
            Some(Words::R50k)
        } else if pattern == patterns::CL100K || pattern == patterns::O200K {
            Some(Words::NewlineFirst)
        } else {
            None
        };
        let cuttable = cut::keeps_pieces(&pattern) && cut::keeps_specials(special_tokens);
        Ok(PreTokenizer {
            pattern,
            splitter,
            specials,
            cuttable,
            words,
        })
    }

    /// A copy for another thread, with its own compiled regex (see [`PreTokenizer`]).
    pub(crate) fn for_thread(&self) -> Result<PreTokenizer> {
        Ok(PreTokenizer {
            pattern: self.pattern.clone(),
            splitter: self.splitter.for_thread()?,
            specials: self.specials.clone(),
            cuttable: self.cuttable,
            words: self.words,
        })
    }

    pub(crate) fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether a text may be cut at safe cuts (`crate::pretok::cut`) without changing its pieces
    /// or its special tokens.
    pub(crate) fn cuttable(&self) -> bool {
        self.cuttable
    }

    /// How counting should cut text into words ([`for_each_word`]): for a known pattern (where
    /// words keep the pieces) split by the regex (where splitting each distinct word once saves
    /// most of the time); `None` to split all text (a hand-written splitter is faster than
    /// counting words).
    pub(crate) fn words(&self) -> Option<Words> {
        match self.splitter.kind() {
            None => self.words,
            Some(_) => None,
        }
    }

    /// Calls `f` on each segment of `text` between special tokens (empty segments skipped).
    pub(crate) fn for_each_segment<'a>(&self, text: &'a str, mut f: impl FnMut(&'a str)) {
        match &self.specials {
            Some(specials) => specials.for_each_part(text, |part, special| {
                if special.is_none() {
                    f(part);
                }
            }),
            None if !text.is_empty() => f(text),
            None => {}
        }
    }

    /// Cuts `text` into units of about [`UNIT_BYTES`] for the counting threads: segments between
    /// special tokens, and long segments further at safe cuts when that keeps the pieces.
    pub(crate) fn units<'a>(&self, text: &'a str, out: &mut Vec<&'a str>) {
        self.for_each_segment(text, |segment| {
            if !self.cuttable {
                out.push(segment);
                return;
            }
            let mut rest = segment;
            while rest.len() > 2 * UNIT_BYTES {
                match cut::next_safe_cut(rest.as_bytes(), UNIT_BYTES) {
                    Some(at) => match (rest.get(..at), rest.get(at..)) {
                        (Some(unit), Some(tail)) => {
                            out.push(unit);
                            rest = tail;
                        }
                        _ => break,
                    },
                    None => break,
                }
            }
            out.push(rest);
        });
    }

    /// Calls `f` on each piece of `segment` (a text with no special tokens), in order.
    pub(crate) fn for_each_piece<'a>(
        &self,
        segment: &'a str,
        f: &mut dyn FnMut(&'a str),
    ) -> Result<()> {
        self.splitter.for_each_piece(segment, |piece| {
            f(piece);
            Ok(())
        })
    }

    /// The pieces of `text`, special tokens included as pieces of their own, in order (the
    /// teaching view's split; `encode(text, allowed_special="all")` splits the same way).
    pub(crate) fn pieces<'a>(&self, text: &'a str) -> Result<Vec<(&'a str, bool)>> {
        let mut out = Vec::new();
        let Some(specials) = &self.specials else {
            self.for_each_piece(text, &mut |piece| out.push((piece, false)))?;
            return Ok(out);
        };
        let mut failed = Ok(());
        specials.for_each_part(text, |part, special| {
            if failed.is_err() {
                return;
            }
            if special.is_some() {
                out.push((part, true));
            } else {
                failed = self.for_each_piece(part, &mut |piece| out.push((piece, false)));
            }
        });
        failed.map(|()| out)
    }
}

/// Which cuts of a text into words keep the pieces of a pattern (see [`for_each_word`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Words {
    /// r50k: at the start of a whitespace run that follows a non-space, and before the last char
    /// of a whitespace run that precedes a non-space.
    R50k,
    /// cl100k and o200k: before a lone U+0020 between non-spaces, and after the last `\r` or
    /// `\n` of a whitespace run that precedes a non-space (unless that is `/` right after it).
    NewlineFirst,
}

/// Calls `f` on each word of `text`, cut by `rule`. The words tile the text, and under the
/// rule's patterns the pieces of the text are the pieces of its words, in order, so counting
/// distinct words and splitting each once gives the same piece counts. Whitespace is Unicode
/// `White_Space`, the regexes' `\s`.
///
/// Why the cuts keep the pieces. No alternative matches across a whitespace run from the
/// non-space before it (letter, number and punctuation runs stop at whitespace), except that
/// cl100k's and o200k's punctuation takes the newlines right after it; the patterns have no
/// look-behind, so a piece that starts at a cut is found the same without the text before it.
/// What remains is the end of a word, where the regex sees the end of text instead of more
/// whitespace. r50k: a word ending in a non-space ends a letter, number or punctuation run there
/// either way; a word ending in whitespace (a run less its last char) is one piece in the whole
/// text (`\s+(?!\S)`, which stops one short of the non-space) and alone (`\s++$`). cl100k and
/// o200k: a lone space before a non-space starts a piece (with the run after it, or alone); a run
/// up to its last newline is one piece in the whole text (`\s*[\r\n]`, `\s*[\r\n]+`) and alone
/// (`\s++$`, or the same alternative), and a punctuation piece that takes newlines takes them
/// all, up to a non-newline (o200k's also takes a `/` after them: no cut there). `tests::words_keep_pieces` checks it on text built to hit every
/// alternative.
pub(crate) fn for_each_word<'a>(text: &'a str, rule: Words, mut f: impl FnMut(&'a str)) {
    let mut start = 0;
    let mut cut = |at: usize, f: &mut dyn FnMut(&'a str)| {
        if at > start {
            if let Some(word) = text.get(start..at) {
                f(word);
            }
            start = at;
        }
    };
    // The current whitespace run: its start, and the start of its last char and last newline.
    let mut run: Option<(usize, usize, Option<usize>)> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            let newline = matches!(c, '\n' | '\r').then_some(i + 1);
            run = Some(match run {
                None => (i, i, newline),
                Some((first, _, last_newline)) => (first, i, newline.or(last_newline)),
            });
            continue;
        }
        let Some((first, last, last_newline)) = run.take() else {
            continue;
        };
        match rule {
            Words::R50k => {
                cut(first, &mut f);
                cut(last, &mut f);
            }
            Words::NewlineFirst => {
                if first == last && text.as_bytes().get(first) == Some(&b' ') {
                    cut(first, &mut f);
                } else if let Some(after) = last_newline.filter(|&a| a < i || c != '/') {
                    // (o200k's punctuation takes `[\r\n/]*`: never cut between a newline and `/`.)
                    cut(after, &mut f);
                }
            }
        }
    }
    cut(text.len(), &mut f);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pieces(pretok: &PreTokenizer, text: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        pretok.for_each_piece(text, &mut |p| out.push(p.to_string()))?;
        Ok(out)
    }

    fn stress_text() -> String {
        let lines = [
            "def f(x):",
            "    return x  ",
            "",
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
            "d",
            "end:",
            "",
            "",
            "    indented",
            ")",
            "(",
        ];
        let mut text = String::new();
        for i in 0..400 {
            let line = lines.get(i * 7 % lines.len()).copied().unwrap_or("");
            text.push_str(line);
            text.push_str(if i % 11 == 0 { "\n\n" } else { "\n" });
        }
        text
    }

    #[test]
    fn words_keep_pieces() -> Result<()> {
        let mut text = stress_text();
        text.push_str(" a\u{a0}b c\u{2003}d \u{85}e é ü\u{3000}x\u{b}y \u{b} z 1 2 ' s 'll");
        text.push_str(" \u{1f600} \u{301} x \u{301}y\t z\u{c} w \u{1c} v");
        for name in ["r50k", "cl100k", "o200k"] {
            let pretok = PreTokenizer::new(name, &[])?;
            let whole = pieces(&pretok, &text)?;
            let rule = pretok.words.unwrap_or(Words::R50k);
            let mut words = Vec::new();
            for_each_word(&text, rule, |w| words.push(w));
            assert_eq!(words.concat(), text);
            let mut from_words = Vec::new();
            for word in &words {
                from_words.extend(pieces(&pretok, word)?);
            }
            assert_eq!(from_words, whole, "pattern {name}");
            assert_eq!(words.len().min(300), 300);
        }
        Ok(())
    }

    /// Pieces of `text` whole and of its words, for each pattern (safe cuts: `pretok::cut`).
    fn words_agree(text: &str) -> std::result::Result<(), String> {
        for name in ["r50k", "cl100k", "o200k"] {
            let pretok = PreTokenizer::new(name, &[]).map_err(|e| e.to_string())?;
            let whole = pieces(&pretok, text).map_err(|e| e.to_string())?;
            let mut from_words = Vec::new();
            let rule = pretok.words.unwrap_or(Words::R50k);
            let mut failed = None;
            for_each_word(text, rule, |word| match pieces(&pretok, word) {
                Ok(p) => from_words.extend(p),
                Err(e) => failed = Some(e.to_string()),
            });
            if let Some(e) = failed {
                return Err(e);
            }
            if from_words != whole {
                return Err(format!("{name}: words {from_words:?} != whole {whole:?}"));
            }
        }
        Ok(())
    }

    fn adversarial() -> impl Strategy<Value = String> {
        const PARTS: [&str; 27] = [
            " ", "  ", "\n", "\r", "\t", "\u{b}", "\u{c}", "\u{85}", "\u{a0}", "\u{3000}", "a",
            "Bc", "é", "\u{301}", "1", "234", "'s", "'", "S", "ll", "/", ".", ":", "(", "😀", "中",
            "_",
        ];
        proptest::collection::vec(proptest::sample::select(&PARTS[..]), 0..40)
            .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1500,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn words_keep_pieces_on_adversarial_text(text in adversarial()) {
            words_agree(&text).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn words_keep_pieces_on_any_text(text in any::<String>()) {
            words_agree(&text).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn units_tile_segments() -> Result<()> {
        let pretok = PreTokenizer::new("gpt2", &["<|endoftext|>".to_string()])?;
        let mut text = String::new();
        while text.len() < 5 * UNIT_BYTES {
            text.push_str(&stress_text());
            text.push_str("<|endoftext|>");
        }
        let mut units = Vec::new();
        pretok.units(&text, &mut units);
        assert_eq!(units.len().min(5), 5);
        assert_eq!(
            units.concat(),
            text.replace("<|endoftext|>", ""),
            "units are the text less its special tokens"
        );
        Ok(())
    }

    #[test]
    fn specials_are_pieces_of_their_own() -> Result<()> {
        let specials = ["<|a|>".to_string(), "<|a|><|b|>".to_string()];
        let pretok = PreTokenizer::new("gpt2", &specials)?;
        let got = pretok.pieces("x<|a|><|b|>y <|a|>")?;
        let want = vec![
            ("x", false),
            ("<|a|><|b|>", true),
            ("y", false),
            (" ", false),
            ("<|a|>", true),
        ];
        assert_eq!(got, want);
        Ok(())
    }

    #[test]
    fn bad_pattern_is_named() {
        let err = PreTokenizer::new("(unclosed", &[]).map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string().contains("\"(unclosed\"")),
            Err(true)
        );
    }
}
