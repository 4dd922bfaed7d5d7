//! A double-array trie of the word-initial and the continuation (`##`) tokens, for greedy
//! longest-prefix matching.
//!
//! Each piece of a word is found in one walk over its bytes (Hugging Face builds a `String` and
//! hashes it for every candidate length instead). A double array makes each step of the walk
//! one table read: the child of node `d` by byte `b` is slot `base[d] + b` if that slot's `check`
//! names `d`. Base, check and the token ending at a node share one 12-byte slot, so a step touches
//! one cache line. The two roots are slots 0 and 1.
//!
//! The array is built from the sorted token texts (as `darts` does): for each node, the smallest
//! base at which all of its children's slots are free, scanning from the first free slot.

/// "No node" / "no token".
pub(crate) const NONE: u32 = u32::MAX;

/// The `check` of the roots: names no node.
const ROOT_CHECK: u32 = u32::MAX - 1;

/// Which set of tokens a walk uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub(crate) enum Root {
    /// Tokens that start a word (`vocab.txt` lines without `##`).
    Start = 0,
    /// Tokens that continue a word (`##` lines, prefix removed).
    Continuation = 1,
}

#[derive(Clone, Copy)]
struct Slot {
    /// Children of this node are at `base + byte`.
    base: u32,
    /// The parent node of this slot, `NONE` if the slot is free.
    check: u32,
    /// The token ending at this node, `NONE` if none.
    value: u32,
}

const FREE: Slot = Slot {
    base: 0,
    check: NONE,
    value: NONE,
};

/// The most slots the array may have: every index and base fits a `u32` with room for the
/// markers. Checked before the array grows.
const MAX_SLOTS: usize = 1 << 31;

/// How far behind the highest used slot the search for a free base starts.
const SEARCH_WINDOW: usize = 256;

/// The slots while building, with a bit set of the used ones.
struct Builder {
    slots: Vec<Slot>,
    used: Vec<u64>,
}

impl Builder {
    #[inline]
    fn is_used(&self, i: usize) -> bool {
        self.used
            .get(i / 64)
            .is_some_and(|w| w >> (i % 64) & 1 == 1)
    }

    /// The first free slot at or after `i`, with at least 256 slots after it; `None` past
    /// [`MAX_SLOTS`].
    fn next_free(&mut self, i: usize) -> Option<usize> {
        let mut w = i / 64;
        let mut bits = !self.used.get(w).copied().unwrap_or(0) & (!0u64 << (i % 64));
        loop {
            if bits != 0 {
                let p = w * 64 + bits.trailing_zeros() as usize;
                if p + 257 > MAX_SLOTS {
                    return None;
                }
                self.reserve(p + 257);
                return Some(p);
            }
            w += 1;
            bits = !self.used.get(w).copied().unwrap_or(0);
        }
    }

    fn reserve(&mut self, len: usize) {
        if self.slots.len() < len {
            let len = len.max(self.slots.len() * 3 / 2);
            self.slots.resize(len, FREE);
            self.used.resize(len.div_ceil(64), 0);
        }
    }

    fn occupy(&mut self, i: usize, parent: u32) {
        self.reserve(i + 1);
        self.slots[i].check = parent;
        self.used[i / 64] |= 1 << (i % 64);
    }
}

pub(crate) struct Trie {
    /// Followed by 256 free slots, so `base + byte` is always in bounds.
    slots: Vec<Slot>,
}

impl Trie {
    /// Builds the tries from `(root, text, id)`; empty texts are skipped, and of two equal texts
    /// under one root the later one wins (as a vocabulary map built in id order does). `None` if
    /// the array would need more than [`MAX_SLOTS`] slots.
    pub(crate) fn build<'a>(items: impl Iterator<Item = (Root, &'a [u8], u32)>) -> Option<Trie> {
        // Sorted by (root, text, id) through a packed key of the root and the first 7 bytes
        // (in the same order as the texts), so most comparisons are one integer compare.
        let mut keys: Vec<(u64, Root, &[u8], u32)> = items
            .filter(|k| !k.1.is_empty())
            .map(|(root, text, id)| {
                let mut key = (root as u64) << 56;
                for (i, &b) in text.iter().take(7).enumerate() {
                    key |= u64::from(b) << (48 - 8 * i);
                }
                (key, root, text, id)
            })
            .collect();
        keys.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.2.cmp(b.2))
                .then_with(|| a.3.cmp(&b.3))
        });
        // Of equal texts, the last (highest id) is kept.
        let mut kept: Vec<(Root, &[u8], u32)> = Vec::with_capacity(keys.len());
        for (_, root, text, id) in keys {
            match kept.last_mut() {
                Some(last) if (last.0, last.1) == (root, text) => *last = (root, text, id),
                _ => kept.push((root, text, id)),
            }
        }
        let keys = kept;
        let mut b = Builder {
            slots: vec![FREE; (keys.len() * 2 + 1024).min(1 << 20)],
            used: vec![0u64; (keys.len() * 2 + 1024).min(1 << 20).div_ceil(64)],
        };
        b.occupy(0, ROOT_CHECK);
        b.occupy(1, ROOT_CHECK);
        let mut first_free = 2usize;
        let mut frontier = 2usize;
        // (node slot, key range sharing the node's prefix, depth)
        let mut stack: Vec<(usize, usize, usize, usize)> = Vec::new();
        let split = keys.partition_point(|k| k.0 == Root::Start);
        stack.push((Root::Start as usize, 0, split, 0));
        stack.push((Root::Continuation as usize, split, keys.len(), 0));
        let mut labels: Vec<(u8, usize, usize)> = Vec::new();
        while let Some((node, mut lo, hi, depth)) = stack.pop() {
            if lo == hi {
                continue;
            }
            // Sorted and deduplicated: at most the first key ends here.
            if keys[lo].1.len() == depth {
                b.slots[node].value = keys[lo].2;
                lo += 1;
            }
            labels.clear();
            for (i, k) in keys.iter().enumerate().take(hi).skip(lo) {
                let byte = k.1[depth];
                match labels.last_mut() {
                    Some(l) if l.0 == byte => l.2 = i + 1,
                    _ => labels.push((byte, i, i + 1)),
                }
            }
            let Some(&(first, _, _)) = labels.first() else {
                continue;
            };
            let first = usize::from(first);
            // Free slots far behind the frontier are given up on, which bounds the search.
            let start = first_free
                .max(frontier.saturating_sub(SEARCH_WINDOW))
                .max(first + 2);
            let mut p = b.next_free(start)?;
            let base = loop {
                let base = p - first;
                if labels[1..]
                    .iter()
                    .all(|&(l, _, _)| !b.is_used(base + usize::from(l)))
                {
                    break base;
                }
                p = b.next_free(p + 1)?;
            };
            b.slots[node].base = base as u32;
            for &(l, lo, hi) in &labels {
                let child = base + usize::from(l);
                b.occupy(child, node as u32);
                frontier = frontier.max(child + 1);
                stack.push((child, lo, hi, depth + 1));
            }
            first_free = b.next_free(first_free)?;
        }
        let mut slots = b.slots;
        let used = slots
            .iter()
            .rposition(|s| s.check != NONE)
            .map_or(0, |i| i + 1);
        slots.truncate(used.max(2));
        slots.resize(slots.len() + 256, FREE);
        slots.shrink_to_fit();
        Some(Trie { slots })
    }

    /// The longest token under `root` that is a prefix of `text`: `(length in bytes, id)`.
    #[inline]
    pub(crate) fn longest_prefix(&self, root: Root, text: &[u8]) -> Option<(usize, u32)> {
        let slots = &self.slots[..];
        let mut node = root as usize;
        let mut best = None;
        for (i, &b) in text.iter().enumerate() {
            let t = slots[node].base as usize + usize::from(b);
            let s = slots[t];
            if s.check != node as u32 {
                break;
            }
            node = t;
            if s.value != NONE {
                best = Some((i + 1, s.value));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_per_root() {
        let items: Vec<(Root, &[u8], u32)> = vec![
            (Root::Start, b"a", 1),
            (Root::Start, b"abc", 2),
            (Root::Continuation, b"b", 3),
            (Root::Continuation, b"bc", 4),
            (Root::Start, b"", 5),
            (Root::Start, b"abc", 6),
            (Root::Start, b"\xff\x00\xff", 7),
        ];
        let t = Trie::build(items.into_iter()).unwrap();
        assert_eq!(t.longest_prefix(Root::Start, b"abcd"), Some((3, 6)));
        assert_eq!(t.longest_prefix(Root::Start, b"ab"), Some((1, 1)));
        assert_eq!(t.longest_prefix(Root::Start, b"b"), None);
        assert_eq!(t.longest_prefix(Root::Continuation, b"bcx"), Some((2, 4)));
        assert_eq!(t.longest_prefix(Root::Continuation, b""), None);
        assert_eq!(
            t.longest_prefix(Root::Start, b"\xff\x00\xff\xff"),
            Some((3, 7))
        );
        assert_eq!(t.longest_prefix(Root::Start, b"\xff\x00"), None);
    }

    /// Every key is found with its id, and every prefix walk agrees with a plain search.
    #[test]
    fn agrees_with_a_plain_search() {
        let mut words: Vec<Vec<u8>> = Vec::new();
        let mut x = 12345u32;
        for _ in 0..3000 {
            let mut w = Vec::new();
            for _ in 0..(x % 7 + 1) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                w.push(b"abcdez\xc3\xa9\xff\x00"[(x >> 16) as usize % 10]);
            }
            words.push(w);
        }
        let items = words.iter().enumerate().map(|(i, w)| {
            (
                if i % 3 == 0 {
                    Root::Continuation
                } else {
                    Root::Start
                },
                &w[..],
                i as u32,
            )
        });
        let t = Trie::build(items).unwrap();
        for (i, w) in words.iter().enumerate() {
            let root = if i % 3 == 0 {
                Root::Continuation
            } else {
                Root::Start
            };
            let plain = (1..=w.len()).rev().find_map(|n| {
                words
                    .iter()
                    .enumerate()
                    .rev()
                    .find(|(j, v)| (*j % 3 == 0) == (root == Root::Continuation) && v[..] == w[..n])
                    .map(|(j, _)| (n, j as u32))
            });
            assert_eq!(t.longest_prefix(root, w), plain, "{w:?}");
        }
    }
}
