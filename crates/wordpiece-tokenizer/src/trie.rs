//! Byte tries of the word-initial and the continuation (`##`) tokens, for greedy longest-prefix
//! matching.
//!
//! Each piece of a word is found in one walk over its bytes (Hugging Face builds a `String` and
//! hashes it for every candidate length instead). The two roots are direct 256-entry tables, since
//! every match starts there; the other nodes keep their children's bytes sorted in one flat array
//! (a short linear scan for the few children deep nodes have, binary search for wide ones).

/// "No node" / "no token".
pub(crate) const NONE: u32 = u32::MAX;

/// Children counts up to this are scanned linearly.
const LINEAR: usize = 8;

pub(crate) struct Trie {
    /// Child of each root per first byte (`NONE` if none): `[start root, continuation root]`.
    roots: [Box<[u32; 256]>; 2],
    /// `edge_start[n]..edge_start[n + 1]` are node `n`'s edges.
    edge_start: Vec<u32>,
    /// Edge bytes, sorted within each node.
    labels: Vec<u8>,
    /// Edge targets.
    targets: Vec<u32>,
    /// Token ending at each node, `NONE` if none.
    value: Vec<u32>,
}

/// Which set of tokens a walk uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Root {
    /// Tokens that start a word (`vocab.txt` lines without `##`).
    Start = 0,
    /// Tokens that continue a word (`##` lines, prefix removed).
    Continuation = 1,
}

impl Trie {
    /// Builds the tries from `(root, text, id)`; empty texts are skipped, and of two equal texts
    /// under one root the later one wins (as a vocabulary map built in id order does).
    pub(crate) fn build<'a>(items: impl Iterator<Item = (Root, &'a [u8], u32)>) -> Trie {
        // Nodes 0 and 1 are the roots. Children lists while building: (byte, node), sorted.
        let mut children: Vec<Vec<(u8, u32)>> = vec![Vec::new(), Vec::new()];
        let mut value: Vec<u32> = vec![NONE, NONE];
        for (root, text, id) in items {
            if text.is_empty() {
                continue;
            }
            let mut node = root as usize;
            for &b in text {
                let kids = &mut children[node];
                node = match kids.binary_search_by_key(&b, |&(l, _)| l) {
                    Ok(i) => kids[i].1 as usize,
                    Err(i) => {
                        let new = value.len();
                        kids.insert(i, (b, new as u32));
                        children.push(Vec::new());
                        value.push(NONE);
                        new
                    }
                };
            }
            value[node] = id;
        }
        let mut roots = [Box::new([NONE; 256]), Box::new([NONE; 256])];
        for (r, table) in roots.iter_mut().enumerate() {
            for &(b, n) in &children[r] {
                table[usize::from(b)] = n;
            }
        }
        let total: usize = children.iter().map(Vec::len).sum();
        let mut edge_start = Vec::with_capacity(children.len() + 1);
        let mut labels = Vec::with_capacity(total);
        let mut targets = Vec::with_capacity(total);
        for kids in &children {
            edge_start.push(labels.len() as u32);
            for &(b, n) in kids {
                labels.push(b);
                targets.push(n);
            }
        }
        edge_start.push(labels.len() as u32);
        Trie {
            roots,
            edge_start,
            labels,
            targets,
            value,
        }
    }

    /// The longest token under `root` that is a prefix of `text`: `(length in bytes, id)`.
    #[inline]
    pub(crate) fn longest_prefix(&self, root: Root, text: &[u8]) -> Option<(usize, u32)> {
        let (&first, rest) = text.split_first()?;
        let mut node = self.roots[root as usize][usize::from(first)];
        if node == NONE {
            return None;
        }
        let mut best = None;
        let mut len = 1usize;
        loop {
            let v = self.value[node as usize];
            if v != NONE {
                best = Some((len, v));
            }
            let Some(&b) = rest.get(len - 1) else { break };
            let n = node as usize;
            let (s, e) = (self.edge_start[n] as usize, self.edge_start[n + 1] as usize);
            let labels = &self.labels[s..e];
            let found = if labels.len() <= LINEAR {
                labels.iter().position(|&l| l == b)
            } else {
                labels.binary_search(&b).ok()
            };
            match found {
                Some(i) => node = self.targets[s + i],
                None => break,
            }
            len += 1;
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
        ];
        let t = Trie::build(items.into_iter());
        assert_eq!(t.longest_prefix(Root::Start, b"abcd"), Some((3, 6)));
        assert_eq!(t.longest_prefix(Root::Start, b"ab"), Some((1, 1)));
        assert_eq!(t.longest_prefix(Root::Start, b"b"), None);
        assert_eq!(t.longest_prefix(Root::Continuation, b"bcx"), Some((2, 4)));
        assert_eq!(t.longest_prefix(Root::Continuation, b""), None);
    }
}
