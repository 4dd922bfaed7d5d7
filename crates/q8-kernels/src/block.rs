//! The Q8_0 block layout and its reference quantizer.

use half::f16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Number of weights in one [`BlockQ8_0`].
pub const QK8_0: usize = 32;

/// One Q8_0 block exactly as GGUF/ggml stores it: an `f16` scale followed by 32 signed bytes.
///
/// The value of weight `j` is `d * qs[j]`. The struct has no padding (34 bytes, alignment 2),
/// so a GGUF tensor's bytes can be viewed as `&[BlockQ8_0]` with zerocopy:
/// `<[BlockQ8_0]>::ref_from_bytes(bytes)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct BlockQ8_0 {
    /// The block scale.
    pub d: f16,
    /// The 32 quantized weights.
    pub qs: [i8; QK8_0],
}

const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(core::mem::align_of::<BlockQ8_0>() == 2);

impl BlockQ8_0 {
    /// Quantizes 32 values the way gguf-py (`quants.py`, used by `convert_hf_to_gguf.py`) and
    /// ggml's `quantize_row_q8_0_ref` do: `d = max|x| / 127` (in f32), `q = round_half_away(x / d)`
    /// computed as `x * (1/d)`, and `d` stored as f16. The output is byte-identical to theirs.
    pub fn quantize(x: &[f32; QK8_0]) -> Self {
        let amax = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let mut qs = [0i8; QK8_0];
        for (q, &v) in qs.iter_mut().zip(x) {
            // |v * id| <= 127 (up to rounding, clamped), so the cast cannot wrap.
            *q = (v * id).round().clamp(-127.0, 127.0) as i8;
        }
        BlockQ8_0 {
            d: f16::from_f32(d),
            qs,
        }
    }

    /// The 32 values this block stands for (`d * qs[j]`).
    pub fn dequantize(&self) -> [f32; QK8_0] {
        let d = self.d.to_f32();
        let mut out = [0.0; QK8_0];
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = d * f32::from(q);
        }
        out
    }
}

/// Quantizes `x` (a whole number of 32-value blocks) into `out` with [`BlockQ8_0::quantize`].
///
/// Returns [`crate::KernelError::NotBlockMultiple`] if `x.len()` is not a multiple of 32 and
/// [`crate::KernelError::LengthMismatch`] if `out.len() != x.len() / 32`.
pub fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) -> Result<(), crate::KernelError> {
    if !x.len().is_multiple_of(QK8_0) {
        return Err(crate::KernelError::NotBlockMultiple {
            what: "x",
            len: x.len(),
        });
    }
    crate::check_len("out", out.len(), x.len() / QK8_0)?;
    for (chunk, o) in x.chunks_exact(QK8_0).zip(out.iter_mut()) {
        let mut a = [0.0; QK8_0];
        a.copy_from_slice(chunk);
        *o = BlockQ8_0::quantize(&a);
    }
    Ok(())
}

/// Dequantizes Q8_0 blocks into `out` (`out.len() == blocks.len() * 32`).
pub fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) -> Result<(), crate::KernelError> {
    crate::check_len("out", out.len(), blocks.len() * QK8_0)?;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK8_0)) {
        o.copy_from_slice(&b.dequantize());
    }
    Ok(())
}
