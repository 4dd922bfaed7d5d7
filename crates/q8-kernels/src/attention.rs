//! Attention: the shape of one call ([`AttentionSpec`]), its checks, the split of the queries
//! into blocks over threads, and the per-head reference loop that backends without their own
//! block kernel run with their vector operations ([`Kernel::dot`], [`Kernel::softmax`],
//! [`Kernel::axpy`]).
//!
//! Queries are split into blocks of [`QUERY_BLOCK`] positions; each block is one task, so the
//! result does not depend on the number of threads.

use core::ops::Range;

use crate::error::{check_len, mul};
use crate::kernel::Kernel;
use crate::split::Threads;
use crate::{team, KernelError};

/// Query positions per task.
const QUERY_BLOCK: usize = 16;

/// The operand precision of [`Kernels::attention`] ([`AttentionSpec::precision`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttentionPrecision {
    /// f32 throughout.
    F32,
    /// Scores and `P·V` from bf16-rounded operands where the CPU has AVX512_BF16.
    Bf16,
}

/// The shape of one [`Kernels::attention`] call: `seq_len` positions of `n_heads` query heads
/// that share `n_kv_heads` key/value heads (query head `h` uses KV head
/// `h / (n_heads / n_kv_heads)`), `head_dim` values each.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    /// Positions (tokens).
    pub seq_len: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (`n_heads` must be a multiple).
    pub n_kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Scores are `scale · q·k`.
    pub scale: f32,
    /// Query `i` attends to keys `j` with `|i − j| <= w` for `Some(w)` (keys outside the window
    /// are never touched), else to all keys.
    pub window: Option<usize>,
    /// With [`AttentionPrecision::Bf16`] the scores `q·k` and the products `P·V` are computed from
    /// operands rounded to bf16 (8-bit mantissas, sums in f32) on CPUs with AVX512_BF16, at twice
    /// the multiply-adds per instruction of f32 (llama.cpp rounds K and V to f16 the same way);
    /// elsewhere, and for head dimensions that are not a multiple of 32, exactly like
    /// [`AttentionPrecision::F32`] ([`Kernels::has_bf16_attention`]).
    pub precision: AttentionPrecision,
}

/// Checks the arguments of [`Kernels::attention`](crate::Kernels::attention).
pub(crate) fn check(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: &AttentionSpec,
    out: &[f32],
) -> Result<(), KernelError> {
    let s = shape;
    if s.n_heads == 0 || s.n_kv_heads == 0 || s.head_dim == 0 {
        return Err(KernelError::InvalidShape {
            reason: "n_heads, n_kv_heads and head_dim must be non-zero",
        });
    }
    if !s.n_heads.is_multiple_of(s.n_kv_heads) {
        return Err(KernelError::InvalidShape {
            reason: "n_heads must be a multiple of n_kv_heads",
        });
    }
    let q_len = mul("q", mul("q", s.seq_len, s.n_heads)?, s.head_dim)?;
    let kv_len = mul("k", mul("k", s.seq_len, s.n_kv_heads)?, s.head_dim)?;
    check_len("q", q.len(), q_len)?;
    check_len("k", k.len(), kv_len)?;
    check_len("v", v.len(), kv_len)?;
    check_len("out", out.len(), q_len)
}

/// Calls `block(queries, out_block)` for every block of [`QUERY_BLOCK`] query positions, where
/// `out_block` is those positions' rows of `out`, on the current team or rayon pool unless
/// `threads` is [`Threads::Single`]. Shapes are checked.
pub(crate) fn for_query_blocks<F>(
    shape: &AttentionSpec,
    out: &mut [f32],
    threads: Threads,
    block: F,
) where
    F: Fn(Range<usize>, &mut [f32]) + Sync,
{
    let row = shape.n_heads * shape.head_dim;
    if row == 0 || shape.seq_len == 0 {
        return;
    }
    let blocks: Vec<(usize, &mut [f32])> = out.chunks_mut(QUERY_BLOCK * row).enumerate().collect();
    team::for_each_task(threads.parallel(), blocks, |(bi, ob)| {
        let q0 = bi * QUERY_BLOCK;
        block(q0..q0 + ob.len() / row, ob)
    });
}

/// Attention head by head and query by query with the backend's `dot`, `softmax` and `axpy`
/// (the reference, and what backends without a block kernel run). Shapes are checked.
pub(crate) fn by_rows<K: Kernel + ?Sized>(
    kernel: &K,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: &AttentionSpec,
    out: &mut [f32],
    threads: Threads,
) {
    for_query_blocks(shape, out, threads, |queries, ob| {
        let mut scores = Vec::new();
        for h in 0..shape.n_heads {
            rows(kernel, q, k, v, shape, h, queries.clone(), &mut scores, ob);
        }
    });
}

/// Attention of head `h` for the query rows `queries`; `out_block` holds those query rows of the
/// output (`queries.len() × n_heads × head_dim`) and head `h`'s part of each is written.
///
/// `q` is `seq × n_heads × head_dim`, `k` and `v` are `seq × n_kv_heads × head_dim`.
#[allow(clippy::too_many_arguments)]
fn rows<K: Kernel + ?Sized>(
    ops: &K,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: &AttentionSpec,
    h: usize,
    queries: Range<usize>,
    scores: &mut Vec<f32>,
    out_block: &mut [f32],
) {
    let d = shape.head_dim;
    let kvh = h / (shape.n_heads / shape.n_kv_heads);
    let q_stride = shape.n_heads * d;
    let kv_stride = shape.n_kv_heads * d;
    for (qi, orow) in queries.zip(out_block.chunks_exact_mut(q_stride)) {
        let o = &mut orow[h * d..(h + 1) * d];
        let keys = shape.key_range(qi);
        let qv = &q[qi * q_stride + h * d..qi * q_stride + (h + 1) * d];
        scores.clear();
        for j in keys.clone() {
            let kv = &k[j * kv_stride + kvh * d..j * kv_stride + (kvh + 1) * d];
            scores.push(ops.dot(qv, kv) * shape.scale);
        }
        ops.softmax(scores);
        o.fill(0.0);
        for (j, &p) in keys.zip(scores.iter()) {
            let vv = &v[j * kv_stride + kvh * d..j * kv_stride + (kvh + 1) * d];
            ops.axpy(p, vv, o);
        }
    }
}

/// A block of queries of one attention call ([`AttentionSpec::block`]): the query rows of all
/// heads that share a KV head are gathered into one matrix of `rows` rows.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct AttentionBlock {
    /// Query heads per KV head.
    pub(crate) group: usize,
    /// Distance between positions in `q` and `out`.
    pub(crate) q_stride: usize,
    /// Distance between positions in `k` and `v`.
    pub(crate) kv_stride: usize,
    /// The first and one-past-last key any query of the block sees.
    pub(crate) k0: usize,
    pub(crate) k1: usize,
    /// Query rows per KV head: queries × `group`.
    pub(crate) rows: usize,
}

impl AttentionSpec {
    /// The geometry of the block of queries `queries` (`None` if it is empty), for the block
    /// kernels of the x86-64 backends.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn block(&self, queries: &Range<usize>) -> Option<AttentionBlock> {
        if queries.is_empty() {
            return None;
        }
        let group = self.n_heads / self.n_kv_heads;
        Some(AttentionBlock {
            group,
            q_stride: self.n_heads * self.head_dim,
            kv_stride: self.n_kv_heads * self.head_dim,
            k0: self.key_range(queries.start).start,
            k1: self.key_range(queries.end - 1).end,
            rows: queries.len() * group,
        })
    }

    /// The keys query `i` sees.
    pub(crate) fn key_range(&self, i: usize) -> Range<usize> {
        match self.window {
            None => 0..self.seq_len,
            Some(w) => i.saturating_sub(w)..i.saturating_add(w).saturating_add(1).min(self.seq_len),
        }
    }
}
