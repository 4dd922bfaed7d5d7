//! NeoX rotary position embeddings: the table of rotations, made once per model, and the
//! checked entry points over one head or a whole sequence.
//!
//! The table is sized by the caller's maximum sequence length, not a model's nominal context
//! (a table for 131072 positions would be hundreds of MiB per model).

use crate::error::{check_len, check_rows, mul};
use crate::kernel::Kernel;
use crate::KernelError;

/// Precomputed NeoX RoPE rotations: `cos`/`sin` of `pos · base^(−2i/head_dim)` for
/// `pos < max_pos`, `i < head_dim/2` (computed in f64, stored as f32).
#[derive(Clone, Debug)]
pub struct RopeTable {
    pub(crate) head_dim: usize,
    pub(crate) max_pos: usize,
    /// `max_pos × head_dim/2` cosines.
    cos: Vec<f32>,
    /// `max_pos × head_dim/2` sines.
    sin: Vec<f32>,
}

impl RopeTable {
    /// A table for heads of `head_dim` values (even, non-zero) and positions `0..max_pos`.
    pub fn new(head_dim: usize, base: f32, max_pos: usize) -> Result<RopeTable, KernelError> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(KernelError::InvalidShape {
                reason: "RoPE head_dim must be even and non-zero",
            });
        }
        let half = head_dim / 2;
        let len = mul("rope table", max_pos, half)?;
        let mut cos = Vec::with_capacity(len);
        let mut sin = Vec::with_capacity(len);
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| f64::from(base).powf(-2.0 * i as f64 / head_dim as f64))
            .collect();
        for pos in 0..max_pos {
            for &f in &inv_freq {
                let theta = pos as f64 * f;
                cos.push(theta.cos() as f32);
                sin.push(theta.sin() as f32);
            }
        }
        Ok(RopeTable {
            head_dim,
            max_pos,
            cos,
            sin,
        })
    }

    /// The head dimension.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The number of positions.
    pub fn max_pos(&self) -> usize {
        self.max_pos
    }

    /// `(cos, sin)` of position `pos` (`pos < max_pos`).
    pub(crate) fn row(&self, pos: usize) -> (&[f32], &[f32]) {
        let half = self.head_dim / 2;
        (
            &self.cos[pos * half..(pos + 1) * half],
            &self.sin[pos * half..(pos + 1) * half],
        )
    }
}

/// Checks and rotates one head `x` at position `pos`.
pub(crate) fn head(
    kernel: &dyn Kernel,
    x: &mut [f32],
    table: &RopeTable,
    pos: usize,
) -> Result<(), KernelError> {
    check_len("x", x.len(), table.head_dim)?;
    if pos >= table.max_pos {
        return Err(KernelError::PositionOutOfRange {
            pos,
            max_pos: table.max_pos,
        });
    }
    kernel.rope_neox(x, table, pos);
    Ok(())
}

/// Checks and rotates a sequence `x` (`seq × n_heads × head_dim`), token `t` at position `t`.
pub(crate) fn sequence(
    kernel: &dyn Kernel,
    x: &mut [f32],
    n_heads: usize,
    table: &RopeTable,
) -> Result<(), KernelError> {
    let row = mul("x", n_heads, table.head_dim)?;
    if row == 0 {
        return Err(KernelError::InvalidShape {
            reason: "n_heads or head_dim is 0",
        });
    }
    check_rows("x", x.len(), row)?;
    let seq = x.len() / row;
    if seq > table.max_pos {
        return Err(KernelError::PositionOutOfRange {
            pos: seq - 1,
            max_pos: table.max_pos,
        });
    }
    for (pos, xr) in x.chunks_exact_mut(row).enumerate() {
        for head in xr.chunks_exact_mut(table.head_dim) {
            kernel.rope_neox(head, table, pos);
        }
    }
    Ok(())
}
