//! x86-64 AVX-512 (F/BW/VL) + VNNI backend.
//!
//! # The packed Q8_0 GEMM
//!
//! The int8 products run on weights packed once by [`crate::PackedQ8_0`]: per group of 16 rows
//! and block of 32 values, 8 registers of 64 bytes, each holding 4 consecutive quants of the 16
//! rows as `q + 128`. `VPDPBUSD` multiplies those unsigned bytes by 4 signed activation bytes
//! broadcast to every lane (an embedded-broadcast memory operand), so after 8 instructions lane
//! `r` holds `Σ(q+128)·a` of row `r` for the block; the accumulator starts at `−128·Σa`
//! (precomputed when the activations are quantized), which makes the sum exactly `Σq·a`. The
//! 16 exact block dot products are converted to f32 and accumulated with `fma(I, dw·da, acc)` in
//! block order, like the scalar backend, so results are bit-identical to it.
//!
//! A tile is one group of 16 rows × up to [`TILE`] (pseudo-)tokens: per block, 8 weight loads
//! shared by the tokens, and per token 8 `VPDPBUSD`, one broadcast of the correction and 3 f32
//! operations. A group's quants (12 KiB at k = 768) stay in L1 while all token tiles pass, so the
//! weights are read from memory once per product, in address order. `Int8x2` runs the low part
//! of token `t` as pseudo-token `2t + 1` next to the high part `2t` and adds the two results when
//! storing, as the scalar backend does.
//!
//! Activations use the portable layout (plus the block corrections). Q8_0 weights that were not
//! packed run through the AVX2 kernel.

use core::arch::x86_64::*;
use core::ops::Range;

use crate::acts::{ActivationPrecision, QuantizedActivations, LO_DIV};
use crate::attention::{self, AttentionSpec};
use crate::block::{BlockQ8_0, QK8_0};
use crate::kernel::{FloatWeights, Kernel, PackedKernel};
use crate::packed::{PackedQ8_0, GROUP_BLOCK_BYTES, PACK_ROWS};
use crate::split::Threads;
use crate::Backend;

/// Proof that the CPU has AVX-512 F/BW/VL/VNNI (and AVX2, FMA, F16C). Only [`Avx512Vnni::detect`]
/// makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512Vnni {
    /// The CPU also has AVX512_BF16 (`VDPBF16PS`), used by the bf16 attention.
    pub(crate) bf16: bool,
}

/// Most pseudo-tokens one tile handles: 8 i32 and 8 f32 accumulators.
const TILE: usize = 8;
/// Activation bytes of one token super-tile (int8 values; scales and corrections add 1/4).
const SUPER_TILE_BYTES: usize = 192 * 1024;
/// How far ahead (in blocks of 512 bytes) the tile prefetches the packed weights. Measured with
/// `gemma-embed bench` (mixed precision, one thread) against the earlier choice of two lines of the
/// block 4 ahead into L1: 4 tokens 11.1 → 7.1 ms, 32 tokens 35.1 → 28.9 ms, 128 tokens −5 %,
/// 512 tokens unchanged. Prefetching into L1 (T0) instead of L2 is 20 % slower at 4 tokens; any
/// distance from 16 to 64 blocks is as good.
const PREFETCH_BLOCKS: usize = 16;

/// One pseudo-token's quantized activations: `k` int8 values, and per block the scale and the
/// correction `−128·Σa`.
#[derive(Clone, Copy)]
struct ActRow {
    q: *const i8,
    d: *const f32,
    corr: *const i32,
}

/// The AVX-512 VNNI backend: every operation but RoPE has its own kernel.
impl Kernel for Avx512Vnni {
    fn backend(&self) -> Backend {
        Backend::Avx512Vnni
    }

    /// The packed kernel's layout: the portable one plus the block corrections.
    fn quantize_int8(
        &self,
        x: &[f32],
        k: usize,
        tokens: usize,
        precision: ActivationPrecision,
        out: &mut QuantizedActivations,
        threads: Threads,
    ) {
        let t = *self;
        let block = |x: &_, hi: &mut _, lo: Option<&mut _>| t.quantize_block(x, hi, lo);
        let parallel = threads.parallel();
        crate::acts::quantize_int8(x, k, tokens, precision, out, parallel, true, &block);
    }

    fn matmul_q8_0(
        &self,
        w: &[BlockQ8_0],
        rows: Range<usize>,
        acts: &QuantizedActivations,
        out: &mut [&mut [f32]],
    ) {
        Avx512Vnni::matmul_q8_0(*self, w, rows, acts, out);
    }

    fn packed(&self) -> Option<&dyn PackedKernel> {
        Some(self)
    }

    fn matmul_float(
        &self,
        w: FloatWeights<'_>,
        k: usize,
        rows: Range<usize>,
        x: &[f32],
        out: &mut [&mut [f32]],
    ) {
        use super::avx512_f32::FloatRows;
        match w {
            FloatWeights::F32(w) => {
                self.matmul_rows16(&FloatRows { w, stride: k }, k, rows, x, out)
            }
            FloatWeights::F16(w) => {
                self.matmul_rows16(&FloatRows { w, stride: k }, k, rows, x, out)
            }
            FloatWeights::Bf16(w) => {
                self.matmul_rows16(&FloatRows { w, stride: k }, k, rows, x, out)
            }
        }
    }

    fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        Avx512Vnni::dot(*self, a, b)
    }

    fn axpy(&self, a: f32, x: &[f32], y: &mut [f32]) {
        Avx512Vnni::axpy(*self, a, x, y)
    }

    fn softmax(&self, x: &mut [f32]) {
        Avx512Vnni::softmax(*self, x)
    }

    fn geglu(&self, gate: &[f32], up: &[f32], out: &mut [f32]) {
        Avx512Vnni::geglu(*self, gate, up, out)
    }

    fn rms_norm(&self, x: &mut [f32], weight: &[f32], eps: f32) {
        for row in x.chunks_exact_mut(weight.len()) {
            let ss = Avx512Vnni::dot(*self, row, row);
            let inv = 1.0 / (ss / weight.len() as f32 + eps).sqrt();
            self.scale_mul(row, inv, Some(weight));
        }
    }

    /// Blocks of queries as register tiles, from keys transposed once per call.
    fn attention(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        spec: &AttentionSpec,
        out: &mut [f32],
        threads: Threads,
    ) {
        let keys = self.keys(k, spec);
        attention::for_query_blocks(spec, out, threads, |queries, ob| {
            self.attention_block(q, &keys, v, spec, queries, ob)
        });
    }

    fn has_bf16_attention(&self) -> bool {
        self.bf16
    }
}

/// The packed kernel and its faster group packer.
impl PackedKernel for Avx512Vnni {
    fn pack_group(&self, rows: &[&[BlockQ8_0]], gq: &mut [u32], gd: &mut [half::f16]) {
        Avx512Vnni::pack_group(*self, rows, gq, gd);
    }

    fn matmul_packed(
        &self,
        w: &PackedQ8_0,
        rows: Range<usize>,
        acts: &QuantizedActivations,
        out: &mut [&mut [f32]],
    ) {
        Avx512Vnni::matmul_packed(*self, w, rows, acts, out);
    }
}

impl Avx512Vnni {
    /// The token if this CPU has every feature the backend uses.
    pub(crate) fn detect() -> Option<Self> {
        let ok = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        ok.then(|| Avx512Vnni {
            bf16: is_x86_feature_detected!("avx512bf16"),
        })
    }

    /// `y = x · Wᵀ` for the rows `rows` of unpacked weights; `out[t]` is token `t`'s part of `y`
    /// for those rows. `w`, `acts` and `out` are consistent (checked by the dispatcher).
    pub(crate) fn matmul_q8_0(
        self,
        w: &[BlockQ8_0],
        rows: Range<usize>,
        acts: &QuantizedActivations,
        out: &mut [&mut [f32]],
    ) {
        match acts.precision {
            Some(ActivationPrecision::F32) => {
                let nb = acts.blocks_per_token();
                let rows16 = super::avx512_f32::Q8Rows { w, nb };
                self.matmul_rows16(&rows16, acts.k, rows, &acts.f32, out)
            }
            // SAFETY: `self` proves AVX2, FMA and F16C (checked in `detect`); the shapes are the
            // dispatcher's checked ones and the activations are in the portable layout.
            _ => unsafe { super::avx2::matmul_q8_0_portable(w, rows, acts, out) },
        }
    }

    /// `y = x · Wᵀ` for the rows `rows` (a range starting at a multiple of 16) of packed
    /// weights; `out[t]` is token `t`'s part of `y` for those rows. `w` is this backend's packing,
    /// `acts` are `Int8`/`Int8x2` activations quantized by this backend for `w.k` (checked by the
    /// dispatcher), every `out[t]` has `rows.len()` values.
    pub(crate) fn matmul_packed(
        self,
        w: &PackedQ8_0,
        rows: Range<usize>,
        acts: &QuantizedActivations,
        out: &mut [&mut [f32]],
    ) {
        debug_assert!(rows.start.is_multiple_of(PACK_ROWS) && rows.end <= w.rows);
        let pair = acts.precision == Some(ActivationPrecision::Int8x2);
        let (nb, k, tokens) = (w.blocks_per_row(), acts.k, acts.tokens);
        let pseudo = if pair { 2 * tokens } else { tokens };
        let act = |p: usize| {
            let (t, lo) = if pair {
                (p / 2, p % 2 == 1)
            } else {
                (p, false)
            };
            let (q, d, corr) = if lo {
                (&acts.lo, &acts.d_lo, &acts.sums[tokens * nb..])
            } else {
                (&acts.hi, &acts.d, &acts.sums[..])
            };
            ActRow {
                q: q[t * k..].as_ptr(),
                d: d[t * nb..].as_ptr(),
                corr: corr[t * nb..].as_ptr(),
            }
        };
        // Every pseudo-token's pointers, padded with the last one to whole tiles.
        let all: Vec<ActRow> = (0..pseudo.next_multiple_of(TILE))
            .map(|p| act(p.min(pseudo - 1)))
            .collect();
        // Token super-tiles whose activations stay in L2 while every group of rows passes.
        let super_tile = (SUPER_TILE_BYTES / k).next_multiple_of(TILE);
        let (qs, d) = (w.qs(), w.d());
        let mut acc = [[0.0f32; 16]; TILE];
        for s0 in (0..pseudo).step_by(super_tile) {
            let s1 = (s0 + super_tile).min(pseudo);
            let mut g_row = rows.start;
            while g_row < rows.end {
                let g = g_row / PACK_ROWS;
                let valid = (rows.end - g_row).min(PACK_ROWS);
                let off = g_row - rows.start;
                let gq = qs[g * nb * GROUP_BLOCK_BYTES..][..nb * GROUP_BLOCK_BYTES].as_ptr();
                let gd = d[g * nb * PACK_ROWS..][..nb * PACK_ROWS].as_ptr();
                let mut p0 = s0;
                while p0 < s1 {
                    let pc = (s1 - p0).min(TILE);
                    let Ok(rows_of) = <&[ActRow; TILE]>::try_from(&all[p0..p0 + TILE]) else {
                        return; // unreachable: `all` is padded to whole tiles
                    };
                    // SAFETY: `self` proves the features; `gq`/`gd` are group g's nb blocks of quants
                    // and scales; every `ActRow` points at a pseudo-token's k values, nb scales and
                    // nb corrections (the dispatcher checked acts' shape against w.k).
                    unsafe {
                        match (pc, pair) {
                            // Pairs are never split: `TILE` is even.
                            (2, true) => tile::<2, true>(gq, gd, nb, rows_of, &mut acc),
                            (4, true) => tile::<4, true>(gq, gd, nb, rows_of, &mut acc),
                            (6, true) => tile::<6, true>(gq, gd, nb, rows_of, &mut acc),
                            (_, true) => tile::<8, true>(gq, gd, nb, rows_of, &mut acc),
                            (1, false) => tile::<1, false>(gq, gd, nb, rows_of, &mut acc),
                            (2, false) => tile::<2, false>(gq, gd, nb, rows_of, &mut acc),
                            (3, false) => tile::<3, false>(gq, gd, nb, rows_of, &mut acc),
                            (4, false) => tile::<4, false>(gq, gd, nb, rows_of, &mut acc),
                            (5, false) => tile::<5, false>(gq, gd, nb, rows_of, &mut acc),
                            (6, false) => tile::<6, false>(gq, gd, nb, rows_of, &mut acc),
                            (7, false) => tile::<7, false>(gq, gd, nb, rows_of, &mut acc),
                            (_, false) => tile::<8, false>(gq, gd, nb, rows_of, &mut acc),
                        }
                    }
                    store(&acc[..pc], p0, pair, off, valid, out);
                    p0 += pc;
                }
                g_row += PACK_ROWS;
            }
        }
    }
}

/// Writes a tile's results: `acc[i]` lane `r` is (row `off + r`, pseudo-token `p0 + i`); only
/// the first `valid` rows exist. For `Int8x2` the result of token `p0/2 + i` is in `acc[2i]`
/// (the tile combined each pair's block integers; tiles hold an even number of pseudo-tokens
/// then, as `TILE` is even and pairs are never split).
fn store(
    acc: &[[f32; 16]],
    p0: usize,
    pair: bool,
    off: usize,
    valid: usize,
    out: &mut [&mut [f32]],
) {
    if pair {
        for (i, hl) in acc.chunks_exact(2).enumerate() {
            out[(p0 / 2) + i][off..off + valid].copy_from_slice(&hl[0][..valid]);
        }
    } else {
        for (i, a) in acc.iter().enumerate() {
            let o = &mut out[p0 + i][off..off + valid];
            // A whole group is a fixed-size copy (two stores, not a `memcpy` call).
            match <&mut [f32; PACK_ROWS]>::try_from(&mut *o) {
                Ok(o) => *o = *a,
                Err(_) => o.copy_from_slice(&a[..valid]),
            }
        }
    }
}

/// One group of 16 rows × `T` pseudo-tokens over all `nb` blocks; writes the 16 outputs of
/// pseudo-token `t` to `out[t]`. With `PAIR` (`Int8x2`), pseudo-tokens `2p` and `2p + 1` are the
/// high and low parts of one token: each block's integers are combined into
/// `LO_MUL·I_hi + I_lo` and scaled by the low part's scale `d / LO_DIV`, as in the scalar
/// backend, and the token's result is written to `out[2p]`.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI and F16C must be available; `qs` must point to `nb · 512` bytes and `d`
/// to `nb · 16` scales of one packed group; each of `acts[..T]` must point to `32·nb` values,
/// `nb` scales and `nb` corrections; with `PAIR`, `T` is even.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile<const T: usize, const PAIR: bool>(
    qs: *const u8,
    d: *const half::f16,
    nb: usize,
    acts: &[ActRow; TILE],
    out: &mut [[f32; 16]; TILE],
) {
    let mut facc = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        // SAFETY: b < nb: block b's 16 scales, 512 quant bytes and every pseudo-token's block b
        // are in bounds (this function's contract).
        unsafe {
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(d.add(b * PACK_ROWS).cast()));
            let wq = qs.add(b * GROUP_BLOCK_BYTES);
            let mut iacc: [__m512i; T] =
                core::array::from_fn(|t| _mm512_set1_epi32(*acts[t].corr.add(b)));
            for s in 0..8 {
                // Weights stream from memory in address order (the next groups follow): fetch
                // every line of the block PREFETCH_BLOCKS ahead into L2. The address may lie past
                // the matrix (prefetches never fault), hence `wrapping_add`.
                _mm_prefetch::<_MM_HINT_T1>(
                    wq.wrapping_add(PREFETCH_BLOCKS * GROUP_BLOCK_BYTES + 64 * s)
                        .cast(),
                );
                let wv = _mm512_load_si512(wq.add(64 * s).cast());
                for (t, ia) in iacc.iter_mut().enumerate() {
                    let a = acts[t]
                        .q
                        .add(b * QK8_0 + 4 * s)
                        .cast::<i32>()
                        .read_unaligned();
                    *ia = _mm512_dpbusd_epi32(*ia, wv, _mm512_set1_epi32(a));
                }
            }
            if PAIR {
                for p in 0..T / 2 {
                    let (hi, lo) = (iacc[2 * p], iacc[2 * p + 1]);
                    // LO_MUL·hi + lo = (hi << 8) − (hi << 1) + lo (exact, see `LO_MUL`).
                    let int = _mm512_add_epi32(
                        _mm512_sub_epi32(_mm512_slli_epi32::<8>(hi), _mm512_slli_epi32::<1>(hi)),
                        lo,
                    );
                    let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*acts[2 * p + 1].d.add(b)));
                    facc[2 * p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(int), scale, facc[2 * p]);
                }
            } else {
                for (t, fa) in facc.iter_mut().enumerate() {
                    let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*acts[t].d.add(b)));
                    *fa = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[t]), scale, *fa);
                }
            }
        }
    }
    for (o, f) in out.iter_mut().zip(facc) {
        // SAFETY: `o` is 16 f32s.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), f) };
    }
}

impl Avx512Vnni {
    /// Quantizes one block of activations like the portable quantizer (bit-identical) and
    /// returns `(d, Σhi, Σlo)` for the packed kernel's corrections (see `acts::quantize_int8`).
    pub(crate) fn quantize_block(
        self,
        x: &[f32; QK8_0],
        hi: &mut [i8; QK8_0],
        lo: Option<&mut [i8; QK8_0]>,
    ) -> (f32, i32, i32) {
        // SAFETY: `self` proves AVX-512 F/BW/VL.
        unsafe { quantize_block32(x, hi, lo) }
    }
}

/// Rounds half away from zero, like `f32::round`.
///
/// # Safety
/// AVX-512 F must be available.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn round_away(v: __m512) -> __m512 {
    let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    // v − t is exact; add ±1 where |v − t| >= 0.5.
    let frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    let m = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(frac, _mm512_set1_ps(0.5));
    let sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(i32::MIN));
    let one = _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_set1_epi32(0x3f80_0000)));
    _mm512_mask_add_ps(t, m, t, one)
}

/// Quantizes one block like `acts::quantize_block`: the high part into `hi` and, if given,
/// the low part into `lo`. Returns the block scale `d` (of the high part), `Σhi` and `Σlo`.
///
/// # Safety
/// AVX-512 F/BW/VL must be available.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_block32(
    x: &[f32; QK8_0],
    hi: &mut [i8; QK8_0],
    lo: Option<&mut [i8; QK8_0]>,
) -> (f32, i32, i32) {
    // SAFETY: x has 32 f32s.
    let (v0, v1) = unsafe {
        (
            _mm512_loadu_ps(x.as_ptr()),
            _mm512_loadu_ps(x.as_ptr().add(16)),
        )
    };
    let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    let d = amax / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let idv = _mm512_set1_ps(id);
    let (lim_lo, lim_hi) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0));
    let clamp = |v: __m512| _mm512_min_ps(_mm512_max_ps(v, lim_lo), lim_hi);
    let (s0, s1) = (_mm512_mul_ps(v0, idv), _mm512_mul_ps(v1, idv));
    // SAFETY: AVX-512 F is available (this function's contract).
    let (h0, h1) = unsafe { (clamp(round_away(s0)), clamp(round_away(s1))) };
    // SAFETY: the destination has 32 bytes; each store writes 16.
    let store = |q: &mut [i8; QK8_0], a: __m512, b: __m512| unsafe {
        let (i0, i1) = (_mm512_cvtps_epi32(a), _mm512_cvtps_epi32(b));
        _mm_storeu_si128(q.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(i0));
        _mm_storeu_si128(q.as_mut_ptr().add(16).cast(), _mm512_cvtepi32_epi8(i1));
        _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1))
    };
    let sum_hi = store(hi, h0, h1);
    let sum_lo = match lo {
        Some(lo) => {
            let scale = _mm512_set1_ps(LO_DIV);
            let (r0, r1) = (
                _mm512_mul_ps(_mm512_sub_ps(s0, h0), scale),
                _mm512_mul_ps(_mm512_sub_ps(s1, h1), scale),
            );
            // SAFETY: AVX-512 F is available (this function's contract).
            let (l0, l1) = unsafe { (clamp(round_away(r0)), clamp(round_away(r1))) };
            store(lo, l0, l1)
        }
        None => 0,
    };
    (d, sum_hi, sum_lo)
}

impl Avx512Vnni {
    /// Packs one group of rows (see [`crate::PackedQ8_0`]): `rows[r]` is row `r`'s `nb` blocks
    /// (`rows.len() <= 16`; missing rows are zero weights); `gq` receives the `nb · 128` dwords
    /// of quants, `gd` the `nb · 16` scales.
    pub(crate) fn pack_group(self, rows: &[&[BlockQ8_0]], gq: &mut [u32], gd: &mut [half::f16]) {
        let nb = gd.len() / PACK_ROWS;
        assert!(
            rows.len() <= PACK_ROWS && gq.len() == nb * 128 && rows.iter().all(|r| r.len() == nb)
        );
        for (b, (dst, dd)) in gq
            .chunks_exact_mut(128)
            .zip(gd.chunks_exact_mut(PACK_ROWS))
            .enumerate()
        {
            for (d, row) in dd.iter_mut().zip(rows) {
                *d = row[b].d;
            }
            // SAFETY: `self` proves AVX-512 F; every row has block b (asserted), `dst` has 128
            // dwords.
            unsafe { transpose_block(rows, b, dst) };
        }
        // Order the non-temporal stores before whatever publishes the packed matrix.
        // SAFETY: SSE is part of x86-64.
        unsafe { _mm_sfence() };
    }
}

/// Writes block `b` of up to 16 rows as 8 × 64 bytes: dword `16s + r` is dword `s` of row `r`'s
/// quants, `^ 0x80` per byte. Two 8×8 dword transposes side by side (rows 0–7 in the low 256
/// bits of each register, rows 8–15 in the high ones): unpack 32-bit, unpack 64-bit, then move
/// 128-bit lanes.
///
/// # Safety
/// AVX-512 F must be available; every `rows[r]` must have block `b`; `dst` must hold 128 dwords.
#[target_feature(enable = "avx512f")]
unsafe fn transpose_block(rows: &[&[BlockQ8_0]], b: usize, dst: &mut [u32]) {
    let load = |r: usize| match rows.get(r) {
        // SAFETY: row r has block b (contract); its 32 quants are readable.
        Some(row) => unsafe { _mm256_loadu_si256(row[b].qs.as_ptr().cast()) },
        None => _mm256_setzero_si256(),
    };
    let z: [__m512i; 8] = core::array::from_fn(|i| {
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load(i)), load(i + 8))
    });
    let t: [__m512i; 8] = core::array::from_fn(|i| {
        let (a, c) = (z[i & !1], z[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(a, c)
        } else {
            _mm512_unpackhi_epi32(a, c)
        }
    });
    // u[j] (and u[4 + j] for rows 4–7) holds dword j of each 128-bit lane's rows 0–3.
    let u: [__m512i; 8] = core::array::from_fn(|i| {
        let base = 4 * (i / 4);
        let (a, c) = (t[base + (i % 4) / 2], t[base + 2 + (i % 4) / 2]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi64(a, c)
        } else {
            _mm512_unpackhi_epi64(a, c)
        }
    });
    let flip = _mm512_set1_epi8(-128);
    let aligned = (dst.as_ptr() as usize).is_multiple_of(64);
    for j in 0..4 {
        // Lane 0 (and 2) of u[j] holds dword j, lane 1 (and 3) dword 4 + j.
        let lo = _mm512_shuffle_i32x4::<0b10_00_10_00>(u[j], u[4 + j]);
        let hi = _mm512_shuffle_i32x4::<0b11_01_11_01>(u[j], u[4 + j]);
        let lo = _mm512_shuffle_i32x4::<0b11_01_10_00>(lo, lo);
        let hi = _mm512_shuffle_i32x4::<0b11_01_10_00>(hi, hi);
        // SAFETY: dst has 128 dwords; steps j and 4 + j take 16 each.
        unsafe {
            let (p_lo, p_hi) = (
                dst.as_mut_ptr().add(16 * j),
                dst.as_mut_ptr().add(16 * (4 + j)),
            );
            let (v_lo, v_hi) = (_mm512_xor_si512(lo, flip), _mm512_xor_si512(hi, flip));
            if aligned {
                // Non-temporal: the packed matrix is not read again soon, and the stores need
                // not read the (freshly zeroed) lines first.
                _mm512_stream_si512(p_lo.cast(), v_lo);
                _mm512_stream_si512(p_hi.cast(), v_hi);
            } else {
                _mm512_storeu_si512(p_lo.cast(), v_lo);
                _mm512_storeu_si512(p_hi.cast(), v_hi);
            }
        }
    }
}
