//! `CoreBpe`: a complete encoding (mergeable ranks, special tokens, pre-tokenizer), with the
//! encode and decode operations behind fastllm's tiktoken-compatible `Encoding`.

use rustc_hash::FxHashMap;

use crate::bpe;
use crate::error::{clip, py_repr, try_reserve, Error, Result};
use crate::parallel;
use crate::pretok::{patterns, SpecialMatcher, Splitter};
use crate::vocab::{Rank, Ranks, MAX_ID};

mod decode;
mod unstable;

use decode::Decoder;
pub use decode::Text;

/// Which special tokens a call allows or forbids, indexed like `CoreBpe::special_names`, with
/// whether any is set (checked once per special token found, so kept, not recounted).
#[derive(Clone, Debug, Default)]
pub struct SpecialSet {
    flags: Vec<bool>,
    any: bool,
}

impl SpecialSet {
    fn new(flags: Vec<bool>) -> Self {
        let any = flags.iter().any(|&b| b);
        SpecialSet { flags, any }
    }

    fn contains(&self, index: usize) -> bool {
        self.flags.get(index).copied().unwrap_or(false)
    }

    fn is_empty(&self) -> bool {
        !self.any
    }

    /// Every special token that is not in `self`.
    pub fn complement(&self) -> SpecialSet {
        SpecialSet::new(self.flags.iter().map(|&b| !b).collect())
    }
}

pub struct CoreBpe {
    ranks: Ranks,
    merges: bpe::MergeTable,
    special_names: Vec<String>,
    special_ids: Vec<Rank>,
    /// Name to index in `special_names`: `special_set` and `encode_single_token` look names up in
    /// constant time (a scan per name made `encode("hi")` quadratic in the number of specials:
    /// 40 k specials took 0.97 s).
    special_index: FxHashMap<String, usize>,
    special_matcher: Option<SpecialMatcher>,
    pattern: String,
    splitter: Splitter,
    decoder: Decoder,
    max_token_value: Rank,
    /// Mergeable token ids sorted by their bytes, made on first use (`encode_with_unstable`).
    sorted_tokens: std::sync::OnceLock<Vec<Rank>>,
}

impl CoreBpe {
    /// `pattern` may be a regex or a short name (`"r50k"`, `"cl100k"`, `"o200k"`).
    pub fn new(
        ranks: Ranks,
        special_tokens: FxHashMap<String, Rank>,
        pattern: &str,
    ) -> Result<Self> {
        let pattern = patterns::resolve(pattern).to_string();
        let splitter = Splitter::new(&pattern)?;

        let mut specials: Vec<(String, Rank)> = special_tokens.into_iter().collect();
        // By id, then name: of two special tokens with one id (o200k_harmony's
        // `<|endofprompt|>` and `<|reserved_200018|>`), the first decodes it, as in tiktoken.
        specials.sort_unstable_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        let special_names: Vec<String> = specials.iter().map(|(n, _)| n.clone()).collect();
        let special_ids: Vec<Rank> = specials.iter().map(|&(_, id)| id).collect();
        let special_matcher = SpecialMatcher::new(&special_names)?;
        let max_token_value = ranks
            .values()
            .chain(special_ids.iter())
            .copied()
            .max()
            .unwrap_or(0);
        if max_token_value > MAX_ID {
            let owner = ranks
                .iter()
                .find(|&(_, &id)| id == max_token_value)
                .map(|(t, _)| format!("mergeable token {}", clip(&String::from_utf8_lossy(t), 80)))
                .or_else(|| {
                    specials
                        .iter()
                        .find(|&&(_, id)| id == max_token_value)
                        .map(|(n, _)| format!("special token {}", py_repr(&clip(n, 80))))
                })
                .unwrap_or_default();
            return Err(Error::InvalidArgument(format!(
                "token id {max_token_value} ({owner}) is too large: fastllm's token ids must be \
                 below 2**26 = {}",
                MAX_ID as u64 + 1
            )));
        }
        let entries = ranks
            .iter()
            .map(|(k, &v)| (k.as_slice(), v))
            .chain(specials.iter().map(|(n, id)| (n.as_bytes(), *id)));
        let decoder = Decoder::new(entries, max_token_value, |bytes, id, first| {
            if ranks.get(bytes) == Some(&id) && first != bytes {
                return Err(Error::InvalidArgument(format!(
                    "mergeable_ranks gives rank {id} to two tokens; ranks must be unique"
                )));
            }
            // A special token that reuses a mergeable id decodes as the mergeable token,
            // as in tiktoken.
            Ok(())
        })?;

        let special_index = special_names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        Ok(CoreBpe {
            merges: bpe::MergeTable::new(&ranks),
            ranks,
            special_names,
            special_ids,
            special_index,
            special_matcher,
            pattern,
            splitter,
            decoder,
            max_token_value,
            sorted_tokens: std::sync::OnceLock::new(),
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn ranks(&self) -> &Ranks {
        &self.ranks
    }

    pub fn max_token_value(&self) -> Rank {
        self.max_token_value
    }

    pub fn special_tokens(&self) -> impl Iterator<Item = (&str, Rank)> {
        self.special_names
            .iter()
            .map(String::as_str)
            .zip(self.special_ids.iter().copied())
    }

    /// The set of special tokens named in `names` (names that are not special tokens are ignored).
    pub fn special_set<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> SpecialSet {
        let mut set = vec![false; self.special_names.len()];
        for name in names {
            if let Some(slot) = self.special_index.get(name).and_then(|&i| set.get_mut(i)) {
                *slot = true;
            }
        }
        SpecialSet::new(set)
    }

    pub fn all_specials(&self) -> SpecialSet {
        SpecialSet::new(vec![true; self.special_names.len()])
    }

    // ---- encoding ----

    pub fn encode_ordinary_into(&self, text: &str, out: &mut Vec<Rank>) -> Result<()> {
        self.encode_segment(text, &mut bpe::PieceMemo::default(), out)
    }

    /// [`encode_ordinary_into`](Self::encode_ordinary_into) through a memo the caller keeps
    /// across the texts of one call (a batch: see `crate::flat`).
    pub fn encode_ordinary_with(
        &self,
        text: &str,
        memo: &mut bpe::PieceMemo,
        out: &mut Vec<Rank>,
    ) -> Result<()> {
        self.encode_segment(text, memo, out)
    }

    fn encode_segment(
        &self,
        text: &str,
        memo: &mut bpe::PieceMemo,
        out: &mut Vec<Rank>,
    ) -> Result<()> {
        self.splitter.for_each_piece(text, |piece: &str| {
            self.encode_piece(piece.as_bytes(), memo, out)
        })
    }

    /// BPE-encodes one pre-tokenized piece onto `out`.
    fn encode_piece(
        &self,
        piece: &[u8],
        memo: &mut bpe::PieceMemo,
        out: &mut Vec<Rank>,
    ) -> Result<()> {
        // A piece gives at most one token per byte: with room for that, no push below grows
        // `out`, and growth here is fallible (`MemoryError`, not an abort).
        out.try_reserve(piece.len()).map_err(|_| {
            Error::OutOfMemory(format!(
                "cannot grow the tokens past {} for a piece of {} bytes",
                out.len(),
                piece.len()
            ))
        })?;
        memo.encode_piece(piece, &self.ranks, &self.merges, out)
            .map_err(|at| {
                if at == bpe::OUT_OF_MEMORY {
                    return Error::OutOfMemory(format!("merging a piece of {} bytes", piece.len()));
                }
                let byte = piece.get(at).copied().unwrap_or(0);
                Error::InvalidVocab {
                    source: "mergeable_ranks".into(),
                    reason: format!(
                        "byte 0x{byte:02x} has no token; a byte-level BPE vocabulary must \
                         contain all 256 single bytes"
                    ),
                }
            })
    }

    pub fn encode_ordinary(&self, text: &str) -> Result<Vec<Rank>> {
        let mut out = Vec::new();
        try_reserve(&mut out, text.len() / 4 + 1, "the tokens")?;
        self.encode_ordinary_into(text, &mut out)?;
        Ok(out)
    }

    /// The leftmost special token in `text[from..]` whose index is in `set` (the longest one when
    /// several start at the same byte), as (start, end, index).
    fn find_special(
        &self,
        text: &str,
        from: usize,
        set: &SpecialSet,
    ) -> Option<(usize, usize, usize)> {
        let matcher = self.special_matcher.as_ref()?;
        if set.is_empty() {
            return None;
        }
        matcher.find(text, from, |index| set.contains(index))
    }

    /// Encodes `text`, turning the special tokens in `allowed` into their ids. Fails with
    /// [`Error::DisallowedSpecial`] if `text` contains a special token in `disallowed`.
    pub fn encode(
        &self,
        text: &str,
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
    ) -> Result<Vec<Rank>> {
        let mut out = Vec::new();
        try_reserve(&mut out, text.len() / 4 + 1, "the tokens")?;
        self.encode_into(text, allowed, disallowed, &mut out)?;
        Ok(out)
    }

    /// [`encode`](Self::encode) for a result that outlives the call (a NumPy array): reserves one
    /// token per byte, the most there can be, so the buffer never moves. Pages that are never
    /// written are never resident, so memory stays at 4 bytes per token actually produced
    /// (growing by doubling instead copied the buffer and peaked near 8 bytes a token).
    /// Where that address space is not available (a memory cap: `RLIMIT_AS`), it falls back to
    /// [`encode`](Self::encode)'s growing buffer, and to `MemoryError` only when that fails too.
    pub fn encode_to_vec(
        &self,
        text: &str,
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
    ) -> Result<Vec<Rank>> {
        let mut out = Vec::new();
        if out.try_reserve_exact(text.len() + 1).is_err() {
            return self.encode(text, allowed, disallowed);
        }
        self.encode_into(text, allowed, disallowed, &mut out)?;
        out.shrink_to_fit();
        Ok(out)
    }

    /// [`encode`](Self::encode), appending to `out`.
    pub fn encode_into(
        &self,
        text: &str,
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
        out: &mut Vec<Rank>,
    ) -> Result<()> {
        self.encode_with(
            text,
            allowed,
            disallowed,
            &mut bpe::PieceMemo::default(),
            out,
        )
    }

    /// [`encode_into`](Self::encode_into) through a memo the caller keeps across the texts of
    /// one call (a batch: see `crate::flat`).
    pub fn encode_with(
        &self,
        text: &str,
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
        memo: &mut bpe::PieceMemo,
        out: &mut Vec<Rank>,
    ) -> Result<()> {
        if let Some((_, _, index)) = self.find_special(text, 0, disallowed) {
            return Err(Error::DisallowedSpecial(self.special_names[index].clone()));
        }
        let mut start = 0;
        // One pass of the special-token automaton for the whole text (see `Finder`).
        let mut finder = match &self.special_matcher {
            Some(m) if !allowed.is_empty() => Some(m.finder(text, |i| allowed.contains(i))),
            _ => None,
        };
        while let Some((s, e, index)) = finder.as_mut().and_then(|f| f.next_from(start)) {
            self.encode_segment(&text[start..s], memo, out)?;
            out.try_reserve(1).map_err(|_| {
                Error::OutOfMemory(format!("cannot grow the tokens past {}", out.len()))
            })?;
            out.push(self.special_ids[index]);
            start = e;
        }
        self.encode_segment(&text[start..], memo, out)
    }

    pub fn encode_batch(
        &self,
        texts: &[&str],
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
        threads: usize,
    ) -> Result<Vec<Vec<Rank>>> {
        parallel::map(texts, threads, |text| {
            self.encode(text, allowed, disallowed)
        })
        .into_iter()
        .collect()
    }

    pub fn encode_ordinary_batch(&self, texts: &[&str], threads: usize) -> Result<Vec<Vec<Rank>>> {
        parallel::map(texts, threads, |text| self.encode_ordinary(text))
            .into_iter()
            .collect()
    }

    /// Encodes each text and concatenates the tokens: (tokens, offsets), where the tokens of text
    /// i are `tokens[offsets[i]..offsets[i + 1]]`.
    pub fn encode_batch_flat(
        &self,
        texts: &[&str],
        allowed: &SpecialSet,
        disallowed: &SpecialSet,
        threads: usize,
    ) -> Result<(Vec<Rank>, Vec<i64>)> {
        let parts = self.encode_batch(texts, allowed, disallowed, threads)?;
        let total = parts.iter().map(Vec::len).sum();
        let (mut tokens, mut offsets) = (Vec::new(), Vec::new());
        try_reserve(&mut tokens, total, "the tokens")?;
        try_reserve(&mut offsets, parts.len() + 1, "the offsets")?;
        offsets.push(0);
        for part in parts {
            tokens.extend_from_slice(&part);
            offsets.push(tokens.len() as i64);
        }
        Ok((tokens, offsets))
    }

    /// BPE-encodes bytes as one piece, without pre-tokenization or special tokens.
    pub fn encode_single_piece(&self, piece: &[u8]) -> Result<Vec<Rank>> {
        let mut out = Vec::new();
        bpe::encode_piece(piece, &self.ranks, &self.merges, &mut out)
            .map_err(|_| Error::NotAToken(piece.to_vec()))?;
        Ok(out)
    }

    pub fn encode_single_token(&self, piece: &[u8]) -> Result<Rank> {
        if let Some(&rank) = self.ranks.get(piece) {
            return Ok(rank);
        }
        if let Ok(name) = std::str::from_utf8(piece) {
            if let Some(&i) = self.special_index.get(name) {
                return Ok(self.special_ids[i]);
            }
        }
        Err(Error::NotAToken(piece.to_vec()))
    }

    // ---- decoding ----

    pub fn decode_single_token_bytes(&self, token: Rank) -> Result<&[u8]> {
        self.decoder.get(token).ok_or(Error::NoSuchToken(token))
    }

    pub fn decode_bytes(&self, tokens: &[Rank]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        try_reserve(&mut out, tokens.len() * 4 + 256, "the decoded bytes")?;
        self.decoder.decode_into(tokens, &mut out)?;
        Ok(out)
    }

    /// The bytes of `tokens`, as Python should make them into a `str` (see [`Text`]).
    pub fn decode_text(&self, tokens: &[Rank]) -> Result<Text> {
        Text::new(&self.decoder, tokens)
    }

    pub fn decode_bytes_batch(&self, batch: &[Vec<Rank>], threads: usize) -> Result<Vec<Vec<u8>>> {
        parallel::map(batch, threads, |tokens| self.decode_bytes(tokens))
            .into_iter()
            .collect()
    }

    /// All mergeable token byte strings, sorted.
    pub fn token_byte_values(&self) -> Vec<&[u8]> {
        let mut values: Vec<&[u8]> = self.ranks.keys().map(Vec::as_slice).collect();
        values.sort_unstable();
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Result<CoreBpe> {
        let mut ranks = Ranks::default();
        for b in 0..=255u8 {
            ranks.insert(vec![b], Rank::from(b));
        }
        for (i, t) in ["he", "ll", "hell", "hello", " w", "or", " wor", " world"]
            .iter()
            .enumerate()
        {
            ranks.insert(t.as_bytes().to_vec(), 256 + i as Rank);
        }
        let mut specials = FxHashMap::default();
        specials.insert("<|endoftext|>".to_string(), 300);
        specials.insert("<|fim|>".to_string(), 301);
        CoreBpe::new(ranks, specials, "r50k")
    }

    #[test]
    fn encodes_and_decodes() -> Result<()> {
        let bpe = toy()?;
        let ids = bpe.encode_ordinary("hello world")?;
        assert_eq!(ids, vec![259, 263]);
        assert_eq!(bpe.decode_bytes(&ids)?, b"hello world".to_vec());
        assert_eq!(bpe.decode_bytes(&[999]), Err(Error::InvalidToken(999)));
        assert_eq!(bpe.max_token_value(), 301);
        Ok(())
    }

    #[test]
    fn special_tokens() -> Result<()> {
        let bpe = toy()?;
        let text = "hello<|endoftext|> world<|fim|>";
        let none = bpe.special_set([]);
        let eot = bpe.special_set(["<|endoftext|>"]);
        let all = bpe.all_specials();
        assert_eq!(bpe.encode(text, &eot, &none)?[..2], [259, 300]);
        assert_eq!(bpe.encode(text, &all, &none)?.last(), Some(&301));
        assert_eq!(
            bpe.encode(text, &eot, &bpe.special_set(["<|fim|>"])),
            Err(Error::DisallowedSpecial("<|fim|>".into()))
        );
        assert_eq!(bpe.encode(text, &none, &none)?, bpe.encode_ordinary(text)?);
        Ok(())
    }

    #[test]
    fn bad_pattern_names_it() {
        let err = CoreBpe::new(Ranks::default(), FxHashMap::default(), "(unclosed").map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string().starts_with("invalid pat_str \"(unclosed\"")),
            Err(true)
        );
    }
}
