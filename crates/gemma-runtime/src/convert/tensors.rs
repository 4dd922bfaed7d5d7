//! Tensor planning (names, order, types, shapes) and the per-chunk data conversions.
//!
//! The conversions reproduce gguf-py bit for bit: F32 is copied; F16 is numpy's `astype(float16)`
//! (round to nearest even, overflow to infinity, which `half::f16::from_f32` also does); BF16 is
//! gguf-py's own bit twiddling (quiet NaNs, then round to nearest even on the upper 16 bits);
//! Q8_0 is [`gguf::quantize_q8_0_into`], written to match `quants.py` exactly.

use std::path::{Path, PathBuf};

use gguf::GgmlType;
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use super::{ConvertError, OutType};

/// Where a tensor's data comes from.
#[derive(Debug, Clone)]
pub(crate) struct SourceTensor {
    /// Index of the safetensors file in the converter's list of opened files.
    pub(crate) file: usize,
    /// The tensor's name inside that file.
    pub(crate) hf_name: String,
    /// Element type in the file.
    pub(crate) dtype: SrcType,
    /// Number of leading elements to take (the token embedding is cut to the vocabulary size).
    pub(crate) n_elements: u64,
}

/// The source element types the converter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SrcType {
    F32,
    F16,
    Bf16,
}

impl SrcType {
    fn size(self) -> usize {
        match self {
            SrcType::F32 => 4,
            SrcType::F16 | SrcType::Bf16 => 2,
        }
    }
}

/// One output tensor.
#[derive(Debug, Clone)]
pub(crate) struct PlannedTensor {
    /// GGUF name.
    pub(crate) name: String,
    /// GGUF type.
    pub(crate) ggml_type: GgmlType,
    /// Shape, fastest dimension first.
    pub(crate) ne: Vec<u64>,
    /// Size of the data in bytes.
    pub(crate) n_bytes: u64,
    /// Gemma's RMSNorm multiplies by `1 + w`: llama.cpp stores `w + 1`.
    pub(crate) add_one: bool,
    /// The data.
    pub(crate) source: SourceTensor,
}

/// Maps a checkpoint tensor name to its GGUF name, as llama.cpp's tensor map does for Gemma 3.
/// `None` for a name the model does not have. `block_count` bounds the layer index.
pub(crate) fn gguf_name(hf_name: &str, block_count: u32) -> Option<String> {
    let name = hf_name.strip_prefix("model.").unwrap_or(hf_name);
    let (stem, suffix) = if let Some(s) = name.strip_suffix(".weight") {
        (s, "weight")
    } else if let Some(s) = name.strip_suffix(".bias") {
        (s, "bias")
    } else {
        return None;
    };
    let fixed = match stem {
        "embed_tokens" => Some("token_embd"),
        "norm" => Some("output_norm"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(format!("{f}.{suffix}"));
    }
    let rest = stem.strip_prefix("layers.")?;
    let (index, part) = rest.split_once('.')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) || index.len() > 9 {
        return None;
    }
    let bid: u32 = index.parse().ok()?;
    if bid >= block_count || (index.len() > 1 && index.starts_with('0')) {
        return None;
    }
    let mapped = match part {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "post_attention_layernorm" => "post_attention_norm",
        "pre_feedforward_layernorm" => "ffn_norm",
        "post_feedforward_layernorm" => "post_ffw_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{bid}.{mapped}.{suffix}"))
}

/// Checkpoint tensors llama.cpp drops without complaint.
pub(crate) fn is_ignored(hf_name: &str) -> bool {
    hf_name == "lm_head.weight"
        || hf_name.ends_with(".attention.masked_bias")
        || hf_name.ends_with(".attention.bias")
        || hf_name.ends_with(".rotary_emb.inv_freq")
}

/// The GGUF type llama.cpp picks for a tensor (`prepare_tensors`): 1-D tensors, norms and
/// anything not named `*.weight` stay F32; other weights take the output type, with Q8_0 falling
/// back to F16 when the rows are not a multiple of 32.
pub(crate) fn pick_type(gguf_name: &str, ne: &[u64], ty: OutType) -> GgmlType {
    if ne.len() <= 1 || gguf_name.ends_with("_norm.weight") || !gguf_name.ends_with(".weight") {
        return GgmlType::F32;
    }
    match ty {
        OutType::F32 => GgmlType::F32,
        OutType::F16 => GgmlType::F16,
        OutType::Bf16 => GgmlType::BF16,
        OutType::Q8_0 => {
            if ne[0] % gguf::QK8_0 as u64 == 0 {
                GgmlType::Q8_0
            } else {
                GgmlType::F16
            }
        }
    }
}

/// The source type of a safetensors dtype, or an error naming the file and tensor.
pub(crate) fn src_type(path: &Path, name: &str, dtype: Dtype) -> Result<SrcType, ConvertError> {
    match dtype {
        Dtype::F32 => Ok(SrcType::F32),
        Dtype::F16 => Ok(SrcType::F16),
        Dtype::BF16 => Ok(SrcType::Bf16),
        other => Err(ConvertError::UnsupportedDtype {
            path: path.to_path_buf(),
            name: name.to_owned(),
            dtype: format!("{other:?}"),
        }),
    }
}

/// Plans one tensor from its checkpoint shape.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan(
    path: &Path,
    file: usize,
    hf_name: &str,
    gguf_name: String,
    dtype: Dtype,
    shape: &[usize],
    max_rows: Option<usize>,
    ty: OutType,
) -> Result<PlannedTensor, ConvertError> {
    let bad = |reason: &str| ConvertError::BadShape {
        path: path.to_path_buf(),
        name: hf_name.to_owned(),
        shape: shape.to_vec(),
        reason: reason.to_owned(),
    };
    let src = src_type(path, hf_name, dtype)?;
    if shape.is_empty() || shape.len() > 4 {
        return Err(bad("a GGUF tensor has 1 to 4 dimensions"));
    }
    let mut dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    if let Some(max) = max_rows {
        dims[0] = dims[0].min(max as u64);
    }
    let ne: Vec<u64> = dims.iter().rev().copied().collect();
    let n_elements = ne
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .filter(|&n| n > 0 && n <= i64::MAX as u64)
        .ok_or_else(|| bad("empty or too many elements"))?;
    let ggml_type = pick_type(&gguf_name, &ne, ty);
    let n_bytes = ggml_type
        .row_bytes_checked(&ne)
        .ok_or_else(|| bad("byte size overflows"))?;
    Ok(PlannedTensor {
        add_one: hf_name.ends_with("norm.weight"),
        name: gguf_name,
        ggml_type,
        ne,
        n_bytes,
        source: SourceTensor {
            file,
            hf_name: hf_name.to_owned(),
            dtype: src,
            n_elements,
        },
    })
}

/// Elements converted per chunk: a multiple of the Q8_0 block size; 4 MiB of f32.
pub(crate) const CHUNK_ELEMENTS: usize = 1 << 20;

/// Converts a tensor's source bytes chunk by chunk into its GGUF encoding, handing each encoded
/// chunk to `sink` and each finished source byte range (relative to `src`) to `done`.
pub(crate) struct Encoder {
    f32_buf: Vec<f32>,
    out_buf: Vec<u8>,
    q8_buf: Vec<gguf::BlockQ8_0>,
}

impl Encoder {
    pub(crate) fn new() -> Self {
        Encoder {
            f32_buf: Vec::with_capacity(CHUNK_ELEMENTS),
            out_buf: Vec::with_capacity(CHUNK_ELEMENTS * 4),
            q8_buf: Vec::new(),
        }
    }

    /// Encodes `t` whose source data is `src` (exactly `n_elements` elements), read from
    /// `file_path`, for the output file `out_path` (both only for error messages).
    pub(crate) fn encode(
        &mut self,
        t: &PlannedTensor,
        src: &[u8],
        file_path: &Path,
        out_path: &Path,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), gguf::GgufError>,
        done: &mut dyn FnMut(usize, usize),
    ) -> Result<(), ConvertError> {
        let esize = t.source.dtype.size();
        let mut start = 0usize;
        let total = src.len() / esize;
        let gguf_err = |source| ConvertError::Gguf {
            path: out_path.to_path_buf(),
            source,
        };
        while start < total {
            let n = (total - start).min(CHUNK_ELEMENTS);
            let bytes = &src[start * esize..(start + n) * esize];
            self.decode(t, bytes);
            self.out_buf.clear();
            match t.ggml_type {
                GgmlType::F32 => {
                    for v in &self.f32_buf {
                        self.out_buf.extend_from_slice(&v.to_le_bytes());
                    }
                }
                GgmlType::F16 => {
                    for &v in &self.f32_buf {
                        self.out_buf
                            .extend_from_slice(&f16::from_f32(v).to_bits().to_le_bytes());
                    }
                }
                GgmlType::BF16 => {
                    for &v in &self.f32_buf {
                        self.out_buf
                            .extend_from_slice(&f32_to_bf16_gguf_py(v).to_le_bytes());
                    }
                }
                _ => {
                    // Q8_0 (the planner produces no other type)
                    let blocks = n / gguf::QK8_0;
                    self.q8_buf.clear();
                    self.q8_buf.resize(
                        blocks,
                        gguf::BlockQ8_0 {
                            d: f16::ZERO,
                            qs: [0; gguf::QK8_0],
                        },
                    );
                    if let Err(e) = gguf::quantize_q8_0_into(&self.f32_buf, &mut self.q8_buf) {
                        return Err(match e {
                            gguf::GgufError::NonFinite { index, value, .. } => {
                                ConvertError::NonFinite {
                                    path: file_path.to_path_buf(),
                                    name: t.source.hf_name.clone(),
                                    index: (start + index) as u64,
                                    value,
                                }
                            }
                            other => gguf_err(other),
                        });
                    }
                    self.out_buf
                        .extend_from_slice(zerocopy::IntoBytes::as_bytes(&self.q8_buf[..]));
                }
            }
            sink(&self.out_buf).map_err(gguf_err)?;
            done(start * esize, (start + n) * esize);
            start += n;
        }
        Ok(())
    }

    /// Decodes `bytes` to f32 (with the norm shift) into `self.f32_buf`.
    fn decode(&mut self, t: &PlannedTensor, bytes: &[u8]) {
        self.f32_buf.clear();
        match t.source.dtype {
            SrcType::F32 => {
                let it = bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                if t.add_one {
                    self.f32_buf.extend(it.map(|v| v + 1.0));
                } else {
                    self.f32_buf.extend(it);
                }
            }
            SrcType::F16 => {
                let it = bytes
                    .chunks_exact(2)
                    .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])));
                if t.add_one {
                    // torch adds in the tensor's own type: the sum is rounded back to f16.
                    self.f32_buf
                        .extend(it.map(|v| f16::from_f32(v.to_f32() + 1.0).to_f32()));
                } else {
                    self.f32_buf.extend(it.map(f16::to_f32));
                }
            }
            SrcType::Bf16 => {
                // llama.cpp converts BF16 checkpoints to f32 before anything else.
                let it = bytes
                    .chunks_exact(2)
                    .map(|b| bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32());
                if t.add_one {
                    self.f32_buf.extend(it.map(|v| v + 1.0));
                } else {
                    self.f32_buf.extend(it);
                }
            }
        }
    }
}

/// gguf-py's `BF16.quantize_blocks` (the same as ggml's `ggml_compute_fp32_to_bf16`): NaNs are
/// made quiet (keeping sign and upper payload), then the upper half is rounded to nearest even.
pub(crate) fn f32_to_bf16_gguf_py(v: f32) -> u16 {
    let mut n = v.to_bits();
    if n & 0x7fff_ffff > 0x7f80_0000 {
        n = (n & 0xffff_0000) | (64 << 16);
    }
    let rounded = (u64::from(n) + 0x7fff + u64::from((n >> 16) & 1)) >> 16;
    // `astype(np.uint16)` keeps the low 16 bits.
    rounded as u16
}

/// The safetensors files the converter reads, mapped.
pub(crate) struct SafetensorsFile {
    pub(crate) path: PathBuf,
    pub(crate) map: memmap2::Mmap,
}

impl SafetensorsFile {
    pub(crate) fn open(path: &Path) -> Result<Self, ConvertError> {
        let file = std::fs::File::open(path).map_err(|e| super::source::io_error(path, e))?;
        // SAFETY: the file is opened read-only and only ever read through the map as `&[u8]`,
        // every value decoded explicitly. As for every memory-mapped reader, this relies on no
        // other process truncating or rewriting the checkpoint while it is being converted.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| ConvertError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(SafetensorsFile {
            path: path.to_path_buf(),
            map,
        })
    }

    /// Parses the header (validating that the data section matches it exactly).
    pub(crate) fn parse(&self) -> Result<SafeTensors<'_>, ConvertError> {
        SafeTensors::deserialize(&self.map).map_err(|source| ConvertError::Safetensors {
            path: self.path.clone(),
            source,
        })
    }

    /// Tells the kernel that the pages of `[start, end)` (offsets into the map) are no longer
    /// needed, so converting a file larger than memory keeps the resident set small.
    pub(crate) fn release(&self, start: usize, end: usize) {
        const PAGE: usize = 4096;
        let start = start.next_multiple_of(PAGE);
        let end = end / PAGE * PAGE;
        if end > start {
            // SAFETY: the map is a read-only, file-backed private mapping that is never written;
            // MADV_DONTNEED only drops its resident pages, which the kernel re-reads from the file
            // if they are touched again, so every later read still sees the file's bytes.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            gguf_name("embed_tokens.weight", 24).as_deref(),
            Some("token_embd.weight")
        );
        assert_eq!(
            gguf_name("norm.weight", 24).as_deref(),
            Some("output_norm.weight")
        );
        assert_eq!(
            gguf_name("layers.23.self_attn.o_proj.weight", 24).as_deref(),
            Some("blk.23.attn_output.weight")
        );
        assert_eq!(
            gguf_name("model.layers.0.pre_feedforward_layernorm.weight", 24).as_deref(),
            Some("blk.0.ffn_norm.weight")
        );
        assert_eq!(gguf_name("layers.24.mlp.up_proj.weight", 24), None);
        assert_eq!(gguf_name("layers.01.mlp.up_proj.weight", 24), None);
        assert_eq!(gguf_name("layers.0.mlp.frobnicate.weight", 24), None);
    }

    #[test]
    fn types() {
        assert_eq!(
            pick_type("blk.0.attn_q.weight", &[768, 768], OutType::Q8_0),
            GgmlType::Q8_0
        );
        assert_eq!(
            pick_type("blk.0.attn_q.weight", &[40, 768], OutType::Q8_0),
            GgmlType::F16
        );
        assert_eq!(
            pick_type("blk.0.attn_norm.weight", &[768], OutType::Q8_0),
            GgmlType::F32
        );
        assert_eq!(
            pick_type("x_norm.weight", &[8, 8], OutType::Bf16),
            GgmlType::F32
        );
        assert_eq!(pick_type("x.bias", &[8, 8], OutType::F16), GgmlType::F32);
    }

    #[test]
    fn bf16_like_gguf_py() {
        assert_eq!(f32_to_bf16_gguf_py(1.0), 0x3f80);
        // ties to even: 0x3f808000 -> 0x3f80, 0x3f818000 -> 0x3f82
        assert_eq!(f32_to_bf16_gguf_py(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16_gguf_py(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16_gguf_py(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(f32_to_bf16_gguf_py(f32::MAX), 0x7f80);
        // a signalling NaN becomes quiet, sign kept
        assert_eq!(f32_to_bf16_gguf_py(f32::from_bits(0xff80_0001)), 0xffc0);
        assert_eq!(f32_to_bf16_gguf_py(f32::from_bits(0x7fc1_2345)), 0x7fc1);
    }
}
