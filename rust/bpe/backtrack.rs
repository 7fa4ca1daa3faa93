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
//! - The longest token starting at a position comes from one walk down a trie of every token
//!   ([`Trie`], built once per encoding on the first long chunk and kept with the merge table:
//!   9 bytes a node, gpt2 0.9 MB, cl100k 2.0 MB, o200k 3.8 MB), the single bytes always in it
//!   (with stand-in ids for bytes a vocabulary lacks). It replaced an anchored leftmost-longest
//!   aho-corasick automaton built per chunk over the tokens whose byte pairs occur in the chunk:
//!   ~170 bytes a state (the contiguous NFA, its smallest form), so a hostile piece holding nearly
//!   every byte pair cost up to 37 MB (cl100k) / 57 MB (o200k) in one call, and every long chunk
//!   paid a pass over the whole vocabulary. Measured (peak RSS VmHWM growth of one
//!   `encode_to_numpy`, subprocess, trie already built, a 1 MiB piece chaining every lower-case
//!   letter token, load 6): cl100k 15.9 -> 12.3 MB, o200k 20.5 -> 8.1 MB (bound 17 MB), gpt2
//!   14.8 -> 14.9 (its piece is cut into chunks the bucket merge takes). 1 MB of `'a'`, second
//!   call, CPU: gpt2 20.2 -> 12.8 ms, cl100k 23.4 -> 13.9, o200k 18.4 -> 9.8; the first call
//!   pays the trie's build (gpt2 ~16 ms, cl100k ~44, o200k ~61: the sort of the tokens; not yet
//!   made cheaper: sorting by a packed 8-byte head and laying the sorted bytes side by side
//!   changed nothing measurable).
//! - Pathological 1 MB inputs (`benches/texts.py`), CPU ms in one process, median of 3 (the first
//!   call included), pinned, load 3.6, main -> this: gpt2 'a' 22.5 -> 11.3, digits 190 -> 158;
//!   cl100k 'a' 17.2 -> 9.5, spaces 19.8 -> 6.0, space-newline 57 -> 38, cjk_char 25.8 -> 16.3;
//!   o200k 'a' 20.0 -> 11.9, spaces 18.5 -> 6.5, space-newline 60 -> 47; the others equal within
//!   noise. 13 of 21 cells <= 20 ms (11 before); doubling 1.77-2.39x (5 cells over 2.2x).
//! - Tried and dropped: checking a pair without merging its bytes by undoing both tokens' last
//!   merges (the `bpe` crate's `is_valid_token_pair`). It is exact only when every merge makes a
//!   token ranked above its (multi-byte) parts; gpt2 / cl100k / o200k each have 22-71 k splits
//!   that break that, so the pair check stays a merge of the two tokens' bytes (cached). That
//!   merge on cache misses is what makes high-entropy long pieces slow (gpt2's 1 MB of random
//!   digits: ~250-300 ms here, against ~45 ms for the bucket merge).

use rustc_hash::FxHashMap;

use super::{
    merge_heap, merge_linear, merge_short, MergeTable, HEAP_THRESHOLD, NO_RANK, OUT_OF_MEMORY,
    STACK_PARTS,
};
use crate::vocab::{Rank, Ranks};

/// Chunks of at least this many bytes (after the cuts where nothing merges) are encoded here;
/// shorter ones by the bucket merge.
pub const BACKTRACK_MIN: usize = 1 << 18;

/// Positions remembered as dead (bits): 1 MB. Stepping back further than this (never seen with
/// real vocabularies, where a step back goes a token or two) falls back to the bucket merge.
const DEAD_WINDOW: usize = 1 << 23;

/// Pair checks remembered before the cache starts over.
const CACHE_MAX: usize = 1 << 16;

/// The longest token the trie holds; a vocabulary with a longer one has no trie (its long
/// pieces keep the bucket merge): a walk costs up to this many steps per position.
const TRIE_MAX: usize = 255;

/// Every single byte, for slices of one byte that live as long as the program.
static ALL_BYTES: [u8; 256] = {
    let mut all = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        all[i] = i as u8;
        i += 1;
    }
    all
};

/// Every token in one trie (the single bytes always, with the merge table's ids, which for a
/// byte missing from the vocabulary is a stand-in that no token's merge produces), built once
/// per encoding: the longest token starting at a position is one walk down from the root.
///
/// Nodes are numbered breadth first, so the children of node `i` are the nodes
/// `first[i]..first[i + 1]`, their labels sorted: 9 bytes a node (gpt2 98 k nodes 0.9 MB,
/// cl100k 217 k 2.0 MB, o200k 422 k 3.8 MB).
pub struct Trie {
    /// The child of the root for each byte (0: none).
    root: [u32; 256],
    first: Vec<u32>,
    labels: Vec<u8>,
    /// The token ending at each node, or `NO_RANK`.
    ranks: Vec<Rank>,
    /// The depth of each node: the length of its token.
    depth: Vec<u8>,
}

impl Trie {
    /// `None` when some token is longer than `TRIE_MAX` or memory runs out (the caller keeps
    /// the bucket merge).
    pub fn new(ranks: &Ranks, byte_ids: &[Rank; 256]) -> Option<Self> {
        let mut tokens: Vec<(&[u8], Rank)> = Vec::new();
        tokens.try_reserve_exact(ranks.len() + 256).ok()?;
        for (t, &r) in ranks {
            if t.len() > TRIE_MAX {
                return None;
            }
            if t.len() > 1 {
                tokens.push((t.as_slice(), r));
            }
        }
        for (b, &id) in byte_ids.iter().enumerate() {
            tokens.push((ALL_BYTES.get(b..=b)?, id));
        }
        // Sorted by bytes, comparing first the first 8 bytes packed into an integer (kept beside
        // each token, so most comparisons read no token bytes: the build is the first long
        // chunk's cost).
        let mut keyed: Vec<(u64, &[u8], Rank)> = Vec::new();
        keyed.try_reserve_exact(tokens.len()).ok()?;
        keyed.extend(tokens.into_iter().map(|(t, r)| {
            let mut head = [0u8; 8];
            let n = t.len().min(8);
            head[..n].copy_from_slice(&t[..n]);
            (u64::from_be_bytes(head), t, r)
        }));
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        // The sorted tokens' bytes side by side: the walk below reads each token once per
        // level, which over tokens scattered in the heap was a cache miss each time.
        let mut arena: Vec<u8> = Vec::new();
        arena
            .try_reserve_exact(keyed.iter().map(|t| t.1.len()).sum())
            .ok()?;
        let mut spans: Vec<(usize, usize, Rank)> = Vec::new();
        spans.try_reserve_exact(keyed.len()).ok()?;
        for &(_, t, r) in &keyed {
            spans.push((arena.len(), t.len(), r));
            arena.extend_from_slice(t);
        }
        drop(keyed);
        let tokens: Vec<(&[u8], Rank)> = spans
            .iter()
            .map(|&(at, n, r)| (arena.get(at..at + n).unwrap_or_default(), r))
            .collect();
        let mut trie = Trie {
            root: [0; 256],
            first: Vec::new(),
            labels: vec![0],
            ranks: vec![NO_RANK],
            depth: vec![0],
        };
        // The tokens below each node, as a range of `tokens` (they share the node's bytes).
        let mut below: Vec<(u32, u32)> = vec![(0, tokens.len() as u32)];
        let mut node = 0;
        while let Some(&(lo, hi)) = below.get(node) {
            let d = usize::from(trie.depth[node]);
            trie.first.push(trie.labels.len() as u32);
            let (mut k, hi) = (lo as usize, hi as usize);
            if tokens.get(k).is_some_and(|t| t.0.len() == d) {
                k += 1;
            }
            while k < hi {
                let b = tokens[k].0[d];
                let mut j = k + 1;
                while j < hi && tokens[j].0[d] == b {
                    j += 1;
                }
                let id = trie.labels.len() as u32;
                if node == 0 {
                    trie.root[usize::from(b)] = id;
                }
                trie.labels.push(b);
                trie.depth.push(d as u8 + 1);
                trie.ranks.push(if tokens[k].0.len() == d + 1 {
                    tokens[k].1
                } else {
                    NO_RANK
                });
                below.push((k as u32, j as u32));
                k = j;
            }
            node += 1;
        }
        trie.first.push(trie.labels.len() as u32);
        trie.first.shrink_to_fit();
        trie.labels.shrink_to_fit();
        trie.ranks.shrink_to_fit();
        trie.depth.shrink_to_fit();
        Some(trie)
    }

    #[inline]
    fn child(&self, node: usize, b: u8) -> Option<usize> {
        let lo = *self.first.get(node)? as usize;
        let hi = *self.first.get(node + 1)? as usize;
        let labels = self.labels.get(lo..hi)?;
        if labels.len() <= 8 {
            labels.iter().position(|&l| l == b).map(|k| lo + k)
        } else {
            labels.binary_search(&b).ok().map(|k| lo + k)
        }
    }

    /// The longest token that `text[at..end]` starts with: (node, length).
    #[inline]
    fn longest(&self, text: &[u8], at: usize, end: usize) -> Option<(u32, usize)> {
        let bytes = text.get(at..end)?;
        let (&b, rest) = bytes.split_first()?;
        let mut node = self.root[usize::from(b)] as usize;
        if node == 0 {
            return None;
        }
        let mut best = (self.rank(node as u32) != NO_RANK).then_some((node as u32, 1));
        for (i, &b) in rest.iter().enumerate() {
            let Some(c) = self.child(node, b) else {
                break;
            };
            node = c;
            if self.rank(node as u32) != NO_RANK {
                best = Some((node as u32, i + 2));
            }
        }
        best
    }

    #[inline]
    fn len(&self, node: u32) -> usize {
        self.depth.get(node as usize).map_or(0, |&d| usize::from(d))
    }

    #[inline]
    fn rank(&self, node: u32) -> Rank {
        self.ranks.get(node as usize).copied().unwrap_or(NO_RANK)
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

/// The two checks of the search, with what they have learnt in this call.
struct Checks<'a> {
    table: &'a MergeTable,
    trie: &'a Trie,
    /// Results of pair checks, by the pair of nodes.
    cache: FxHashMap<u64, bool>,
    scratch: Vec<Rank>,
}

impl<'a> Checks<'a> {
    fn new(table: &'a MergeTable, trie: &'a Trie) -> Self {
        Checks {
            table,
            trie,
            cache: FxHashMap::default(),
            scratch: Vec::new(),
        }
    }

    /// Whether the token at `node` (whose bytes are `bytes`) merges to itself.
    fn alone(&mut self, node: u32, bytes: &[u8]) -> Result<bool, usize> {
        let rank = self.trie.rank(node);
        if bytes.len() == 1 {
            return Ok(true);
        }
        self.scratch.clear();
        merge_alone(bytes, self.table, &mut self.scratch)?;
        Ok(self.scratch == [rank])
    }

    /// Whether the tokens at nodes `left` and `right` (whose bytes are `bytes`) are compatible.
    fn compatible(&mut self, left: u32, right: u32, bytes: &[u8]) -> Result<bool, usize> {
        let key = (u64::from(left) << 32) | u64::from(right);
        if let Some(&ok) = self.cache.get(&key) {
            return Ok(ok);
        }
        let (x, y) = (self.trie.rank(left), self.trie.rank(right));
        self.scratch.clear();
        merge_alone(bytes, self.table, &mut self.scratch)?;
        let ok = self.scratch == [x, y];
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(key, ok);
        Ok(ok)
    }
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
    prefixes: &Trie,
    out: &mut Vec<Rank>,
) -> Result<(), usize> {
    encode_with_window(piece, table, prefixes, out, DEAD_WINDOW)
}

fn encode_with_window(
    piece: &[u8],
    table: &MergeTable,
    prefixes: &Trie,
    out: &mut Vec<Rank>,
    window: usize,
) -> Result<(), usize> {
    let n = piece.len();
    let base = out.len();
    let mut dead = Dead::new(n, window)?;
    let mut checks = Checks::new(table, prefixes);
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
                    None => checks.alone(token, &piece[..end])?,
                    Some(left) => {
                        let start = pos - prefixes.len(left);
                        checks.compatible(left, token, &piece[start..end])?
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
        let Some(prefixes) = Trie::new(ranks, &table.byte_ids) else {
            return Err(TestCaseError::fail("no trie"));
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
