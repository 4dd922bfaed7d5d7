//! The f32 side of the AVX-512 backend: float-weight matmuls (f32, f16, bf16, and Q8_0 weights
//! with f32 activations), and the vector pieces of a layer (dot, axpy, RMSNorm, softmax, GeGLU).
//!
//! The matmul tile is 4 rows × 4 tokens: 16 zmm accumulators, and per 16 values of k 4 weight
//! loads (converted to f32 once, used by 4 tokens) and 4 activation loads (used by 4 rows) feed
//! 16 FMAs. Lane partial sums are reduced once per output at the end.

use core::arch::x86_64::*;
use core::ops::Range;

use half::{bf16, f16};

use super::avx512vnni::Avx512Vnni;
use crate::attention::{AttentionBlock, AttentionPrecision, AttentionSpec};
use crate::block::{BlockQ8_0, QK8_0};
use crate::scalar::{EXP_LN2_HI, EXP_LN2_LO, EXP_POLY};
use crate::scalar::{GELU_COEF_A, SQRT_2_OVER_PI};

/// Weight rows the f32 tile can read 16 values at a time, converted to f32.
pub(crate) trait Rows16: Sync {
    /// Values `j..j+16` of row `r` as f32, with lanes `>= len` zero (`len <= 16`).
    ///
    /// # Safety
    /// AVX-512 F/BW/VL and F16C must be available; row `r` must exist and `j + len <= k`.
    unsafe fn load(&self, r: usize, j: usize, len: usize) -> __m512;
    /// Where value `j` of row `r` is, computed without bounds (the row need not exist): for
    /// prefetching only.
    fn addr(&self, r: usize, j: usize) -> *const u8;
}

/// Row-major float weights: row `r` is `w[r·stride ..][..k]`.
pub(crate) struct FloatRows<'a, T> {
    /// The weights.
    pub(crate) w: &'a [T],
    /// Distance between rows.
    pub(crate) stride: usize,
}

/// Q8_0 weights, `nb` blocks per row.
pub(crate) struct Q8Rows<'a> {
    /// The blocks.
    pub(crate) w: &'a [BlockQ8_0],
    /// Blocks per row.
    pub(crate) nb: usize,
}

/// Mask of the first `len` (≤ 16) lanes.
#[inline]
fn mask(len: usize) -> __mmask16 {
    if len >= 16 {
        0xFFFF
    } else {
        (1u16 << len) - 1
    }
}

/// A float type the AVX-512 tile converts 16 at a time.
pub(crate) trait Load16: Sized + Sync {
    /// `p[0..len]` as f32, lanes `>= len` zero.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL and F16C must be available; `p[0..len]` must be readable, `len <= 16`.
    unsafe fn load16(p: *const Self, len: usize) -> __m512;
}

impl Load16 for f32 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    unsafe fn load16(p: *const f32, len: usize) -> __m512 {
        // SAFETY: only the first `len` lanes are read (contract).
        unsafe { _mm512_maskz_loadu_ps(mask(len), p) }
    }
}

impl Load16 for f16 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    unsafe fn load16(p: *const f16, len: usize) -> __m512 {
        // SAFETY: only the first `len` 16-bit lanes are read (contract).
        _mm512_cvtph_ps(unsafe { _mm256_maskz_loadu_epi16(mask(len), p.cast()) })
    }
}

impl Load16 for bf16 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    unsafe fn load16(p: *const bf16, len: usize) -> __m512 {
        // SAFETY: only the first `len` 16-bit lanes are read (contract).
        let h = unsafe { _mm256_maskz_loadu_epi16(mask(len), p.cast()) };
        // bf16 is the high half of an f32.
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
    }
}

impl<T: Load16> Rows16 for FloatRows<'_, T> {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    unsafe fn load(&self, r: usize, j: usize, len: usize) -> __m512 {
        // SAFETY: row r exists and j + len <= k (contract).
        unsafe { T::load16(self.w.as_ptr().add(r * self.stride + j), len) }
    }
    fn addr(&self, r: usize, j: usize) -> *const u8 {
        self.w.as_ptr().wrapping_add(r * self.stride + j).cast()
    }
}

impl Rows16 for Q8Rows<'_> {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    unsafe fn load(&self, r: usize, j: usize, _len: usize) -> __m512 {
        // k is a multiple of 32, so len is always 16 and j a multiple of 16.
        // SAFETY: row r has nb blocks and j < 32·nb (contract); qs has 32 bytes, off ∈ {0, 16}.
        let (q, d) = unsafe {
            let blk = self.w.as_ptr().add(r * self.nb + j / QK8_0);
            let q = _mm_loadu_si128((*blk).qs.as_ptr().add(j % QK8_0).cast());
            let d = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                blk.cast::<u16>().read_unaligned(),
            )));
            (q, _mm512_broadcastss_ps(d))
        };
        // d·q is exact in f32 (11-bit × 8-bit mantissas).
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d)
    }
    fn addr(&self, r: usize, j: usize) -> *const u8 {
        self.w.as_ptr().wrapping_add(r * self.nb + j / QK8_0).cast()
    }
}

impl Avx512Vnni {
    /// `out[t][r − rows.start] = Σ_j W[r, j]·x[t, j]` over `rows`, `x` `tokens × k`.
    pub(crate) fn matmul_rows16<W: Rows16>(
        self,
        w: &W,
        k: usize,
        rows: Range<usize>,
        x: &[f32],
        out: &mut [&mut [f32]],
    ) {
        // SAFETY: `self` proves the features; the dispatcher checked that `w` has every row
        // of `rows` with `k` values, `x` has `out.len()` rows of `k`, `out[t]` has
        // `rows.len()` values.
        unsafe { self.matmul_rows16_impl(w, k, rows, x, out) }
    }

    /// # Safety
    /// See [`Avx512Vnni::matmul_rows16`]: CPU features and consistent shapes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn matmul_rows16_impl<W: Rows16>(
        self,
        w: &W,
        k: usize,
        rows: Range<usize>,
        x: &[f32],
        out: &mut [&mut [f32]],
    ) {
        let tokens = out.len();
        // Row blocks small enough for L2 (32 rows × k f32), each swept by all token tiles.
        let mut rb = rows.start;
        while rb < rows.end {
            let rb1 = (rb + 32).min(rows.end);
            let block = rb..rb1;
            let off = rb - rows.start;
            let mut t0 = 0;
            while t0 < tokens {
                let tc = (tokens - t0).min(4);
                // SAFETY: forwarded contract; tokens t0..t0+tc exist; `block` ⊆ `rows`, so
                // column `off + i` of `out[t]` is row `rb + i`.
                unsafe {
                    match tc {
                        1 => tile16::<W, 1>(w, k, block.clone(), off, x, t0, out),
                        2 => tile16::<W, 2>(w, k, block.clone(), off, x, t0, out),
                        3 => tile16::<W, 3>(w, k, block.clone(), off, x, t0, out),
                        _ => tile16::<W, 4>(w, k, block.clone(), off, x, t0, out),
                    }
                }
                t0 += tc;
            }
            rb = rb1;
        }
    }

    /// `Σ a[i]·b[i]` (equal lengths).
    pub(crate) fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: `self` proves AVX-512 F; lengths are equal (checked by the callers).
        unsafe { dot_impl(a, b) }
    }

    /// `y += a·x` (equal lengths).
    pub(crate) fn axpy(self, a: f32, x: &[f32], y: &mut [f32]) {
        // SAFETY: `self` proves AVX-512 F; lengths are equal (checked by the callers).
        unsafe { axpy_impl(a, x, y) }
    }

    /// `x *= s`, then `x *= weight` elementwise if given (same length).
    pub(crate) fn scale_mul(self, x: &mut [f32], s: f32, weight: Option<&[f32]>) {
        // SAFETY: `self` proves AVX-512 F; weight has x.len() values (callers).
        unsafe { scale_mul_impl(x, s, weight) }
    }

    /// In-place softmax.
    pub(crate) fn softmax(self, x: &mut [f32]) {
        // SAFETY: `self` proves AVX-512 F.
        unsafe { softmax_impl(x) }
    }

    /// `out = gelu_tanh(gate)·up` (equal lengths).
    pub(crate) fn geglu(self, gate: &[f32], up: &[f32], out: &mut [f32]) {
        // SAFETY: `self` proves AVX-512 F; lengths are equal (checked by the dispatcher).
        unsafe { geglu_impl(gate, up, out) }
    }
}

/// # Safety
/// AVX-512 F; `b.len() >= a.len()`.
#[target_feature(enable = "avx512f,fma")]
unsafe fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut j = 0;
    // SAFETY: every load reads lanes below n (masked at the tail).
    unsafe {
        while j + 64 <= n {
            for (u, acc) in acc.iter_mut().enumerate() {
                let o = j + 16 * u;
                *acc = _mm512_fmadd_ps(
                    _mm512_loadu_ps(a.as_ptr().add(o)),
                    _mm512_loadu_ps(b.as_ptr().add(o)),
                    *acc,
                );
            }
            j += 64;
        }
        while j < n {
            let m = mask(n - j);
            acc[0] = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(m, a.as_ptr().add(j)),
                _mm512_maskz_loadu_ps(m, b.as_ptr().add(j)),
                acc[0],
            );
            j += 16;
        }
    }
    let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(s)
}

/// # Safety
/// AVX-512 F; `x.len() >= y.len()`.
#[target_feature(enable = "avx512f,fma")]
unsafe fn axpy_impl(a: f32, x: &[f32], y: &mut [f32]) {
    let n = y.len();
    let av = _mm512_set1_ps(a);
    let mut j = 0;
    while j < n {
        let m = mask(n - j);
        // SAFETY: masked lanes are below n.
        unsafe {
            let yv = _mm512_maskz_loadu_ps(m, y.as_ptr().add(j));
            let xv = _mm512_maskz_loadu_ps(m, x.as_ptr().add(j));
            _mm512_mask_storeu_ps(y.as_mut_ptr().add(j), m, _mm512_fmadd_ps(av, xv, yv));
        }
        j += 16;
    }
}

/// # Safety
/// AVX-512 F; `weight`, if given, has at least `x.len()` values.
#[target_feature(enable = "avx512f")]
unsafe fn scale_mul_impl(x: &mut [f32], s: f32, weight: Option<&[f32]>) {
    let n = x.len();
    let sv = _mm512_set1_ps(s);
    let mut j = 0;
    while j < n {
        let m = mask(n - j);
        // SAFETY: masked lanes are below n.
        unsafe {
            let mut v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x.as_ptr().add(j)), sv);
            if let Some(w) = weight {
                v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w.as_ptr().add(j)));
            }
            _mm512_mask_storeu_ps(x.as_mut_ptr().add(j), m, v);
        }
        j += 16;
    }
}

/// `exp(x)` to ~2 ulp (Cephes `expf` polynomial; `scalef` applies the power of two, so large
/// negative inputs give 0 and large positive ones +∞).
///
/// # Safety
/// AVX-512 F and FMA.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn exp_ps(x: __m512) -> __m512 {
    let x = _mm512_max_ps(
        _mm512_min_ps(x, _mm512_set1_ps(88.8)),
        _mm512_set1_ps(-104.0),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(core::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP_POLY[0]);
    for c in &EXP_POLY[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(*c));
    }
    let r2 = _mm512_mul_ps(r, r);
    let p = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
    _mm512_scalef_ps(p, n)
}

/// # Safety
/// AVX-512 F and FMA.
#[target_feature(enable = "avx512f,fma")]
unsafe fn softmax_impl(x: &mut [f32]) {
    let n = x.len();
    if n == 0 {
        return;
    }
    let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut j = 0;
    while j < n {
        // SAFETY: masked lanes are below n.
        let v = unsafe {
            _mm512_mask_loadu_ps(
                _mm512_set1_ps(f32::NEG_INFINITY),
                mask(n - j),
                x.as_ptr().add(j),
            )
        };
        mx = _mm512_max_ps(mx, v);
        j += 16;
    }
    let mxv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    let mut sum = _mm512_setzero_ps();
    j = 0;
    while j < n {
        let m = mask(n - j);
        // SAFETY: masked lanes are below n; exp_ps needs AVX-512 F + FMA (this fn's contract).
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(j));
            let e = _mm512_maskz_mov_ps(m, exp_ps(_mm512_sub_ps(v, mxv)));
            sum = _mm512_add_ps(sum, e);
            _mm512_mask_storeu_ps(x.as_mut_ptr().add(j), m, e);
        }
        j += 16;
    }
    let inv = 1.0 / _mm512_reduce_add_ps(sum);
    // SAFETY: AVX-512 F (contract).
    unsafe { scale_mul_impl(x, inv, None) };
}

/// # Safety
/// AVX-512 F and FMA; `up` and `out` at least as long as `gate`.
#[target_feature(enable = "avx512f,fma")]
unsafe fn geglu_impl(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let n = gate.len();
    let mut j = 0;
    while j < n {
        let m = mask(n - j);
        // SAFETY: masked lanes are below n; exp_ps's features are this fn's contract.
        unsafe {
            let g = _mm512_maskz_loadu_ps(m, gate.as_ptr().add(j));
            let u = _mm512_maskz_loadu_ps(m, up.as_ptr().add(j));
            // gelu(g) = g·sigmoid(2z), z = √(2/π)·(g + 0.044715·g³) = g·(c + c·a·g²).
            let g2 = _mm512_mul_ps(g, g);
            let z = _mm512_mul_ps(
                g,
                _mm512_fmadd_ps(
                    _mm512_set1_ps(SQRT_2_OVER_PI * GELU_COEF_A),
                    g2,
                    _mm512_set1_ps(SQRT_2_OVER_PI),
                ),
            );
            let e = exp_ps(_mm512_mul_ps(z, _mm512_set1_ps(-2.0)));
            let gelu = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0), e));
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(j), m, _mm512_mul_ps(gelu, u));
        }
        j += 16;
    }
}

/// Tokens `t0..t0+T` × all `rows`, 4 rows at a time; row `rows.start + i` goes to column
/// `col0 + i` of `out[t]`.
///
/// # Safety
/// As [`Avx512Vnni::matmul_rows16`], plus AVX-512 F/BW/VL, FMA and F16C available,
/// `t0 + T <= out.len()` and `col0 + rows.len() <= out[t].len()`.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn tile16<W: Rows16, const T: usize>(
    w: &W,
    k: usize,
    rows: Range<usize>,
    col0: usize,
    x: &[f32],
    t0: usize,
    out: &mut [&mut [f32]],
) {
    let last = rows.end.saturating_sub(1);
    let mut r0 = rows.start;
    while r0 < rows.end {
        let rr: [usize; 4] = core::array::from_fn(|i| (r0 + i).min(last));
        let mut acc = [[_mm512_setzero_ps(); T]; 4];
        let mut j = 0;
        while j < k {
            // The next 4 rows stream in while these are used.
            for i in 0..4 {
                _mm_prefetch::<_MM_HINT_T1>(w.addr(r0 + 4 + i, j).cast());
            }
            let len = (k - j).min(16);
            // SAFETY: rows rr exist, j + len <= k; x rows t0..t0+T exist with k values.
            unsafe {
                let wv: [__m512; 4] = core::array::from_fn(|i| w.load(rr[i], j, len));
                for c in 0..T {
                    let xv = _mm512_maskz_loadu_ps(mask(len), x.as_ptr().add((t0 + c) * k + j));
                    for i in 0..4 {
                        acc[i][c] = _mm512_fmadd_ps(wv[i], xv, acc[i][c]);
                    }
                }
            }
            j += len;
        }
        // One transposing reduction for all 16 (token, row) sums instead of 16 reductions.
        let v: [__m512; 16] = core::array::from_fn(|j| {
            let (c, i) = (j / 4, j % 4);
            if c < T {
                acc[i][c]
            } else {
                _mm512_setzero_ps()
            }
        });
        let mut sums = [0.0f32; 16];
        // SAFETY: `sums` holds 16 f32s; AVX-512 F is this function's contract.
        unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), hsum16(&v)) };
        for c in 0..T {
            for i in 0..(rows.end - r0).min(4) {
                out[t0 + c][col0 + r0 + i - rows.start] = sums[4 * c + i];
            }
        }
        r0 += 4;
    }
}

/// `r[j] = Σ_lanes v[j]` for 16 vectors: pairs are combined within 128-bit lanes
/// (unpack, then shuffle), then across lanes (`VSHUFF32X4`): 45 operations instead of 16 full
/// reductions of ~8 each.
///
/// # Safety
/// AVX-512 F must be available.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn hsum16(v: &[__m512; 16]) -> __m512 {
    // Lane L of u[i]: [a0+a2, b0+b2, a1+a3, b1+b3] for a = v[2i], b = v[2i+1].
    let u: [__m512; 8] = core::array::from_fn(|i| {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
    });
    // Lane L of w[i]: the lane-L sums of v[4i], v[4i+1], v[4i+2], v[4i+3].
    let w: [__m512; 4] = core::array::from_fn(|i| {
        let (x, y) = (u[2 * i], u[2 * i + 1]);
        _mm512_add_ps(
            _mm512_shuffle_ps::<0x44>(x, y),
            _mm512_shuffle_ps::<0xEE>(x, y),
        )
    });
    let pair = |a: __m512, b: __m512| {
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(a, b),
            _mm512_shuffle_f32x4::<0xDD>(a, b),
        )
    };
    let (c01, c23) = (pair(w[0], w[1]), pair(w[2], w[3]));
    pair(c01, c23)
}

impl Avx512Vnni {
    /// Attention of the query positions `queries` for every head; `out_block` holds those
    /// positions' output rows (`queries.len() × n_heads × head_dim`). Shapes are checked.
    ///
    /// Per KV head, the queries of all heads sharing it are gathered into one matrix, the
    /// scores against the union of their key windows are computed from the transposed keys
    /// (`keys.panels`, made once per call of the dispatcher by [`Avx512Vnni::keys`]) in
    /// 8-row × 32-key register tiles, each row is masked to its own window and softmaxed, and
    /// `P·V` runs in 4-row × 64-value register tiles.
    pub(crate) fn attention_block(
        self,
        q: &[f32],
        keys: &Keys<'_>,
        v: &[f32],
        shape: &AttentionSpec,
        queries: Range<usize>,
        out_block: &mut [f32],
    ) {
        let d = shape.head_dim;
        if self.uses_bf16_attention(shape) {
            return self.attention_block_bf16(q, keys.rows, v, shape, queries, out_block);
        }
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
        let mut qbuf = vec![0.0f32; rows * d];
        let mut s = vec![0.0f32; rows * nk];
        for kvh in 0..shape.n_kv_heads {
            for (ri, qr) in qbuf.chunks_exact_mut(d).enumerate() {
                let (qi, g) = (queries.start + ri / group, ri % group);
                let h = kvh * group + g;
                qr.copy_from_slice(&q[qi * q_stride + h * d..qi * q_stride + (h + 1) * d]);
            }
            let panels = &keys.panels[kvh * d * shape.seq_len.next_multiple_of(PANEL)..];
            // SAFETY: `self` proves AVX-512 F; `qbuf` is rows × d, `s` rows × nk, and `panels`
            // holds this KV head's key panels (made by `keys` for this shape).
            unsafe { scores(&qbuf, rows, d, panels, k0..k1, &mut s) };
            for (ri, row) in s.chunks_exact_mut(nk).enumerate() {
                let kr = shape.key_range(queries.start + ri / group);
                let (a, b) = (kr.start - k0, kr.end - k0);
                row[..a].fill(0.0);
                row[b..].fill(0.0);
                self.scale_mul(&mut row[a..b], shape.scale, None);
                self.softmax(&mut row[a..b]);
            }
            let vv = &v[kvh * d..];
            let mut r0 = 0;
            while r0 < rows {
                let nr = (rows - r0).min(4);
                let mut c0 = 0;
                while c0 < d {
                    let nc = (d - c0).min(64);
                    let mut tile = [[0.0f32; 64]; 4];
                    // SAFETY: `self` proves the features; `s` has rows·nk probabilities, rows
                    // r0..r0+nr exist; keys k0..k1 of `vv` have values c0..c0+nc at stride
                    // kv_stride (shapes checked by the dispatcher).
                    unsafe {
                        pv_tile(
                            &s[r0 * nk..],
                            nk,
                            nr,
                            vv,
                            kv_stride,
                            k0..k1,
                            c0,
                            nc,
                            &mut tile,
                        )
                    };
                    for (i, t) in tile.iter().enumerate().take(nr) {
                        let ri = r0 + i;
                        let (qi, g) = (ri / group, ri % group);
                        let h = kvh * group + g;
                        let o = qi * q_stride + h * d + c0;
                        out_block[o..o + nc].copy_from_slice(&t[..nc]);
                    }
                    c0 += nc;
                }
                r0 += nr;
            }
        }
    }
}

impl Avx512Vnni {
    /// Whether [`Avx512Vnni::attention_block`] takes the bf16 path for `shape`.
    pub(crate) fn uses_bf16_attention(self, shape: &AttentionSpec) -> bool {
        shape.precision == AttentionPrecision::Bf16
            && self.bf16
            && shape.head_dim.is_multiple_of(32)
    }

    /// The keys `k` (`seq_len × n_kv_heads × head_dim`) of one attention call, with their
    /// panels for the f32 path (see [`Keys`]).
    pub(crate) fn keys<'a>(self, k: &'a [f32], shape: &AttentionSpec) -> Keys<'a> {
        let panels = if self.uses_bf16_attention(shape) {
            Vec::new()
        } else {
            key_panels(k, shape)
        };
        Keys { rows: k, panels }
    }
}

/// The keys of one attention call, as given (`seq_len × n_kv_heads × head_dim`) and, for the
/// f32 path, transposed for [`scores`] (empty on the bf16 path): per KV head, panels of
/// [`PANEL`] keys, each `head_dim × PANEL` (value `c` of the panel's keys is 16 consecutive
/// floats), keys past the end zero. Key `j`, value `c` of KV head `h` is at
/// `((h·panels + j/16)·head_dim + c)·16 + j%16`.
pub(crate) struct Keys<'a> {
    /// The keys as given.
    pub(crate) rows: &'a [f32],
    /// The transposed keys.
    panels: Vec<f32>,
}

/// The panels of [`Keys`] for the keys `k`.
fn key_panels(k: &[f32], shape: &AttentionSpec) -> Vec<f32> {
    let (d, n) = (shape.head_dim, shape.seq_len);
    let per_head = d * n.next_multiple_of(PANEL);
    let mut out = vec![0.0f32; shape.n_kv_heads * per_head];
    for (h, head) in out.chunks_exact_mut(per_head).enumerate() {
        let head_keys = k.chunks_exact(d).skip(h).step_by(shape.n_kv_heads);
        for (j, key) in head_keys.enumerate() {
            let panel = &mut head[(j / PANEL) * d * PANEL..][..d * PANEL];
            for (c, &x) in key.iter().enumerate() {
                panel[c * PANEL + j % PANEL] = x;
            }
        }
    }
    out
}

/// Keys per panel of [`Keys`] (one zmm of f32).
const PANEL: usize = 16;
/// Query rows per score tile.
const SCORE_ROWS: usize = 8;

/// `s[r·nk + j − keys.start] = Σ_c q[r·d + c] · K[j][c]` for rows `r < rows` and keys
/// `j ∈ keys` (`nk = keys.len()`), summed in order of `c` (so the result does not depend on
/// the tiling); `panels` are one KV head's key panels ([`Keys`]).
///
/// # Safety
/// AVX-512 F must be available; `q` holds `rows × d` values, `s` holds `rows × nk`, and
/// `panels` holds the panels of every key in `keys`.
#[target_feature(enable = "avx512f")]
unsafe fn scores(
    q: &[f32],
    rows: usize,
    d: usize,
    panels: &[f32],
    keys: Range<usize>,
    s: &mut [f32],
) {
    let nk = keys.len();
    if nk == 0 {
        return;
    }
    debug_assert!(q.len() >= rows * d && s.len() >= rows * nk);
    debug_assert!(panels.len() >= keys.end.div_ceil(PANEL) * PANEL * d);
    // The lanes of panel `p` whose keys are in `keys`.
    let lanes = |p: usize| -> __mmask16 {
        let first = keys.start.saturating_sub(p * PANEL).min(PANEL);
        let end = keys.end.saturating_sub(p * PANEL).min(PANEL);
        mask(end) & !mask(first)
    };
    let (p0, p1) = (keys.start / PANEL, keys.end.div_ceil(PANEL));
    let mut r0 = 0;
    while r0 < rows {
        let nr = (rows - r0).min(SCORE_ROWS);
        let mut p = p0;
        while p < p1 {
            let np = (p1 - p).min(2);
            let m = [lanes(p), if np == 2 { lanes(p + 1) } else { 0 }];
            let qp = q[r0 * d..].as_ptr();
            let kp = panels[p * PANEL * d..].as_ptr();
            // Where key `p·16` of row `r0` goes; it may lie before `s` (lanes masked off).
            let out = s
                .as_mut_ptr()
                .wrapping_add(r0 * nk)
                .wrapping_sub(keys.start)
                .wrapping_add(p * PANEL);
            // SAFETY: rows r0..r0+nr of q and panels p..p+np exist (this function's contract);
            // every stored lane is a key of `keys` in one of those rows of `s`. Fewer than
            // SCORE_ROWS rows (the last tile) go one at a time.
            unsafe {
                match (nr, np) {
                    (SCORE_ROWS, 2) => score_tile::<SCORE_ROWS, 2>(qp, d, kp, out, nk, m),
                    (SCORE_ROWS, _) => score_tile::<SCORE_ROWS, 1>(qp, d, kp, out, nk, m),
                    _ => {
                        for r in 0..nr {
                            let (qr, or) = (qp.add(r * d), out.wrapping_add(r * nk));
                            match np {
                                2 => score_tile::<1, 2>(qr, d, kp, or, nk, m),
                                _ => score_tile::<1, 1>(qr, d, kp, or, nk, m),
                            }
                        }
                    }
                }
            }
            p += np;
        }
        r0 += nr;
    }
}

/// Scores of `R` query rows (`q`, stride `d`) against the keys of `V` consecutive panels
/// (`panels`, `V·d·16` floats): lane `l` of panel `v` goes to `out[r·nk + 16v + l]` where
/// `m[v]` has lane `l` set.
///
/// # Safety
/// AVX-512 F must be available; `q` holds `R × d` values and `panels` `V` panels; every
/// position written (a set lane of `m`) is inside the caller's score buffer.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn score_tile<const R: usize, const V: usize>(
    q: *const f32,
    d: usize,
    panels: *const f32,
    out: *mut f32,
    nk: usize,
    m: [__mmask16; 2],
) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for c in 0..d {
        // SAFETY: value c of every panel and of every row exists (this function's contract).
        unsafe {
            let kv: [__m512; V] =
                core::array::from_fn(|v| _mm512_loadu_ps(panels.add((v * d + c) * PANEL)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let qb = _mm512_set1_ps(*q.add(r * d + c));
                for (a, &k) in acc.iter_mut().zip(&kv) {
                    *a = _mm512_fmadd_ps(qb, k, *a);
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, &a) in acc.iter().enumerate() {
            // SAFETY: only lanes set in m[v] are written, and they are in the score buffer.
            unsafe { _mm512_mask_storeu_ps(out.wrapping_add(r * nk + v * PANEL), m[v], a) };
        }
    }
}

/// `tile[i][c] = Σ_j p[i·nk + j − k0]·v[j·stride + c0 + c]` for rows `i < nr`, `c < nc ≤ 64`,
/// keys `j ∈ keys`.
///
/// # Safety
/// AVX-512 F and FMA; `p` holds `nr` rows of `nk = keys.len()` values; `v` has the values
/// `j·stride + c0 .. j·stride + c0 + nc` for every key `j`.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,fma")]
unsafe fn pv_tile(
    p: &[f32],
    nk: usize,
    nr: usize,
    v: &[f32],
    stride: usize,
    keys: Range<usize>,
    c0: usize,
    nc: usize,
    tile: &mut [[f32; 64]; 4],
) {
    let masks: [__mmask16; 4] = core::array::from_fn(|u| mask(nc.saturating_sub(16 * u)));
    let mut acc = [[_mm512_setzero_ps(); 4]; 4];
    for (jj, j) in keys.enumerate() {
        // SAFETY: value lanes c0+16u.. are masked to nc; probabilities are in p's nr rows.
        unsafe {
            let base = v.as_ptr().add(j * stride + c0);
            let vv: [__m512; 4] =
                core::array::from_fn(|u| _mm512_maskz_loadu_ps(masks[u], base.add(16 * u)));
            for (i, acc) in acc.iter_mut().enumerate().take(nr) {
                let pv = _mm512_set1_ps(*p.get_unchecked(i * nk + jj));
                for u in 0..4 {
                    acc[u] = _mm512_fmadd_ps(pv, vv[u], acc[u]);
                }
            }
        }
    }
    for (t, a) in tile.iter_mut().zip(acc) {
        for u in 0..4 {
            // SAFETY: `t` has 64 f32s; 16u..16u+16 is in range.
            unsafe { _mm512_storeu_ps(t.as_mut_ptr().add(16 * u), a[u]) };
        }
    }
}
