//! The merge loop: learns merges from the table of unique pieces and their counts.
//!
//! # Design notes
//!
//! - **Rule.** Each step merges the most frequent adjacent pair of tokens, counted over all
//!   pieces (weighted by piece count; overlapping pairs count, so `a a a` holds `(a, a)` twice).
//!   Ties go to the smallest `(left id, right id)`. The merge replaces the pair left to right
//!   without overlap in every piece. The new token's bytes are the two tokens' bytes. Under this
//!   rule no two merges make the same bytes (a region whose ends are token boundaries is merged
//!   exactly as the same bytes alone, so an `(a, bc)` region would have become `abc` already at
//!   the `(ab, c)` step); should a merge ever make an existing token's bytes, it reuses that id,
//!   so ranks stay a valid tiktoken vocabulary either way. Training stops at the vocabulary size
//!   or when no pair is left. `tests/test_train.py` has the naive reference (recount every step)
//!   that defines the rule, and checks it against this loop.
//! - **Layout.** All pieces' symbols live in one flat array of 24-byte nodes indexed by
//!   position: token, `prev`/`next` (a doubly linked list per piece), the slot of the pair that
//!   starts there, and the piece's count (one cache line per symbol touched). Merging an
//!   occurrence is O(1): a dead right half is unlinked, never moved, so positions stay valid and
//!   a piece of a megabyte costs no more per merge than a word (rustbpe and HF tokenizers keep a
//!   set of word indices per pair and rescan each word).
//! - **Incremental counts.** Each pair slot has its count and the positions where it was ever
//!   created (appended, never searched; a position is still an occurrence iff its node's pair
//!   says so). A merge at `i` subtracts the piece's count from the neighbours' old pairs through
//!   their nodes (no hashing) and adds it to the two new pairs, whose slots are cached per step
//!   by the neighbour token (one hash insert per distinct new pair, none per occurrence). Each
//!   merged occurrence removes a symbol, so all steps together touch O(total symbols)
//!   occurrences: the loop does the work of one pass over the unique pieces, not one per merge.
//! - **Heap with lazy invalidation.** Counts of old pairs only fall (new pairs contain the new
//!   token), so a heap entry is an upper bound: on pop, an entry whose count is out of date is
//!   pushed again with the right count; the first up-to-date entry is the maximum. Pairs whose
//!   count rose are pushed once per step. The key `(count, Reverse((left, right)))` makes the
//!   tie-break part of the order. (rustbpe uses the same rule: on the 20 MB Python benchmark its
//!   32768 ranks equal ours.)
//! - **Measured** (this 2-core machine, release; `train::count::bench::bench_learn`): 20 MB of
//!   Python source under gpt2 is 69k distinct pieces, 549k symbols; the loop takes 0.06 s to
//!   vocabulary 8192 and 0.12 s to 32768. perf: ~40% of it is the first touch of each listed
//!   position (a cache miss; about half the listed positions are stale by then), ~15% the heap.
//!   Under patterns with long pieces it grows with the symbols (`\S+|\s+`: 4M symbols, ~1.3 s).
//!   Counting, not this loop, is most of training: see `train`'s notes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

const NONE: u32 = u32::MAX;
/// How many merges between two calls of the progress callback.
pub const PROGRESS_EVERY: usize = 64;

struct PairSlot {
    left: u32,
    right: u32,
    count: i64,
    /// Positions where this pair was created (some may be gone since).
    positions: Vec<u32>,
    /// Whether the count rose during the current step.
    rose: bool,
}

fn key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

/// The result of training: token bytes by id (the 256 single bytes, then one per new token).
pub struct Merges {
    pub tokens: Vec<Vec<u8>>,
    /// Merge steps taken (more than `tokens.len() - 256` if a merge ever made an existing token).
    pub steps: usize,
}

/// One symbol of a piece: a token in a doubly linked list, with the pair that starts here and
/// the piece's count. One 24-byte record, so a merge touches one cache line per symbol.
#[derive(Clone, Copy)]
struct Node {
    sym: u32,
    prev: u32,
    next: u32,
    /// The slot of the pair `(sym, next's sym)`; `NONE` at a piece's end and for dead nodes.
    pair: u32,
    weight: i64,
}

impl Node {
    const DEAD: Node = Node {
        sym: NONE,
        prev: NONE,
        next: NONE,
        pair: NONE,
        weight: 0,
    };
}

/// The slot of a pair made in step `stamp` (a per-step cache, indexed by the other token).
#[derive(Clone, Copy, Default)]
struct Fresh {
    stamp: u32,
    slot: u32,
}

struct State {
    nodes: Vec<Node>,
    slots: Vec<PairSlot>,
    /// Every pair's slot: used while building and if a merge ever makes an existing token.
    index: FxHashMap<u64, u32>,
    heap: BinaryHeap<(u64, Reverse<u64>, u32)>,
    /// Slots whose count rose in this step.
    rose: Vec<u32>,
    /// This step's token and number (from 1), and whether the token existed already.
    token: u32,
    step: u32,
    reused: bool,
    /// Slots of `(x, token)` and `(token, x)` made in this step, by `x`; `(token, token)`.
    left_of: Vec<Fresh>,
    right_of: Vec<Fresh>,
    twice: Fresh,
}

impl State {
    fn build<'a>(pieces: impl Iterator<Item = (&'a [u8], u64)>, total: usize) -> Result<State> {
        if total >= NONE as usize {
            return Err(Error::InvalidArgument(format!(
                "the corpus has {total} bytes of distinct pieces; training handles up to {} \
                 (train on a sample)",
                NONE - 1
            )));
        }
        let mut state = State {
            nodes: Vec::with_capacity(total),
            slots: Vec::new(),
            index: FxHashMap::default(),
            heap: BinaryHeap::new(),
            rose: Vec::new(),
            token: NONE,
            step: 0,
            reused: false,
            left_of: vec![Fresh::default(); 256],
            right_of: vec![Fresh::default(); 256],
            twice: Fresh::default(),
        };
        for (bytes, count) in pieces {
            if bytes.len() < 2 {
                continue;
            }
            let weight = i64::try_from(count).unwrap_or(i64::MAX);
            let start = state.nodes.len() as u32;
            let end = start + bytes.len() as u32;
            for (i, &b) in (start..end).zip(bytes) {
                state.nodes.push(Node {
                    sym: u32::from(b),
                    prev: if i == start { NONE } else { i - 1 },
                    next: if i + 1 == end { NONE } else { i + 1 },
                    pair: NONE,
                    weight,
                });
            }
            for (i, pair) in (start..).zip(bytes.windows(2)) {
                if let [a, b] = *pair {
                    let slot = state.slot(u32::from(a), u32::from(b));
                    state.add(slot, i, weight);
                }
            }
        }
        for slot in &mut state.slots {
            slot.rose = false;
            slot.positions.shrink_to_fit();
        }
        state.rose.clear();
        state.heap = (0..)
            .zip(&state.slots)
            .map(|(i, s)| (s.count as u64, Reverse(key(s.left, s.right)), i))
            .collect();
        Ok(state)
    }

    fn node(&self, i: u32) -> Node {
        self.nodes.get(i as usize).copied().unwrap_or(Node::DEAD)
    }

    fn node_mut(&mut self, i: u32) -> Option<&mut Node> {
        self.nodes.get_mut(i as usize)
    }

    fn new_slot(&mut self, left: u32, right: u32) -> u32 {
        let slot = self.slots.len() as u32;
        self.slots.push(PairSlot {
            left,
            right,
            count: 0,
            positions: Vec::new(),
            rose: false,
        });
        slot
    }

    /// The slot of pair `(left, right)`, created if new.
    fn slot(&mut self, left: u32, right: u32) -> u32 {
        match self.index.get(&key(left, right)) {
            Some(&slot) => slot,
            None => {
                let slot = self.new_slot(left, right);
                self.index.insert(key(left, right), slot);
                slot
            }
        }
    }

    /// The slot of `(other, token)` (`token_left` false) or `(token, other)` for this step's
    /// token: cached per step, so a hash lookup happens once per distinct pair, not per
    /// occurrence. A new token's pairs cannot exist yet, so they are created without looking.
    fn slot_with_token(&mut self, other: u32, token_left: bool) -> u32 {
        let (step, token) = (self.step, self.token);
        let cached = if other == token {
            self.twice
        } else {
            let cache = if token_left {
                &self.right_of
            } else {
                &self.left_of
            };
            cache.get(other as usize).copied().unwrap_or_default()
        };
        if cached.stamp == step {
            return cached.slot;
        }
        let (left, right) = if token_left {
            (token, other)
        } else {
            (other, token)
        };
        let slot = if self.reused {
            self.slot(left, right)
        } else {
            let slot = self.new_slot(left, right);
            self.index.insert(key(left, right), slot);
            slot
        };
        let fresh = Fresh { stamp: step, slot };
        if other == token {
            self.twice = fresh;
        } else {
            let cache = if token_left {
                &mut self.right_of
            } else {
                &mut self.left_of
            };
            if let Some(entry) = cache.get_mut(other as usize) {
                *entry = fresh;
            }
        }
        slot
    }

    /// Records an occurrence of the pair in `slot` starting at `at`, of weight `w`.
    fn add(&mut self, slot: u32, at: u32, w: i64) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.count += w;
            s.positions.push(at);
            if !s.rose {
                s.rose = true;
                self.rose.push(slot);
            }
        }
        if let Some(node) = self.node_mut(at) {
            node.pair = slot;
        }
    }

    fn sub(&mut self, slot: u32, w: i64) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.count -= w;
        }
    }

    /// Merges the occurrence of a pair at `i` (with its right half) into this step's token.
    fn merge_at(&mut self, i: u32) {
        let node = self.node(i);
        let j = node.next;
        let right = self.node(j);
        let (p, n, w) = (node.prev, right.next, node.weight);
        self.sub(node.pair, w);
        if p != NONE {
            let left = self.node(p);
            self.sub(left.pair, w);
            let slot = self.slot_with_token(left.sym, false);
            self.add(slot, p, w);
        }
        let mut pair = NONE;
        if n != NONE {
            self.sub(right.pair, w);
            let next_sym = self.node(n).sym;
            pair = self.slot_with_token(next_sym, true);
            self.add(pair, i, w);
            if let Some(next) = self.node_mut(n) {
                next.prev = i;
            }
        }
        let token = self.token;
        if let Some(node) = self.node_mut(i) {
            node.sym = token;
            node.next = n;
            node.pair = pair;
        }
        if let Some(dead) = self.node_mut(j) {
            *dead = Node::DEAD;
        }
    }

    /// The most frequent pair (ties: the smallest `(left, right)`), removed from the heap.
    fn pop_best(&mut self) -> Option<u32> {
        while let Some((count, Reverse(k), slot)) = self.heap.pop() {
            let actual = self.slots.get(slot as usize).map_or(0, |s| s.count);
            if actual <= 0 {
                continue;
            }
            let actual = actual as u64;
            if actual == count {
                return Some(slot);
            }
            if actual < count {
                self.heap.push((actual, Reverse(k), slot));
            }
            // `actual > count`: a newer entry with the right count is in the heap.
        }
        None
    }

    /// Merges every occurrence of the pair in `slot` into `token` (`reused`: an existing one).
    fn merge_pair(&mut self, slot: u32, token: u32, reused: bool) {
        self.step += 1;
        self.token = token;
        self.reused = reused;
        let tokens = token as usize + 1;
        if self.left_of.len() < tokens {
            self.left_of.resize(tokens, Fresh::default());
            self.right_of.resize(tokens, Fresh::default());
        }
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let mut positions = std::mem::take(&mut s.positions);
        if s.left == s.right && !positions.is_sorted() {
            // Overlapping occurrences (`a a a`) must be merged left to right.
            positions.sort_unstable();
        }
        for &i in &positions {
            if self.node(i).pair == slot {
                self.merge_at(i);
            }
        }
        for slot in std::mem::take(&mut self.rose) {
            if let Some(s) = self.slots.get_mut(slot as usize) {
                s.rose = false;
                if s.count > 0 {
                    let entry = (s.count as u64, Reverse(key(s.left, s.right)), slot);
                    self.heap.push(entry);
                }
            }
        }
    }
}

/// Learns merges until there are `n_tokens` tokens (256 single bytes included) or no pair is
/// left. `pieces` are the unique pieces with their counts, `total` their bytes; `progress(done,
/// target)` is called every [`PROGRESS_EVERY`] new tokens and at the end (done and target
/// count new tokens), and stops training with its error.
pub fn learn<'a>(
    pieces: impl Iterator<Item = (&'a [u8], u64)>,
    total: usize,
    n_tokens: usize,
    progress: &mut dyn FnMut(usize, usize) -> Result<()>,
) -> Result<Merges> {
    let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let target = n_tokens.saturating_sub(256);
    if target == 0 {
        progress(0, 0)?;
        return Ok(Merges { tokens, steps: 0 });
    }
    let mut state = State::build(pieces, total)?;
    let mut ids: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
    let mut steps = 0;
    while tokens.len() < n_tokens {
        let Some(slot) = state.pop_best() else { break };
        let Some(s) = state.slots.get(slot as usize) else {
            break;
        };
        let (left, right) = (s.left as usize, s.right as usize);
        let mut bytes = tokens.get(left).cloned().unwrap_or_default();
        bytes.extend_from_slice(tokens.get(right).map_or(&[][..], Vec::as_slice));
        // Tokens of two bytes or more can only come from merges; singles are never made.
        let (token, reused) = match ids.get(&bytes) {
            Some(&id) => (id, true),
            None => {
                let id = tokens.len() as u32;
                ids.insert(bytes.clone(), id);
                tokens.push(bytes);
                let done = tokens.len() - 256;
                if done % PROGRESS_EVERY == 0 && done < target {
                    progress(done, target)?;
                }
                (id, false)
            }
        };
        state.merge_pair(slot, token, reused);
        steps += 1;
    }
    progress(tokens.len() - 256, target)?;
    Ok(Merges { tokens, steps })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[(&str, u64)], n_tokens: usize) -> Result<Vec<String>> {
        let total = pieces.iter().map(|p| p.0.len()).sum();
        let merges = learn(
            pieces.iter().map(|&(p, c)| (p.as_bytes(), c)),
            total,
            n_tokens,
            &mut |_, _| Ok(()),
        )?;
        Ok(merges
            .tokens
            .get(256..)
            .unwrap_or_default()
            .iter()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect())
    }

    #[test]
    fn most_frequent_first_then_smallest_ids() -> Result<()> {
        // (a, b) 3 times, (b, c) 3 times: tie, (97, 98) < (98, 99).
        assert_eq!(run(&[("abc", 3)], 258)?, ["ab", "abc"]);
        assert_eq!(run(&[("xy", 1), ("ab", 2)], 258)?, ["ab", "xy"]);
        // Ties resolved by ids, not bytes: (b, a) vs (a, b) with equal counts.
        assert_eq!(run(&[("ba", 1), ("ab", 1)], 257)?, ["ab"]);
        Ok(())
    }

    #[test]
    fn overlapping_pairs_merge_left_to_right() -> Result<()> {
        // "aaa": (a, a) counts 2; merging gives "aa a", then "aaa".
        assert_eq!(run(&[("aaa", 1)], 258)?, ["aa", "aaa"]);
        // "aaaaa" -> aa aa a -> (aa, aa) x1, (aa, a) x1: tie, (256, 97) < (256, 256).
        assert_eq!(run(&[("aaaaa", 1)], 259)?, ["aa", "aaa", "aaaaa"]);
        Ok(())
    }

    #[test]
    fn tokens_are_distinct() -> Result<()> {
        // Pseudo-random words over a small alphabet: many competing overlapping merges.
        let mut seed = 12345u64;
        let mut words: Vec<(String, u64)> = Vec::new();
        for _ in 0..400 {
            let mut word = String::new();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            for k in 0..2 + (seed >> 60) {
                word.push(match (seed >> (k * 3 + 7)) % 3 {
                    0 => 'a',
                    1 => 'b',
                    _ => ' ',
                });
            }
            words.push((word, 1 + (seed >> 59)));
        }
        let pieces: Vec<(&str, u64)> = words.iter().map(|(w, c)| (w.as_str(), *c)).collect();
        let tokens = run(&pieces, 400)?;
        let mut sorted = tokens.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), tokens.len());
        Ok(())
    }

    #[test]
    fn stops_when_no_pair_is_left() -> Result<()> {
        assert_eq!(run(&[("ab", 1)], 1000)?, ["ab"]);
        assert_eq!(run(&[], 1000)?, Vec::<String>::new());
        Ok(())
    }

    #[test]
    fn long_piece() -> Result<()> {
        let text = "ab".repeat(100_000);
        let tokens = run(&[(&text, 1)], 256 + 10)?;
        let lengths: Vec<usize> = tokens.iter().map(String::len).collect();
        assert_eq!(lengths, [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]);
        Ok(())
    }
}
