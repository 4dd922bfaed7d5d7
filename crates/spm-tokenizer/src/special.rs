//! Matching special-token text (CONTROL, USER_DEFINED and UNKNOWN pieces) inside the input.
//!
//! Matching is leftmost-longest, as SentencePiece's prefix matcher and Hugging Face's added-token
//! Aho-Corasick do: scanning left to right, at the first position where some special piece starts,
//! the longest one wins. The pieces are kept in a byte trie laid out in flat arrays (no allocation
//! per node), built from the sorted piece texts; a 256-entry first-byte table lets the scan skip
//! every byte that cannot start a special piece without touching the trie.

use crate::map::NONE;

const PREFIX4_BITS: usize = 1 << 16;

/// Hash of the first 4 bytes of `t` (which has at least 4), in `0..PREFIX4_BITS`.
#[inline(always)]
fn prefix4_hash(t: &[u8]) -> usize {
    let w = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    (w.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

#[derive(Clone, Copy)]
struct Node {
    /// First edge in `edges`.
    edge_start: u32,
    /// Number of edges.
    edge_count: u32,
    /// Id of the piece ending here (`NONE` if none).
    id: u32,
    /// Whether that piece is matched even when special parsing is off (USER_DEFINED).
    always: bool,
}

pub(crate) struct SpecialMatcher {
    first: [bool; 256],
    /// Bytes that start a special piece shorter than 4 bytes.
    short_first: [bool; 256],
    /// Bit set over a hash of the first 4 bytes of every special piece of 4 bytes or more: most
    /// positions that pass the first-byte test (e.g. every `▁` for Gemma, whose `▁▁`… pieces are
    /// user-defined) are rejected here without walking the trie.
    prefix4: Vec<u64>,
    nodes: Vec<Node>,
    edge_bytes: Vec<u8>,
    edge_targets: Vec<u32>,
}

impl SpecialMatcher {
    /// Builds the matcher from `(text, id, always)` triples. Empty texts are ignored.
    /// On duplicate texts the later id wins.
    pub(crate) fn new(mut items: Vec<(Vec<u8>, u32, bool)>) -> Self {
        items.retain(|(t, _, _)| !t.is_empty());
        // Stable sort keeps id order among equal texts; the last one is taken below.
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut m = SpecialMatcher {
            first: [false; 256],
            short_first: [false; 256],
            prefix4: vec![0u64; PREFIX4_BITS / 64],
            nodes: Vec::new(),
            edge_bytes: Vec::new(),
            edge_targets: Vec::new(),
        };
        for (t, _, _) in &items {
            m.first[usize::from(t[0])] = true;
            if t.len() < 4 {
                m.short_first[usize::from(t[0])] = true;
            } else {
                let h = prefix4_hash(t);
                m.prefix4[h / 64] |= 1 << (h % 64);
            }
        }
        m.nodes.push(Node {
            edge_start: 0,
            edge_count: 0,
            id: NONE,
            always: false,
        });
        // Breadth-first over (node, range of items sharing the node's prefix, depth), so each node's
        // edges are contiguous.
        let mut queue = std::collections::VecDeque::new();
        queue.push_back((0usize, 0usize, items.len(), 0usize));
        while let Some((node, lo, hi, depth)) = queue.pop_front() {
            let mut i = lo;
            // Items whose text ends exactly at this depth terminate here (sorted first).
            while i < hi && items[i].0.len() == depth {
                m.nodes[node].id = items[i].1;
                m.nodes[node].always = items[i].2;
                i += 1;
            }
            let edge_start = m.edge_bytes.len();
            while i < hi {
                let b = items[i].0[depth];
                let mut j = i + 1;
                while j < hi && items[j].0[depth] == b {
                    j += 1;
                }
                let child = m.nodes.len();
                m.nodes.push(Node {
                    edge_start: 0,
                    edge_count: 0,
                    id: NONE,
                    always: false,
                });
                m.edge_bytes.push(b);
                m.edge_targets.push(child as u32);
                queue.push_back((child, i, j, depth + 1));
                i = j;
            }
            m.nodes[node].edge_start = edge_start as u32;
            m.nodes[node].edge_count = (m.edge_bytes.len() - edge_start) as u32;
        }
        m
    }

    /// Whether byte `b` can start a special piece.
    #[inline(always)]
    pub(crate) fn can_start(&self, b: u8) -> bool {
        self.first[usize::from(b)]
    }

    /// Whether a special piece may start at `text[0]` (no false negatives).
    #[inline(always)]
    pub(crate) fn may_match(&self, text: &[u8]) -> bool {
        let Some(&b) = text.first() else {
            return false;
        };
        if self.short_first[usize::from(b)] {
            return true;
        }
        if text.len() < 4 {
            return false;
        }
        let h = prefix4_hash(text);
        self.prefix4[h / 64] & (1 << (h % 64)) != 0
    }

    /// Whether there are no special pieces at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.edge_bytes.is_empty()
    }

    /// The longest special piece that `text` starts with: `(id, byte length)`.
    /// With `all` false only USER_DEFINED pieces count.
    #[inline]
    pub(crate) fn longest_prefix(&self, text: &[u8], all: bool) -> Option<(u32, usize)> {
        let mut node = 0usize;
        let mut best = None;
        for (depth, &b) in text.iter().enumerate() {
            let n = self.nodes[node];
            let s = n.edge_start as usize;
            let e = s + n.edge_count as usize;
            match self.edge_bytes[s..e].iter().position(|&x| x == b) {
                Some(k) => node = self.edge_targets[s + k] as usize,
                None => break,
            }
            let n = self.nodes[node];
            if n.id != NONE && (all || n.always) {
                best = Some((n.id, depth + 1));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_and_filtered() {
        let m = SpecialMatcher::new(vec![
            (b"<a>".to_vec(), 1, true),
            (b"<ab>".to_vec(), 2, false),
            (b"\n".to_vec(), 3, true),
            (b"\n\n".to_vec(), 4, true),
            (b"".to_vec(), 5, true),
        ]);
        assert!(m.can_start(b'<') && m.can_start(b'\n') && !m.can_start(b'a'));
        assert!(m.may_match(b"<a>") && m.may_match(b"<ab>") && m.may_match(b"\n"));
        assert!(!m.may_match(b"") && !m.may_match(b"a"));
        assert_eq!(m.longest_prefix(b"<a>x", true), Some((1, 3)));
        assert_eq!(m.longest_prefix(b"<ab>", true), Some((2, 4)));
        assert_eq!(m.longest_prefix(b"<ab>", false), None);
        assert_eq!(m.longest_prefix(b"\n\n\n", true), Some((4, 2)));
        assert_eq!(m.longest_prefix(b"<", true), None);
        assert_eq!(m.longest_prefix(b"", true), None);
    }
}
