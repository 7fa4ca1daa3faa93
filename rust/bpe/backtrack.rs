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
//!   beyond them falls back to the bucket merge), a small cache of pair checks, the
//!   tokens' merge histories and the trie below. 16 MiB of `'a'` went from 16.5-17 bytes per
//!   input byte (the bucket merge: a node, a bucket entry and heap per byte) to the tokens (4
//!   bytes each) plus ~2 MB.
//! - The tokens starting at a position come from one walk down a trie (every prefix that is a
//!   token is kept, so a failed try takes the next shorter one without walking again: the
//!   re-walk from the root was the hottest loop of space-newline runs). The trie holds only
//!   the tokens whose adjacent byte pairs all occur in the chunk (a 64 Ki-bit pair set of the
//!   chunk, then one sequential pass over every token's bytes kept side by side with the merge
//!   table, [`Tokens`], 1-3 MB, most tokens ruled out by their first pair alone): every token
//!   that can occur in the chunk, so the walks find the same tokens, and the trie is a few
//!   hundred nodes for one-letter or whitespace runs. A chunk whose survivors exceed 1/8 of the
//!   vocabulary (the hostile every-pair piece) takes the trie of every token instead, built
//!   once per encoding and kept with the merge table (9 bytes a node, gpt2 0.9 MB, cl100k 2.0
//!   MB, o200k 3.8 MB), as all chunks did before: its first build cost the first long chunk
//!   of a process 10-60 ms (sorting every token), which was most of every cold pathological
//!   cell (cl100k `'a'` cold 35.7 ms, warm 8.7). Single bytes are always in either trie (with
//!   stand-in ids for bytes a vocabulary lacks). The full trie replaced an anchored
//!   leftmost-longest aho-corasick automaton built per chunk over the tokens whose byte pairs
//!   occur in the chunk: ~170 bytes a state (the contiguous NFA, its smallest form), so a
//!   hostile piece holding nearly every byte pair cost up to 37 MB (cl100k) / 57 MB (o200k) in
//!   one call. Measured then (peak RSS VmHWM growth of one `encode_to_numpy`, subprocess, a
//!   1 MiB piece chaining every lower-case letter token, load 6): cl100k 15.9 -> 12.3 MB, o200k
//!   20.5 -> 8.1 MB (bound 17 MB), gpt2 14.8 -> 14.9. A filtered trie is at most the full one.
//! - Pair checks walk the two tokens' own merges instead of merging their bytes (see
//!   [`Checks::compatible`]: exact, it is the merge's own order, with tiktoken's leftmost rule
//!   on ties): each token's merge is done once per call (its steps: rank, first and last
//!   part), then a check is one look-up of the pair across the border each time a side of it
//!   changes. Results are kept in a direct-mapped table of 16 k pairs (a 64 k-entry hash map
//!   missed the CPU cache on every look-up when few pairs repeat).
//! - Pathological 1 MB inputs (`benches/texts.py`), before the filtered trie (long14): CPU ms
//!   in one process, median of 3 (the first call included), pinned, load 3.6: gpt2 'a' 11.3,
//!   digits 158; cl100k 'a' 9.5, spaces 6.0, space-newline 38; o200k 'a' 11.9, spaces 6.5,
//!   space-newline 47 (warm). Issue 15, cold (`benches/cold.py --only pathological --procs 3
//!   --cpu 0 --peers fastllm`: fresh process, first call, `encode_ordinary`, median of 3),
//!   main and this run back to back at load 5-6, wall ms main -> this (CPU ms in brackets):
//!   gpt2 'a' 56.8 -> 23.1 (15.1), digits 491 -> 210 (144), spaces 42 -> 29, space-newline
//!   49 -> 39; cl100k 'a' 80 -> 19.0 (16.3), spaces 70 -> 13.8, space-newline 135 -> 66 (48),
//!   cjk_char 87 -> 40; o200k 'a' 156 -> 25.5 (16.1), spaces 107 -> 18.1, space-newline 236 ->
//!   100 (70), cjk_char 156 -> 39; cjk_word, punctuation, cl100k/o200k digits equal within the
//!   noise (they are bound by the output: ~20 ms of the list of ~800 k ints, compare
//!   `encode_to_numpy`: gpt2 spaces 29.4 -> 9.1 ms). 3 of 21 cells <= 20 ms at that load
//!   (0 for main); doubling <= 2.2x 15 of 21 (17 for main: the first call's fixed cost, now
//!   gone, flattered the 1 MB figure). Warm (7 calls in one process, min CPU ms, load 6-9):
//!   unchanged for 'a' / spaces (9-12), space-newline cl100k 57 -> 53, o200k 57 -> 51, gpt2
//!   digits 348 -> 175.
//! - Tried and dropped: checking a pair without merging its bytes by undoing both tokens' last
//!   merges (the `bpe` crate's `is_valid_token_pair`). It is exact only when every merge makes a
//!   token ranked above its (multi-byte) parts; gpt2 / cl100k / o200k each have 22-71 k splits
//!   that break that. The walk of the two tokens' own merges above is exact without that
//!   assumption; it halved gpt2's 1 MB of random digits, still ~7x over 20 ms (the bucket
//!   merge took ~45 ms but needs 16.5 bytes a byte, over the memory bound).

use super::{
    merge_heap, merge_linear, merge_short, MergeTable, HEAP_THRESHOLD, NO_RANK, OUT_OF_MEMORY,
    STACK_PARTS,
};
use crate::vocab::Rank;
#[cfg(test)]
use crate::vocab::Ranks;

/// Chunks of at least this many bytes (after the cuts where nothing merges) are encoded here;
/// shorter ones by the bucket merge.
pub const BACKTRACK_MIN: usize = 1 << 18;

/// Positions remembered as dead (bits): 1 MB. Stepping back further than this (never seen with
/// real vocabularies, where a step back goes a token or two) falls back to the bucket merge.
const DEAD_WINDOW: usize = 1 << 23;

/// Pair checks remembered: a direct-mapped table of `1 << CACHE_BITS` entries (256 KB, mostly
/// in cache; a hash map of 64 k entries missed the cache on every look-up of high-entropy
/// pieces, where few pairs repeat).
const CACHE_BITS: u32 = 14;
const CACHE_SIZE: usize = 1 << CACHE_BITS;
/// No pair of nodes (node ids are below `u32::MAX`).
const NO_PAIR: u64 = u64::MAX;

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

/// Every token of two or more bytes side by side (in the vocabulary's own order, no sort), kept
/// with the merge table from the start: the tokens a long chunk can hold are picked from it by
/// one sequential pass (see [`Tokens::trie_for`]).
pub struct Tokens {
    bytes: Vec<u8>,
    /// The end of each token in `bytes` (the start is the previous one's end).
    ends: Vec<u32>,
    ranks: Vec<Rank>,
    /// The first two bytes of each token: most tokens are ruled out for a chunk by this array
    /// alone, without reading their bytes.
    heads: Vec<u16>,
    /// Some token is longer than `TRIE_MAX` (or the vocabulary is too big): no trie at all.
    too_long: bool,
}

/// The byte pairs that occur in a chunk, one bit each.
pub struct Pairs(Box<[u64; 1024]>);

impl Pairs {
    pub fn of(chunk: &[u8]) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        // A pair equal to the one before is not set again (runs of one pair, 'a' * n, would
        // otherwise wait on their own store at every byte).
        let mut prev = usize::MAX;
        for w in chunk.windows(2) {
            let bit = (usize::from(w[0]) << 8) | usize::from(w[1]);
            if bit != prev {
                prev = bit;
                bits[bit >> 6] |= 1 << (bit & 63);
            }
        }
        Pairs(bits)
    }

    #[inline]
    fn has_pair(&self, pair: u16) -> bool {
        let bit = usize::from(pair);
        self.0[bit >> 6] & (1 << (bit & 63)) != 0
    }

    #[inline]
    fn has(&self, a: u8, b: u8) -> bool {
        self.has_pair(u16::from_be_bytes([a, b]))
    }

    /// Whether every pair of `other` is one of these.
    pub fn covers(&self, other: &Pairs) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(a, b)| b & !a == 0)
    }
}

/// A chunk's survivors above this share of the vocabulary take the trie of every token instead
/// (built once per encoding and kept), so a text of many hostile chunks sorts the vocabulary once.
const FILTERED_MAX_SHARE: usize = 8;

impl Tokens {
    pub fn new<'r>(tokens: impl Iterator<Item = (&'r [u8], Rank)>, count: usize) -> Self {
        let mut all = Tokens {
            bytes: Vec::new(),
            ends: Vec::with_capacity(count),
            ranks: Vec::with_capacity(count),
            heads: Vec::with_capacity(count),
            too_long: false,
        };
        for (t, r) in tokens {
            if t.len() > TRIE_MAX {
                all.too_long = true;
            }
            if t.len() > 1 {
                all.bytes.extend_from_slice(t);
                all.ends.push(all.bytes.len() as u32);
                all.ranks.push(r);
                all.heads.push(u16::from_be_bytes([t[0], t[1]]));
            }
        }
        all.too_long |= u32::try_from(all.bytes.len()).is_err();
        all.bytes.shrink_to_fit();
        all
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], Rank)> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .zip(&self.ranks)
            .map(|((a, &b), &r)| {
                (
                    self.bytes.get(a as usize..b as usize).unwrap_or_default(),
                    r,
                )
            })
    }

    /// The trie of every token (`None`: a token too long for it, or no memory).
    pub fn full_trie(&self, byte_ids: &[Rank; 256]) -> Option<Trie> {
        if self.too_long {
            return None;
        }
        Trie::build(self.iter().collect(), byte_ids)
    }

    /// The trie of the tokens whose byte pairs all occur in `pairs` (every token that can occur
    /// in a chunk with these pairs, so the search over the chunk sees the same longest tokens as
    /// with every token), or `None` when they are more than 1 / `FILTERED_MAX_SHARE` of the
    /// vocabulary (the caller takes the full trie) or there is no trie.
    pub fn trie_for(&self, pairs: &Pairs, byte_ids: &[Rank; 256]) -> Option<Trie> {
        self.filtered(pairs, byte_ids, self.ranks.len() / FILTERED_MAX_SHARE)
    }

    /// [`Tokens::trie_for`] with at most `limit` tokens besides the single bytes.
    fn filtered(&self, pairs: &Pairs, byte_ids: &[Rank; 256], limit: usize) -> Option<Trie> {
        if self.too_long {
            return None;
        }
        let mut kept: Vec<(&[u8], Rank)> = Vec::new();
        for ((t, r), &head) in self.iter().zip(&self.heads) {
            if pairs.has_pair(head) && t.windows(2).all(|w| pairs.has(w[0], w[1])) {
                if kept.len() >= limit {
                    return None;
                }
                kept.push((t, r));
            }
        }
        Trie::build(kept, byte_ids)
    }
}

impl Trie {
    /// `None` when some token is longer than `TRIE_MAX` or memory runs out (the caller keeps
    /// the bucket merge).
    #[cfg(test)]
    pub fn new(ranks: &Ranks, byte_ids: &[Rank; 256]) -> Option<Self> {
        Tokens::new(ranks.iter().map(|(t, &r)| (t.as_slice(), r)), ranks.len()).full_trie(byte_ids)
    }

    /// The trie of `tokens` (each of two or more bytes, at most `TRIE_MAX`) and the single bytes.
    fn build(mut tokens: Vec<(&[u8], Rank)>, byte_ids: &[Rank; 256]) -> Option<Self> {
        tokens.try_reserve_exact(256).ok()?;
        for (b, &id) in byte_ids.iter().enumerate() {
            tokens.push((ALL_BYTES.get(b..=b)?, id));
        }
        // Sorted by bytes, comparing first the first 8 bytes packed into an integer (kept beside
        // each token, so most comparisons read no token bytes).
        let mut keyed: Vec<(u64, &[u8], Rank)> = Vec::new();
        keyed.try_reserve_exact(tokens.len()).ok()?;
        keyed.extend(tokens.into_iter().map(|(t, r)| {
            let mut head = [0u8; 8];
            let n = t.len().min(8);
            head[..n].copy_from_slice(&t[..n]);
            (u64::from_be_bytes(head), t, r)
        }));
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let tokens: Vec<(&[u8], Rank)> = keyed.into_iter().map(|(_, t, r)| (t, r)).collect();
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

    /// Every token that `text[at..end]` starts with, shortest first, as (node, length), into
    /// `found` (cleared first): one walk down serves every try at a position.
    #[inline]
    fn starting(&self, text: &[u8], at: usize, end: usize, found: &mut Vec<(u32, usize)>) {
        found.clear();
        let Some((&b, rest)) = text.get(at..end).and_then(|bytes| bytes.split_first()) else {
            return;
        };
        let mut node = self.root[usize::from(b)] as usize;
        if node == 0 {
            return;
        }
        if self.rank(node as u32) != NO_RANK {
            found.push((node as u32, 1));
        }
        for (i, &b) in rest.iter().enumerate() {
            let Some(c) = self.child(node, b) else {
                break;
            };
            node = c;
            if self.rank(node as u32) != NO_RANK {
                found.push((node as u32, i + 2));
            }
        }
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

/// Merge steps remembered (12 bytes each) before the store of merge histories starts over.
const HISTORY_MAX: usize = 1 << 18;

/// One step of a token's merge on its own: the rank merged, then the first and last part.
#[derive(Clone, Copy)]
struct Step {
    rank: Rank,
    first: Rank,
    last: Rank,
}

/// The two checks of the search, with what they have learnt in this call.
struct Checks<'a> {
    table: &'a MergeTable,
    trie: &'a Trie,
    /// Results of pair checks, direct-mapped by a hash of the pair of nodes: (pair, result).
    cache: Vec<(u64, bool)>,
    /// For each node, 1 + its index in `histories` (0: not merged yet in this call).
    seen: Vec<u32>,
    /// Each token's merge on its own: (start in `steps`, steps, merges to itself).
    histories: Vec<(u32, u32, bool)>,
    steps: Vec<Step>,
    scratch: Vec<Rank>,
    pair_ranks: Vec<Rank>,
}

impl<'a> Checks<'a> {
    fn new(table: &'a MergeTable, trie: &'a Trie) -> Result<Self, usize> {
        let mut cache = Vec::new();
        cache
            .try_reserve_exact(CACHE_SIZE)
            .map_err(|_| OUT_OF_MEMORY)?;
        cache.resize(CACHE_SIZE, (NO_PAIR, false));
        let mut seen = Vec::new();
        seen.try_reserve_exact(trie.ranks.len())
            .map_err(|_| OUT_OF_MEMORY)?;
        seen.resize(trie.ranks.len(), 0);
        Ok(Checks {
            table,
            trie,
            cache,
            seen,
            histories: Vec::new(),
            steps: Vec::new(),
            scratch: Vec::new(),
            pair_ranks: Vec::new(),
        })
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

    /// The merge of the token at `node` (bytes `bytes`) on its own, step by step (tiktoken's
    /// order: the lowest rank, the leftmost of equal ones), remembered for the call.
    fn history(&mut self, node: u32, bytes: &[u8]) -> Result<(u32, u32, bool), usize> {
        let slot = self.seen.get(node as usize).copied().unwrap_or(0);
        if let Some(&h) = slot
            .checked_sub(1)
            .and_then(|i| self.histories.get(i as usize))
        {
            return Ok(h);
        }
        if self.steps.len() + bytes.len() > HISTORY_MAX {
            self.steps.clear();
            self.histories.clear();
            self.seen.fill(0);
        }
        self.histories.try_reserve(1).map_err(|_| OUT_OF_MEMORY)?;
        self.steps
            .try_reserve(bytes.len())
            .map_err(|_| OUT_OF_MEMORY)?;
        let start = self.steps.len() as u32;
        let table = self.table;
        let parts = &mut self.scratch;
        parts.clear();
        parts.extend(bytes.iter().map(|&b| table.byte_ids[usize::from(b)]));
        // The rank of each pair of neighbouring parts.
        let ranks = &mut self.pair_ranks;
        ranks.clear();
        ranks.extend(parts.windows(2).map(|w| table.pair(w[0], w[1])));
        loop {
            let mut best = (NO_RANK, 0);
            for (i, &rank) in ranks.iter().enumerate() {
                if rank < best.0 {
                    best = (rank, i);
                }
            }
            let (rank, at) = best;
            if rank == NO_RANK {
                break;
            }
            parts[at] = rank;
            parts.remove(at + 1);
            ranks.remove(at);
            if at + 1 < parts.len() {
                ranks[at] = table.pair(parts[at], parts[at + 1]);
            }
            if at > 0 {
                ranks[at - 1] = table.pair(parts[at - 1], parts[at]);
            }
            self.steps.push(Step {
                rank,
                first: parts[0],
                last: parts[parts.len() - 1],
            });
        }
        let whole = *parts == [self.trie.rank(node)];
        let h = (start, self.steps.len() as u32 - start, whole);
        self.histories.push(h);
        if let Some(slot) = self.seen.get_mut(node as usize) {
            *slot = self.histories.len() as u32;
        }
        Ok(h)
    }

    /// Whether the tokens at nodes `left` and `right` (whose bytes are `bytes`, `split` of them
    /// the left's) are compatible. Without merging their bytes: until a merge crosses the
    /// border, the merge of the two runs each token's own merge, interleaved by rank (the
    /// left's first on a tie); the pair across the border (the left's last part, the right's
    /// first) merges when its rank is below the left's next step and at most the right's next
    /// (tiktoken's leftmost rule), so the check walks the two histories, looking up that pair
    /// only when a side of it changes.
    fn compatible(
        &mut self,
        left: u32,
        right: u32,
        bytes: &[u8],
        split: usize,
    ) -> Result<bool, usize> {
        let key = (u64::from(left) << 32) | u64::from(right);
        let at = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CACHE_BITS)) as usize;
        if let Some(&(k, ok)) = self.cache.get(at) {
            if k == key {
                return Ok(ok);
            }
        }
        let (x, y) = bytes.split_at(split.min(bytes.len()));
        let (Some(&xl), Some(&yf)) = (x.last(), y.first()) else {
            return Ok(false);
        };
        let hx = self.history(left, x)?;
        let hy = self.history(right, y)?;
        // A store that started over in `history(right)` lost the left's steps: take them again.
        let hx = if self.seen.get(left as usize).is_some_and(|&s| s != 0) {
            hx
        } else {
            self.history(left, x)?
        };
        let ok = hx.2 && hy.2 && {
            let table = self.table;
            let steps = &self.steps;
            let side = |h: (u32, u32, bool)| {
                steps
                    .get(h.0 as usize..(h.0 + h.1) as usize)
                    .unwrap_or_default()
            };
            let (sx, sy) = (side(hx), side(hy));
            let (mut i, mut j) = (0, 0);
            let mut p = table.byte_ids[usize::from(xl)];
            let mut q = table.byte_ids[usize::from(yf)];
            let mut border = table.pair(p, q);
            loop {
                let mx = sx.get(i).map_or(NO_RANK, |s| s.rank);
                let my = sy.get(j).map_or(NO_RANK, |s| s.rank);
                if border != NO_RANK && border < mx && border <= my {
                    break false;
                }
                if mx == NO_RANK && my == NO_RANK {
                    break true;
                }
                if mx <= my {
                    let last = sx.get(i).map_or(p, |s| s.last);
                    i += 1;
                    if last != p {
                        p = last;
                        border = table.pair(p, q);
                    }
                } else {
                    let first = sy.get(j).map_or(q, |s| s.first);
                    j += 1;
                    if first != q {
                        q = first;
                        border = table.pair(p, q);
                    }
                }
            }
        };
        if let Some(entry) = self.cache.get_mut(at) {
            *entry = (key, ok);
        }
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
    let mut checks = Checks::new(table, prefixes)?;
    let mut pos = 0;
    // The tokens starting at `pos` not tried yet, the longest last.
    let mut tries: Vec<(u32, usize)> = Vec::new();
    tries.try_reserve(TRIE_MAX).map_err(|_| OUT_OF_MEMORY)?;
    prefixes.starting(piece, 0, n, &mut tries);
    while pos < n {
        let last = out[base..].last().copied();
        if let Some((token, len)) = tries.pop() {
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
                        let split = prefixes.len(left);
                        checks.compatible(left, token, &piece[pos - split..end], split)?
                    }
                };
            if fits {
                out.try_reserve(1).map_err(|_| OUT_OF_MEMORY)?;
                out.push(token);
                pos = end;
                prefixes.starting(piece, pos, n, &mut tries);
            }
            continue;
        }
        // No token from here fits: `pos` is no boundary; step back over the last token and try
        // the shorter ones in its place.
        dead.mark(pos);
        let Some(left) = last else {
            break;
        };
        out.pop();
        let len = prefixes.len(left);
        pos -= len;
        prefixes.starting(piece, pos, pos + len - 1, &mut tries);
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
            // By design: a vocabulary with a token longer than `TRIE_MAX` (random merges of
            // merged tokens double their length) has no trie; its long pieces keep the bucket
            // merge, which bpe.rs's `random_vocabularies_merge_like_the_reference` checks.
            prop_assert!(
                ranks.keys().any(|t| t.len() > TRIE_MAX),
                "no trie for a vocabulary whose tokens all fit in one"
            );
            return Ok(());
        };
        let (mut ours, mut reference) = (vec![7], vec![7]);
        prop_assert_eq!(merge_alone(piece, &table, &mut reference), Ok(()));
        prop_assert_eq!(
            encode_with_window(piece, &table, &prefixes, &mut ours, window),
            Ok(())
        );
        prop_assert_eq!(&ours, &reference);
        // The same with the trie of only the tokens whose byte pairs occur in the piece.
        let tokens = Tokens::new(ranks.iter().map(|(t, &r)| (t.as_slice(), r)), ranks.len());
        let Some(filtered) = tokens.filtered(&Pairs::of(piece), &table.byte_ids, usize::MAX) else {
            return Err(TestCaseError::fail("no filtered trie"));
        };
        let mut ours = vec![7];
        prop_assert_eq!(
            encode_with_window(piece, &table, &filtered, &mut ours, window),
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
    fn a_vocabulary_with_a_token_too_long_for_a_trie() -> Result<(), TestCaseError> {
        // Found by `search_equals_the_merge` (its merges double a token past `TRIE_MAX`): such
        // a vocabulary has no trie by design, which `check` now accepts instead of failing.
        let ranks = vocabulary(&[
            (0, 1),
            (1, 7),
            (287, 281),
            (13, 8),
            (6, 146),
            (163, 32),
            (6, 78),
            (0, 217),
            (0, 187),
            (346, 11),
            (15, 106),
            (262, 0),
            (0, 259),
            (43, 3),
            (3, 307),
            (893, 506),
            (523, 517),
            (812, 622),
            (432, 88),
            (746, 455),
            (796, 918),
            (370, 773),
            (816, 568),
            (683, 640),
            (743, 454),
            (614, 263),
            (751, 31),
            (896, 681),
            (414, 636),
            (964, 605),
            (637, 838),
            (83, 752),
            (979, 105),
            (73, 763),
            (305, 504),
            (25, 218),
            (321, 178),
            (196, 285),
            (889, 915),
            (708, 218),
            (733, 4),
            (279, 482),
            (277, 756),
            (803, 855),
            (647, 698),
            (708, 592),
            (169, 567),
            (70, 580),
            (865, 376),
            (892, 925),
            (464, 107),
            (773, 274),
            (767, 166),
            (816, 466),
            (989, 44),
            (889, 225),
            (86, 915),
            (499, 531),
            (970, 333),
            (272, 463),
            (316, 194),
            (725, 440),
            (470, 408),
            (250, 554),
        ]);
        assert!(ranks.keys().any(|t| t.len() > TRIE_MAX));
        let piece: Vec<u8> = b"abc\0".iter().copied().cycle().take(188).collect();
        check(&ranks, &piece, 4)?;
        check(&ranks, &piece, DEAD_WINDOW)
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
