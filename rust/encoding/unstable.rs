//! tiktoken's `encode_with_unstable` and `_encode_bytes`, with tiktoken 0.14's semantics: the
//! tokens of the text's last pre-tokenized piece (and of a whitespace run before it) may change
//! when more text follows, so they are held back ("unstable") and returned as the set of token
//! sequences that could continue the stable tokens.
//!
//! Both need the number of tokens the last piece produced, which the ordinary encode does not
//! keep; [`CoreBpe::encode_with_last_piece`] is the encode loop that counts it.

use std::collections::BTreeSet;

use super::{CoreBpe, SpecialSet};
use crate::bpe;
use crate::error::{Error, Result};
use crate::vocab::Rank;

/// The last char of `bytes` and its length in bytes, if `bytes` ends with a whole UTF-8 char.
fn last_char(bytes: &[u8]) -> Option<(char, usize)> {
    (1..=bytes.len().min(4)).find_map(|len| {
        let tail = bytes.get(bytes.len() - len..)?;
        let mut chars = std::str::from_utf8(tail).ok()?.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Some((c, len)),
            _ => None,
        }
    })
}

impl CoreBpe {
    /// Encodes `text`, turning the special tokens of `allowed` into their ids, and returns how
    /// many of the tokens the last pre-tokenized piece gave (0 when the text ends with a special
    /// token or is empty).
    fn encode_with_last_piece(
        &self,
        text: &str,
        allowed: &SpecialSet,
    ) -> Result<(Vec<Rank>, usize)> {
        let mut out = Vec::with_capacity(text.len() / 4 + 1);
        let mut memo = bpe::PieceMemo::default();
        let mut last = 0;
        let mut start = 0;
        loop {
            let next = self.find_special(text, start, allowed);
            let end = next.map_or(text.len(), |(s, _, _)| s);
            let segment = text.get(start..end).unwrap_or_default();
            self.splitter.for_each_piece(segment, |piece| {
                let before = out.len();
                self.encode_piece(piece.as_bytes(), &mut memo, &mut out)?;
                last = out.len() - before;
                Ok(())
            })?;
            match next {
                Some((_, e, index)) => {
                    out.extend(self.special_ids.get(index));
                    last = 0;
                    start = e;
                }
                None => return Ok((out, last)),
            }
        }
    }

    /// tiktoken's `_increase_last_piece_token_len`: when the last piece starts with a token of
    /// only spaces, tabs and newlines, the run of such tokens before it joins the last piece
    /// (a pattern like cl100k's `\s*[\r\n]+` can merge them with what follows).
    fn extend_last_piece(&self, tokens: &[Rank], mut last: usize) -> usize {
        let all_space = |index: usize| {
            tokens.get(index).is_some_and(|&token| {
                self.decoder.get(token).is_some_and(|bytes| {
                    self.ranks.get(bytes) == Some(&token)
                        && bytes.iter().all(|b| matches!(b, b' ' | b'\n' | b'\t'))
                })
            })
        };
        if last > 0 && last <= tokens.len() && all_space(tokens.len() - last) {
            while last < tokens.len() && all_space(tokens.len() - last - 1) {
                last += 1;
            }
        }
        last.min(tokens.len())
    }

    /// The mergeable token ids, sorted by their bytes (built on first use).
    fn sorted_tokens(&self) -> &[Rank] {
        self.sorted_tokens.get_or_init(|| {
            let mut tokens: Vec<(&[u8], Rank)> =
                self.ranks.iter().map(|(k, &v)| (k.as_slice(), v)).collect();
            tokens.sort_unstable();
            tokens.into_iter().map(|(_, id)| id).collect()
        })
    }

    fn token_bytes(&self, token: Rank) -> &[u8] {
        self.decoder.get(token).unwrap_or_default()
    }

    /// The mergeable tokens whose bytes start with `prefix`, in byte order.
    fn tokens_starting_with<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = Rank> + 'a {
        let sorted = self.sorted_tokens();
        let first = sorted.partition_point(|&id| self.token_bytes(id) < prefix);
        sorted
            .get(first..)
            .unwrap_or_default()
            .iter()
            .copied()
            .take_while(move |&id| self.token_bytes(id).starts_with(prefix))
    }

    /// tiktoken's `encode_with_unstable`: the stable tokens of `text` and every token sequence
    /// that may follow them as the text goes on (each decodes to bytes that start with the
    /// unstable bytes). Fails like [`encode`](Self::encode) on a special token in `disallowed`.
    pub fn encode_with_unstable(
        &self,
        text: &str,
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
    ) -> Result<(Vec<Rank>, BTreeSet<Vec<Rank>>)> {
        if let Some((_, _, index)) = self.find_special(text, 0, disallowed) {
            let name = self.special_names.get(index).cloned().unwrap_or_default();
            return Err(Error::DisallowedSpecial(name));
        }
        let (mut tokens, last) = self.encode_with_last_piece(text, allowed)?;
        let mut completions = BTreeSet::new();
        if last == 0 {
            return Ok((tokens, completions));
        }
        let split = tokens.len() - self.extend_last_piece(&tokens, last);
        let unstable = self.decode_bytes(tokens.get(split..).unwrap_or_default())?;
        tokens.truncate(split);
        if unstable.is_empty() {
            return Ok((tokens, completions));
        }

        // Single tokens that start with the unstable bytes.
        for id in self.tokens_starting_with(&unstable) {
            completions.insert(vec![id]);
        }
        // A token straddling the end of the text at every other position: the unstable bytes
        // before it, then any token that starts with the rest, encoded again.
        for i in 1..unstable.len() {
            let (prefix, suffix) = unstable.split_at(i);
            for id in self.tokens_starting_with(suffix) {
                let possibility = [prefix, self.token_bytes(id)].concat();
                let encoded = match std::str::from_utf8(&possibility) {
                    Ok(text) => self.encode_ordinary(text)?,
                    Err(_) => self.encode_single_piece(&possibility)?,
                };
                let mut sequence = Vec::new();
                let mut length = 0;
                for token in encoded {
                    sequence.push(token);
                    length += self.token_bytes(token).len();
                    if length >= unstable.len() {
                        break;
                    }
                }
                completions.insert(sequence);
            }
        }
        // A split before a trailing whitespace char, which more text could make appear.
        if unstable.len() > 1 {
            if let Some((c, len)) = last_char(&unstable) {
                let cut = unstable.len() - len;
                if cut > 0 && c.is_whitespace() {
                    let (head, tail) = unstable.split_at(cut);
                    let mut sequence = self.encode_single_piece(head)?;
                    sequence.extend(self.encode_single_piece(tail)?);
                    completions.insert(sequence);
                }
            }
        }
        Ok((tokens, completions))
    }

    /// tiktoken's `_encode_bytes`: encodes bytes that may not be UTF-8. The valid UTF-8 prefix is
    /// encoded as text (special tokens as ordinary text); its last piece and the rest of the bytes
    /// are then merged as one piece.
    pub fn encode_bytes(&self, bytes: &[u8]) -> Result<Vec<Rank>> {
        let valid = match std::str::from_utf8(bytes) {
            Ok(text) => return self.encode_ordinary(text),
            Err(e) => e.valid_up_to(),
        };
        let (head, rest) = bytes.split_at(valid.min(bytes.len()));
        let text = std::str::from_utf8(head).unwrap_or_default();
        let (mut tokens, last) = self.encode_with_last_piece(text, &SpecialSet::default())?;
        let last = self.extend_last_piece(&tokens, last);
        let mut unstable = Vec::new();
        if !tokens.is_empty() && last > 0 {
            let split = tokens.len() - last;
            unstable = self.decode_bytes(tokens.get(split..).unwrap_or_default())?;
            tokens.truncate(split);
        }
        unstable.extend_from_slice(rest);
        if !unstable.is_empty() {
            match self.ranks.get(&unstable) {
                Some(&token) => tokens.push(token),
                None => tokens.extend(self.encode_single_piece(&unstable)?),
            }
        }
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    use rustc_hash::FxHashMap;

    use super::*;
    use crate::vocab::Ranks;

    fn toy() -> Result<CoreBpe> {
        let mut ranks = Ranks::default();
        for b in 0..=255u8 {
            ranks.insert(vec![b], Rank::from(b));
        }
        for (i, t) in [
            "he", "ll", "hell", "hello", " w", "or", " wor", " world", " f", " fa",
        ]
        .iter()
        .enumerate()
        {
            ranks.insert(t.as_bytes().to_vec(), 256 + i as Rank);
        }
        let mut specials = FxHashMap::default();
        specials.insert("<|endoftext|>".to_string(), 300);
        CoreBpe::new(ranks, specials, "r50k")
    }

    #[test]
    fn stable_tokens_and_completions() -> Result<()> {
        let bpe = toy()?;
        let none = SpecialSet::default();
        let (stable, completions) = bpe.encode_with_unstable("hello wo", &none, &none)?;
        assert_eq!(stable, vec![259]);
        // " wo": " wor" and " world" start with it, so do " w" + "o..." and " " + "wo...".
        assert!(completions.contains(&vec![262]));
        assert!(completions.contains(&vec![263]));
        for sequence in &completions {
            let mut all = stable.clone();
            all.extend(sequence);
            assert!(bpe.decode_bytes(&all)?.starts_with(b"hello wo"));
        }
        // Ending with a special token: nothing is unstable.
        let all = bpe.all_specials();
        let (stable, completions) = bpe.encode_with_unstable("hi<|endoftext|>", &all, &none)?;
        assert_eq!((stable, completions.len()), (vec![104, 105, 300], 0));
        assert_eq!(
            bpe.encode_with_unstable("<|endoftext|>", &none, &all),
            Err(Error::DisallowedSpecial("<|endoftext|>".into()))
        );
        Ok(())
    }

    #[test]
    fn bytes_that_are_not_utf8() -> Result<()> {
        let bpe = toy()?;
        assert_eq!(bpe.encode_bytes(b"hello")?, vec![259]);
        assert_eq!(bpe.encode_bytes(b"hello \xe4")?, vec![259, 32, 0xe4]);
        assert_eq!(bpe.encode_bytes(b"\xff")?, vec![0xff]);
        assert_eq!(last_char("a\u{3000}".as_bytes()), Some(('\u{3000}', 3)));
        assert_eq!(last_char(b"a\xe4"), None);
        Ok(())
    }
}
