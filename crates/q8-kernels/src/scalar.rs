//! The portable backend: plain Rust, the readable reference every SIMD backend is tested against.
//!
//! Lengths are checked by the dispatcher in `lib.rs`; these functions index freely.
//!
//! The Q8_0 matmul accumulates, per output, `acc = fma(I_b as f32, dw_b * da_b, acc)` over the
//! blocks `b` in order, where `I_b` is the exact integer dot product of one block (for `Int8x2`,
//! `LO_MUL·I_hi + I_lo` with `da_b = d_b / LO_DIV`). The SIMD
//! backends' GEMM tiles do the same operations in the same order, so they agree with this one
//! bit for bit for the same quantized activations.

use core::ops::Range;

use crate::acts::{ActivationPrecision, QuantizedActivations, LO_DIV, LO_MUL};
use crate::block::{BlockQ8_0, QK8_0};
use crate::kernel::Kernel;
use crate::{Backend, RopeTable};

/// Exact integer dot product of one block of weights with 32 int8 activations.
#[inline]
fn dot_i8(w: &[i8; QK8_0], a: &[i8]) -> i32 {
    w.iter()
        .zip(a)
        .map(|(&w, &a)| i32::from(w) * i32::from(a))
        .sum()
}

/// The exact integer of an `Int8x2` block product from its parts' integers:
/// `LO_MUL·Σw·hi + Σw·lo` (fits in i32, see [`LO_MUL`]).
#[inline]
pub(crate) fn pair_int(hi: i32, lo: i32) -> i32 {
    LO_MUL * hi + lo
}

/// `out[t][r - rows.start] = Σ_j W[r, j] · x[t, j]` for `r` in `rows`, Q8_0 weights.
pub(crate) fn matmul_q8_0(
    w: &[BlockQ8_0],
    rows: Range<usize>,
    acts: &QuantizedActivations,
    out: &mut [&mut [f32]],
) {
    let nb = acts.blocks_per_token();
    let k = acts.k;
    for (t, out_t) in out.iter_mut().enumerate() {
        for (o, r) in out_t.iter_mut().zip(rows.clone()) {
            let wr = &w[r * nb..(r + 1) * nb];
            *o = match acts.precision {
                Some(ActivationPrecision::Int8) => {
                    let a = &acts.hi[t * k..(t + 1) * k];
                    let d = &acts.d[t * nb..(t + 1) * nb];
                    let mut acc = 0.0f32;
                    for (b, blk) in wr.iter().enumerate() {
                        let i = dot_i8(&blk.qs, &a[b * QK8_0..(b + 1) * QK8_0]);
                        acc = (i as f32).mul_add(blk.d.to_f32() * d[b], acc);
                    }
                    acc
                }
                Some(ActivationPrecision::Int8x2) => {
                    let hi = &acts.hi[t * k..(t + 1) * k];
                    let lo = &acts.lo[t * k..(t + 1) * k];
                    let d = &acts.d[t * nb..(t + 1) * nb];
                    let mut acc = 0.0f32;
                    for (b, blk) in wr.iter().enumerate() {
                        let s = b * QK8_0..(b + 1) * QK8_0;
                        let i = pair_int(dot_i8(&blk.qs, &hi[s.clone()]), dot_i8(&blk.qs, &lo[s]));
                        acc = (i as f32).mul_add(blk.d.to_f32() * (d[b] / LO_DIV), acc);
                    }
                    acc
                }
                Some(ActivationPrecision::F32) => {
                    let x = &acts.f32[t * k..(t + 1) * k];
                    let mut acc = 0.0f32;
                    for (b, blk) in wr.iter().enumerate() {
                        let xb = &x[b * QK8_0..(b + 1) * QK8_0];
                        let q: [f32; QK8_0] = core::array::from_fn(|j| f32::from(blk.qs[j]));
                        let s = dot8(&q, xb);
                        acc += s * blk.d.to_f32();
                    }
                    acc
                }
                None => 0.0,
            };
        }
    }
}

/// `out[t][r - rows.start] = Σ_j W[r, j] · x[t, j]` for float weights (`w` is `n × k`).
pub(crate) fn matmul_float<T: WeightElem>(
    w: &[T],
    k: usize,
    rows: Range<usize>,
    x: &[f32],
    out: &mut [&mut [f32]],
) {
    for (t, out_t) in out.iter_mut().enumerate() {
        let xt = &x[t * k..(t + 1) * k];
        for (o, r) in out_t.iter_mut().zip(rows.clone()) {
            let wr = &w[r * k..(r + 1) * k];
            // Convert 64 weights at a time, then a vectorisable dot product.
            let mut buf = [0.0f32; 64];
            let mut acc = 0.0f32;
            for (wc, xc) in wr.chunks(64).zip(xt.chunks(64)) {
                for (d, v) in buf.iter_mut().zip(wc) {
                    *d = v.to_f32();
                }
                acc += dot8(&buf[..wc.len()], xc);
            }
            *o = acc;
        }
    }
}

/// Sum of `a[i] * b[i]`.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot8(a, &b[..a.len()])
}

/// `Σ a[i]·b[i]` (equal lengths) with 8 independent partial sums, which the compiler turns
/// into SIMD multiplies and adds on any target (a single running sum cannot be vectorised under
/// strict f32 semantics). This keeps the float paths of the backends without their own float
/// kernels (AVX2, NEON) at vector speed.
#[inline]
pub(crate) fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ((ca, ta), (cb, tb)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0f32;
    for (&x, &y) in ta.iter().zip(tb) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `y += a·x` (equal lengths).
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

/// The scalar backend: the provided methods of [`Kernel`] are its operations.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Portable;

impl Kernel for Portable {
    fn backend(&self) -> Backend {
        Backend::Scalar
    }
}

/// In-place RMSNorm of each `weight.len()`-long row of `x`.
pub(crate) fn rms_norm_inplace(x: &mut [f32], weight: &[f32], eps: f32) {
    let dim = weight.len();
    for xr in x.chunks_exact_mut(dim) {
        let ss = dot(xr, xr);
        let inv = 1.0 / (ss / dim as f32 + eps).sqrt();
        for (v, &g) in xr.iter_mut().zip(weight) {
            *v = *v * inv * g;
        }
    }
}

/// `sqrt(2/π)`, the constant of the tanh form of GELU.
pub(crate) const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh form of GELU.
pub(crate) const GELU_COEF_A: f32 = 0.044_715;

/// The Cephes `expf` reduction and polynomial shared by the SIMD `exp` of every backend:
/// `exp(x) = 2ⁿ·p(r)` with `n = round(x·log₂e)`, `r = x − n·ln 2` (ln 2 in two parts for an
/// exact reduction), `p(r) = 1 + r + r²·(c₀r⁵ + … + c₅)` with these coefficients `c₀ … c₅`.
pub(crate) const EXP_LN2_HI: f32 = 0.693_359_4;
/// The low part of ln 2 (see [`EXP_LN2_HI`]).
pub(crate) const EXP_LN2_LO: f32 = -2.121_944_4e-4;
/// The polynomial's coefficients, highest power first (see [`EXP_LN2_HI`]).
pub(crate) const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_2e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// GELU, tanh form (ggml's `gelu`, PyTorch's `gelu(approximate="tanh")`).
#[inline]
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// `out = gelu_tanh(gate) * up`.
pub(crate) fn geglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = gelu_tanh(g) * u;
    }
}

/// In-place softmax.
pub(crate) fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if x.is_empty() {
        return;
    }
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// NeoX RoPE of one head at `pos` (the table row exists: checked by the caller).
pub(crate) fn rope_neox(x: &mut [f32], table: &RopeTable, pos: usize) {
    let half = table.head_dim / 2;
    let (cos, sin) = table.row(pos);
    let (a, b) = x.split_at_mut(half);
    for i in 0..half {
        let (x0, x1) = (a[i], b[i]);
        a[i] = x0 * cos[i] - x1 * sin[i];
        b[i] = x0 * sin[i] + x1 * cos[i];
    }
}

/// A float weight element (f32, f16, bf16).
pub(crate) trait WeightElem: Copy + Send + Sync + 'static {
    /// The value as f32.
    fn to_f32(self) -> f32;
}

impl WeightElem for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

impl WeightElem for half::f16 {
    #[inline]
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
}

impl WeightElem for half::bf16 {
    #[inline]
    fn to_f32(self) -> f32 {
        half::bf16::to_f32(self)
    }
}
