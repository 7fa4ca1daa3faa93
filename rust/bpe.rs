//! Byte-pair merging of one pre-tokenized piece.
//!
//! Design notes (to be refined with measurements in the speed work):
//! - A piece that is itself a token is looked up whole first (most English words are).
//! - Short pieces use tiktoken's scheme: a vector of part boundaries and a linear scan for the
//!   lowest-ranked adjacent pair. It is quadratic in the piece length but has a tiny constant.
//! - Long pieces (a megabyte of `'a'`, a long run of CJK) switch to a binary heap over a linked
//!   list of parts, O(n log n), so no input can make encoding quadratic.
//!
//! Both pick the lowest rank and, among equal ranks, the leftmost pair, so they merge identically.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::vocab::{Rank, Ranks};

const NO_RANK: Rank = Rank::MAX;

/// Pieces at least this long use the heap merge.
pub const HEAP_THRESHOLD: usize = 128;

/// Appends the tokens of `piece` to `out`. Returns `Err(position)` for a byte position whose single
/// byte is not in the vocabulary (only possible with a user-supplied vocabulary).
pub fn encode_piece(piece: &[u8], ranks: &Ranks, out: &mut Vec<Rank>) -> Result<(), usize> {
    if piece.is_empty() {
        return Ok(());
    }
    if let Some(&rank) = ranks.get(piece) {
        out.push(rank);
        return Ok(());
    }
    if piece.len() < HEAP_THRESHOLD {
        merge_small(piece, ranks, out)
    } else {
        merge_heap(piece, ranks, out)
    }
}

fn rank_of(ranks: &Ranks, bytes: &[u8]) -> Rank {
    ranks.get(bytes).copied().unwrap_or(NO_RANK)
}

fn push_parts(
    piece: &[u8],
    starts: impl Iterator<Item = (usize, usize)>,
    ranks: &Ranks,
    out: &mut Vec<Rank>,
) -> Result<(), usize> {
    for (start, end) in starts {
        match ranks.get(&piece[start..end]) {
            Some(&rank) => out.push(rank),
            None => return Err(start),
        }
    }
    Ok(())
}

fn merge_small(piece: &[u8], ranks: &Ranks, out: &mut Vec<Rank>) -> Result<(), usize> {
    // parts[i] = (start of part i, rank of the pair made of part i and part i + 1).
    let n = piece.len();
    let mut parts: Vec<(usize, Rank)> = Vec::with_capacity(n + 1);
    for i in 0..n.saturating_sub(1) {
        parts.push((i, rank_of(ranks, &piece[i..i + 2])));
    }
    parts.push((n.saturating_sub(1), NO_RANK));
    parts.push((n, NO_RANK));

    let pair_rank = |parts: &[(usize, Rank)], i: usize| -> Rank {
        if i + 3 < parts.len() {
            rank_of(ranks, &piece[parts[i].0..parts[i + 3].0])
        } else {
            NO_RANK
        }
    };
    loop {
        let mut best = (NO_RANK, 0usize);
        for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
            if rank < best.0 {
                best = (rank, i);
            }
        }
        let (rank, i) = best;
        if rank == NO_RANK {
            break;
        }
        // Merge part i with part i + 1: part i's pair now spans to part i + 3's start.
        parts[i].1 = pair_rank(&parts, i);
        if i > 0 {
            parts[i - 1].1 = pair_rank(&parts, i - 1);
        }
        parts.remove(i + 1);
    }
    push_parts(
        piece,
        parts.windows(2).map(|w| (w[0].0, w[1].0)),
        ranks,
        out,
    )
}

fn merge_heap(piece: &[u8], ranks: &Ranks, out: &mut Vec<Rank>) -> Result<(), usize> {
    // Node i starts at byte i; `next[i]` is the start of the following part (n at the end).
    let n = piece.len();
    let mut next: Vec<usize> = (1..=n).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    let mut alive = vec![true; n];
    let end_of_pair = |next: &[usize], i: usize| -> Option<usize> {
        let j = next[i];
        (j < n).then(|| next[j])
    };
    let mut heap: BinaryHeap<Reverse<(Rank, usize, usize)>> = BinaryHeap::with_capacity(n);
    for i in 0..n - 1 {
        let rank = rank_of(ranks, &piece[i..i + 2]);
        if rank != NO_RANK {
            heap.push(Reverse((rank, i, i + 2)));
        }
    }
    while let Some(Reverse((_, i, end))) = heap.pop() {
        if !alive[i] || end_of_pair(&next, i) != Some(end) {
            continue;
        }
        let j = next[i];
        next[i] = next[j];
        if next[j] < n {
            prev[next[j]] = i;
        }
        alive[j] = false;
        if let Some(e) = end_of_pair(&next, i) {
            let rank = rank_of(ranks, &piece[i..e]);
            if rank != NO_RANK {
                heap.push(Reverse((rank, i, e)));
            }
        }
        let p = prev[i];
        if p != usize::MAX {
            let e = next[i];
            let rank = rank_of(ranks, &piece[p..e]);
            if rank != NO_RANK {
                heap.push(Reverse((rank, p, e)));
            }
        }
    }
    let mut bounds = Vec::new();
    let mut i = 0;
    while i < n {
        bounds.push((i, next[i]));
        i = next[i];
    }
    push_parts(piece, bounds.into_iter(), ranks, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy_ranks() -> Ranks {
        let mut ranks = Ranks::default();
        for b in 0..=255u8 {
            ranks.insert(vec![b], Rank::from(b));
        }
        for (i, t) in ["aa", "ab", "aaaa", "bc", "abc", "aaab"].iter().enumerate() {
            ranks.insert(t.as_bytes().to_vec(), 256 + i as Rank);
        }
        ranks
    }

    fn both(piece: &[u8], ranks: &Ranks) -> (Vec<Rank>, Vec<Rank>) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert_eq!(merge_small(piece, ranks, &mut a), Ok(()));
        assert_eq!(merge_heap(piece, ranks, &mut b), Ok(()));
        (a, b)
    }

    #[test]
    fn small_and_heap_agree() {
        let ranks = toy_ranks();
        let mut state = 12345u64;
        for len in 2..200 {
            let piece: Vec<u8> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    b"aabc"[(state >> 33) as usize % 4]
                })
                .collect();
            let (a, b) = both(&piece, &ranks);
            assert_eq!(a, b, "piece {:?}", String::from_utf8_lossy(&piece));
        }
    }

    #[test]
    fn leftmost_wins_ties() {
        let ranks = toy_ranks();
        // "aaa": pairs (0,1) and (1,2) have the same rank; the left one merges.
        let (a, b) = both(b"aaa", &ranks);
        assert_eq!(a, vec![256, u32::from(b'a')]);
        assert_eq!(b, a);
        let (a, _) = both(b"aaaaa", &ranks);
        assert_eq!(a, vec![258, u32::from(b'a')]);
    }

    #[test]
    fn missing_byte_is_reported() {
        let mut ranks = Ranks::default();
        ranks.insert(b"a".to_vec(), 0);
        let mut out = Vec::new();
        assert_eq!(encode_piece(b"ab", &ranks, &mut out), Err(1));
    }
}
