//! Hash tables from piece bytes to piece id, built once per vocabulary.
//!
//! Why not `HashMap<String, u32>`: that costs one heap allocation per piece (262,144 for Gemma) and
//! SipHash per lookup. Here every piece lives in one byte arena and the tables hold fixed-size slots:
//!
//! * pieces of 1..=7 bytes (most lookups of the merge loop) live in a table whose slot holds the
//!   whole key packed in a `u64` (bytes + length), so a lookup is one hash, usually one slot, and one
//!   integer compare, with no access to the arena;
//! * longer pieces live in a table with a 32-bit hash tag, the arena offset and length, compared
//!   with the arena bytes only when tag and length agree.
//!
//! Each slot carries the piece's score and a "mergeable" flag, so a BPE lookup needs no other memory.

/// Sentinel for an empty slot / missing id.
pub(crate) const NONE: u32 = u32::MAX;

const MERGEABLE: u32 = 1 << 31;
const ID_MASK: u32 = !MERGEABLE;

/// A lookup hit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hit {
    pub id: u32,
    pub score: f32,
    pub mergeable: bool,
}

#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

const K0: u64 = 0x9E37_79B9_7F4A_7C15;
const K1: u64 = 0xBF58_476D_1CE4_E5B9;
const K2: u64 = 0x94D0_49BB_1331_11EB;

/// The bytes of `b` (at most 8) as a little-endian integer, zero-extended, with two overlapping
/// fixed-size loads instead of a variable-length copy (which would be a `memcpy` call).
#[inline(always)]
pub(crate) fn load_le(b: &[u8]) -> u64 {
    let n = b.len();
    match n {
        0 => 0,
        1 => u64::from(b[0]),
        2..=3 => {
            let lo = u64::from(u16::from_le_bytes([b[0], b[1]]));
            let hi = u64::from(u16::from_le_bytes([b[n - 2], b[n - 1]]));
            lo | (hi << ((n - 2) * 8))
        }
        4..=7 => {
            let lo = u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let hi = u64::from(u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]));
            lo | (hi << ((n - 4) * 8))
        }
        _ => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
    }
}

/// `a == b` for slices of equal length; 8..=16 bytes with two overlapping word compares instead of
/// a `memcmp` call.
#[inline(always)]
fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if (8..=16).contains(&n) {
        load_le(&a[..8]) == load_le(&b[..8]) && load_le(&a[n - 8..]) == load_le(&b[n - 8..])
    } else {
        a == b
    }
}

/// Packs 1..=7 bytes and their length into a non-zero `u64` (injective on such strings).
#[inline(always)]
fn pack_short(b: &[u8]) -> u64 {
    load_le(b) | ((b.len() as u64) << 56)
}

#[inline(always)]
fn hash_short(key: u64) -> u64 {
    fold(key ^ K1, K0)
}

/// A fast, well-mixing hash of a byte string (not DoS-resistant; the keys are the model's).
#[inline(always)]
pub(crate) fn hash_long(b: &[u8]) -> u64 {
    let mut h = (b.len() as u64).wrapping_mul(K0);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = fold(h ^ u64::from_le_bytes(w), K1);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        h = fold(h ^ load_le(rem), K2);
    }
    fold(h, K0)
}

#[derive(Clone, Copy)]
#[repr(C)]
struct ShortSlot {
    /// Packed key; 0 = empty.
    key: u64,
    /// Id with `MERGEABLE` in the top bit.
    id_flags: u32,
    score: f32,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct LongSlot {
    /// High 32 bits of the hash.
    tag: u32,
    /// Id with `MERGEABLE` in the top bit; `NONE` = empty.
    id_flags: u32,
    /// Start of the piece bytes in the arena.
    start: u32,
    len: u32,
    score: f32,
}

pub(crate) struct PieceMap {
    short: Vec<ShortSlot>,
    short_mask: usize,
    long: Vec<LongSlot>,
    long_mask: usize,
}

/// Slots for `n` keys: a power of two with a load factor of at most 0.6.
fn table_size(n: usize) -> usize {
    (n.saturating_mul(5) / 3).max(16).next_power_of_two()
}

/// Whether a new entry replaces an existing one with the same text: a mergeable piece replaces a
/// non-mergeable one; otherwise the later id wins (as in llama.cpp's `token_to_id`).
fn replaces(new_flags: u32, old_flags: u32) -> bool {
    new_flags & MERGEABLE != 0 || old_flags & MERGEABLE == 0
}

/// The pieces of a vocabulary as the table builders read them: `offsets[i]..offsets[i + 1]` is
/// piece `i` in `arena`; `mergeable(i)` says whether it takes part in merges.
pub(crate) struct Pieces<'a, M> {
    pub arena: &'a [u8],
    pub offsets: &'a [u32],
    pub scores: &'a [f32],
    pub mergeable: M,
}

impl<M: Fn(usize) -> bool> Pieces<'_, M> {
    fn len(&self) -> usize {
        self.scores.len().min(self.offsets.len().saturating_sub(1))
    }

    fn bounds(&self, i: usize) -> (u32, u32) {
        (self.offsets[i], self.offsets[i + 1].max(self.offsets[i]))
    }

    fn flags(&self, i: usize) -> u32 {
        i as u32 | if (self.mergeable)(i) { MERGEABLE } else { 0 }
    }

    /// Number of pieces whose length is in `lens`.
    fn count(&self, lens: impl Fn(u32) -> bool) -> usize {
        self.offsets
            .windows(2)
            .take(self.len())
            .filter(|w| lens(w[1].saturating_sub(w[0])))
            .count()
    }
}

/// The table of pieces of 1..=7 bytes.
pub(crate) struct ShortTable {
    slots: Vec<ShortSlot>,
    mask: usize,
}

/// The table of pieces of more than 7 bytes.
pub(crate) struct LongTable {
    slots: Vec<LongSlot>,
    mask: usize,
}

// Building inserts every piece straight into its table, in id order (so duplicates are met in id
// order), a batch at a time: first the keys and hashes of `BATCH` pieces (whose length-dependent
// branches mispredict), then their inserts, a short, well-predicted loop in which the cache misses
// of independent inserts into the 4-5 MB tables overlap. This measured faster than first
// bucket-sorting the pieces by home slot (one more pass and one more copy of every entry).

/// Pieces hashed before they are inserted.
const BATCH: usize = 64;

/// Reads every value of `loads`, so that independent loads of a batch's home slots are all in
/// flight at once (a portable prefetch): the inserts that follow then find them in cache.
#[inline(always)]
fn touch(loads: impl Iterator<Item = u32>) {
    std::hint::black_box(loads.fold(0u32, |a, v| a ^ v));
}

/// A slot of one of the piece tables.
trait Slot: Copy {
    /// The empty slot.
    const EMPTY: Self;
    /// Whether the slot holds no piece.
    fn is_empty(&self) -> bool;
    /// A word of the slot, read to bring it into cache (see [`touch`]).
    fn word(&self) -> u32;
    /// The piece's id with `MERGEABLE` in the top bit.
    fn id_flags(&self) -> u32;
}

impl Slot for ShortSlot {
    const EMPTY: Self = ShortSlot {
        key: 0,
        id_flags: 0,
        score: 0.0,
    };
    fn is_empty(&self) -> bool {
        self.key == 0
    }
    fn word(&self) -> u32 {
        self.key as u32
    }
    fn id_flags(&self) -> u32 {
        self.id_flags
    }
}

impl Slot for LongSlot {
    const EMPTY: Self = LongSlot {
        tag: 0,
        id_flags: NONE,
        start: 0,
        len: 0,
        score: 0.0,
    };
    fn is_empty(&self) -> bool {
        self.id_flags == NONE
    }
    fn word(&self) -> u32 {
        self.id_flags
    }
    fn id_flags(&self) -> u32 {
        self.id_flags
    }
}

/// An open-addressing table of `size` slots (a power of two) holding the pieces `0..n` that
/// `entry(i)` gives as `(hash, slot)`, inserted in id order `BATCH` at a time (see above);
/// `same(a, b)` says whether two slots hold the same text, and then [`replaces`] decides.
fn build_table<S: Slot>(
    size: usize,
    n: usize,
    entry: impl Fn(usize) -> Option<(u64, S)>,
    same: impl Fn(&S, &S) -> bool,
) -> Vec<S> {
    let mask = size - 1;
    let mut slots = vec![S::EMPTY; size];
    let mut batch = [(0usize, S::EMPTY); BATCH];
    let mut ids = 0..n;
    loop {
        let mut k = 0;
        for i in ids.by_ref() {
            if let Some((hash, slot)) = entry(i) {
                batch[k] = (hash as usize & mask, slot);
                k += 1;
                if k == BATCH {
                    break;
                }
            }
        }
        if k == 0 {
            return slots;
        }
        touch(batch[..k].iter().map(|&(home, _)| slots[home].word()));
        for &(home, new) in &batch[..k] {
            let mut h = home;
            loop {
                let s = &mut slots[h];
                if s.is_empty() {
                    *s = new;
                    break;
                }
                if same(s, &new) {
                    if replaces(new.id_flags(), s.id_flags()) {
                        *s = new;
                    }
                    break;
                }
                h = (h + 1) & mask;
            }
        }
    }
}

impl ShortTable {
    pub(crate) fn build<M: Fn(usize) -> bool>(p: &Pieces<'_, M>) -> Self {
        let size = table_size(p.count(|l| (1..=7).contains(&l)));
        let entry = |i| {
            let (start, end) = p.bounds(i);
            if !(1..=7).contains(&(end - start)) {
                return None;
            }
            let key = pack_short(&p.arena[start as usize..end as usize]);
            let slot = ShortSlot {
                key,
                id_flags: p.flags(i),
                score: p.scores[i],
            };
            Some((hash_short(key), slot))
        };
        let slots = build_table(size, p.len(), entry, |a, b| a.key == b.key);
        ShortTable {
            slots,
            mask: size - 1,
        }
    }
}

impl LongTable {
    pub(crate) fn build<M: Fn(usize) -> bool>(p: &Pieces<'_, M>) -> Self {
        let size = table_size(p.count(|l| l > 7));
        let arena = p.arena;
        let entry = |i| {
            let (start, end) = p.bounds(i);
            if end - start <= 7 {
                return None;
            }
            let h = hash_long(&arena[start as usize..end as usize]);
            let slot = LongSlot {
                tag: (h >> 32) as u32,
                id_flags: p.flags(i),
                start,
                len: end - start,
                score: p.scores[i],
            };
            Some((h, slot))
        };
        let text = |s: &LongSlot| &arena[s.start as usize..(s.start + s.len) as usize];
        let same =
            |a: &LongSlot, b: &LongSlot| a.tag == b.tag && a.len == b.len && text(a) == text(b);
        let slots = build_table(size, p.len(), entry, same);
        LongTable {
            slots,
            mask: size - 1,
        }
    }
}

impl PieceMap {
    /// The map of the two tables (built separately so a caller can schedule them in parallel).
    pub(crate) fn new(short: ShortTable, long: LongTable) -> Self {
        PieceMap {
            short: short.slots,
            short_mask: short.mask,
            long: long.slots,
            long_mask: long.mask,
        }
    }

    /// Builds both tables over `pieces` (one after the other; empty pieces are skipped).
    #[cfg(test)]
    pub(crate) fn build<M: Fn(usize) -> bool>(pieces: &Pieces<'_, M>) -> Self {
        PieceMap::new(ShortTable::build(pieces), LongTable::build(pieces))
    }

    /// Looks `key` up.
    #[inline]
    pub(crate) fn get(&self, arena: &[u8], key: &[u8]) -> Option<Hit> {
        let len = key.len();
        if len <= 7 {
            if len == 0 {
                return None;
            }
            let k = pack_short(key);
            let mut i = hash_short(k) as usize & self.short_mask;
            loop {
                let s = &self.short[i];
                if s.key == k {
                    return Some(Hit {
                        id: s.id_flags & ID_MASK,
                        score: s.score,
                        mergeable: s.id_flags & MERGEABLE != 0,
                    });
                }
                if s.key == 0 {
                    return None;
                }
                i = (i + 1) & self.short_mask;
            }
        }
        let h = hash_long(key);
        let tag = (h >> 32) as u32;
        let mut i = h as usize & self.long_mask;
        loop {
            let s = &self.long[i];
            if s.id_flags == NONE {
                return None;
            }
            if s.tag == tag && s.len as usize == len {
                let start = s.start as usize;
                if arena
                    .get(start..start + len)
                    .is_some_and(|a| eq_bytes(a, key))
                {
                    return Some(Hit {
                        id: s.id_flags & ID_MASK,
                        score: s.score,
                        mergeable: s.id_flags & MERGEABLE != 0,
                    });
                }
            }
            i = (i + 1) & self.long_mask;
        }
    }
}

impl PieceMap {
    /// `(score, id)` of the mergeable piece `key`, id `NONE` if there is none.
    #[inline]
    pub(crate) fn pair(&self, arena: &[u8], key: &[u8]) -> (f32, u32) {
        match self.get(arena, key) {
            Some(h) if h.mergeable => (h.score, h.id),
            _ => (0.0, NONE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_le_matches_zero_padded_copy() {
        let data: Vec<u8> = (1..=9).collect();
        for n in 0..=8 {
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(&data[..n]);
            assert_eq!(load_le(&data[..n]), u64::from_le_bytes(w), "len {n}");
        }
    }

    #[test]
    fn eq_bytes_matches_slice_eq() {
        let a: Vec<u8> = (0..40).collect();
        for n in 0..40 {
            for flip in 0..n {
                let mut b = a[..n].to_vec();
                assert!(eq_bytes(&a[..n], &b));
                b[flip] ^= 1;
                assert!(!eq_bytes(&a[..n], &b), "len {n} flip {flip}");
            }
        }
        assert!(!eq_bytes(b"abcdefgh", b"abcdefghi"));
    }

    #[test]
    fn short_long_and_duplicates() {
        let texts = [
            "a",
            "abcdefg",
            "abcdefgh",
            "a",
            "abcdefghij",
            "abcdefgh",
            "",
        ];
        let mut arena = Vec::new();
        let mut offsets = vec![0u32];
        for t in texts {
            arena.extend_from_slice(t.as_bytes());
            offsets.push(arena.len() as u32);
        }
        let scores: Vec<f32> = (0..texts.len()).map(|i| -(i as f32)).collect();
        let m = PieceMap::build(&Pieces {
            arena: &arena,
            offsets: &offsets,
            scores: &scores,
            mergeable: |i| i != 5,
        });
        // Later duplicate wins among mergeable pieces...
        assert_eq!(m.get(&arena, b"a").unwrap().id, 3);
        // ...but a non-mergeable duplicate does not replace a mergeable piece.
        let h = m.get(&arena, b"abcdefgh").unwrap();
        assert_eq!((h.id, h.mergeable, h.score), (2, true, -2.0));
        assert_eq!(m.get(&arena, b"abcdefg").unwrap().id, 1);
        assert_eq!(m.get(&arena, b"abcdefghij").unwrap().id, 4);
        assert!(m.get(&arena, b"").is_none());
        assert!(m.get(&arena, b"ab").is_none());
        assert!(m.get(&arena, b"abcdefghi").is_none());
        assert!(m.get(&arena, b"a\0").is_none());
    }
}
