//! x86-64 AVX2 + FMA backend (for CPUs without AVX-512 VNNI).
//!
//! The int8 products run on packed weights (`avx2_packed.rs`). Weights used in place go through
//! the tile below.
//!
//! # The Q8_0 tile of weights in place
//!
//! 4 weight rows × 2 tokens. For each block and (row, token) pair, `|w|` (unsigned) times
//! `a·sign(w)` with `VPMADDUBSW` (at most 2·128·127 per i16 lane: no saturation) and
//! `VPMADDWD` by ones give 8 i32 partial sums (for `Int8x2`, those of both parts, combined lane
//! by lane into `LO_MUL·hi + lo`); the 8 pairs' vectors are reduced together (`VPHADDD` tree)
//! into one vector holding the 8 exact block integers, which is converted and accumulated with
//! `fma(I, dw·da, acc)` in block order — the scalar backend's operations, so the results are
//! bit-identical to it. Activations use the portable layout.

use core::arch::x86_64::*;
use core::ops::Range;

use crate::acts::{ActivationPrecision, QuantizedActivations, LO_DIV};
use crate::block::{BlockQ8_0, QK8_0};
use crate::kernel::{FloatWeights, Kernel, PackedKernel};
use crate::packed::PackedQ8_0;
use crate::split::Threads;
use crate::Backend;

/// Proof that the CPU has AVX2, FMA and F16C. Only [`Avx2::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2 {
    _private: (),
}

impl Avx2 {
    /// The token if this CPU has AVX2, FMA and F16C.
    pub(crate) fn detect() -> Option<Self> {
        let ok = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        ok.then_some(Avx2 { _private: () })
    }

    /// `y = x · Wᵀ` for `rows`; `out[t]` is token `t`'s part of `y` for those rows (shapes
    /// checked by the dispatcher).
    pub(crate) fn matmul_q8_0(
        self,
        w: &[BlockQ8_0],
        rows: Range<usize>,
        acts: &QuantizedActivations,
        out: &mut [&mut [f32]],
    ) {
        if acts.precision == Some(ActivationPrecision::F32) {
            let nb = acts.blocks_per_token();
            let w8 = super::avx2_f32::Q8Rows8 { w, nb };
            return self.matmul_rows8(&w8, acts.k, rows, &acts.f32, out);
        }
        // SAFETY: `self` proves AVX2, FMA and F16C.
        unsafe { matmul_q8_0_portable(w, rows, acts, out) }
    }

    /// `Σ a[i]·b[i]` (equal lengths).
    pub(crate) fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: `self` proves AVX2 + FMA; callers pass equal lengths.
        unsafe { dot_impl(a, b) }
    }

    /// `y += a·x` (equal lengths).
    pub(crate) fn axpy(self, a: f32, x: &[f32], y: &mut [f32]) {
        // SAFETY: `self` proves AVX2 + FMA; callers pass equal lengths.
        unsafe { axpy_impl(a, x, y) }
    }
}

/// The Q8_0 matmul over activations in the portable layout; `out[t]` is token `t`'s part of
/// `y` for `rows`. Also used by the AVX-512 backend for 1–2 Int8 tokens, where this
/// kernel's 4 rows × 2 tokens beat the 4-token-wide VNNI tile.
///
/// # Safety
/// AVX2, FMA and F16C must be available; the shapes must be the dispatcher's checked ones
/// (`w` has `nb` blocks for every row in `rows`, `acts` holds `out.len()` tokens in the
/// portable layout, every `out[t]` has `rows.len()` values).
pub(crate) unsafe fn matmul_q8_0_portable(
    w: &[BlockQ8_0],
    rows: Range<usize>,
    acts: &QuantizedActivations,
    out: &mut [&mut [f32]],
) {
    let (nb, k) = (acts.blocks_per_token(), acts.k);
    let tokens = out.len();
    let at = |q: &[i8], t: usize| q[t * k..].as_ptr();
    match acts.precision {
        Some(ActivationPrecision::Int8) => {
            let srcs: Vec<_> = (0..tokens)
                .map(|t| Src {
                    hi: at(&acts.hi, t),
                    lo: core::ptr::null(),
                    d: acts.d[t * nb..].as_ptr(),
                })
                .collect();
            // SAFETY: AVX2/FMA/F16C are this function's contract; `w` has n·nb blocks with
            // rows ⊆ 0..n; every source points at a token's k values and nb scales; out[t] has
            // rows.len() values (all checked by the dispatcher).
            unsafe { gemm::<false>(w, nb, rows, &srcs, out) }
        }
        Some(ActivationPrecision::Int8x2) => {
            // The scales of the combined integer `LO_MUL·I_hi + I_lo` (the scalar backend's
            // `d / LO_DIV`, bit for bit).
            let d_lo: Vec<f32> = acts.d[..tokens * nb].iter().map(|&d| d / LO_DIV).collect();
            let srcs: Vec<_> = (0..tokens)
                .map(|t| Src {
                    hi: at(&acts.hi, t),
                    lo: at(&acts.lo, t),
                    d: d_lo[t * nb..].as_ptr(),
                })
                .collect();
            // SAFETY: as above; the low parts have the shape of the high parts.
            unsafe { gemm::<true>(w, nb, rows, &srcs, out) }
        }
        _ => crate::scalar::matmul_q8_0(w, rows, acts, out),
    }
}

/// One token's quantized activations for [`gemm`]: `k` int8 values (`hi`), the low parts
/// (`lo`, `Int8x2` only) and one scale per block.
#[derive(Clone, Copy)]
struct Src {
    hi: *const i8,
    lo: *const i8,
    d: *const f32,
}

/// The AVX2 backend: everything but RMSNorm, RoPE and the attention loop (which runs on these
/// `dot`, `softmax` and `axpy`) has its own kernel.
impl Kernel for Avx2 {
    fn backend(&self) -> Backend {
        Backend::Avx2
    }

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
        let block = |x: &_, hi: &mut _, lo: Option<&mut _>| (t.quantize_block(x, hi, lo), 0, 0);
        let parallel = threads.parallel();
        crate::acts::quantize_int8(x, k, tokens, precision, out, parallel, false, &block);
    }

    fn matmul_q8_0(
        &self,
        w: &[BlockQ8_0],
        rows: Range<usize>,
        acts: &QuantizedActivations,
        out: &mut [&mut [f32]],
    ) {
        Avx2::matmul_q8_0(*self, w, rows, acts, out);
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
        use super::avx2_f32::FloatRows8;
        match w {
            FloatWeights::F32(w) => self.matmul_rows8(&FloatRows8 { w, k }, k, rows, x, out),
            FloatWeights::F16(w) => self.matmul_rows8(&FloatRows8 { w, k }, k, rows, x, out),
            FloatWeights::Bf16(w) => self.matmul_rows8(&FloatRows8 { w, k }, k, rows, x, out),
        }
    }

    fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        Avx2::dot(*self, a, b)
    }

    fn axpy(&self, a: f32, x: &[f32], y: &mut [f32]) {
        Avx2::axpy(*self, a, x, y)
    }

    fn softmax(&self, x: &mut [f32]) {
        Avx2::softmax(*self, x)
    }

    fn geglu(&self, gate: &[f32], up: &[f32], out: &mut [f32]) {
        Avx2::geglu(*self, gate, up, out)
    }
}

/// The packed kernel of `avx2_packed.rs` (weights packed by the portable packer).
impl PackedKernel for Avx2 {
    fn matmul_packed(
        &self,
        w: &PackedQ8_0,
        rows: Range<usize>,
        acts: &QuantizedActivations,
        out: &mut [&mut [f32]],
    ) {
        Avx2::matmul_packed(*self, w, rows, acts, out);
    }
}

/// The int8 GEMM over `rows` × all tokens: `srcs[t]` points at token `t`'s `k` int8
/// activations (and, if `PAIR`, its `k` low parts) and `nb` block scales; `out[t]` receives its
/// results. With `PAIR` each block's integer is `LO_MUL·I_hi + I_lo`, as in the scalar backend.
///
/// # Safety
/// AVX2, FMA and F16C must be available; `w` has `nb` blocks for every row in `rows`; every
/// source holds `32·nb` values (twice if `PAIR`) and `nb` scales; `out.len() == srcs.len()` and
/// every `out[t]` has `rows.len()` values.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm<const PAIR: bool>(
    w: &[BlockQ8_0],
    nb: usize,
    rows: Range<usize>,
    srcs: &[Src],
    out: &mut [&mut [f32]],
) {
    let tokens = out.len();
    let last = rows.end - 1;
    let ones = _mm256_set1_epi16(1);
    let mut r0 = rows.start;
    while r0 < rows.end {
        let rp: [*const BlockQ8_0; 4] =
            core::array::from_fn(|i| w[(r0 + i).min(last) * nb..].as_ptr());
        let mut t0 = 0;
        while t0 < tokens {
            let src = [srcs[t0], srcs[(t0 + 1).min(tokens - 1)]];
            let mut acc = _mm256_setzero_ps();
            for b in 0..nb {
                if t0 == 0 {
                    prefetch_next_group(&rp, nb, b);
                }
                // SAFETY: rows have nb blocks; the sources hold nb blocks of values and scales.
                unsafe {
                    let load = |p: *const i8| _mm256_loadu_si256(p.add(b * QK8_0).cast());
                    let av: [__m256i; 2] = core::array::from_fn(|c| load(src[c].hi));
                    let lv: [__m256i; 2] = if PAIR {
                        core::array::from_fn(|c| load(src[c].lo))
                    } else {
                        [_mm256_setzero_si256(); 2]
                    };
                    let mut v = [_mm256_setzero_si256(); 8];
                    let mut dw = [0.0f32; 4];
                    for i in 0..4 {
                        let blk = rp[i].add(b);
                        let wv = _mm256_loadu_si256((*blk).qs.as_ptr().cast());
                        let aw = _mm256_sign_epi8(wv, wv);
                        let dot = |a: __m256i| {
                            _mm256_madd_epi16(
                                _mm256_maddubs_epi16(aw, _mm256_sign_epi8(a, wv)),
                                ones,
                            )
                        };
                        for c in 0..2 {
                            v[2 * i + c] = if PAIR {
                                // LO_MUL·hi + lo = (hi << 8) − (hi << 1) + lo, lane by lane (the
                                // lanes' sums are exact, so the block sum is too).
                                let h = dot(av[c]);
                                _mm256_add_epi32(
                                    _mm256_sub_epi32(
                                        _mm256_slli_epi32::<8>(h),
                                        _mm256_slli_epi32::<1>(h),
                                    ),
                                    dot(lv[c]),
                                )
                            } else {
                                dot(av[c])
                            };
                        }
                        dw[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                            blk.cast::<u16>().read_unaligned(),
                        ))));
                    }
                    let ints = reduce8(&v);
                    let (da0, da1) = (*src[0].d.add(b), *src[1].d.add(b));
                    let scale = _mm256_setr_ps(
                        dw[0] * da0,
                        dw[0] * da1,
                        dw[1] * da0,
                        dw[1] * da1,
                        dw[2] * da0,
                        dw[2] * da1,
                        dw[3] * da0,
                        dw[3] * da1,
                    );
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ints), scale, acc);
                }
            }
            let mut lanes = [0.0f32; 8];
            // SAFETY: `lanes` holds 8 f32s.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
            for i in 0..(rows.end - r0).min(4) {
                for c in 0..(tokens - t0).min(2) {
                    out[t0 + c][r0 + i - rows.start] = lanes[2 * i + c];
                }
            }
            t0 += 2;
        }
        r0 += 4;
    }
}

/// Prefetches block `b` of each row of the next group of 4 rows (`rp` are this group's rows of
/// `nb` blocks each) into L2, during [`gemm`]'s first pass over this group: the rows stream from
/// memory once per product (the later token pairs find them in L1), and fetching the next group
/// a whole group ahead hides the memory latency (4 tokens, one thread, `Int8`: 26 → 17.7 ms;
/// 16 blocks ahead along the same rows: no change). The address may lie past the matrix
/// (prefetches never fault), hence `wrapping_add`.
#[inline]
#[target_feature(enable = "avx2")]
fn prefetch_next_group(rp: &[*const BlockQ8_0; 4], nb: usize, b: usize) {
    for &r in rp {
        _mm_prefetch::<_MM_HINT_T1>(r.wrapping_add(4 * nb + b).cast());
    }
}

/// `[Σv0, Σv1, …, Σv7]`: the horizontal sums of 8 vectors of 8 i32 (exact).
///
/// # Safety
/// AVX2 must be available.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn reduce8(v: &[__m256i; 8]) -> __m256i {
    let h01 = _mm256_hadd_epi32(v[0], v[1]);
    let h23 = _mm256_hadd_epi32(v[2], v[3]);
    let h45 = _mm256_hadd_epi32(v[4], v[5]);
    let h67 = _mm256_hadd_epi32(v[6], v[7]);
    // [s0lo, s1lo, s2lo, s3lo | s0hi, s1hi, s2hi, s3hi]
    let h0123 = _mm256_hadd_epi32(h01, h23);
    let h4567 = _mm256_hadd_epi32(h45, h67);
    let r0123 = _mm_add_epi32(
        _mm256_castsi256_si128(h0123),
        _mm256_extracti128_si256::<1>(h0123),
    );
    let r4567 = _mm_add_epi32(
        _mm256_castsi256_si128(h4567),
        _mm256_extracti128_si256::<1>(h4567),
    );
    _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(r0123), r4567)
}

/// # Safety
/// AVX2 + FMA; `b.len() >= a.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut j = 0;
    // SAFETY: every load reads below n.
    unsafe {
        while j + 32 <= n {
            for (u, acc) in acc.iter_mut().enumerate() {
                let o = j + 8 * u;
                *acc = _mm256_fmadd_ps(
                    _mm256_loadu_ps(a.as_ptr().add(o)),
                    _mm256_loadu_ps(b.as_ptr().add(o)),
                    *acc,
                );
            }
            j += 32;
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    let mut total = _mm_cvtss_f32(s);
    for i in j..n {
        total += a[i] * b[i];
    }
    total
}

/// # Safety
/// AVX2 + FMA; `x.len() >= y.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_impl(a: f32, x: &[f32], y: &mut [f32]) {
    let n = y.len();
    let av = _mm256_set1_ps(a);
    let mut j = 0;
    // SAFETY: every access is below n.
    unsafe {
        while j + 8 <= n {
            let yv = _mm256_loadu_ps(y.as_ptr().add(j));
            let xv = _mm256_loadu_ps(x.as_ptr().add(j));
            _mm256_storeu_ps(y.as_mut_ptr().add(j), _mm256_fmadd_ps(av, xv, yv));
            j += 8;
        }
    }
    for i in j..n {
        y[i] += a * x[i];
    }
}

impl Avx2 {
    /// Quantizes one block of activations like the portable quantizer (bit-identical): the high
    /// part into `hi`, the low part into `lo` if given; returns the scale `d`.
    pub(crate) fn quantize_block(
        self,
        x: &[f32; QK8_0],
        hi: &mut [i8; QK8_0],
        lo: Option<&mut [i8; QK8_0]>,
    ) -> f32 {
        // SAFETY: `self` proves AVX2 and FMA.
        unsafe { quantize_block_impl(x, hi, lo) }
    }
}

/// Rounds half away from zero, like `f32::round`.
#[inline]
#[target_feature(enable = "avx2")]
fn round_away(v: __m256) -> __m256 {
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    // v − t is exact; add ±1 where |v − t| >= 0.5.
    let frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0), _mm256_sub_ps(v, t));
    let up = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5));
    let one = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0)), _mm256_set1_ps(1.0));
    _mm256_add_ps(t, _mm256_and_ps(up, one))
}

/// Stores 32 integral f32 values in [−127, 127] (`v[0]` first) as int8.
///
/// # Safety
/// AVX2 must be available.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_i8(v: &[__m256; 4], q: &mut [i8; QK8_0]) {
    let i: [__m256i; 4] = core::array::from_fn(|j| _mm256_cvtps_epi32(v[j]));
    // The packs interleave 128-bit lanes: dwords come out as a0 b0 c0 d0 a1 b1 c1 d1 (4 bytes
    // each); the permutation restores a0 a1 b0 b1 c0 c1 d0 d1.
    let packed = _mm256_packs_epi16(
        _mm256_packs_epi32(i[0], i[1]),
        _mm256_packs_epi32(i[2], i[3]),
    );
    let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    // SAFETY: `q` has 32 bytes.
    unsafe { _mm256_storeu_si256(q.as_mut_ptr().cast(), ordered) };
}

/// Quantizes one block like `acts::quantize_block` (bit-identical): the high part into `hi` and,
/// if given, the low part into `lo`. Returns the block scale `d`.
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_block_impl(
    x: &[f32; QK8_0],
    hi: &mut [i8; QK8_0],
    lo: Option<&mut [i8; QK8_0]>,
) -> f32 {
    // SAFETY: x has 32 f32s.
    let v: [__m256; 4] =
        core::array::from_fn(|j| unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * j)) });
    let abs = |a: __m256| _mm256_andnot_ps(_mm256_set1_ps(-0.0), a);
    let m = _mm256_max_ps(
        _mm256_max_ps(abs(v[0]), abs(v[1])),
        _mm256_max_ps(abs(v[2]), abs(v[3])),
    );
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if d == 0.0 { 0.0 } else { 1.0 / d });
    let (lim_lo, lim_hi) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
    let clamp = |a: __m256| _mm256_min_ps(_mm256_max_ps(a, lim_lo), lim_hi);
    let s: [__m256; 4] = core::array::from_fn(|j| _mm256_mul_ps(v[j], id));
    let h: [__m256; 4] = core::array::from_fn(|j| clamp(round_away(s[j])));
    // SAFETY: AVX2 (this function's contract).
    unsafe { store_i8(&h, hi) };
    if let Some(lo) = lo {
        let scale = _mm256_set1_ps(LO_DIV);
        let l: [__m256; 4] = core::array::from_fn(|j| {
            clamp(round_away(_mm256_mul_ps(_mm256_sub_ps(s[j], h[j]), scale)))
        });
        // SAFETY: as above.
        unsafe { store_i8(&l, lo) };
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Avx2 quantizer gives the portable one's bytes and scales, ties included.
    #[test]
    fn quantize_matches_portable_including_ties() {
        let Some(avx2) = Avx2::detect() else {
            return;
        };
        crate::acts::assert_matches_portable(
            &|x: &[f32; QK8_0], hi: &mut [i8; QK8_0], lo: Option<&mut [i8; QK8_0]>| {
                (avx2.quantize_block(x, hi, lo), 0, 0)
            },
        );
    }
}
