//! Very long pieces (`'a' * 16_000_000`, a megabyte of one letter run, hostile input): the exact
//! BPE tokens in memory independent of the piece's length beyond its tokens.
//!
//! Design notes:
//! - The rule used (proved in the comment of [`encode`], and the idea of the backtracking
//!   encoder of GitHub's `bpe` crate): call tokens `x`, `y` *compatible* when merging the bytes
//!   of `x` followed by those of `y` gives exactly `[x, y]`. A sequence of tokens is the BPE
//!   merge of its bytes if and only if every two neighbours in it are compatible (and a single
//!   token merges to itself). So the tokens can be found left to right: take the longest token
//!   that starts here, keep it if it is compatible with the one before, else try the next
//!   shorter token starting here, and when none fits, step back. A position found to be no
//!   token boundary (every try from it failed) is marked dead, so no position is tried twice:
//!   linear in the piece. The BPE encoding exists and is unique, so the search always ends
//!   on it.
//! - State: the tokens themselves (pushed onto the output as they are found, popped when
//!   stepping back), one bit per position for the last `DEAD_WINDOW` positions (a step back
//!   beyond them falls back to the bucket merge), a small cache of pair checks and the
//!   automaton below. 16 MiB of `'a'` went from 16.5-17 bytes per input byte (the bucket merge:
//!   a node, a bucket entry and heap per byte) to the tokens (4 bytes each) plus ~2 MB.
//! - The longest token starting at a position comes from an anchored leftmost-longest
//!   aho-corasick automaton (the crate the special tokens already use) over the tokens that can
//!   occur in the chunk (every two neighbouring bytes of the token occur side by side in it),
//!   built per chunk of at least `BACKTRACK_MIN` bytes (shorter ones keep the bucket merge, so
//!   ordinary text never builds one). Over the whole vocabulary it took 37 MB (cl100k) and
//!   57 MB (o200k); for a run of one letter it is a few tokens. GitHub's `bpe` crate does the same search, but needs three
//!   more dependencies (its own fork of `daachorse`), two automata and its own copy of the
//!   vocabulary with split tables; here the pair check reuses the merge of this module.

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, MatchKind, StartKind};
use rustc_hash::FxHashMap;

use super::{
    merge_heap, merge_linear, merge_short, MergeTable, HEAP_THRESHOLD, OUT_OF_MEMORY, STACK_PARTS,
};
use crate::vocab::{Rank, Ranks};

/// Chunks of at least this many bytes (after the cuts where nothing merges) are encoded here;
/// shorter ones by the bucket merge (at most ~5 MB of state at this size), which needs no
/// automaton.
pub const BACKTRACK_MIN: usize = 1 << 18;

/// Positions remembered as dead (bits): 1 MB. Stepping back further than this (never seen with
/// real vocabularies, where a step back goes a token or two) falls back to the bucket merge.
const DEAD_WINDOW: usize = 1 << 23;

/// Pair checks remembered before the cache starts over.
const CACHE_MAX: usize = 1 << 16;

/// All tokens in one automaton that finds the longest token starting at a position.
pub struct Prefixes {
    automaton: AhoCorasick,
    /// Rank and length of each pattern of the automaton.
    ranks: Vec<Rank>,
    lens: Vec<u32>,
}

impl Prefixes {
    /// The tokens that can occur in `piece`: those whose every two neighbouring bytes occur
    /// side by side in it (all single bytes included). Built per long chunk: for a run of one
    /// letter that is a handful of tokens, for any piece at most the vocabulary (`None` when
    /// the automaton cannot be built: the caller keeps the bucket merge).
    pub fn new(ranks: &Ranks, piece: &[u8]) -> Option<Self> {
        let mut pairs = vec![0u64; 1024];
        for w in piece.windows(2) {
            let bit = (usize::from(w[0]) << 8) | usize::from(w[1]);
            pairs[bit >> 6] |= 1 << (bit & 63);
        }
        let occurs = |t: &[u8]| {
            t.windows(2).all(|w| {
                let bit = (usize::from(w[0]) << 8) | usize::from(w[1]);
                pairs[bit >> 6] & (1 << (bit & 63)) != 0
            })
        };
        let mut tokens: Vec<(&[u8], Rank)> = ranks
            .iter()
            .filter(|(t, _)| t.len() <= piece.len() && occurs(t))
            .map(|(t, &r)| (t.as_slice(), r))
            .collect();
        tokens.sort_unstable_by_key(|&(_, r)| r);
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Anchored)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(tokens.iter().map(|&(t, _)| t))
            .ok()?;
        Some(Prefixes {
            automaton,
            ranks: tokens.iter().map(|&(_, r)| r).collect(),
            lens: tokens.iter().map(|&(t, _)| t.len() as u32).collect(),
        })
    }

    /// The longest token that `text[at..end]` starts with: (pattern, length).
    #[inline]
    fn longest(&self, text: &[u8], at: usize, end: usize) -> Option<(u32, usize)> {
        let input = Input::new(text).range(at..end).anchored(Anchored::Yes);
        let m = self.automaton.find(input)?;
        Some((m.pattern().as_u32(), m.len()))
    }

    #[inline]
    fn len(&self, pattern: u32) -> usize {
        self.lens.get(pattern as usize).map_or(0, |&l| l as usize)
    }

    #[inline]
    fn rank(&self, pattern: u32) -> Rank {
        self.ranks
            .get(pattern as usize)
            .copied()
            .unwrap_or(Rank::MAX)
    }
}

/// Positions known to be no token boundary, for the last `DEAD_WINDOW` positions reached.
struct Dead {
    bits: Vec<u64>,
    size: usize,
    /// Every position up to this one has had its bit cleared on first reaching it.
    high: usize,
}

impl Dead {
    fn new(n: usize, window: usize) -> Result<Self, usize> {
        let size = (n + 1).min(window).max(1);
        let mut bits = Vec::new();
        bits.try_reserve_exact(size.div_ceil(64))
            .map_err(|_| OUT_OF_MEMORY)?;
        bits.resize(size.div_ceil(64), 0);
        Ok(Dead {
            bits,
            size,
            high: size - 1,
        })
    }

    #[inline]
    fn slot(&self, pos: usize) -> (usize, u64) {
        let i = pos % self.size;
        (i >> 6, 1 << (i & 63))
    }

    /// Whether `pos` is known to be dead; `None` when `pos` is behind the window (the search
    /// stepped back that far, which the caller answers with the bucket merge: forgetting dead
    /// positions could make the search exponential).
    fn is_dead(&mut self, pos: usize) -> Option<bool> {
        while self.high < pos {
            self.high += 1;
            let (w, bit) = self.slot(self.high);
            if let Some(word) = self.bits.get_mut(w) {
                *word &= !bit;
            }
        }
        if pos + self.size <= self.high {
            return None;
        }
        let (w, bit) = self.slot(pos);
        Some(self.bits.get(w).is_some_and(|word| word & bit != 0))
    }

    fn mark(&mut self, pos: usize) {
        if pos + self.size > self.high {
            let (w, bit) = self.slot(pos);
            if let Some(word) = self.bits.get_mut(w) {
                *word |= bit;
            }
        }
    }
}

/// The merge of `bytes` on its own (no whole-token lookup), onto `out`.
fn merge_alone(bytes: &[u8], table: &MergeTable, out: &mut Vec<Rank>) -> Result<(), usize> {
    match bytes.len() {
        0 => {}
        1 => out.push(table.byte_ids[usize::from(bytes[0])]),
        n if n < STACK_PARTS => merge_short(bytes, table, out),
        n if n < HEAP_THRESHOLD => merge_linear(bytes, table, out),
        _ => merge_heap(bytes, table, out)?,
    }
    Ok(())
}

/// Appends the BPE merge of `piece` to `out` (the same tokens as [`merge_heap`]).
///
/// Why the search is exact. Let `A`, `B` be byte strings whose merges end in token `x` and
/// start with token `y`, `x`, `y` compatible. Suppose a merge crossed the border in the merge
/// of `AB`, and look at the first one, joining parts `p` (ending at the border) and `q`. Until
/// then the merges inside `x`'s bytes and inside `y`'s are those of `x` and `y` merged alone
/// (no merge crossed their edges in `A` or `B`), in the same interleaving, so merging `x`'s
/// bytes followed by `y`'s reaches the same parts around the border, where the pair `(p, q)`
/// is the lowest (it was in `AB`, whose pairs include these): it merges, against
/// compatibility. So no merge crosses, and the merge of `AB` is that of `A` then that of `B`.
/// By induction, a sequence of pairwise compatible tokens is the merge of its bytes; the
/// converse holds by the same argument. So any covering sequence the search accepts is the
/// merge, and the merge's own prefixes show that the search never gives up on a boundary of it.
pub fn encode(
    piece: &[u8],
    table: &MergeTable,
    prefixes: &Prefixes,
    out: &mut Vec<Rank>,
) -> Result<(), usize> {
    encode_with_window(piece, table, prefixes, out, DEAD_WINDOW)
}

fn encode_with_window(
    piece: &[u8],
    table: &MergeTable,
    prefixes: &Prefixes,
    out: &mut Vec<Rank>,
    window: usize,
) -> Result<(), usize> {
    let n = piece.len();
    let base = out.len();
    let mut dead = Dead::new(n, window)?;
    let mut cache: FxHashMap<u64, bool> = FxHashMap::default();
    let mut scratch = Vec::new();
    let mut compatible = |left: u32, right: u32, bytes: &[u8]| -> Result<bool, usize> {
        let key = (u64::from(left) << 32) | u64::from(right);
        if let Some(&ok) = cache.get(&key) {
            return Ok(ok);
        }
        scratch.clear();
        merge_alone(bytes, table, &mut scratch)?;
        let ok = scratch == [prefixes.rank(left), prefixes.rank(right)];
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, ok);
        Ok(ok)
    };
    let mut scratch_first = Vec::new();
    let mut pos = 0;
    let mut next = prefixes.longest(piece, 0, n);
    while let Some((mut token, mut len)) = next {
        let last = out[base..].last().copied();
        loop {
            let end = pos + len;
            let Some(is_dead) = dead.is_dead(end) else {
                out.truncate(base);
                return merge_heap(piece, table, out);
            };
            let fits = !is_dead
                && match last {
                    // The first token must merge to itself (a vocabulary may hold tokens that
                    // no merge makes); after it, compatibility implies that of both tokens.
                    None => {
                        scratch_first.clear();
                        merge_alone(&piece[..end], table, &mut scratch_first)?;
                        scratch_first == [prefixes.rank(token)]
                    }
                    Some(left) => {
                        let start = pos - prefixes.len(left);
                        compatible(left, token, &piece[start..end])?
                    }
                };
            if fits {
                out.try_reserve(1).map_err(|_| OUT_OF_MEMORY)?;
                out.push(token);
                pos = end;
                next = prefixes.longest(piece, pos, n);
                break;
            }
            if let Some((shorter, l)) = (len > 1)
                .then(|| prefixes.longest(piece, pos, pos + len - 1))
                .flatten()
            {
                (token, len) = (shorter, l);
                continue;
            }
            // No token from here fits: `pos` is no boundary; step back over the last token and
            // try the shorter ones in its place.
            dead.mark(pos);
            next = last.map(|left| {
                out.pop();
                pos -= prefixes.len(left);
                (left, prefixes.len(left))
            });
            break;
        }
    }
    if pos != n {
        // Not reached (the merge itself is a sequence the search accepts); kept as a guard.
        out.truncate(base);
        return merge_heap(piece, table, out);
    }
    for t in &mut out[base..] {
        *t = prefixes.rank(*t);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Random vocabularies over a three-letter alphabet (merges of existing tokens, long
    /// ones included); the bpe tests use it too.
    pub(crate) fn vocabulary(merges: &[(usize, usize)]) -> Ranks {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let alphabet = [b'a', b'b', b'c'];
        for &(x, y) in merges {
            let pick = |k: usize| -> Vec<u8> {
                if k % 3 == 0 || tokens.len() == 256 {
                    vec![alphabet[k % 3]]
                } else {
                    tokens[256 + k % (tokens.len() - 256)].clone()
                }
            };
            let mut t = pick(x);
            t.extend(pick(y));
            if !tokens.contains(&t) {
                tokens.push(t);
            }
        }
        tokens.into_iter().zip(0..).collect()
    }

    fn check(ranks: &Ranks, piece: &[u8], window: usize) -> Result<(), TestCaseError> {
        let table = MergeTable::new(ranks);
        let Some(prefixes) = Prefixes::new(ranks, piece) else {
            return Err(TestCaseError::fail("no automaton"));
        };
        let (mut ours, mut reference) = (vec![7], vec![7]);
        prop_assert_eq!(merge_alone(piece, &table, &mut reference), Ok(()));
        prop_assert_eq!(
            encode_with_window(piece, &table, &prefixes, &mut ours, window),
            Ok(())
        );
        prop_assert_eq!(ours, reference);
        Ok(())
    }

    #[test]
    fn runs_of_one_letter_and_periodic_text() -> Result<(), TestCaseError> {
        let ranks = vocabulary(&[(0, 0), (1, 1), (2, 2), (3, 3), (0, 1), (4, 4), (5, 5)]);
        for len in [2, 3, 7, 64, 1000, 5000] {
            for text in [
                b"a".repeat(len),
                b"abc".repeat(len / 3 + 1),
                b"aab".repeat(len),
            ] {
                check(&ranks, &text, DEAD_WINDOW)?;
                check(&ranks, &text, 5)?;
            }
        }
        Ok(())
    }

    #[test]
    fn a_whole_token_that_no_merge_makes() -> Result<(), TestCaseError> {
        // "abc" is a token, but no two tokens make it: merging "abc" gives [a, b, c], so the
        // first token must be checked to merge to itself.
        let mut ranks = vocabulary(&[(0, 0)]);
        ranks.insert(b"abc".to_vec(), 400);
        for text in [&b"abc"[..], b"abca", b"abcabc", b"aabcaa"] {
            check(&ranks, text, DEAD_WINDOW)?;
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 100,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Random vocabularies (longer tokens ranked before their parts included) and pieces:
        /// the search gives the merge's tokens, with the full window and a tiny one.
        #[test]
        fn search_equals_the_merge(
            merges in proptest::collection::vec((0usize..1000, 0usize..1000), 0..80),
            piece in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c'), Just(0u8)], 1..400),
            window in 1usize..40,
        ) {
            let ranks = vocabulary(&merges);
            check(&ranks, &piece, DEAD_WINDOW)?;
            check(&ranks, &piece, window)?;
        }

        /// The same for repetitive pieces (one or two letters repeated), the long pieces' shape.
        #[test]
        fn repetitive_pieces(
            merges in proptest::collection::vec((0usize..1000, 0usize..1000), 0..80),
            unit in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b')], 1..5),
            times in 1usize..400,
        ) {
            let ranks = vocabulary(&merges);
            check(&ranks, &unit.repeat(times), DEAD_WINDOW)?;
        }
    }
}
