//! An open-addressing hash table from piece bytes to piece id, built once per vocabulary.
//!
//! Why not `HashMap<String, u32>`: that costs one heap allocation per piece (262,144 for Gemma) and
//! SipHash per lookup. Here every piece lives in one byte arena and the table holds only fixed-size
//! slots, so building is a single pass and a lookup of a byte slice borrowed from the input is one
//! multiply-fold hash, usually one slot and one `memcmp`. Each slot carries the piece's score and a
//! "mergeable" flag so the BPE inner loop needs no other memory access on a hit.

/// Sentinel for an empty slot / missing id.
pub(crate) const NONE: u32 = u32::MAX;

const MERGEABLE: u32 = 1 << 31;

#[derive(Clone, Copy)]
#[repr(C)]
struct Slot {
    /// High 32 bits of the hash.
    tag: u32,
    /// Piece id, or `NONE` for an empty slot.
    id: u32,
    /// Start of the piece bytes in the arena.
    start: u32,
    /// Length of the piece, with `MERGEABLE` in the top bit.
    len_flags: u32,
    /// The piece's score.
    score: f32,
}

const EMPTY: Slot = Slot {
    tag: 0,
    id: NONE,
    start: 0,
    len_flags: 0,
    score: 0.0,
};

/// A lookup hit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hit {
    pub id: u32,
    pub score: f32,
    pub mergeable: bool,
}

pub(crate) struct PieceMap {
    slots: Vec<Slot>,
    mask: usize,
}

#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A fast, well-mixing hash of a short byte string (not DoS-resistant; the keys are the model's).
#[inline(always)]
pub(crate) fn hash_bytes(b: &[u8]) -> u64 {
    const K0: u64 = 0x9E37_79B9_7F4A_7C15;
    const K1: u64 = 0xBF58_476D_1CE4_E5B9;
    const K2: u64 = 0x94D0_49BB_1331_11EB;
    let mut h = (b.len() as u64).wrapping_mul(K0);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = fold(h ^ u64::from_le_bytes(w), K1);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mut w = [0u8; 8];
        w[..rem.len()].copy_from_slice(rem);
        h = fold(h ^ u64::from_le_bytes(w), K2);
    }
    fold(h, K0)
}

impl PieceMap {
    /// An empty table sized for `n` pieces (load factor ≤ 1/2).
    pub(crate) fn with_capacity(n: usize) -> Self {
        let cap = n.saturating_mul(2).max(16).next_power_of_two();
        PieceMap {
            slots: vec![EMPTY; cap],
            mask: cap - 1,
        }
    }

    /// Inserts piece `id` whose bytes are `arena[start..start + len]`.
    ///
    /// On a duplicate text, a mergeable piece replaces a non-mergeable one; otherwise the later id wins
    /// (as in llama.cpp's `token_to_id`).
    pub(crate) fn insert(
        &mut self,
        arena: &[u8],
        id: u32,
        start: u32,
        len: u32,
        score: f32,
        mergeable: bool,
    ) {
        let key = &arena[start as usize..(start + len) as usize];
        let h = hash_bytes(key);
        let tag = (h >> 32) as u32;
        let mut i = (h as usize) & self.mask;
        let len_flags = len | if mergeable { MERGEABLE } else { 0 };
        loop {
            let s = &mut self.slots[i];
            if s.id == NONE {
                *s = Slot {
                    tag,
                    id,
                    start,
                    len_flags,
                    score,
                };
                return;
            }
            if s.tag == tag
                && (s.len_flags & !MERGEABLE) == len
                && &arena[s.start as usize..(s.start + len) as usize] == key
            {
                let old_mergeable = s.len_flags & MERGEABLE != 0;
                if mergeable || !old_mergeable {
                    *s = Slot {
                        tag,
                        id,
                        start,
                        len_flags,
                        score,
                    };
                }
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Looks `key` up.
    #[inline]
    pub(crate) fn get(&self, arena: &[u8], key: &[u8]) -> Option<Hit> {
        let h = hash_bytes(key);
        let tag = (h >> 32) as u32;
        let mut i = (h as usize) & self.mask;
        let len = key.len();
        loop {
            let s = &self.slots[i];
            if s.id == NONE {
                return None;
            }
            if s.tag == tag && (s.len_flags & !MERGEABLE) as usize == len {
                let start = s.start as usize;
                if arena.get(start..start + len) == Some(key) {
                    return Some(Hit {
                        id: s.id,
                        score: s.score,
                        mergeable: s.len_flags & MERGEABLE != 0,
                    });
                }
            }
            i = (i + 1) & self.mask;
        }
    }
}
