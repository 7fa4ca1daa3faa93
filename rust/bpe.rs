//! Byte-pair merging of one pre-tokenized piece, exactly as tiktoken merges it: repeatedly merge
//! the adjacent pair whose concatenation has the lowest rank, the leftmost among equal ranks.
//!
//! Design notes (measured on 2 cores, 2 MB of English / 1.5 MB of non-Latin text):
//! - 89% of English pieces are whole tokens, so a piece is looked up whole first; pieces of at
//!   most 15 bytes by a packed `u128` key (one multiply-hash, one compare), a one-byte piece by
//!   table read.
//! - Merging works on token ids, not bytes: `MergeTable` maps a pair of token ids to the id of
//!   their concatenation (which is also its rank). Every part of a piece is a token at every step
//!   (single bytes at first, then merges of tokens), so the pair table answers exactly what
//!   tiktoken's byte-slice lookup answers, with one u64 hash instead of hashing a byte slice.
//!   A single byte that the vocabulary lacks gets a stand-in id (`MISSING_BYTE`), so such
//!   vocabularies take the same linear paths (they took a quadratic byte-slice merge, kept as
//!   the tests' reference: a 1 MB piece never finished; now the same tokens as tiktoken).
//! - The first lookups of a merge (byte + byte) read a dense 256x256 table that stays in cache:
//!   over half the pair lookups on non-Latin text.
//! - Short pieces keep tiktoken's scheme (an array of parts and a linear scan for the lowest
//!   rank): quadratic, but with a tiny constant and no allocation below `STACK_PARTS` bytes.
//! - `PieceMemo` remembers, for one call only, the tokens of pieces that needed merging: real
//!   text repeats its words (68-73% of merged pieces in non-Latin text, 40-64% in English and
//!   Python, within 150 KB). It starts empty on every call, so it speeds up unseen text and never
//!   a repeat pass. Non-Latin went from 3.0x to 4.3x tiktoken with it.
//! - Long pieces (a megabyte of `'a'`, a long CJK run) merge through per-rank buckets in rank
//!   order, left to right within a rank (tiktoken's lowest-rank-then-leftmost order), over one
//!   8-byte node per part: linear-ish, never quadratic. A pair ranked below the bucket being
//!   merged (possible when a longer token predates its parts) puts the rest of the bucket back.
//! - Tried and dropped (issue 15): `merge_short` over fixed stack arrays with parts unlinked
//!   (next/prev bytes) instead of shifted, and a branch-free minimum over a multiple of 8 ranks.
//!   In-process interleaved A/B (CPU time, 2 MB texts): cl100k non-Latin 0.96-1.04x, English
//!   0.94-1.00x, gpt2 non-Latin 0.95x: no gain (the full scan costs what the `memmove`s saved;
//!   the target is SSE2, without an unsigned 32-bit min).

//! - Long pieces are first cut between two bytes that no token contains side by side (exact: no
//!   merge can cross such a cut), so runs of bytes that never merge cost only their tokens.
//!   Chunks of at least `backtrack::BACKTRACK_MIN` bytes that remain (16 MB of `'a'`, `'hello'`
//!   repeated) go to `backtrack`: the same tokens, found left to right with memory for the
//!   tokens only (see its notes).
//! - `MergeTable::new` is linear in the vocabulary's size: tokens over 128 bytes find their
//!   splits by rolling hashes (a 1 MB token took 77 s with a hash of every prefix and suffix).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};

use std::sync::OnceLock;

use rustc_hash::FxHashMap;

use crate::vocab::{Rank, Ranks};

mod backtrack;

const NO_RANK: Rank = Rank::MAX;

/// The id standing in for byte `b` when the vocabulary lacks it: `MISSING_BYTE + b`, above every
/// id a vocabulary may use (`vocab::MAX_ID`) and below `NO_RANK`. Merging treats it as a part
/// like any other (a pair with it has the rank of its concatenation when that is a token, as
/// tiktoken's byte-slice lookup has), so vocabularies lacking single bytes merge by the same
/// linear paths; such an id left in a piece's tokens is reported as the missing byte.
const MISSING_BYTE: Rank = Rank::MAX - 512;

/// The `Err` of [`encode_piece`] when the state of a long piece could not be allocated.
pub const OUT_OF_MEMORY: usize = usize::MAX;

/// Pieces at least this long use the heap merge.
pub const HEAP_THRESHOLD: usize = 256;

/// Pieces shorter than this merge in stack arrays.
const STACK_PARTS: usize = 64;

/// Pair of token ids → id of their concatenation, plus the id of each single byte, plus every
/// token of at most `SHORT_MAX` bytes keyed by its bytes packed into a `u128`.
pub struct MergeTable {
    byte_ids: [Rank; 256],
    /// Rank of merging byte `a` with byte `b` at `(a << 8) | b`: the first lookups of every
    /// merge come from this 256 KB table (cache-resident) instead of the hash map (over half
    /// the lookups on non-Latin text, measured).
    byte_pairs: Vec<Rank>,
    pairs: FxHashMap<u64, Rank>,
    short: FxHashMap<u128, Rank>,
    complete: bool,
    /// Bit `(a << 8) | b` is set when some token of two or more bytes contains byte `a`
    /// followed by byte `b`. Where it is clear, no merge can ever join the bytes on either side,
    /// so a long piece is cut there and its halves merged separately (exactly the same tokens:
    /// no pair across the cut has a rank, so the two halves' merges never compete).
    crossable: Vec<u64>,
    /// Every token of two or more bytes side by side, for the tries of the long-piece search.
    tokens: backtrack::Tokens,
    /// Every token in a trie, built on the first long chunk whose own trie would hold more
    /// than a share of the vocabulary (part of the encoding's fixed tables: see `backtrack`).
    trie: OnceLock<Option<backtrack::Trie>>,
    /// The length of each token, for vocabularies lacking single bytes only (to say where a
    /// missing byte is).
    lens: FxHashMap<Rank, u32>,
}

/// Tokens and pieces up to this many bytes are looked up by a packed `u128` key (bytes in the
/// low 15 bytes, the length in the top byte): one multiply-hash and one compare instead of
/// hashing a slice and `memcmp` (89% of English pieces are whole tokens, almost all this short).
const SHORT_MAX: usize = 15;

#[inline]
fn short_key(bytes: &[u8]) -> u128 {
    let mut buf = [0u8; 16];
    let n = bytes.len().min(SHORT_MAX);
    buf[..n].copy_from_slice(&bytes[..n]);
    buf[15] = n as u8;
    u128::from_le_bytes(buf)
}

#[inline]
fn pair_key(left: Rank, right: Rank) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

/// Tokens longer than this have their splits found through rolling hashes (linear in the
/// token's length) instead of hashing every prefix and suffix (quadratic: a 1 MB token took 77 s).
const DIRECT_SPLIT_MAX: usize = 128;

/// Polynomial hashes of byte strings modulo the Mersenne prime 2^61 - 1, with a base drawn at
/// random per process (so no input can be built in advance to collide).
struct RollingHash {
    base: u64,
}

impl RollingHash {
    const M: u64 = (1 << 61) - 1;

    fn new() -> Self {
        use std::hash::BuildHasher;
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        RollingHash {
            base: seed % (Self::M - 512) + 257,
        }
    }

    #[inline]
    fn mul(a: u64, b: u64) -> u64 {
        let p = u128::from(a) * u128::from(b);
        let s = (p as u64 & Self::M) + (p >> 61) as u64;
        if s >= Self::M {
            s - Self::M
        } else {
            s
        }
    }

    #[inline]
    fn push(&self, h: u64, byte: u8) -> u64 {
        let s = Self::mul(h, self.base) + u64::from(byte) + 1;
        if s >= Self::M {
            s - Self::M
        } else {
            s
        }
    }

    fn of(&self, bytes: &[u8]) -> u64 {
        bytes.iter().fold(0, |h, &b| self.push(h, b))
    }

    /// The hash of `bytes[a..b]` from its prefix hashes and the powers of the base.
    #[inline]
    fn range(prefix: &[u64], powers: &[u64], a: usize, b: usize) -> u64 {
        let high = Self::mul(prefix[a], powers[b - a]);
        let low = prefix[b];
        if low >= high {
            low - high
        } else {
            low + Self::M - high
        }
    }
}

/// Every `(left id, right id) -> id` split of every token whose two sides are both tokens, in
/// time linear in the vocabulary's total size: short tokens by direct lookups, long ones by
/// rolling hashes (a side of at most `DIRECT_SPLIT_MAX` bytes is also checked byte for byte; a
/// longer side is trusted to its 61-bit hash and length, with a random base).
fn token_pairs(ranks: &Ranks, byte_ids: &[Rank; 256]) -> FxHashMap<u64, Rank> {
    // A part is a token or a single byte (a missing byte has its stand-in id).
    let part = |bytes: &[u8]| -> Option<Rank> {
        match bytes {
            [b] => Some(byte_ids[usize::from(*b)]),
            _ => ranks.get(bytes).copied(),
        }
    };
    let mut pairs = FxHashMap::default();
    pairs.reserve(ranks.len() * 3);
    let has_long = ranks.keys().any(|t| t.len() > DIRECT_SPLIT_MAX);
    let hasher = RollingHash::new();
    let by_hash: FxHashMap<(u64, usize), Rank> = if has_long {
        ranks
            .iter()
            .map(|(t, &id)| ((hasher.of(t), t.len()), id))
            .collect()
    } else {
        FxHashMap::default()
    };
    let (mut prefix, mut powers) = (Vec::new(), Vec::new());
    for (token, &id) in ranks {
        let n = token.len();
        if n <= DIRECT_SPLIT_MAX {
            for cut in 1..n {
                let (left, right) = token.split_at(cut);
                if let (Some(l), Some(r)) = (part(left), part(right)) {
                    pairs.insert(pair_key(l, r), id);
                }
            }
            continue;
        }
        prefix.clear();
        powers.clear();
        prefix.push(0);
        powers.push(1);
        for &b in token {
            let (h, p) = (prefix[prefix.len() - 1], powers[powers.len() - 1]);
            prefix.push(hasher.push(h, b));
            powers.push(RollingHash::mul(p, hasher.base));
        }
        let side = |a: usize, b: usize| -> Option<Rank> {
            let bytes = &token[a..b];
            if b - a <= DIRECT_SPLIT_MAX {
                return part(bytes);
            }
            let h = RollingHash::range(&prefix, &powers, a, b);
            by_hash.get(&(h, b - a)).copied()
        };
        for cut in 1..n {
            if let (Some(l), Some(r)) = (side(0, cut), side(cut, n)) {
                pairs.insert(pair_key(l, r), id);
            }
        }
    }
    pairs
}

impl MergeTable {
    /// Linear in the vocabulary's total size (see [`token_pairs`]).
    pub fn new(ranks: &Ranks) -> Self {
        let mut byte_ids = [NO_RANK; 256];
        let mut complete = true;
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = match ranks.get([b as u8].as_slice()) {
                Some(&id) => id,
                None => {
                    complete = false;
                    MISSING_BYTE + b as Rank
                }
            };
        }
        let pairs = token_pairs(ranks, &byte_ids);
        let lens = if complete {
            FxHashMap::default()
        } else {
            ranks.iter().map(|(t, &id)| (id, t.len() as u32)).collect()
        };
        let mut crossable = vec![0u64; 1024];
        for token in ranks.keys() {
            for w in token.windows(2) {
                let bit = (usize::from(w[0]) << 8) | usize::from(w[1]);
                crossable[bit >> 6] |= 1 << (bit & 63);
            }
        }
        let short = ranks
            .iter()
            .filter(|(token, _)| token.len() <= SHORT_MAX)
            .map(|(token, &id)| (short_key(token), id))
            .collect();
        let byte_pairs = (0..=u16::MAX)
            .map(|ab| {
                let [a, b] = ab.to_be_bytes();
                pairs
                    .get(&pair_key(
                        byte_ids[usize::from(a)],
                        byte_ids[usize::from(b)],
                    ))
                    .copied()
                    .unwrap_or(NO_RANK)
            })
            .collect();
        MergeTable {
            byte_pairs,
            byte_ids,
            pairs,
            short,
            complete,
            crossable,
            tokens: backtrack::Tokens::new(
                ranks.iter().map(|(t, &r)| (t.as_slice(), r)),
                ranks.len(),
            ),
            trie: OnceLock::new(),
            lens,
        }
    }

    /// The trie of every token, built on first use (`None`: a token too long for it).
    fn trie(&self) -> Option<&backtrack::Trie> {
        self.trie
            .get_or_init(|| self.tokens.full_trie(&self.byte_ids))
            .as_ref()
    }

    /// For a vocabulary lacking single bytes: `Err(position)` of the first missing byte left in
    /// `tokens` (the tokens of `piece` from its start), which no merge took into a token.
    fn check_missing(&self, tokens: &[Rank]) -> Result<(), usize> {
        let mut at = 0;
        for &t in tokens {
            if t >= MISSING_BYTE {
                return Err(at);
            }
            at += self.lens.get(&t).map_or(1, |&l| l as usize);
        }
        Ok(())
    }

    /// Whether some token contains byte `a` followed by byte `b`.
    #[inline]
    fn crossable(&self, a: u8, b: u8) -> bool {
        let bit = (usize::from(a) << 8) | usize::from(b);
        self.crossable
            .get(bit >> 6)
            .is_some_and(|w| w & (1 << (bit & 63)) != 0)
    }

    /// The rank of `piece` if it is a token.
    #[inline]
    fn whole(&self, piece: &[u8], ranks: &Ranks) -> Option<Rank> {
        if piece.len() <= SHORT_MAX {
            self.short.get(&short_key(piece)).copied()
        } else {
            ranks.get(piece).copied()
        }
    }

    #[inline]
    fn byte_pair(&self, a: u8, b: u8) -> Rank {
        self.byte_pairs
            .get((usize::from(a) << 8) | usize::from(b))
            .copied()
            .unwrap_or(NO_RANK)
    }

    #[inline]
    fn pair(&self, left: Rank, right: Rank) -> Rank {
        self.pairs
            .get(&pair_key(left, right))
            .copied()
            .unwrap_or(NO_RANK)
    }
}

/// Appends the tokens of `piece` to `out`. Returns `Err(position)` for a byte position whose single
/// byte is not in the vocabulary (only possible with a user-supplied vocabulary), and
/// `Err(OUT_OF_MEMORY)` when a long piece's merge state cannot be allocated.
pub fn encode_piece(
    piece: &[u8],
    ranks: &Ranks,
    table: &MergeTable,
    out: &mut Vec<Rank>,
) -> Result<(), usize> {
    if !table.complete {
        let base = out.len();
        merge_piece(piece, ranks, table, out)?;
        let checked = table.check_missing(out.get(base..).unwrap_or_default());
        if checked.is_err() {
            out.truncate(base);
        }
        return checked;
    }
    merge_piece(piece, ranks, table, out)
}

/// [`encode_piece`] before the check for missing bytes.
fn merge_piece(
    piece: &[u8],
    ranks: &Ranks,
    table: &MergeTable,
    out: &mut Vec<Rank>,
) -> Result<(), usize> {
    match piece {
        [] => return Ok(()),
        [b] => {
            out.push(table.byte_ids[usize::from(*b)]);
            return Ok(());
        }
        _ => {}
    }
    if let Some(rank) = table.whole(piece, ranks) {
        out.push(rank);
        return Ok(());
    }
    if piece.len() < STACK_PARTS {
        merge_short(piece, table, out);
    } else if piece.len() < HEAP_THRESHOLD {
        merge_linear(piece, table, out);
    } else {
        return merge_long(piece, table, out);
    }
    Ok(())
}

/// A long piece: cut wherever no token contains the two bytes on either side (see
/// `MergeTable::crossable`), so a run of bytes that never merge (64 MiB of NUL bytes) costs no
/// per-byte state beyond its tokens, and the rest goes to the bucket merge in chunks.
fn merge_long(piece: &[u8], table: &MergeTable, out: &mut Vec<Rank>) -> Result<(), usize> {
    let mut local = None;
    let mut start = 0;
    for i in 1..=piece.len() {
        let cut = i == piece.len() || !table.crossable(piece[i - 1], piece[i]);
        if !cut {
            continue;
        }
        let chunk = &piece[start..i];
        match chunk.len() {
            1 => out.push(table.byte_ids[usize::from(chunk[0])]),
            n if n < STACK_PARTS => merge_short(chunk, table, out),
            n if n < HEAP_THRESHOLD => merge_linear(chunk, table, out),
            n if n < backtrack::BACKTRACK_MIN => merge_heap(chunk, table, out)?,
            _ => long_chunk(chunk, table, &mut local, out)?,
        }
        start = i;
    }
    Ok(())
}

/// A chunk of at least `backtrack::BACKTRACK_MIN` bytes, by the search over a trie of the tokens
/// whose byte pairs all occur in it (`local`, kept for the piece's next chunks whose pairs it
/// covers), or of every token once that trie is built (on a chunk holding too many tokens).
fn long_chunk(
    chunk: &[u8],
    table: &MergeTable,
    local: &mut Option<(backtrack::Pairs, backtrack::Trie)>,
    out: &mut Vec<Rank>,
) -> Result<(), usize> {
    if let Some(Some(trie)) = table.trie.get() {
        return backtrack::encode(chunk, table, trie, out);
    }
    let pairs = backtrack::Pairs::of(chunk);
    if !local.as_ref().is_some_and(|(p, _)| p.covers(&pairs)) {
        *local = None;
        *local = table
            .tokens
            .trie_for(&pairs, &table.byte_ids)
            .map(|trie| (pairs, trie));
    }
    match local
        .as_ref()
        .map(|(_, trie)| trie)
        .or_else(|| table.trie())
    {
        Some(trie) => backtrack::encode(chunk, table, trie, out),
        None => merge_heap(chunk, table, out),
    }
}

/// Per-call memo of the tokens of pieces that needed merging (pieces of at most `SHORT_MAX`
/// bytes, keyed like the short-token map). Real text repeats its words: within 150 KB, 68-73% of
/// such pieces in non-Latin text and 40-64% in English and Python source were repeats (measured).
/// A memo lives for one call and starts empty, so it never carries anything from one text to
/// the next: speed on unseen text is what it improves, not a repeat pass.
#[derive(Default)]
pub struct PieceMemo {
    /// Short pieces: packed key -> (start, len) in `tokens`.
    short: FxHashMap<u128, (u32, u32)>,
    /// Longer pieces: hash of the bytes -> (start in `bytes`, start in `tokens`, token count);
    /// the bytes are compared on a hit, so a hash collision only costs a merge.
    long: FxHashMap<u64, (u32, u32, u32)>,
    bytes: Vec<u8>,
    tokens: Vec<Rank>,
}

impl PieceMemo {
    /// Entries kept before the memo starts over, bounding its memory on huge inputs.
    const MAX_ENTRIES: usize = 1 << 16;

    /// [`encode_piece`] through the memo.
    pub fn encode_piece(
        &mut self,
        piece: &[u8],
        ranks: &Ranks,
        table: &MergeTable,
        out: &mut Vec<Rank>,
    ) -> Result<(), usize> {
        if piece.len() < 2 || piece.len() >= STACK_PARTS || !table.complete {
            return encode_piece(piece, ranks, table, out);
        }
        if piece.len() <= SHORT_MAX {
            let key = short_key(piece);
            if let Some(&rank) = table.short.get(&key) {
                out.push(rank);
                return Ok(());
            }
            if let Some(&(start, len)) = self.short.get(&key) {
                self.replay(start, len, out);
                return Ok(());
            }
            let start = self.merge_and_keep(piece, table, out);
            self.short.insert(key, start);
            return Ok(());
        }
        if let Some(&rank) = ranks.get(piece) {
            out.push(rank);
            return Ok(());
        }
        let hash = {
            let mut hasher = rustc_hash::FxHasher::default();
            piece.hash(&mut hasher);
            hasher.finish()
        };
        if let Some(&(at, start, len)) = self.long.get(&hash) {
            let at = at as usize;
            if self.bytes.get(at..at + piece.len()) == Some(piece) {
                self.replay(start, len, out);
                return Ok(());
            }
            merge_short(piece, table, out);
            return Ok(());
        }
        let at = self.bytes.len() as u32;
        self.bytes.extend_from_slice(piece);
        let (start, len) = self.merge_and_keep(piece, table, out);
        self.long.insert(hash, (at, start, len));
        Ok(())
    }

    fn replay(&self, start: u32, len: u32, out: &mut Vec<Rank>) {
        let (start, len) = (start as usize, len as usize);
        out.extend_from_slice(self.tokens.get(start..start + len).unwrap_or_default());
    }

    fn merge_and_keep(
        &mut self,
        piece: &[u8],
        table: &MergeTable,
        out: &mut Vec<Rank>,
    ) -> (u32, u32) {
        if self.short.len() + self.long.len() >= Self::MAX_ENTRIES {
            *self = PieceMemo::default();
        }
        let before = out.len();
        merge_short(piece, table, out);
        let produced = out.get(before..).unwrap_or_default();
        let start = self.tokens.len() as u32;
        self.tokens.extend_from_slice(produced);
        (start, produced.len() as u32)
    }
}

fn merge_short(piece: &[u8], table: &MergeTable, out: &mut Vec<Rank>) {
    let mut ids = [0 as Rank; STACK_PARTS];
    let mut pair_ranks = [NO_RANK; STACK_PARTS];
    let n = piece.len().min(STACK_PARTS);
    merge_in_place(piece, &mut ids[..n], &mut pair_ranks[..n], table, out);
}

fn merge_linear(piece: &[u8], table: &MergeTable, out: &mut Vec<Rank>) {
    let mut ids = vec![0 as Rank; piece.len()];
    let mut pair_ranks = vec![NO_RANK; piece.len()];
    merge_in_place(piece, &mut ids, &mut pair_ranks, table, out);
}

/// tiktoken's scan: `ids` holds the parts, `pair_ranks[i]` the rank of merging part i and i + 1.
fn merge_in_place(
    piece: &[u8],
    ids: &mut [Rank],
    pair_ranks: &mut [Rank],
    table: &MergeTable,
    out: &mut Vec<Rank>,
) {
    let mut len = ids.len();
    for (i, (id, &byte)) in ids.iter_mut().zip(piece).enumerate() {
        *id = table.byte_ids[usize::from(byte)];
        if let Some(&next) = piece.get(i + 1) {
            pair_ranks[i] = table.byte_pair(byte, next);
        }
    }
    while len > 1 {
        let mut best = NO_RANK;
        let mut at = 0;
        for (i, &rank) in pair_ranks[..len - 1].iter().enumerate() {
            if rank < best {
                best = rank;
                at = i;
            }
        }
        if best == NO_RANK {
            break;
        }
        ids[at] = best;
        ids.copy_within(at + 2..len, at + 1);
        pair_ranks.copy_within(at + 1..len - 1, at);
        len -= 1;
        if at + 1 < len {
            pair_ranks[at] = table.pair(ids[at], ids[at + 1]);
        }
        if at > 0 {
            pair_ranks[at - 1] = table.pair(ids[at - 1], ids[at]);
        }
    }
    out.extend_from_slice(&ids[..len]);
}

/// How far ahead in a bucket to prefetch nodes: a bucket's positions are sorted but spread over
/// the whole piece, so without it every visit waits on a cache miss.
const PREFETCH_AHEAD: usize = 8;

#[inline]
fn prefetch(nodes: &[Node], at: usize) {
    if let Some(node) = nodes.get(at) {
        crate::hint::prefetch(node);
    }
}

/// Positions waiting to merge, one bucket per rank, with the emptied vectors kept for reuse
/// (a megabyte-long piece fills and empties thousands of buckets).
#[derive(Default)]
struct Buckets {
    by_rank: FxHashMap<Rank, Vec<u32>>,
    spare: Vec<Vec<u32>>,
}

impl Buckets {
    #[inline]
    fn add(&mut self, queue: &mut BinaryHeap<Reverse<Rank>>, rank: Rank, at: u32) {
        let spare = &mut self.spare;
        let bucket = self
            .by_rank
            .entry(rank)
            .or_insert_with(|| spare.pop().unwrap_or_default());
        if bucket.is_empty() {
            queue.push(Reverse(rank));
        }
        bucket.push(at);
    }

    fn take(&mut self, rank: Rank) -> Vec<u32> {
        self.by_rank.remove(&rank).unwrap_or_default()
    }

    fn recycle(&mut self, mut positions: Vec<u32>) {
        positions.clear();
        self.spare.push(positions);
    }
}

/// One part of a long piece, 8 bytes: a live part holds its token and the index of the next
/// part (`n` after the last); a dead part (merged into the part on its left) holds `DEAD` and the
/// index of the part that absorbed it, so the previous live part of `i` is found from `i - 1` by
/// following absorbers (with path compression: amortised constant). The rank of merging a live
/// part with the next is recomputed from the pair table when a bucket entry is visited, instead
/// of being stored (16 bytes a part before; 64 MiB of input then took 1.4 GB).
#[derive(Clone, Copy)]
struct Node {
    id: Rank,
    link: u32,
}

const DEAD: Rank = Rank::MAX;

/// The live part just before part `i`, if any.
#[inline]
fn prev_alive(nodes: &mut [Node], i: usize) -> Option<usize> {
    let mut k = i.checked_sub(1)?;
    let mut root = k;
    while nodes[root].id == DEAD {
        root = nodes[root].link as usize;
    }
    while nodes[k].id == DEAD {
        let up = nodes[k].link as usize;
        nodes[k].link = root as u32;
        k = up;
    }
    Some(root)
}

fn merge_heap(piece: &[u8], table: &MergeTable, out: &mut Vec<Rank>) -> Result<(), usize> {
    // Pairs wait in one bucket per rank; a heap holds the ranks that have a bucket. The lowest
    // bucket is merged left to right (tiktoken's order: lowest rank, then leftmost). A merge makes
    // new pairs of other ranks (a longer token has a different rank), normally higher ones; if a
    // new pair ranks lower than the bucket being merged (possible in vocabularies where a longer
    // token predates its parts), the rest of the bucket is put back and the lower one goes first.
    let n = piece.len();
    let mut nodes: Vec<Node> = Vec::new();
    nodes.try_reserve_exact(n).map_err(|_| OUT_OF_MEMORY)?;
    nodes.extend(piece.iter().enumerate().map(|(i, &b)| Node {
        id: table.byte_ids[usize::from(b)],
        link: i as u32 + 1,
    }));
    let mut buckets = Buckets::default();
    let mut queue: BinaryHeap<Reverse<Rank>> = BinaryHeap::new();
    for i in 0..n - 1 {
        let rank = table.byte_pair(piece[i], piece[i + 1]);
        if rank != NO_RANK {
            buckets.add(&mut queue, rank, i as u32);
        }
    }
    while let Some(Reverse(rank)) = queue.pop() {
        let mut positions = buckets.take(rank);
        if positions.is_empty() {
            continue;
        }
        if !positions.is_sorted() {
            positions.sort_unstable();
        }
        let mut done = positions.len();
        for (k, &at) in positions.iter().enumerate() {
            if let Some(&ahead) = positions.get(k + PREFETCH_AHEAD) {
                prefetch(&nodes, ahead as usize);
            }
            let i = at as usize;
            let Node { id, link: j } = nodes[i];
            let j = j as usize;
            if id == DEAD || j >= n || table.pair(id, nodes[j].id) != rank {
                continue;
            }
            let after = nodes[j].link as usize;
            nodes[j] = Node {
                id: DEAD,
                link: i as u32,
            };
            nodes[i] = Node {
                id: rank,
                link: after as u32,
            };
            let mut lower = false;
            if after < n {
                let r = table.pair(rank, nodes[after].id);
                if r != NO_RANK {
                    buckets.add(&mut queue, r, i as u32);
                    lower |= r < rank;
                }
            }
            if let Some(p) = prev_alive(&mut nodes, i) {
                let r = table.pair(nodes[p].id, rank);
                if r != NO_RANK {
                    buckets.add(&mut queue, r, p as u32);
                    lower |= r < rank;
                }
            }
            if lower {
                done = k + 1;
                break;
            }
        }
        if done < positions.len() {
            for &at in &positions[done..] {
                buckets.add(&mut queue, rank, at);
            }
        }
        buckets.recycle(positions);
    }
    let mut i = 0;
    while i < n {
        out.push(nodes[i].id);
        i = nodes[i].link as usize;
    }
    Ok(())
}

/// tiktoken's merge over byte slices (quadratic): the reference the tests compare with.
#[cfg(test)]
fn merge_bytes(piece: &[u8], ranks: &Ranks, out: &mut Vec<Rank>) -> Result<(), usize> {
    let rank_of = |bytes: &[u8]| ranks.get(bytes).copied().unwrap_or(NO_RANK);
    let n = piece.len();
    // starts[i] = start of part i (plus a final n); pair_ranks[i] = rank of parts i and i + 1.
    let mut starts: Vec<usize> = (0..=n).collect();
    let mut pair_ranks: Vec<Rank> = (0..n)
        .map(|i| {
            if i + 2 <= n {
                rank_of(&piece[i..i + 2])
            } else {
                NO_RANK
            }
        })
        .collect();
    loop {
        let parts = starts.len() - 1;
        let mut best = (NO_RANK, 0);
        for (i, &rank) in pair_ranks[..parts.saturating_sub(1)].iter().enumerate() {
            if rank < best.0 {
                best = (rank, i);
            }
        }
        let (rank, at) = best;
        if rank == NO_RANK {
            break;
        }
        starts.remove(at + 1);
        pair_ranks.remove(at + 1);
        let parts = starts.len() - 1;
        pair_ranks[at] = if at + 2 <= parts {
            rank_of(&piece[starts[at]..starts[at + 2]])
        } else {
            NO_RANK
        };
        if at > 0 {
            pair_ranks[at - 1] = rank_of(&piece[starts[at - 1]..starts[at + 1]]);
        }
    }
    for w in starts.windows(2) {
        match ranks.get(&piece[w[0]..w[1]]) {
            Some(&rank) => out.push(rank),
            None => return Err(w[0]),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy_ranks() -> Ranks {
        let mut ranks = Ranks::default();
        for b in 0..=255u8 {
            ranks.insert(vec![b], Rank::from(b));
        }
        for (i, t) in [
            "aa", "ab", "aaaa", "bc", "abc", "aaab", "ca", "aaaaaaaa", "bcaa",
        ]
        .iter()
        .enumerate()
        {
            ranks.insert(t.as_bytes().to_vec(), 256 + i as Rank);
        }
        ranks
    }

    fn random_piece(state: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                b"aabc"[(*state >> 33) as usize % 4]
            })
            .collect()
    }

    #[test]
    fn all_strategies_agree() {
        let ranks = toy_ranks();
        let table = MergeTable::new(&ranks);
        let mut state = 12345u64;
        for len in 2..400 {
            let piece = random_piece(&mut state, len);
            let mut reference = Vec::new();
            assert_eq!(merge_bytes(&piece, &ranks, &mut reference), Ok(()));
            let mut linear = Vec::new();
            merge_linear(&piece, &table, &mut linear);
            let mut heap = Vec::new();
            assert_eq!(merge_heap(&piece, &table, &mut heap), Ok(()));
            assert_eq!(
                linear,
                reference,
                "linear, piece {:?}",
                String::from_utf8_lossy(&piece)
            );
            assert_eq!(
                heap,
                reference,
                "heap, piece {:?}",
                String::from_utf8_lossy(&piece)
            );
            if len < STACK_PARTS {
                let mut short = Vec::new();
                merge_short(&piece, &table, &mut short);
                assert_eq!(short, reference);
            }
        }
    }

    #[test]
    fn longer_token_ranked_before_its_parts() {
        // "abc" predates "bc" and "ab": merging b+c creates the pair (a, bc) whose rank is lower
        // than the bucket being merged; the result must still equal the reference.
        let mut ranks = Ranks::default();
        for b in 0..=255u8 {
            ranks.insert(vec![b], Rank::from(b));
        }
        for (i, t) in ["abc", "bc", "ab", "ca", "abcabc", "cab"]
            .iter()
            .enumerate()
        {
            ranks.insert(t.as_bytes().to_vec(), 256 + i as Rank);
        }
        let table = MergeTable::new(&ranks);
        let mut state = 99u64;
        for len in [2, 5, 64, 255, 256, 300, 1000, 5000] {
            for _ in 0..5 {
                let piece = random_piece(&mut state, len);
                let mut reference = Vec::new();
                assert_eq!(merge_bytes(&piece, &ranks, &mut reference), Ok(()));
                let mut ours = Vec::new();
                assert_eq!(encode_piece(&piece, &ranks, &table, &mut ours), Ok(()));
                assert_eq!(ours, reference);
                let mut heap = Vec::new();
                if len >= 2 {
                    assert_eq!(merge_heap(&piece, &table, &mut heap), Ok(()));
                    assert_eq!(heap, reference);
                }
            }
        }
    }

    #[test]
    fn memo_gives_the_same_tokens() {
        let ranks = toy_ranks();
        let table = MergeTable::new(&ranks);
        let mut memo = PieceMemo::default();
        let mut state = 7u64;
        let pieces: Vec<Vec<u8>> = (0..300)
            .map(|i| random_piece(&mut state, 2 + i % 70))
            .collect();
        // Every piece twice, so the second pass replays from the memo.
        for piece in pieces.iter().chain(pieces.iter()) {
            let (mut direct, mut memoised) = (Vec::new(), Vec::new());
            assert_eq!(encode_piece(piece, &ranks, &table, &mut direct), Ok(()));
            assert_eq!(
                memo.encode_piece(piece, &ranks, &table, &mut memoised),
                Ok(())
            );
            assert_eq!(
                memoised,
                direct,
                "piece {:?}",
                String::from_utf8_lossy(piece)
            );
        }
    }

    #[test]
    fn leftmost_wins_ties() {
        let ranks = toy_ranks();
        let table = MergeTable::new(&ranks);
        let mut out = Vec::new();
        assert_eq!(encode_piece(b"aaa", &ranks, &table, &mut out), Ok(()));
        assert_eq!(out, vec![256, u32::from(b'a')]);
        out.clear();
        assert_eq!(encode_piece(b"aaaaa", &ranks, &table, &mut out), Ok(()));
        assert_eq!(out, vec![258, u32::from(b'a')]);
        out.clear();
        assert_eq!(merge_heap(b"aaaaa", &table, &mut out), Ok(()));
        assert_eq!(out, vec![258, u32::from(b'a')]);
    }

    #[test]
    fn long_tokens_split_like_direct_lookups() {
        let mut ranks = toy_ranks();
        let mut next = 300;
        for len in [129, 200, 300, 1000] {
            for t in ["a".repeat(len), format!("b{}", "a".repeat(len - 1))] {
                ranks.insert(t.into_bytes(), next);
                next += 1;
            }
        }
        ranks.insert("a".repeat(999).into_bytes(), next);
        ranks.insert(b"a".to_vec(), u32::from(b'a'));
        let table = MergeTable::new(&ranks);
        let mut direct = FxHashMap::default();
        for (token, &id) in &ranks {
            for cut in 1..token.len() {
                let (l, r) = token.split_at(cut);
                if let (Some(&l), Some(&r)) = (ranks.get(l), ranks.get(r)) {
                    direct.insert(pair_key(l, r), id);
                }
            }
        }
        assert_eq!(table.pairs, direct);
    }

    #[test]
    fn long_pieces_cut_where_nothing_merges() {
        let ranks = toy_ranks();
        let table = MergeTable::new(&ranks);
        assert!(!table.crossable(b'z', b'a') && table.crossable(b'a', b'b'));
        let mut state = 5u64;
        for len in [256, 300, 1000, 4000] {
            let mut piece = random_piece(&mut state, len);
            for (k, b) in piece.iter_mut().enumerate() {
                if k % 97 == 3 || k % 13 == 0 {
                    *b = if k % 2 == 0 { b'z' } else { 0 };
                }
            }
            let mut reference = Vec::new();
            assert_eq!(merge_bytes(&piece, &ranks, &mut reference), Ok(()));
            let mut ours = Vec::new();
            assert_eq!(encode_piece(&piece, &ranks, &table, &mut ours), Ok(()));
            assert_eq!(ours, reference);
        }
        let zeros = vec![0u8; 5000];
        let mut out = Vec::new();
        assert_eq!(encode_piece(&zeros, &ranks, &table, &mut out), Ok(()));
        assert_eq!(out, vec![0; 5000]);
    }

    #[test]
    fn incomplete_vocabulary_falls_back_and_reports_missing_byte() {
        let mut ranks = Ranks::default();
        ranks.insert(b"a".to_vec(), 0);
        ranks.insert(b"b".to_vec(), 1);
        ranks.insert(b"ab".to_vec(), 2);
        let table = MergeTable::new(&ranks);
        let mut out = Vec::new();
        assert_eq!(encode_piece(b"abab", &ranks, &table, &mut out), Ok(()));
        assert_eq!(out, vec![2, 2]);
        assert_eq!(encode_piece(b"abc", &ranks, &table, &mut out), Err(2));
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 200,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Random vocabularies (merges of existing tokens, long ones included) and pieces of
        /// every length: the table-driven merge (short, linear, bucket with cuts) equals the
        /// byte-slice reference.
        #[test]
        fn random_vocabularies_merge_like_the_reference(
            merges in proptest::collection::vec((0usize..1000, 0usize..1000), 0..60),
            piece in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c'), Just(0u8)], 0..700),
        ) {
            let ranks = backtrack::tests::vocabulary(&merges);
            let table = MergeTable::new(&ranks);
            let (mut ours, mut reference) = (Vec::new(), Vec::new());
            match ranks.get(&piece) {
                Some(&whole) => reference.push(whole),
                None => prop_assert_eq!(merge_bytes(&piece, &ranks, &mut reference), Ok(())),
            }
            prop_assert_eq!(encode_piece(&piece, &ranks, &table, &mut ours), Ok(()));
            prop_assert_eq!(ours, reference);
        }
    }
}
