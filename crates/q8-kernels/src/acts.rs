//! Activations quantized once per matmul, in the layout the chosen backend wants.

use crate::block::QK8_0;
use crate::Backend;

/// What the activations (the `x` of `y = x · Wᵀ`) are rounded to before the dot products with
/// Q8_0 weights.
///
/// Measured on EmbeddingGemma (see the workspace's `REFERENCE.md`): rounding activations to int8,
/// as llama.cpp does, costs up to ~0.009 cosine on single texts, while Q8_0 weights with exact
/// activations cost ≤ ~0.0013. [`Int8x2`](ActivationPrecision::Int8x2) gets within ~1/64516 of
/// the block maximum for twice the int8 work; [`F32`](ActivationPrecision::F32) is exact but runs
/// on the f32 units (about 4× slower than int8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActivationPrecision {
    /// One int8 per value with an f32 scale per 32-value block (`d = max|x| / 127`), like
    /// llama.cpp's `q8_0` activations (which store the scale as f16). Fastest.
    Int8,
    /// Two int8 parts per value: `x ≈ d·hi + (d/254)·lo`, `hi = round(x/d)`,
    /// `lo = round((x/d − hi)·254)`. Error ≤ `max|x| / 64516` per value (about 16 bits), at twice
    /// the int8 cost (each part is one int8 pass over the weights).
    Int8x2,
    /// Activations stay f32; weights are dequantized on the fly. Exact up to f32 rounding.
    F32,
}

/// The scale of the low part of [`ActivationPrecision::Int8x2`] is `d / LO_DIV`.
pub(crate) const LO_DIV: f32 = 254.0;

/// A reusable buffer of quantized activations: `tokens × k` values quantized for one precision by
/// [`Kernels::quantize_activations`](crate::Kernels::quantize_activations).
///
/// Keep one per matmul input shape and reuse it: quantizing only grows the buffers.
#[derive(Clone, Debug, Default)]
pub struct QuantizedActivations {
    pub(crate) precision: Option<ActivationPrecision>,
    pub(crate) backend: Option<Backend>,
    pub(crate) tokens: usize,
    pub(crate) k: usize,
    /// `tokens × k` int8 values (the high part for `Int8x2`).
    pub(crate) hi: Vec<i8>,
    /// `tokens × k` low parts (`Int8x2` only).
    pub(crate) lo: Vec<i8>,
    /// `tokens × k/32` block scales of `hi` (the low part's scale is `d / LO_DIV`).
    pub(crate) d: Vec<f32>,
    /// `tokens × k` values (`F32` only).
    pub(crate) f32: Vec<f32>,
    /// `−128·Σ` of each block of `hi` (`tokens × k/32`), then of `lo` for `Int8x2`: the
    /// correction of the packed kernels, whose weights are stored as `q + 128`. Filled by the
    /// backends with a packed kernel only.
    pub(crate) sums: Vec<i32>,
    /// `d / LO_DIV`, the scales of `lo` (`Int8x2`, backends with a packed kernel only).
    pub(crate) d_lo: Vec<f32>,
}

/// 64 bytes aligned to 64, the unit of packed weight buffers.
#[derive(Clone, Copy, Debug, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
#[repr(C, align(64))]
pub(crate) struct Align64(pub(crate) [u8; 64]);

impl QuantizedActivations {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of tokens (rows of `x`) last quantized into this buffer.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Row length `k` last quantized into this buffer.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The precision last quantized for, `None` if nothing was quantized yet.
    pub fn precision(&self) -> Option<ActivationPrecision> {
        self.precision
    }

    /// Number of 32-value blocks per token.
    pub(crate) fn blocks_per_token(&self) -> usize {
        self.k / QK8_0
    }
}

/// Quantizes one 32-value block to int8 (and optionally its low part). Returns the scale `d`.
///
/// Uses `x * (1/d)` with `d = max|x|/127`, rounding half away from zero, as ggml does.
pub(crate) fn quantize_block(x: &[f32], hi: &mut [i8], lo: Option<&mut [i8]>) -> f32 {
    let amax = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    match lo {
        None => {
            for (q, &v) in hi.iter_mut().zip(x) {
                *q = (v * id).round().clamp(-127.0, 127.0) as i8;
            }
        }
        Some(lo) => {
            for ((q, l), &v) in hi.iter_mut().zip(lo.iter_mut()).zip(x) {
                let s = v * id;
                let h = s.round().clamp(-127.0, 127.0);
                *q = h as i8;
                *l = ((s - h) * LO_DIV).round().clamp(-127.0, 127.0) as i8;
            }
        }
    }
    d
}

/// Fills the portable part of `out` (`hi`, `lo`, `d` or `f32`). Lengths are checked by the caller.
pub(crate) fn quantize_portable(
    x: &[f32],
    k: usize,
    tokens: usize,
    precision: ActivationPrecision,
    out: &mut QuantizedActivations,
) {
    out.precision = Some(precision);
    out.tokens = tokens;
    out.k = k;
    out.hi.clear();
    out.lo.clear();
    out.d.clear();
    out.f32.clear();
    out.sums.clear();
    out.d_lo.clear();
    match precision {
        ActivationPrecision::F32 => out.f32.extend_from_slice(x),
        ActivationPrecision::Int8 | ActivationPrecision::Int8x2 => {
            let split = precision == ActivationPrecision::Int8x2;
            out.hi.resize(x.len(), 0);
            if split {
                out.lo.resize(x.len(), 0);
            }
            out.d.resize(x.len() / QK8_0, 0.0);
            for (i, xb) in x.chunks_exact(QK8_0).enumerate() {
                let r = i * QK8_0..(i + 1) * QK8_0;
                let lo = if split {
                    Some(&mut out.lo[r.clone()])
                } else {
                    None
                };
                out.d[i] = quantize_block(xb, &mut out.hi[r], lo);
            }
        }
    }
}
