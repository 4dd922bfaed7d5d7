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
    /// Two int8 parts per value: `x ≈ (d/254)·(254·hi + lo)`, `hi = round(x/d)`,
    /// `lo = round((x/d − hi)·254)`. Error ≤ `max|x| / 64516` per value (about 16 bits). A
    /// product forms, per block, the exact integer `254·Σw·hi + Σw·lo` (one 16-bit product per
    /// value where the CPU multiplies 16-bit pairs as fast as 8-bit ones, as AVX2 does; two int8
    /// passes elsewhere) and scales it once by `dw·(d/254)`.
    Int8x2,
    /// Activations stay f32; weights are dequantized on the fly. Exact up to f32 rounding.
    F32,
}

/// The scale of the low part of [`ActivationPrecision::Int8x2`] is `d / LO_DIV`.
pub(crate) const LO_DIV: f32 = 254.0;
/// [`LO_DIV`] as the integer weight of the high part: an `Int8x2` value is
/// `(d / LO_DIV)·(LO_MUL·hi + lo)`. `LO_MUL·Σw·hi + Σw·lo` over a block of 32 is at most
/// 255·32·128·127 < 2³¹ in magnitude: exact in i32.
pub(crate) const LO_MUL: i32 = 254;
// The SIMD kernels multiply by `LO_MUL` as `(x << 8) − (x << 1)`.
const _: () = assert!(LO_MUL == (1 << 8) - (1 << 1) && LO_MUL as f32 == LO_DIV);

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
    ///
    /// The int8 buffers grow and never shrink (see `grown`): each holds at least what the lines
    /// below say, and only that prefix is current.
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

/// Blocks per task of a parallel quantization at the least: 512 blocks are ~10 µs of work,
/// well above the cost of handing a task to another thread.
const BLOCKS_PER_TASK: usize = 512;

/// What quantizing a run of 32-value blocks writes, block `i` at index `i` of each slice. The
/// slices a precision or backend does not use are empty.
pub(crate) struct BlockOutputs<'a> {
    /// High parts (the only part for `Int8`).
    pub(crate) hi: &'a mut [[i8; QK8_0]],
    /// Low parts (`Int8x2`).
    pub(crate) lo: &'a mut [[i8; QK8_0]],
    /// Scales of the high parts.
    pub(crate) d: &'a mut [f32],
    /// `−128·Σhi` (backends with a packed kernel).
    pub(crate) sums_hi: &'a mut [i32],
    /// `−128·Σlo` (`Int8x2`, backends with a packed kernel).
    pub(crate) sums_lo: &'a mut [i32],
    /// `d / LO_DIV` (`Int8x2`, backends with a packed kernel).
    pub(crate) d_lo: &'a mut [f32],
}

/// `s` split at `mid`, or two empty slices if `s` is empty (an unused output).
fn split_used<T>(s: &mut [T], mid: usize) -> (&mut [T], &mut [T]) {
    if s.is_empty() {
        (&mut [], &mut [])
    } else {
        s.split_at_mut(mid)
    }
}

impl BlockOutputs<'_> {
    /// The outputs of blocks `..mid` and `mid..`.
    fn split_at(self, mid: usize) -> (Self, Self) {
        let (hi, hi2) = split_used(self.hi, mid);
        let (lo, lo2) = split_used(self.lo, mid);
        let (d, d2) = split_used(self.d, mid);
        let (sums_hi, sums_hi2) = split_used(self.sums_hi, mid);
        let (sums_lo, sums_lo2) = split_used(self.sums_lo, mid);
        let (d_lo, d_lo2) = split_used(self.d_lo, mid);
        (
            BlockOutputs {
                hi,
                lo,
                d,
                sums_hi,
                sums_lo,
                d_lo,
            },
            BlockOutputs {
                hi: hi2,
                lo: lo2,
                d: d2,
                sums_hi: sums_hi2,
                sums_lo: sums_lo2,
                d_lo: d_lo2,
            },
        )
    }
}

impl QuantizedActivations {
    /// Sizes the buffers for `tokens × k` values quantized at `precision` (`Int8` or `Int8x2`),
    /// with the packed kernels' sums and low-part scales if `packed_extras`, and returns the
    /// outputs of all blocks. The contents are stale until the blocks are quantized.
    pub(crate) fn int8_outputs(
        &mut self,
        k: usize,
        tokens: usize,
        precision: ActivationPrecision,
        packed_extras: bool,
    ) -> BlockOutputs<'_> {
        let pair = precision == ActivationPrecision::Int8x2;
        let blocks = tokens * (k / QK8_0);
        self.precision = Some(precision);
        self.tokens = tokens;
        self.k = k;
        self.f32.clear();
        let (lo_len, sums_len, d_lo_len) = match (packed_extras, pair) {
            (false, false) => (0, 0, 0),
            (false, true) => (tokens * k, 0, 0),
            (true, false) => (0, blocks, 0),
            (true, true) => (tokens * k, 2 * blocks, blocks),
        };
        let (sums_hi, sums_lo) = split_used(grown(&mut self.sums, sums_len), blocks);
        BlockOutputs {
            hi: grown(&mut self.hi, tokens * k).as_chunks_mut::<QK8_0>().0,
            lo: grown(&mut self.lo, lo_len).as_chunks_mut::<QK8_0>().0,
            d: grown(&mut self.d, blocks),
            sums_hi,
            sums_lo,
            d_lo: grown(&mut self.d_lo, d_lo_len),
        }
    }
}

/// The first `len` elements of `v`, which grows to hold them but never shrinks: switching
/// between precisions (`Int8` and `Int8x2` products alternate) costs no refilling. Elements past
/// the current use are stale and never read.
fn grown<T: Copy + Default>(v: &mut Vec<T>, len: usize) -> &mut [T] {
    if v.len() < len {
        v.resize(len, T::default());
    }
    &mut v[..len]
}

/// Calls `f(x, out)` on runs of the blocks `x` (with their outputs `out`), in parallel if
/// `parallel` and there are enough blocks (see [`crate::team::for_each_task`]). Each block is
/// quantized on its own, so the split changes nothing.
pub(crate) fn for_block_runs<F>(x: &[[f32; QK8_0]], out: BlockOutputs<'_>, parallel: bool, f: &F)
where
    F: Fn(&[[f32; QK8_0]], BlockOutputs<'_>) + Sync,
{
    let runs = if parallel {
        (x.len() / BLOCKS_PER_TASK).clamp(1, crate::team::current_threads())
    } else {
        1
    };
    if runs <= 1 {
        return f(x, out);
    }
    let per_run = x.len().div_ceil(runs);
    let mut pieces = Vec::with_capacity(runs);
    let (mut xs, mut outs) = (x, out);
    while xs.len() > per_run {
        let (x0, x1) = xs.split_at(per_run);
        let (o0, o1) = outs.split_at(per_run);
        pieces.push((x0, o0));
        (xs, outs) = (x1, o1);
    }
    pieces.push((xs, outs));
    crate::team::for_each_task(true, pieces, |(xs, o)| f(xs, o));
}

/// Quantizes `x` (`tokens × k`) into the portable layout of `out` (`hi`, `lo`, `d` or `f32`),
/// on the current rayon pool if `parallel`. Lengths are checked by the caller.
pub(crate) fn quantize_portable(
    x: &[f32],
    k: usize,
    tokens: usize,
    precision: ActivationPrecision,
    out: &mut QuantizedActivations,
    parallel: bool,
) {
    if precision == ActivationPrecision::F32 {
        out.precision = Some(precision);
        out.tokens = tokens;
        out.k = k;
        for v in [&mut out.hi, &mut out.lo] {
            v.clear();
        }
        out.d.clear();
        out.d_lo.clear();
        out.sums.clear();
        out.f32.clear();
        out.f32.extend_from_slice(x);
        return;
    }
    let block = |x: &[f32; QK8_0], hi: &mut [i8; QK8_0], lo: Option<&mut [i8; QK8_0]>| {
        (quantize_block(x, hi, lo.map(|l| &mut l[..])), 0, 0)
    };
    quantize_int8(x, k, tokens, precision, out, parallel, false, &block);
}

/// One block's quantizer: the high part into `hi`, the low part into `lo` if given; returns
/// `(d, Σhi, Σlo)` (the sums only where the caller asks for the packed kernels' corrections).
pub(crate) trait BlockQuantizer:
    Fn(&[f32; QK8_0], &mut [i8; QK8_0], Option<&mut [i8; QK8_0]>) -> (f32, i32, i32) + Sync
{
}

impl<F> BlockQuantizer for F where
    F: Fn(&[f32; QK8_0], &mut [i8; QK8_0], Option<&mut [i8; QK8_0]>) -> (f32, i32, i32) + Sync
{
}

/// Quantizes `x` (`tokens × k`) at `Int8`/`Int8x2` with `block` into `out`, on the current
/// team or rayon pool if `parallel`; with the packed kernels' corrections (`−128·Σ`) and low-part
/// scales if `packed_extras`. Lengths are checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(crate) fn quantize_int8(
    x: &[f32],
    k: usize,
    tokens: usize,
    precision: ActivationPrecision,
    out: &mut QuantizedActivations,
    parallel: bool,
    packed_extras: bool,
    block: &impl BlockQuantizer,
) {
    let outputs = out.int8_outputs(k, tokens, precision, packed_extras);
    for_block_runs(x.as_chunks().0, outputs, parallel, &|xs, o| {
        for (i, xb) in xs.iter().enumerate() {
            let lo = o.lo.get_mut(i);
            let pair = lo.is_some();
            let (d, sum_hi, sum_lo) = block(xb, &mut o.hi[i], lo);
            // A NaN rounds to 0 in int8: its block's scale carries it instead, so that the
            // products, and the embedding, come out NaN rather than finite and wrong.
            let d = if xb.iter().any(|v| v.is_nan()) {
                f32::NAN
            } else {
                d
            };
            o.d[i] = d;
            if packed_extras {
                o.sums_hi[i] = -128 * sum_hi;
                if pair {
                    o.sums_lo[i] = -128 * sum_lo;
                    o.d_lo[i] = d / LO_DIV;
                }
            }
        }
    });
}

/// Asserts that `block` quantizes like the portable quantizer, bytes and scales, on values with
/// ties in the high and the low part (rounding half away from zero), zeros and mixed sizes. For
/// the tests of the SIMD block quantizers.
#[cfg(test)]
pub(crate) fn assert_matches_portable(block: &impl BlockQuantizer) {
    let k = 64;
    // Block 0: scale 1 (max 127) with halves and quarters; block 1: zeros; blocks 2-3:
    // pseudo-random values of mixed sizes.
    let mut x = vec![0.0f32; 2 * k];
    x[0] = 127.0;
    for (j, v) in x[1..32].iter_mut().enumerate() {
        *v = (j as f32 - 15.0) * 0.25 + 0.5 * (j % 3) as f32;
    }
    let mut s = 12345u32;
    for v in &mut x[k..] {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *v = ((s >> 8) as f32 / (1 << 24) as f32 - 0.5) * 10.0;
    }
    for precision in [ActivationPrecision::Int8, ActivationPrecision::Int8x2] {
        let (mut ours, mut portable) = (QuantizedActivations::new(), QuantizedActivations::new());
        quantize_int8(&x, k, 2, precision, &mut ours, false, false, block);
        quantize_portable(&x, k, 2, precision, &mut portable, false);
        assert_eq!(
            ours.hi[..2 * k],
            portable.hi[..2 * k],
            "{precision:?} high parts"
        );
        assert_eq!(ours.d[..4], portable.d[..4], "{precision:?} scales");
        if precision == ActivationPrecision::Int8x2 {
            assert_eq!(ours.lo[..2 * k], portable.lo[..2 * k], "low parts");
        }
    }
}
