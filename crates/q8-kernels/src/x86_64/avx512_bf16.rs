//! Attention with bf16 operands (AVX512_BF16 `VDPBF16PS`: 32 multiply-adds per instruction into
//! 16 f32 sums, twice the f32 FMA's).
//!
//! Per KV head and block of queries, the queries and keys are rounded to bf16 (round to nearest
//! even) once; the scores are a 4 keys × 4 query rows tile of `VDPBF16PS` over the head
//! dimension, reduced like the f32 tile. After the f32 softmax, the probabilities are rounded to
//! bf16 in pairs of consecutive keys, and the values are rounded and interleaved by the same key
//! pairs, so one `VDPBF16PS` with a broadcast probability pair adds two keys' values to 16
//! outputs.

use core::arch::x86_64::*;
use core::ops::Range;

use super::avx512_f32::hsum16;
use super::avx512vnni::Avx512Vnni;
use crate::attention::{AttentionBlock, AttentionSpec};

/// 32 bf16 values seen as 512 bits.
#[inline]
fn as_bh(x: __m512i) -> __m512bh {
    // SAFETY: both are 512-bit vectors with no invalid bit patterns.
    unsafe { core::mem::transmute::<__m512i, __m512bh>(x) }
}

/// 512 bits seen as 32 bf16 values.
#[inline]
fn from_bh(x: __m512bh) -> __m512i {
    // SAFETY: both are 512-bit vectors with no invalid bit patterns.
    unsafe { core::mem::transmute::<__m512bh, __m512i>(x) }
}

/// Rounds `x` (a multiple of 32 values) to bf16 into `out` (`x.len() / 2` dwords, each holding
/// two consecutive values, the first in the low half).
///
/// # Safety
/// AVX-512 F and AVX512_BF16 must be available.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn to_bf16_pairs(x: &[f32], out: &mut [u32]) {
    for (xc, oc) in x.chunks_exact(32).zip(out.chunks_exact_mut(16)) {
        // SAFETY: 32 f32s read, 16 dwords written.
        unsafe {
            let lo = _mm512_loadu_ps(xc.as_ptr());
            let hi = _mm512_loadu_ps(xc.as_ptr().add(16));
            let b = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512(oc.as_mut_ptr().cast(), from_bh(b));
        }
    }
}

impl Avx512Vnni {
    /// [`Avx512Vnni::attention_block`] with bf16 operands; `shape.head_dim` must be a multiple of
    /// 32 and the CPU must have AVX512_BF16 (`self.bf16`), both checked by the caller.
    pub(crate) fn attention_block_bf16(
        self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: &AttentionSpec,
        queries: Range<usize>,
        out_block: &mut [f32],
    ) {
        debug_assert!(self.bf16 && shape.head_dim.is_multiple_of(32));
        // SAFETY: `self.bf16` proves AVX512_BF16 next to the backend's AVX-512 features; the
        // shapes were checked by the dispatcher.
        unsafe { self.attention_block_bf16_impl(q, k, v, shape, queries, out_block) }
    }

    /// # Safety
    /// AVX-512 F/BW/VL, FMA and AVX512_BF16; checked shapes; `head_dim` a multiple of 32.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,avx512bf16")]
    unsafe fn attention_block_bf16_impl(
        self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: &AttentionSpec,
        queries: Range<usize>,
        out_block: &mut [f32],
    ) {
        let d = shape.head_dim;
        let Some(AttentionBlock {
            group,
            q_stride,
            kv_stride,
            k0,
            k1,
            rows,
        }) = shape.block(&queries)
        else {
            return;
        };
        let nk = k1 - k0;
        let pairs = nk.div_ceil(2);
        // bf16 pairs: queries (rows × d/2), keys (nk × d/2), values interleaved by key pairs
        // (pairs × d dwords: dword `jp·d + c` = values c of keys 2jp and 2jp+1), probabilities
        // (rows × pairs rounded up to 16, dword `jp` = keys 2jp and 2jp+1).
        let p_stride = pairs.next_multiple_of(16);
        let mut qb = vec![0u32; rows * d / 2];
        let mut kb = vec![0u32; nk * d / 2];
        let mut vb = vec![0u32; pairs * d];
        let mut pb = vec![0u32; rows * p_stride];
        let mut s = vec![0.0f32; rows * nk];
        let mut p_row = vec![0.0f32; 2 * p_stride];
        for kvh in 0..shape.n_kv_heads {
            for (ri, qr) in qb.chunks_exact_mut(d / 2).enumerate() {
                let (qi, g) = (queries.start + ri / group, ri % group);
                let o = qi * q_stride + (kvh * group + g) * d;
                // SAFETY: AVX-512 F and BF16 (this function's contract).
                unsafe { to_bf16_pairs(&q[o..o + d], qr) };
            }
            for (j, kr) in kb.chunks_exact_mut(d / 2).enumerate() {
                let o = (k0 + j) * kv_stride + kvh * d;
                // SAFETY: as above.
                unsafe { to_bf16_pairs(&k[o..o + d], kr) };
            }
            // SAFETY: as above; `vb` has pairs·d dwords.
            unsafe { interleave_values(v, kvh * d, kv_stride, k0..k1, d, &mut vb) };

            // Scores.
            for (ri0, srows) in (0..rows).step_by(4).zip(s.chunks_mut(4 * nk)) {
                let nr = (rows - ri0).min(4);
                let mut j0 = 0;
                while j0 < nk {
                    let nj = (nk - j0).min(4);
                    // SAFETY: rows ri0..ri0+nr of qb and keys j0..j0+nj of kb exist, d/2
                    // dwords each.
                    let sums = unsafe { score_tile(&qb, &kb, d, ri0, nr, j0, nj) };
                    for i in 0..nr {
                        for jj in 0..nj {
                            srows[i * nk + j0 + jj] = sums[4 * i + jj];
                        }
                    }
                    j0 += nj;
                }
            }
            // Softmax over each row's own window, then the probabilities as bf16 pairs.
            for (ri, (row, prow)) in s
                .chunks_exact_mut(nk)
                .zip(pb.chunks_exact_mut(p_stride))
                .enumerate()
            {
                let kr = shape.key_range(queries.start + ri / group);
                let (a, b) = (kr.start - k0, kr.end - k0);
                self.scale_mul(&mut row[a..b], shape.scale, None);
                self.softmax(&mut row[a..b]);
                p_row.fill(0.0);
                p_row[a..b].copy_from_slice(&row[a..b]);
                // SAFETY: AVX-512 F and BF16; p_row has 2·p_stride values (a multiple of 32).
                unsafe { to_bf16_pairs(&p_row, prow) };
            }
            // P·V in 4 rows × 64 values tiles.
            let mut r0 = 0;
            while r0 < rows {
                let nr = (rows - r0).min(4);
                let mut c0 = 0;
                while c0 < d {
                    // SAFETY: rows r0..r0+nr of pb have p_stride ≥ pairs dwords; vb has pairs·d
                    // dwords and c0 + 64 <= d (d is a multiple of 32: the last tile may be 32
                    // wide, handled by the mask inside).
                    let tile = unsafe {
                        pv_tile_bf16(&pb[r0 * p_stride..], p_stride, nr, &vb, d, pairs, c0)
                    };
                    let nc = (d - c0).min(64);
                    for (i, t) in tile.iter().enumerate().take(nr) {
                        let ri = r0 + i;
                        let (qi, g) = (ri / group, ri % group);
                        let o = qi * q_stride + (kvh * group + g) * d + c0;
                        out_block[o..o + nc].copy_from_slice(&t[..nc]);
                    }
                    c0 += 64;
                }
                r0 += nr;
            }
        }
    }
}

/// Rounds the values of keys `keys` (value `c` of key `j` at `v[off + j·stride + c]`) to bf16,
/// interleaved by key pairs into `out`: dword `jp·d + c` holds key `k0 + 2jp` in its low half and
/// key `k0 + 2jp + 1` (or zero past the last key) in its high half.
///
/// # Safety
/// AVX-512 F/BW and AVX512_BF16; `d` a multiple of 32; `out` holds `⌈keys.len()/2⌉·d` dwords;
/// `v` has every value read.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn interleave_values(
    v: &[f32],
    off: usize,
    stride: usize,
    keys: Range<usize>,
    d: usize,
    out: &mut [u32],
) {
    let n = keys.len();
    for (jp, dst) in out.chunks_exact_mut(d).enumerate().take(n.div_ceil(2)) {
        let j = keys.start + 2 * jp;
        let first = &v[off + j * stride..off + j * stride + d];
        let second =
            (2 * jp + 1 < n).then(|| &v[off + (j + 1) * stride..off + (j + 1) * stride + d]);
        for c in (0..d).step_by(16) {
            // SAFETY: 16 values at c of each key; 16 dwords written at c.
            unsafe {
                let a = _mm512_loadu_ps(first.as_ptr().add(c));
                let b = match second {
                    Some(s) => _mm512_loadu_ps(s.as_ptr().add(c)),
                    None => _mm512_setzero_ps(),
                };
                // 32 bf16: a's 16 in lanes 0..16, b's in 16..32.
                let ab = from_bh(_mm512_cvtne2ps_pbh(b, a));
                // Interleave: 16-bit lane 2i ← a[i] (lane i), 2i+1 ← b[i] (lane 16 + i).
                let idx = _mm512_set_epi16(
                    31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                    5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0,
                );
                let inter = _mm512_permutexvar_epi16(idx, ab);
                _mm512_storeu_si512(dst.as_mut_ptr().add(c).cast(), inter);
            }
        }
    }
}

/// The scores of query rows `ri0..ri0+nr` against keys `j0..j0+nj` (`nr, nj <= 4`): element
/// `4i + jj` is row `ri0 + i` · key `j0 + jj`.
///
/// # Safety
/// AVX-512 F and AVX512_BF16; `qb` holds those rows and `kb` those keys, `d/2` dwords each,
/// `d` a multiple of 32.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn score_tile(
    qb: &[u32],
    kb: &[u32],
    d: usize,
    ri0: usize,
    nr: usize,
    j0: usize,
    nj: usize,
) -> [f32; 16] {
    let h = d / 2;
    let qr: [*const u32; 4] = core::array::from_fn(|i| qb[(ri0 + i.min(nr - 1)) * h..].as_ptr());
    let kr: [*const u32; 4] = core::array::from_fn(|j| kb[(j0 + j.min(nj - 1)) * h..].as_ptr());
    let mut acc = [_mm512_setzero_ps(); 16];
    for c in (0..h).step_by(16) {
        // SAFETY: c + 16 <= d/2 for each row and key pointer.
        unsafe {
            let qv: [__m512bh; 4] =
                core::array::from_fn(|i| as_bh(_mm512_loadu_si512(qr[i].add(c).cast())));
            let kv: [__m512bh; 4] =
                core::array::from_fn(|j| as_bh(_mm512_loadu_si512(kr[j].add(c).cast())));
            for i in 0..4 {
                for j in 0..4 {
                    acc[4 * i + j] = _mm512_dpbf16_ps(acc[4 * i + j], qv[i], kv[j]);
                }
            }
        }
    }
    let mut out = [0.0f32; 16];
    // SAFETY: AVX-512 F (contract); `out` holds 16 f32s.
    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), hsum16(&acc)) };
    out
}

/// `tile[i][c] = Σ_j p[i][j]·v[j][c0 + c]` for rows `i < nr` and `c < 64` (lanes past `d` are
/// zero), over the key pairs `0..pairs`.
///
/// # Safety
/// AVX-512 F and AVX512_BF16; `pb` holds `nr` rows of `p_stride >= pairs` dwords; `vb` holds
/// `pairs · d` dwords; `c0 < d`, `d` a multiple of 32.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pv_tile_bf16(
    pb: &[u32],
    p_stride: usize,
    nr: usize,
    vb: &[u32],
    d: usize,
    pairs: usize,
    c0: usize,
) -> [[f32; 64]; 4] {
    let wide = d - c0 >= 64;
    let mut acc = [[_mm512_setzero_ps(); 4]; 4];
    for jp in 0..pairs {
        // SAFETY: pair jp's values c0..c0+64 (or +32) and every row's pair jp are in bounds.
        unsafe {
            let base = vb.as_ptr().add(jp * d + c0);
            let vv: [__m512bh; 4] = core::array::from_fn(|u| {
                if u < 2 || wide {
                    as_bh(_mm512_loadu_si512(base.add(16 * u).cast()))
                } else {
                    as_bh(_mm512_setzero_si512())
                }
            });
            for (i, acc) in acc.iter_mut().enumerate().take(nr) {
                let pp = as_bh(_mm512_set1_epi32(
                    *pb.get_unchecked(i * p_stride + jp) as i32
                ));
                for u in 0..4 {
                    acc[u] = _mm512_dpbf16_ps(acc[u], pp, vv[u]);
                }
            }
        }
    }
    let mut tile = [[0.0f32; 64]; 4];
    for (t, a) in tile.iter_mut().zip(acc) {
        for (u, au) in a.into_iter().enumerate() {
            // SAFETY: `t` has 64 f32s.
            unsafe { _mm512_storeu_ps(t.as_mut_ptr().add(16 * u), au) };
        }
    }
    tile
}
