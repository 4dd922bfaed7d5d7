//! Reference (scalar) dequantisation to `f32`, reading bytes at any alignment.
//!
//! These follow ggml's `dequantize_row_*` reference functions in `ggml-quants.c`. They are meant for
//! inspection, tests and conversion, not for inference kernels.

use half::{bf16, f16};

use crate::types::GgmlType;
use crate::{GgufError, TensorInfo};

fn h(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Dequantises `bytes` holding the data of `t`. `bytes.len()` must equal `t.size` (it does for
/// bytes returned by [`crate::Gguf::tensor_bytes`]).
pub(crate) fn dequantize(t: &TensorInfo, bytes: &[u8]) -> Result<Vec<f32>, GgufError> {
    if bytes.len() as u64 != t.size {
        return Err(GgufError::TensorOutOfBounds {
            name: t.name.clone(),
            offset: t.offset,
            size: t.size,
            data_len: bytes.len() as u64,
        });
    }
    let mut out = Vec::new();
    dequantize_row(t.ggml_type, bytes, &mut out).map_err(|e| match e {
        GgufError::UnsupportedType { ggml_type } => GgufError::UnsupportedDequantize {
            name: t.name.clone(),
            ggml_type,
        },
        e => e,
    })?;
    Ok(out)
}

/// Dequantises whole blocks of `ggml_type` from `bytes` and appends the values to `out`.
///
/// `bytes.len()` must be a multiple of the type size. Supported: F32, F16, BF16, F64, I8, I16,
/// I32, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1. Use it to process a large tensor in chunks of rows.
pub fn dequantize_row(
    ggml_type: GgmlType,
    bytes: &[u8],
    out: &mut Vec<f32>,
) -> Result<(), GgufError> {
    let ty = ggml_type;
    let ts = ty.type_size() as usize;
    if bytes.len() % ts != 0 {
        return Err(GgufError::DataLength {
            ggml_type,
            len: bytes.len() as u64,
            type_size: ty.type_size(),
        });
    }
    let n_blocks = bytes.len() / ts;
    // The byte length bounds the output: no allocation is sized by a header's shape alone.
    out.reserve(n_blocks.saturating_mul(ty.block_size() as usize));
    let blocks = bytes.chunks_exact(ts);
    match ty {
        GgmlType::F32 => out.extend(blocks.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        GgmlType::F16 => out.extend(blocks.map(|b| h(b, 0))),
        GgmlType::BF16 => out.extend(blocks.map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())),
        GgmlType::F64 => {
            out.extend(blocks.map(|b| {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }))
        }
        GgmlType::I8 => out.extend(blocks.map(|b| f32::from(b[0] as i8))),
        GgmlType::I16 => out.extend(blocks.map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])))),
        GgmlType::I32 => {
            out.extend(blocks.map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32))
        }
        GgmlType::Q8_0 => {
            for b in blocks {
                let d = h(b, 0);
                out.extend(b[2..34].iter().map(|&q| d * f32::from(q as i8)));
            }
        }
        GgmlType::Q4_0 => {
            for b in blocks {
                let d = h(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|&q| (i32::from(q & 0x0f) - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| (i32::from(q >> 4) - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in blocks {
                let (d, m) = (h(b, 0), h(b, 2));
                let qs = &b[4..20];
                out.extend(qs.iter().map(|&q| f32::from(q & 0x0f) * d + m));
                out.extend(qs.iter().map(|&q| f32::from(q >> 4) * d + m));
            }
        }
        GgmlType::Q5_0 => {
            for b in blocks {
                let d = h(b, 0);
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let qs = &b[6..22];
                let lo = qs.iter().enumerate().map(|(j, &q)| {
                    let hb = ((qh >> j) << 4) & 0x10;
                    (((u32::from(q) & 0x0f) | hb) as i32 - 16) as f32 * d
                });
                out.extend(lo);
                let hi = qs.iter().enumerate().map(|(j, &q)| {
                    let hb = (qh >> (j + 12)) & 0x10;
                    (((u32::from(q) >> 4) | hb) as i32 - 16) as f32 * d
                });
                out.extend(hi);
            }
        }
        GgmlType::Q5_1 => {
            for b in blocks {
                let (d, m) = (h(b, 0), h(b, 2));
                let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                let qs = &b[8..24];
                let lo = qs.iter().enumerate().map(|(j, &q)| {
                    let hb = ((qh >> j) << 4) & 0x10;
                    ((u32::from(q) & 0x0f) | hb) as f32 * d + m
                });
                out.extend(lo);
                let hi = qs.iter().enumerate().map(|(j, &q)| {
                    let hb = (qh >> (j + 12)) & 0x10;
                    ((u32::from(q) >> 4) | hb) as f32 * d + m
                });
                out.extend(hi);
            }
        }
        _ => return Err(GgufError::UnsupportedType { ggml_type }),
    }
    Ok(())
}
