//! ggml tensor types, the Q8_0 block layout and the Q8_0 quantiser.

use std::fmt;

use half::f16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::GgufError;

/// A ggml tensor element type, as stored in a GGUF tensor info (`enum ggml_type` in `ggml.h`).
///
/// Ids that ggml once defined and removed (4, 5, 31–33, 36–38) are rejected with
/// [`GgufError::RemovedGgmlType`]; ids ggml never defined with [`GgufError::UnknownGgmlType`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(non_camel_case_types)] // the ggml names, spelled as ggml spells them
#[non_exhaustive]
#[repr(u32)]
pub enum GgmlType {
    /// 32-bit IEEE float.
    F32 = 0,
    /// 16-bit IEEE float.
    F16 = 1,
    /// 4-bit, blocks of 32 with an f16 scale.
    Q4_0 = 2,
    /// 4-bit, blocks of 32 with f16 scale and minimum.
    Q4_1 = 3,
    /// 5-bit, blocks of 32 with an f16 scale.
    Q5_0 = 6,
    /// 5-bit, blocks of 32 with f16 scale and minimum.
    Q5_1 = 7,
    /// 8-bit, blocks of 32 with an f16 scale ([`BlockQ8_0`]).
    Q8_0 = 8,
    /// 8-bit, blocks of 32 with f16 scale and sum.
    Q8_1 = 9,
    /// 2-bit k-quant, super-blocks of 256.
    Q2_K = 10,
    /// 3-bit k-quant, super-blocks of 256.
    Q3_K = 11,
    /// 4-bit k-quant, super-blocks of 256.
    Q4_K = 12,
    /// 5-bit k-quant, super-blocks of 256.
    Q5_K = 13,
    /// 6-bit k-quant, super-blocks of 256.
    Q6_K = 14,
    /// 8-bit k-quant (intermediate), super-blocks of 256.
    Q8_K = 15,
    /// 2.06-bit i-quant.
    IQ2_XXS = 16,
    /// 2.31-bit i-quant.
    IQ2_XS = 17,
    /// 3.06-bit i-quant.
    IQ3_XXS = 18,
    /// 1.56-bit i-quant.
    IQ1_S = 19,
    /// 4-bit non-linear, blocks of 32.
    IQ4_NL = 20,
    /// 3.44-bit i-quant.
    IQ3_S = 21,
    /// 2.5-bit i-quant.
    IQ2_S = 22,
    /// 4.25-bit non-linear, super-blocks of 256.
    IQ4_XS = 23,
    /// 8-bit signed integer.
    I8 = 24,
    /// 16-bit signed integer.
    I16 = 25,
    /// 32-bit signed integer.
    I32 = 26,
    /// 64-bit signed integer.
    I64 = 27,
    /// 64-bit IEEE float.
    F64 = 28,
    /// 1.75-bit i-quant.
    IQ1_M = 29,
    /// bfloat16.
    BF16 = 30,
    /// Ternary, 1.69 bits.
    TQ1_0 = 34,
    /// Ternary, 2.06 bits.
    TQ2_0 = 35,
    /// MX FP4 (E2M1 with an E8M0 scale), blocks of 32.
    MXFP4 = 39,
    /// NV FP4 (E2M1 with E4M3 scales), blocks of 64.
    NVFP4 = 40,
    /// 1-bit (sign) with an f16 scale, blocks of 128.
    Q1_0 = 41,
}

/// Every type this crate knows, in id order.
pub const ALL_GGML_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
    GgmlType::IQ2_XXS,
    GgmlType::IQ2_XS,
    GgmlType::IQ3_XXS,
    GgmlType::IQ1_S,
    GgmlType::IQ4_NL,
    GgmlType::IQ3_S,
    GgmlType::IQ2_S,
    GgmlType::IQ4_XS,
    GgmlType::I8,
    GgmlType::I16,
    GgmlType::I32,
    GgmlType::I64,
    GgmlType::F64,
    GgmlType::IQ1_M,
    GgmlType::BF16,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
    GgmlType::MXFP4,
    GgmlType::NVFP4,
    GgmlType::Q1_0,
];

impl GgmlType {
    /// The numeric id stored in GGUF files.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// ggml's lower-case name (`"q8_0"`, `"f32"`, …), as `ggml_type_name` prints it.
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "f32",
            F16 => "f16",
            Q4_0 => "q4_0",
            Q4_1 => "q4_1",
            Q5_0 => "q5_0",
            Q5_1 => "q5_1",
            Q8_0 => "q8_0",
            Q8_1 => "q8_1",
            Q2_K => "q2_K",
            Q3_K => "q3_K",
            Q4_K => "q4_K",
            Q5_K => "q5_K",
            Q6_K => "q6_K",
            Q8_K => "q8_K",
            IQ2_XXS => "iq2_xxs",
            IQ2_XS => "iq2_xs",
            IQ3_XXS => "iq3_xxs",
            IQ1_S => "iq1_s",
            IQ4_NL => "iq4_nl",
            IQ3_S => "iq3_s",
            IQ2_S => "iq2_s",
            IQ4_XS => "iq4_xs",
            I8 => "i8",
            I16 => "i16",
            I32 => "i32",
            I64 => "i64",
            F64 => "f64",
            IQ1_M => "iq1_m",
            BF16 => "bf16",
            TQ1_0 => "tq1_0",
            TQ2_0 => "tq2_0",
            MXFP4 => "mxfp4",
            NVFP4 => "nvfp4",
            Q1_0 => "q1_0",
        }
    }

    /// Number of elements in one block (1 for plain types).
    pub fn block_size(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 | F16 | I8 | I16 | I32 | I64 | F64 | BF16 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | IQ4_NL | MXFP4 => 32,
            NVFP4 => 64,
            Q1_0 => 128,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K | IQ2_XXS | IQ2_XS | IQ3_XXS | IQ1_S
            | IQ3_S | IQ2_S | IQ4_XS | IQ1_M | TQ1_0 | TQ2_0 => 256,
        }
    }

    /// Bytes per block (per element for plain types), as `ggml_type_size` returns.
    pub fn type_size(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 => 4,
            F16 => 2,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            Q2_K => 84,
            Q3_K => 110,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
            Q8_K => 292,
            IQ2_XXS => 66,
            IQ2_XS => 74,
            IQ3_XXS => 98,
            IQ1_S => 50,
            IQ4_NL => 18,
            IQ3_S => 110,
            IQ2_S => 82,
            IQ4_XS => 136,
            I8 => 1,
            I16 => 2,
            I32 => 4,
            I64 => 8,
            F64 => 8,
            IQ1_M => 56,
            BF16 => 2,
            TQ1_0 => 54,
            TQ2_0 => 66,
            MXFP4 => 17,
            NVFP4 => 36,
            Q1_0 => 18,
        }
    }

    /// Whether this is a block-quantised type (block size above 1).
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes needed for a tensor of this type with shape `ne` (fastest dimension first), or `None`
    /// when the element count or byte size overflows `u64` or `ne[0]` is not a multiple of the
    /// block size.
    pub fn row_bytes_checked(self, ne: &[u64]) -> Option<u64> {
        let n = ne.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
        let bs = self.block_size();
        if ne.first().copied().unwrap_or(1) % bs != 0 {
            return None;
        }
        (n / bs).checked_mul(self.type_size())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name().to_ascii_uppercase())
    }
}

impl TryFrom<u32> for GgmlType {
    type Error = GgufError;

    fn try_from(id: u32) -> Result<Self, GgufError> {
        use GgmlType::*;
        Ok(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            16 => IQ2_XXS,
            17 => IQ2_XS,
            18 => IQ3_XXS,
            19 => IQ1_S,
            20 => IQ4_NL,
            21 => IQ3_S,
            22 => IQ2_S,
            23 => IQ4_XS,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => IQ1_M,
            30 => BF16,
            34 => TQ1_0,
            35 => TQ2_0,
            39 => MXFP4,
            40 => NVFP4,
            41 => Q1_0,
            4 => return Err(GgufError::RemovedGgmlType { id, name: "q4_2" }),
            5 => return Err(GgufError::RemovedGgmlType { id, name: "q4_3" }),
            31 => {
                return Err(GgufError::RemovedGgmlType {
                    id,
                    name: "q4_0_4_4",
                })
            }
            32 => {
                return Err(GgufError::RemovedGgmlType {
                    id,
                    name: "q4_0_4_8",
                })
            }
            33 => {
                return Err(GgufError::RemovedGgmlType {
                    id,
                    name: "q4_0_8_8",
                })
            }
            36 => {
                return Err(GgufError::RemovedGgmlType {
                    id,
                    name: "iq4_nl_4_4",
                })
            }
            37 => {
                return Err(GgufError::RemovedGgmlType {
                    id,
                    name: "iq4_nl_4_8",
                })
            }
            38 => {
                return Err(GgufError::RemovedGgmlType {
                    id,
                    name: "iq4_nl_8_8",
                })
            }
            _ => return Err(GgufError::UnknownGgmlType { id }),
        })
    }
}

/// Number of values in one Q8_0 block.
pub const QK8_0: usize = 32;

/// One Q8_0 block as ggml stores it: an f16 scale `d` and 32 signed bytes; value `i` is `d * qs[i]`.
#[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlockQ8_0 {
    /// The scale.
    pub d: f16,
    /// The quantised values.
    pub qs: [i8; QK8_0],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::align_of::<BlockQ8_0>() == 2);

impl BlockQ8_0 {
    /// The 32 values this block encodes.
    pub fn dequantize(&self) -> [f32; QK8_0] {
        let d = self.d.to_f32();
        self.qs.map(|q| d * f32::from(q))
    }
}

/// Quantises one block exactly as gguf-py's `quants.py` `Q8_0.quantize_blocks` does (all f32 math):
/// `d = amax / 127`, `id = if d == 0 { 0 } else { 1 / d }`, `q = round_half_away_from_zero(x * id)`,
/// `d` stored as f16 (round to nearest even).
fn quantize_block_q8_0(x: &[f32; QK8_0]) -> BlockQ8_0 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    // `f32::round` rounds half away from zero, like numpy's `np_roundf` in quants.py; the inputs are
    // finite and |x * id| <= 127 (up to rounding), so the `as` conversion never saturates wrongly.
    let qs = x.map(|v| (v * id).round() as i8);
    BlockQ8_0 {
        d: f16::from_f32(d),
        qs,
    }
}

/// Quantises `src` into `dst` (Q8_0), byte-identical to gguf-py; `src.len()` must be
/// `32 * dst.len()` and every value finite.
///
/// This is the streaming form of [`quantize_q8_0`]: the caller owns (and may reuse) the output.
pub fn quantize_q8_0_into(src: &[f32], dst: &mut [BlockQ8_0]) -> Result<(), GgufError> {
    if src.len() % QK8_0 != 0 || src.len() / QK8_0 != dst.len() {
        return Err(GgufError::QuantizeLength {
            ggml_type: GgmlType::Q8_0,
            len: src.len(),
            blocks: dst.len(),
            block_size: QK8_0,
        });
    }
    if let Some((index, &value)) = src.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(GgufError::NonFinite {
            ggml_type: GgmlType::Q8_0,
            index,
            value,
        });
    }
    for (chunk, out) in src.chunks_exact(QK8_0).zip(dst.iter_mut()) {
        // chunks_exact yields exactly QK8_0 values, so the conversion cannot fail.
        if let Ok(block) = <&[f32; QK8_0]>::try_from(chunk) {
            *out = quantize_block_q8_0(block);
        }
    }
    Ok(())
}

/// Quantises `src` to Q8_0 blocks, byte-identical to gguf-py's `quants.py` (`src.len()` must be a
/// multiple of 32 and every value finite).
pub fn quantize_q8_0(src: &[f32]) -> Result<Vec<BlockQ8_0>, GgufError> {
    if src.len() % QK8_0 != 0 {
        return Err(GgufError::QuantizeLength {
            ggml_type: GgmlType::Q8_0,
            len: src.len(),
            blocks: src.len() / QK8_0,
            block_size: QK8_0,
        });
    }
    let mut out = vec![
        BlockQ8_0 {
            d: f16::ZERO,
            qs: [0; QK8_0]
        };
        src.len() / QK8_0
    ];
    quantize_q8_0_into(src, &mut out)?;
    Ok(out)
}

/// Validates a tensor's shape as ggml does and returns its data size in bytes: every dimension and
/// the element count fit in `i64`, `ne[0]` is a multiple of the block size, and the byte size fits
/// in `u64`. Shared by the reader and the writer so both accept exactly the same tensors.
pub(crate) fn checked_tensor_size(
    name: &str,
    ggml_type: GgmlType,
    ne: &[u64],
) -> Result<u64, GgufError> {
    let overflow = || GgufError::ShapeOverflow {
        name: name.to_owned(),
        ne: ne.to_vec(),
    };
    let n_ok = ne
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .is_some_and(|n| n <= i64::MAX as u64 && ne.iter().all(|&d| d <= i64::MAX as u64));
    if !n_ok {
        return Err(overflow());
    }
    let block_size = ggml_type.block_size();
    let ne0 = ne.first().copied().unwrap_or(1);
    if ne0 % block_size != 0 {
        return Err(GgufError::NotBlockMultiple {
            name: name.to_owned(),
            ne0,
            ggml_type,
            block_size,
        });
    }
    ggml_type.row_bytes_checked(ne).ok_or_else(overflow)
}
