//! Q8_0 weights re-laid out once for an int8 GEMM kernel ([`PackedQ8_0`]).
//!
//! # Layout
//!
//! Rows are taken in groups of [`PACK_ROWS`] = 16 (the last group is padded with zero rows).
//! For each group and each 32-value block `b`, the 16 rows' quants fill 512 bytes: 8 steps `s` of
//! 64 bytes, where bytes `4r..4r+4` of step `s` are quants `4s..4s+4` of row `r` of the group,
//! stored as `q + 128` (unsigned). One 64-byte load then holds 4 consecutive values of 16 rows,
//! which `VPDPBUSD` multiplies by 4 activation bytes broadcast to every lane, so each i32 lane
//! accumulates one row's dot product: no horizontal sums, no shuffles. The `+128` makes the
//! weights the unsigned operand; the kernel subtracts `128·Σa` per block (precomputed with the
//! activations). The 16 rows' f16 scales of each block are kept apart (32 bytes per group and
//! block), so both streams are read in address order.
//!
//! A group of k = 768 is 24 · 512 = 12 KiB of quants: it stays in L1 while every token tile
//! passes over it. The packed matrix takes the same memory as the Q8_0 original (32 + 2 bytes per
//! 32 values, plus the padding rows).

use half::f16;
use rayon::prelude::*;

use core::ops::Range;
use std::sync::Arc;

use zerocopy::{FromBytes, IntoBytes};

use crate::acts::Align64;
use crate::block::{BlockQ8_0, QK8_0};
use crate::{Backend, KernelError};

/// Rows per packed group.
pub const PACK_ROWS: usize = 16;
/// Bytes of quants per group and block.
pub(crate) const GROUP_BLOCK_BYTES: usize = PACK_ROWS * QK8_0;

/// A Q8_0 matrix (`rows × k`) in the packed layout of one backend's int8 kernel (see the module
/// docs). Made by [`Kernels::pack_q8_0`](crate::Kernels::pack_q8_0); multiply with
/// [`Kernels::matmul_packed_q8_0`](crate::Kernels::matmul_packed_q8_0).
pub struct PackedQ8_0 {
    pub(crate) backend: Backend,
    pub(crate) rows: usize,
    pub(crate) k: usize,
    /// `groups × nb × 512` bytes of `q + 128`, then `groups × nb × 16` f16 scales (a heap
    /// buffer may have a few more bytes after them).
    buf: Buffer,
    /// Bytes of quants at the start of `buf`.
    qs_len: usize,
    /// Bytes of quants and scales.
    len: usize,
}

/// The byte lengths of a packed `rows × k` matrix (`k` a multiple of 32): its quants, and its
/// quants and scales together; `None` if they overflow `usize`.
fn packed_lens(rows: usize, k: usize) -> Option<(usize, usize)> {
    let blocks = rows.div_ceil(PACK_ROWS).checked_mul(k / QK8_0)?;
    let qs = blocks.checked_mul(GROUP_BLOCK_BYTES)?;
    let d = blocks.checked_mul(PACK_ROWS * size_of::<f16>())?;
    Some((qs, qs.checked_add(d)?))
}

impl std::fmt::Debug for PackedQ8_0 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedQ8_0")
            .field("backend", &self.backend.name())
            .field("rows", &self.rows)
            .field("k", &self.k)
            .finish_non_exhaustive()
    }
}

impl PackedQ8_0 {
    /// Number of output rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The backend whose kernel this layout is for.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Bytes of memory the packed matrix holds.
    pub fn size_bytes(&self) -> usize {
        self.buf.bytes().len()
    }

    /// The packed bytes (quants, then scales): what [`PackedQ8_0::from_shared`] reads back, for
    /// example from a cache file.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf.bytes()[..self.len]
    }

    /// The length of [`PackedQ8_0::as_bytes`] for a `rows × k` matrix (`k` a multiple of 32);
    /// `None` if it overflows `usize`.
    pub fn byte_len(rows: usize, k: usize) -> Option<usize> {
        packed_lens(rows, k).map(|(_, len)| len)
    }

    /// A packed `rows × k` matrix whose bytes ([`PackedQ8_0::as_bytes`] of a matrix packed by
    /// `backend`) are `owner[range]`, used in place — for example a memory-mapped cache file.
    ///
    /// Errors if `backend`, `rows` and `k` do not describe a packing this build can make, or if
    /// the range has the wrong length, lies outside `owner` or is not 64-byte aligned. The bytes
    /// themselves cannot be checked: any bytes are valid weights, so they must come from
    /// `as_bytes` of the same shape and backend.
    pub fn from_shared(
        backend: Backend,
        rows: usize,
        k: usize,
        owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
        range: Range<usize>,
    ) -> Result<PackedQ8_0, KernelError> {
        let supported = crate::Kernels::with_backend(backend)
            .map(|kern| kern.supports_packed_q8_0())
            .unwrap_or(false);
        if !supported {
            return Err(KernelError::Unsupported { backend });
        }
        if rows == 0 || k == 0 || !k.is_multiple_of(QK8_0) {
            return Err(KernelError::NotBlockMultiple { what: "k", len: k });
        }
        let (qs_len, len) = packed_lens(rows, k).ok_or(KernelError::Overflow {
            what: "packed matrix",
        })?;
        crate::check_len("packed bytes", range.len(), len)?;
        let bytes = (*owner).as_ref();
        let Some(slice) = bytes.get(range.clone()) else {
            return Err(KernelError::LengthMismatch {
                what: "packed bytes owner",
                len: bytes.len(),
                expected: range.end,
            });
        };
        if !(slice.as_ptr() as usize).is_multiple_of(64) {
            return Err(KernelError::InvalidShape {
                reason: "packed bytes must be 64-byte aligned",
            });
        }
        Ok(PackedQ8_0 {
            backend,
            rows,
            k,
            buf: Buffer::Shared { owner, range },
            qs_len,
            len,
        })
    }

    /// Blocks per row.
    pub(crate) fn blocks_per_row(&self) -> usize {
        self.k / QK8_0
    }

    /// The quants (64-byte aligned).
    pub(crate) fn qs(&self) -> &[u8] {
        &self.buf.bytes()[..self.qs_len]
    }

    /// The scales.
    pub(crate) fn d(&self) -> &[f16] {
        // `pack` laid them out as whole, 2-aligned f16s after the quants (64-byte multiple).
        <[f16]>::ref_from_bytes(&self.buf.bytes()[self.qs_len..self.len]).unwrap_or(&[])
    }

    /// Block `b` of row `row` as the original [`BlockQ8_0`] (`row < rows`, `b < k/32`): the
    /// inverse of packing, for tests and debugging.
    pub fn block(&self, row: usize, b: usize) -> BlockQ8_0 {
        let nb = self.blocks_per_row();
        let (g, r) = (row / PACK_ROWS, row % PACK_ROWS);
        let bytes = self.qs();
        let base = (g * nb + b) * GROUP_BLOCK_BYTES;
        let qs = core::array::from_fn(|j| {
            let (s, i) = (j / 4, j % 4);
            (bytes[base + s * 64 + 4 * r + i] ^ 0x80) as i8
        });
        BlockQ8_0 {
            d: self.d()[(g * nb + b) * PACK_ROWS + r],
            qs,
        }
    }
}

/// The memory of a packed matrix: its own ([`OwnedBuffer`]) or bytes owned elsewhere (a packed
/// matrix read back from a file): `owner[range]`.
enum Buffer {
    Owned(OwnedBuffer),
    Shared {
        owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
        range: Range<usize>,
    },
}

impl Buffer {
    fn bytes(&self) -> &[u8] {
        match self {
            Buffer::Owned(b) => b.bytes(),
            Buffer::Shared { owner, range } => &(**owner).as_ref()[range.clone()],
        }
    }
}

/// Memory that [`pack`] fills: an anonymous map filled in one go (`MAP_POPULATE`: one system
/// call instead of a page fault per 4 KiB page, which costs ~3 µs each in a virtual machine), or
/// the heap where no map can be made.
enum OwnedBuffer {
    Map(memmap2::MmapMut),
    Heap(Vec<Align64>),
}

impl OwnedBuffer {
    /// A zeroed buffer of at least `len` bytes, 64-byte aligned.
    fn zeroed(len: usize) -> OwnedBuffer {
        let map = memmap2::MmapOptions::new()
            .len(len.max(1))
            .populate()
            .map_anon();
        match map {
            Ok(m) => OwnedBuffer::Map(m),
            Err(_) => OwnedBuffer::Heap(vec![Align64([0; 64]); len.div_ceil(64)]),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            OwnedBuffer::Map(m) => m,
            OwnedBuffer::Heap(v) => v.as_bytes(),
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            OwnedBuffer::Map(m) => m,
            OwnedBuffer::Heap(v) => v.as_mut_bytes(),
        }
    }
}

/// Packs one group in portable code: `rows[r]` is row `r`'s `nb` blocks (`rows.len() <= 16`;
/// missing rows are zero weights); `gq` receives the group's `nb · 128` dwords of quants (block
/// `b`, step `s`, row `r` is dword `(b·8 + s)·16 + r`), `gd` its `nb · 16` scales.
pub(crate) fn pack_group_portable(rows: &[&[BlockQ8_0]], gq: &mut [u32], gd: &mut [f16]) {
    for (r, row) in rows.iter().enumerate() {
        for ((blk, dst), dd) in row
            .iter()
            .zip(gq.chunks_exact_mut(8 * PACK_ROWS))
            .zip(gd.chunks_exact_mut(PACK_ROWS))
        {
            dd[r] = blk.d;
            let quads: &[[u8; 4]; 8] = zerocopy::transmute_ref!(&blk.qs);
            for (s, quad) in quads.iter().enumerate() {
                dst[s * PACK_ROWS + r] = u32::from_le_bytes(*quad) ^ 0x8080_8080;
            }
        }
    }
    // Padding rows hold zero weights (`0 + 128`; their scales stay 0).
    for dst in gq.chunks_exact_mut(PACK_ROWS) {
        dst[rows.len()..].fill(0x8080_8080);
    }
}

/// Packs `w` (`rows × nb` blocks, checked by the caller; `Overflow` if the padded matrix does
/// not fit in memory's address range) for `backend`, one group of 16 rows at a
/// time with `pack_group` (the portable [`pack_group_portable`] or a backend's faster one, with
/// the same output), splitting the groups over the current rayon pool.
pub(crate) fn pack<G>(
    backend: Backend,
    w: &[BlockQ8_0],
    rows: usize,
    nb: usize,
    pack_group: G,
) -> Result<PackedQ8_0, KernelError>
where
    G: Fn(&[&[BlockQ8_0]], &mut [u32], &mut [f16]) + Sync,
{
    let (qs_len, len) = packed_lens(rows, nb * QK8_0).ok_or(KernelError::Overflow {
        what: "packed matrix",
    })?;
    let mut buf = OwnedBuffer::zeroed(len);
    let (qs, d) = buf.bytes_mut()[..len].split_at_mut(qs_len);
    // Both views fit: `qs_len` is a multiple of 64 and the buffer is 64-byte aligned.
    let (Ok(qs), Ok(d)) = (<[u32]>::mut_from_bytes(qs), <[f16]>::mut_from_bytes(d)) else {
        unreachable!("a 64-byte aligned buffer holds whole u32s and f16s")
    };
    qs.par_chunks_mut(nb * GROUP_BLOCK_BYTES / 4)
        .zip(d.par_chunks_mut(nb * PACK_ROWS))
        .enumerate()
        .for_each(|(g, (gq, gd))| {
            let first = g * PACK_ROWS;
            let group: Vec<&[BlockQ8_0]> = (first..rows.min(first + PACK_ROWS))
                .map(|r| &w[r * nb..(r + 1) * nb])
                .collect();
            pack_group(&group, gq, gd);
        });
    Ok(PackedQ8_0 {
        backend,
        rows,
        k: nb * QK8_0,
        buf: Buffer::Owned(buf),
        qs_len,
        len,
    })
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The AVX-512 group packer writes exactly the portable packer's bytes, for full and
    /// partial groups.
    #[test]
    fn avx512_group_packing_matches_portable() {
        let Some(t) = crate::x86_64::avx512vnni::Avx512Vnni::detect() else {
            return; // nothing to compare on this CPU
        };
        let nb = 3;
        let mut seed = 7u32;
        let blocks: Vec<BlockQ8_0> = (0..PACK_ROWS * nb)
            .map(|_| {
                let mut x = [0.0f32; QK8_0];
                for v in x.iter_mut() {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    *v = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                }
                BlockQ8_0::quantize(&x)
            })
            .collect();
        for n_rows in [PACK_ROWS, 9, 1] {
            let rows: Vec<&[BlockQ8_0]> =
                (0..n_rows).map(|r| &blocks[r * nb..(r + 1) * nb]).collect();
            let (mut q1, mut d1) = (vec![1u32; nb * 128], vec![f16::ONE; nb * PACK_ROWS]);
            let (mut q2, mut d2) = (vec![2u32; nb * 128], vec![f16::ONE; nb * PACK_ROWS]);
            d1.iter_mut()
                .chain(d2.iter_mut())
                .for_each(|d| *d = f16::ZERO);
            pack_group_portable(&rows, &mut q1, &mut d1);
            t.pack_group(&rows, &mut q2, &mut d2);
            assert_eq!(q1, q2, "{n_rows} rows");
            assert_eq!(d1, d2, "{n_rows} rows");
        }
    }
}
