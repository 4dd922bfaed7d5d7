//! A per-thread cache of word encodings.
//!
//! Text repeats words (in the project corpus 72 % of the words of a single pass have been seen
//! before in that pass), and a word's ids depend only on its bytes and the vocabulary, so the merge
//! loop's result is memoized by word. The cache belongs to one thread (no locking) and to one
//! tokenizer at a time (it is emptied when another tokenizer uses the thread); it is bounded and
//! simply emptied when full.

use crate::map::NONE;

/// Words longer than this (bytes) are not cached.
pub(crate) const MAX_WORD: usize = 64;
/// Entries before the cache is emptied.
const MAX_ENTRIES: usize = 1 << 14;
const SLOTS: usize = MAX_ENTRIES * 2;

#[derive(Clone, Copy)]
struct CacheEntry {
    hash: u64,
    key_start: u32,
    key_len: u32,
    ids_start: u32,
    ids_len: u32,
}

#[derive(Default)]
pub(crate) struct WordCache {
    owner: u64,
    slots: Vec<u32>,
    entries: Vec<CacheEntry>,
    keys: Vec<u8>,
    ids: Vec<u32>,
}

impl WordCache {
    /// Makes the cache belong to tokenizer `owner`, emptying it if it belonged to another
    /// (then returns true).
    #[inline]
    pub(crate) fn claim(&mut self, owner: u64) -> bool {
        if self.owner != owner || self.slots.is_empty() {
            self.clear();
            self.owner = owner;
            true
        } else {
            false
        }
    }

    pub(crate) fn clear(&mut self) {
        if self.slots.len() != SLOTS {
            self.slots = vec![NONE; SLOTS];
        } else {
            self.slots.fill(NONE);
        }
        self.entries.clear();
        self.keys.clear();
        self.ids.clear();
        self.entries.reserve(MAX_ENTRIES);
        self.keys.reserve(MAX_ENTRIES * 12);
        self.ids.reserve(MAX_ENTRIES * 3);
    }

    /// The cached ids of `word` (whose hash is `hash`).
    #[inline]
    pub(crate) fn get(&self, word: &[u8], hash: u64) -> Option<&[u32]> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = hash as usize & mask;
        loop {
            let e = *self.slots.get(i)?;
            if e == NONE {
                return None;
            }
            let en = self.entries.get(e as usize)?;
            if en.hash == hash {
                let k = self
                    .keys
                    .get(en.key_start as usize..(en.key_start + en.key_len) as usize)?;
                if k == word {
                    return self
                        .ids
                        .get(en.ids_start as usize..(en.ids_start + en.ids_len) as usize);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Remembers `ids` for `word` (not already present).
    pub(crate) fn insert(&mut self, word: &[u8], hash: u64, ids: &[u32]) {
        if self.slots.is_empty() || self.entries.len() >= MAX_ENTRIES {
            self.clear();
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        while self.slots[i] != NONE {
            i = (i + 1) & mask;
        }
        self.slots[i] = self.entries.len() as u32;
        self.entries.push(CacheEntry {
            hash,
            key_start: self.keys.len() as u32,
            key_len: word.len() as u32,
            ids_start: self.ids.len() as u32,
            ids_len: ids.len() as u32,
        });
        self.keys.extend_from_slice(word);
        self.ids.extend_from_slice(ids);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_clear_and_owner() {
        let mut c = WordCache::default();
        c.claim(1);
        assert!(c.get(b"ab", 7).is_none());
        c.insert(b"ab", 7, &[1, 2]);
        c.insert(b"cd", 7, &[3]);
        assert_eq!(c.get(b"ab", 7), Some(&[1, 2][..]));
        assert_eq!(c.get(b"cd", 7), Some(&[3][..]));
        assert!(c.get(b"ef", 7).is_none());
        c.claim(1);
        assert_eq!(c.get(b"ab", 7), Some(&[1, 2][..]));
        c.claim(2);
        assert!(c.get(b"ab", 7).is_none());
        for k in 0..(MAX_ENTRIES as u64 + 5) {
            c.insert(&k.to_le_bytes(), k, &[k as u32]);
        }
        assert!(c.entries.len() <= MAX_ENTRIES);
    }
}
