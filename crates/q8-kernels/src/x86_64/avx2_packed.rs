//! The AVX2 int8 GEMM over packed Q8_0 weights ([`PackedQ8_0`]).
//!
//! The packing is the one the AVX-512 VNNI kernel uses (see `packed.rs`): per group of 16 rows
//! and block of 32 values, 8 steps of 64 bytes, each holding 4 consecutive quants of the 16 rows
//! as `q + 128`. Here a step is two 32-byte halves (rows 0–7 and 8–15). AVX2 has no unsigned ×
//! signed dot product without saturation risk for `q + 128`, so the kernel flips the bytes back
//! to `q` (one XOR per half, shared by every token of the tile) and uses the sign trick:
//! `VPMADDUBSW(|q|, sign(a, q))` multiplies 4 activation bytes broadcast to every lane by each
//! row's 4 quants (pairs sum to at most 2·128·127: no saturation, even for `q = −128`), and
//! `VPMADDWD` by ones adds the pairs into one i32 per row. After the 8 steps lane `r` of the two
//! accumulators holds the exact block dot product of row `r`: no horizontal sums. It is converted
//! and accumulated with `fma(I, dw·da, acc)` in block order, like the scalar backend, so results
//! are bit-identical to it.
//!
//! A tile is one group of 16 rows × up to [`TILE`] pseudo-tokens (16 ymm registers: 2·`TILE`
//! i32 accumulators, the two halves and their magnitudes, the broadcast and the constants). A
//! group's quants (12 KiB at k = 768) stay in L1 while every token tile passes, so the weights
//! stream from memory once per product, in address order, prefetched into L2 ahead of use.
//! `Int8x2` runs the low part of token `t` as pseudo-token `2t + 1` next to the high part `2t`
//! and adds the two results when storing, as the scalar backend does.

use core::arch::x86_64::*;
use core::ops::Range;

use super::avx2::Avx2;
use crate::acts::{ActivationPrecision, QuantizedActivations, LO_DIV, LO_MUL};
use crate::block::QK8_0;
use crate::packed::{PackedQ8_0, GROUP_BLOCK_BYTES, PACK_ROWS};

/// Most tokens one `Int8` tile handles.
const TILE: usize = 4;
/// Most tokens one `Int8x2` tile handles (twice the accumulators per token).
const PAIR_TILE: usize = 2;
/// Activation bytes of one token super-tile: they stay in L2 while every group of rows passes.
const SUPER_TILE_BYTES: usize = 192 * 1024;
/// How far ahead (in blocks of 512 bytes) the tiles prefetch the packed weights into L2.
const PREFETCH_BLOCKS: usize = 16;

/// One token's quantized activations: `k` values (`i8`, or `i16` for `Int8x2`), a scale per
/// block and, for `Int8x2`, the correction `−128·Σa` per block.
#[derive(Clone, Copy)]
struct ActRow<Q> {
    q: *const Q,
    d: *const f32,
    corr: *const i32,
}

impl Avx2 {
    /// `y = x · Wᵀ` for the rows `rows` (a range starting at a multiple of 16) of packed
    /// weights; `out[t]` is token `t`'s part of `y` for those rows. `w` is packed for this
    /// backend, `acts` are `Int8`/`Int8x2` activations quantized by it for `w.k`, and every
    /// `out[t]` has `rows.len()` values (checked by the dispatcher).
    pub(crate) fn matmul_packed(
        self,
        w: &PackedQ8_0,
        rows: Range<usize>,
        acts: &QuantizedActivations,
        out: &mut [&mut [f32]],
    ) {
        debug_assert!(rows.start.is_multiple_of(PACK_ROWS) && rows.end <= w.rows);
        let (nb, k, tokens) = (w.blocks_per_row(), acts.k, acts.tokens);
        if tokens == 0 || rows.is_empty() {
            return;
        }
        if acts.precision == Some(ActivationPrecision::Int8x2) {
            // Each value as one i16, `LO_MUL·hi + lo` (at most 254·127 + 127 in magnitude),
            // scaled by `d / LO_DIV`: the scalar backend's block integers and scales.
            let a16: Vec<i16> = acts.hi[..tokens * k]
                .iter()
                .zip(&acts.lo[..tokens * k])
                .map(|(&h, &l)| LO_MUL as i16 * i16::from(h) + i16::from(l))
                .collect();
            let d_lo: Vec<f32> = acts.d[..tokens * nb].iter().map(|&d| d / LO_DIV).collect();
            // The tile multiplies the stored `q + 128`: `−128·Σa` per block corrects that.
            let corr: Vec<i32> = a16
                .chunks_exact(QK8_0)
                .map(|blk| -128 * blk.iter().map(|&a| i32::from(a)).sum::<i32>())
                .collect();
            let act = |t: usize| ActRow {
                q: a16[t * k..].as_ptr(),
                d: d_lo[t * nb..].as_ptr(),
                corr: corr[t * nb..].as_ptr(),
            };
            for_each_tile(w, rows, tokens, 2 * k, act, out, |gq, gd, a, count, acc| {
                // SAFETY: `self` proves AVX2, FMA and F16C; `gq`/`gd` are one group's nb blocks
                // of quants and scales; every row of `a` points at a token's k values and nb
                // scales (the dispatcher checked acts' shape against w.k).
                unsafe {
                    match count {
                        1 => tile_i16::<1>(gq, gd, nb, a, acc),
                        _ => tile_i16::<2>(gq, gd, nb, a, acc),
                    }
                }
            });
        } else {
            let act = |t: usize| ActRow {
                q: acts.hi[t * k..].as_ptr(),
                d: acts.d[t * nb..].as_ptr(),
                corr: core::ptr::null(),
            };
            for_each_tile(w, rows, tokens, k, act, out, |gq, gd, a, count, acc| {
                // SAFETY: as above.
                unsafe {
                    match count {
                        1 => tile::<1>(gq, gd, nb, a, acc),
                        2 => tile::<2>(gq, gd, nb, a, acc),
                        3 => tile::<3>(gq, gd, nb, a, acc),
                        _ => tile::<4>(gq, gd, nb, a, acc),
                    }
                }
            });
        }
    }
}

/// Runs `tile(gq, gd, acts, count, acc)` over every group of 16 rows in `rows` × every run of at
/// most `W` of the `tokens` tokens (`act(t)` is token `t`'s row, `token_bytes` its size), in
/// token super-tiles that stay in L2, and stores each tile's results (`acc[i][r]` is row `r` of
/// the group for token `i` of the run) into `out`.
fn for_each_tile<const W: usize, Q, F>(
    w: &PackedQ8_0,
    rows: Range<usize>,
    tokens: usize,
    token_bytes: usize,
    act: impl Fn(usize) -> ActRow<Q>,
    out: &mut [&mut [f32]],
    tile: F,
) where
    F: Fn(*const u8, *const half::f16, &[ActRow<Q>; W], usize, &mut [[f32; PACK_ROWS]; W]),
{
    let nb = w.blocks_per_row();
    // Every token's row, padded with the last one to whole tiles.
    let all: Vec<ActRow<Q>> = (0..tokens.next_multiple_of(W))
        .map(|t| act(t.min(tokens - 1)))
        .collect();
    let super_tile = (SUPER_TILE_BYTES / token_bytes).next_multiple_of(W);
    let (qs, d) = (w.qs(), w.d());
    let mut acc = [[0.0f32; PACK_ROWS]; W];
    for s0 in (0..tokens).step_by(super_tile) {
        let s1 = (s0 + super_tile).min(tokens);
        let mut g_row = rows.start;
        while g_row < rows.end {
            let g = g_row / PACK_ROWS;
            let valid = (rows.end - g_row).min(PACK_ROWS);
            let off = g_row - rows.start;
            let gq = qs[g * nb * GROUP_BLOCK_BYTES..][..nb * GROUP_BLOCK_BYTES].as_ptr();
            let gd = d[g * nb * PACK_ROWS..][..nb * PACK_ROWS].as_ptr();
            let mut t0 = s0;
            while t0 < s1 {
                let count = (s1 - t0).min(W);
                let Ok(tile_acts) = <&[ActRow<Q>; W]>::try_from(&all[t0..t0 + W]) else {
                    return; // unreachable: `all` is padded to whole tiles
                };
                tile(gq, gd, tile_acts, count, &mut acc);
                for (i, a) in acc[..count].iter().enumerate() {
                    out[t0 + i][off..off + valid].copy_from_slice(&a[..valid]);
                }
                t0 += count;
            }
            g_row += PACK_ROWS;
        }
    }
}

/// One group of 16 rows × `T` tokens over all `nb` blocks with `Int8` activations; writes the
/// 16 outputs of token `t` to `out[t]`.
///
/// # Safety
/// AVX2, FMA and F16C must be available; `qs` must point to `nb · 512` bytes (64-byte aligned)
/// and `d` to `nb · 16` scales of one packed group; each of `acts[..T]` must point to `32·nb`
/// values and `nb` scales.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const T: usize>(
    qs: *const u8,
    d: *const half::f16,
    nb: usize,
    acts: &[ActRow<i8>; TILE],
    out: &mut [[f32; PACK_ROWS]; TILE],
) {
    let ones = _mm256_set1_epi16(1);
    let flip = _mm256_set1_epi8(i8::MIN);
    let mut facc = [[_mm256_setzero_ps(); 2]; T];
    for b in 0..nb {
        // SAFETY: b < nb: block b's 16 scales, 512 quant bytes and every pseudo-token's block b
        // are in bounds (this function's contract).
        unsafe {
            let wq = qs.add(b * GROUP_BLOCK_BYTES);
            let mut iacc = [[_mm256_setzero_si256(); 2]; T];
            for s in 0..8 {
                // Fetch every line of the block PREFETCH_BLOCKS ahead into L2. The address may
                // lie past the matrix (prefetches never fault), hence `wrapping_add`.
                _mm_prefetch::<_MM_HINT_T1>(
                    wq.wrapping_add(PREFETCH_BLOCKS * GROUP_BLOCK_BYTES + 64 * s)
                        .cast(),
                );
                let q: [__m256i; 2] = core::array::from_fn(|h| {
                    _mm256_xor_si256(_mm256_loadu_si256(wq.add(64 * s + 32 * h).cast()), flip)
                });
                let mag = [_mm256_abs_epi8(q[0]), _mm256_abs_epi8(q[1])];
                for (t, ia) in iacc.iter_mut().enumerate() {
                    let a = acts[t]
                        .q
                        .add(b * QK8_0 + 4 * s)
                        .cast::<i32>()
                        .read_unaligned();
                    let av = _mm256_set1_epi32(a);
                    for h in 0..2 {
                        let prod = _mm256_maddubs_epi16(mag[h], _mm256_sign_epi8(av, q[h]));
                        ia[h] = _mm256_add_epi32(ia[h], _mm256_madd_epi16(prod, ones));
                    }
                }
            }
            let dw = [
                _mm256_cvtph_ps(_mm_loadu_si128(d.add(b * PACK_ROWS).cast())),
                _mm256_cvtph_ps(_mm_loadu_si128(d.add(b * PACK_ROWS + 8).cast())),
            ];
            for (t, fa) in facc.iter_mut().enumerate() {
                let da = _mm256_set1_ps(*acts[t].d.add(b));
                for h in 0..2 {
                    let scale = _mm256_mul_ps(dw[h], da);
                    fa[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[t][h]), scale, fa[h]);
                }
            }
        }
    }
    for (o, f) in out.iter_mut().zip(facc) {
        // SAFETY: `o` is 16 f32s: two stores of 8.
        unsafe {
            _mm256_storeu_ps(o.as_mut_ptr(), f[0]);
            _mm256_storeu_ps(o.as_mut_ptr().add(8), f[1]);
        }
    }
}

/// One group of 16 rows × `T` tokens over all `nb` blocks with `Int8x2` activations as i16
/// (`LO_MUL·hi + lo`); writes the 16 outputs of token `t` to `out[t]`.
///
/// Per step, each quarter of the group (4 rows × 4 quants, stored as `q + 128`) is zero-extended
/// to 16 i16 straight from memory, shared by the tokens; `VPMADDWD` with the token's 4 values
/// broadcast gives per row two i32 lanes of two products each (at most 2·255·32385: no
/// overflow), which accumulate over the block's 8 steps. At the end of a block `VPHADDD` adds
/// each row's two lanes and the correction `−128·Σa` makes the sum exactly `Σq·a`; the rows come
/// out in the order 0 1 4 5 2 3 6 7, so the scales are permuted the same way once per block and
/// the results are put back in order when stored. Per 32 values and token this is 2 `VPMADDWD`
/// and 2 additions: the multiplies of the `Int8` tile, for ~16-bit activations.
///
/// # Safety
/// AVX2, FMA and F16C must be available; `qs` must point to `nb · 512` bytes and `d` to
/// `nb · 16` scales of one packed group; each of `acts[..T]` must point to `32·nb` i16 values,
/// `nb` scales and `nb` corrections.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_i16<const T: usize>(
    qs: *const u8,
    d: *const half::f16,
    nb: usize,
    acts: &[ActRow<i16>; PAIR_TILE],
    out: &mut [[f32; PACK_ROWS]; PAIR_TILE],
) {
    /// Lane `j` of a `VPHADDD` of two 4-row accumulators holds row `ORDER[j]` of their 8 rows.
    const ORDER: [usize; 8] = [0, 1, 4, 5, 2, 3, 6, 7];
    let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    let mut facc = [[_mm256_setzero_ps(); 2]; T];
    for b in 0..nb {
        // SAFETY: b < nb: block b's 16 scales, 512 quant bytes and every token's block b are in
        // bounds (this function's contract).
        unsafe {
            let wq = qs.add(b * GROUP_BLOCK_BYTES);
            // iacc[t][q]: rows 4q..4q+4 of the group, two lanes per row.
            let mut iacc = [[_mm256_setzero_si256(); 4]; T];
            for s in 0..8 {
                _mm_prefetch::<_MM_HINT_T1>(
                    wq.wrapping_add(PREFETCH_BLOCKS * GROUP_BLOCK_BYTES + 64 * s)
                        .cast(),
                );
                let w16: [__m256i; 4] = core::array::from_fn(|q| {
                    _mm256_cvtepu8_epi16(_mm_loadu_si128(wq.add(64 * s + 16 * q).cast()))
                });
                for (t, ia) in iacc.iter_mut().enumerate() {
                    let a = acts[t]
                        .q
                        .add(b * QK8_0 + 4 * s)
                        .cast::<i64>()
                        .read_unaligned();
                    let av = _mm256_set1_epi64x(a);
                    for (acc, wv) in ia.iter_mut().zip(&w16) {
                        *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(*wv, av));
                    }
                }
            }
            let scales = |at: usize| {
                _mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm_loadu_si128(d.add(at).cast())), order)
            };
            let dw = [scales(b * PACK_ROWS), scales(b * PACK_ROWS + 8)];
            for (t, fa) in facc.iter_mut().enumerate() {
                let da = _mm256_set1_ps(*acts[t].d.add(b));
                let corr = _mm256_set1_epi32(*acts[t].corr.add(b));
                for h in 0..2 {
                    let ints = _mm256_add_epi32(
                        _mm256_hadd_epi32(iacc[t][2 * h], iacc[t][2 * h + 1]),
                        corr,
                    );
                    let scale = _mm256_mul_ps(dw[h], da);
                    fa[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ints), scale, fa[h]);
                }
            }
        }
    }
    for (o, f) in out.iter_mut().zip(facc) {
        let mut lanes = [0.0f32; PACK_ROWS];
        // SAFETY: `lanes` is 16 f32s: two stores of 8.
        unsafe {
            _mm256_storeu_ps(lanes.as_mut_ptr(), f[0]);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), f[1]);
        }
        for h in 0..2 {
            for (j, &r) in ORDER.iter().enumerate() {
                o[8 * h + r] = lanes[8 * h + j];
            }
        }
    }
}
