//! The one trait every backend implements.
//!
//! [`Kernel`] lists every operation that a backend may compute its own way. Its provided
//! methods are the scalar reference (`crate::scalar`), so a backend overrides exactly what it
//! speeds up, each override visible in its `impl Kernel` block; the scalar backend overrides
//! nothing. Operations with no reference to fall back on (the packed int8 product, whose layout
//! belongs to the backend) are required methods of [`PackedKernel`], so a backend that offers
//! packing without its kernel does not compile.
//!
//! [`Kernels`](crate::Kernels) checks every argument once, then calls the chosen backend's
//! `&dyn Kernel` (`detect::Imp::kernel`, the one dispatch point) with shapes that fit; the
//! methods here may assume them.

use core::fmt;
use core::ops::Range;

use half::{bf16, f16};

use crate::acts::{self, ActivationPrecision, QuantizedActivations};
use crate::attention::{self, AttentionSpec};
use crate::block::BlockQ8_0;
use crate::packed::{self, PackedQ8_0};
use crate::rope::RopeTable;
use crate::split::Threads;
use crate::{scalar, Backend};

/// Float weights of a matrix product (row-major `n × k`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum FloatWeights<'a> {
    /// f32 weights.
    F32(&'a [f32]),
    /// f16 weights.
    F16(&'a [f16]),
    /// bf16 weights.
    Bf16(&'a [bf16]),
}

/// The operations of one backend. Implemented by a CPU-feature token (a value that proves the
/// CPU has the features), so every method is safe to call.
///
/// The shapes are checked by [`Kernels`](crate::Kernels) before any method runs: slices have the
/// lengths the other arguments imply, `rows` lie inside the matrix, `out[t]` holds token `t`'s
/// outputs for `rows`.
pub(crate) trait Kernel: Send + Sync + fmt::Debug {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Quantizes `x` (`tokens × k`) at `Int8` or `Int8x2` into `out`, in the layout this
    /// backend's [`Kernel::matmul_q8_0`] (and packed kernel) reads. (`F32` activations are
    /// copied by the caller, the same on every backend.)
    fn quantize_int8(
        &self,
        x: &[f32],
        k: usize,
        tokens: usize,
        precision: ActivationPrecision,
        out: &mut QuantizedActivations,
        threads: Threads,
    ) {
        acts::quantize_portable(x, k, tokens, precision, out, threads.parallel());
    }

    /// `y = x · Wᵀ` for `rows` with Q8_0 weights `w` and activations of any precision quantized
    /// by this backend; `out[t]` is token `t`'s part of `y` for those rows.
    fn matmul_q8_0(
        &self,
        w: &[BlockQ8_0],
        rows: Range<usize>,
        acts: &QuantizedActivations,
        out: &mut [&mut [f32]],
    ) {
        scalar::matmul_q8_0(w, rows, acts, out);
    }

    /// The packed-weight int8 kernel, if this backend has one.
    fn packed(&self) -> Option<&dyn PackedKernel> {
        None
    }

    /// `y = x · Wᵀ` for `rows` with float weights `w` (`k` values per row) and f32 `x`.
    fn matmul_float(
        &self,
        w: FloatWeights<'_>,
        k: usize,
        rows: Range<usize>,
        x: &[f32],
        out: &mut [&mut [f32]],
    ) {
        match w {
            FloatWeights::F32(w) => scalar::matmul_float(w, k, rows, x, out),
            FloatWeights::F16(w) => scalar::matmul_float(w, k, rows, x, out),
            FloatWeights::Bf16(w) => scalar::matmul_float(w, k, rows, x, out),
        }
    }

    /// `Σ a[i]·b[i]` (equal lengths).
    fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        scalar::dot(a, b)
    }

    /// `y += a·x` (equal lengths).
    fn axpy(&self, a: f32, x: &[f32], y: &mut [f32]) {
        scalar::axpy(a, x, y);
    }

    /// In-place softmax (max-subtracted).
    fn softmax(&self, x: &mut [f32]) {
        scalar::softmax(x);
    }

    /// `out = gelu_tanh(gate)·up` (equal lengths).
    fn geglu(&self, gate: &[f32], up: &[f32], out: &mut [f32]) {
        scalar::geglu(gate, up, out);
    }

    /// In-place RMSNorm of each `weight.len()`-long row of `x`.
    fn rms_norm(&self, x: &mut [f32], weight: &[f32], eps: f32) {
        scalar::rms_norm_inplace(x, weight, eps);
    }

    /// NeoX RoPE of one head at position `pos` (inside the table).
    fn rope_neox(&self, head: &mut [f32], table: &RopeTable, pos: usize) {
        scalar::rope_neox(head, table, pos);
    }

    /// Attention shaped by `spec` (non-empty), split into blocks of queries over the current
    /// team or rayon pool unless `threads` is [`Threads::Single`]. The reference runs head by
    /// head with this backend's [`Kernel::dot`], [`Kernel::softmax`] and [`Kernel::axpy`].
    fn attention(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        spec: &AttentionSpec,
        out: &mut [f32],
        threads: Threads,
    ) {
        attention::by_rows(self, q, k, v, spec, out, threads);
    }

    /// Whether [`AttentionPrecision::Bf16`](crate::AttentionPrecision::Bf16) rounds to bf16 here.
    fn has_bf16_attention(&self) -> bool {
        false
    }
}

/// A backend's kernel for [`PackedQ8_0`] weights ([`Kernel::packed`]).
pub(crate) trait PackedKernel: Sync {
    /// Packs one group of up to 16 rows (see `packed::pack_group_portable`, whose bytes any
    /// faster version must write).
    fn pack_group(&self, rows: &[&[BlockQ8_0]], gq: &mut [u32], gd: &mut [f16]) {
        packed::pack_group_portable(rows, gq, gd);
    }

    /// `y = x · Wᵀ` for `rows` with weights packed by this backend and `Int8`/`Int8x2`
    /// activations quantized by it; `out[t]` is token `t`'s part of `y` for those rows.
    fn matmul_packed(
        &self,
        w: &PackedQ8_0,
        rows: Range<usize>,
        acts: &QuantizedActivations,
        out: &mut [&mut [f32]],
    );
}
