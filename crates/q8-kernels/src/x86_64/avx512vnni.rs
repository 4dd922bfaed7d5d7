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
//! group it is 8 `VPDPBUSD`, 10 broadcast loads, and 3 f32 operations.
//!
//! The activations are packed per group of 4 (pseudo-)tokens and block into 160 bytes:
//! 8 × 16 bytes of rotated quads, 4 × i32 corrections and 4 × f32 scales. `Int8x2` packs the low
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
pub(crate) const REC: usize = 160;
/// Offset of the corrections in a record.
const REC_CORR: usize = 128;
/// Offset of the scales in a record.
const REC_SCALE: usize = 144;
/// Most token groups one micro-kernel call handles (4·GMAX pseudo-tokens).
const GMAX: usize = 8;

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
            Some(ActivationPrecision::F32) | None => crate::scalar::matmul_q8_0(w, rows, acts, out),
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
        let nb = acts.blocks_per_token();
        let pseudo = if pair { 2 * acts.tokens } else { acts.tokens };
        let n_groups = pseudo.div_ceil(4);
        let packed = acts.packed.as_ptr().cast::<u8>();
        let mut tile = [[0.0f32; 16]; GMAX];
        let mut r0 = rows.start;
        while r0 < rows.end {
            // Rows past the end repeat the last row; their results are not stored.
            let last = rows.end - 1;
            let rp: [*const BlockQ8_0; 4] =
                core::array::from_fn(|i| w[(r0 + i).min(last) * nb..].as_ptr());
            let mut g0 = 0;
            while g0 < n_groups {
                let gc = (n_groups - g0).min(GMAX);
                // SAFETY: group `g0 + g` for `g < gc` exists in `packed` (n_groups·nb records).
                let act = unsafe { packed.add(g0 * nb * REC) };
                // SAFETY: the rows have `nb` blocks each; the groups have `nb` records each.
                unsafe {
                    match gc {
                        1 => tile_kernel::<1>(rp, nb, act, &mut tile),
                        2 => tile_kernel::<2>(rp, nb, act, &mut tile),
                        3 => tile_kernel::<3>(rp, nb, act, &mut tile),
                        4 => tile_kernel::<4>(rp, nb, act, &mut tile),
                        5 => tile_kernel::<5>(rp, nb, act, &mut tile),
                        6 => tile_kernel::<6>(rp, nb, act, &mut tile),
                        7 => tile_kernel::<7>(rp, nb, act, &mut tile),
                        _ => tile_kernel::<8>(rp, nb, act, &mut tile),
                    }
                }
                store_tile(&tile[..gc], g0, r0 - rows.start, pair, out);
                g0 += gc;
            }
            r0 += 4;
        }
    }
}

/// Writes a finished tile: `tile[g][4i + c]` is (row `row0 + i`, pseudo-token `4(g0+g) + c`).
/// Rows past the end of `out[t]` and pseudo-tokens past the last token are dropped.
fn store_tile(tile: &[[f32; 16]], g0: usize, row0: usize, pair: bool, out: &mut [&mut [f32]]) {
    for (g, lanes) in tile.iter().enumerate() {
        for i in 0..4 {
            for c in 0..4 {
                let p = 4 * (g0 + g) + c;
                let (t, v) = if pair {
                    if c % 2 == 1 {
                        continue;
                    }
                    // High part plus low part, as the scalar backend adds them.
                    (p / 2, lanes[4 * i + c] + lanes[4 * i + c + 1])
                } else {
                    (p, lanes[4 * i + c])
                };
                if let Some(o) = out.get_mut(t).and_then(|o| o.get_mut(row0 + i)) {
                    *o = v;
                }
            }
        }
    }
}

/// The `VPSHUFD` immediates rotating each 128-bit lane's dwords by `s`: dword `c` ← `(c+s) mod 4`.
const ROT1: i32 = 0x39;
const ROT2: i32 = 0x4E;
const ROT3: i32 = 0x93;

/// The 4 rows × 4·G tokens micro-kernel over all `nb` blocks; writes `tile[..G]`.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI and F16C must be available; each `rows[i]` must point to `nb` readable
/// blocks; `act` must point to `G · nb` records of [`REC`] bytes (group-major).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile_kernel<const G: usize>(
    rows: [*const BlockQ8_0; 4],
    nb: usize,
    act: *const u8,
    tile: &mut [[f32; 16]; GMAX],
) {
    let flip = _mm512_set1_epi8(-128);
    let bcast_idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    let mut acc = [_mm512_setzero_ps(); G];
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
            // SAFETY: record (g, b) lies inside the G·nb records at `act`.
            unsafe {
                let rec = act.add((g * nb + b) * REC);
                let bc = |off: usize| _mm512_broadcast_i32x4(_mm_loadu_si128(rec.add(off).cast()));
                let mut ai = bc(REC_CORR);
                for (s, &wv) in ws.iter().enumerate() {
                    ai = _mm512_dpbusd_epi32(ai, wv, bc(16 * s));
                }
                let da = _mm512_broadcast_f32x4(_mm_loadu_ps(rec.add(REC_SCALE).cast()));
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai), _mm512_mul_ps(dw, da), *acc);
            }
        }
    }
    for (t, a) in tile.iter_mut().zip(acc) {
        // SAFETY: `t` is 16 f32s.
        unsafe { _mm512_storeu_ps(t.as_mut_ptr(), a) };
    }
}

/// Packs the portable int8 activations of `acts` into the tile layout (see the module docs).
pub(crate) fn pack(acts: &mut QuantizedActivations) {
    let pair = acts.precision == Some(ActivationPrecision::Int8x2);
    let nb = acts.blocks_per_token();
    let k = acts.k;
    let pseudo = if pair { 2 * acts.tokens } else { acts.tokens };
    let n_groups = pseudo.div_ceil(4);
    let bytes = n_groups * nb * REC;
    acts.packed.clear();
    acts.packed.resize(bytes.div_ceil(64), Align64([0; 64]));
    let buf = zerocopy::IntoBytes::as_mut_bytes(acts.packed.as_mut_slice());
    for g in 0..n_groups {
        for b in 0..nb {
            let rec = &mut buf[(g * nb + b) * REC..(g * nb + b + 1) * REC];
            for c in 0..4 {
                let p = 4 * g + c;
                if p >= pseudo {
                    continue; // zero padding: zero quads, correction and scale
                }
                let (t, lo) = if pair {
                    (p / 2, p % 2 == 1)
                } else {
                    (p, false)
                };
                let src = if lo { &acts.lo } else { &acts.hi };
                let q = &src[t * k + b * QK8_0..t * k + (b + 1) * QK8_0];
                for s in 0..8 {
                    let chunk = (s / 4) * 4 + (c + s % 4) % 4;
                    for j in 0..4 {
                        rec[16 * s + 4 * c + j] = q[4 * chunk + j] as u8;
                    }
                }
                let sum: i32 = q.iter().map(|&v| i32::from(v)).sum();
                rec[REC_CORR + 4 * c..REC_CORR + 4 * c + 4]
                    .copy_from_slice(&(-128 * sum).to_le_bytes());
                let d = acts.d[t * nb + b];
                let scale = if lo { d / LO_DIV } else { d };
                rec[REC_SCALE + 4 * c..REC_SCALE + 4 * c + 4].copy_from_slice(&scale.to_le_bytes());
            }
        }
    }
}
