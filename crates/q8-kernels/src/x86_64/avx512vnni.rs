//! x86-64 AVX-512 (F/BW/VL) + VNNI backend.
//!
//! # The Q8_0 GEMM tile
//!
//! `VPDPBUSD` multiplies 4 unsigned bytes by 4 signed bytes and adds the 4 products to an i32
//! lane. Q8_0 weights are signed, so the kernel flips their sign bit (`w ^ 0x80 = w + 128`, exact
//! for every i8) and starts each block's integer accumulator at `−128·Σa` (precomputed per token
//! and block when the activations are quantized): `Σ(w+128)·a − 128·Σa = Σw·a`, exactly.
//!
//! One micro-kernel call computes a tile of 4 weight rows × 4·G tokens. For each block, the 16
//! bytes `qs[0..16]` of the 4 rows fill the four 128-bit lanes of one register (row `i` in lane
//! `i`), `qs[16..32]` another. Each i32 lane `(i, c)` of an accumulator stands for (row `i`, token
//! `c` of a group of 4); over 4 steps `s` the weight register is rotated within its 128-bit lanes
//! (`VPSHUFD`) so that lane `(i, c)` sees weight dword `(c+s) mod 4`, and the activation
//! register — a 128-bit pattern broadcast from memory, pre-arranged at quantization time — holds
//! token `c`'s matching dword. After 8 `VPDPBUSD` each lane holds the complete integer dot
//! product of one (row, token) block, with no horizontal reduction. It is then converted to f32
//! and accumulated with `fma(I, dw·da, acc)`, in block order, exactly like the scalar backend, so
//! results are bit-identical to it. Per block and row tile the weight work (2 loads, 2 inserts,
//! 2 permutes, 2 xors, 6 rotations, the scale vector) is shared by all `G` token groups; per
//! group it is 8 `VPDPBUSD`, 10 plain 64-byte loads, and 3 f32 operations.
//!
//! The activations are packed per group of 4 (pseudo-)tokens and block into 576 bytes:
//! 8 steps of 16 bytes of rotated quads, each stored 4 times (once per 128-bit lane), then
//! 4 × i32 corrections and 4 × f32 scales (broadcast when loaded; padding to 64 bytes). The
//! repetition costs 4.5 bytes per activation value (6.75 MiB for 512 tokens × 3072) but turns
//! the 8 broadcast loads per group and block, which take a shuffle uop next to the
//! `VPDPBUSD`s, into plain loads: +20 % GEMM throughput on Zen 4. What limits the tile now is
//! L1 load bandwidth (8·64 bytes per 8 `VPDPBUSD`) and the 3 f32 ops per group and block. `Int8x2` packs the low
//! part of token `t` as pseudo-token `2t+1` (scale `d/254`) next to the high part `2t`, and the
//! two results are added when the tile is stored.

use core::arch::x86_64::*;
use core::ops::Range;

use crate::acts::{ActivationPrecision, Align64, QuantizedActivations, LO_DIV};
use crate::block::{BlockQ8_0, QK8_0};

/// Proof that the CPU has AVX-512 F/BW/VL/VNNI (and AVX2, FMA, F16C). Only [`Avx512Vnni::detect`]
/// makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512Vnni {
    _private: (),
}

/// Bytes of packed activations per group of 4 pseudo-tokens and block.
pub(crate) const REC: usize = 576;
/// Offset of the corrections in a record.
const REC_CORR: usize = 512;
/// Offset of the scales in a record.
const REC_SCALE: usize = 528;
/// Most token groups one micro-kernel call handles (4·GMAX pseudo-tokens).
const GMAX: usize = 8;
/// Blocks per k chunk: a token tile's activations for one chunk (GMAX·KC·REC = 18 KiB) stay in
/// L1 while every row tile of the task passes over them.
const KC: usize = 4;
/// Rows per row block (64 rows of k = 768 are 52 KiB of weights).
const RB: usize = 64;
/// Activation bytes per token super-tile (18 groups = 72 pseudo-tokens at k = 768).
const TS_BYTES: usize = 256 * 1024;

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
        ok.then_some(Avx512Vnni { _private: () })
    }

    /// `y = x · Wᵀ` for the rows `rows`; `out[t]` is token `t`'s part of `y` for those rows.
    /// `w`, `acts` and `out` are consistent (checked by the dispatcher).
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
            None => crate::scalar::matmul_q8_0(w, rows, acts, out),
            Some(_) if acts.packed.is_empty() => {
                // 1–2 Int8 tokens were quantized in the portable layout (see lib.rs).
                // SAFETY: `self` proves AVX2, FMA and F16C (checked in `detect`); the shapes
                // are the dispatcher's checked ones.
                unsafe { super::avx2::matmul_q8_0_portable(w, rows, acts, out) }
            }
            Some(p) => {
                // SAFETY: `self` proves the CPU features; `w` has `n·nb` blocks with
                // `rows ⊆ 0..n`, `acts.packed` holds the packed layout for `acts.tokens` tokens
                // (made by `pack`, checked by the dispatcher through `acts.backend`), and every
                // `out[t]` has `rows.len()` values.
                unsafe { self.gemm_int8(w, rows, acts, p == ActivationPrecision::Int8x2, out) }
            }
        }
    }

    /// Runs the tiles over `rows` × all tokens.
    ///
    /// # Safety
    /// The CPU must have the features of [`Avx512Vnni`]; `w` must hold `n × nb` blocks with
    /// `rows.end <= n`; `acts.packed` must be the packed layout ([`pack`]) of `acts`; `out` must
    /// have `acts.tokens` slices of `rows.len()` values.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn gemm_int8(
        self,
        w: &[BlockQ8_0],
        rows: Range<usize>,
        acts: &QuantizedActivations,
        pair: bool,
        out: &mut [&mut [f32]],
    ) {
        // Row blocks of RB rows: their weights stay in L2 while all token tiles pass.
        // Token super-tiles whose activations stay in L2 (at least GMAX groups), then row
        // blocks.
        let nb = acts.blocks_per_token();
        let ts = (TS_BYTES / (nb * REC)).clamp(GMAX, 64);
        let mut acc = vec![[0.0f32; 16]; RB.div_ceil(4) * GMAX];
        let pseudo = if pair { 2 * acts.tokens } else { acts.tokens };
        let n_groups = pseudo.div_ceil(4);
        let mut gs0 = 0;
        while gs0 < n_groups {
            let gs1 = (gs0 + ts).min(n_groups);
            let mut rb0 = rows.start;
            while rb0 < rows.end {
                let rb1 = (rb0 + RB).min(rows.end);
                let off = rb0 - rows.start;
                // SAFETY: forwarded from this function's contract; rb0..rb1 ⊆ rows and
                // gs0..gs1 ⊆ 0..n_groups.
                unsafe { self.gemm_rows(w, rb0..rb1, off, gs0..gs1, acts, pair, &mut acc, out) };
                rb0 = rb1;
            }
            gs0 = gs1;
        }
    }

    /// [`Avx512Vnni::gemm_int8`] for one row block and the token groups `groups`; `out` column
    /// `row_off + i` is row `rows.start + i`; `acc` is scratch for `RB/4 · GMAX` tiles.
    ///
    /// # Safety
    /// As [`Avx512Vnni::gemm_int8`], with `rows.len() <= RB`, `row_off + rows.len()` within
    /// every `out[t]`, and `groups` within the packed groups.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn gemm_rows(
        self,
        w: &[BlockQ8_0],
        rows: Range<usize>,
        row_off: usize,
        groups: Range<usize>,
        acts: &QuantizedActivations,
        pair: bool,
        acc: &mut [[f32; 16]],
        out: &mut [&mut [f32]],
    ) {
        let nb = acts.blocks_per_token();
        let n_groups = groups.end;
        let packed = acts.packed.as_ptr().cast::<u8>();
        let n_tiles = rows.len().div_ceil(4);
        let last = rows.end - 1;
        // Accumulators of every (row tile, group) of one token tile, carried across k chunks.
        let mut g0 = groups.start;
        while g0 < n_groups {
            let gc = (n_groups - g0).min(GMAX);
            acc.iter_mut().for_each(|a| *a = [0.0; 16]);
            let mut kb0 = 0;
            while kb0 < nb {
                let kc = (nb - kb0).min(KC);
                for ti in 0..n_tiles {
                    let r0 = rows.start + 4 * ti;
                    // Rows past the end repeat the last row; their results are not stored.
                    let rp: [*const BlockQ8_0; 4] =
                        core::array::from_fn(|i| w[(r0 + i).min(last) * nb + kb0..].as_ptr());
                    let tile = &mut acc[ti * GMAX..(ti + 1) * GMAX];
                    // SAFETY: record (g0, kb0) and the following ones up to group g0+gc−1,
                    // block kb0+kc−1 exist in `packed` (n_groups·nb records, group-major).
                    let act = unsafe { packed.add((g0 * nb + kb0) * REC) };
                    let gs = nb * REC;
                    // SAFETY: each row pointer has `kc` blocks left in its row; `act` has `gc`
                    // groups `gs` bytes apart with `kc` records each.
                    unsafe {
                        match gc {
                            1 => tile_kernel::<1>(rp, kc, act, gs, tile),
                            2 => tile_kernel::<2>(rp, kc, act, gs, tile),
                            3 => tile_kernel::<3>(rp, kc, act, gs, tile),
                            4 => tile_kernel::<4>(rp, kc, act, gs, tile),
                            5 => tile_kernel::<5>(rp, kc, act, gs, tile),
                            6 => tile_kernel::<6>(rp, kc, act, gs, tile),
                            7 => tile_kernel::<7>(rp, kc, act, gs, tile),
                            _ => tile_kernel::<8>(rp, kc, act, gs, tile),
                        }
                    }
                }
                kb0 += kc;
            }
            store_block(
                &acc[..n_tiles * GMAX],
                gc,
                g0,
                row_off,
                rows.len(),
                pair,
                out,
            );
            g0 += gc;
        }
    }
}

/// Writes the finished tiles of a row block: `acc[ti·GMAX + g][4i + c]` is (row
/// `row_off + 4ti + i`, pseudo-token `4(g0+g) + c`), for `g < gc`. Token by token, so each
/// token's row of `y` is written contiguously. Pseudo-tokens past the last token and rows past
/// `row_off + n_rows` are dropped.
fn store_block(
    acc: &[[f32; 16]],
    gc: usize,
    g0: usize,
    row_off: usize,
    n_rows: usize,
    pair: bool,
    out: &mut [&mut [f32]],
) {
    for g in 0..gc {
        for c in 0..4 {
            if pair && c % 2 == 1 {
                continue;
            }
            let p = 4 * (g0 + g) + c;
            let t = if pair { p / 2 } else { p };
            let Some(o) = out.get_mut(t) else { continue };
            let Some(o) = o.get_mut(row_off..row_off + n_rows) else {
                continue;
            };
            for (r, v) in o.iter_mut().enumerate() {
                let lanes = &acc[(r / 4) * GMAX + g];
                let l = 4 * (r % 4) + c;
                // High part plus low part, as the scalar backend adds them.
                *v = if pair {
                    lanes[l] + lanes[l + 1]
                } else {
                    lanes[l]
                };
            }
        }
    }
}

/// The `VPSHUFD` immediates rotating each 128-bit lane's dwords by `s`: dword `c` ← `(c+s) mod 4`.
const ROT1: i32 = 0x39;
const ROT2: i32 = 0x4E;
const ROT3: i32 = 0x93;

/// The 4 rows × 4·G tokens micro-kernel over `nb` blocks: continues the accumulators in
/// `tile[..G]` (lane `4i + c` = row `i`, token `c` of group `g`).
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI and F16C must be available; each `rows[i]` must point to `nb` readable
/// blocks; `act` must point to `G` groups `group_stride` bytes apart, each with `nb` records of
/// [`REC`] bytes; `tile.len() >= G`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile_kernel<const G: usize>(
    rows: [*const BlockQ8_0; 4],
    nb: usize,
    act: *const u8,
    group_stride: usize,
    tile: &mut [[f32; 16]],
) {
    let flip = _mm512_set1_epi8(-128);
    let bcast_idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    // SAFETY: tile has at least G entries of 16 f32s.
    let mut acc: [__m512; G] =
        core::array::from_fn(|g| unsafe { _mm512_loadu_ps(tile[g].as_ptr()) });
    for b in 0..nb {
        // SAFETY: b < nb, so each row's block b is readable (34 bytes; qs at offset 2).
        let (wlo, whi, dw) = unsafe {
            let q = |i: usize| rows[i].add(b).cast::<u8>().add(2);
            let a01 = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(q(0).cast())),
                _mm256_loadu_si256(q(1).cast()),
            );
            let a23 = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(q(2).cast())),
                _mm256_loadu_si256(q(3).cast()),
            );
            // [r0 lo, r1 lo, r2 lo, r3 lo] and [r0 hi, r1 hi, r2 hi, r3 hi].
            let wlo = _mm512_shuffle_i64x2::<0b10_00_10_00>(a01, a23);
            let whi = _mm512_shuffle_i64x2::<0b11_01_11_01>(a01, a23);
            let d = |i: usize| rows[i].add(b).cast::<i16>().read_unaligned();
            let dh = _mm_set_epi16(0, 0, 0, 0, d(3), d(2), d(1), d(0));
            let dw = _mm512_permutexvar_ps(bcast_idx, _mm512_castps128_ps512(_mm_cvtph_ps(dh)));
            (wlo, whi, dw)
        };
        let wlo = _mm512_xor_si512(wlo, flip);
        let whi = _mm512_xor_si512(whi, flip);
        let ws = [
            wlo,
            _mm512_shuffle_epi32::<ROT1>(wlo),
            _mm512_shuffle_epi32::<ROT2>(wlo),
            _mm512_shuffle_epi32::<ROT3>(wlo),
            whi,
            _mm512_shuffle_epi32::<ROT1>(whi),
            _mm512_shuffle_epi32::<ROT2>(whi),
            _mm512_shuffle_epi32::<ROT3>(whi),
        ];
        for (g, acc) in acc.iter_mut().enumerate() {
            // SAFETY: record (g, b) lies inside group g's nb records at `act`.
            unsafe {
                let rec = act.add(g * group_stride + b * REC);
                let bc = |off: usize| _mm512_load_si512(rec.add(off).cast());
                let ai = if G <= 2 {
                    // Few groups: four short dependency chains instead of one of 8 latencies.
                    let mut p: [__m512i; 4] = core::array::from_fn(|j| {
                        let init = if j == 0 {
                            _mm512_broadcast_i32x4(_mm_load_si128(rec.add(REC_CORR).cast()))
                        } else {
                            _mm512_setzero_si512()
                        };
                        _mm512_dpbusd_epi32(init, ws[2 * j], bc(128 * j))
                    });
                    for (j, pj) in p.iter_mut().enumerate() {
                        *pj = _mm512_dpbusd_epi32(*pj, ws[2 * j + 1], bc(128 * j + 64));
                    }
                    _mm512_add_epi32(_mm512_add_epi32(p[0], p[1]), _mm512_add_epi32(p[2], p[3]))
                } else {
                    let mut ai = _mm512_broadcast_i32x4(_mm_load_si128(rec.add(REC_CORR).cast()));
                    for (s, &wv) in ws.iter().enumerate() {
                        ai = _mm512_dpbusd_epi32(ai, wv, bc(64 * s));
                    }
                    ai
                };
                let da = _mm512_broadcast_f32x4(_mm_load_ps(rec.add(REC_SCALE).cast()));
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai), _mm512_mul_ps(dw, da), *acc);
            }
        }
    }
    for (t, a) in tile.iter_mut().zip(acc) {
        // SAFETY: `t` is 16 f32s.
        unsafe { _mm512_storeu_ps(t.as_mut_ptr(), a) };
    }
}

impl Avx512Vnni {
    /// Quantizes `x` (`tokens × k`) for `Int8`/`Int8x2` straight into the packed tile layout
    /// (see the module docs), bit-identical to the portable quantizer.
    /// `x.len() == tokens·k`, `k` a non-zero multiple of 32 (checked by the dispatcher).
    pub(crate) fn quantize_pack(
        self,
        x: &[f32],
        k: usize,
        tokens: usize,
        precision: ActivationPrecision,
        out: &mut QuantizedActivations,
    ) {
        let pair = precision == ActivationPrecision::Int8x2;
        out.precision = Some(precision);
        out.tokens = tokens;
        out.k = k;
        out.hi.clear();
        out.lo.clear();
        out.d.clear();
        out.f32.clear();
        let nb = k / QK8_0;
        let pseudo = if pair { 2 * tokens } else { tokens };
        let n_groups = pseudo.div_ceil(4);
        let bytes = n_groups * nb * REC;
        out.packed.clear();
        out.packed.resize(bytes.div_ceil(64), Align64([0; 64]));
        let buf = zerocopy::IntoBytes::as_mut_bytes(out.packed.as_mut_slice());
        for g in 0..n_groups {
            for b in 0..nb {
                let rec: &mut [u8; REC] = (&mut buf[(g * nb + b) * REC..(g * nb + b + 1) * REC])
                    .try_into()
                    .expect("REC bytes");
                let mut quads = [[0i8; QK8_0]; 4];
                let mut corr = [0i32; 4];
                let mut scale = [0.0f32; 4];
                // Token by token: one token fills one lane (Int8) or two (Int8x2: high part
                // in lane c, low part in lane c+1).
                let per = if pair { 2 } else { 1 };
                for c in (0..4).step_by(per) {
                    let p = 4 * g + c;
                    if p >= pseudo {
                        continue; // zero padding
                    }
                    let t = p / per;
                    let xb: &[f32; QK8_0] = x[t * k + b * QK8_0..t * k + (b + 1) * QK8_0]
                        .try_into()
                        .expect("32 values");
                    let (hi, rest) = quads[c..].split_first_mut().expect("lane c exists");
                    let lo = if pair { rest.first_mut() } else { None };
                    // SAFETY: `self` proves AVX-512 F/BW/VL.
                    let (d, sum_hi, sum_lo) = unsafe { quantize_block32(xb, hi, lo) };
                    corr[c] = -128 * sum_hi;
                    scale[c] = d;
                    if pair {
                        corr[c + 1] = -128 * sum_lo;
                        scale[c + 1] = d / LO_DIV;
                    }
                }
                // SAFETY: `self` proves AVX-512 F.
                unsafe { write_record(&quads, rec) };
                for c in 0..4 {
                    rec[REC_CORR + 4 * c..REC_CORR + 4 * c + 4]
                        .copy_from_slice(&corr[c].to_le_bytes());
                    rec[REC_SCALE + 4 * c..REC_SCALE + 4 * c + 4]
                        .copy_from_slice(&scale[c].to_le_bytes());
                }
            }
        }
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

/// Writes the 8 rotated 16-byte steps of a record from 4 tokens' quantized blocks: step
/// `s = 4h + ss`, dword `c` = token `c`'s dword `4h + (c + ss) mod 4`.
///
/// # Safety
/// AVX-512 F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn write_record(quads: &[[i8; QK8_0]; 4], rec: &mut [u8; REC]) {
    // Position 4·ss + c takes dword 4c + (c + ss) mod 4 of [t0 | t1 | t2 | t3] (16 bytes each).
    let idx = _mm512_set_epi32(14, 9, 4, 3, 13, 8, 7, 2, 12, 11, 6, 1, 15, 10, 5, 0);
    for h in 0..2 {
        // SAFETY: each quads[c] has 32 bytes, 16h..16h+16 is in range; rec has REC >= 512 bytes.
        unsafe {
            let part = |c: usize| _mm_loadu_si128(quads[c].as_ptr().add(16 * h).cast());
            let z = _mm512_inserti32x4::<3>(
                _mm512_inserti32x4::<2>(
                    _mm512_inserti32x4::<1>(_mm512_castsi128_si512(part(0)), part(1)),
                    part(2),
                ),
                part(3),
            );
            // Four steps of 16 bytes; each is stored broadcast to all four 128-bit lanes, so
            // the kernel loads it with a plain 64-byte load (no shuffle uop).
            let p = _mm512_permutexvar_epi32(idx, z);
            let dst = rec.as_mut_ptr().add(256 * h);
            _mm512_storeu_si512(dst.cast(), _mm512_shuffle_i32x4::<0x00>(p, p));
            _mm512_storeu_si512(dst.add(64).cast(), _mm512_shuffle_i32x4::<0x55>(p, p));
            _mm512_storeu_si512(dst.add(128).cast(), _mm512_shuffle_i32x4::<0xAA>(p, p));
            _mm512_storeu_si512(dst.add(192).cast(), _mm512_shuffle_i32x4::<0xFF>(p, p));
        }
    }
}
