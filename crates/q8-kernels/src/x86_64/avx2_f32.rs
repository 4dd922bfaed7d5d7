//! The f32 matmul tile of the AVX2 backend: float weights (f32, f16, bf16) and Q8_0 weights
//! with f32 activations. 4 rows × up to 4 tokens, 8 values of k per step (weights converted
//! once, used by every token of the tile); the `k mod 8` tail is summed in scalar code.

use core::arch::x86_64::*;
use core::ops::Range;

use half::{bf16, f16};

use super::avx2::Avx2;
use crate::block::{BlockQ8_0, QK8_0};
use crate::scalar::{EXP_LN2_HI, EXP_LN2_LO, EXP_POLY};
use crate::scalar::{GELU_COEF_A, SQRT_2_OVER_PI};

/// Weight rows readable 8 values at a time as f32.
pub(crate) trait Rows8: Sync {
    /// Values `j..j+8` of row `r` (`j + 8 <= k`).
    ///
    /// # Safety
    /// AVX2 and F16C must be available; row `r` must exist.
    unsafe fn load8(&self, r: usize, j: usize) -> __m256;
    /// Value `j` of row `r`.
    fn get(&self, r: usize, j: usize) -> f32;
    /// Where value `j` of row `r` is, computed without bounds (the row need not exist): for
    /// prefetching only.
    fn addr(&self, r: usize, j: usize) -> *const u8;
}

/// Row-major float weights, row `r` at `w[r·k..]`.
pub(crate) struct FloatRows8<'a, T> {
    /// The weights.
    pub(crate) w: &'a [T],
    /// Row length.
    pub(crate) k: usize,
}

/// A float type convertible 8 at a time.
pub(crate) trait Load8: Copy + Sync {
    /// `p[0..8]` as f32.
    ///
    /// # Safety
    /// AVX2 and F16C must be available; `p[0..8]` must be readable.
    unsafe fn load8(p: *const Self) -> __m256;
    /// One value as f32.
    fn value(self) -> f32;
}

impl Load8 for f32 {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const f32) -> __m256 {
        // SAFETY: 8 readable values (contract).
        unsafe { _mm256_loadu_ps(p) }
    }
    fn value(self) -> f32 {
        self
    }
}

impl Load8 for f16 {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const f16) -> __m256 {
        // SAFETY: 8 readable values of 2 bytes (contract).
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) })
    }
    fn value(self) -> f32 {
        f16::to_f32(self)
    }
}

impl Load8 for bf16 {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const bf16) -> __m256 {
        // SAFETY: 8 readable values of 2 bytes (contract).
        let h = unsafe { _mm_loadu_si128(p.cast()) };
        // bf16 is the high half of an f32.
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    }
    fn value(self) -> f32 {
        bf16::to_f32(self)
    }
}

impl<T: Load8> Rows8 for FloatRows8<'_, T> {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(&self, r: usize, j: usize) -> __m256 {
        // SAFETY: row r exists and j + 8 <= k (contract).
        unsafe { T::load8(self.w.as_ptr().add(r * self.k + j)) }
    }
    fn get(&self, r: usize, j: usize) -> f32 {
        self.w[r * self.k + j].value()
    }
    fn addr(&self, r: usize, j: usize) -> *const u8 {
        self.w.as_ptr().wrapping_add(r * self.k + j).cast()
    }
}

/// Q8_0 rows, `nb` blocks each.
pub(crate) struct Q8Rows8<'a> {
    /// The blocks.
    pub(crate) w: &'a [BlockQ8_0],
    /// Blocks per row.
    pub(crate) nb: usize,
}

impl Rows8 for Q8Rows8<'_> {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(&self, r: usize, j: usize) -> __m256 {
        // SAFETY: row r has nb blocks and j + 8 <= 32·nb (contract), j a multiple of 8.
        let (q, d) = unsafe {
            let blk = self.w.as_ptr().add(r * self.nb + j / QK8_0);
            let q = _mm_loadl_epi64((*blk).qs.as_ptr().add(j % QK8_0).cast());
            let d = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                blk.cast::<u16>().read_unaligned(),
            )));
            (q, _mm256_broadcastss_ps(d))
        };
        // d·q is exact in f32.
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d)
    }
    fn get(&self, r: usize, j: usize) -> f32 {
        let blk = &self.w[r * self.nb + j / QK8_0];
        blk.d.to_f32() * f32::from(blk.qs[j % QK8_0])
    }
    fn addr(&self, r: usize, j: usize) -> *const u8 {
        self.w.as_ptr().wrapping_add(r * self.nb + j / QK8_0).cast()
    }
}

impl Avx2 {
    /// `out[t][r − rows.start] = Σ_j W[r, j]·x[t, j]` for `rows`, `x` `out.len() × k`.
    pub(crate) fn matmul_rows8<W: Rows8>(
        self,
        w: &W,
        k: usize,
        rows: Range<usize>,
        x: &[f32],
        out: &mut [&mut [f32]],
    ) {
        let tokens = out.len();
        let mut t0 = 0;
        while t0 < tokens {
            let tc = (tokens - t0).min(4);
            // SAFETY: `self` proves AVX2/FMA/F16C; the dispatcher checked that `w` has every
            // row of `rows` with `k` values, `x` has `tokens` rows of `k`, `out[t]` has
            // `rows.len()` values; tokens t0..t0+tc exist.
            unsafe {
                match tc {
                    1 => tile8::<W, 1>(w, k, rows.clone(), x, t0, out),
                    2 => tile8::<W, 2>(w, k, rows.clone(), x, t0, out),
                    3 => tile8::<W, 3>(w, k, rows.clone(), x, t0, out),
                    _ => tile8::<W, 4>(w, k, rows.clone(), x, t0, out),
                }
            }
            t0 += tc;
        }
    }
}

/// Tokens `t0..t0+T` × `rows`, 4 rows at a time.
///
/// # Safety
/// AVX2, FMA and F16C; shapes as in [`Avx2::matmul_rows8`]; `t0 + T <= out.len()`.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile8<W: Rows8, const T: usize>(
    w: &W,
    k: usize,
    rows: Range<usize>,
    x: &[f32],
    t0: usize,
    out: &mut [&mut [f32]],
) {
    let k8 = k - k % 8;
    let last = rows.end.saturating_sub(1);
    let mut r0 = rows.start;
    while r0 < rows.end {
        let rr: [usize; 4] = core::array::from_fn(|i| (r0 + i).min(last));
        let mut acc = [[_mm256_setzero_ps(); T]; 4];
        let mut j = 0;
        while j < k8 {
            // The next 4 rows stream in while these are used.
            for i in 0..4 {
                _mm_prefetch::<_MM_HINT_T1>(w.addr(r0 + 4 + i, j).cast());
            }
            // SAFETY: rows rr exist, j + 8 <= k; x rows t0..t0+T exist with k values.
            unsafe {
                let wv: [__m256; 4] = core::array::from_fn(|i| w.load8(rr[i], j));
                for c in 0..T {
                    let xv = _mm256_loadu_ps(x.as_ptr().add((t0 + c) * k + j));
                    for i in 0..4 {
                        acc[i][c] = _mm256_fmadd_ps(wv[i], xv, acc[i][c]);
                    }
                }
            }
            j += 8;
        }
        for c in 0..T {
            for i in 0..(rows.end - r0).min(4) {
                let a = acc[i][c];
                let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_movehdup_ps(s));
                let mut v = _mm_cvtss_f32(s);
                for jj in k8..k {
                    v += w.get(r0 + i, jj) * x[(t0 + c) * k + jj];
                }
                out[t0 + c][r0 + i - rows.start] = v;
            }
        }
        r0 += 4;
    }
}

impl Avx2 {
    /// `out = gelu_tanh(gate) ⊙ up` (equal lengths, checked by the dispatcher).
    pub(crate) fn geglu(self, gate: &[f32], up: &[f32], out: &mut [f32]) {
        // SAFETY: `self` proves AVX2 and FMA; `up` and `out` are as long as `gate`.
        unsafe { geglu_impl(gate, up, out) }
    }

    /// In-place softmax (max-subtracted).
    pub(crate) fn softmax(self, x: &mut [f32]) {
        // SAFETY: `self` proves AVX2 and FMA.
        unsafe { softmax_impl(x) }
    }
}

/// Lanes `< len` set (`len <= 8`), as the mask of `VMASKMOVPS`.
#[inline]
#[target_feature(enable = "avx2")]
fn lanes(len: usize) -> __m256i {
    let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(len.min(8) as i32), idx)
}

/// `exp(x)` to ~2 ulp for `x ∈ [−87, 88]` (the Cephes polynomial of [`EXP_POLY`]); inputs
/// outside are clamped, so very negative ones give ~1e−38 (for 0) and very positive ones ~2e38
/// (for ∞), which is what GeGLU and softmax need.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8(x: __m256) -> __m256 {
    let x = _mm256_max_ps(
        _mm256_min_ps(x, _mm256_set1_ps(88.0)),
        _mm256_set1_ps(-87.0),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(core::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP_POLY[0]);
    for c in &EXP_POLY[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
    }
    let r2 = _mm256_mul_ps(r, r);
    let p = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    // 2ⁿ from its exponent bits (n ∈ [−126, 127] after the clamp).
    let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(p, _mm256_castsi256_ps(bits))
}

/// # Safety
/// AVX2 and FMA; `up` and `out` at least as long as `gate`.
#[target_feature(enable = "avx2,fma")]
unsafe fn geglu_impl(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let n = gate.len();
    let mut j = 0;
    while j < n {
        let m = lanes(n - j);
        // SAFETY: masked lanes are below n (all three slices hold n values).
        unsafe {
            let g = _mm256_maskload_ps(gate.as_ptr().add(j), m);
            let u = _mm256_maskload_ps(up.as_ptr().add(j), m);
            // gelu(g) = g·sigmoid(2z), z = √(2/π)·(g + 0.044715·g³) = g·(c + c·a·g²).
            let g2 = _mm256_mul_ps(g, g);
            let z = _mm256_mul_ps(
                g,
                _mm256_fmadd_ps(
                    _mm256_set1_ps(SQRT_2_OVER_PI * GELU_COEF_A),
                    g2,
                    _mm256_set1_ps(SQRT_2_OVER_PI),
                ),
            );
            let e = exp8(_mm256_mul_ps(z, _mm256_set1_ps(-2.0)));
            let gelu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0), e));
            _mm256_maskstore_ps(out.as_mut_ptr().add(j), m, _mm256_mul_ps(gelu, u));
        }
        j += 8;
    }
}

/// # Safety
/// AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_impl(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if x.is_empty() {
        return;
    }
    let mxv = _mm256_set1_ps(max);
    let mut sum = _mm256_setzero_ps();
    let n = x.len();
    let mut j = 0;
    while j < n {
        let m = lanes(n - j);
        // SAFETY: masked lanes are below n.
        unsafe {
            let v = _mm256_maskload_ps(x.as_ptr().add(j), m);
            let e = _mm256_and_ps(exp8(_mm256_sub_ps(v, mxv)), _mm256_castsi256_ps(m));
            sum = _mm256_add_ps(sum, e);
            _mm256_maskstore_ps(x.as_mut_ptr().add(j), m, e);
        }
        j += 8;
    }
    let s = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let inv = 1.0 / _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
    for v in x.iter_mut() {
        *v *= inv;
    }
}
